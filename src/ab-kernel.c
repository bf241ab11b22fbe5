#include "config.h"
#include "ab-kernel.h"
#include "ab-crashpoint.h"
#include "ab-fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

G_DEFINE_QUARK (ab-kernel-error-quark, ab_kernel_error)

#define MODULES_DIR "usr/lib/modules"

char *
ab_kernel_find (int tree_dfd, GError **error)
{
  int fd = openat (tree_dfd, MODULES_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d = fd >= 0 ? fdopendir (fd) : NULL;
  g_autofree char *found = NULL;
  if (d != NULL)
    {
      struct dirent *de;
      while ((de = readdir (d)) != NULL)
        {
          if (de->d_name[0] == '.')
            continue;
          g_autofree char *vmlinuz = g_build_filename (de->d_name, "vmlinuz", NULL);
          struct stat st;
          /* Several kernels: the highest version (lexical order) boots. */
          if (fstatat (dirfd (d), vmlinuz, &st, 0) == 0 && S_ISREG (st.st_mode)
              && (found == NULL || strcmp (de->d_name, found) > 0))
            {
              g_free (found);
              found = g_strdup (de->d_name);
            }
        }
      closedir (d);
    }
  else if (fd >= 0)
    close (fd);
  if (found == NULL)
    g_set_error (error, AB_KERNEL_ERROR, AB_KERNEL_ERROR_NOT_FOUND,
                 "The image has no kernel (no " MODULES_DIR "/KVER/vmlinuz)");
  return g_steal_pointer (&found);
}

static gboolean
fill_boot_dir (int tree_dfd, const char *kver, int dst_dfd, GError **error)
{
  g_autofree char *vmlinuz = g_build_filename (MODULES_DIR, kver, "vmlinuz", NULL);
  g_autofree char *initramfs = g_build_filename (MODULES_DIR, kver, "initramfs.img", NULL);
  if (!ab_fs_copy_at (tree_dfd, vmlinuz, dst_dfd, "vmlinuz", error))
    return FALSE;
  if (ab_fs_exists_at (tree_dfd, initramfs)
      && !ab_fs_copy_at (tree_dfd, initramfs, dst_dfd, "initramfs.img", error))
    return FALSE;
  g_autofree char *line = g_strconcat (kver, "\n", NULL);
  return ab_fs_replace_at (dst_dfd, "kver", line, strlen (line), 0644, error);
}

gboolean
ab_kernel_install (int tree_dfd, int boot_dfd, AbSlot slot, GError **error)
{
  g_autoptr(GError) local = NULL;
  g_autofree char *kver = ab_kernel_find (tree_dfd, &local);
  const char *name = ab_slot_name (slot);
  g_autofree char *tmp = g_strdup_printf (".%s.new", name);
  if (!ab_fs_rm_rf_at (boot_dfd, tmp, error) || !ab_fs_mkdir_p_at (boot_dfd, tmp, 0755, error))
    return FALSE;
  if (kver != NULL)
    {
      ab_autofd dst = ab_fs_opendir_at (boot_dfd, tmp, error);
      if (dst < 0 || !fill_boot_dir (tree_dfd, kver, dst, error))
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
