/* Real sysroots for unit tests: a signing key made once per run (a real
 * GnuPG home), a publisher repo that abdeploy's publisher writes and signs,
 * and a sysroot made by ab_sysroot_init() (bootloader "file") that trusts
 * the key. Nothing is mocked: stage pulls, verifies and checks out as on a
 * device. */
#pragma once

#include <glib.h>
#include <glib/gstdio.h>
#include <string.h>
#include "ab-content.h"
#include "ab-deploy.h"
#include "ab-sysroot.h"
#include "publisher/ab-publish.h"
#include "ab-test-fixture.h"

typedef struct
{
  char *root;   /* scratch directory of the run */
  char *home;   /* GnuPG home with the secret key */
  char *fpr;    /* its fingerprint */
  char *pubkey; /* exported public key (binary) */
} TestKey;

static TestKey test_key;

static inline void
test_key_gpg (const char *args)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *cmd = g_strdup_printf ("gpg --batch --quiet --homedir %s %s", test_key.home,
                                          args);
  int status = 0;
  g_assert_true (g_spawn_command_line_sync (cmd, NULL, NULL, &status, &error));
  g_assert_no_error (error);
  g_assert_true (g_spawn_check_wait_status (status, NULL));
}

/* Makes the run's key; call once from main() before g_test_run(). */
static inline void
test_key_setup (void)
{
  const char *tmp = g_getenv ("TMPDIR");
  test_key.root = g_build_filename (tmp && *tmp ? tmp : "/tmp", "abdeploy-test-key-XXXXXX", NULL);
  g_assert_nonnull (g_mkdtemp (test_key.root));
  test_key.home = g_build_filename (test_key.root, "home", NULL);
  g_assert_cmpint (g_mkdir_with_parents (test_key.home, 0700), ==, 0);
  g_autofree char *params = g_build_filename (test_key.root, "params", NULL);
  g_assert_true (g_file_set_contents (params,
      "%no-protection\nKey-Type: RSA\nKey-Length: 2048\nKey-Usage: sign\n"
      "Name-Real: Unit Test\nName-Email: unit@example.org\nExpire-Date: 0\n%commit\n", -1, NULL));
  g_autofree char *gen = g_strdup_printf ("--gen-key %s", params);
  test_key_gpg (gen);
  g_autofree char *list = g_strdup_printf ("gpg --batch --homedir %s --with-colons --list-keys",
                                           test_key.home);
  g_autofree char *out = NULL;
  g_assert_true (g_spawn_command_line_sync (list, &out, NULL, NULL, NULL));
  const char *fpr = strstr (out, "\nfpr:::::::::");
  g_assert_nonnull (fpr);
  test_key.fpr = g_strndup (fpr + strlen ("\nfpr:::::::::"), 40);
  test_key.pubkey = g_build_filename (test_key.root, "publisher.gpg", NULL);
  g_autofree char *exp = g_strdup_printf ("--output %s --export %s", test_key.pubkey,
                                          test_key.fpr);
  test_key_gpg (exp);
}

/* Stops the key's agent and removes the run's directory. */
static inline void
test_key_teardown (void)
{
  g_autofree char *kill = g_strdup_printf ("gpgconf --homedir %s --kill all", test_key.home);
  (void) g_spawn_command_line_sync (kill, NULL, NULL, NULL, NULL);
  g_assert_true (ab_fs_rm_rf_at (AT_FDCWD, test_key.root, NULL));
  g_free (test_key.root);
  g_free (test_key.home);
  g_free (test_key.fpr);
  g_free (test_key.pubkey);
}

typedef struct
{
  TmpDir tmp;
  char *sysroot;      /* TMP/sysroot, initialized */
  char *repo;         /* TMP/publish, the publisher's repo (made by the first commit) */
  AbPublisher pub;    /* signs with the run's key */
} SysrootFixture;

static inline void
sysroot_fixture_setup (SysrootFixture *fx, gconstpointer data)
{
  tmpdir_setup (&fx->tmp, data);
  fx->sysroot = g_build_filename (fx->tmp.path, "sysroot", NULL);
  fx->repo = g_build_filename (fx->tmp.path, "publish", NULL);
  fx->pub = (AbPublisher) { .repo = fx->repo, .gpg_key = test_key.fpr,
                            .gpg_homedir = test_key.home };
  /* No abdeploy.slot=: the sysroot is offline (no booted slot). */
  write_file_at (fx->tmp.dfd, "cmdline", "quiet\n");
  g_autofree char *cmdline = g_build_filename (fx->tmp.path, "cmdline", NULL);
  g_setenv ("ABDEPLOY_CMDLINE", cmdline, TRUE);
  g_assert_cmpint (g_mkdir_with_parents (fx->sysroot, 0755), ==, 0);
  g_autoptr(GError) error = NULL;
  gboolean created = FALSE;
  g_assert_true (ab_sysroot_init (fx->sysroot, NULL, "testos", "file", NULL, &created, &error));
  g_assert_no_error (error);
  g_assert_true (created);
  g_autofree char *keys = g_build_filename (fx->sysroot, AB_TRUSTED_KEYS_DIR, NULL);
  g_autofree char *key = g_build_filename (keys, "publisher.gpg", NULL);
  g_autofree char *bytes = NULL;
  gsize len = 0;
  g_assert_cmpint (g_mkdir_with_parents (keys, 0755), ==, 0);
  g_assert_true (g_file_get_contents (test_key.pubkey, &bytes, &len, NULL));
  g_assert_true (g_file_set_contents (key, bytes, len, NULL));
}

static inline void
sysroot_fixture_teardown (SysrootFixture *fx, gconstpointer data)
{
  g_unsetenv ("ABDEPLOY_CMDLINE");
  g_free (fx->sysroot);
  g_free (fx->repo);
  tmpdir_teardown (&fx->tmp, data);
}

#define SYSROOT_TEST(name, func) \
  g_test_add (name, SysrootFixture, NULL, sysroot_fixture_setup, func, sysroot_fixture_teardown)

/* Writes an image tree TMP/tree-VERSION (a kernel and /usr/share/VERSION,
 * plus EXTRA = "path" when not NULL) and publishes it as VERSION for OS;
 * returns the commit. */
static inline char *
publish_image_for_os (SysrootFixture *fx, const char *version, const char *extra, const char *os)
{
  g_autofree char *tree = g_strdup_printf ("tree-%s", version);
  g_autofree char *kernel = g_strdup_printf ("%s/usr/lib/modules/6.1.0/vmlinuz", tree);
  g_autofree char *marker = g_strdup_printf ("%s/usr/share/version", tree);
  write_file_at (fx->tmp.dfd, kernel, "not really a kernel\n");
  write_file_at (fx->tmp.dfd, marker, version);
  if (extra)
    {
      g_autofree char *path = g_strdup_printf ("%s/%s", tree, extra);
      write_file_at (fx->tmp.dfd, path, extra);
    }
  g_autofree char *tree_path = g_build_filename (fx->tmp.path, tree, NULL);
  AbPublishCommitOptions o = { .tree = tree_path, .version = version, .os = os };
  g_autoptr(GError) error = NULL;
  g_autofree char *commit = NULL;
  g_auto(GStrv) privileged = NULL;
  gboolean created = FALSE;
  g_assert_true (ab_publish_commit (&fx->pub, &o, &commit, &created, &privileged, &error));
  g_assert_no_error (error);
  return g_steal_pointer (&commit);
}

/* publish_image_for_os() for the fixture's OS, testos. */
static inline char *
publish_image (SysrootFixture *fx, const char *version, const char *extra)
{
  return publish_image_for_os (fx, version, extra, "testos");
}

static inline AbSysroot *
open_sysroot (SysrootFixture *fx)
{
  g_autoptr(GError) error = NULL;
  AbSysroot *s = ab_sysroot_open (fx->sysroot, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (s);
  return s;
}

/* Stages COMMIT from the publisher repo; returns the slot written. */
static inline AbSlot
stage_commit (SysrootFixture *fx, const char *commit)
{
  g_autoptr(AbSysroot) s = open_sysroot (fx);
  AbStageOptions o = { .source = fx->repo, .refspec = commit };
  g_autoptr(GError) error = NULL;
  AbSlot slot = AB_SLOT_NONE;
  g_assert_true (ab_deploy_stage (s, &o, &slot, &error));
  g_assert_no_error (error);
  return slot;
}
