/* abdeploy daemon: the bus glue of org.abdeploy1 (abdeploy-dbus(5)).
 *
 * Invariants:
 * - Every method call is authorized (daemon_authorize()) before anything
 *   is read or changed; the table `methods` names each method's action.
 * - At most one operation runs (Daemon.op); the engine's sysroot lock keeps
 *   the CLI and the daemon from writing at the same time.
 * - The daemon exits only when no operation runs and no call is being
 *   served, idle_timeout_sec after the last call or operation. */
#include "config.h"
#include "daemon.h"
#include "ab-json.h"
#include "ab-status.h"
#include "ab-update.h"

#include <glib-unix.h>
#include <stdio.h>
#include <unistd.h>

static const struct
{
  const char *method;
  const char *action;
  DaemonHandler handler;
} methods[] = {
  { "GetSlots", "org.abdeploy1.read", daemon_get_slots },
  { "GetStatus", "org.abdeploy1.read", daemon_get_status },
  { "CheckUpdate", "org.abdeploy1.read", daemon_check_update },
  { "Update", "org.abdeploy1.update", daemon_start_update },
  { "Stage", "org.abdeploy1.update", daemon_start_stage },
  { "Deploy", "org.abdeploy1.update", daemon_start_deploy },
  { "Activate", "org.abdeploy1.update", daemon_start_activate },
  { "Cancel", "org.abdeploy1.update", daemon_cancel },
  { "Rollback", "org.abdeploy1.rollback", daemon_start_rollback },
  { "Mark", "org.abdeploy1.manage", daemon_mark },
  { "SetPin", "org.abdeploy1.manage", daemon_set_pin },
};

/* The sink of a sysroot the daemon reads outside an operation (status,
 * properties): what a reader read past (ab_format_warn()) goes to the
 * daemon's stderr, as the CLI prints it; other events are dropped. An
 * operation replaces it with its own sink. */
static void
log_event (const AbEvent *ev, gpointer data)
{
  if (ev->kind != AB_EVENT_WARNING || !ev->tolerated)
    return;
  g_autofree char *clean = ab_json_sanitize (ev->message, -1, 0, FALSE);
  g_printerr ("abdeploy: warning: %s\n", clean);
}

AbSysroot *
daemon_open_sysroot (Daemon *d, GError **error)
{
  static AbEventSink log_sink = { .func = log_event };
  AbSysroot *sr = ab_sysroot_open (d->sysroot, d->config, error);
  if (sr != NULL)
    sr->events = &log_sink;
  return sr;
}

static void
on_method_call (GDBusConnection *bus, const char *sender, const char *path, const char *iface,
                const char *method, GVariant *params, GDBusMethodInvocation *inv, gpointer data)
{
  Daemon *d = data;
  daemon_touch (d);
  for (guint i = 0; i < G_N_ELEMENTS (methods); i++)
    if (g_str_equal (method, methods[i].method))
      {
        daemon_authorize (d, inv, methods[i].action, methods[i].handler);
        return;
      }
  g_dbus_method_invocation_return_error (inv, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_METHOD,
                                         "No method %s in %s", method, AB_DAEMON_INTERFACE);
}

static GVariant *
on_get_property (GDBusConnection *bus, const char *sender, const char *path, const char *iface,
                 const char *name, GError **error, gpointer data)
{
  Daemon *d = data;
  daemon_touch (d);
  if (g_str_equal (name, "ApiVersion"))
    return g_variant_new_uint32 (AB_DAEMON_API_VERSION);
  if (g_str_equal (name, "Operation"))
    return g_variant_new_string (d->op ? daemon_op_name (d->op) : "idle");
  if (g_str_equal (name, "Progress"))
    return g_variant_ref (d->progress);
  const char *s = g_str_equal (name, "Booted") ? d->booted
                  : g_str_equal (name, "Primary") ? d->primary
                  : g_str_equal (name, "LastError") ? d->last_error
                  : g_str_equal (name, "Pin") ? d->pin : NULL;
  if (s == NULL)
    {
      g_set_error (error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_PROPERTY, "No property %s", name);
      return NULL;
    }
  return g_variant_new_string (s);
}

/* Emits PropertiesChanged with the current values of NAMES. */
void
daemon_emit_changed (Daemon *d, const char *const *names)
{
  if (d->bus == NULL || names[0] == NULL)
    return;
  g_auto(GVariantBuilder) b = G_VARIANT_BUILDER_INIT (G_VARIANT_TYPE ("a{sv}"));
  for (const char *const *n = names; *n; n++)
    {
      g_autoptr(GVariant) v = g_variant_ref_sink (on_get_property (d->bus, NULL, NULL, NULL, *n, NULL, d));
      g_variant_builder_add (&b, "{sv}", *n, v);
    }
  g_dbus_connection_emit_signal (d->bus, NULL, AB_DAEMON_OBJECT_PATH,
                                 "org.freedesktop.DBus.Properties", "PropertiesChanged",
                                 g_variant_new ("(sa{sv}as)", AB_DAEMON_INTERFACE, &b, NULL),
                                 NULL);
}

/* Sets *FIELD to VALUE; TRUE when it changed. */
static gboolean
set_string (char **field, const char *value)
{
  if (g_strcmp0 (*field, value) == 0)
    return FALSE;
  g_free (*field);
  *field = g_strdup (value);
  return TRUE;
}

/* Reads Booted, Primary and Pin again; emits what changed. A sysroot that
 * cannot be read shows "" (the methods report why). */
void
daemon_refresh (Daemon *d)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(AbSysroot) sr = daemon_open_sysroot (d, &error);
  g_auto(AbSlotsView) v = { 0 };
  g_autofree char *pin = NULL;
  if (sr != NULL)
    {
      sr->tolerate_damage = TRUE;
      if (!ab_sysroot_load_view (sr, &v, &error))
        g_clear_error (&error);
      pin = ab_update_get_pin (sr, &error);
    }
  const char *names[4] = { NULL };
  guint n = 0;
  if (set_string (&d->booted, sr ? ab_slot_name (sr->booted) ?: "" : ""))
    names[n++] = "Booted";
  if (set_string (&d->primary, sr ? ab_slot_name (v.ptr.primary) ?: "" : ""))
    names[n++] = "Primary";
  if (set_string (&d->pin, pin ? pin : ""))
    names[n++] = "Pin";
  daemon_emit_changed (d, names);
}

static gboolean
on_idle_timeout (gpointer data)
{
  Daemon *d = data;
  d->idle_id = 0;
  if (d->op != NULL || d->busy > 0)
    daemon_touch (d);
  else
    g_main_loop_quit (d->loop);
  return G_SOURCE_REMOVE;
}

/* Restarts the idle timer. */
void
daemon_touch (Daemon *d)
{
  g_clear_handle_id (&d->idle_id, g_source_remove);
  if (d->idle_timeout_sec > 0 && !d->quitting)
    d->idle_id = g_timeout_add_seconds (d->idle_timeout_sec, on_idle_timeout, d);
}

void
daemon_busy_end (Daemon *d)
{
  d->busy--;
  daemon_touch (d);
}

/* SIGTERM, SIGINT: cancel the operation and quit once it completed (as
 * the CLI does); a second signal quits at once. */
static gboolean
on_signal (gpointer data)
{
  Daemon *d = data;
  if (d->quitting || d->op == NULL)
    {
      g_main_loop_quit (d->loop);
      return G_SOURCE_CONTINUE;
    }
  d->quitting = TRUE;
  g_clear_handle_id (&d->idle_id, g_source_remove);
  daemon_cancel (d, NULL, NULL);
  return G_SOURCE_CONTINUE;
}

static void
on_name_lost (GDBusConnection *bus, const char *name, gpointer data)
{
  Daemon *d = data;
  g_printerr ("abdeploy daemon: cannot own the bus name %s (or lost it): another daemon has it, "
              "or the bus policy does not let this user own it (install org.abdeploy1.conf in "
              "/usr/share/dbus-1/system.d)\n", name);
  d->exit_code = 1;
  g_main_loop_quit (d->loop);
}

static const GDBusInterfaceVTable vtable = { on_method_call, on_get_property, NULL };

static gboolean
load_node (Daemon *d, GError **error)
{
  g_autoptr(GBytes) xml = g_resources_lookup_data ("/org/abdeploy1/org.abdeploy1.Manager.xml",
                                                  G_RESOURCE_LOOKUP_FLAGS_NONE, error);
  if (xml == NULL)
    return FALSE;
  d->node = g_dbus_node_info_new_for_xml (g_bytes_get_data (xml, NULL), error);
  return d->node != NULL;
}

static gboolean
connect_bus (Daemon *d, GError **error)
{
  if (!load_node (d, error))
    return FALSE;
  d->bus = g_bus_get_sync (G_BUS_TYPE_SYSTEM, NULL, error);
  if (d->bus == NULL)
    return FALSE;
  g_dbus_connection_set_exit_on_close (d->bus, FALSE);
  d->registration_id = g_dbus_connection_register_object (
      d->bus, AB_DAEMON_OBJECT_PATH, g_dbus_node_info_lookup_interface (d->node, AB_DAEMON_INTERFACE),
      &vtable, d, NULL, error);
  if (d->registration_id == 0)
    return FALSE;
  d->owner_id = g_bus_own_name_on_connection (d->bus, AB_DAEMON_BUS_NAME,
                                              G_BUS_NAME_OWNER_FLAGS_DO_NOT_QUEUE, NULL,
                                              on_name_lost, d, NULL);
  return TRUE;
}

static void
daemon_init (Daemon *d, const AbDaemonOptions *opts)
{
  d->sysroot = g_strdup (opts->sysroot ? opts->sysroot : "/");
  d->config = g_strdup (opts->config);
  d->idle_timeout_sec = opts->idle_timeout_sec;
  d->ctx = g_main_context_ref (g_main_context_default ());
  d->loop = g_main_loop_new (d->ctx, FALSE);
  d->booted = g_strdup ("");
  d->primary = g_strdup ("");
  d->last_error = g_strdup ("");
  d->pin = g_strdup ("");
  d->progress = g_variant_ref_sink (g_variant_new ("a{sv}", NULL));
  g_mutex_init (&d->progress_lock);
}

static void
daemon_clear (Daemon *d)
{
  if (d->owner_id)
    g_bus_unown_name (d->owner_id);
  if (d->registration_id)
    g_dbus_connection_unregister_object (d->bus, d->registration_id);
  if (d->bus)
    g_dbus_connection_flush_sync (d->bus, NULL, NULL);
  g_clear_handle_id (&d->idle_id, g_source_remove);
  g_clear_object (&d->bus);
  g_clear_pointer (&d->node, g_dbus_node_info_unref);
  g_clear_pointer (&d->loop, g_main_loop_unref);
  g_clear_pointer (&d->ctx, g_main_context_unref);
  g_clear_pointer (&d->progress, g_variant_unref);
  g_free (d->latest.phase);
  g_mutex_clear (&d->progress_lock);
  g_free (d->sysroot);
  g_free (d->config);
  g_free (d->booted);
  g_free (d->primary);
  g_free (d->last_error);
  g_free (d->pin);
}

int
ab_daemon_run (const AbDaemonOptions *opts)
{
  Daemon d = { 0 };
  daemon_init (&d, opts);
  g_autoptr(GError) error = NULL;
  if (!connect_bus (&d, &error))
    {
      g_printerr ("abdeploy daemon: cannot serve %s on the system bus: %s\n", AB_DAEMON_BUS_NAME,
                  error->message);
      daemon_clear (&d);
      return 1;
    }
  guint sigterm = g_unix_signal_add (SIGTERM, on_signal, &d);
  guint sigint = g_unix_signal_add (SIGINT, on_signal, &d);
  daemon_refresh (&d);
  daemon_touch (&d);
  g_main_loop_run (d.loop);
  g_source_remove (sigterm);
  g_source_remove (sigint);
  int code = d.exit_code;
  daemon_clear (&d);
  return code;
}
