/* CLI of the operator lifecycle: version, verify, backup, restore, migrate. */
#include "config.h"
#include "cli.h"
#include "cli/ab-exitcode.h"
#include "ab-verify.h"
#include "ab-backup.h"
#include "ab-fsutil.h"

#include <errno.h>
#include <unistd.h>

static void
print_json (JsonNode *node)
{
  g_autofree char *text = json_to_string (node, TRUE);
  g_print ("%s\n", text);
}

/* The command's result text through P (see cli_progress_print()). */
static void
print_json_to (CliProgress *p, JsonNode *node)
{
  g_autofree char *text = json_to_string (node, TRUE);
  cli_progress_print (p, "%s", text);
}

int
cli_version (int argc, char **argv)
{
  gboolean json = FALSE;
  GOptionEntry entries[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print one JSON object", NULL },
    { NULL }
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new ("- what is running: abdeploy, slot, image version, commit, source revision, build time");
  int code = 0;
  if (!cli_parse_options_only (ctx, entries, &argc, &argv, &code))
    return code;
  GError *error = NULL;
  g_autoptr(AbSysroot) sysroot = cli_open_sysroot (&error);
  g_autoptr(JsonNode) report = sysroot ? ab_version_report (sysroot, &error) : NULL;
  if (report == NULL)
    return cli_fail (error);
  if (json)
    {
      print_json (report);
      return AB_EXIT_OK;
    }
  JsonObject *o = json_node_get_object (report);
  static const char *const rows[][2] = {
    { "abdeploy", "abdeploy_version" }, { "OS", "os" }, { "Booted slot", "booted_slot" },
    { "Slot", "slot" }, { "Image version", "version" }, { "Build version", "build_version" },
    { "Commit", "commit" },
    { "Source revision", "source_revision" }, { "Build time", "build_time" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (rows); i++)
    {
      const char *v = json_object_get_string_member_with_default (o, rows[i][1], NULL);
      g_print ("%-16s %s\n", rows[i][0], v ? v : "-");
    }
  if (sysroot->restore_pending)
    g_print ("%-16s %s/abdeploy/%s (the next command that writes completes it)\n",
             "Restore pending", cli_sysroot_path (), AB_BACKUP_PENDING_NAME);
  return AB_EXIT_OK;
}

int
cli_verify (int argc, char **argv)
{
  gboolean json = FALSE, full = FALSE;
  int sample = G_MININT;   /* not given */
  g_auto(CliProgressOptions) po = { 0 };
  GOptionEntry entries[] = {
    { "full", 0, 0, G_OPTION_ARG_NONE, &full, "Check every file of the booted tree, not a sample", NULL },
    { "sample", 0, 0, G_OPTION_ARG_INT, &sample, "Files checked without --full (default 256)", "N" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print one JSON object", NULL },
    CLI_PROGRESS_OPTION_ENTRIES (po),
    { NULL }
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new ("- the checks to run after an upgrade; exit 0 only when all pass");
  int code = 0;
  if (!cli_parse_options_only (ctx, entries, &argc, &argv, &code))
    return code;
  if (sample != G_MININT && sample <= 0)
    return cli_bad_number (ctx, "--sample", sample, "a positive number of files");
  if (full && sample != G_MININT)
    return cli_usage_error (ctx, "--full and --sample=N conflict: --full checks every file");
  g_autoptr(CliProgress) p = cli_progress_start (ctx, "verify", &po, &code);
  if (p == NULL)
    return code;
  GError *error = NULL;
  g_autoptr(AbSysroot) sysroot = cli_open_sysroot_for (p, FALSE, &error);
  AbVerifyOptions opts = { .full = full, .sample_size = sample == G_MININT ? 0 : (guint) sample };
  g_autoptr(GPtrArray) checks = sysroot ? ab_verify_run (sysroot, &opts, &error) : NULL;
  if (checks == NULL)
    return cli_progress_fail (p, error);
  if (sysroot->restore_pending)
    g_printerr ("abdeploy: note: a restore was interrupted (%s/abdeploy/%s): the checks see the "
                "sysroot part old, part restored until the next command that writes completes "
                "it\n", cli_sysroot_path (), AB_BACKUP_PENDING_NAME);
  if (json)
    {
      g_autoptr(JsonNode) node = ab_verify_to_json (checks);
      print_json_to (p, node);
    }
  else
    for (guint i = 0; i < checks->len; i++)
      {
        AbCheck *c = checks->pdata[i];
        cli_progress_print (p, "%-4s %-22s %s", c->passed ? "PASS" : "FAIL", c->name, c->reason);
      }
  cli_progress_finish (p, NULL);
  return ab_verify_all_passed (checks) ? AB_EXIT_OK : AB_EXIT_ERROR;
}

/* With --output=- the archive is standard output: nothing else may go
 * there, so JSON progress needs a descriptor of its own. */
static gboolean
stdout_is_free (const CliProgressOptions *po)
{
  gboolean json = g_strcmp0 (po->mode, "json") == 0;
  return !json || (po->fd != NULL && !g_str_equal (po->fd, "1"));
}

/* The archive to standard output; the result line goes to stderr. */
static int
backup_to_stdout (CliProgress *p, AbSysroot *sysroot)
{
  GError *error = NULL;
  guint files = 0;
  g_autoptr(GBytes) archive = ab_backup_build (sysroot, AB_BACKUP_TAR, &files, &error);
  if (archive == NULL)
    return cli_progress_fail (p, error);
  gsize len = 0;
  const void *data = g_bytes_get_data (archive, &len);
  if (!ab_fs_write_all (STDOUT_FILENO, data, len))
    {
      AB_IGNORE_RESULT (ab_throw_errno_prefix (&error, errno, "Writing the backup to standard output"));
      return cli_progress_fail (p, error);
    }
  cli_progress_clear (p);
  g_printerr ("Backed up %u files, the boot pointer and the slot refs to standard output\n", files);
  cli_progress_finish (p, NULL);
  return AB_EXIT_OK;
}

int
cli_backup (int argc, char **argv)
{
  g_autofree char *output = NULL;
  gboolean force = FALSE;
  g_auto(CliProgressOptions) po = { 0 };
  GOptionEntry entries[] = {
    { "output", 0, 0, G_OPTION_ARG_FILENAME, &output,
      "Write the archive to FILE (" AB_BACKUP_SUFFIXES "; - for a tar archive on standard output)",
      "FILE" },
    { "force", 0, 0, G_OPTION_ARG_NONE, &force, "Replace FILE when it exists", NULL },
    CLI_PROGRESS_OPTION_ENTRIES (po),
    { NULL }
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new ("--output=FILE - archive config, keys, state, boot pointer and slot refs");
  int code = 0;
  AbBackupCompression c;
  g_autoptr(GError) bad_name = NULL;
  if (!cli_parse_options_only (ctx, entries, &argc, &argv, &code))
    return code;
  if (output == NULL)
    return cli_usage_error (ctx, "backup needs --output=FILE");
  gboolean to_stdout = g_str_equal (output, "-");
  if (!to_stdout && !ab_backup_compression_for_name (output, &c, &bad_name))
    return cli_usage_error (ctx, bad_name->message);
  if (to_stdout && !stdout_is_free (&po))
    return cli_usage_error (ctx, "with --output=- the archive is standard output: give "
                            "--progress=json a descriptor of its own (--progress-fd=N)");
  g_autoptr(CliProgress) p = cli_progress_start (ctx, "backup", &po, &code);
  if (p == NULL)
    return code;
  GError *error = NULL;
  g_autoptr(AbSysroot) sysroot = cli_open_sysroot_for (p, FALSE, &error);
  if (sysroot == NULL)
    return cli_progress_fail (p, error);
  if (to_stdout)
    return backup_to_stdout (p, sysroot);
  guint files = 0;
  if (!ab_backup_create (sysroot, output, force, &files, &error))
    return cli_progress_fail (p, error);
  cli_progress_print (p, "Backed up %u files, the boot pointer and the slot refs to %s", files,
                      output);
  cli_progress_finish (p, NULL);
  return AB_EXIT_OK;
}

int
cli_restore (int argc, char **argv)
{
  g_autofree char *path = NULL;
  g_auto(CliProgressOptions) po = { 0 };
  GOptionEntry entries[] = {
    { "path", 0, 0, G_OPTION_ARG_FILENAME, &path, "The archive made by abdeploy backup", "FILE" },
    CLI_PROGRESS_OPTION_ENTRIES (po),
    { NULL }
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new ("--path=FILE - verify an archive, then restore it");
  int code = 0;
  if (!cli_parse_options_only (ctx, entries, &argc, &argv, &code))
    return code;
  if (path == NULL)
    return cli_usage_error (ctx, "restore needs --path=FILE");
  g_autoptr(CliProgress) p = cli_progress_start (ctx, "restore", &po, &code);
  if (p == NULL)
    return code;
  GError *error = NULL;
  guint files = 0;
  g_auto(GStrv) notes = NULL;
  if (!ab_backup_restore (cli_sysroot_path (), path, cli_progress_sink (p), &files, &notes,
                          &error))
    return cli_progress_fail (p, error);
  cli_progress_print (p, "Restored %u files, the boot pointer and the slot refs from %s", files,
                      path);
  cli_progress_finish (p, NULL);
  for (guint i = 0; notes[i]; i++)
    g_printerr ("abdeploy: %s\n", notes[i]);
  return AB_EXIT_OK;
}

int
cli_migrate (int argc, char **argv)
{
  g_autoptr(GOptionContext) ctx = g_option_context_new (
      "- migrate the sysroot to the current layout now, keeping a copy of the old files");
  int code = 0;
  if (!cli_parse_options_only (ctx, NULL, &argc, &argv, &code))
    return code;
  GError *error = NULL;
  g_autoptr(AbSysroot) sysroot = cli_open_sysroot_to_write (&error);
  if (sysroot == NULL)
    return cli_fail (error);
  gboolean migrated = FALSE;
  if (!ab_sysroot_migrate_now (sysroot, &migrated, &error))
    return cli_fail (error);
  if (!migrated)
    {
      g_print ("Sysroot %s is at layout %" G_GINT64_FORMAT "; nothing to migrate\n",
               cli_sysroot_path (), sysroot->layout);
      return AB_EXIT_NOTHING_TO_DO;
    }
  return AB_EXIT_OK;
}
