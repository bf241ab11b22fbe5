/* "grub" backend: the pointer variables in SYSROOT/boot/grub/grubenv. */
#include "config.h"
#include "bootloaders/ab-bootloader.h"
#include "ab-fsutil.h"
#include "bootloaders/ab-grubenv.h"

#include <fcntl.h>

#define GRUB_DIR "boot/grub"
#define GRUBENV_NAME "grubenv"

static const char *const pointer_vars[] = {
  "ABDEPLOY_PRIMARY", "ABDEPLOY_A_STATE", "ABDEPLOY_A_TRIES",
  "ABDEPLOY_B_STATE", "ABDEPLOY_B_TRIES",
};

static GPtrArray *
read_env (int dfd, GError **error)
{
  g_autofree char *data = NULL;
  gsize len = 0;
  if (!ab_fs_read_at (dfd, GRUBENV_NAME, &data, &len, error))
    return NULL;
  return ab_grubenv_parse (data, len, error);
}

static gboolean
write_env (int dfd, GPtrArray *env, GError **error)
{
  g_autofree char *block = ab_grubenv_serialize (env, error);
  if (block == NULL)
    return FALSE;
  /* GRUB reads the file system without replaying its journal: the new
   * block must be written out, not only committed to the journal. */
  return ab_fs_replace_at (dfd, GRUBENV_NAME, block, AB_GRUBENV_SIZE, 0644, error)
         && ab_fs_syncfs (dfd, error);
}

static gboolean
grub_save (AbBootloader *self, const AbBootPointer *ptr, GError **error)
{
  ab_autofd dfd = ab_bootloader_open_dir (self, GRUB_DIR, FALSE, error);
  if (dfd < 0)
    return FALSE;
  g_autoptr(GError) local = NULL;
  g_autoptr(GPtrArray) env = read_env (dfd, &local);
  if (env == NULL)
    {
      if (!g_error_matches (local, AB_FS_ERROR, AB_FS_ERROR_NOT_FOUND))
        {
          g_propagate_error (error, g_steal_pointer (&local));
          return FALSE;
        }
      env = g_ptr_array_new_with_free_func (g_free);
    }
  g_autoptr(GHashTable) vars = ab_boot_pointer_to_vars (ptr);
  for (guint i = 0; i < G_N_ELEMENTS (pointer_vars); i++)
    ab_grubenv_set (env, pointer_vars[i], g_hash_table_lookup (vars, pointer_vars[i]));
  return write_env (dfd, env, error);
}

static gboolean
grub_setup (AbBootloader *self, GError **error)
{
  ab_autofd dfd = ab_bootloader_open_dir (self, GRUB_DIR, TRUE, error);
  if (dfd < 0)
    return FALSE;
  g_autoptr(GError) local = NULL;
  g_autoptr(GPtrArray) env = read_env (dfd, &local);
  if (env == NULL && !g_error_matches (local, AB_FS_ERROR, AB_FS_ERROR_NOT_FOUND))
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  return ab_bootloader_setup_pointer (
      self, env != NULL && ab_grubenv_get (env, "ABDEPLOY_PRIMARY") != NULL, error);
}

static gboolean
grub_load (AbBootloader *self, AbBootPointer *out, GError **error)
{
  ab_autofd dfd = ab_bootloader_open_dir (self, GRUB_DIR, FALSE, error);
  if (dfd < 0)
    return FALSE;
  g_autoptr(GPtrArray) env = read_env (dfd, error);
  if (env == NULL)
    return FALSE;
  g_autoptr(GHashTable) vars = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; i < G_N_ELEMENTS (pointer_vars); i++)
    {
      const char *v = ab_grubenv_get (env, pointer_vars[i]);
      if (v != NULL)
        g_hash_table_insert (vars, (char *) pointer_vars[i], (char *) v);
    }
  g_autofree char *file = self->sysroot_root ? g_build_filename (self->sysroot_root, GRUB_DIR,
                                                                 GRUBENV_NAME, NULL) : NULL;
  g_autofree char *fix = g_strdup_printf ("set it with grub-editenv %s set NAME=VALUE (the values "
                                          "are in abdeploy-pointer(5))",
                                          file ? file : GRUB_DIR "/" GRUBENV_NAME);
  return ab_boot_pointer_from_env (vars, FALSE, fix, out, error);
}

const AbBootloaderOps ab_bootloader_grub_ops = {
  .name = "grub",
  .summary = "the GRUB environment block SYSROOT/boot/grub/grubenv (BIOS and EFI)",
  .caps = AB_BOOTLOADER_CAP_ATOMIC_POINTER,
  .setup = grub_setup,
  .load = grub_load,
  .save = grub_save,
  .location = GRUB_DIR "/" GRUBENV_NAME,
};
