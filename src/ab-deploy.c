#include "config.h"
#include "ab-deploy.h"
#include "ab-crashpoint.h"
#include "ab-etcmerge.h"
#include "ab-fetch.h"
#include "ab-fsutil.h"
#include "ab-health.h"
#include "ab-history.h"
#include "ab-kernel.h"

#include <fcntl.h>
#include <string.h>

G_DEFINE_QUARK (ab-deploy-error-quark, ab_deploy_error)

/* Everything a writer needs is loaded under the lock. */
static gboolean
lock_and_load (AbSysroot *sysroot, AbSlotsView *snap, GError **error)
{
  return ab_sysroot_lock (sysroot, error) && ab_sysroot_load_view (sysroot, snap, error);
}

static AbSlotState
state_of (const AbSlotsView *snap, AbSlot slot)
{
  return ab_slot_state_derive (snap->rec[slot], &snap->ptr, slot);
}

AbSlot
ab_deploy_target_slot (AbSysroot *sysroot, const AbBootPointer *ptr)
{
  if (sysroot->booted != AB_SLOT_NONE)
    return ab_slot_other (sysroot->booted);
  if (ptr->primary != AB_SLOT_NONE)
    return ab_slot_other (ptr->primary);
  return AB_SLOT_A;
}

static const char *
version_or_commit (const AbSlotRecord *rec)
{
  return rec->version ? rec->version : rec->commit;
}

gboolean
ab_deploy_check_invariant (AbSysroot *sysroot, const AbSlotsView *snap, GError **error)
{
  if (sysroot->booted == AB_SLOT_NONE)
    return TRUE;
  AbSlot target = ab_deploy_target_slot (sysroot, &snap->ptr);
  if (state_of (snap, target) != AB_SLOT_STATE_GOOD)
    return TRUE;
  gboolean green = FALSE;
  g_autofree char *why = NULL;
  if (!ab_health_booted_is_green (sysroot, snap, &green, &why, error))
    return FALSE;
  if (green)
    return TRUE;
  g_set_error (error, AB_DEPLOY_ERROR, AB_DEPLOY_ERROR_REFUSED,
               "Refusing to write slot %s: it holds %s, the last good deployment, and %s. "
               "Wait for the health check (abdeploy-healthcheck.service, or abdeploy "
               "health-check) to find this boot green, or confirm it by hand with abdeploy "
               "mark-good; then run this again. Nothing was changed",
               ab_slot_name (target), version_or_commit (snap->rec[target]), why);
  return FALSE;
}

gboolean
ab_deploy_check_may_stage (AbSysroot *sysroot, GError **error)
{
  g_auto(AbSlotsView) snap = { 0 };
  return ab_sysroot_load_view (sysroot, &snap, error)
         && ab_deploy_check_invariant (sysroot, &snap, error);
}

/* The deployment whose /etc the operator is living with: the booted slot,
 * or offline the primary one. */
static AbSlot
running_slot (AbSysroot *sysroot, const AbSlotsView *snap, AbSlot target)
{
  AbSlot s = ab_sysroot_running_slot (sysroot, &snap->ptr);
  if (s == AB_SLOT_NONE || s == target || snap->rec[s] == NULL)
    return AB_SLOT_NONE;
  return s;
}

static gboolean
remove_leftovers (AbSysroot *sysroot, GError **error)
{
  for (int s = 0; s < AB_N_SLOTS; s++)
    {
      g_autofree char *tmp = g_strdup_printf (".%s.new", ab_slot_name ((AbSlot) s));
      if (!ab_fs_rm_rf_at (sysroot->slots_dfd, tmp, error)
          || !ab_fs_rm_rf_at (sysroot->boot_dfd, tmp, error))
        return FALSE;
    }
  return TRUE;
}

static gboolean
nothing_to_do (GError **error, AbDeployError code, const char *fmt, const char *commit,
               AbSlot slot)
{
  g_set_error (error, AB_DEPLOY_ERROR, code, fmt, commit, ab_slot_name (slot));
  return FALSE;
}

/* Exit 5 when COMMIT is already where stage would put it, or boots next. */
static gboolean
check_not_deployed (const AbSlotsView *snap, AbSlot target, const char *commit,
                    gboolean *out_already_staged, GError **error)
{
  *out_already_staged = FALSE;
  AbSlot primary = snap->ptr.primary;
  if (primary != AB_SLOT_NONE && snap->rec[primary] != NULL
      && g_str_equal (snap->rec[primary]->commit, commit)
      && state_of (snap, primary) != AB_SLOT_STATE_BAD)
    return nothing_to_do (error, AB_DEPLOY_ERROR_ALREADY_PRIMARY,
                          "Nothing to do: commit %s is already the primary deployment (slot %s)",
                          commit, primary);
  if (snap->rec[target] != NULL && g_str_equal (snap->rec[target]->commit, commit)
      && state_of (snap, target) == AB_SLOT_STATE_STAGED)
    {
      *out_already_staged = TRUE;
      return nothing_to_do (error, AB_DEPLOY_ERROR_ALREADY_STAGED,
                            "Nothing to do: commit %s is already staged in slot %s", commit, target);
    }
  return TRUE;
}

/* Step 1 of the recipe: the bootloader must not pick TARGET while it is rebuilt. */
static gboolean
make_unbootable (AbSysroot *sysroot, AbSlotsView *snap, AbSlot target, GError **error)
{
  AbBootPointer ptr = snap->ptr;
  if (ptr.state[target] == AB_BOOT_STATE_NONE && ptr.primary != target)
    return TRUE;
  ptr.state[target] = AB_BOOT_STATE_NONE;
  ptr.tries[target] = 0;
  if (ptr.primary == target)
    ptr.primary = snap->rec[ab_slot_other (target)] ? ab_slot_other (target) : AB_SLOT_NONE;
  if (!ab_bootloader_save (sysroot->bootloader, &ptr, error))
    return FALSE;
  snap->ptr = ptr;
  ab_crash_point ("stage:unbootable");
  return TRUE;
}

/* A tree without a bootable kernel is refused before anything changes:
 * every backend boots boot/abdeploy/<slot>/vmlinuz. */
static gboolean
check_kernel (int tree_dfd, GError **error)
{
  g_autofree char *kver = ab_kernel_find (tree_dfd, error);
  if (kver != NULL)
    return TRUE;
  g_prefix_error (error, "Refusing to stage an unbootable image: ");
  return FALSE;
}

static gboolean
build_tree_in (AbSysroot *sysroot, const AbSlotsView *snap, AbSlot target, const char *commit,
               const char *tmp, GCancellable *cancellable, GError **error)
{
  ab_event_phase (sysroot->events, "checkout");
  if (!ab_content_checkout (sysroot->repo, commit, sysroot->slots_dfd, tmp, sysroot->events,
                            cancellable, error))
    return FALSE;
  ab_crash_point ("stage:checked-out");
  ab_autofd new_dfd = ab_fs_opendir_at (sysroot->slots_dfd, tmp, error);
  if (new_dfd < 0 || !check_kernel (new_dfd, error))
    return FALSE;
  AbSlot running = running_slot (sysroot, snap, target);
  ab_autofd old_dfd = -1;
  if (running != AB_SLOT_NONE
      && (old_dfd = ab_fs_opendir_at (sysroot->slots_dfd, ab_slot_name (running), error)) < 0)
    return FALSE;
  if (!ab_etc_merge (old_dfd, new_dfd, error))
    return FALSE;
  ab_crash_point ("stage:etc-merged");
  return TRUE;
}

/* Builds the tree beside the slot; a failed or cancelled build leaves
 * nothing. It runs before the target slot is made unbootable, so a refused
 * image (no bootable kernel, an /etc conflict) changes nothing at all. */
static gboolean
build_tree (AbSysroot *sysroot, const AbSlotsView *snap, AbSlot target, const char *commit,
            GCancellable *cancellable, GError **error)
{
  g_autofree char *tmp = g_strdup_printf (".%s.new", ab_slot_name (target));
  if (build_tree_in (sysroot, snap, target, commit, tmp, cancellable, error))
    return TRUE;
  AB_IGNORE_RESULT (ab_fs_rm_rf_at (sysroot->slots_dfd, tmp, NULL));
  return FALSE;
}

static gboolean
swap_tree (AbSysroot *sysroot, AbSlot target, GError **error)
{
  const char *name = ab_slot_name (target);
  g_autofree char *tmp = g_strdup_printf (".%s.new", name);
  if (ab_fs_exists_at (sysroot->slots_dfd, name))
    {
      if (!ab_fs_exchange_at (sysroot->slots_dfd, tmp, name, error))
        return FALSE;
    }
  else if (!ab_fs_rename_at (sysroot->slots_dfd, tmp, name, error))
    return FALSE;
  ab_crash_point ("stage:swapped");
  return ab_fs_rm_rf_at (sysroot->slots_dfd, tmp, error)
         && ab_fs_fsync_dir_at (sysroot->slots_dfd, ".", error);
}

static gboolean
install_kernel (AbSysroot *sysroot, AbSlot target, GError **error)
{
  ab_autofd dfd = ab_fs_opendir_at (sysroot->slots_dfd, ab_slot_name (target), error);
  return dfd >= 0 && ab_kernel_install (dfd, sysroot->boot_dfd, target, error);
}

/* The kernel command line of SLOT's boot entry: abdeploy.slot= first,
 * then [boot] kernel-args. */
static char *
entry_kernel_args (AbSysroot *sysroot, AbSlot slot)
{
  const char *extra = sysroot->config->boot.kernel_args;
  return g_strdup_printf ("abdeploy.slot=%s%s%s", ab_slot_name (slot), extra ? " " : "",
                          extra ? extra : "");
}

gboolean
ab_deploy_install_boot_entry (AbSysroot *sysroot, AbSlot slot, const char *commit,
                              GError **error)
{
  if (!ab_bootloader_has_cap (sysroot->bootloader, AB_BOOTLOADER_CAP_INSTALLS_KERNELS))
    return TRUE;
  const char *name = ab_slot_name (slot);
  ab_autofd tree = ab_fs_opendir_at (sysroot->slots_dfd, name, error);
  g_autofree char *kver = tree >= 0 ? ab_kernel_find (tree, error) : NULL;
  if (kver == NULL)
    return FALSE;
  g_autofree char *kernel = g_strdup_printf ("%s/vmlinuz", name);
  g_autofree char *initramfs = g_strdup_printf ("%s/initramfs.img", name);
  g_autofree char *args = entry_kernel_args (sysroot, slot);
  g_autofree char *version = ab_content_commit_version (sysroot->repo, commit, NULL);
  AbBootEntry entry = {
    .slot = slot,
    .boot_dfd = sysroot->boot_dfd,
    .kernel = kernel,
    .initramfs = ab_fs_exists_at (sysroot->boot_dfd, initramfs) ? initramfs : NULL,
    .kver = kver,
    .kernel_args = args,
    .os = sysroot->os,
    .version = version,
  };
  return ab_bootloader_install_entry (sysroot->bootloader, &entry, error);
}

/* TARGET is still "none" in the pointer, so the bootloader cannot pick the
 * entry while it is written. */
static gboolean
install_boot_entry (AbSysroot *sysroot, AbSlot target, const char *commit, GError **error)
{
  if (!ab_deploy_install_boot_entry (sysroot, target, commit, error))
    return FALSE;
  ab_crash_point ("stage:entry-installed");
  return TRUE;
}

static gboolean
pin_ref (AbSysroot *sysroot, AbSlot target, const char *commit, GError **error)
{
  g_autofree char *ref = g_strdup_printf ("abdeploy/slot/%s", ab_slot_name (target));
  return ab_content_set_ref (sysroot->repo, ref, commit, error);
}

/* The record and its history event, all or nothing under a full disk. */
static gboolean
save_record_with_event (AbSysroot *sysroot, AbSlot slot, const AbSlotRecord *rec,
                        JsonBuilder *ev, GError **error)
{
  g_autofree char *name = ab_slot_record_file (slot);
  g_autofree char *json = ab_slot_record_to_json (rec, sysroot->state_format);
  return ab_history_append_with (sysroot->state_dfd, sysroot->state_format, sysroot->events,
                                 ev, name, json, error);
}

static gboolean
write_record (AbSysroot *sysroot, AbSlot target, const char *commit, const char *source,
              const AbStageOptions *opts, GError **error)
{
  const char *refspec = opts->refspec;
  g_autoptr(AbSlotRecord) rec = g_new0 (AbSlotRecord, 1);
  rec->commit = g_strdup (commit);
  rec->version = opts->version ? g_strdup (opts->version)
                               : ab_content_commit_version (sysroot->repo, commit, NULL);
  rec->deployed_at = ab_now_iso8601 ();
  /* slot records and history are world-readable: no credentials */
  rec->origin = source ? ab_fetch_redact_url (source) : NULL;
  rec->ref = ab_is_commit_checksum (refspec) ? NULL : g_strdup (refspec);
  g_autoptr(JsonBuilder) ev = ab_history_event_begin ("deploy");
  ab_json_add_string (ev, "slot", ab_slot_name (target));
  ab_json_add_string (ev, "version", rec->version);
  ab_json_add_string (ev, "commit", commit);
  ab_json_add_string (ev, "origin", rec->origin);
  if (!save_record_with_event (sysroot, target, rec, ev, error))
    return FALSE;
  ab_crash_point ("stage:recorded");
  return TRUE;
}

static gboolean
fetch_commit (AbSysroot *sysroot, const AbStageOptions *opts, const char **out_source,
              char **out_commit, GError **error)
{
  const char *source = opts->source ? opts->source : sysroot->config->update.url;
  if (opts->local_only)
    source = NULL;
  *out_source = source;
  if (source != NULL)
    {
      const char *ca = sysroot->config->update.ca_file;
      AbPullLimits limits;
      ab_content_limits_init (&limits, sysroot->config);
      return ab_content_pull (sysroot->repo, sysroot->root, source, opts->refspec,
                              sysroot->events, ca, &limits, opts->cancellable, out_commit,
                              error);
    }
  return ab_content_resolve (sysroot->repo, opts->refspec, out_commit, error);
}

/* COMMIT is made for the sysroot's OS; a commit without the stamp is
 * published by abdeploy 0.2.0 or by ostree itself (N-1): taken, with a
 * warning, since its signature already verified. */
static gboolean
check_os (AbSysroot *sysroot, const AbStageOptions *opts, const char *commit, GError **error)
{
  g_autofree char *os = NULL;
  g_autoptr(GError) local = NULL;
  if (ab_content_check_os (sysroot->repo, commit, sysroot->os, &os, &local))
    {
      if (os == NULL)
        ab_event_warning (sysroot->events, "commit %s names no OS (no " AB_CONTENT_META_OS
                          " metadata: published by abdeploy 0.2.0 or ostree commit); staging it "
                          "for this device's OS \"%s\" unchecked", commit, sysroot->os);
      return TRUE;
    }
  if (opts->adopt_os && os != NULL)
    return ab_sysroot_set_os (sysroot, os, error);
  g_propagate_error (error, g_steal_pointer (&local));
  return FALSE;
}

gboolean
ab_deploy_stage (AbSysroot *sysroot, const AbStageOptions *opts, AbSlot *out_slot,
                 GError **error)
{
  g_auto(AbSlotsView) snap = { 0 };
  if (!lock_and_load (sysroot, &snap, error))
    return FALSE;
  AbSlot target = ab_deploy_target_slot (sysroot, &snap.ptr);
  *out_slot = target;
  if (!ab_deploy_check_invariant (sysroot, &snap, error))
    return FALSE;
  const char *source = NULL;
  g_autofree char *commit = NULL;
  /* The pull writes without fsync: its objects reach the disk (syncfs)
   * before anything is built from them, or a power cut later in the stage
   * leaves empty objects that every later stage reads as present (and
   * refuses). No pointer backend may be relied on for it: systemd-boot's
   * lives on another file system. */
  if (!fetch_commit (sysroot, opts, &source, &commit, error) || !ab_fs_syncfs (sysroot->dfd, error))
    return FALSE;
  ab_event_phase (sysroot->events, "verify");
  if (!ab_content_verify (sysroot->repo, sysroot->root, commit, error)
      || !check_os (sysroot, opts, commit, error)
      || g_cancellable_set_error_if_cancelled (opts->cancellable, error))
    return FALSE;
  ab_crash_point ("stage:verified");
  gboolean already_staged = FALSE;
  if (!check_not_deployed (&snap, target, commit, &already_staged, error))
    return FALSE;
  if (!remove_leftovers (sysroot, error)
      || !build_tree (sysroot, &snap, target, commit, opts->cancellable, error))
    return FALSE;
  ab_event_phase (sysroot->events, "install");
  return make_unbootable (sysroot, &snap, target, error)
         && ab_slot_record_remove (sysroot->state_dfd, target, error)
         && swap_tree (sysroot, target, error)
         && install_kernel (sysroot, target, error)
         && install_boot_entry (sysroot, target, commit, error)
         && pin_ref (sysroot, target, commit, error)
         && ab_fs_syncfs (sysroot->dfd, error)
         && write_record (sysroot, target, commit, source, opts, error);
}

static AbSlot
find_staged (AbSysroot *sysroot, const AbSlotsView *snap)
{
  AbSlot target = ab_deploy_target_slot (sysroot, &snap->ptr);
  if (state_of (snap, target) == AB_SLOT_STATE_STAGED)
    return target;
  AbSlot other = ab_slot_other (target);
  if (other != sysroot->booted && state_of (snap, other) == AB_SLOT_STATE_STAGED)
    return other;
  return AB_SLOT_NONE;
}

static gboolean
stamp_activated (AbSysroot *sysroot, AbSlotsView *snap, AbSlot slot, GError **error)
{
  AbSlotRecord *rec = snap->rec[slot];
  g_free (rec->activated_at);
  rec->activated_at = ab_now_iso8601 ();
  g_autoptr(JsonBuilder) ev = ab_history_event_begin ("activate");
  ab_json_add_string (ev, "slot", ab_slot_name (slot));
  ab_json_add_string (ev, "version", rec->version);
  ab_json_add_string (ev, "commit", rec->commit);
  json_builder_set_member_name (ev, "tries");
  json_builder_add_int_value (ev, snap->ptr.tries[slot]);
  return save_record_with_event (sysroot, slot, rec, ev, error);
}

gboolean
ab_deploy_activate (AbSysroot *sysroot, int tries, AbSlot *out_slot, GError **error)
{
  g_auto(AbSlotsView) snap = { 0 };
  if (!lock_and_load (sysroot, &snap, error))
    return FALSE;
  ab_event_phase (sysroot->events, "activate");
  AbSlot slot = find_staged (sysroot, &snap);
  *out_slot = slot;
  if (slot == AB_SLOT_NONE)
    {
      g_set_error (error, AB_DEPLOY_ERROR, AB_DEPLOY_ERROR_NOTHING_TO_DO,
                   "Nothing to activate: no slot holds a staged deployment; run abdeploy stage first");
      return FALSE;
    }
  if (!ab_kernel_check_installed (sysroot->boot_dfd, slot, error))
    return FALSE;
  AbBootPointer ptr = snap.ptr;
  ptr.primary = slot;
  ptr.state[slot] = AB_BOOT_STATE_TRIAL;
  ptr.tries[slot] = tries > 0 ? tries : (int) sysroot->config->boot.tries;
  if (!ab_bootloader_save (sysroot->bootloader, &ptr, error))
    return FALSE;
  ab_crash_point ("activate:flipped");
  AbBootPointer old = snap.ptr;
  snap.ptr = ptr;
  if (stamp_activated (sysroot, &snap, slot, error))
    return TRUE;
  /* The activation could not be recorded (a full disk, an I/O error):
   * the old pointer goes back, so that a command that failed changed
   * nothing. Its write frees what the failed record took, so it fits. */
  AB_IGNORE_RESULT (ab_bootloader_save (sysroot->bootloader, &old, NULL));
  return FALSE;
}

/* A slot may become primary again when it is known good, was booted
 * before, or was activated before and not found bad. */
static gboolean
can_roll_back_to (AbSysroot *sysroot, const AbSlotsView *snap, AbSlot slot)
{
  AbSlotState st = state_of (snap, slot);
  if (st == AB_SLOT_STATE_GOOD || (slot == sysroot->booted && snap->rec[slot] != NULL))
    return TRUE;
  return st == AB_SLOT_STATE_TRIAL || (st == AB_SLOT_STATE_STAGED && snap->rec[slot]->activated_at);
}

/* A trial slot the rollback leaves or goes to keeps its trial and at least
 * one try: with none left it would not be booted at all, and systemd-boot
 * reads a counter of +0 on a slot that is not primary as bad. */
static void
keep_trial_bootable (AbBootPointer *ptr, AbSlot slot)
{
  if (ptr->state[slot] == AB_BOOT_STATE_TRIAL && ptr->tries[slot] < 1)
    ptr->tries[slot] = 1;
}

/* The pointer after a manual rollback to TO: only the primary changes, so
 * that a second rollback returns to the start (as rpm-ostree rollback).
 * Invariants: the slot left keeps its state (it is the previous deployment,
 * bootable by another rollback; only a red verdict or mark-bad makes a slot
 * bad); a trial slot stays on trial (a rollback is no verdict, so it never
 * marks a slot good); the booted slot, when it is not on trial, becomes good
 * (it runs now: the operator chose it), and a slot without a pointer state
 * that was activated before gets a new trial. */
static AbBootPointer
toggled_pointer (AbSysroot *sysroot, const AbBootPointer *old, AbSlot to)
{
  AbBootPointer ptr = *old;
  ptr.primary = to;
  if (to == sysroot->booted && ptr.state[to] != AB_BOOT_STATE_TRIAL)
    ptr.state[to] = AB_BOOT_STATE_GOOD;
  else if (ptr.state[to] == AB_BOOT_STATE_NONE)
    {
      ptr.state[to] = AB_BOOT_STATE_TRIAL;
      ptr.tries[to] = (int) sysroot->config->boot.tries;
    }
  keep_trial_bootable (&ptr, to);
  keep_trial_bootable (&ptr, ab_slot_other (to));
  return ptr;
}

gboolean
ab_deploy_rollback (AbSysroot *sysroot, AbSlot *out_slot, GError **error)
{
  g_auto(AbSlotsView) snap = { 0 };
  /* A rollback must work on a damaged sysroot: a damaged record is read as
   * an empty slot (never rolled back to), a damaged history is set aside. */
  sysroot->tolerate_damage = TRUE;
  if (!lock_and_load (sysroot, &snap, error))
    return FALSE;
  AbSlot from = snap.ptr.primary;
  AbSlot to = ab_slot_other (from);
  *out_slot = to;
  if (from == AB_SLOT_NONE || snap.rec[to] == NULL || !can_roll_back_to (sysroot, &snap, to))
    {
      g_set_error (error, AB_DEPLOY_ERROR, AB_DEPLOY_ERROR_NOTHING_TO_DO,
                   "Nothing to roll back to: the other slot%s%s holds no good or previously "
                   "booted deployment", to != AB_SLOT_NONE ? " " : "",
                   to != AB_SLOT_NONE ? ab_slot_name (to) : "");
      return FALSE;
    }
  AbRollbackInfo info = {
    .from_slot = ab_slot_name (from),
    .to_slot = ab_slot_name (to),
    .from_version = snap.rec[from] ? snap.rec[from]->version : NULL,
    .to_version = snap.rec[to]->version,
    .from_commit = snap.rec[from] ? snap.rec[from]->commit : NULL,
    .to_commit = snap.rec[to]->commit,
    .reason = "manual rollback by the operator",
    .kind = "manual",
  };
  g_auto(AbHistoryKept) kept = { 0 };
  if (!ab_kernel_check_installed (sysroot->boot_dfd, to, error)
      || !ab_history_keep (sysroot->state_dfd, &kept, error)
      || !ab_history_record_rollback (sysroot->state_dfd, sysroot->state_format, sysroot->events,
                                      &info, error))
    return FALSE;
  AbBootPointer ptr = toggled_pointer (sysroot, &snap.ptr, to);
  if (!ab_bootloader_save (sysroot->bootloader, &ptr, error))
    {
      ab_history_put_back (sysroot->state_dfd, &kept);
      return FALSE;
    }
  ab_crash_point ("rollback:flipped");
  return TRUE;
}
