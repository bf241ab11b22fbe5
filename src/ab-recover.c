/* The recovery step (ab-recover.h). */
#include "config.h"
#include "ab-recover.h"
#include "ab-backup.h"
#include "ab-fsutil.h"

gboolean
ab_recover (AbSysroot *sysroot, AbRecovery *out, GError **error)
{
  *out = AB_RECOVERY_NONE;
  if (!ab_fs_exists_at (sysroot->dfd, "abdeploy/" AB_SYSROOT_RESTORE_JOURNAL))
    return TRUE;
  gboolean finished = FALSE;
  if (!ab_sysroot_lock_for_recovery (sysroot, error)
      || !ab_backup_finish_pending (sysroot->dfd, sysroot->path, sysroot->lock_fd, &finished,
                                    error))
    return FALSE;
  sysroot->restore_pending = FALSE;
  if (!finished)
    return TRUE;
  *out = AB_RECOVERY_RESTORE_COMPLETED;
  return ab_sysroot_reload (sysroot, error);
}
