/* Backup and restore of everything that is not content-addressed: the
 * configuration and trusted keys (SYSROOT/etc/abdeploy), the state
 * (SYSROOT/abdeploy/state: slot records, history, transaction, verdicts),
 * the layout version, the boot pointer and the refs of both slots.
 *
 * The archive is one JSON document with a manifest of SHA-256 checksums.
 * Invariant: restore changes nothing unless the whole archive parses and
 * every checksum matches, and every commit it names is in the repo. */
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

#define AB_BACKUP_FORMAT 1

gboolean ab_backup_create (AbSysroot *sysroot, const char *output, guint *out_files,
                           GError **error);
/* Works on a sysroot whose state is wrecked: only the layout version and
 * the repo must be intact. */
gboolean ab_backup_restore (const char *sysroot_path, const char *path, guint *out_files,
                            GError **error);
