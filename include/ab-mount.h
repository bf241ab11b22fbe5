/* A read-only sysroot made writable for one writer, in private. */
#pragma once

#include <glib.h>

#define AB_MOUNT_ERROR (ab_mount_error_quark ())
/* The error domain of ab-mount (the codes of the enum below). */
GQuark ab_mount_error_quark (void);

typedef enum
{
  AB_MOUNT_ERROR_FAILED,
  AB_MOUNT_ERROR_SUPERBLOCK_RO,
} AbMountError;

/* The booted system mounts the physical root read-only (/sysroot, a
 * read-only bind mount; see abdeploy-prepare-root).  For each of SUBPATHS
 * (relative to ROOT) whose mount is read-only, this moves the calling
 * thread into a mount namespace of its own (unshare(CLONE_NEWNS),
 * propagation private) and remounts that mount read-write there only: the
 * mount stays read-only for every other process, and the namespace ends
 * with this process.  *OUT_CHANGED is TRUE when it remounted something:
 * descriptors opened before then still refer to the read-only mount and
 * must be opened again.  A file system whose superblock is read-only (not
 * only one of its mounts) is refused with AB_MOUNT_ERROR_SUPERBLOCK_RO.
 * Call it before the process starts threads that write. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_mount_make_writable (const char *root, const char *const *subpaths,
                                 gboolean *out_changed, GError **error);

/* ab_mount_make_writable() for what a writer of the sysroot at PATH writes:
 * PATH/abdeploy (state, slots), PATH/ostree (the repo), PATH/boot. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_mount_make_sysroot_writable (const char *path, gboolean *out_changed,
                                         GError **error);
