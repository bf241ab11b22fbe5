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
/* The error domain of ab-fsutil (the codes of the enum below). */
GQuark ab_fs_error_quark (void);

typedef enum
{
  AB_FS_ERROR_FAILED,
  AB_FS_ERROR_NOT_FOUND,
  AB_FS_ERROR_ESCAPES,   /* the path resolves through a link that leaves its root, or any link where none is allowed */
  AB_FS_ERROR_NOT_REGULAR, /* a regular file was required */
  AB_FS_ERROR_UNSAFE,      /* code that someone other than root may change */
  AB_FS_ERROR_NO_SPACE,    /* ENOSPC or EDQUOT: the file system is full */
  AB_FS_ERROR_IO,          /* EIO: the device failed */
} AbFsError;

/* The AB_FS_ERROR code for ERRSV (an errno value): NOT_FOUND, NO_SPACE, IO
 * or FAILED. */
AbFsError ab_fs_error_from_errno (int errsv);
/* The one errno helper (every module reports a failed system call through
 * it): sets ERROR to AB_FS_ERROR with the code ab_fs_error_from_errno(ERRSV)
 * and the message "PREFIX: strerror(ERRSV)", PREFIX formatted from FORMAT.
 * Always returns FALSE, so a caller can `return ab_throw_errno_prefix (...)`.
 * Leaves nothing behind but ERROR. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_throw_errno_prefix (GError **error, int errsv, const char *format, ...)
    G_GNUC_PRINTF (3, 4);

/* A full disk or a failing device (AB_FS_ERROR_NO_SPACE, AB_FS_ERROR_IO,
 * G_IO_ERROR_NO_SPACE): says nothing about what was being written. */
gboolean ab_fs_error_is_local_disk (const GError *error);

/* How ab_fs_open_beneath() resolves a path below its root directory. */
typedef enum
{
  /* No symbolic link in any component, the last one included (unless
   * FLAGS has O_PATH|O_NOFOLLOW: then the last one may be a link, which is
   * opened itself). For trees written by abdeploy and for images whose
   * links must not be followed. */
  AB_FS_RESOLVE_NO_SYMLINKS,
  /* Links are followed as long as they stay beneath the root: a relative
   * link that climbs out, or an absolute link, fails. */
  AB_FS_RESOLVE_BENEATH,
  /* The root is "/": an absolute link and ".." resolve inside it, as they
   * would on the system that boots it (a chroot-like view). */
  AB_FS_RESOLVE_IN_ROOT,
} AbFsResolve;

/* The one way to open a path inside a slot, an image checkout, /etc or the
 * boot directory: openat2(2) with RESOLVE_BENEATH or RESOLVE_IN_ROOT (and
 * RESOLVE_NO_MAGICLINKS), RESOLVE_NO_SYMLINKS for AB_FS_RESOLVE_NO_SYMLINKS.
 * Where openat2 is missing (ENOSYS, Linux < 5.6) it walks the components
 * with O_NOFOLLOW and refuses every symbolic link and "..": stricter, never
 * looser. PATH is relative to ROOT_DFD ("." is the root itself); FLAGS and
 * MODE are those of openat(2) (O_CLOEXEC is added). Returns the fd, or -1
 * with ERROR set: AB_FS_ERROR_NOT_FOUND for ENOENT, AB_FS_ERROR_ESCAPES
 * when resolution would leave the root or meets a forbidden link. */
int ab_fs_open_beneath (int root_dfd, const char *path, int flags, mode_t mode,
                        AbFsResolve how, GError **error);
/* The directory that holds PATH's last component, opened with
 * ab_fs_open_beneath(); *OUT_NAME points into PATH at that component.
 * For the *at() calls that act on the entry itself (unlinkat, mkdirat,
 * renameat, fstatat with AT_SYMLINK_NOFOLLOW, symlinkat, linkat). */
int ab_fs_open_parent_beneath (int root_dfd, const char *path, const char **out_name,
                               AbFsResolve how, GError **error);
/* Creates the directories of PATH below ROOT_DFD that are missing and
 * returns an fd of the last one; never follows a link (an existing
 * component that is a link is AB_FS_ERROR_ESCAPES). "." is ROOT_DFD. */
int ab_fs_mkdir_p_beneath (int root_dfd, const char *path, mode_t mode, GError **error);
/* Tests only: pretend that openat2 is missing, to exercise the walk. */
extern gboolean ab_fs_openat2_disabled;

/* MODE for a file system that keeps no modes (FAT, the EFI system
 * partition): the file is created 0644 and never chmod-ed, which FAT
 * refuses (EPERM) unless the mode matches its mount's fmask. */
#define AB_FS_MODE_NONE ((mode_t) -1)
/* Writes all LEN bytes of DATA to FD, retrying short writes and EINTR.
 * FALSE with errno set when a write fails (0 bytes written counts as
 * failure, errno then unchanged); what was written before stays. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_fs_write_all (int fd, const void *data, gsize len);
/* Replaces DFD/NAME with DATA atomically: tmp file, fsync, rename, fsync of
 * the directory (MODE AB_FS_MODE_NONE: no chmod). On error NAME is unchanged
 * and no tmp file is left. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_fs_replace_at (int dfd, const char *name, const void *data, gsize len,
                           mode_t mode, GError **error);
/* One file of ab_fs_replace_all_at(): NAME (in the directory) gets DATA. */
typedef struct
{
  const char *name;
  const void *data;
  gsize len;
  mode_t mode;
} AbFsWrite;
/* Replaces N files of one directory all or nothing as far as a full disk
 * or a write error goes: every temporary is written and synced first,
 * then they are renamed into place in array order. */
gboolean ab_fs_replace_all_at (int dfd, const AbFsWrite *files, guint n,
                               GError **error) G_GNUC_WARN_UNUSED_RESULT;
/* fsync()s the directory DFD/PATH, so that renames and unlinks in it are
 * durable. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_fs_fsync_dir_at (int dfd, const char *path, GError **error);
/* Removes DFD/NAME (missing is fine) and fsyncs the directory. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_fs_unlink_durable_at (int dfd, const char *name, GError **error);
/* Contents of dfd/name; a missing file is AB_FS_ERROR_NOT_FOUND. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_fs_read_at (int dfd, const char *name, char **out_data, gsize *out_len,
                        GError **error);
/* Everything left to read from FD (NAME for messages), NUL-terminated. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_fs_read_fd (int fd, const char *name, char **out_data, gsize *out_len,
                        GError **error);
/* Whether DFD/NAME exists (without following a final symlink). */
gboolean ab_fs_exists_at (int dfd, const char *name);
/* Creates DFD/PATH and its missing parents with MODE; existing directories
 * are fine. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_fs_mkdir_p_at (int dfd, const char *path, mode_t mode, GError **error);
/* Opens a directory relative to dfd; returns -1 and sets error on failure. */
int ab_fs_opendir_at (int dfd, const char *path, GError **error);
/* Removes a tree; a missing path is not an error. Clears the immutable bit
 * where it is set. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_fs_rm_rf_at (int dfd, const char *path, GError **error);
/* Atomically swaps two directory entries (renameat2 RENAME_EXCHANGE). */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_fs_exchange_at (int dfd, const char *a, const char *b, GError **error);
/* Renames FROM to TO within DFD (not durable until ab_fs_fsync_dir_at()). */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_fs_rename_at (int dfd, const char *from, const char *to, GError **error);
/* Copies one file, symlink or directory tree, preserving mode, owner (when
 * root) and times. Regular files are copied, never hardlinked. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_fs_copy_at (int src_dfd, const char *src, int dst_dfd, const char *dst,
                        GError **error);
/* Copies the bytes of the regular file SRC (no link followed) into DST,
 * which must not exist, created 0644, and fsyncs it; no owner, mode or
 * times are copied (for FAT, which keeps none). A failure removes DST. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_fs_copy_data_at (int src_dfd, const char *src, int dst_dfd, const char *dst,
                             GError **error);
/* Whether two entries have identical type, mode, owner and content. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_fs_same_content_at (int a_dfd, const char *a, int b_dfd, const char *b,
                                gboolean *out_same, GError **error);
/* syncfs() of the file system holding DFD. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_fs_syncfs (int dfd, GError **error);
/* The absolute path of what FD names (AT_FDCWD: the current directory),
 * by one readlink of /proc/self/fd/FD. Only where a path is resolved once:
 * a sysroot when it is opened (AbSysroot.root, restore's own handle), and a
 * hook file whose links were followed inside its tree. A path below a
 * sysroot is its root joined with the relative path, never this again. */
G_GNUC_WARN_UNUSED_RESULT
char *ab_fs_fd_realpath (int fd, GError **error);

/* The rule for every executable abdeploy runs as code (health hooks, the
 * custom bootloader backend): the file, and every directory on the way to
 * it from / (of its real path, and of PATH as given when that holds a
 * link), is neither world-writable nor writable by a group other than
 * root's, and, when this process runs as root, is owned by root. A
 * world- or group-writable directory with the sticky bit (/tmp) is allowed:
 * there only an entry's owner may replace it. AB_FS_ERROR_UNSAFE names the
 * first offender and the command that fixes it. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_fs_check_code_path (const char *path, GError **error);
