/* "file" backend: SYSROOT/boot/abdeploy/pointer, NAME=VALUE lines. */
#include "config.h"
#include "bootloaders/ab-bootloader.h"
#include "ab-fsutil.h"

#include <fcntl.h>
#include <string.h>

#define POINTER_DIR "boot/abdeploy"
#define POINTER_NAME "pointer"
#define POINTER_FORMAT "1"

static gboolean
file_setup (AbBootloader *self, GError **error)
{
  ab_autofd dfd = ab_bootloader_open_dir (self, POINTER_DIR, TRUE, error);
  return dfd >= 0 && ab_bootloader_setup_pointer (self, ab_fs_exists_at (dfd, POINTER_NAME), error);
}

/* Every line a pointer file holds, exactly once (abdeploy-pointer(5)). */
static const char *const file_vars[] = {
  "ABDEPLOY_FORMAT", "ABDEPLOY_PRIMARY", "ABDEPLOY_A_STATE", "ABDEPLOY_A_TRIES",
  "ABDEPLOY_B_STATE", "ABDEPLOY_B_TRIES",
};

#define FILE_FIX "Fix or delete that line in a text editor: the file holds one NAME=VALUE line " \
                 "for each of ABDEPLOY_FORMAT=1, ABDEPLOY_PRIMARY, ABDEPLOY_A_STATE, " \
                 "ABDEPLOY_A_TRIES, ABDEPLOY_B_STATE and ABDEPLOY_B_TRIES (abdeploy-pointer(5))"

static gboolean
is_file_var (const char *name)
{
  for (guint i = 0; i < G_N_ELEMENTS (file_vars); i++)
    if (g_str_equal (name, file_vars[i]))
      return TRUE;
  return FALSE;
}

/* "line N: WHY. FIX"; the caller names the file. */
static gboolean
line_error (GError **error, guint n, const char *why)
{
  g_set_error (error, AB_BOOTLOADER_ERROR, AB_BOOTLOADER_ERROR_PARSE, "line %u: %s. " FILE_FIX,
               n, why);
  return FALSE;
}

/* One line NAME=VALUE: a pointer variable, not seen before, its value in
 * range (checked by ab_boot_pointer_from_vars() on that variable alone). */
static gboolean
parse_line (const char *line, guint n, GHashTable *vars, GError **error)
{
  const char *eq = strchr (line, '=');
  g_autofree char *name = eq ? g_strndup (line, (gsize) (eq - line)) : NULL;
  g_autofree char *why = NULL;
  if (name == NULL)
    why = g_strdup_printf ("malformed line \"%s\" (expected NAME=VALUE)", line);
  else if (!is_file_var (name))
    why = g_strdup_printf ("unknown variable \"%s\"", name);
  else if (g_hash_table_contains (vars, name))
    why = g_strdup_printf ("%s is set a second time", name);
  if (why != NULL)
    return line_error (error, n, why);
  g_autoptr(GHashTable) one = g_hash_table_new (g_str_hash, g_str_equal);
  g_hash_table_insert (one, name, (char *) eq + 1);
  AbBootPointer ignored;
  g_autoptr(GError) local = NULL;
  if (!g_str_equal (name, "ABDEPLOY_FORMAT") && !ab_boot_pointer_from_vars (one, &ignored, &local))
    return line_error (error, n, local->message);
  g_hash_table_insert (vars, g_steal_pointer (&name), g_strdup (eq + 1));
  return TRUE;
}

/* The value of the first ABDEPLOY_FORMAT= line, or NULL: another format
 * may hold other variables, so it is looked at before any line is judged. */
static char *
find_format (char **lines)
{
  for (char **l = lines; *l; l++)
    if (g_str_has_prefix (*l, "ABDEPLOY_FORMAT="))
      return g_strdup (*l + strlen ("ABDEPLOY_FORMAT="));
  return NULL;
}

static gboolean
parse_pointer_text (const char *data, GHashTable *vars, GError **error)
{
  g_auto(GStrv) lines = g_strsplit (data, "\n", -1);
  for (char **l = lines; *l; l++)
    g_strstrip (*l);
  g_autofree char *format = find_format (lines);
  for (guint n = 0; format && g_str_equal (format, POINTER_FORMAT) && lines[n] != NULL; n++)
    if (*lines[n] != '\0' && *lines[n] != '#' && !parse_line (lines[n], n + 1, vars, error))
      return FALSE;
  if (g_strcmp0 (format, POINTER_FORMAT) != 0)
    {
      g_set_error (error, AB_BOOTLOADER_ERROR, AB_BOOTLOADER_ERROR_PARSE,
                   "Unsupported pointer format %s (this abdeploy reads format %s)",
                   format ? format : "(missing)", POINTER_FORMAT);
      return FALSE;
    }
  for (guint i = 0; i < G_N_ELEMENTS (file_vars); i++)
    if (!g_hash_table_contains (vars, file_vars[i]))
      {
        g_set_error (error, AB_BOOTLOADER_ERROR, AB_BOOTLOADER_ERROR_PARSE,
                     "%s is missing. Add the line %s=VALUE (abdeploy-pointer(5) lists the "
                     "values)", file_vars[i], file_vars[i]);
        return FALSE;
      }
  return TRUE;
}

static gboolean
file_load (AbBootloader *self, AbBootPointer *out, GError **error)
{
  ab_autofd dfd = ab_bootloader_open_dir (self, POINTER_DIR, FALSE, error);
  if (dfd < 0)
    return FALSE;
  g_autofree char *data = NULL;
  if (!ab_fs_read_at (dfd, POINTER_NAME, &data, NULL, error))
    return FALSE;
  g_autoptr(GHashTable) vars = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  return parse_pointer_text (data, vars, error) && ab_boot_pointer_from_vars (vars, out, error);
}

static gboolean
file_save (AbBootloader *self, const AbBootPointer *ptr, GError **error)
{
  ab_autofd dfd = ab_bootloader_open_dir (self, POINTER_DIR, FALSE, error);
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
  .summary = "the text file SYSROOT/boot/abdeploy/pointer (tests, custom bootloaders)",
  .caps = AB_BOOTLOADER_CAP_ATOMIC_POINTER,
  .setup = file_setup,
  .load = file_load,
  .save = file_save,
  .location = POINTER_DIR "/" POINTER_NAME,
};
