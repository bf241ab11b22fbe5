/* The recovery step of the engine: what a writer does first.
 *
 * An interrupted operation that must be completed before anything else
 * changes the sysroot is completed here, explicitly, by the front end (the
 * CLI for every command that writes, the daemon before each writing
 * method), never as a side effect of opening or locking the sysroot.
 * Today that is a restore whose journal (abdeploy/restore.pending) is
 * there: it is completed from the journal, the verified archive.
 *
 * Invariants:
 * - Readers never recover: a reader only notes the journal
 *   (AbSysroot.restore_pending).
 * - ab_sysroot_lock() refuses a writer while the journal is there
 *   (AB_SYSROOT_ERROR_RECOVERY_NEEDED), so nothing writes into a half
 *   restored sysroot, whoever the front end is. */
#pragma once

#include <glib.h>
#include "ab-sysroot.h"

typedef enum
{
  AB_RECOVERY_NONE,              /* nothing was interrupted */
  AB_RECOVERY_RESTORE_COMPLETED, /* an interrupted restore was completed */
} AbRecovery;

/* Completes what was interrupted in SYSROOT (see above) and reports what in
 * *OUT. When there is something to recover, takes the sysroot's lock
 * (ab_sysroot_lock_for_recovery()), completes it, reads the sysroot again
 * (ab_sysroot_reload()) and keeps the lock for the writer that follows. A
 * journal that does not verify is refused (AB_BACKUP_ERROR_PENDING) and
 * left as it is, as is the sysroot. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_recover (AbSysroot *sysroot, AbRecovery *out, GError **error);
