/* abdeploy publish SUBCOMMAND: the publisher's commands (abdeploy-publish(8)).
 * Parses options, calls ab-publish, prints. */
#include "config.h"
#include "cli.h"
#include "cli/ab-exitcode.h"
#include "cli-suggest.h"
#include "publisher/ab-publish.h"

#include <stdio.h>
#include <string.h>

#define UNSET (-1)

/* Options shared by the subcommands; each takes the ones it needs. */
static char *opt_repo, *opt_gpg_sign, *opt_gpg_homedir, *opt_channel, *opt_version,
  *opt_trusted_keys;
static int opt_expires_days = UNSET, opt_rollout = UNSET;

#define ENTRY_REPO { "repo", 0, 0, G_OPTION_ARG_FILENAME, &opt_repo, "Publisher's OSTree repo (archive mode)", "DIR" }
#define ENTRY_GPG_SIGN { "gpg-sign", 0, 0, G_OPTION_ARG_STRING, &opt_gpg_sign, "Sign with this GPG key", "KEYID" }
#define ENTRY_GPG_HOMEDIR { "gpg-homedir", 0, 0, G_OPTION_ARG_FILENAME, &opt_gpg_homedir, "GnuPG home holding the key (default: GnuPG's)", "DIR" }
#define ENTRY_CHANNEL { "channel", 0, 0, G_OPTION_ARG_STRING, &opt_channel, "Channel name", "NAME" }
#define ENTRY_VERSION { "version", 0, 0, G_OPTION_ARG_STRING, &opt_version, "Release version", "VERSION" }
#define ENTRY_EXPIRES { "expires-days", 0, 0, G_OPTION_ARG_INT, &opt_expires_days, "Manifest validity in days (default 30)", "N" }
#define ENTRY_TRUSTED_KEYS { "trusted-keys", 0, 0, G_OPTION_ARG_FILENAME, &opt_trusted_keys, "Public keys (*.gpg, *.asc) that may have signed the manifest and commits checked before signing again (default: the --gpg-sign key)", "DIR" }
#define ENTRY_ROLLOUT { "rollout", 0, 0, G_OPTION_ARG_INT, &opt_rollout, "Offer to PERCENT of the devices, 1..100 (default 100)", "PERCENT" }

typedef struct
{
  const char *name;
  const char *args;
  const char *summary;
  int (*run) (int argc, char **argv);
} Subcommand;

static gboolean
refuse (GOptionContext *ctx, const char *message, int *out_code)
{
  *out_code = cli_usage_error (ctx, message);
  return FALSE;
}

/* Parses and checks what every subcommand shares; fills P. */
static gboolean
parse (GOptionContext *ctx, const GOptionEntry *entries, int *argc, char ***argv,
       AbPublisher *p, int *out_code)
{
  if (!cli_parse_publish_command (ctx, entries, argc, argv, out_code))
    return FALSE;
  if (*argc > 1)
    {
      *out_code = cli_extra_argument (ctx, (*argv)[1], NULL);
      return FALSE;
    }
  if (opt_repo == NULL)
    return refuse (ctx, "give the publisher's repo with --repo=DIR", out_code);
  if (opt_expires_days != UNSET
      && (opt_expires_days < 1 || opt_expires_days > AB_PUBLISH_MAX_EXPIRES_DAYS))
    {
      *out_code = cli_bad_number (ctx, "--expires-days", opt_expires_days, "a number of days from 1 to 3660");
      return FALSE;
    }
  if (opt_rollout != UNSET && (opt_rollout < 1 || opt_rollout > 100))
    {
      *out_code = cli_bad_number (ctx, "--rollout", opt_rollout, "a percentage from 1 to 100");
      return FALSE;
    }
  *p = (AbPublisher) { opt_repo, opt_gpg_sign, opt_gpg_homedir,
                       opt_expires_days == UNSET ? 0 : (guint) opt_expires_days,
                       opt_trusted_keys };
  return TRUE;
}

static guint
rollout_or_default (void)
{
  return opt_rollout == UNSET ? 0 : (guint) opt_rollout;
}

/* The same lines through the progress renderer P (cli_progress_print()). */
static void
print_manifest_to (CliProgress *p, const AbManifest *m, const char *version, const char *what)
{
  const AbRelease *r = version ? ab_manifest_find (m, version) : ab_manifest_newest (m);
  if (r != NULL)
    cli_progress_print (p, "Channel %s: %s %s (commit %s, rollout %u%%%s%s)", m->channel, what,
                        r->version, r->commit, r->rollout, r->deprecated ? ", deprecated: " : "",
                        r->deprecated ? r->deprecated : "");
  cli_progress_print (p, "Channel %s: serial %" G_GUINT64_FORMAT ", issued %s, expires %s, signed",
                      m->channel, m->serial, m->issued_at, m->expires_at);
}

/* One line about the manifest just written and the release it touched. */
static int
print_manifest (const AbManifest *m, const char *version, const char *what)
{
  const AbRelease *r = version ? ab_manifest_find (m, version) : ab_manifest_newest (m);
  if (r != NULL)
    g_print ("Channel %s: %s %s (commit %s, rollout %u%%%s%s)\n", m->channel, what, r->version,
             r->commit, r->rollout, r->deprecated ? ", deprecated: " : "",
             r->deprecated ? r->deprecated : "");
  g_print ("Channel %s: serial %" G_GUINT64_FORMAT ", issued %s, expires %s, signed\n",
           m->channel, m->serial, m->issued_at, m->expires_at);
  return AB_EXIT_OK;
}

/* Commits O, then prints the commit (stdout) and notes (stderr). */
static int
run_commit (AbPublisher *p, const AbPublishCommitOptions *o, CliProgress *progress)
{
  GError *error = NULL;
  g_autofree char *commit = NULL;
  g_auto(GStrv) privileged = NULL;
  gboolean created = FALSE;
  if (!ab_publish_commit (p, o, &commit, &created, &privileged, &error))
    return cli_progress_fail (progress, error);
  cli_progress_clear (progress); /* text follows on stderr */
  for (char **line = privileged; *line; line++)
    g_printerr ("abdeploy: privileged file %s\n", *line);
  if (!created)
    g_printerr ("abdeploy: version %s is already published with this same tree; nothing new "
                "was committed\n", o->version);
  if (p->gpg_key == NULL)
    g_printerr ("abdeploy: warning: commit %s is not signed; devices refuse unsigned commits "
                "(run again with --gpg-sign=KEYID)\n", commit);
  cli_progress_print (progress, "%s", commit);
  cli_progress_finish (progress, NULL);
  return AB_EXIT_OK;
}

static int
publish_commit (int argc, char **argv)
{
  g_autofree char *tree = NULL, *branch = NULL, *source_revision = NULL, *os = NULL;
  g_auto(GStrv) allow_setuid = NULL;
  AbPublishCommitOptions o = { 0 };
  g_auto(CliProgressOptions) po = { 0 };
  GOptionEntry entries[] = {
    CLI_PROGRESS_OPTION_ENTRIES (po),
    ENTRY_REPO,
    { "tree", 0, 0, G_OPTION_ARG_FILENAME, &tree, "Image tree to commit", "DIR" },
    ENTRY_VERSION,
    { "branch", 0, 0, G_OPTION_ARG_STRING, &branch, "Also move this ref to the commit", "REF" },
    ENTRY_GPG_SIGN, ENTRY_GPG_HOMEDIR,
    { "source-revision", 0, 0, G_OPTION_ARG_STRING, &source_revision, "Record the source revision (e.g. a git commit)", "REV" },
    { "allow-setuid", 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &allow_setuid, "Let this image file be setuid, setgid or capable though root does not own it in the tree (repeatable)", "PATH" },
    { "allow-privileged", 0, 0, G_OPTION_ARG_NONE, &o.allow_privileged, "Let every such file be", NULL },
    { "os", 0, 0, G_OPTION_ARG_STRING, &os, "The OS the image is for, signed into the commit (default: ID of the tree's usr/lib/os-release or etc/os-release)", "NAME" },
    { "move-etc", 0, 0, G_OPTION_ARG_NONE, &o.move_etc, "Commit a top-level etc as usr/etc (the tree is not changed)", NULL },
    { "move-boot", 0, 0, G_OPTION_ARG_NONE, &o.move_boot, "Commit boot/vmlinuz-KVER and boot/initrd.img-KVER as usr/lib/modules/KVER/vmlinuz and initramfs.img", NULL },
    { "no-kernel", 0, 0, G_OPTION_ARG_NONE, &o.no_kernel, "Allow a tree without a kernel (not bootable by abdeploy)", NULL },
    { NULL }
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new ("- commit an image tree as a version");
  AbPublisher p;
  int code = 0;
  if (!parse (ctx, entries, &argc, &argv, &p, &code))
    return code;
  if (tree == NULL || opt_version == NULL)
    return cli_usage_error (ctx, "publish commit needs --tree=DIR and --version=VERSION");
  g_autoptr(CliProgress) progress = cli_progress_start (ctx, "publish commit", &po, &code);
  if (progress == NULL)
    return code;
  p.events = cli_progress_sink (progress);
  o.tree = tree;
  o.version = opt_version;
  o.branch = branch;
  o.source_revision = source_revision;
  o.allow_setuid = (const char *const *) allow_setuid;
  o.os = os;
  return run_commit (&p, &o, progress);
}

/* The marks of the release just written, after its line (issue 17). */
static void
print_release_marks (const AbManifest *m, const char *version)
{
  const AbRelease *r = ab_manifest_find (m, version);
  if (r == NULL)
    return;
  if (r->promoted_from)
    g_print ("Channel %s: %s promoted from %s (same commit)\n", m->channel, r->version,
             r->promoted_from);
  if (r->security)
    g_print ("Channel %s: %s is a security release\n", m->channel, r->version);
  if (r->notes)
    g_print ("Channel %s: %s carries a customer note (%zu bytes)\n", m->channel, r->version,
             strlen (r->notes->changed) + strlen (r->notes->action) + strlen (r->notes->rollback));
}

static int
publish_release (int argc, char **argv)
{
  gboolean security = FALSE;
  g_autofree char *notes_file = NULL;
  GOptionEntry entries[] = {
    ENTRY_REPO, ENTRY_CHANNEL, ENTRY_VERSION, ENTRY_ROLLOUT,
    { "security", 0, 0, G_OPTION_ARG_NONE, &security, "Mark the release as a security release", NULL },
    { "notes", 0, 0, G_OPTION_ARG_FILENAME, &notes_file, "Sign this customer note into the release (see docs/customer-release-note-template.md)", "FILE" },
    ENTRY_GPG_SIGN, ENTRY_GPG_HOMEDIR, ENTRY_EXPIRES, ENTRY_TRUSTED_KEYS, { NULL }
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new ("- add a version to a channel's manifest and sign it");
  AbPublisher p;
  int code = 0;
  if (!parse (ctx, entries, &argc, &argv, &p, &code))
    return code;
  if (opt_channel == NULL || opt_version == NULL)
    return cli_usage_error (ctx, "publish release needs --channel=NAME and --version=VERSION");
  GError *error = NULL;
  g_autoptr(AbReleaseNotes) notes = notes_file ? ab_publish_read_notes (notes_file, &error) : NULL;
  if (notes_file && notes == NULL)
    return cli_fail (error);
  AbPublishReleaseOptions o = { .rollout = rollout_or_default (), .security = security,
                                .notes = notes };
  g_autoptr(AbManifest) m = ab_publish_release_with (&p, opt_channel, opt_version, &o, &error);
  if (m == NULL)
    return cli_fail (error);
  print_manifest (m, opt_version, "released");
  print_release_marks (m, opt_version);
  return AB_EXIT_OK;
}

static int
publish_promote (int argc, char **argv)
{
  g_autofree char *from = NULL, *to = NULL, *as = NULL;
  GOptionEntry entries[] = {
    ENTRY_REPO,
    { "from", 0, 0, G_OPTION_ARG_STRING, &from, "Channel the release is in", "CHANNEL" },
    { "to", 0, 0, G_OPTION_ARG_STRING, &to, "Channel to add it to", "CHANNEL" },
    ENTRY_VERSION,
    { "as", 0, 0, G_OPTION_ARG_STRING, &as, "List it as this version in the target channel (same commit; default: its own version)", "VERSION" },
    ENTRY_ROLLOUT, ENTRY_GPG_SIGN, ENTRY_GPG_HOMEDIR, ENTRY_EXPIRES, ENTRY_TRUSTED_KEYS, { NULL }
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new ("- copy a release, same commit, into another channel");
  AbPublisher p;
  int code = 0;
  if (!parse (ctx, entries, &argc, &argv, &p, &code))
    return code;
  if (from == NULL || to == NULL || opt_version == NULL)
    return cli_usage_error (ctx, "publish promote needs --from=CHANNEL, --to=CHANNEL and --version=VERSION");
  GError *error = NULL;
  g_autoptr(AbManifest) m = ab_publish_promote_as (&p, from, to, opt_version, as,
                                                   rollout_or_default (), &error);
  if (m == NULL)
    return cli_fail (error);
  const char *listed = as ? as : opt_version;
  print_manifest (m, listed, "promoted");
  print_release_marks (m, listed);
  return AB_EXIT_OK;
}

static int
publish_deprecate (int argc, char **argv)
{
  g_autofree char *reason = NULL;
  GOptionEntry entries[] = {
    ENTRY_REPO, ENTRY_CHANNEL, ENTRY_VERSION,
    { "reason", 0, 0, G_OPTION_ARG_STRING, &reason, "Why (devices show it)", "TEXT" },
    ENTRY_GPG_SIGN, ENTRY_GPG_HOMEDIR, ENTRY_EXPIRES, ENTRY_TRUSTED_KEYS, { NULL }
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new ("- mark a release deprecated (it stays listed)");
  AbPublisher p;
  int code = 0;
  if (!parse (ctx, entries, &argc, &argv, &p, &code))
    return code;
  if (opt_channel == NULL || opt_version == NULL || reason == NULL)
    return cli_usage_error (ctx, "publish deprecate needs --channel=NAME, --version=VERSION and --reason=TEXT");
  GError *error = NULL;
  g_autoptr(AbManifest) m = ab_publish_deprecate (&p, opt_channel, opt_version, reason, &error);
  return m ? print_manifest (m, opt_version, "deprecated") : cli_fail (error);
}

static int
publish_deltas (int argc, char **argv)
{
  int from_last = UNSET;
  gboolean no_full_delta = FALSE, no_packs = FALSE;
  g_auto(CliProgressOptions) po = { 0 };
  GOptionEntry entries[] = {
    CLI_PROGRESS_OPTION_ENTRIES (po),
    ENTRY_REPO, ENTRY_CHANNEL,
    { "from-last", 0, 0, G_OPTION_ARG_INT, &from_last, "Deltas from the N releases below the newest (default 1)", "N" },
    { "no-full-delta", 0, 0, G_OPTION_ARG_NONE, &no_full_delta, "No delta from nothing (for first installs) to the newest release", NULL },
    { "no-packs", 0, 0, G_OPTION_ARG_NONE, &no_packs, "No image packs (for first installs) of the newest release", NULL },
    ENTRY_GPG_SIGN, ENTRY_GPG_HOMEDIR, ENTRY_EXPIRES, ENTRY_TRUSTED_KEYS, { NULL }
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new ("- static deltas to the newest release of a channel");
  AbPublisher p;
  int code = 0;
  if (!parse (ctx, entries, &argc, &argv, &p, &code))
    return code;
  if (opt_channel == NULL)
    return cli_usage_error (ctx, "publish deltas needs --channel=NAME");
  if (from_last != UNSET && (from_last < 1 || from_last > 100))
    return cli_bad_number (ctx, "--from-last", from_last, "a number from 1 to 100");
  g_autoptr(CliProgress) progress = cli_progress_start (ctx, "publish deltas", &po, &code);
  if (progress == NULL)
    return code;
  p.events = cli_progress_sink (progress);
  GError *error = NULL;
  g_autoptr(AbManifest) m = ab_publish_deltas (&p, opt_channel, from_last == UNSET ? 1 : (guint) from_last,
                                               !no_full_delta, !no_packs, &error);
  if (m == NULL)
    return cli_progress_fail (progress, error);
  const AbRelease *r = ab_manifest_newest (m);
  for (guint i = 0; i < r->deltas->len; i++)
    {
      const AbDelta *d = r->deltas->pdata[i];
      g_autofree char *size = g_format_size (d->size);
      cli_progress_print (progress, "Delta %s -> %s: %u file(s), %s", d->from, r->commit,
                          d->files->len, size);
    }
  if (r->packs != NULL)
    {
      g_autofree char *size = g_format_size (r->packs->size);
      g_autofree char *unpacked = g_format_size (r->packs->unpacked);
      cli_progress_print (progress, "Packs of %s: %u file(s), %s (%s unpacked)", r->commit,
                          r->packs->files->len, size, unpacked);
    }
  print_manifest_to (progress, m, NULL, "newest");
  cli_progress_finish (progress, NULL);
  return AB_EXIT_OK;
}

static void
print_prune (const AbPublishPruneResult *r, const char *channel, gboolean dry_run)
{
  const char *verb = dry_run ? "would drop" : "dropped";
  for (guint i = 0; i < r->dropped->len; i++)
    {
      const AbRelease *rel = r->dropped->pdata[i];
      g_print ("Channel %s: %s %s (commit %s, published %s)\n", channel, verb, rel->version,
               rel->commit, rel->published_at);
    }
  for (guint i = 0; i < r->refs->len; i++)
    g_print ("%s ref %s\n", dry_run ? "Would delete" : "Deleted", (char *) r->refs->pdata[i]);
  for (guint i = 0; i < r->deltas->len; i++)
    g_print ("%s static delta %s\n", dry_run ? "Would delete" : "Deleted",
             (char *) r->deltas->pdata[i]);
  for (guint i = 0; i < r->packs->len; i++)
    g_print ("%s the image packs of %s\n", dry_run ? "Would delete" : "Deleted",
             (char *) r->packs->pdata[i]);
  g_autofree char *size = g_format_size (r->bytes);
  g_print ("%s %u object(s) and %u delta(s): %" G_GUINT64_FORMAT " bytes (%s)%s\n",
           dry_run ? "Would free" : "Freed", r->objects, r->deltas->len, r->bytes, size,
           dry_run ? "; nothing was changed (--dry-run)" : "");
  if (r->manifest)
    g_print ("Channel %s: serial %" G_GUINT64_FORMAT ", issued %s, expires %s, signed\n",
             channel, r->manifest->serial, r->manifest->issued_at, r->manifest->expires_at);
}

static int
publish_prune (int argc, char **argv)
{
  int keep_days = UNSET, keep_last = UNSET;
  gboolean dry_run = FALSE;
  GOptionEntry entries[] = {
    ENTRY_REPO, ENTRY_CHANNEL,
    { "keep-days", 0, 0, G_OPTION_ARG_INT, &keep_days, "Keep releases published in the last N days (default: the channel's policy)", "N" },
    { "keep-last", 0, 0, G_OPTION_ARG_INT, &keep_last, "Keep the K newest releases", "K" },
    { "dry-run", 0, 0, G_OPTION_ARG_NONE, &dry_run, "Print what would be removed; change nothing", NULL },
    ENTRY_GPG_SIGN, ENTRY_GPG_HOMEDIR, ENTRY_EXPIRES, ENTRY_TRUSTED_KEYS, { NULL }
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new ("- drop old releases from a channel and delete what no channel references");
  AbPublisher p;
  int code = 0;
  if (!parse (ctx, entries, &argc, &argv, &p, &code))
    return code;
  if (opt_channel == NULL)
    return cli_usage_error (ctx, "publish prune needs --channel=NAME");
  if (keep_days != UNSET && (keep_days < 1 || keep_days > 36600))
    return cli_usage_error (ctx, "--keep-days must be from 1 to 36600");
  if (keep_last != UNSET && (keep_last < 1 || keep_last > 100000))
    return cli_usage_error (ctx, "--keep-last must be from 1 to 100000");
  AbPublishPruneOptions o = { opt_channel, keep_days == UNSET ? 0 : keep_days,
                              keep_last == UNSET ? 0 : (guint) keep_last, dry_run };
  GError *error = NULL;
  g_autoptr(AbPublishPruneResult) r = ab_publish_prune (&p, &o, &error);
  if (r == NULL)
    return cli_fail (error);
  print_prune (r, opt_channel, dry_run);
  return AB_EXIT_OK;
}

static int
publish_refresh (int argc, char **argv)
{
  GOptionEntry entries[] = {
    ENTRY_REPO, ENTRY_CHANNEL, ENTRY_GPG_SIGN, ENTRY_GPG_HOMEDIR, ENTRY_EXPIRES, ENTRY_TRUSTED_KEYS, { NULL }
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new ("- re-sign a channel with a new expiry, nothing else changed");
  AbPublisher p;
  int code = 0;
  if (!parse (ctx, entries, &argc, &argv, &p, &code))
    return code;
  if (opt_channel == NULL)
    return cli_usage_error (ctx, "publish refresh needs --channel=NAME");
  GError *error = NULL;
  g_autoptr(AbManifest) m = ab_publish_refresh (&p, opt_channel, &error);
  return m ? print_manifest (m, NULL, "newest") : cli_fail (error);
}

static const Subcommand subcommands[] = {
  { "commit", "--repo=DIR --tree=DIR --version=V [--branch=REF] [--gpg-sign=KEYID] [--source-revision=REV] [--allow-setuid=PATH]... [--allow-privileged] [--os=NAME] [--move-etc] [--move-boot] [--no-kernel]",
    "Commit an image tree as version V", publish_commit },
  { "release", "--repo=DIR --channel=C --version=V [--rollout=PERCENT] [--security] [--notes=FILE] --gpg-sign=KEYID",
    "Add version V to channel C", publish_release },
  { "promote", "--repo=DIR --from=C1 --to=C2 --version=V [--as=V2] [--rollout=PERCENT] --gpg-sign=KEYID",
    "Copy the release of V from C1 to C2", publish_promote },
  { "deprecate", "--repo=DIR --channel=C --version=V --reason=TEXT --gpg-sign=KEYID",
    "Mark a release deprecated", publish_deprecate },
  { "deltas", "--repo=DIR --channel=C [--from-last=N] [--no-full-delta] [--no-packs] --gpg-sign=KEYID",
    "Static deltas to the newest release", publish_deltas },
  { "prune", "--repo=DIR --channel=C [--keep-days=N] [--keep-last=K] [--dry-run] --gpg-sign=KEYID",
    "Drop old releases and delete what no channel references", publish_prune },
  { "refresh", "--repo=DIR --channel=C --gpg-sign=KEYID",
    "Re-sign a channel with a new expiry", publish_refresh },
};

static void
print_publish_usage (FILE *f)
{
  fprintf (f, "Usage: abdeploy publish SUBCOMMAND [OPTIONS]\n\nSubcommands:\n");
  for (guint i = 0; i < G_N_ELEMENTS (subcommands); i++)
    fprintf (f, "  %-10s %s\n  %-10s   %s\n", subcommands[i].name, subcommands[i].summary, "",
             subcommands[i].args);
  fprintf (f, "\nEvery subcommand also takes --gpg-homedir=DIR; those that write a manifest "
              "also --expires-days=N and --trusted-keys=DIR.\nRun abdeploy publish SUBCOMMAND --help for the options. "
              "See abdeploy-publish(8).\n");
}

/* Index of the subcommand word in ARGV (options may come first). */
static int
find_subcommand (int argc, char **argv)
{
  for (int i = 1; i < argc; i++)
    {
      if (argv[i][0] != '-')
        return i;
      if (strcmp (argv[i], "--sysroot") == 0 || strcmp (argv[i], "--config") == 0)
        i++;
    }
  return -1;
}

static gboolean
wants_help (int argc, char **argv)
{
  for (int i = 1; i < argc; i++)
    if (strcmp (argv[i], "--help") == 0 || strcmp (argv[i], "-h") == 0)
      return TRUE;
  return FALSE;
}

const char *const *
cli_publish_subcommands (void)
{
  static const char *names[G_N_ELEMENTS (subcommands) + 1];
  for (guint i = 0; i < G_N_ELEMENTS (subcommands); i++)
    names[i] = subcommands[i].name;
  return names;
}

static const Subcommand *
lookup_subcommand (const char *name)
{
  for (guint i = 0; i < G_N_ELEMENTS (subcommands); i++)
    if (strcmp (name, subcommands[i].name) == 0)
      return &subcommands[i];
  return NULL;
}

static int
unknown_subcommand (const char *word)
{
  g_autofree char *hint = cli_did_you_mean (word, cli_publish_subcommands ());
  g_printerr ("abdeploy: unknown publish subcommand \"%s\"%s\n\n", word, hint);
  print_publish_usage (stderr);
  return AB_EXIT_USAGE;
}

static int
run_subcommand (const Subcommand *sub, int argc, char **argv)
{
  g_autofree char *prgname = g_strconcat ("abdeploy publish ", sub->name, NULL);
  g_set_prgname (prgname);
  return sub->run (argc, argv);
}

int
cli_publish_help (const char *name)
{
  if (name == NULL)
    {
      print_publish_usage (stdout);
      return AB_EXIT_OK;
    }
  const Subcommand *sub = lookup_subcommand (name);
  if (sub == NULL)
    return unknown_subcommand (name);
  char *help_argv[] = { (char *) sub->name, (char *) "--help", NULL };
  /* GOptionContext prints the help and exits 0 */
  return run_subcommand (sub, 2, help_argv);
}

int
cli_publish (int argc, char **argv)
{
  int idx = find_subcommand (argc, argv);
  if (idx < 0)
    {
      gboolean help = wants_help (argc, argv);
      if (!help)
        g_printerr ("abdeploy: publish needs a SUBCOMMAND\n\n");
      print_publish_usage (help ? stdout : stderr);
      return help ? AB_EXIT_OK : AB_EXIT_USAGE;
    }
  const Subcommand *sub = lookup_subcommand (argv[idx]);
  if (sub == NULL)
    return unknown_subcommand (argv[idx]);
  /* The subcommand word becomes argv[0], as main() does for commands. */
  char *word = argv[idx];
  memmove (&argv[2], &argv[1], sizeof (char *) * (gsize) (idx - 1));
  argv[1] = word;
  return run_subcommand (sub, argc - 1, argv + 1);
}
