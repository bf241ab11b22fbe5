/* CLI of the update client: check-update, update, resume, pin. Parses,
 * calls ab-update, prints. */
#include "config.h"
#include "cli.h"
#include "cli/ab-exitcode.h"
#include "ab-update.h"

#include <json-glib/json-glib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct
{
  gboolean json;
  gboolean bar;
  gint64 start;
} Progress;

static void
print_json_event (const char *event, const char *phase, guint64 done, guint64 total,
                  const char *message)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "event");
  json_builder_add_string_value (b, event);
  json_builder_set_member_name (b, "phase");
  json_builder_add_string_value (b, phase);
  if (g_str_equal (event, "bytes"))
    {
      json_builder_set_member_name (b, "done");
      json_builder_add_int_value (b, (gint64) done);
      json_builder_set_member_name (b, "total");
      json_builder_add_int_value (b, (gint64) total);
    }
  if (message)
    {
      json_builder_set_member_name (b, "message");
      json_builder_add_string_value (b, message);
    }
  json_builder_end_object (b);
  g_autoptr(JsonNode) node = json_builder_get_root (b);
  g_autofree char *text = json_to_string (node, FALSE);
  g_print ("%s\n", text);
  fflush (stdout);
}

static void
print_bar (Progress *p, const char *phase, guint64 done, guint64 total)
{
  double secs = (g_get_monotonic_time () - p->start) / 1e6;
  double rate = secs > 0 ? done / secs : 0;
  g_autofree char *d = g_format_size (done);
  g_autofree char *r = g_format_size ((guint64) rate);
  if (total > 0 && total >= done)
    {
      int pct = (int) (100.0 * done / total);
      int eta = rate > 0 ? (int) ((total - done) / rate) : -1;
      g_printerr ("\r\033[K%-12s [%-20.*s] %3d%% %s %s/s ETA %ds", phase, pct / 5,
                  "####################", pct, d, r, eta);
    }
  else
    g_printerr ("\r\033[K%-12s %s %s/s", phase, d, r);
}

static void
on_event (AbUpdateEventKind kind, const char *phase, guint64 done, guint64 total,
          const char *message, gpointer user_data)
{
  Progress *p = user_data;
  static const char *const names[] = { "phase", "bytes", "message" };
  if (p->json)
    print_json_event (names[kind], phase, done, total, message);
  else if (p->bar && kind == AB_UPDATE_EVENT_BYTES)
    print_bar (p, phase, done, total);
  else if (p->bar && kind == AB_UPDATE_EVENT_PHASE)
    g_printerr ("\r\033[K%s\n", phase);
}

static gboolean
parse_progress (const char *value, Progress *p, GError **error)
{
  p->start = g_get_monotonic_time ();
  p->json = g_strcmp0 (value, "json") == 0;
  p->bar = value == NULL ? isatty (STDERR_FILENO) : g_strcmp0 (value, "bar") == 0;
  if (value && !p->json && !p->bar && g_strcmp0 (value, "none") != 0)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "--progress must be json, bar or none");
      return FALSE;
    }
  return TRUE;
}

/* Progress mode and SIGINT/SIGTERM cancellation, shared by update and resume. */
static int
prepare_run (GOptionContext *ctx, const char *progress, Progress *p, GCancellable **out_cancellable)
{
  g_autoptr(GError) error = NULL;
  if (!parse_progress (progress, p, &error))
    return cli_usage_error (ctx, error->message);
  *out_cancellable = cli_cancel_on_signals ();
  return AB_EXIT_OK;
}

int
cli_check_update (int argc, char **argv)
{
  gboolean json = FALSE;
  GOptionEntry entries[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print one JSON object", NULL },
    { NULL }
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new ("- fetch and verify the channel manifest; exit 0 when an update is available, 5 when not");
  int code = 0;
  if (!cli_parse_command (ctx, entries, &argc, &argv, &code))
    return code;
  if (argc > 1)
    return cli_usage_error (ctx, "check-update takes no arguments");
  GError *error = NULL;
  g_autoptr(AbSysroot) sysroot = cli_open_sysroot (&error);
  g_autoptr(AbUpdateCheck) c = sysroot ? ab_update_check (sysroot, &error) : NULL;
  if (c == NULL)
    return cli_fail (error);
  if (json)
    {
      g_autoptr(JsonNode) node = ab_update_check_to_json (c);
      g_autofree char *text = json_to_string (node, TRUE);
      g_print ("%s\n", text);
    }
  else
    {
      g_print ("Channel: %s (manifest serial %" G_GUINT64_FORMAT ", expires %s)\n", c->channel,
               c->serial, c->expires_at);
      g_print ("Installed: %s\n", c->installed_version ? c->installed_version : "nothing");
      if (c->offered_version)
        g_print ("Offered: %s (commit %s)\n", c->offered_version, c->offered_commit);
      else
        g_print ("No update: %s\n", c->reason);
      if (c->warning)
        g_printerr ("warning: %s\n", c->warning);
    }
  return c->offered_version ? AB_EXIT_OK : AB_EXIT_NOTHING_TO_DO;
}

int
cli_update (int argc, char **argv)
{
  g_autofree char *version = NULL;
  g_autofree char *progress = NULL;
  gboolean no_activate = FALSE, allow_downgrade = FALSE;
  GOptionEntry entries[] = {
    { "version", 0, 0, G_OPTION_ARG_STRING, &version, "Install this version of the channel", "V" },
    { "no-activate", 0, 0, G_OPTION_ARG_NONE, &no_activate, "Stage only; do not activate", NULL },
    { "allow-downgrade", 0, 0, G_OPTION_ARG_NONE, &allow_downgrade, "Allow a version older than the installed one", NULL },
    { "progress", 0, 0, G_OPTION_ARG_STRING, &progress, "json (one object per line on stdout), bar or none", "MODE" },
    { NULL }
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new ("- download, verify, stage and activate the channel's offered release");
  int code = 0;
  if (!cli_parse_command (ctx, entries, &argc, &argv, &code))
    return code;
  if (argc > 1)
    return cli_usage_error (ctx, "update takes no arguments");
  Progress p = { 0 };
  g_autoptr(GCancellable) cancellable = NULL;
  if ((code = prepare_run (ctx, progress, &p, &cancellable)) != AB_EXIT_OK)
    return code;
  GError *error = NULL;
  g_autoptr(AbSysroot) sysroot = cli_open_sysroot (&error);
  AbUpdateOptions opts = { version, !no_activate, allow_downgrade, on_event, &p, cancellable };
  if (sysroot == NULL || !ab_update_run (sysroot, &opts, &error))
    {
      if (p.json)
        print_json_event ("result", "failed", 0, 0, error->message);
      return cli_fail (error);
    }
  if (p.json)
    print_json_event ("result", "applied", 0, 0, NULL);
  else
    g_print ("Update installed%s\n", no_activate ? " (staged, not activated)" : "; it boots next, in trial mode");
  return AB_EXIT_OK;
}

int
cli_resume (int argc, char **argv)
{
  gboolean abandon = FALSE;
  g_autofree char *progress = NULL;
  GOptionEntry entries[] = {
    { "abandon", 0, 0, G_OPTION_ARG_NONE, &abandon, "Drop the unfinished transaction instead", NULL },
    { "progress", 0, 0, G_OPTION_ARG_STRING, &progress, "json, bar or none", "MODE" },
    { NULL }
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new ("- continue the recorded update transaction from its phase");
  int code = 0;
  if (!cli_parse_command (ctx, entries, &argc, &argv, &code))
    return code;
  Progress p = { 0 };
  g_autoptr(GCancellable) cancellable = NULL;
  if ((code = prepare_run (ctx, progress, &p, &cancellable)) != AB_EXIT_OK)
    return code;
  GError *error = NULL;
  g_autoptr(AbSysroot) sysroot = cli_open_sysroot (&error);
  AbUpdateOptions opts = { NULL, TRUE, FALSE, on_event, &p, cancellable };
  if (sysroot == NULL || !ab_update_resume (sysroot, &opts, abandon, &error))
    return cli_fail (error);
  g_print (abandon ? "Transaction abandoned\n" : "Update installed\n");
  return AB_EXIT_OK;
}

int
cli_pin (int argc, char **argv)
{
  gboolean clear = FALSE, allow_downgrade = FALSE;
  GOptionEntry entries[] = {
    { "clear", 0, 0, G_OPTION_ARG_NONE, &clear, "Remove the pin", NULL },
    { "allow-downgrade", 0, 0, G_OPTION_ARG_NONE, &allow_downgrade, "Allow a version older than the installed one", NULL },
    { NULL }
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new ("VERSION [--allow-downgrade] | --clear - hold the device at a version");
  int code = 0;
  if (!cli_parse_command (ctx, entries, &argc, &argv, &code))
    return code;
  if ((clear && argc != 1) || (!clear && argc != 2))
    return cli_usage_error (ctx, "give a VERSION, or --clear");
  GError *error = NULL;
  g_autoptr(AbSysroot) sysroot = cli_open_sysroot (&error);
  if (sysroot == NULL
      || !ab_update_pin (sysroot, clear ? NULL : argv[1], allow_downgrade, &error))
    return cli_fail (error);
  if (clear)
    g_print ("Pin cleared\n");
  else
    g_print ("Pinned to %s: check-update offers nothing else\n", argv[1]);
  return AB_EXIT_OK;
}
