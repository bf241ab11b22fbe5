/* The deploy operations: stage, activate, rollback. Each one takes the
 * sysroot lock.
 *
 * Order of a stage (DESIGN.md): pull and verify → mark the target slot not
 * bootable (pointer) → remove its record → build the tree beside it, swap
 * it in → install its kernel → pin its ref → syncfs → write its record.
 * activate and rollback are one pointer write each. */
#pragma once

#include <glib.h>
#include "ab-sysroot.h"
#include "ab-content.h"

#define AB_DEPLOY_ERROR (ab_deploy_error_quark ())
GQuark ab_deploy_error_quark (void);

typedef enum
{
  AB_DEPLOY_ERROR_FAILED,
  AB_DEPLOY_ERROR_NOTHING_TO_DO,
  AB_DEPLOY_ERROR_USAGE,
} AbDeployError;

typedef struct
{
  const char *source;     /* URL or path; NULL: [update] url, else local repo */
  const char *refspec;    /* REF or COMMIT */
  AbProgressFunc progress;
  gpointer progress_data;
  gboolean local_only;    /* the commit is already in the repo: never pull */
  GCancellable *cancellable;
} AbStageOptions;

/* The slot that stage writes: neither booted nor (offline) primary. */
AbSlot ab_deploy_target_slot (AbSysroot *sysroot, const AbBootPointer *ptr);

gboolean ab_deploy_stage (AbSysroot *sysroot, const AbStageOptions *opts, AbSlot *out_slot,
                          GError **error);
/* tries <= 0: the configured default. */
gboolean ab_deploy_activate (AbSysroot *sysroot, int tries, AbSlot *out_slot, GError **error);
gboolean ab_deploy_rollback (AbSysroot *sysroot, AbSlot *out_slot, GError **error);
