/* fd-relative file-system primitives.
 *
 * Invariant: every replacement of a file that other code or the bootloader
 * reads goes through ab_fs_replace_at(): tmp in the same directory, fsync,
 * renameat, fsync of the directory. A reader therefore sees either the old
 * or the new content, never a mix, whatever instant the process dies. */
#pragma once

#include <glib.h>
#include <sys/types.h>

#define AB_FS_ERROR (ab_fs_error_quark ())
GQuark ab_fs_error_quark (void);

typedef enum
{
  AB_FS_ERROR_FAILED,
  AB_FS_ERROR_NOT_FOUND,
} AbFsError;

gboolean ab_fs_replace_at (int dfd, const char *name, const void *data, gsize len,
                           mode_t mode, GError **error);
gboolean ab_fs_fsync_dir_at (int dfd, const char *path, GError **error);
gboolean ab_fs_unlink_durable_at (int dfd, const char *name, GError **error);
/* Contents of dfd/name; a missing file is AB_FS_ERROR_NOT_FOUND. */
gboolean ab_fs_read_at (int dfd, const char *name, char **out_data, gsize *out_len,
                        GError **error);
gboolean ab_fs_exists_at (int dfd, const char *name);
gboolean ab_fs_mkdir_p_at (int dfd, const char *path, mode_t mode, GError **error);
/* Opens a directory relative to dfd; returns -1 and sets error on failure. */
int ab_fs_opendir_at (int dfd, const char *path, GError **error);
/* Removes a tree; a missing path is not an error. Clears the immutable bit
 * where it is set. */
gboolean ab_fs_rm_rf_at (int dfd, const char *path, GError **error);
/* Atomically swaps two directory entries (renameat2 RENAME_EXCHANGE). */
gboolean ab_fs_exchange_at (int dfd, const char *a, const char *b, GError **error);
gboolean ab_fs_rename_at (int dfd, const char *from, const char *to, GError **error);
/* Copies one file, symlink or directory tree, preserving mode, owner (when
 * root) and times. Regular files are copied, never hardlinked. */
gboolean ab_fs_copy_at (int src_dfd, const char *src, int dst_dfd, const char *dst,
                        GError **error);
/* Whether two entries have identical type, mode, owner and content. */
gboolean ab_fs_same_content_at (int a_dfd, const char *a, int b_dfd, const char *b,
                                gboolean *out_same, GError **error);
gboolean ab_fs_syncfs (int dfd, GError **error);
/* The absolute path of directory fd DFD (AT_FDCWD: the current directory),
 * joined with REL when REL is not NULL. */
char *ab_fs_fd_path (int dfd, const char *rel, GError **error);
