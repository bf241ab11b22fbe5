/* CLI of the update client: check-update, update, resume, pin. Parses,
 * calls ab-update, prints. */
#include "config.h"
#include "cli.h"
#include "cli/ab-exitcode.h"
#include "ab-update.h"
#include "ab-version.h"

#include <json-glib/json-glib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* SIGINT/SIGTERM cancellation and the progress renderer, shared by
 * update and resume; NULL with *OUT_CODE set on a usage error. */
static CliProgress *
prepare_run (GOptionContext *ctx, const char *command, const CliProgressOptions *po,
             GCancellable **out_cancellable, int *out_code)
{
  CliProgress *p = cli_progress_start (ctx, command, po, out_code);
  if (p != NULL)
    *out_cancellable = cli_cancel_on_signals ();
  return p;
}

/* The offered release's signed customer note (issue 17), three parts. */
static void
print_notes (const AbReleaseNotes *n)
{
  g_print ("Release notes (signed by the publisher):\n");
  g_print ("  What changed: %s\n", n->changed ? n->changed : "-");
  g_print ("  What you need to do: %s\n", n->action ? n->action : "-");
  g_print ("  If something goes wrong: %s\n", n->rollback ? n->rollback : "-");
}

static void
print_check (const AbUpdateCheck *c)
{
  const AbRelease *offered = c->offered_version ? ab_manifest_find (c->manifest, c->offered_version)
                                                : NULL;
  g_print ("Channel: %s (manifest serial %" G_GUINT64_FORMAT ", expires %s)\n", c->channel,
           c->serial, c->expires_at);
  g_print ("Installed: %s\n", c->installed_version ? c->installed_version : "nothing");
  if (c->installed_deprecated)
    g_print ("DEPRECATED: the installed %s is deprecated by the publisher: %s\n",
             c->installed_version, c->installed_deprecated);
  if (c->pin)
    g_print ("Pin: %s (%s; resolves to %s)\n", c->pin, c->pin_exact ? "exact" : "rolling",
             c->pin_resolves_to ? c->pin_resolves_to : "nothing in the channel");
  if (offered)
    g_print ("Offered: %s (commit %s)%s\n", c->offered_version, c->offered_commit,
             c->offered_security ? " SECURITY UPDATE" : "");
  else
    g_print ("No update: %s\n", c->reason);
  if (offered && offered->notes)
    print_notes (offered->notes);
  if (c->warning && c->warning != c->installed_deprecated)
    g_printerr ("warning: %s\n", c->warning);
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
  if (!cli_parse_options_only (ctx, entries, &argc, &argv, &code))
    return code;
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
    print_check (c);
  return c->offered_version ? AB_EXIT_OK : AB_EXIT_NOTHING_TO_DO;
}

int
cli_update (int argc, char **argv)
{
  g_autofree char *version = NULL;
  g_auto(CliProgressOptions) po = { 0 };
  gboolean no_activate = FALSE, allow_downgrade = FALSE;
  GOptionEntry entries[] = {
    { "version", 0, 0, G_OPTION_ARG_STRING, &version, "Install this version of the channel", "V" },
    { "no-activate", 0, 0, G_OPTION_ARG_NONE, &no_activate, "Stage only; do not activate", NULL },
    { "allow-downgrade", 0, 0, G_OPTION_ARG_NONE, &allow_downgrade, "Allow a version older than the installed one", NULL },
    CLI_PROGRESS_OPTION_ENTRIES (po),
    { NULL }
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new ("- download, verify, stage and activate the channel's offered release");
  int code = 0;
  if (!cli_parse_options_only (ctx, entries, &argc, &argv, &code))
    return code;
  if (version != NULL && *version == '\0')
    return cli_usage_error (ctx, "--version= is empty: give a version of the channel "
                            "(abdeploy check-update --json lists the offered one)");
  g_autoptr(GCancellable) cancellable = NULL;
  g_autoptr(CliProgress) p = prepare_run (ctx, "update", &po, &cancellable, &code);
  if (p == NULL)
    return code;
  GError *error = NULL;
  g_autoptr(AbSysroot) sysroot = cli_open_sysroot_for (p, TRUE, &error);
  AbUpdateOptions opts = { .version = version, .activate = !no_activate,
                           .allow_downgrade = allow_downgrade, .cancellable = cancellable };
  if (sysroot == NULL || !ab_update_run (sysroot, &opts, &error))
    return cli_progress_fail (p, error);
  cli_progress_print (p, "Update installed%s", no_activate ? " (staged, not activated)"
                                                            : "; it boots next, in trial mode");
  cli_progress_finish (p, NULL);
  return AB_EXIT_OK;
}

int
cli_resume (int argc, char **argv)
{
  gboolean abandon = FALSE, if_interrupted = FALSE;
  g_auto(CliProgressOptions) po = { 0 };
  GOptionEntry entries[] = {
    { "abandon", 0, 0, G_OPTION_ARG_NONE, &abandon, "Drop the unfinished transaction instead", NULL },
    { "if-interrupted", 0, 0, G_OPTION_ARG_NONE, &if_interrupted,
      "Only an interrupted or retryable update, at most [update] max-resume-attempts times "
      "(abdeploy-resume.service; exit 5 when there is none)", NULL },
    CLI_PROGRESS_OPTION_ENTRIES (po),
    { NULL }
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new ("- continue the recorded update transaction from its phase");
  int code = 0;
  if (!cli_parse_options_only (ctx, entries, &argc, &argv, &code))
    return code;
  if (abandon && if_interrupted)
    return cli_usage_error (ctx, "--abandon and --if-interrupted exclude each other");
  g_autoptr(GCancellable) cancellable = NULL;
  g_autoptr(CliProgress) p = prepare_run (ctx, "resume", &po, &cancellable, &code);
  if (p == NULL)
    return code;
  GError *error = NULL;
  g_autoptr(AbSysroot) sysroot = cli_open_sysroot_for (p, TRUE, &error);
  AbUpdateOptions opts = { .activate = TRUE, .cancellable = cancellable };
  gboolean ok = sysroot != NULL
                && (if_interrupted ? ab_update_resume_interrupted (sysroot, &opts, &error)
                                   : ab_update_resume (sysroot, &opts, abandon, &error));
  if (!ok)
    return cli_progress_fail (p, error);
  cli_progress_print (p, abandon ? "Transaction abandoned" : "Update installed");
  cli_progress_finish (p, NULL);
  return AB_EXIT_OK;
}

int
cli_pin (int argc, char **argv)
{
  gboolean clear = FALSE, allow_downgrade = FALSE, force = FALSE;
  GOptionEntry entries[] = {
    { "clear", 0, 0, G_OPTION_ARG_NONE, &clear, "Remove the pin", NULL },
    { "allow-downgrade", 0, 0, G_OPTION_ARG_NONE, &allow_downgrade, "Allow a version older than the installed one", NULL },
    { "force", 0, 0, G_OPTION_ARG_NONE, &force, "Pin even when no release follows the pin or the manifest cannot be fetched", NULL },
    { NULL }
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new ("VERSION [--allow-downgrade] [--force] | --clear - hold the device at a version (1.4.2 exact; 1.4 or 1: the newest that follows)");
  int code = 0;
  if (!cli_parse_command (ctx, entries, &argc, &argv, &code))
    return code;
  if (clear && argc > 1)
    return cli_extra_argument (ctx, argv[1], "no VERSION with --clear");
  if (!clear && argc != 2)
    return cli_one_argument (ctx, argc, argv, "VERSION (or --clear)");
  if (clear && allow_downgrade)
    return cli_usage_error (ctx, "--clear and --allow-downgrade conflict: --allow-downgrade "
                            "goes with pin VERSION");
  if (clear && force)
    return cli_usage_error (ctx, "--clear and --force conflict: --force goes with pin VERSION");
  if (!clear && *argv[1] == '\0')
    return cli_usage_error (ctx, "the VERSION is empty: give a version of the channel");
  GError *error = NULL;
  g_autoptr(AbSysroot) sysroot = cli_open_sysroot_to_write (&error);
  if (sysroot == NULL
      || !ab_update_pin (sysroot, clear ? NULL : argv[1], allow_downgrade, force, &error))
    return cli_fail (error);
  if (clear)
    g_print ("Pin cleared\n");
  else
    g_print ("Pinned to %s%s: check-update offers nothing else\n", argv[1],
             ab_version_pin_is_exact (argv[1]) ? "" : " (rolling: the newest release that follows it)");
  return AB_EXIT_OK;
}
