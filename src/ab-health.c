#include "config.h"
#include "ab-json.h"
#include "ab-health.h"
#include "ab-crashpoint.h"
#include "ab-fsutil.h"
#include "ab-history.h"
#include "ab-hooks.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

G_DEFINE_QUARK (ab-health-error-quark, ab_health_error)

#define VERDICT_FILE "verdict.json"
#define MOTD_DIR "run/motd.d"
#define MOTD_NAME "abdeploy"
#define MOTD_GREENBOOT_NAME "boot-status"

typedef struct
{
  AbSlotsView v;
  AbSlot booted;
  char *rollback_line; /* MOTD line when this boot rolled back */
} Boot;

static void
boot_clear (Boot *b)
{
  ab_slots_view_clear (&b->v);
  g_clear_pointer (&b->rollback_line, g_free);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Boot, boot_clear)

void
ab_health_outcome_clear (AbHealthOutcome *o)
{
  g_clear_pointer (&o->reboot_command, g_free);
  g_clear_pointer (&o->report, json_node_unref);
  g_clear_pointer (&o->rollback, json_node_unref);
}

static const char *
hold_name (AbHealthHold held)
{
  static const char *const names[] = {
    [AB_HEALTH_HOLD_NONE] = NULL,
    [AB_HEALTH_HOLD_NO_REBOOT] = "no-reboot",
    [AB_HEALTH_HOLD_NOT_LIVE] = "not-live",
  };
  return (guint) held < G_N_ELEMENTS (names) ? names[held] : NULL;
}

/* A copy of OBJECT's members except "type" and "format" (record keeping,
 * not part of what a front end shows). */
static void
add_members_of (JsonBuilder *b, JsonNode *node)
{
  JsonObject *o = node && JSON_NODE_HOLDS_OBJECT (node) ? json_node_get_object (node) : NULL;
  g_autoptr(GList) names = o ? json_object_get_members (o) : NULL;
  for (GList *l = names; l; l = l->next)
    if (!g_str_equal (l->data, "type") && !g_str_equal (l->data, "format"))
      {
        json_builder_set_member_name (b, l->data);
        json_builder_add_value (b, json_node_copy (json_object_get_member (o, l->data)));
      }
}

JsonNode *
ab_health_outcome_to_json (const AbHealthOutcome *o)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  add_members_of (b, o->report);
  json_builder_set_member_name (b, "reboot");
  json_builder_begin_object (b);
  ab_json_add_boolean (b, "wanted", o->verdict == AB_HEALTH_VERDICT_REBOOT
                                    || o->verdict == AB_HEALTH_VERDICT_ROLLBACK);
  ab_json_add_string (b, "held", hold_name (o->held));
  ab_json_add_string (b, "command", o->reboot_command);
  json_builder_end_object (b);
  json_builder_set_member_name (b, "rollback");
  if (o->rollback)
    {
      json_builder_begin_object (b);
      add_members_of (b, o->rollback);
      json_builder_end_object (b);
    }
  else
    json_builder_add_null_value (b);
  json_builder_end_object (b);
  return json_builder_get_root (b);
}

const char *
ab_health_verdict_name (AbHealthVerdict verdict)
{
  static const char *const names[] = {
    [AB_HEALTH_VERDICT_NONE] = "none",
    [AB_HEALTH_VERDICT_MARKED_GOOD] = "marked-good",
    [AB_HEALTH_VERDICT_REBOOT] = "reboot",
    [AB_HEALTH_VERDICT_ROLLBACK] = "rollback",
  };
  g_return_val_if_fail ((guint) verdict < G_N_ELEMENTS (names), "none");
  return names[verdict];
}

static const char *
version_of (const Boot *b, AbSlot slot)
{
  if (slot == AB_SLOT_NONE || b->v.rec[slot] == NULL)
    return NULL;
  return b->v.rec[slot]->version ? b->v.rec[slot]->version : b->v.rec[slot]->commit;
}

static const char *
commit_of (const Boot *b, AbSlot slot)
{
  return slot != AB_SLOT_NONE && b->v.rec[slot] ? b->v.rec[slot]->commit : NULL;
}

/* The MOTD holds hook names and versions: text from outside, sanitized
 * like the state files. It is written twice, each file atomically: as
 * run/motd.d/abdeploy, and where greenboot writes it
 * (run/motd.d/boot-status), so that a system set up for greenboot shows it. */
static gboolean
write_motd (AbSysroot *sysroot, const char *text, GError **error)
{
  if (!ab_fs_mkdir_p_at (sysroot->dfd, MOTD_DIR, 0755, error))
    return FALSE;
  g_autofree char *clean = ab_json_sanitize (text, -1, 0, FALSE);
  ab_autofd dfd = ab_fs_opendir_at (sysroot->dfd, MOTD_DIR, error);
  const AbFsWrite files[] = {
    { MOTD_NAME, clean, strlen (clean), 0644 },
    { MOTD_GREENBOOT_NAME, clean, strlen (clean), 0644 },
  };
  return dfd >= 0 && ab_fs_replace_all_at (dfd, files, G_N_ELEMENTS (files), error);
}

/* The failed hooks of the last verdict recorded for SLOT, comma-separated, or NULL. */
static char *
last_failed_hooks_of (AbSysroot *sysroot, AbSlot slot)
{
  g_autoptr(JsonNode) root = NULL;
  if (!ab_format_read_state_at (sysroot->state_dfd, VERDICT_FILE, &root, NULL, NULL) || root == NULL)
    return NULL;
  JsonObject *o = json_node_get_object (root);
  if (g_strcmp0 (ab_json_get_string (o, "slot", ""), ab_slot_name (slot)) != 0
      || g_strcmp0 (ab_json_get_string (o, "verdict", ""), "red") != 0)
    return NULL;
  JsonArray *failed = ab_json_get_array (o, "failed_hooks");
  g_autoptr(GString) s = g_string_new (NULL);
  for (guint i = 0; failed && i < json_array_get_length (failed); i++)
    g_string_append_printf (s, "%s%s", i ? ", " : "", ab_json_array_get_string (failed, i, "?"));
  return s->len ? g_string_free (g_steal_pointer (&s), FALSE) : NULL;
}

static char *
rollback_line (const char *from_version, const char *to_version, const char *reason)
{
  g_autofree char *line = g_strdup_printf ("ROLLED BACK from %s to %s: %s",
                                           from_version ? from_version : "(unknown)",
                                           to_version ? to_version : "(unknown)",
                                           reason ? reason : "");
  return ab_json_sanitize (line, -1, 0, FALSE);
}

/* The MOTD line of the last rollback while its outcome still stands: it
 * brought the system to the booted slot (same commit) and the slot it left
 * is still bad.  Without it, the boot after a rollback that health-check did
 * itself would only say GREEN, and nobody logging in could tell that the
 * update was undone.  A new deploy or a mark-good of that slot ends it. */
static char *
standing_rollback_line (AbSysroot *sysroot, const Boot *b)
{
  g_autoptr(JsonNode) root = NULL;
  if (!ab_history_load_last_rollback (sysroot->state_dfd, sysroot->events,
                                      &root, NULL) || root == NULL
      || !JSON_NODE_HOLDS_OBJECT (root))
    return NULL;
  JsonObject *o = json_node_get_object (root);
  AbSlot from = ab_slot_from_name (ab_json_get_string (o, "from_slot", NULL));
  AbSlot to = ab_slot_from_name (ab_json_get_string (o, "to_slot", NULL));
  if (from == AB_SLOT_NONE || to != b->booted || b->v.ptr.state[from] != AB_BOOT_STATE_BAD
      || g_strcmp0 (ab_json_get_string (o, "to_commit", NULL),
                    commit_of (b, to)) != 0)
    return NULL;
  return rollback_line (ab_json_get_string (o, "from_version", NULL),
                        ab_json_get_string (o, "to_version", NULL),
                        ab_json_get_string (o, "reason", NULL));
}

static gboolean
record_rollback (AbSysroot *sysroot, Boot *b, AbSlot from, AbSlot to, const char *kind,
                 const char *reason, GError **error)
{
  AbRollbackInfo info = {
    .from_slot = ab_slot_name (from),
    .to_slot = ab_slot_name (to),
    .from_version = version_of (b, from),
    .to_version = version_of (b, to),
    .from_commit = commit_of (b, from),
    .to_commit = commit_of (b, to),
    .reason = reason,
    .kind = kind,
  };
  if (!ab_history_record_rollback (sysroot->state_dfd, sysroot->state_format, sysroot->events,
                                   &info, error))
    return FALSE;
  g_free (b->rollback_line);
  b->rollback_line = rollback_line (info.from_version, info.to_version, reason);
  ab_event_message (sysroot->events, "%s", b->rollback_line);
  ab_crash_point ("health:rollback-recorded");
  return TRUE;
}

/* A rollback recorded for this very activation of FROM (the last record
 * names its commit and is not older than the activation) must not be
 * recorded again: the process was killed between recording and flipping. */
static gboolean
rollback_already_recorded (AbSysroot *sysroot, const Boot *b, AbSlot from)
{
  g_autoptr(JsonNode) last = NULL;
  if (!ab_history_load_last_rollback (sysroot->state_dfd, sysroot->events,
                                      &last, NULL) || last == NULL
      || !JSON_NODE_HOLDS_OBJECT (last) || b->v.rec[from] == NULL)
    return FALSE;
  JsonObject *o = json_node_get_object (last);
  const char *commit = ab_json_get_string (o, "from_commit", NULL);
  const char *at = ab_json_get_string (o, "at", NULL);
  const char *activated = b->v.rec[from]->activated_at;
  return g_strcmp0 (commit, b->v.rec[from]->commit) == 0
         && g_strcmp0 (ab_json_get_string (o, "to_slot", NULL),
                       ab_slot_name (b->booted)) == 0
         && at != NULL && (activated == NULL || g_strcmp0 (at, activated) >= 0);
}

static gboolean
record_fallback (AbSysroot *sysroot, Boot *b, AbSlot primary, GError **error)
{
  g_autofree char *hooks = last_failed_hooks_of (sysroot, primary);
  g_autofree char *reason = hooks
      ? g_strdup_printf ("slot %s failed its health check on every trial boot (failed: %s)",
                         ab_slot_name (primary), hooks)
      : g_strdup_printf ("slot %s did not come up within its trial boots; the bootloader fell back",
                         ab_slot_name (primary));
  return record_rollback (sysroot, b, primary, b->booted, "fallback", reason, error);
}

/* The bootloader fell back on its own: the primary was in trial and a
 * different slot booted. */
static gboolean
handle_fallback (AbSysroot *sysroot, Boot *b, GError **error)
{
  AbSlot primary = b->v.ptr.primary;
  /* Tries left means the bootloader has not given up on the primary yet:
   * the machine simply has not rebooted since the activation. */
  if (primary == AB_SLOT_NONE || primary == b->booted
      || b->v.ptr.state[primary] != AB_BOOT_STATE_TRIAL || b->v.ptr.tries[primary] > 0)
    return TRUE;
  if (rollback_already_recorded (sysroot, b, primary))
    ab_event_message (sysroot->events,
                      "The rollback from slot %s was recorded before an interruption; completing it",
                      ab_slot_name (primary));
  else if (!record_fallback (sysroot, b, primary, error))
    return FALSE;
  b->v.ptr.state[primary] = AB_BOOT_STATE_BAD;
  b->v.ptr.tries[primary] = 0;
  b->v.ptr.primary = b->booted;
  b->v.ptr.state[b->booted] = AB_BOOT_STATE_GOOD;
  b->v.ptr.tries[b->booted] = 0;
  if (!ab_bootloader_save (sysroot->bootloader, &b->v.ptr, error))
    return FALSE;
  ab_crash_point ("health:fallback-flipped");
  return TRUE;
}

static gboolean
is_trial_boot (const Boot *b)
{
  return b->v.ptr.primary == b->booted && b->v.ptr.state[b->booted] == AB_BOOT_STATE_TRIAL;
}

static char **
hook_env (AbSysroot *sysroot, const Boot *b)
{
  char **env = g_get_environ ();
  const char *slot = ab_slot_name (b->booted);
  g_autofree char *tries = g_strdup_printf ("%d", b->v.ptr.tries[b->booted]);
  env = g_environ_setenv (env, "ABDEPLOY_SLOT", slot, TRUE);
  env = g_environ_setenv (env, "ABDEPLOY_VERSION", b->v.rec[b->booted] && b->v.rec[b->booted]->version ? b->v.rec[b->booted]->version : "", TRUE);
  env = g_environ_setenv (env, "ABDEPLOY_COMMIT", commit_of (b, b->booted) ? commit_of (b, b->booted) : "", TRUE);
  env = g_environ_setenv (env, "ABDEPLOY_TRIAL", is_trial_boot (b) ? "1" : "0", TRUE);
  env = g_environ_setenv (env, "ABDEPLOY_TRIES_LEFT", tries, TRUE);
  env = g_environ_setenv (env, "ABDEPLOY_SYSROOT", sysroot->root, TRUE);
  return env;
}

static char *
hook_root (AbSysroot *sysroot, AbSlot booted)
{
  if (g_str_equal (sysroot->root, "/"))
    return g_strdup ("/");
  return g_build_filename (sysroot->root, "abdeploy/slots", ab_slot_name (booted), NULL);
}

static gboolean
is_live_root (AbSysroot *sysroot)
{
  return g_str_equal (sysroot->root, "/");
}

static GPtrArray *
failed_names (GPtrArray *results, AbHookStage stage)
{
  GPtrArray *names = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < results->len; i++)
    {
      AbHookResult *r = results->pdata[i];
      if (r->stage == stage && r->result != AB_HOOK_PASS)
        g_ptr_array_add (names, g_strdup (r->name));
    }
  return names;
}

static char *
join_names (GPtrArray *names)
{
  g_autoptr(GString) s = g_string_new (NULL);
  for (guint i = 0; i < names->len; i++)
    g_string_append_printf (s, "%s%s", i ? ", " : "", (char *) names->pdata[i]);
  return g_string_free (g_steal_pointer (&s), FALSE);
}

/* Decides what a red verdict does to the pointer (*OUT). */
static gboolean
decide_red (AbSysroot *sysroot, Boot *b, gboolean trial, GPtrArray *failed,
            AbHealthVerdict *out, GError **error)
{
  *out = AB_HEALTH_VERDICT_NONE;
  if (!trial || sysroot->config->health.on_red == AB_CONFIG_ON_RED_NONE)
    return TRUE;
  AbSlot other = ab_slot_other (b->booted);
  gboolean immediate = sysroot->config->health.on_red == AB_CONFIG_ON_RED_ROLLBACK;
  if (!immediate && b->v.ptr.tries[b->booted] > 0)
    {
      *out = AB_HEALTH_VERDICT_REBOOT;
      return TRUE;
    }
  if (b->v.rec[other] == NULL || !ab_boot_pointer_bootable (&b->v.ptr, other))
    {
      ab_event_warning (sysroot->events, "slot %s failed its health check, but slot %s holds "
                        "nothing bootable to roll back to", ab_slot_name (b->booted),
                        ab_slot_name (other));
      return TRUE;
    }
  g_autofree char *hooks = join_names (failed);
  g_autofree char *reason = g_strdup_printf ("slot %s failed its health check%s (failed: %s)",
                                             ab_slot_name (b->booted),
                                             immediate ? "" : " on every trial boot", hooks);
  if (!record_rollback (sysroot, b, b->booted, other, "health", reason, error))
    return FALSE;
  b->v.ptr.state[b->booted] = AB_BOOT_STATE_BAD;
  b->v.ptr.tries[b->booted] = 0;
  b->v.ptr.primary = other;
  if (!ab_bootloader_save (sysroot->bootloader, &b->v.ptr, error))
    return FALSE;
  ab_crash_point ("health:rollback-flipped");
  *out = AB_HEALTH_VERDICT_ROLLBACK;
  return TRUE;
}

static gboolean
decide_green (AbSysroot *sysroot, Boot *b, gboolean trial, AbHealthVerdict *out, GError **error)
{
  *out = AB_HEALTH_VERDICT_NONE;
  if (!trial)
    return TRUE;
  b->v.ptr.state[b->booted] = AB_BOOT_STATE_GOOD;
  b->v.ptr.tries[b->booted] = 0;
  if (!ab_bootloader_save (sysroot->bootloader, &b->v.ptr, error))
    return FALSE;
  ab_crash_point ("health:blessed");
  *out = AB_HEALTH_VERDICT_MARKED_GOOD;
  return TRUE;
}

static gboolean
write_verdict (AbSysroot *sysroot, const Boot *b, gboolean green, gboolean trial,
               GPtrArray *results, const char *action, JsonNode **out_report, GError **error)
{
  g_autoptr(GPtrArray) failed = failed_names (results, AB_HOOK_STAGE_REQUIRED);
  g_autoptr(GPtrArray) warnings = failed_names (results, AB_HOOK_STAGE_WANTED);
  g_autoptr(JsonBuilder) jb = ab_history_event_begin ("verdict");
  json_builder_set_member_name (jb, "format");
  json_builder_add_int_value (jb, sysroot->state_format);
  ab_json_add_string (jb, "slot", ab_slot_name (b->booted));
  ab_json_add_string (jb, "version", version_of (b, b->booted));
  ab_json_add_string (jb, "commit", commit_of (b, b->booted));
  json_builder_set_member_name (jb, "trial");
  json_builder_add_boolean_value (jb, trial);
  ab_json_add_string (jb, "verdict", green ? "green" : "red");
  ab_json_add_string (jb, "action", action);
  json_builder_set_member_name (jb, "failed_hooks");
  json_builder_begin_array (jb);
  for (guint i = 0; i < failed->len; i++)
    json_builder_add_string_value (jb, failed->pdata[i]);
  json_builder_end_array (jb);
  json_builder_set_member_name (jb, "warnings");
  json_builder_begin_array (jb);
  for (guint i = 0; i < warnings->len; i++)
    json_builder_add_string_value (jb, warnings->pdata[i]);
  json_builder_end_array (jb);
  json_builder_set_member_name (jb, "hooks");
  json_builder_begin_array (jb);
  for (guint i = 0; i < results->len; i++)
    json_builder_add_value (jb, ab_hook_result_to_json (results->pdata[i]));
  json_builder_end_array (jb);
  json_builder_end_object (jb);
  g_autoptr(JsonNode) node = json_builder_get_root (jb);
  if (!ab_json_write_at (sysroot->state_dfd, VERDICT_FILE, node, error))
    return FALSE;
  *out_report = json_node_ref (node);
  ab_crash_point ("health:verdict-written");
  g_autoptr(JsonBuilder) ev = ab_history_event_begin ("verdict");
  ab_json_add_string (ev, "slot", ab_slot_name (b->booted));
  ab_json_add_string (ev, "version", version_of (b, b->booted));
  ab_json_add_string (ev, "verdict", green ? "green" : "red");
  ab_json_add_string (ev, "action", action);
  g_autofree char *failed_str = join_names (failed);
  ab_json_add_string (ev, "failed_hooks", failed->len ? failed_str : NULL);
  return ab_history_append (sysroot->state_dfd, sysroot->state_format, sysroot->events, ev, error);
}

static gboolean
update_motd (AbSysroot *sysroot, const Boot *b, gboolean green, GPtrArray *results, GError **error)
{
  g_autoptr(GPtrArray) failed = failed_names (results, AB_HOOK_STAGE_REQUIRED);
  g_autofree char *hooks = join_names (failed);
  g_autofree char *status = green ? g_strdup ("Boot status is GREEN")
                                  : g_strdup_printf ("Boot status is RED: %s", hooks);
  g_autofree char *standing = b->rollback_line ? NULL : standing_rollback_line (sysroot, b);
  const char *rollback = b->rollback_line ? b->rollback_line : standing;
  g_autofree char *text = rollback
      ? g_strdup_printf ("%s\n%s\n", rollback, status)
      : g_strdup_printf ("%s\n", status);
  return write_motd (sysroot, text, error);
}

static gboolean
load_boot (AbSysroot *sysroot, Boot *b, GError **error)
{
  b->booted = sysroot->booted;
  sysroot->tolerate_damage = TRUE;
  if (b->booted == AB_SLOT_NONE)
    {
      g_set_error (error, AB_HEALTH_ERROR, AB_HEALTH_ERROR_NOT_BOOTED,
                   "No booted slot: the kernel command line has no abdeploy.slot=a|b "
                   "(set ABDEPLOY_CMDLINE to a file holding it when checking an offline sysroot)");
      return FALSE;
    }
  return ab_sysroot_lock (sysroot, error)
         && ab_sysroot_load_view (sysroot, &b->v, error);
}

/* How the hooks of SYSROOT's configuration run, echoing their output. */
static AbHookRunOptions
hook_options (AbSysroot *sysroot, char **env)
{
  return (AbHookRunOptions) {
    .default_timeout_sec = sysroot->config->health.timeout_sec,
    .timeouts = sysroot->config->health.hook_timeouts,
    .env = env,
    .greenboot_compat = sysroot->config->health.greenboot_compat,
    .disabled = sysroot->config->health.disabled_hooks,
    .echo_output = TRUE,
    .events = sysroot->events,
  };
}

static gboolean
run_checks (AbSysroot *sysroot, const Boot *b, const char *root, GPtrArray *results,
            char **env, GError **error)
{
  AbHookRunOptions opts = hook_options (sysroot, env);
  gboolean required_ok = ab_hooks_run_stage (root, AB_HOOK_STAGE_REQUIRED, &opts, results, error);
  if (error && *error)
    return FALSE;
  AB_IGNORE_RESULT (ab_hooks_run_stage (root, AB_HOOK_STAGE_WANTED, &opts, results, error));
  if (error && *error)
    return FALSE;
  return required_ok;
}

/* The reboot a verdict wants becomes the front end's action, unless the
 * caller or the sysroot holds it. */
static void
decide_action (AbSysroot *sysroot, const AbHealthOptions *opts, AbHealthOutcome *out)
{
  out->action = AB_HEALTH_ACTION_NONE;
  out->held = AB_HEALTH_HOLD_NONE;
  if (out->verdict != AB_HEALTH_VERDICT_REBOOT && out->verdict != AB_HEALTH_VERDICT_ROLLBACK)
    return;
  if (opts->no_reboot)
    out->held = AB_HEALTH_HOLD_NO_REBOOT;
  else if (!is_live_root (sysroot))
    out->held = AB_HEALTH_HOLD_NOT_LIVE;
  if (out->held != AB_HEALTH_HOLD_NONE)
    return;
  const char *cmd = sysroot->config->health.reboot_command;
  if (cmd == NULL)
    cmd = g_file_test ("/run/systemd/system", G_FILE_TEST_IS_DIR) ? "systemctl reboot" : "reboot";
  out->action = AB_HEALTH_ACTION_REBOOT;
  out->reboot_command = g_strdup (cmd);
}

gboolean
ab_health_check (AbSysroot *sysroot, const AbHealthOptions *opts, AbHealthOutcome *out,
                 GError **error)
{
  g_auto(Boot) b = { 0 };
  if (!load_boot (sysroot, &b, error) || !handle_fallback (sysroot, &b, error))
    return FALSE;
  gboolean trial = is_trial_boot (&b);
  g_autofree char *root = hook_root (sysroot, b.booted);
  g_auto(GStrv) env = hook_env (sysroot, &b);
  g_autoptr(GPtrArray) results = g_ptr_array_new_with_free_func ((GDestroyNotify) ab_hook_result_free);
  g_autoptr(GError) local = NULL;
  gboolean green = run_checks (sysroot, &b, root, results, env, &local);
  if (local != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  ab_crash_point ("health:checked");
  g_autoptr(GPtrArray) failed = failed_names (results, AB_HOOK_STAGE_REQUIRED);
  AbHealthVerdict verdict = AB_HEALTH_VERDICT_NONE;
  if (!(green ? decide_green (sysroot, &b, trial, &verdict, error)
              : decide_red (sysroot, &b, trial, failed, &verdict, error)))
    return FALSE;
  const char *action = ab_health_verdict_name (verdict);
  AbHookRunOptions hopts = hook_options (sysroot, env);
  AB_IGNORE_RESULT (ab_hooks_run_stage (root, green ? AB_HOOK_STAGE_GREEN : AB_HOOK_STAGE_RED,
                                        &hopts, results, NULL));
  if (!write_verdict (sysroot, &b, green, trial, results, action, &out->report, error))
    return FALSE;
  /* The verdict stands once recorded: a MOTD that cannot be written (a full
   * /run) is reported, never turned into a failed health check. */
  g_autoptr(GError) motd_error = NULL;
  if (!update_motd (sysroot, &b, green, results, &motd_error))
    ab_event_warning (sysroot->events, "The message of the day was not updated: %s",
                      motd_error->message);
  /* the rollback this run recorded (health or fallback), for the report */
  if (b.rollback_line != NULL)
    AB_IGNORE_RESULT (ab_history_load_last_rollback (sysroot->state_dfd, sysroot->events,
                                                     &out->rollback, NULL));
  out->green = green;
  out->verdict = verdict;
  decide_action (sysroot, opts, out);
  return TRUE;
}

static AbSlot
resolve_which (AbSysroot *sysroot, const char *which, GError **error)
{
  AbSlot slot = AB_SLOT_NONE;
  if (g_strcmp0 (which, "booted") == 0 || g_strcmp0 (which, "other") == 0)
    {
      if (sysroot->booted == AB_SLOT_NONE)
        {
          g_set_error (error, AB_HEALTH_ERROR, AB_HEALTH_ERROR_NOT_BOOTED,
                       "\"%s\" needs a booted slot (abdeploy.slot= on the kernel command line); "
                       "name the slot instead: a or b", which);
          return AB_SLOT_NONE;
        }
      slot = g_str_equal (which, "booted") ? sysroot->booted : ab_slot_other (sysroot->booted);
    }
  else if ((slot = ab_slot_from_name (which)) == AB_SLOT_NONE)
    g_set_error (error, AB_HEALTH_ERROR, AB_HEALTH_ERROR_USAGE,
                 "Unknown slot \"%s\": use booted, other, a or b", which);
  return slot;
}

gboolean
ab_health_mark (AbSysroot *sysroot, const char *which, gboolean good, AbSlot *out_slot,
                GError **error)
{
  g_auto(Boot) b = { 0 };
  AbSlot slot = resolve_which (sysroot, which ? which : "booted", error);
  *out_slot = slot;
  sysroot->tolerate_damage = TRUE;
  if (slot == AB_SLOT_NONE || !ab_sysroot_lock (sysroot, error)
      || !ab_sysroot_load_view (sysroot, &b.v, error))
    return FALSE;
  /* A slot whose record is damaged holds something unknown: it can be
   * marked bad (never booted again), not good. */
  if (b.v.rec[slot] == NULL && (good || !b.v.damaged[slot]))
    {
      g_set_error (error, AB_HEALTH_ERROR, AB_HEALTH_ERROR_NOTHING_TO_DO,
                   "Slot %s is empty: there is nothing to mark", ab_slot_name (slot));
      return FALSE;
    }
  b.v.ptr.state[slot] = good ? AB_BOOT_STATE_GOOD : AB_BOOT_STATE_BAD;
  b.v.ptr.tries[slot] = 0;
  AbSlot other = ab_slot_other (slot);
  /* A bad primary hands over to the other slot when that one can boot. */
  if (!good && b.v.ptr.primary == slot && b.v.rec[other] && ab_boot_pointer_bootable (&b.v.ptr, other))
    b.v.ptr.primary = other;
  if (b.v.ptr.primary == AB_SLOT_NONE && good)
    b.v.ptr.primary = slot;
  if (!ab_bootloader_save (sysroot->bootloader, &b.v.ptr, error))
    return FALSE;
  g_autoptr(JsonBuilder) ev = ab_history_event_begin (good ? "mark-good" : "mark-bad");
  ab_json_add_string (ev, "slot", ab_slot_name (slot));
  ab_json_add_string (ev, "version", version_of (&b, slot));
  return ab_history_append (sysroot->state_dfd, sysroot->state_format, sysroot->events, ev, error);
}

/* The last verdict is green for SLOT holding COMMIT (NULL: empty record). */
static gboolean
last_verdict_green_for (AbSysroot *sysroot, AbSlot slot, const char *commit, gboolean *out,
                        GError **error)
{
  g_autoptr(JsonNode) root = NULL;
  *out = FALSE;
  if (!ab_format_read_state_at (sysroot->state_dfd, VERDICT_FILE, &root, NULL, error))
    return FALSE;
  JsonObject *o = root ? json_node_get_object (root) : NULL;
  *out = o != NULL && g_strcmp0 (ab_json_get_string (o, "verdict", NULL), "green") == 0
         && g_strcmp0 (ab_json_get_string (o, "slot", NULL), ab_slot_name (slot)) == 0
         && g_strcmp0 (ab_json_get_string (o, "commit", NULL), commit) == 0;
  return TRUE;
}

gboolean
ab_health_booted_is_green (AbSysroot *sysroot, const AbSlotsView *v, gboolean *out_green,
                           char **out_why, GError **error)
{
  AbSlot booted = sysroot->booted;
  g_return_val_if_fail (booted != AB_SLOT_NONE, FALSE);
  const char *name = ab_slot_name (booted);
  *out_green = FALSE;
  *out_why = NULL;
  switch (v->ptr.state[booted])
    {
    case AB_BOOT_STATE_GOOD:
      *out_green = TRUE;
      return TRUE;
    case AB_BOOT_STATE_TRIAL:
      *out_why = g_strdup_printf ("the booted slot %s is on trial (%d tries left) and has no green "
                                  "verdict yet", name, v->ptr.tries[booted]);
      return TRUE;
    case AB_BOOT_STATE_BAD:
      *out_why = g_strdup_printf ("the booted slot %s is marked bad", name);
      return TRUE;
    case AB_BOOT_STATE_NONE:
    default:
      break;
    }
  const char *commit = v->rec[booted] ? v->rec[booted]->commit : NULL;
  if (!last_verdict_green_for (sysroot, booted, commit, out_green, error))
    return FALSE;
  if (!*out_green)
    *out_why = g_strdup_printf ("the booted slot %s is unverified: not marked good, and no green "
                                "health verdict for what it holds", name);
  return TRUE;
}

JsonNode *
ab_health_status_json (AbSysroot *sysroot, GError **error)
{
  g_autoptr(JsonNode) root = NULL;
  if (!ab_format_read_state_tolerant_at (sysroot->state_dfd, VERDICT_FILE,
                                         "the last verdict is not known; the next health-check "
                                         "replaces the file", sysroot->events, &root, error))
    return NULL;
  JsonObject *o = root ? json_node_get_object (root) : NULL;
  g_autoptr(JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  ab_json_add_string (b, "verdict", o ? ab_json_get_string (o, "verdict", "none") : "none");
  json_builder_set_member_name (b, "failed_hooks");
  JsonNode *failed = o ? json_object_get_member (o, "failed_hooks") : NULL;
  if (failed && JSON_NODE_HOLDS_ARRAY (failed))
    json_builder_add_value (b, json_node_copy (failed));
  else
    {
      json_builder_begin_array (b);
      json_builder_end_array (b);
    }
  ab_json_add_string (b, "at", o ? ab_json_get_string (o, "at", NULL) : NULL);
  ab_json_add_string (b, "slot", o ? ab_json_get_string (o, "slot", NULL) : NULL);
  json_builder_end_object (b);
  return json_builder_get_root (b);
}
