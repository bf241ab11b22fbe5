#include "config.h"
#include <gio/gio.h>
#include <string.h>
#include "ab-gpg.h"
#include "ab-test-fixture.h"

/* Keys are made once per run (RSA generation is slow): a publisher key,
 * whose public part is "trusted", and an intruder key, which is not. */
typedef struct
{
  char *root;      /* scratch directory of this run; TMPDIR points here */
  char *home;      /* GnuPG home holding both secret keys */
  char *publisher; /* fingerprints */
  char *intruder;
  char *trusted_gpg; /* directory with publisher.gpg (binary) */
  char *trusted_asc; /* directory with publisher.asc (armored) */
  char *empty;       /* directory without keys */
} Keys;

static Keys keys;

static char *
run_gpg (const char *args, const char *input)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *cmd = g_strdup_printf ("gpg --batch --quiet --homedir %s %s", keys.home, args);
  g_auto(GStrv) argv = NULL;
  g_assert_true (g_shell_parse_argv (cmd, NULL, &argv, &error));
  g_autoptr(GSubprocessLauncher) l = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDIN_PIPE
                                                                | G_SUBPROCESS_FLAGS_STDOUT_PIPE);
  g_autoptr(GSubprocess) p = g_subprocess_launcher_spawnv (l, (const char *const *) argv, &error);
  g_assert_no_error (error);
  char *out = NULL;
  g_assert_true (g_subprocess_communicate_utf8 (p, input, NULL, &out, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_successful (p));
  return out;
}

static char *
make_key (const char *email)
{
  g_autofree char *params = g_strdup_printf (
      "%%no-protection\nKey-Type: RSA\nKey-Length: 2048\nKey-Usage: sign\n"
      "Name-Real: Unit Test\nName-Email: %s\nExpire-Date: 0\n%%commit\n", email);
  g_free (run_gpg ("--gen-key", params));
  g_autofree char *cmd = g_strdup_printf ("--with-colons --list-keys %s", email);
  g_autofree char *out = run_gpg (cmd, NULL);
  const char *fpr = strstr (out, "\nfpr:::::::::");
  g_assert_nonnull (fpr);
  return g_strndup (fpr + strlen ("\nfpr:::::::::"), 40);
}

static void
export_key (const char *fpr, gboolean armor, const char *dir, const char *name)
{
  g_assert_cmpint (g_mkdir_with_parents (dir, 0700), ==, 0);
  /* Through a file: binary key data is no UTF-8 text. */
  g_autofree char *path = g_build_filename (dir, name, NULL);
  g_autofree char *cmd = g_strdup_printf ("%s --output %s --export %s", armor ? "--armor" : "",
                                          path, fpr);
  g_free (run_gpg (cmd, NULL));
  g_assert_true (g_file_test (path, G_FILE_TEST_IS_REGULAR));
}

static void
keys_setup (void)
{
  /* Throwaway homes of the code under test land in TMPDIR: point it here,
   * before GLib reads and caches it, so that the tests can check that they
   * are removed. */
  const char *tmp = g_getenv ("TMPDIR");
  keys.root = g_build_filename (tmp && *tmp ? tmp : "/tmp", "abdeploy-test-gpg-XXXXXX", NULL);
  g_assert_nonnull (g_mkdtemp (keys.root));
  g_setenv ("TMPDIR", keys.root, TRUE);
  g_assert_cmpstr (g_get_tmp_dir (), ==, keys.root);
  keys.home = g_build_filename (keys.root, "home", NULL);
  g_assert_cmpint (g_mkdir_with_parents (keys.home, 0700), ==, 0);
  keys.publisher = make_key ("publisher@example.org");
  keys.intruder = make_key ("intruder@example.org");
  keys.trusted_gpg = g_build_filename (keys.root, "trusted-gpg", NULL);
  keys.trusted_asc = g_build_filename (keys.root, "trusted-asc", NULL);
  keys.empty = g_build_filename (keys.root, "empty", NULL);
  export_key (keys.publisher, FALSE, keys.trusted_gpg, "publisher.gpg");
  export_key (keys.publisher, TRUE, keys.trusted_asc, "publisher.asc");
  g_assert_cmpint (g_mkdir_with_parents (keys.empty, 0700), ==, 0);
}

static void
keys_teardown (void)
{
  g_autofree char *kill = g_strdup_printf ("gpgconf --homedir %s --kill all", keys.home);
  (void) g_spawn_command_line_sync (kill, NULL, NULL, NULL, NULL);
  g_assert_true (ab_fs_rm_rf_at (AT_FDCWD, keys.root, NULL));
}

static GBytes *
sign (const char *keyid, GBytes *data)
{
  g_autoptr(GError) error = NULL;
  GBytes *sig = NULL;
  g_assert_true (ab_gpg_sign_detached (keys.home, keyid, data, &sig, &error));
  g_assert_no_error (error);
  g_assert_nonnull (sig);
  return sig;
}

static GBytes *
text (const char *s)
{
  return g_bytes_new (s, strlen (s));
}

/* "PID: COMMAND LINE" of a process whose command line holds NEEDLE, or NULL. */
static char *
find_process (const char *needle)
{
  g_autoptr(GDir) proc = g_dir_open ("/proc", 0, NULL);
  const char *name;
  while ((name = g_dir_read_name (proc)) != NULL)
    {
      g_autofree char *path = g_build_filename ("/proc", name, "cmdline", NULL);
      g_autofree char *cmdline = NULL;
      gsize len = 0;
      if (!g_ascii_isdigit (name[0]) || !g_file_get_contents (path, &cmdline, &len, NULL))
        continue;
      for (gsize i = 0; i + 1 < len; i++)
        if (cmdline[i] == '\0')
          cmdline[i] = ' ';
      if (strstr (cmdline, needle) != NULL)
        return g_strdup_printf ("%s: %s", name, cmdline);
    }
  return NULL;
}

static char *
find_process_on_throwaway_home (void)
{
  g_autofree char *needle = g_build_filename (keys.root, "abdeploy-gpg-", NULL);
  return find_process (needle);
}

/* No throwaway GnuPG home is left in TMPDIR, and no process runs on one.
 * A gpg that gpgme has read everything from may still be exiting: such a
 * process gets up to 10 s; one that is still there is a leftover (as a
 * gpg-agent was, before the homes said no-autostart). */
static void
assert_no_leftovers (void)
{
  g_autoptr(GDir) d = g_dir_open (keys.root, 0, NULL);
  const char *name;
  while ((name = g_dir_read_name (d)) != NULL)
    g_assert_false (g_str_has_prefix (name, "abdeploy-gpg-"));
  g_autofree char *found = NULL;
  for (int i = 0; i < 200 && (g_free (found), found = find_process_on_throwaway_home ()); i++)
    g_usleep (50 * 1000);
  if (found != NULL)
    g_error ("process %s still runs on a throwaway home", found);
}

/* Whether a gpg-agent runs on HOME. */
static gboolean
agent_runs_on (const char *home)
{
  g_autofree char *needle = g_strdup_printf ("gpg-agent --homedir %s ", home);
  g_autofree char *found = find_process (needle);
  return found != NULL;
}

/* What a verification does in its throwaway home (import a public key,
 * verify) starts no gpg-agent there: one that outlived the home made this
 * suite fail about one run in three. gpg started one for the import
 * before the home said no-autostart. */
static void
test_no_agent (void)
{
  g_autoptr(GError) error = NULL;
  char *home = ab_gpg_new_throwaway_home (&error);
  g_assert_no_error (error);
  g_autofree char *key = g_build_filename (keys.trusted_gpg, "publisher.gpg", NULL);
  g_autofree char *cmd = g_strdup_printf ("gpg --batch --quiet --homedir %s --import %s", home, key);
  gint status = -1;
  g_assert_true (g_spawn_command_line_sync (cmd, NULL, NULL, &status, &error));
  g_assert_true (g_spawn_check_wait_status (status, NULL));
  gboolean runs = agent_runs_on (home);
  ab_gpg_discard_home (home);
  g_assert_false (runs);
  assert_no_leftovers ();
}

static void
test_good_signature (void)
{
  g_autoptr(GBytes) data = text ("{\"format\":1}\n");
  g_autoptr(GBytes) sig = sign (keys.publisher, data);
  g_autoptr(GError) error = NULL;
  g_autofree char *fpr = NULL;
  g_assert_true (ab_gpg_verify_detached (keys.trusted_gpg, data, sig, &fpr, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (fpr, ==, keys.publisher);
  assert_no_leftovers ();
}

static void
test_armored_key (void)
{
  g_autoptr(GBytes) data = text ("armored\n");
  g_autoptr(GBytes) sig = sign (keys.publisher, data);
  g_autoptr(GError) error = NULL;
  g_assert_true (ab_gpg_verify_detached (keys.trusted_asc, data, sig, NULL, &error));
  g_assert_no_error (error);
}

static void
test_tampered_data (void)
{
  g_autoptr(GBytes) data = text ("{\"serial\":7}\n");
  g_autoptr(GBytes) sig = sign (keys.publisher, data);
  g_autoptr(GBytes) evil = text ("{\"serial\":8}\n");
  g_autoptr(GError) error = NULL;
  g_assert_false (ab_gpg_verify_detached (keys.trusted_gpg, evil, sig, NULL, &error));
  g_assert_error (error, AB_GPG_ERROR, AB_GPG_ERROR_BAD_SIGNATURE);
  g_assert_nonnull (strstr (error->message, "BAD signature"));
  assert_no_leftovers ();
}

static void
test_untrusted_key (void)
{
  g_autoptr(GBytes) data = text ("intruder\n");
  g_autoptr(GBytes) sig = sign (keys.intruder, data);
  g_autoptr(GError) error = NULL;
  g_assert_false (ab_gpg_verify_detached (keys.trusted_gpg, data, sig, NULL, &error));
  g_assert_error (error, AB_GPG_ERROR, AB_GPG_ERROR_UNTRUSTED_KEY);
  g_assert_nonnull (strstr (error->message, keys.trusted_gpg));
}

static void
test_no_keys (void)
{
  g_autoptr(GBytes) data = text ("x\n");
  g_autoptr(GBytes) sig = sign (keys.publisher, data);
  g_autoptr(GError) error = NULL;
  g_assert_false (ab_gpg_verify_detached (keys.empty, data, sig, NULL, &error));
  g_assert_error (error, AB_GPG_ERROR, AB_GPG_ERROR_NO_KEYS);
  g_clear_error (&error);
  g_autofree char *missing = g_build_filename (keys.root, "missing", NULL);
  g_assert_false (ab_gpg_verify_detached (missing, data, sig, NULL, &error));
  g_assert_error (error, AB_GPG_ERROR, AB_GPG_ERROR_NO_KEYS);
  g_clear_error (&error);
  /* Key files that hold no key are no better than none. */
  g_autofree char *junk_dir = g_build_filename (keys.root, "junk", NULL);
  g_autofree char *junk = g_build_filename (junk_dir, "junk.gpg", NULL);
  g_assert_cmpint (g_mkdir_with_parents (junk_dir, 0700), ==, 0);
  g_assert_true (g_file_set_contents (junk, "not a key\n", -1, NULL));
  g_assert_false (ab_gpg_verify_detached (junk_dir, data, sig, NULL, &error));
  g_assert_error (error, AB_GPG_ERROR, AB_GPG_ERROR_NO_KEYS);
  assert_no_leftovers ();
}

static void
test_no_signature (void)
{
  g_autoptr(GBytes) data = text ("x\n");
  const char *sigs[] = { "", "this is not a signature\n" };
  for (guint i = 0; i < G_N_ELEMENTS (sigs); i++)
    {
      g_autoptr(GBytes) sig = text (sigs[i]);
      g_autoptr(GError) error = NULL;
      g_assert_false (ab_gpg_verify_detached (keys.trusted_gpg, data, sig, NULL, &error));
      g_assert_error (error, AB_GPG_ERROR, AB_GPG_ERROR_NO_SIGNATURE);
    }
}

static void
test_damaged_signature (void)
{
  g_autoptr(GBytes) data = text ("x\n");
  g_autoptr(GBytes) sig = sign (keys.publisher, data);
  gsize len = 0;
  const guint8 *raw = g_bytes_get_data (sig, &len);
  g_autofree guint8 *copy = g_memdup2 (raw, len);
  copy[len - 10] ^= 0xff; /* inside the signature's MPI */
  g_autoptr(GBytes) bad = g_bytes_new (copy, len);
  g_autoptr(GError) error = NULL;
  g_assert_false (ab_gpg_verify_detached (keys.trusted_gpg, data, bad, NULL, &error));
  g_assert_nonnull (error);
  g_assert_true (error->domain == AB_GPG_ERROR);
  g_assert_cmpint (error->code, !=, AB_GPG_ERROR_UNTRUSTED_KEY);
}

static void
test_sign_unknown_key (void)
{
  g_autoptr(GBytes) data = text ("x\n");
  g_autoptr(GBytes) sig = NULL;
  g_autoptr(GError) error = NULL;
  g_assert_false (ab_gpg_sign_detached (keys.home, "0000000000000000000000000000000000000000",
                                        data, &sig, &error));
  g_assert_error (error, AB_GPG_ERROR, AB_GPG_ERROR_FAILED);
  g_assert_nonnull (strstr (error->message, "--gpg-homedir"));
  g_assert_null (sig);
}

/* Plain gpg accepts what abdeploy signs. */
static void
test_gpg_cli_verifies (void)
{
  g_autoptr(GBytes) data = text ("{\"channel\":\"stable\"}\n");
  g_autoptr(GBytes) sig = sign (keys.publisher, data);
  g_autofree char *dpath = g_build_filename (keys.root, "m.json", NULL);
  g_autofree char *spath = g_build_filename (keys.root, "m.json.sig", NULL);
  g_assert_true (g_file_set_contents (dpath, g_bytes_get_data (data, NULL),
                                      (gssize) g_bytes_get_size (data), NULL));
  g_assert_true (g_file_set_contents (spath, g_bytes_get_data (sig, NULL),
                                      (gssize) g_bytes_get_size (sig), NULL));
  g_autofree char *args = g_strdup_printf ("--verify %s %s", spath, dpath);
  g_free (run_gpg (args, NULL));
}

static void
test_is_signed_by (void)
{
  g_autoptr(GBytes) data = text ("commit\n");
  g_autoptr(GBytes) sig = sign (keys.publisher, data);
  g_autoptr(GError) error = NULL;
  gboolean is = FALSE;
  g_assert_true (ab_gpg_is_signed_by (keys.home, keys.publisher, data, sig, &is, &error));
  g_assert_true (is);
  g_assert_true (ab_gpg_is_signed_by (keys.home, keys.intruder, data, sig, &is, &error));
  g_assert_false (is);
  g_autoptr(GBytes) other = text ("other\n");
  g_assert_true (ab_gpg_is_signed_by (keys.home, keys.publisher, other, sig, &is, &error));
  g_assert_false (is);
  g_assert_no_error (error);
}

int
main (int argc, char **argv)
{
  keys_setup ();
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/gpg/good-signature", test_good_signature);
  g_test_add_func ("/gpg/armored-key", test_armored_key);
  g_test_add_func ("/gpg/tampered-data", test_tampered_data);
  g_test_add_func ("/gpg/untrusted-key", test_untrusted_key);
  g_test_add_func ("/gpg/no-keys", test_no_keys);
  g_test_add_func ("/gpg/no-signature", test_no_signature);
  g_test_add_func ("/gpg/damaged-signature", test_damaged_signature);
  g_test_add_func ("/gpg/sign-unknown-key", test_sign_unknown_key);
  g_test_add_func ("/gpg/gpg-cli-verifies", test_gpg_cli_verifies);
  g_test_add_func ("/gpg/is-signed-by", test_is_signed_by);
  g_test_add_func ("/gpg/no-agent", test_no_agent);
  int ret = g_test_run ();
  keys_teardown ();
  return ret;
}
