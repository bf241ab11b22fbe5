#include "config.h"
#include "ab-cmdline.h"
#include "ab-test-fixture.h"

static void
test_get (void)
{
  g_autofree char *a = ab_cmdline_get ("root=/dev/sda1 abdeploy.slot=b quiet\n", "abdeploy.slot");
  g_assert_cmpstr (a, ==, "b");
  g_autofree char *none = ab_cmdline_get ("root=/dev/sda1 xabdeploy.slot=b", "abdeploy.slot");
  g_assert_null (none);
  g_autofree char *last = ab_cmdline_get ("abdeploy.slot=a abdeploy.slot=b", "abdeploy.slot");
  g_assert_cmpstr (last, ==, "b");
}

static void
test_booted_from_env (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  write_file_at (t->dfd, "cmdline", "BOOT_IMAGE=/vmlinuz abdeploy.slot=a ro\n");
  g_autofree char *path = g_build_filename (t->path, "cmdline", NULL);
  g_setenv ("ABDEPLOY_CMDLINE", path, TRUE);
  g_assert_cmpint (ab_cmdline_booted_slot (&error), ==, AB_SLOT_A);
  write_file_at (t->dfd, "cmdline", "ro quiet\n");
  g_assert_cmpint (ab_cmdline_booted_slot (&error), ==, AB_SLOT_NONE);
  g_assert_no_error (error);
  g_unsetenv ("ABDEPLOY_CMDLINE");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/cmdline/get", test_get);
  TMPDIR_TEST ("/cmdline/booted-from-env", test_booted_from_env);
  return g_test_run ();
}
