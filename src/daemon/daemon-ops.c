/* The daemon's methods: the long operations (Update, Stage, Deploy,
 * Activate, Rollback) in a worker thread, the short writers (Mark, SetPin)
 * and CheckUpdate in a thread each, the readers on the main thread.
 *
 * Invariants:
 * - An operation's method returns once the operation has started, or
 *   fails at once (Locked) while another runs here or another process
 *   holds the sysroot lock. Completed(operation, result, message) follows
 *   exactly once, after every property reached its final value, and after
 *   the worker closed the sysroot (its lock is released).
 * - Cancel() cancels the operation's GCancellable, the one the engine
 *   checks, as SIGTERM does for the CLI: the engine leaves nothing half
 *   staged and marks an update transaction failed and retryable.
 * - The engine's events reach func on the worker thread; only the latest
 *   progress is kept, and the main thread publishes it (Progress). */
#include "config.h"
#include "daemon.h"
#include "cli/ab-exitcode.h"
#include "ab-content.h"
#include "ab-deploy.h"
#include "ab-health.h"
#include "ab-lock.h"
#include "ab-recover.h"
#include "ab-status.h"
#include "ab-update.h"

#include <fcntl.h>
#include <string.h>

struct DaemonOp
{
  Daemon *d;
  const char *name;
  gboolean (*run) (DaemonOp *op, AbSysroot *sr, GError **error);
  char *source;   /* Stage, Deploy: NULL for the configured one */
  char *ref;
  char *version;  /* Update */
  gboolean allow_downgrade;
  gboolean activate;
  gint32 tries;   /* Deploy, Activate: 0 for the configured default */
  GCancellable *cancellable;
  AbEventSink *sink;
  char *message;  /* what the operation did, set by run */
};

const char *
daemon_op_name (const DaemonOp *op)
{
  return op->name;
}

static void
op_free (DaemonOp *op)
{
  g_free (op->source);
  g_free (op->ref);
  g_free (op->version);
  g_clear_object (&op->cancellable);
  ab_event_sink_free (op->sink);
  g_free (op->message);
  g_free (op);
}

/* ---- progress: worker thread to main thread ---- */

/* Makes V (a floating or owned a{sv}) the Progress property, while an
 * operation runs. */
static void
publish_progress (Daemon *d, GVariant *v)
{
  g_variant_ref_sink (v);
  if (d->op == NULL)
    {
      g_variant_unref (v);
      return;
    }
  g_variant_unref (d->progress);
  d->progress = v;
  const char *names[] = { "Progress", NULL };
  daemon_emit_changed (d, names);
}

typedef struct
{
  Daemon *d;
  guint phase_gen;
} Flush;

/* The latest count within the phase the flush was scheduled in (counts are
 * coalesced: the latest wins). A flush scheduled before a phase change is
 * stale and publishes nothing: it would show the new phase before the
 * phase change's own value, so a client could see B, C, B for the phases
 * B, C. The new phase schedules its own flushes. */
static gboolean
flush_progress (gpointer data)
{
  g_autofree Flush *f = data;
  Daemon *d = f->d;
  g_mutex_lock (&d->progress_lock);
  gboolean stale = f->phase_gen != d->phase_gen;
  if (!stale)
    d->flush_pending = FALSE;
  GVariant *v = stale ? NULL : daemon_progress_to_variant (&d->latest);
  g_mutex_unlock (&d->progress_lock);
  if (v != NULL)
    publish_progress (d, v);
  return G_SOURCE_REMOVE;
}

typedef struct
{
  Daemon *d;
  GVariant *value;
} PhaseChange;

/* A new phase (never coalesced: a client sees every phase). */
static gboolean
publish_phase (gpointer data)
{
  PhaseChange *c = data;
  publish_progress (c->d, c->value);
  g_free (c);
  return G_SOURCE_REMOVE;
}

/* Runs FUNC on the main thread, always later (g_main_context_invoke()
 * could run it right here when the main loop does not own the context). */
static void
run_on_main (Daemon *d, GSourceFunc func, gpointer data)
{
  g_autoptr(GSource) idle = g_idle_source_new ();
  g_source_set_priority (idle, G_PRIORITY_DEFAULT);
  g_source_set_callback (idle, func, data, NULL);
  g_source_attach (idle, d->ctx);
}

/* Starts a new phase in d->latest (progress_lock held) and returns the
 * value to publish for it, never coalesced. */
static GVariant *
begin_phase (Daemon *d, const AbEvent *ev)
{
  g_free (d->latest.phase);
  d->latest = (DaemonProgress) { .phase = g_strdup (ev->phase), .total = AB_PROGRESS_TOTAL_UNKNOWN };
  d->phase_gen++;
  d->flush_pending = FALSE;
  if (ev->kind == AB_EVENT_PROGRESS)
    d->latest = (DaemonProgress) { .phase = d->latest.phase, .unit = ev->unit, .done = ev->done,
                                   .total = ev->total };
  return g_variant_ref_sink (daemon_progress_to_variant (&d->latest));
}

/* Records a count within the current phase (progress_lock held); returns
 * the flush to schedule, or NULL when one is pending already. */
static Flush *
note_count (Daemon *d, const AbEvent *ev)
{
  d->latest.unit = ev->unit;
  d->latest.done = ev->done;
  d->latest.total = ev->total;
  if (d->flush_pending)
    return NULL;
  d->flush_pending = TRUE;
  Flush *f = g_new0 (Flush, 1);
  *f = (Flush) { .d = d, .phase_gen = d->phase_gen };
  return f;
}

/* The engine's sink (worker thread). Invariant: a client sees every
 * phase, in the engine's order, each before any count of it; of the
 * counts within a phase, the latest, once the main thread gets to it. */
static void
on_engine_event (const AbEvent *ev, gpointer data)
{
  DaemonOp *op = data;
  Daemon *d = op->d;
  if (ev->kind == AB_EVENT_MESSAGE || ev->kind == AB_EVENT_WARNING)
    {
      g_printerr ("abdeploy daemon: %s: %s%s\n", op->name,
                  ev->kind == AB_EVENT_WARNING ? "warning: " : "", ev->message);
      return;
    }
  PhaseChange *change = NULL;
  Flush *flush = NULL;
  g_mutex_lock (&d->progress_lock);
  if (ev->kind == AB_EVENT_PHASE || g_strcmp0 (d->latest.phase, ev->phase) != 0)
    {
      change = g_new0 (PhaseChange, 1);
      *change = (PhaseChange) { .d = d, .value = begin_phase (d, ev) };
    }
  else if (ev->kind == AB_EVENT_PROGRESS)
    flush = note_count (d, ev);
  g_mutex_unlock (&d->progress_lock);
  if (change != NULL)
    run_on_main (d, publish_phase, change);
  if (flush != NULL)
    run_on_main (d, flush_progress, flush);
}

static void
reset_progress (Daemon *d)
{
  g_mutex_lock (&d->progress_lock);
  g_free (d->latest.phase);
  d->latest = (DaemonProgress) { .total = AB_PROGRESS_TOTAL_UNKNOWN };
  g_mutex_unlock (&d->progress_lock);
  g_variant_unref (d->progress);
  d->progress = g_variant_ref_sink (g_variant_new ("a{sv}", NULL));
}

/* ---- the operations (worker thread) ---- */

static gboolean
run_update (DaemonOp *op, AbSysroot *sr, GError **error)
{
  /* the engine reports to sr->events, op->sink */
  AbUpdateOptions opts = { .version = op->version, .activate = op->activate,
                           .allow_downgrade = op->allow_downgrade,
                           .cancellable = op->cancellable };
  if (!ab_update_run (sr, &opts, error))
    return FALSE;
  op->message = g_strdup (op->activate ? "Update installed; it boots next, in trial mode"
                                       : "Update installed (staged, not activated)");
  return TRUE;
}

/* TOLERATE_STAGED: the commit already staged is no failure (Deploy). */
static gboolean
stage (DaemonOp *op, AbSysroot *sr, gboolean tolerate_staged, GError **error)
{
  AbStageOptions opts = { .source = op->source, .refspec = op->ref,
                          .cancellable = op->cancellable };
  AbSlot slot = AB_SLOT_NONE;
  g_autoptr(GError) local = NULL;
  if (ab_deploy_stage (sr, &opts, &slot, &local))
    {
      op->message = g_strdup_printf ("Staged %s into slot %s", op->ref, ab_slot_name (slot));
      return TRUE;
    }
  if (tolerate_staged && g_error_matches (local, AB_DEPLOY_ERROR, AB_DEPLOY_ERROR_ALREADY_STAGED))
    return TRUE;
  g_propagate_error (error, g_steal_pointer (&local));
  return FALSE;
}

static gboolean
run_stage (DaemonOp *op, AbSysroot *sr, GError **error)
{
  return stage (op, sr, FALSE, error);
}

static gboolean
activate (DaemonOp *op, AbSysroot *sr, GError **error)
{
  AbSlot slot = AB_SLOT_NONE;
  if (!ab_deploy_activate (sr, op->tries, &slot, error))
    return FALSE;
  g_free (op->message);
  op->message = g_strdup_printf ("Activated slot %s: it boots next, in trial mode",
                                 ab_slot_name (slot));
  return TRUE;
}

static gboolean
run_deploy (DaemonOp *op, AbSysroot *sr, GError **error)
{
  return stage (op, sr, TRUE, error) && activate (op, sr, error);
}

static gboolean
run_activate (DaemonOp *op, AbSysroot *sr, GError **error)
{
  return activate (op, sr, error);
}

static gboolean
run_rollback (DaemonOp *op, AbSysroot *sr, GError **error)
{
  AbSlot slot = AB_SLOT_NONE;
  ab_event_phase (op->sink, "rollback");
  if (!ab_deploy_rollback (sr, &slot, error))
    return FALSE;
  op->message = g_strdup_printf ("Rolled back: slot %s is primary again", ab_slot_name (slot));
  return TRUE;
}

/* Opens the sysroot, runs OP, and closes the sysroot (releasing the lock)
 * before the result goes to the main thread. */
static gboolean
run_in_sysroot (DaemonOp *op, GError **error)
{
  g_autoptr(AbSysroot) sr = daemon_open_sysroot (op->d, error);
  if (sr == NULL)
    return FALSE;
  sr->events = op->sink;
  /* a writer: the engine's recovery step first (an interrupted restore) */
  AbRecovery done = AB_RECOVERY_NONE;
  if (!ab_recover (sr, &done, error))
    return FALSE;
  if (done == AB_RECOVERY_RESTORE_COMPLETED)
    ab_event_message (op->sink, "Completed the restore that was interrupted");
  return op->run (op, sr, error);
}

static void
op_thread (GTask *task, gpointer source, gpointer data, GCancellable *unused)
{
  GError *error = NULL;
  if (run_in_sysroot (data, &error))
    g_task_return_boolean (task, TRUE);
  else
    g_task_return_error (task, error);
}

static void
on_op_done (GObject *source, GAsyncResult *res, gpointer data)
{
  DaemonOp *op = data;
  Daemon *d = op->d;
  g_autoptr(GError) error = NULL;
  gboolean ok = g_task_propagate_boolean (G_TASK (res), &error);
  int code = ok ? AB_EXIT_OK : (int) ab_exit_code_for_error (error);
  const char *message = ok ? (op->message ? op->message : "") : error->message;
  g_free (d->last_error);
  d->last_error = ok ? g_strdup ("") : g_strdup_printf ("%s: %s", daemon_error_name (code), message);
  d->op = NULL;
  reset_progress (d);
  const char *names[] = { "Operation", "Progress", "LastError", NULL };
  daemon_emit_changed (d, names);
  daemon_refresh (d);
  g_dbus_connection_emit_signal (d->bus, NULL, AB_DAEMON_OBJECT_PATH, AB_DAEMON_INTERFACE,
                                 "Completed", g_variant_new ("(sis)", op->name, code, message),
                                 NULL);
  op_free (op);
  /* a pull that did not stop keeps a thread and a file size limit: end
   * the process (the next call starts a new one) */
  if (d->quitting || ab_content_pulls_abandoned () > 0)
    g_main_loop_quit (d->loop);
  else
    daemon_touch (d);
}

/* ---- starting one ---- */

/* Another process holds the sysroot lock: fail at once. */
static gboolean
check_lock_free (Daemon *d, GError **error)
{
  g_autofree char *dir = g_build_filename (d->sysroot, "abdeploy", NULL);
  ab_autofd dfd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return TRUE; /* the operation says what is wrong with the sysroot */
  g_autoptr(GError) local = NULL;
  ab_autofd fd = ab_lock_acquire_shared (dfd, &local);
  if (fd >= 0 || !g_error_matches (local, AB_LOCK_ERROR, AB_LOCK_ERROR_HELD))
    return TRUE;
  g_propagate_error (error, g_steal_pointer (&local));
  return FALSE;
}

static gboolean
check_idle (Daemon *d, GError **error)
{
  if (d->op != NULL)
    {
      g_set_error (error, AB_LOCK_ERROR, AB_LOCK_ERROR_HELD,
                   "The abdeploy daemon is running %s; wait for its Completed signal, or call "
                   "Cancel(), then call again", d->op->name);
      return FALSE;
    }
  return check_lock_free (d, error);
}

static void
start (Daemon *d, GDBusMethodInvocation *inv, DaemonOp *op)
{
  g_autoptr(GError) error = NULL;
  if (!check_idle (d, &error))
    {
      daemon_return_gerror (inv, error);
      op_free (op);
      return;
    }
  op->d = d;
  op->cancellable = g_cancellable_new ();
  op->sink = ab_event_sink_new (on_engine_event, op);
  d->op = op;
  reset_progress (d);
  const char *names[] = { "Operation", "Progress", NULL };
  daemon_emit_changed (d, names);
  g_dbus_method_invocation_return_value (inv, NULL);
  g_autoptr(GTask) task = g_task_new (NULL, NULL, on_op_done, op);
  g_task_set_task_data (task, op, NULL);
  g_task_run_in_thread (task, op_thread);
}

static gboolean
usage (GError **error, const char *format, const char *a, const char *b)
{
  g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, format, a, b);
  return FALSE;
}

/* Reads OPTIONS into OP. KNOWN: the keys METHOD takes. Every key is
 * checked: an unknown key or a value of the wrong type is a usage error. */
static gboolean
parse_options (DaemonOp *op, const char *method, GVariant *options, const char *const *known,
               GError **error)
{
  GVariantIter it;
  const char *key;
  g_variant_iter_init (&it, options);
  for (;;)
    {
      g_autoptr(GVariant) value = NULL;
      if (!g_variant_iter_next (&it, "{&sv}", &key, &value))
        break;
      if (!g_strv_contains (known, key))
        return usage (error, "%s takes no option \"%s\" (abdeploy-dbus(5))", method, key);
      if (g_str_equal (key, "version") && g_variant_is_of_type (value, G_VARIANT_TYPE_STRING))
        op->version = g_variant_dup_string (value, NULL);
      else if (g_str_equal (key, "allow-downgrade") && g_variant_is_of_type (value, G_VARIANT_TYPE_BOOLEAN))
        op->allow_downgrade = g_variant_get_boolean (value);
      else if (g_str_equal (key, "no-activate") && g_variant_is_of_type (value, G_VARIANT_TYPE_BOOLEAN))
        op->activate = !g_variant_get_boolean (value);
      else if (g_str_equal (key, "tries") && g_variant_is_of_type (value, G_VARIANT_TYPE_INT32))
        op->tries = g_variant_get_int32 (value);
      else
        return usage (error, "%s: option \"%s\" has the wrong type (abdeploy-dbus(5))", method, key);
    }
  if (op->tries < 0 || op->tries > AB_CONFIG_MAX_TRIES)
    return usage (error, "%s: \"tries\" must be a number from 1 to 9%s", method, "");
  return TRUE;
}

static DaemonOp *
op_new (const char *name, gboolean (*run) (DaemonOp *, AbSysroot *, GError **))
{
  DaemonOp *op = g_new0 (DaemonOp, 1);
  op->name = name;
  op->run = run;
  op->activate = TRUE;
  return op;
}

/* Parses the options, then starts OP or replies with the usage error. */
static void
parse_and_start (Daemon *d, GDBusMethodInvocation *inv, DaemonOp *op, GVariant *options,
                 const char *const *known)
{
  g_autoptr(GError) error = NULL;
  const char *method = g_dbus_method_invocation_get_method_name (inv);
  if (!parse_options (op, method, options, known, &error))
    {
      daemon_return_gerror (inv, error);
      op_free (op);
      return;
    }
  start (d, inv, op);
}

void
daemon_start_update (Daemon *d, GDBusMethodInvocation *inv, GVariant *params)
{
  static const char *const known[] = { "version", "allow-downgrade", "no-activate", NULL };
  g_autoptr(GVariant) options = g_variant_get_child_value (params, 0);
  parse_and_start (d, inv, op_new ("update", run_update), options, known);
}

static void
start_stage_like (Daemon *d, GDBusMethodInvocation *inv, GVariant *params, DaemonOp *op,
                  const char *const *known)
{
  const char *source = NULL, *ref = NULL;
  g_autoptr(GVariant) options = NULL;
  g_variant_get (params, "(&s&s@a{sv})", &source, &ref, &options);
  if (*ref == '\0')
    {
      g_dbus_method_invocation_return_dbus_error (inv, daemon_error_name (AB_EXIT_USAGE),
                                                  "Give a REF or a COMMIT to stage");
      op_free (op);
      return;
    }
  op->source = *source ? g_strdup (source) : NULL;
  op->ref = g_strdup (ref);
  parse_and_start (d, inv, op, options, known);
}

void
daemon_start_stage (Daemon *d, GDBusMethodInvocation *inv, GVariant *params)
{
  static const char *const known[] = { NULL };
  start_stage_like (d, inv, params, op_new ("stage", run_stage), known);
}

void
daemon_start_deploy (Daemon *d, GDBusMethodInvocation *inv, GVariant *params)
{
  static const char *const known[] = { "tries", NULL };
  start_stage_like (d, inv, params, op_new ("deploy", run_deploy), known);
}

void
daemon_start_activate (Daemon *d, GDBusMethodInvocation *inv, GVariant *params)
{
  static const char *const known[] = { "tries", NULL };
  g_autoptr(GVariant) options = g_variant_get_child_value (params, 0);
  parse_and_start (d, inv, op_new ("activate", run_activate), options, known);
}

void
daemon_start_rollback (Daemon *d, GDBusMethodInvocation *inv, GVariant *params)
{
  start (d, inv, op_new ("rollback", run_rollback));
}

/* INV NULL: the daemon's own SIGTERM. */
void
daemon_cancel (Daemon *d, GDBusMethodInvocation *inv, GVariant *params)
{
  if (d->op == NULL)
    {
      if (inv != NULL)
        g_dbus_method_invocation_return_dbus_error (inv, daemon_error_name (AB_EXIT_NOTHING_TO_DO),
                                                    "No operation runs; nothing to cancel");
      return;
    }
  g_cancellable_cancel (d->op->cancellable);
  if (inv != NULL)
    g_dbus_method_invocation_return_value (inv, NULL);
}

/* ---- calls served in a thread, answered when done ---- */

typedef GVariant *(*JobFunc) (AbSysroot *sr, GVariant *params, GError **error);

typedef struct
{
  Daemon *d;
  GDBusMethodInvocation *inv;
  JobFunc func;
  gboolean writes;
} Job;

static void
job_thread (GTask *task, gpointer source, gpointer data, GCancellable *unused)
{
  Job *job = data;
  GError *error = NULL;
  GVariant *reply = NULL;
  {
    g_autoptr(AbSysroot) sr = daemon_open_sysroot (job->d, &error);
    AbRecovery done = AB_RECOVERY_NONE;
    if (sr != NULL && (!job->writes || ab_recover (sr, &done, &error)))
      reply = job->func (sr, g_dbus_method_invocation_get_parameters (job->inv), &error);
  } /* the sysroot (and its lock) is closed before the reply */
  if (reply != NULL)
    g_task_return_pointer (task, g_variant_ref_sink (reply), (GDestroyNotify) g_variant_unref);
  else
    g_task_return_error (task, error);
}

static void
on_job_done (GObject *source, GAsyncResult *res, gpointer data)
{
  Job *job = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = g_task_propagate_pointer (G_TASK (res), &error);
  if (reply != NULL)
    g_dbus_method_invocation_return_value (job->inv, reply);
  else
    daemon_return_gerror (job->inv, error);
  if (job->writes)
    daemon_refresh (job->d);
  daemon_busy_end (job->d);
  g_free (job);
}

static void
run_job (Daemon *d, GDBusMethodInvocation *inv, JobFunc func, gboolean writes)
{
  g_autoptr(GError) error = NULL;
  if (writes && !check_idle (d, &error))
    {
      daemon_return_gerror (inv, error);
      return;
    }
  Job *job = g_new0 (Job, 1);
  *job = (Job) { .d = d, .inv = inv, .func = func, .writes = writes };
  d->busy++;
  g_autoptr(GTask) task = g_task_new (NULL, NULL, on_job_done, job);
  g_task_set_task_data (task, job, NULL);
  g_task_run_in_thread (task, job_thread);
}

static GVariant *
do_mark (AbSysroot *sr, GVariant *params, GError **error)
{
  const char *state = NULL, *which = NULL;
  g_variant_get (params, "(&s&s)", &state, &which);
  if (!g_str_equal (state, "good") && !g_str_equal (state, "bad"))
    {
      usage (error, "Mark: state must be \"good\" or \"bad\", not \"%s\"%s", state, "");
      return NULL;
    }
  AbSlot slot = AB_SLOT_NONE;
  if (!ab_health_mark (sr, *which ? which : "booted", g_str_equal (state, "good"), &slot, error))
    return NULL;
  return g_variant_new ("(s)", ab_slot_name (slot));
}

static GVariant *
do_set_pin (AbSysroot *sr, GVariant *params, GError **error)
{
  const char *version = NULL;
  g_variant_get (params, "(&s)", &version);
  if (!ab_update_pin (sr, *version ? version : NULL, FALSE, FALSE, error))
    return NULL;
  return g_variant_new ("()");
}

static GVariant *
do_check_update (AbSysroot *sr, GVariant *params, GError **error)
{
  g_autoptr(AbUpdateCheck) c = ab_update_check (sr, error);
  if (c == NULL)
    return NULL;
  g_autoptr(JsonNode) node = ab_update_check_to_json (c);
  return g_variant_new_tuple ((GVariant *[]) { daemon_json_to_vardict (json_node_get_object (node)) }, 1);
}

void
daemon_mark (Daemon *d, GDBusMethodInvocation *inv, GVariant *params)
{
  run_job (d, inv, do_mark, TRUE);
}

void
daemon_set_pin (Daemon *d, GDBusMethodInvocation *inv, GVariant *params)
{
  run_job (d, inv, do_set_pin, TRUE);
}

void
daemon_check_update (Daemon *d, GDBusMethodInvocation *inv, GVariant *params)
{
  run_job (d, inv, do_check_update, FALSE);
}

/* ---- readers (main thread; they never take the lock) ---- */

static JsonNode *
status_json (Daemon *d, GError **error)
{
  g_autoptr(AbSysroot) sr = daemon_open_sysroot (d, error);
  return sr ? ab_status_to_json (sr, error) : NULL;
}

void
daemon_get_slots (Daemon *d, GDBusMethodInvocation *inv, GVariant *params)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) st = status_json (d, &error);
  if (st == NULL)
    {
      daemon_return_gerror (inv, error);
      return;
    }
  JsonArray *slots = json_object_get_array_member (json_node_get_object (st), "slots");
  g_auto(GVariantBuilder) b = G_VARIANT_BUILDER_INIT (G_VARIANT_TYPE ("aa{sv}"));
  for (guint i = 0; i < json_array_get_length (slots); i++)
    g_variant_builder_add_value (&b, daemon_json_to_vardict (json_array_get_object_element (slots, i)));
  g_dbus_method_invocation_return_value (inv, g_variant_new ("(aa{sv})", &b));
}

void
daemon_get_status (Daemon *d, GDBusMethodInvocation *inv, GVariant *params)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) st = status_json (d, &error);
  if (st == NULL)
    {
      daemon_return_gerror (inv, error);
      return;
    }
  JsonObject *o = json_node_get_object (st);
  json_object_remove_member (o, "slots"); /* GetSlots() */
  for (const char *const *k = (const char *const[]) { "booted", "primary", NULL }; *k; k++)
    if (json_object_get_null_member (o, *k))
      json_object_set_string_member (o, *k, "");
  g_dbus_method_invocation_return_value (inv, g_variant_new_tuple ((GVariant *[]) { daemon_json_to_vardict (o) }, 1));
}
