#include "config.h"
#include "ab-kernel.h"
#include "ab-crashpoint.h"
#include "ab-fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

G_DEFINE_QUARK (ab-kernel-error-quark, ab_kernel_error)

#define MODULES_DIR "usr/lib/modules"

static const char *
kind_of (const struct stat *st)
{
  if (S_ISLNK (st->st_mode))
    return "a symbolic link";
  if (S_ISDIR (st->st_mode))
    return "a directory";
  if (!S_ISREG (st->st_mode))
    return "not a regular file";
  return "empty";
}

static gboolean
not_bootable (GError **error, const char *what, const char *why)
{
  g_set_error (error, AB_KERNEL_ERROR, AB_KERNEL_ERROR_NOT_BOOTABLE,
               "The image has no bootable kernel: %s is %s; a kernel must be a non-empty "
               "regular file of the image (no symbolic link)", what, why);
  return FALSE;
}

/* NAME below DFD must be a non-empty regular file reached without a link;
 * SHOWN names it in the error. */
static gboolean
check_boot_file (int dfd, const char *name, const char *shown, GError **error)
{
  g_autoptr(GError) local = NULL;
  ab_autofd fd = ab_fs_open_beneath (dfd, name, O_PATH | O_NOFOLLOW, 0,
                                     AB_FS_RESOLVE_NO_SYMLINKS, &local);
  struct stat st;
  if (fd < 0 && g_error_matches (local, AB_FS_ERROR, AB_FS_ERROR_NOT_FOUND))
    return not_bootable (error, shown, "missing");
  if (fd < 0)
    return not_bootable (error, shown, "reached through a symbolic link");
  if (fstat (fd, &st) < 0)
    return not_bootable (error, shown, g_strerror (errno));
  if (!S_ISREG (st.st_mode) || st.st_size == 0)
    return not_bootable (error, shown, kind_of (&st));
  return TRUE;
}

/* The highest KVER (a real directory) with a vmlinuz entry of any kind. */
static char *
highest_kver (int modules_dfd)
{
  ab_autofd list = dup (modules_dfd);
  DIR *d = list >= 0 ? fdopendir (ab_steal_fd (&list)) : NULL;
  g_autofree char *found = NULL;
  struct dirent *de;
  while (d != NULL && (de = readdir (d)) != NULL)
    {
      struct stat st;
      ab_autofd kdir = de->d_name[0] == '.' ? -1
                       : ab_fs_open_beneath (modules_dfd, de->d_name, O_RDONLY | O_DIRECTORY, 0,
                                             AB_FS_RESOLVE_NO_SYMLINKS, NULL);
      if (kdir >= 0 && fstatat (kdir, "vmlinuz", &st, AT_SYMLINK_NOFOLLOW) == 0
          && (found == NULL || strcmp (de->d_name, found) > 0))
        {
          g_free (found);
          found = g_strdup (de->d_name);
        }
    }
  if (d != NULL)
    closedir (d);
  return g_steal_pointer (&found);
}

static gboolean
check_kver (int modules_dfd, const char *kver, GError **error)
{
  g_autofree char *vmlinuz = g_build_filename (kver, "vmlinuz", NULL);
  g_autofree char *initramfs = g_build_filename (kver, "initramfs.img", NULL);
  g_autofree char *shown_k = g_build_filename (MODULES_DIR, vmlinuz, NULL);
  g_autofree char *shown_i = g_build_filename (MODULES_DIR, initramfs, NULL);
  ab_autofd kdir = ab_fs_open_beneath (modules_dfd, kver, O_RDONLY | O_DIRECTORY, 0,
                                       AB_FS_RESOLVE_NO_SYMLINKS, error);
  struct stat st;
  if (kdir < 0 || !check_boot_file (kdir, "vmlinuz", shown_k, error))
    return FALSE;
  if (fstatat (kdir, "initramfs.img", &st, AT_SYMLINK_NOFOLLOW) < 0)
    return TRUE;   /* an initramfs is optional */
  return check_boot_file (kdir, "initramfs.img", shown_i, error);
}

char *
ab_kernel_find (int tree_dfd, GError **error)
{
  g_autoptr(GError) local = NULL;
  ab_autofd modules = ab_fs_open_beneath (tree_dfd, MODULES_DIR, O_RDONLY | O_DIRECTORY, 0,
                                          AB_FS_RESOLVE_NO_SYMLINKS, &local);
  if (modules < 0 && !g_error_matches (local, AB_FS_ERROR, AB_FS_ERROR_NOT_FOUND))
    {
      not_bootable (error, MODULES_DIR, "reached through a symbolic link or not a directory");
      return NULL;
    }
  g_autofree char *kver = modules >= 0 ? highest_kver (modules) : NULL;
  if (kver == NULL)
    {
      g_set_error (error, AB_KERNEL_ERROR, AB_KERNEL_ERROR_NOT_FOUND,
                   "The image has no kernel (no " MODULES_DIR "/KVER/vmlinuz)");
      return NULL;
    }
  if (!check_kver (modules, kver, error))
    return NULL;
  return g_steal_pointer (&kver);
}

/* Copies the checked regular files of the kernel directory into DST. */
static gboolean
fill_boot_dir (int tree_dfd, const char *kver, int dst_dfd, GError **error)
{
  g_autofree char *kdir_rel = g_build_filename (MODULES_DIR, kver, NULL);
  ab_autofd kdir = ab_fs_open_beneath (tree_dfd, kdir_rel, O_RDONLY | O_DIRECTORY, 0,
                                       AB_FS_RESOLVE_NO_SYMLINKS, error);
  if (kdir < 0 || !ab_fs_copy_at (kdir, "vmlinuz", dst_dfd, "vmlinuz", error))
    return FALSE;
  if (ab_fs_exists_at (kdir, "initramfs.img")
      && !ab_fs_copy_at (kdir, "initramfs.img", dst_dfd, "initramfs.img", error))
    return FALSE;
  g_autofree char *line = g_strconcat (kver, "\n", NULL);
  return ab_fs_replace_at (dst_dfd, "kver", line, strlen (line), 0644, error);
}

gboolean
ab_kernel_install (int tree_dfd, int boot_dfd, AbSlot slot, GError **error)
{
  g_autofree char *kver = ab_kernel_find (tree_dfd, error);
  if (kver == NULL)
    return FALSE;
  const char *name = ab_slot_name (slot);
  g_autofree char *tmp = g_strdup_printf (".%s.new", name);
  if (!ab_fs_rm_rf_at (boot_dfd, tmp, error) || !ab_fs_mkdir_p_at (boot_dfd, tmp, 0755, error))
    return FALSE;
  ab_autofd dst = ab_fs_opendir_at (boot_dfd, tmp, error);
  if (dst < 0 || !fill_boot_dir (tree_dfd, kver, dst, error)
      || !check_boot_file (dst, "vmlinuz", "the installed vmlinuz", error))
    {
      /* a failed build (a bad kernel, a full disk, an I/O error) leaves nothing */
      AB_IGNORE_RESULT (ab_fs_rm_rf_at (boot_dfd, tmp, NULL));
      return FALSE;
    }
  ab_crash_point ("kernel:built");
  if (ab_fs_exists_at (boot_dfd, name))
    {
      if (!ab_fs_exchange_at (boot_dfd, tmp, name, error))
        return FALSE;
    }
  else if (!ab_fs_rename_at (boot_dfd, tmp, name, error))
    return FALSE;
  ab_crash_point ("kernel:swapped");
  return ab_fs_rm_rf_at (boot_dfd, tmp, error) && ab_fs_fsync_dir_at (boot_dfd, ".", error);
}

gboolean
ab_kernel_check_installed (int boot_dfd, AbSlot slot, GError **error)
{
  g_autofree char *rel = g_build_filename (ab_slot_name (slot), "vmlinuz", NULL);
  g_autofree char *shown = g_strconcat ("boot/abdeploy/", rel, NULL);
  if (check_boot_file (boot_dfd, rel, shown, error))
    return TRUE;
  g_prefix_error (error, "Slot %s cannot boot: ", ab_slot_name (slot));
  return FALSE;
}
