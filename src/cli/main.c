/* abdeploy command line: parses options, calls the library, prints. */
#include "config.h"
#include "ab-deploy.h"
#include "cli.h"
#include "cli-suggest.h"
#include "cli/ab-exitcode.h"
#include "ab-health.h"
#include "ab-format.h"
#include "ab-history.h"
#include "ab-json.h"
#include "ab-recover.h"
#include "ab-status.h"
#include "ab-sysroot.h"

#include "ab-content.h"

#include <json-glib/json-glib.h>
#include <locale.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char *opt_sysroot = NULL;
static char *opt_config = NULL;
static gboolean opt_verbose = FALSE;

static GOptionEntry global_entries[] = {
  { "sysroot", 0, 0, G_OPTION_ARG_FILENAME, &opt_sysroot, "Operate on sysroot DIR (default /)", "DIR" },
  { "config", 0, 0, G_OPTION_ARG_FILENAME, &opt_config, "Read configuration from FILE only", "FILE" },
  { "verbose", 'v', 0, G_OPTION_ARG_NONE, &opt_verbose, "Print debug messages", NULL },
  { NULL }
};

typedef struct
{
  const char *name;
  const char *args;
  const char *summary;
  int (*run) (int argc, char **argv);
} Command;

const char *
cli_sysroot_path (void)
{
  return opt_sysroot ? opt_sysroot : "/";
}

const char *
cli_config_path (void)
{
  return opt_config;
}

int
cli_fail (GError *error)
{
  g_printerr ("abdeploy: %s\n", error->message);
  int code = ab_exit_code_for_error (error);
  g_error_free (error);
  return code;
}

int
cli_usage_error (GOptionContext *ctx, const char *message)
{
  g_printerr ("abdeploy: %s\n", message);
  g_autofree char *help = g_option_context_get_help (ctx, TRUE, NULL);
  g_printerr ("%s", help);
  return AB_EXIT_USAGE;
}

int
cli_extra_argument (GOptionContext *ctx, const char *arg, const char *takes)
{
  g_autofree char *msg = g_strdup_printf ("unexpected argument \"%s\": %s takes %s", arg,
                                          g_get_prgname (), takes ? takes : "options only");
  return cli_usage_error (ctx, msg);
}

int
cli_one_argument (GOptionContext *ctx, int argc, char **argv, const char *what)
{
  g_autofree char *takes = g_strdup_printf ("one %s", what);
  if (argc > 2)
    return cli_extra_argument (ctx, argv[2], takes);
  g_autofree char *msg = g_strdup_printf ("%s needs one %s", g_get_prgname (), what);
  return cli_usage_error (ctx, msg);
}

int
cli_bad_number (GOptionContext *ctx, const char *option, int value, const char *accepted)
{
  g_autofree char *msg = g_strdup_printf ("%s=%d: give %s", option, value, accepted);
  return cli_usage_error (ctx, msg);
}

/* Adds the long names of ENTRIES, as "--NAME", to NAMES. */
static void
add_option_names (GPtrArray *names, const GOptionEntry *entries)
{
  for (const GOptionEntry *e = entries; e && e->long_name; e++)
    g_ptr_array_add (names, g_strconcat ("--", e->long_name, NULL));
}

/* The first "--NAME" of ARGV (before "--") that none of ENTRIES, the global
 * options and --help is: the one GLib calls unknown. */
static char *
unknown_option (int argc, char **argv, const GOptionEntry *entries, GPtrArray *names)
{
  add_option_names (names, entries);
  add_option_names (names, global_entries);
  g_ptr_array_add (names, g_strdup ("--help"));
  g_ptr_array_add (names, NULL);
  for (int i = 1; i < argc && strcmp (argv[i], "--") != 0; i++)
    {
      if (!g_str_has_prefix (argv[i], "--"))
        continue;
      g_autofree char *name = g_strndup (argv[i], strcspn (argv[i], "="));
      if (!g_strv_contains ((const char *const *) names->pdata, name))
        return g_steal_pointer (&name);
    }
  return NULL;
}

/* GLib's message for ERROR, with the nearest known option when an unknown
 * one is close to it. */
static char *
parse_error_text (const GError *error, int argc, char **argv, const GOptionEntry *entries)
{
  if (!g_error_matches (error, G_OPTION_ERROR, G_OPTION_ERROR_UNKNOWN_OPTION))
    return g_strdup (error->message);
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *bad = unknown_option (argc, argv, entries, names);
  g_autofree char *hint = bad ? cli_did_you_mean (bad, (const char *const *) names->pdata)
                              : g_strdup ("");
  return g_strconcat (error->message, hint, NULL);
}

/* The global options as they appear under COMMAND: offered (in --help and
 * completion) or, under publish, only accepted, so that scripts that give
 * them keep working. */
static GOptionEntry *
globals_for (gboolean hidden)
{
  static GOptionEntry copy[G_N_ELEMENTS (global_entries)];
  memcpy (copy, global_entries, sizeof copy);
  for (guint i = 0; hidden && copy[i].long_name; i++)
    copy[i].flags |= G_OPTION_FLAG_HIDDEN;
  return copy;
}

/* GLib takes "--FLAG=VALUE" for a flag without a value and drops the
 * value: the first such word of ARGV (before "--"), or NULL. */
static const char *
flag_with_value (int argc, char **argv, const GOptionEntry *entries)
{
  for (int i = 1; i < argc && strcmp (argv[i], "--") != 0; i++)
    for (const GOptionEntry *e = entries; e && e->long_name; e++)
      if (e->arg == G_OPTION_ARG_NONE && g_str_has_prefix (argv[i], "--")
          && g_str_has_prefix (argv[i] + 2, e->long_name)
          && argv[i][2 + strlen (e->long_name)] == '=')
        return argv[i];
  return NULL;
}

/* A usage error for a flag given a value, in ENTRIES or the globals. */
static gboolean
refuse_flag_value (GOptionContext *ctx, int argc, char **argv, const GOptionEntry *entries,
                   int *out_code)
{
  const char *word = flag_with_value (argc, argv, entries);
  if (word == NULL)
    word = flag_with_value (argc, argv, global_entries);
  if (word == NULL)
    return FALSE;
  g_autofree char *flag = g_strndup (word, strcspn (word, "="));
  g_autofree char *msg = g_strdup_printf ("%s takes no value (give %s, not %s)", flag, flag, word);
  *out_code = cli_usage_error (ctx, msg);
  return TRUE;
}

static gboolean
parse_command (GOptionContext *ctx, const GOptionEntry *entries, gboolean hide_globals,
               int *argc, char ***argv, int *out_code)
{
  if (entries)
    g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_main_entries (ctx, globals_for (hide_globals), NULL);
  g_autoptr(GError) error = NULL;
  /* GLib removes what it parsed: keep the words for the message */
  g_auto(GStrv) words = g_strdupv (*argv);
  int nwords = *argc;
  if (refuse_flag_value (ctx, nwords, words, entries, out_code))
    return FALSE;
  if (!g_option_context_parse (ctx, argc, argv, &error))
    {
      g_autofree char *text = parse_error_text (error, nwords, words, entries);
      *out_code = cli_usage_error (ctx, text);
      return FALSE;
    }
  if (opt_verbose)
    g_log_set_debug_enabled (TRUE);
  return TRUE;
}

/* Parses ARGV with the command's entries plus the global ones. */
gboolean
cli_parse_command (GOptionContext *ctx, const GOptionEntry *entries, int *argc, char ***argv,
               int *out_code)
{
  return parse_command (ctx, entries, FALSE, argc, argv, out_code);
}

gboolean
cli_parse_options_only (GOptionContext *ctx, const GOptionEntry *entries, int *argc,
                        char ***argv, int *out_code)
{
  if (!cli_parse_command (ctx, entries, argc, argv, out_code))
    return FALSE;
  if (*argc <= 1)
    return TRUE;
  *out_code = cli_extra_argument (ctx, (*argv)[1], NULL);
  return FALSE;
}

gboolean
cli_parse_publish_command (GOptionContext *ctx, const GOptionEntry *entries, int *argc,
                           char ***argv, int *out_code)
{
  return parse_command (ctx, entries, TRUE, argc, argv, out_code);
}

static GCancellable *cancel_on_signal;

/* SIGINT and SIGTERM are blocked in every thread and taken here, so no
 * handler runs in async-signal context: the first cancels, a second one
 * (the cancellation did not end the process) exits at once; every state
 * write is atomic, so that leaves nothing half-written. */
static void *
signal_thread (void *data)
{
  sigset_t *set = data;
  for (guint n = 0;; n++)
    {
      int sig = 0;
      if (sigwait (set, &sig) != 0)
        return NULL;
      const char *name = sig == SIGINT ? "SIGINT" : "SIGTERM";
      if (n > 0)
        {
          g_printerr ("\nabdeploy: %s received again; exiting now\n", name);
          _exit (128 + sig);
        }
      g_printerr ("\nabdeploy: %s received; cancelling\n", name);
      g_cancellable_cancel (cancel_on_signal);
    }
}

GCancellable *
cli_cancel_on_signals (void)
{
  static sigset_t set;
  if (cancel_on_signal != NULL)
    return g_object_ref (cancel_on_signal);
  sigemptyset (&set);
  sigaddset (&set, SIGINT);
  sigaddset (&set, SIGTERM);
  pthread_sigmask (SIG_BLOCK, &set, NULL);
  cancel_on_signal = g_cancellable_new ();
  pthread_t th;
  if (pthread_create (&th, NULL, signal_thread, &set) == 0)
    pthread_detach (th);
  return g_object_ref (cancel_on_signal);
}

/* The renderer of every command's messages, notes and warnings. */
static CliProgress *
text_renderer (void)
{
  static CliProgress *text;
  if (text == NULL)
    text = cli_progress_new_text ();
  return text;
}

CliProgress *
cli_progress_start (GOptionContext *ctx, const char *command, const CliProgressOptions *o,
                    int *out_code)
{
  g_autoptr(GError) error = NULL;
  CliProgress *p = cli_progress_new (command, o, &error);
  if (p == NULL)
    *out_code = cli_usage_error (ctx, error->message);
  return p;
}

int
cli_progress_fail (CliProgress *p, GError *error)
{
  cli_progress_finish (p, error);
  return cli_fail (error);
}

AbSysroot *
cli_open_sysroot (GError **error)
{
  AbSysroot *sysroot = ab_sysroot_open (cli_sysroot_path (), opt_config, error);
  if (sysroot != NULL)
    sysroot->events = cli_progress_sink (text_renderer ());
  if (sysroot == NULL || !ab_config_url_exposed (sysroot->config, sysroot->dfd))
    return sysroot;
  const AbConfigUpdate *u = &sysroot->config->update;
  g_autofree char *file = u->url_file_from_cwd ? g_strdup (u->url_file)
                                               : g_build_filename (sysroot->path, u->url_file, NULL);
  g_printerr ("abdeploy: warning: [update] url in %s holds credentials, but other users can "
              "read that file: chmod 600 %s\n", file, file);
  return sysroot;
}

/* "Bootloader backends:" and one line per backend of the table. */
static char *
backends_help (void)
{
  g_autoptr(GString) s = g_string_new ("Bootloader backends (--bootloader=NAME):\n");
  for (const AbBootloaderOps *const *b = ab_bootloader_backends (); *b != NULL; b++)
    g_string_append_printf (s, "  %-14s %s%s\n", (*b)->name, (*b)->summary,
                            g_str_equal ((*b)->name, AB_BOOTLOADER_DEFAULT) ? " (default)" : "");
  return g_string_free (g_steal_pointer (&s), FALSE);
}

AbSysroot *
cli_open_sysroot_to_write (GError **error)
{
  g_autoptr(AbSysroot) sysroot = cli_open_sysroot (error);
  AbRecovery done = AB_RECOVERY_NONE;
  if (sysroot == NULL || !ab_recover (sysroot, &done, error))
    return NULL;
  if (done == AB_RECOVERY_RESTORE_COMPLETED)
    g_printerr ("Completed the restore that was interrupted (from %s/abdeploy/%s)\n",
                sysroot->path, AB_SYSROOT_RESTORE_JOURNAL);
  return g_steal_pointer (&sysroot);
}

AbSysroot *
cli_open_sysroot_for (CliProgress *p, gboolean to_write, GError **error)
{
  AbSysroot *sysroot = to_write ? cli_open_sysroot_to_write (error) : cli_open_sysroot (error);
  if (sysroot != NULL)
    sysroot->events = cli_progress_sink (p);
  return sysroot;
}

/* --bootloader=NAME that is no backend: the nearest one and the list. */
static int
bad_bootloader (GOptionContext *ctx, const char *name, const char *names)
{
  g_autoptr(GPtrArray) known = g_ptr_array_new ();
  for (const AbBootloaderOps *const *b = ab_bootloader_backends (); *b != NULL; b++)
    g_ptr_array_add (known, (gpointer) (*b)->name);
  g_ptr_array_add (known, NULL);
  g_autofree char *hint = cli_did_you_mean (name, (const char *const *) known->pdata);
  g_autofree char *msg = g_strdup_printf ("unknown bootloader backend \"%s\"%s (backends: %s)",
                                          name, hint, names);
  return cli_usage_error (ctx, msg);
}

static int
cmd_init (int argc, char **argv)
{
  g_autofree char *os = NULL;
  g_autofree char *bootloader = NULL;
  g_autofree char *names = ab_bootloader_names_text ();
  g_autofree char *bl_help = g_strdup_printf ("Bootloader backend: %s (default %s)", names,
                                              AB_BOOTLOADER_DEFAULT);
  GOptionEntry entries[] = {
    { "os", 0, 0, G_OPTION_ARG_STRING, &os, "Name of the operating system (required)", "NAME" },
    { "bootloader", 0, 0, G_OPTION_ARG_STRING, &bootloader, bl_help, "NAME" },
    { NULL }
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new ("- create the abdeploy layout in the sysroot");
  g_autofree char *description = backends_help ();
  g_option_context_set_description (ctx, description);
  int code = 0;
  if (!cli_parse_options_only (ctx, entries, &argc, &argv, &code))
    return code;
  if (os == NULL || *os == '\0')
    return cli_usage_error (ctx, "init needs --os=NAME");
  if (bootloader == NULL)
    bootloader = g_strdup (AB_BOOTLOADER_DEFAULT);
  if (ab_bootloader_lookup (bootloader) == NULL)
    return bad_bootloader (ctx, bootloader, names);
  GError *error = NULL;
  gboolean created = FALSE;
  if (!ab_sysroot_init (cli_sysroot_path (), opt_config, os, bootloader,
                        cli_progress_sink (text_renderer ()), &created, &error))
    return cli_fail (error);
  if (created)
    g_print ("Initialized abdeploy sysroot %s (os %s, bootloader %s)\n", cli_sysroot_path (), os,
             bootloader);
  else
    g_print ("Sysroot %s is already initialized; nothing changed\n", cli_sysroot_path ());
  return AB_EXIT_OK;
}

static gboolean
do_stage (const char *from, const char *refspec, AbSysroot *sysroot, CliProgress *progress,
          gboolean tolerate_staged, GCancellable *cancellable, GError **error)
{
  AbStageOptions opts = { .source = from, .refspec = refspec, .cancellable = cancellable };
  AbSlot slot = AB_SLOT_NONE;
  g_autoptr(GError) local = NULL;
  gboolean ok = ab_deploy_stage (sysroot, &opts, &slot, &local);
  if (!ok && tolerate_staged && g_error_matches (local, AB_DEPLOY_ERROR, AB_DEPLOY_ERROR_ALREADY_STAGED))
    return TRUE;
  if (!ok)
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  cli_progress_print (progress, "Staged %s into slot %s", refspec, ab_slot_name (slot));
  return TRUE;
}

/* --tries=N given (TRIES is not TRIES_UNSET) must be 1..AB_CONFIG_MAX_TRIES;
 * 0 in *OUT means the configured default. */
#define TRIES_UNSET G_MININT
static gboolean
check_tries (GOptionContext *ctx, int tries, int *out, int *out_code)
{
  *out = tries == TRIES_UNSET ? 0 : tries;
  if (tries == TRIES_UNSET || (tries >= 1 && tries <= AB_CONFIG_MAX_TRIES))
    return TRUE;
  *out_code = cli_bad_number (ctx, "--tries", tries, "a number from 1 to 9");
  return FALSE;
}

static int
run_stage_like (int argc, char **argv, gboolean activate)
{
  g_autofree char *from = NULL;
  int tries = TRIES_UNSET;
  g_auto(CliProgressOptions) po = { 0 };
  GOptionEntry entries[] = {
    { "from", 0, 0, G_OPTION_ARG_STRING, &from, "Pull from URL (http, https) or local repo PATH", "URL|PATH" },
    CLI_PROGRESS_OPTION_ENTRIES (po),
    { "tries", 0, 0, G_OPTION_ARG_INT, &tries, "Trial boots before falling back (deploy only)", "N" },
    { NULL }
  };
  if (!activate)
    entries[3] = (GOptionEntry) { NULL };
  g_autoptr(GOptionContext) ctx = g_option_context_new (
      activate ? "REF|COMMIT - stage a signed commit, then activate it"
               : "REF|COMMIT - pull, verify and check out a signed commit into the inactive slot");
  int code = 0;
  if (!cli_parse_command (ctx, entries, &argc, &argv, &code))
    return code;
  if (argc != 2)
    return cli_one_argument (ctx, argc, argv, "REF or COMMIT");
  if (!check_tries (ctx, tries, &tries, &code))
    return code;
  g_autoptr(CliProgress) progress = cli_progress_start (ctx, activate ? "deploy" : "stage", &po,
                                                        &code);
  if (progress == NULL)
    return code;
  GError *error = NULL;
  g_autoptr(GCancellable) cancellable = cli_cancel_on_signals ();
  g_autoptr(AbSysroot) sysroot = cli_open_sysroot_for (progress, TRUE, &error);
  if (sysroot == NULL
      || !do_stage (from, argv[1], sysroot, progress, activate, cancellable, &error))
    return cli_progress_fail (progress, error);
  AbSlot slot = AB_SLOT_NONE;
  if (activate && !ab_deploy_activate (sysroot, tries, &slot, &error))
    return cli_progress_fail (progress, error);
  if (activate)
    cli_progress_print (progress, "Activated slot %s: it boots next, in trial mode",
                        ab_slot_name (slot));
  cli_progress_finish (progress, NULL);
  return AB_EXIT_OK;
}

static int
cmd_stage (int argc, char **argv)
{
  return run_stage_like (argc, argv, FALSE);
}

static int
cmd_deploy (int argc, char **argv)
{
  return run_stage_like (argc, argv, TRUE);
}

static int
cmd_activate (int argc, char **argv)
{
  int tries = TRIES_UNSET;
  GOptionEntry entries[] = {
    { "tries", 0, 0, G_OPTION_ARG_INT, &tries, "Trial boots before falling back (default: [boot] tries, 3)", "N" },
    { NULL }
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new ("- make the staged slot boot next, in trial mode");
  int code = 0;
  if (!cli_parse_options_only (ctx, entries, &argc, &argv, &code))
    return code;
  if (!check_tries (ctx, tries, &tries, &code))
    return code;
  GError *error = NULL;
  g_autoptr(AbSysroot) sysroot = cli_open_sysroot_to_write (&error);
  AbSlot slot = AB_SLOT_NONE;
  if (sysroot == NULL || !ab_deploy_activate (sysroot, tries, &slot, &error))
    return cli_fail (error);
  g_print ("Activated slot %s: it boots next, in trial mode\n", ab_slot_name (slot));
  return AB_EXIT_OK;
}

static int
cmd_rollback (int argc, char **argv)
{
  g_autoptr(GOptionContext) ctx = g_option_context_new ("- make the other slot primary again");
  int code = 0;
  if (!cli_parse_options_only (ctx, NULL, &argc, &argv, &code))
    return code;
  GError *error = NULL;
  g_autoptr(AbSysroot) sysroot = cli_open_sysroot_to_write (&error);
  AbSlot slot = AB_SLOT_NONE;
  if (sysroot == NULL || !ab_deploy_rollback (sysroot, &slot, &error))
    return cli_fail (error);
  g_print ("Rolled back: slot %s is primary again\n", ab_slot_name (slot));
  return AB_EXIT_OK;
}

static int
cmd_status (int argc, char **argv)
{
  gboolean json = FALSE;
  GOptionEntry entries[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print one JSON object", NULL },
    { NULL }
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new ("- show the slots and what boots next");
  int code = 0;
  if (!cli_parse_options_only (ctx, entries, &argc, &argv, &code))
    return code;
  GError *error = NULL;
  g_autoptr(AbSysroot) sysroot = cli_open_sysroot (&error);
  if (sysroot == NULL)
    return cli_fail (error);
  if (json)
    {
      g_autoptr(JsonNode) node = ab_status_to_json (sysroot, &error);
      if (node == NULL)
        return cli_fail (error);
      g_autofree char *text = json_to_string (node, TRUE);
      g_print ("%s\n", text);
      return AB_EXIT_OK;
    }
  g_autofree char *text = ab_status_to_text (sysroot, &error);
  if (text == NULL)
    return cli_fail (error);
  g_print ("%s", text);
  return AB_EXIT_OK;
}

/* The action a verdict asked for: the reboot, or why it is held; said on
 * stdout, or on stderr when stdout carries the JSON report. */
static void
carry_out (const AbHealthOutcome *o, gboolean json)
{
  void (*say) (const char *, ...) = json ? g_printerr : g_print;
  if (o->held != AB_HEALTH_HOLD_NONE)
    say ("Would reboot now (action %s); not rebooting: %s\n", ab_health_verdict_name (o->verdict),
         o->held == AB_HEALTH_HOLD_NO_REBOOT ? "--no-reboot" : "--sysroot is not /");
  if (o->action != AB_HEALTH_ACTION_REBOOT)
    return;
  say ("Rebooting (%s)\n", o->reboot_command);
  g_autoptr(GError) error = NULL;
  if (!g_spawn_command_line_async (o->reboot_command, &error))
    g_printerr ("abdeploy: could not reboot: %s\n", error->message);
}

/* health-check --json: every event (hook output included) goes to stderr,
 * stdout carries the report alone. */
static void
event_to_stderr (const AbEvent *ev, gpointer user_data)
{
  if (ev->kind == AB_EVENT_WARNING && ev->tolerated)
    cli_print_tolerated (ev->message);
  else if (ev->kind == AB_EVENT_MESSAGE || ev->kind == AB_EVENT_WARNING)
    g_printerr ("%s%s\n", ev->kind == AB_EVENT_WARNING ? "warning: " : "", ev->message);
}

static int
health_check_result (const AbHealthOutcome *o, gboolean json)
{
  if (json)
    {
      g_autoptr(JsonNode) node = ab_health_outcome_to_json (o);
      g_autofree char *text = json_to_string (node, TRUE);
      g_print ("%s\n", text);
      fflush (stdout);
    }
  carry_out (o, json);
  if (!json)
    g_print ("Verdict: %s (action: %s)\n", o->green ? "GREEN" : "RED",
             ab_health_verdict_name (o->verdict));
  return o->green ? AB_EXIT_OK : AB_EXIT_RED;
}

static int
cmd_health_check (int argc, char **argv)
{
  gboolean no_reboot = FALSE, json = FALSE;
  GOptionEntry entries[] = {
    { "no-reboot", 0, 0, G_OPTION_ARG_NONE, &no_reboot, "Never reboot; print the action instead", NULL },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print the verdict as one JSON object", NULL },
    { NULL }
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new ("- run the health hooks of this boot and act on the verdict");
  int code = 0;
  if (!cli_parse_options_only (ctx, entries, &argc, &argv, &code))
    return code;
  GError *error = NULL;
  g_autoptr(AbEventSink) to_stderr = ab_event_sink_new (event_to_stderr, NULL);
  g_autoptr(AbSysroot) sysroot = cli_open_sysroot_to_write (&error);
  AbHealthOptions opts = { .no_reboot = no_reboot };
  g_auto(AbHealthOutcome) outcome = { 0 };
  if (sysroot != NULL && json)
    sysroot->events = to_stderr;
  if (sysroot == NULL || !ab_health_check (sysroot, &opts, &outcome, &error))
    return cli_fail (error);
  return health_check_result (&outcome, json);
}

static int
run_mark (int argc, char **argv, gboolean good)
{
  g_autoptr(GOptionContext) ctx = g_option_context_new (
      good ? "[booted|other|a|b] - mark a slot good" : "[booted|other|a|b] - mark a slot bad");
  int code = 0;
  if (!cli_parse_command (ctx, NULL, &argc, &argv, &code))
    return code;
  static const char *const slots[] = { "booted", "other", "a", "b", NULL };
  if (argc > 2)
    return cli_extra_argument (ctx, argv[2], "at most one slot");
  if (argc == 2 && !g_strv_contains (slots, argv[1]))
    {
      g_autofree char *hint = cli_did_you_mean (argv[1], slots);
      g_autofree char *msg = g_strdup_printf ("unknown slot \"%s\"%s (slots: booted, other, a, b)",
                                              argv[1], hint);
      return cli_usage_error (ctx, msg);
    }
  GError *error = NULL;
  g_autoptr(AbSysroot) sysroot = cli_open_sysroot_to_write (&error);
  AbSlot slot = AB_SLOT_NONE;
  if (sysroot == NULL || !ab_health_mark (sysroot, argc == 2 ? argv[1] : "booted", good, &slot, &error))
    return cli_fail (error);
  g_print ("Marked slot %s %s\n", ab_slot_name (slot), good ? "good" : "bad");
  return AB_EXIT_OK;
}

static int
cmd_mark_good (int argc, char **argv)
{
  return run_mark (argc, argv, TRUE);
}

static int
cmd_mark_bad (int argc, char **argv)
{
  return run_mark (argc, argv, FALSE);
}

static void
print_event_text (JsonObject *e)
{
  static const char *const keys[] = { "slot", "version", "verdict", "action", "failed_hooks",
                                      "from_version", "to_version", "reason", "origin", NULL };
  g_print ("%-20s %-10s", json_object_get_string_member_with_default (e, "at", "-"),
           json_object_get_string_member_with_default (e, "type", "-"));
  for (const char *const *k = keys; *k; k++)
    {
      JsonNode *n = json_object_get_member (e, *k);
      if (n && JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == G_TYPE_STRING)
        g_print (" %s=%s", *k, json_node_get_string (n));
    }
  g_print ("\n");
}

static int
cmd_history (int argc, char **argv)
{
  gboolean json = FALSE;
  GOptionEntry entries[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print a JSON array, newest first", NULL },
    { NULL }
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new ("- deploys, activations, verdicts and rollbacks, newest first");
  int code = 0;
  if (!cli_parse_options_only (ctx, entries, &argc, &argv, &code))
    return code;
  GError *error = NULL;
  g_autoptr(AbSysroot) sysroot = cli_open_sysroot (&error);
  g_autoptr(JsonArray) events = sysroot ? ab_history_load (sysroot->state_dfd, sysroot->events,
                                                           &error) : NULL;
  if (events == NULL)
    return cli_fail (error);
  if (json)
    {
      g_autoptr(JsonNode) node = json_node_new (JSON_NODE_ARRAY);
      json_node_set_array (node, events);
      g_autofree char *text = json_to_string (node, TRUE);
      g_print ("%s\n", text);
      return AB_EXIT_OK;
    }
  for (guint i = 0; i < json_array_get_length (events); i++)
    print_event_text (json_array_get_object_element (events, i));
  return AB_EXIT_OK;
}

static int cmd_help (int argc, char **argv);

static const Command commands[] = {
  { "init", "--os=NAME [--bootloader=NAME]", "Create the layout under the sysroot", cmd_init },
  { "stage", "[--from=URL|PATH] [--progress=MODE] REF|COMMIT", "Pull, verify and check out into the inactive slot", cmd_stage },
  { "activate", "[--tries=N]", "Make the staged slot boot next, in trial mode", cmd_activate },
  { "deploy", "[--from=URL|PATH] [--tries=N] [--progress=MODE] REF|COMMIT", "Stage, then activate", cmd_deploy },
  { "rollback", "", "Make the other slot primary again", cmd_rollback },
  { "status", "[--json]", "Show the slots and what boots next", cmd_status },
  { "health-check", "[--no-reboot] [--json]", "Run the health hooks and act on the verdict", cmd_health_check },
  { "mark-good", "[booted|other|a|b]", "Mark a slot good", cmd_mark_good },
  { "mark-bad", "[booted|other|a|b]", "Mark a slot bad", cmd_mark_bad },
  { "history", "[--json]", "Deploys, activations, verdicts, rollbacks", cmd_history },
  { "check-update", "[--json]", "Fetch and verify the channel manifest", cli_check_update },
  { "update", "[--version=V] [--no-activate] [--progress=MODE]", "Download, verify, stage, activate", cli_update },
  { "resume", "[--abandon|--if-interrupted] [--progress=MODE]", "Continue the recorded update transaction", cli_resume },
  { "pin", "VERSION [--allow-downgrade] | --clear", "Hold the device at a version", cli_pin },
  { "version", "[--json]", "What is running: versions, commit, source revision", cli_version },
  { "verify", "[--full] [--sample=N] [--json] [--progress=MODE]", "Post-upgrade checks; exit 0 only when all pass", cli_verify },
  { "backup", "--output=FILE|- [--force] [--progress=MODE]", "Archive config, keys, state, pointer, refs (tar)", cli_backup },
  { "restore", "--path=FILE [--progress=MODE]", "Verify an archive, then restore it", cli_restore },
  { "migrate", "", "Migrate the sysroot to the current layout now", cli_migrate },
  { "install", "--disk=PATH --bootloader=NAME --from=URL|PATH REF", "Factory install: a signed commit to a bootable disk", cli_install },
  { "publish", "SUBCOMMAND [OPTIONS]", "Publisher: commit, release, promote, deprecate, deltas, prune, refresh", cli_publish },
  { "daemon", "[--idle-timeout=SEC]", "Serve the D-Bus API org.abdeploy1 (abdeploy-dbus(5))", cli_daemon },
  { "help", "[COMMAND [SUBCOMMAND]]", "Show this list, or a command's options", cmd_help },
};

/* The command names, NULL-terminated. */
static const char *const *
command_names (void)
{
  static const char *names[G_N_ELEMENTS (commands) + 1];
  for (guint i = 0; i < G_N_ELEMENTS (commands); i++)
    names[i] = commands[i].name;
  return names;
}

static const Command *
lookup_command (const char *name)
{
  for (guint i = 0; i < G_N_ELEMENTS (commands); i++)
    if (strcmp (name, commands[i].name) == 0)
      return &commands[i];
  return NULL;
}

static void
print_usage (FILE *f)
{
  fprintf (f, "Usage: abdeploy [--sysroot=DIR] [--config=FILE] [-v] COMMAND [OPTIONS]\n\nCommands:\n");
  for (guint i = 0; i < G_N_ELEMENTS (commands); i++)
    fprintf (f, "  %-12s %-42s %s\n", commands[i].name, commands[i].args, commands[i].summary);
  g_autofree char *subs = g_strjoinv (", ", (char **) cli_publish_subcommands ());
  fprintf (f, "\nPublisher subcommands (abdeploy publish SUBCOMMAND): %s.\n", subs);
  fprintf (f, "\nGlobal options (before or after COMMAND, not under publish):\n"
              "  --sysroot=DIR   Operate on the sysroot DIR (default /)\n"
              "  --config=FILE   Read the configuration from FILE only\n"
              "  -v, --verbose   Print debug messages\n"
              "\nProgress (stage, deploy, update, resume, verify, backup, restore, publish commit,\n"
              "publish deltas):\n"
              "  --progress=auto|bar|json|none   A terminal bar, JSON lines or nothing\n"
              "  --progress-fd=N                 Write the progress to file descriptor N\n");
  fprintf (f, "\nRun abdeploy help COMMAND (or abdeploy COMMAND --help) for a command's "
              "options. See abdeploy(8).\n");
}

/* "abdeploy COMMAND", as the usage line of COMMAND's --help shows it. */
static void
set_prgname (const Command *c)
{
  g_autofree char *name = g_strconcat ("abdeploy ", c->name, NULL);
  g_set_prgname (name);
}

/* "unknown command" with the nearest one, and the list; exit 2. */
static int
unknown_command (const char *what, const char *word, const char *const *known)
{
  g_autofree char *hint = cli_did_you_mean (word, known);
  g_printerr ("abdeploy: unknown %s \"%s\"%s\n\n", what, word, hint);
  print_usage (stderr);
  return AB_EXIT_USAGE;
}

/* abdeploy help [COMMAND [SUBCOMMAND]]: the same text as --help. */
static int
cmd_help (int argc, char **argv)
{
  g_autoptr(GOptionContext) ctx = g_option_context_new ("[COMMAND [SUBCOMMAND]] - the commands, or a command's options");
  int code = 0;
  if (!cli_parse_command (ctx, NULL, &argc, &argv, &code))
    return code;
  if (argc < 2 || strcmp (argv[1], "help") == 0)
    {
      print_usage (stdout);
      return argc > 2 ? AB_EXIT_USAGE : AB_EXIT_OK;
    }
  const Command *c = lookup_command (argv[1]);
  if (c == NULL)
    return unknown_command ("command", argv[1], command_names ());
  if (c->run == cli_publish && argc <= 3)
    return cli_publish_help (argc > 2 ? argv[2] : NULL);
  if (argc > 2)
    {
      g_printerr ("abdeploy: help takes one COMMAND (publish: and a SUBCOMMAND), not \"%s\"\n",
                  argv[argc - 1]);
      return AB_EXIT_USAGE;
    }
  char *help_argv[] = { argv[1], (char *) "--help", NULL };
  set_prgname (c);
  /* GOptionContext prints the help and exits 0 */
  return c->run (2, help_argv);
}

/* Index of the command word in ARGV (global options may come first). */
static int
find_command (int argc, char **argv)
{
  for (int i = 1; i < argc; i++)
    {
      const char *a = argv[i];
      if (a[0] != '-')
        return i;
      if (strcmp (a, "--sysroot") == 0 || strcmp (a, "--config") == 0)
        i++;
    }
  return -1;
}

/* No command word: --help, --version, or a usage error that names what
 * is wrong (an unknown option, or no command at all). */
static int
no_command (int argc, char **argv)
{
  static const char *const known[] = { "--sysroot", "--config", "--verbose", "--help",
                                       "--version", NULL };
  const char *bad = NULL;
  for (int i = 1; i < argc; i++)
    {
      g_autofree char *name = g_strndup (argv[i], strcspn (argv[i], "="));
      if (strcmp (argv[i], "--help") == 0 || strcmp (argv[i], "-h") == 0)
        {
          print_usage (stdout);
          return AB_EXIT_OK;
        }
      if (strcmp (argv[i], "--version") == 0)
        {
          g_print ("abdeploy %s\n", PACKAGE_VERSION);
          return AB_EXIT_OK;
        }
      if (bad == NULL && strcmp (argv[i], "-v") != 0 && !g_strv_contains (known, name))
        bad = argv[i];
      if (strcmp (argv[i], "--sysroot") == 0 || strcmp (argv[i], "--config") == 0)
        i++; /* its value */
    }
  g_autofree char *name = bad ? g_strndup (bad, strcspn (bad, "=")) : NULL;
  g_autofree char *hint = bad ? cli_did_you_mean (name, known) : NULL;
  if (bad)
    g_printerr ("abdeploy: unknown option %s%s\n\n", name, hint);
  else
    g_printerr ("abdeploy: give a COMMAND\n\n");
  print_usage (stderr);
  return AB_EXIT_USAGE;
}

int
main (int argc, char **argv)
{
  setlocale (LC_ALL, "");
  int idx = find_command (argc, argv);
  if (idx < 0)
    return no_command (argc, argv);
  const Command *c = lookup_command (argv[idx]);
  if (c == NULL)
    return unknown_command ("command", argv[idx], command_names ());
  /* Move the command word to argv[0] so that options may stand on
   * either side of it. */
  char *tmp = argv[idx];
  memmove (&argv[2], &argv[1], sizeof (char *) * (gsize) (idx - 1));
  argv[1] = tmp;
  set_prgname (c);
  int code = c->run (argc - 1, argv + 1);
  /* A pull that ignored its cancellation may still run in a thread:
   * leave without exit handlers that could pull libraries from under it. */
  if (ab_content_pulls_abandoned () > 0)
    {
      fflush (stdout);
      fflush (stderr);
      _exit (code);
    }
  return code;
}
