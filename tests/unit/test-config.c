#include "config.h"
#include "ab-config.h"
#include "ab-format.h"
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

static void
test_format (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(AbConfig) none = ab_config_load (t->dfd, NULL, &error);
  g_assert_cmpint (none->format, ==, 1);
  write_file_at (t->dfd, "etc/abdeploy/abdeploy.conf", "[abdeploy]\nformat=2\n[boot]\ntries=5\n");
  write_file_at (t->dfd, "etc/abdeploy/conf.d/10-a.conf", "[boot]\ntries=6\n");
  write_file_at (t->dfd, "etc/abdeploy/conf.d/20-b.conf", "[abdeploy]\nformat=2\n");
  g_autoptr(AbConfig) c = ab_config_load (t->dfd, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (c->format, ==, 2);
  g_assert_cmpint (c->boot_tries, ==, 6);
}

static void
test_format_refused (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  write_file_at (t->dfd, "etc/abdeploy/abdeploy.conf", "[abdeploy]\nformat=3\n");
  g_autoptr(AbConfig) c = ab_config_load (t->dfd, NULL, &error);
  g_assert_null (c);
  g_assert_error (error, AB_FORMAT_ERROR, AB_FORMAT_ERROR_UNKNOWN);
  g_assert_nonnull (strstr (error->message, "etc/abdeploy/abdeploy.conf has format 3, but this abdeploy"));
  g_clear_error (&error);
  /* a drop-in that states another format than abdeploy.conf */
  write_file_at (t->dfd, "etc/abdeploy/abdeploy.conf", "[abdeploy]\nformat=2\n");
  write_file_at (t->dfd, "etc/abdeploy/conf.d/50-x.conf", "[abdeploy]\nformat=1\n");
  g_autoptr(AbConfig) c2 = ab_config_load (t->dfd, NULL, &error);
  g_assert_null (c2);
  g_assert_error (error, AB_CONFIG_ERROR, AB_CONFIG_ERROR_INVALID);
  g_assert_nonnull (strstr (error->message, "conf.d/50-x.conf states [abdeploy] format=1"));
  g_clear_error (&error);
  /* --config=FILE is checked the same way */
  write_file_at (t->dfd, "other.conf", "[abdeploy]\nformat=7\n");
  g_autofree char *path = g_build_filename (t->path, "other.conf", NULL);
  g_autoptr(AbConfig) c3 = ab_config_load (t->dfd, path, &error);
  g_assert_null (c3);
  g_assert_nonnull (strstr (error->message, "has format 7"));
}

static void
test_stamp_format (void)
{
  static const char *const cases[][2] = {
    { "", "[abdeploy]\nformat=2\n" },
    { "[boot]\ntries=2\n", "[abdeploy]\nformat=2\n\n[boot]\ntries=2\n" },
    { "# c\n[abdeploy]\n# note\n[boot]\n", "# c\n[abdeploy]\nformat=2\n# note\n[boot]\n" },
    { "[abdeploy]\nformat = 1\nx=y\n", "[abdeploy]\nformat=2\nx=y\n" },
    { "[boot]\nformat=1\n[abdeploy]\nformat=1", "[boot]\nformat=1\n[abdeploy]\nformat=2" },
    { "[boot]\n[abdeploy]", "[boot]\n[abdeploy]\nformat=2\n" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *out = ab_config_stamp_format (cases[i][0], 2);
      g_assert_cmpstr (out, ==, cases[i][1]);
      g_autoptr(GKeyFile) kf = g_key_file_new ();
      g_assert_true (g_key_file_load_from_data (kf, out, -1, G_KEY_FILE_NONE, NULL));
      g_assert_cmpint (g_key_file_get_integer (kf, "abdeploy", "format", NULL), ==, 2);
    }
}

static void
test_stamp_file (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  gboolean changed = FALSE;
  g_assert_true (ab_config_stamp_file_at (t->dfd, &changed, &error));
  g_assert_true (changed);
  g_autofree char *made = read_file_at (t->dfd, "etc/abdeploy/abdeploy.conf");
  g_assert_cmpstr (made, ==, "[abdeploy]\nformat=2\n");
  g_assert_true (ab_config_stamp_file_at (t->dfd, &changed, &error));
  g_assert_false (changed);
  write_file_at (t->dfd, "etc/abdeploy/abdeploy.conf", "[abdeploy]\nformat=5\n");
  g_assert_false (ab_config_stamp_file_at (t->dfd, &changed, &error));
  g_assert_error (error, AB_FORMAT_ERROR, AB_FORMAT_ERROR_UNKNOWN);
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
  TMPDIR_TEST ("/config/format", test_format);
  TMPDIR_TEST ("/config/format-refused", test_format_refused);
  g_test_add_func ("/config/stamp-format", test_stamp_format);
  TMPDIR_TEST ("/config/stamp-file", test_stamp_file);
  return g_test_run ();
}
