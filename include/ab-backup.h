/* Backup and restore of everything that is not content-addressed: the
 * configuration and trusted keys (SYSROOT/etc/abdeploy), the state
 * (SYSROOT/abdeploy/state: slot records, history, transaction, verdicts),
 * the boot pointer and the refs of both slots.
 *
 * The archive is one JSON document with a manifest of SHA-256 checksums.
 * Its "format" is the layout version of the files it holds: 1 from a
 * layout-1 sysroot (what abdeploy 0.1.0 writes), 2 from a layout-2 one.
 * Restore reads both: a format-1 archive is migrated as it is restored
 * (see ab-migrate.h), and its files become the kept copy of layout 1.
 * Invariant: restore changes nothing unless the whole archive parses,
 * every checksum matches, every file has a readable format, and every
 * commit it names is in the repo. Then it is all or nothing: the verified
 * archive is kept as SYSROOT/abdeploy/restore.pending before the first
 * part is replaced and removed after the last, and while it exists every
 * abdeploy command first completes the restore from it. */
#pragma once

#include <glib.h>
#include "ab-sysroot.h"

#define AB_BACKUP_ERROR (ab_backup_error_quark ())
GQuark ab_backup_error_quark (void);

typedef enum
{
  AB_BACKUP_ERROR_FAILED,
  AB_BACKUP_ERROR_CORRUPT,
  AB_BACKUP_ERROR_MISSING_COMMITS,
} AbBackupError;

gboolean ab_backup_create (AbSysroot *sysroot, const char *output, guint *out_files,
                           GError **error);
/* Works on a sysroot whose state is wrecked: only the layout version (1 or
 * 2) and the repo must be intact. Leaves a sysroot of the current layout. */
gboolean ab_backup_restore (const char *sysroot_path, const char *path, guint *out_files,
                            GError **error);

/* The journal of an unfinished restore, in SYSROOT/abdeploy. */
#define AB_BACKUP_PENDING_NAME "restore.pending"

/* Completes a restore that was interrupted (*out_finished TRUE), or does
 * nothing when none was. While another abdeploy holds the lock (a restore
 * running now), it only warns. */
gboolean ab_backup_finish_pending (int sysroot_dfd, const char *sysroot_path,
                                   gboolean *out_finished, GError **error);
