#include "config.h"
#include <string.h>
#include "bootloaders/ab-grubenv.h"

static void
test_roundtrip (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) env = g_ptr_array_new_with_free_func (g_free);
  ab_grubenv_set (env, "saved_entry", "0");
  ab_grubenv_set (env, "ABDEPLOY_PRIMARY", "a");
  ab_grubenv_set (env, "ABDEPLOY_PRIMARY", "b");
  g_autofree char *block = ab_grubenv_serialize (env, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (strlen (block), ==, AB_GRUBENV_SIZE);
  g_assert_true (g_str_has_prefix (block, "# GRUB Environment Block\nsaved_entry=0\nABDEPLOY_PRIMARY=b\n#"));
  g_autoptr(GPtrArray) back = ab_grubenv_parse (block, AB_GRUBENV_SIZE, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (back->len, ==, 2);
  g_assert_cmpstr (ab_grubenv_get (back, "ABDEPLOY_PRIMARY"), ==, "b");
  g_assert_cmpstr (ab_grubenv_get (back, "saved_entry"), ==, "0");
  g_assert_null (ab_grubenv_get (back, "ABDEPLOY"));
}

static void
test_rejects_garbage (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) env = ab_grubenv_parse ("hello\n", 6, &error);
  g_assert_null (env);
  g_assert_error (error, AB_GRUBENV_ERROR, AB_GRUBENV_ERROR_PARSE);
}

static void
test_too_big (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) env = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *big = g_strnfill (1100, 'x');
  ab_grubenv_set (env, "BIG", big);
  g_autofree char *block = ab_grubenv_serialize (env, &error);
  g_assert_null (block);
  g_assert_error (error, AB_GRUBENV_ERROR, AB_GRUBENV_ERROR_TOO_BIG);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/grubenv/roundtrip", test_roundtrip);
  g_test_add_func ("/grubenv/rejects-garbage", test_rejects_garbage);
  g_test_add_func ("/grubenv/too-big", test_too_big);
  return g_test_run ();
}
