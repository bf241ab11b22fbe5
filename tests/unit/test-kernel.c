#include "config.h"
#include "ab-kernel.h"
#include "ab-test-fixture.h"

static void
test_install_and_replace (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  write_file_at (t->dfd, "tree/usr/lib/modules/6.1.0/vmlinuz", "k1");
  write_file_at (t->dfd, "tree/usr/lib/modules/6.1.0/initramfs.img", "i1");
  write_file_at (t->dfd, "tree/usr/lib/modules/6.2.0/vmlinuz", "k2");
  g_assert_true (ab_fs_mkdir_p_at (t->dfd, "boot", 0755, &error));
  ab_autofd tree = ab_fs_opendir_at (t->dfd, "tree", &error);
  ab_autofd boot = ab_fs_opendir_at (t->dfd, "boot", &error);
  g_autofree char *kver = ab_kernel_find (tree, &error);
  g_assert_cmpstr (kver, ==, "6.2.0");
  g_assert_true (ab_kernel_install (tree, boot, AB_SLOT_B, &error));
  g_assert_no_error (error);
  g_autofree char *k = read_file_at (t->dfd, "boot/b/vmlinuz");
  g_assert_cmpstr (k, ==, "k2");
  g_assert_false (ab_fs_exists_at (t->dfd, "boot/b/initramfs.img"));
  g_assert_false (ab_fs_exists_at (t->dfd, "boot/.b.new"));
  g_assert_false (ab_fs_exists_at (t->dfd, "boot/a"));
}

static void
test_no_kernel (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  write_file_at (t->dfd, "tree/usr/bin/true", "x");
  ab_autofd tree = ab_fs_opendir_at (t->dfd, "tree", &error);
  g_autofree char *kver = ab_kernel_find (tree, &error);
  g_assert_null (kver);
  g_assert_error (error, AB_KERNEL_ERROR, AB_KERNEL_ERROR_NOT_FOUND);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  TMPDIR_TEST ("/kernel/install-and-replace", test_install_and_replace);
  TMPDIR_TEST ("/kernel/no-kernel", test_no_kernel);
  return g_test_run ();
}
