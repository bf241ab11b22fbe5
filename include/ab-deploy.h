/* The deploy operations: stage, activate, rollback. Each one takes the
 * sysroot lock.
 *
 * Order of a stage (the crash-safety argument; docs/internals.md has the
 * on-disk layout, the A/B invariant and the crash points): pull and verify
 * → mark the target slot not bootable (pointer) → remove its record →
 * build the tree beside it, swap it in → install its kernel → pin its ref →
 * syncfs → write its record. activate and rollback are one pointer write
 * each. */
#pragma once

#include <glib.h>
#include "ab-sysroot.h"
#include "ab-content.h"

#define AB_DEPLOY_ERROR (ab_deploy_error_quark ())
/* The error domain of ab-deploy (the codes of the enum below). */
GQuark ab_deploy_error_quark (void);

typedef enum
{
  AB_DEPLOY_ERROR_FAILED,
  AB_DEPLOY_ERROR_NOTHING_TO_DO,
  AB_DEPLOY_ERROR_USAGE,
  AB_DEPLOY_ERROR_REFUSED, /* refused by policy: the A/B invariant (exit status 6) */
  /* Nothing to do (exit status 5, like NOTHING_TO_DO): stage found the
   * commit already staged in the slot it would write, or already the
   * primary deployment. */
  AB_DEPLOY_ERROR_ALREADY_STAGED,
  AB_DEPLOY_ERROR_ALREADY_PRIMARY,
} AbDeployError;

typedef struct
{
  const char *source;     /* URL or path; NULL: [update] url, else local repo */
  const char *refspec;    /* REF or COMMIT */
  gboolean local_only;    /* the commit is already in the repo: never pull */
  /* A commit for another OS (AB_CONTENT_META_OS) makes that OS the
   * sysroot's instead of being refused: abdeploy install without --os. */
  gboolean adopt_os;
  GCancellable *cancellable;
  /* The version the slot record gets: the release's version in the signed
   * manifest, which differs from the commit's own version only for a
   * promoted release (issue 17; update checked it). NULL: the commit's. */
  const char *version;
} AbStageOptions;

/* The slot that stage writes: neither booted nor (offline) primary. */
AbSlot ab_deploy_target_slot (AbSysroot *sysroot, const AbBootPointer *ptr);

/* The A/B invariant (docs/internals.md): the slot stage would write (see
 * ab_deploy_target_slot()) is never the last good slot while the booted
 * slot has no green verdict (ab_health_booted_is_green()). Refused with
 * AB_DEPLOY_ERROR_REFUSED. Allowed offline (no booted slot), when the booted
 * slot is green, and when the target is not good (empty, staged, trial or
 * bad: overwriting it loses no good slot). The caller holds the lock; every
 * path that writes a slot comes through here (ab_deploy_stage() calls it
 * itself; update and resume call it before they download). */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_deploy_check_invariant (AbSysroot *sysroot, const AbSlotsView *snap, GError **error);
/* The same, loading the view itself (the caller holds the lock). */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_deploy_check_may_stage (AbSysroot *sysroot, GError **error);

/* Stages OPTS->refspec into the target slot. Every path that installs a
 * commit (update, stage, deploy, install, D-Bus) comes through here: the
 * commit must verify (ab_content_verify()) and be made for the sysroot's
 * OS (ab_content_check_os(), AB_CONTENT_ERROR_WRONG_OS); a commit without
 * an OS stamp (abdeploy 0.2.0) is staged with a warning. Reports to sysroot->events:
 * the phases of ab_content_pull() ("download" or "import"; none when the
 * commit is taken from the repo), "verify", "checkout" (files done out of
 * the commit's files) and "install" (kernel, ref, sync, record). */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_deploy_stage (AbSysroot *sysroot, const AbStageOptions *opts, AbSlot *out_slot,
                          GError **error);
/* Installs SLOT's kernel and boot entry where a backend with
 * AB_BOOTLOADER_CAP_INSTALLS_KERNELS keeps them (systemd-boot: the ESP), from
 * SYSROOT/boot/abdeploy/<slot>/, which ab_kernel_install() has just put in
 * place; nothing for other backends. The command line is abdeploy.slot=<slot>
 * then sysroot->config's [boot] kernel-args; the entry names sysroot->os and
 * COMMIT's version. Reads only the fields dfd, slots_dfd, boot_dfd, repo,
 * config, os and bootloader of SYSROOT (restore passes a partial view). The
 * caller holds the lock, and SLOT's pointer state is "none". Used by
 * ab_deploy_stage() and by restore for each slot it checks out again. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_deploy_install_boot_entry (AbSysroot *sysroot, AbSlot slot, const char *commit,
                                       GError **error);
/* tries <= 0: the configured default. Reports phase "activate". */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_deploy_activate (AbSysroot *sysroot, int tries, AbSlot *out_slot, GError **error);
/* Makes the other slot primary (a manual rollback) when it holds a good or
 * previously booted deployment, recording last-rollback.json and a history
 * event; AB_DEPLOY_ERROR_NOTHING_TO_DO otherwise. The rollback toggles: the
 * slot left keeps its state (never marked bad) and a trial slot stays on
 * trial, so a second rollback returns to the start. On error the pointer and
 * the history are as they were. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_deploy_rollback (AbSysroot *sysroot, AbSlot *out_slot, GError **error);
