#include "config.h"
#include "ab-config.h"
#include "ab-test-fixture.h"

static void
test_defaults (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(AbConfig) c = ab_config_load (t->dfd, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (c->boot_tries, ==, 3);
  g_assert_null (c->update_url);
}

static void
test_conf_d_overrides (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  write_file_at (t->dfd, "etc/abdeploy/abdeploy.conf", "[boot]\ntries=5\n[update]\nurl=http://127.0.0.1:1/\n");
  write_file_at (t->dfd, "etc/abdeploy/conf.d/20-b.conf", "[boot]\ntries=7\n");
  write_file_at (t->dfd, "etc/abdeploy/conf.d/10-a.conf", "[boot]\ntries=6\n");
  g_autoptr(AbConfig) c = ab_config_load (t->dfd, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (c->boot_tries, ==, 7);
  g_assert_cmpstr (c->update_url, ==, "http://127.0.0.1:1/");
}

static void
test_invalid_tries (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  write_file_at (t->dfd, "etc/abdeploy/abdeploy.conf", "[boot]\ntries=12\n");
  g_autoptr(AbConfig) c = ab_config_load (t->dfd, NULL, &error);
  g_assert_null (c);
  g_assert_error (error, AB_CONFIG_ERROR, AB_CONFIG_ERROR_INVALID);
}

static void
test_syntax_error_names_file (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  write_file_at (t->dfd, "etc/abdeploy/abdeploy.conf", "this is not a keyfile\n");
  g_autoptr(AbConfig) c = ab_config_load (t->dfd, NULL, &error);
  g_assert_null (c);
  g_assert_nonnull (strstr (error->message, "abdeploy.conf"));
}

static void
test_override_path (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  write_file_at (t->dfd, "etc/abdeploy/abdeploy.conf", "[boot]\ntries=5\n");
  write_file_at (t->dfd, "other.conf", "[boot]\ntries=2\n");
  g_autofree char *path = g_build_filename (t->path, "other.conf", NULL);
  g_autoptr(AbConfig) c = ab_config_load (t->dfd, path, &error);
  g_assert_no_error (error);
  g_assert_cmpint (c->boot_tries, ==, 2);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  TMPDIR_TEST ("/config/defaults", test_defaults);
  TMPDIR_TEST ("/config/conf-d-overrides", test_conf_d_overrides);
  TMPDIR_TEST ("/config/invalid-tries", test_invalid_tries);
  TMPDIR_TEST ("/config/syntax-error-names-file", test_syntax_error_names_file);
  TMPDIR_TEST ("/config/override-path", test_override_path);
  return g_test_run ();
}
