#include "config.h"
#include "ab-kernel.h"
#include "ab-test-fixture.h"
#include <sys/stat.h>
#include <unistd.h>

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

/* ---- kernels that cannot boot (issue 10) ---- */

typedef struct
{
  const char *name;
  void (*make) (TmpDir *t);
  int code;              /* AB_KERNEL_ERROR_* */
  const char *words;
} BadKernel;

#define KDIR "tree/usr/lib/modules/6.1.0"

static void
link_to_host_passwd (TmpDir *t)
{
  g_assert_true (ab_fs_mkdir_p_at (t->dfd, KDIR, 0755, NULL));
  g_assert_cmpint (symlinkat ("/etc/passwd", t->dfd, KDIR "/vmlinuz"), ==, 0);
}

static void
link_inside_tree (TmpDir *t)
{
  write_file_at (t->dfd, KDIR "/vmlinuz-real", "k1");
  g_assert_cmpint (symlinkat ("vmlinuz-real", t->dfd, KDIR "/vmlinuz"), ==, 0);
}

static void
link_up_the_tree (TmpDir *t)
{
  write_file_at (t->dfd, "tree/usr/bin/kernel", "k1");
  g_assert_true (ab_fs_mkdir_p_at (t->dfd, KDIR, 0755, NULL));
  g_assert_cmpint (symlinkat ("../../../bin/kernel", t->dfd, KDIR "/vmlinuz"), ==, 0);
}

static void
missing (TmpDir *t)
{
  write_file_at (t->dfd, KDIR "/modules.dep", "");
}

static void
empty (TmpDir *t)
{
  write_file_at (t->dfd, KDIR "/vmlinuz", "");
}

static void
directory (TmpDir *t)
{
  g_assert_true (ab_fs_mkdir_p_at (t->dfd, KDIR "/vmlinuz", 0755, NULL));
}

static void
fifo (TmpDir *t)
{
  g_assert_true (ab_fs_mkdir_p_at (t->dfd, KDIR, 0755, NULL));
  g_assert_cmpint (mkfifoat (t->dfd, KDIR "/vmlinuz", 0644), ==, 0);
}

/* usr/lib/modules/6.9.9 -> a directory outside the tree with a kernel */
static void
kver_dir_is_link (TmpDir *t)
{
  write_file_at (t->dfd, "outside/vmlinuz", "host kernel");
  g_autofree char *target = g_build_filename (t->path, "outside", NULL);
  g_assert_true (ab_fs_mkdir_p_at (t->dfd, "tree/usr/lib/modules", 0755, NULL));
  g_assert_cmpint (symlinkat (target, t->dfd, "tree/usr/lib/modules/6.9.9"), ==, 0);
}

static void
modules_dir_is_link (TmpDir *t)
{
  write_file_at (t->dfd, "outside/6.1.0/vmlinuz", "host kernel");
  g_autofree char *target = g_build_filename (t->path, "outside", NULL);
  g_assert_true (ab_fs_mkdir_p_at (t->dfd, "tree/usr/lib", 0755, NULL));
  g_assert_cmpint (symlinkat (target, t->dfd, "tree/usr/lib/modules"), ==, 0);
}

static void
initramfs_is_link (TmpDir *t)
{
  write_file_at (t->dfd, KDIR "/vmlinuz", "k1");
  g_assert_cmpint (symlinkat ("/etc/shadow", t->dfd, KDIR "/initramfs.img"), ==, 0);
}

/* The highest version is the kernel: a bad one is not skipped for an older one. */
static void
highest_is_link (TmpDir *t)
{
  write_file_at (t->dfd, "tree/usr/lib/modules/5.10.0/vmlinuz", "old kernel");
  link_to_host_passwd (t);
}

static const BadKernel bad_kernels[] = {
  { "link-to-host-passwd", link_to_host_passwd, AB_KERNEL_ERROR_NOT_BOOTABLE, "vmlinuz is a symbolic link" },
  { "link-inside-tree", link_inside_tree, AB_KERNEL_ERROR_NOT_BOOTABLE, "vmlinuz is a symbolic link" },
  { "link-up-the-tree", link_up_the_tree, AB_KERNEL_ERROR_NOT_BOOTABLE, "vmlinuz is a symbolic link" },
  { "missing", missing, AB_KERNEL_ERROR_NOT_FOUND, "no kernel" },
  { "empty", empty, AB_KERNEL_ERROR_NOT_BOOTABLE, "vmlinuz is empty" },
  { "directory", directory, AB_KERNEL_ERROR_NOT_BOOTABLE, "vmlinuz is a directory" },
  { "fifo", fifo, AB_KERNEL_ERROR_NOT_BOOTABLE, "vmlinuz is not a regular file" },
  { "kver-dir-is-link", kver_dir_is_link, AB_KERNEL_ERROR_NOT_FOUND, "no kernel" },
  { "modules-dir-is-link", modules_dir_is_link, AB_KERNEL_ERROR_NOT_BOOTABLE, "usr/lib/modules is reached through a symbolic link" },
  { "initramfs-is-link", initramfs_is_link, AB_KERNEL_ERROR_NOT_BOOTABLE, "initramfs.img is a symbolic link" },
  { "highest-is-link", highest_is_link, AB_KERNEL_ERROR_NOT_BOOTABLE, "6.1.0/vmlinuz is a symbolic link" },
};

/* Each is refused by find and install, and the installed kernel of the
 * slot stays as it was. */
static void
check_bad_kernel (TmpDir *t, const BadKernel *b)
{
  write_file_at (t->dfd, "boot/b/vmlinuz", "previous");
  b->make (t);
  g_autoptr(GError) error = NULL;
  ab_autofd tree = ab_fs_opendir_at (t->dfd, "tree", &error);
  ab_autofd boot = ab_fs_opendir_at (t->dfd, "boot", &error);
  g_autofree char *kver = ab_kernel_find (tree, &error);
  g_test_message ("%s: %s", b->name, error ? error->message : "accepted");
  g_assert_null (kver);
  g_assert_error (error, AB_KERNEL_ERROR, b->code);
  g_assert_nonnull (strstr (error->message, b->words));
  g_clear_error (&error);
  g_assert_false (ab_kernel_install (tree, boot, AB_SLOT_B, &error));
  g_assert_error (error, AB_KERNEL_ERROR, b->code);
  g_autofree char *k = read_file_at (t->dfd, "boot/b/vmlinuz");
  g_assert_cmpstr (k, ==, "previous");
  g_assert_false (ab_fs_exists_at (t->dfd, "boot/.b.new"));
}

static void
test_bad_kernels (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (bad_kernels); i++)
    for (int walk = 0; walk <= 1; walk++)
      {
        TmpDir t;
        tmpdir_setup (&t, NULL);
        ab_fs_openat2_disabled = walk;
        check_bad_kernel (&t, &bad_kernels[i]);
        ab_fs_openat2_disabled = FALSE;
        tmpdir_teardown (&t, NULL);
      }
}

/* What the bootloader boots must be a non-empty regular file. */
static void
test_check_installed (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  write_file_at (t->dfd, "boot/a/vmlinuz", "k1");
  g_assert_true (ab_fs_mkdir_p_at (t->dfd, "boot/b", 0755, NULL));
  g_assert_cmpint (symlinkat ("../a/vmlinuz", t->dfd, "boot/b/vmlinuz"), ==, 0);
  ab_autofd boot = ab_fs_opendir_at (t->dfd, "boot", &error);
  g_assert_true (ab_kernel_check_installed (boot, AB_SLOT_A, &error));
  g_assert_false (ab_kernel_check_installed (boot, AB_SLOT_B, &error));
  g_assert_nonnull (strstr (error->message, "Slot b cannot boot: "));
  g_assert_nonnull (strstr (error->message, "boot/abdeploy/b/vmlinuz is a symbolic link"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  TMPDIR_TEST ("/kernel/install-and-replace", test_install_and_replace);
  TMPDIR_TEST ("/kernel/no-kernel", test_no_kernel);
  g_test_add_func ("/kernel/bad-kernels", test_bad_kernels);
  TMPDIR_TEST ("/kernel/check-installed", test_check_installed);
  return g_test_run ();
}
