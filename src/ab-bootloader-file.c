/* "file" backend: SYSROOT/boot/abdeploy/pointer, NAME=VALUE lines. */
#include "config.h"
#include "ab-bootloader.h"
#include "ab-fsutil.h"

#include <fcntl.h>
#include <string.h>

#define POINTER_DIR "boot/abdeploy"
#define POINTER_NAME "pointer"
#define POINTER_FORMAT "1"

static gboolean
file_setup (AbBootloader *self, GError **error)
{
  if (!ab_fs_mkdir_p_at (self->sysroot_dfd, POINTER_DIR, 0755, error))
    return FALSE;
  ab_autofd dfd = ab_fs_opendir_at (self->sysroot_dfd, POINTER_DIR, error);
  if (dfd < 0)
    return FALSE;
  if (ab_fs_exists_at (dfd, POINTER_NAME))
    return TRUE;
  AbBootPointer ptr;
  ab_boot_pointer_init (&ptr);
  return self->ops->save (self, &ptr, error);
}

static gboolean
file_load (AbBootloader *self, AbBootPointer *out, GError **error)
{
  ab_autofd dfd = ab_fs_opendir_at (self->sysroot_dfd, POINTER_DIR, error);
  if (dfd < 0)
    return FALSE;
  g_autofree char *data = NULL;
  if (!ab_fs_read_at (dfd, POINTER_NAME, &data, NULL, error))
    return FALSE;
  g_autoptr(GHashTable) vars = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_auto(GStrv) lines = g_strsplit (data, "\n", -1);
  for (char **l = lines; *l; l++)
    {
      char *line = g_strstrip (*l);
      if (*line == '\0' || *line == '#')
        continue;
      char *eq = strchr (line, '=');
      if (eq == NULL)
        {
          g_set_error (error, AB_BOOTLOADER_ERROR, AB_BOOTLOADER_ERROR_PARSE,
                       "Malformed line \"%s\" (expected NAME=VALUE)", line);
          return FALSE;
        }
      g_hash_table_insert (vars, g_strndup (line, (gsize) (eq - line)), g_strdup (eq + 1));
    }
  const char *format = g_hash_table_lookup (vars, "ABDEPLOY_FORMAT");
  if (g_strcmp0 (format, POINTER_FORMAT) != 0)
    {
      g_set_error (error, AB_BOOTLOADER_ERROR, AB_BOOTLOADER_ERROR_PARSE,
                   "Unsupported pointer format %s (this abdeploy reads format %s)",
                   format ? format : "(missing)", POINTER_FORMAT);
      return FALSE;
    }
  return ab_boot_pointer_from_vars (vars, out, error);
}

static gboolean
file_save (AbBootloader *self, const AbBootPointer *ptr, GError **error)
{
  ab_autofd dfd = ab_fs_opendir_at (self->sysroot_dfd, POINTER_DIR, error);
  if (dfd < 0)
    return FALSE;
  g_autoptr(GHashTable) vars = ab_boot_pointer_to_vars (ptr);
  g_autofree char *text = g_strdup_printf (
      "ABDEPLOY_FORMAT=" POINTER_FORMAT "\n"
      "ABDEPLOY_PRIMARY=%s\n"
      "ABDEPLOY_A_STATE=%s\nABDEPLOY_A_TRIES=%s\n"
      "ABDEPLOY_B_STATE=%s\nABDEPLOY_B_TRIES=%s\n",
      (char *) g_hash_table_lookup (vars, "ABDEPLOY_PRIMARY"),
      (char *) g_hash_table_lookup (vars, "ABDEPLOY_A_STATE"),
      (char *) g_hash_table_lookup (vars, "ABDEPLOY_A_TRIES"),
      (char *) g_hash_table_lookup (vars, "ABDEPLOY_B_STATE"),
      (char *) g_hash_table_lookup (vars, "ABDEPLOY_B_TRIES"));
  return ab_fs_replace_at (dfd, POINTER_NAME, text, strlen (text), 0644, error);
}

const AbBootloaderOps ab_bootloader_file_ops = {
  .name = "file",
  .setup = file_setup,
  .load = file_load,
  .save = file_save,
  .location = POINTER_DIR "/" POINTER_NAME,
};
