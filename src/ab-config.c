#include "config.h"
#include "ab-config.h"
#include "ab-format.h"
#include "ab-fsutil.h"
#include "ab-util.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

G_DEFINE_QUARK (ab-config-error-quark, ab_config_error)

#define CONFIG_DIR "etc/abdeploy"

/* Copies every key of SRC into DST (later files override earlier ones). */
static void
merge_keyfile (GKeyFile *dst, GKeyFile *src)
{
  g_auto(GStrv) groups = g_key_file_get_groups (src, NULL);
  for (char **g = groups; *g; g++)
    {
      g_auto(GStrv) keys = g_key_file_get_keys (src, *g, NULL, NULL);
      for (char **k = keys; k && *k; k++)
        {
          g_autofree char *v = g_key_file_get_value (src, *g, *k, NULL);
          g_key_file_set_value (dst, *g, *k, v);
        }
    }
}

/* Merges DFD/NAME into DST; *out_stated is the format it states ([abdeploy]
 * format), 0 when none. */
static gboolean
merge_file_at (GKeyFile *dst, int dfd, const char *name, const char *shown, gint64 *out_stated,
               GError **error)
{
  g_autofree char *data = NULL;
  gsize len = 0;
  if (!ab_fs_read_at (dfd, name, &data, &len, error))
    return FALSE;
  g_autoptr(GKeyFile) kf = g_key_file_new ();
  g_autoptr(GError) local = NULL;
  if (!g_key_file_load_from_data (kf, data, len, G_KEY_FILE_NONE, &local))
    {
      g_set_error (error, AB_CONFIG_ERROR, AB_CONFIG_ERROR_INVALID,
                   "Invalid configuration file %s: %s (fix the syntax: [group] lines and key=value pairs)",
                   shown, local->message);
      return FALSE;
    }
  if (!ab_format_config_stated (kf, shown, out_stated, error))
    return FALSE;
  merge_keyfile (dst, kf);
  return TRUE;
}

static int
compare_names (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char **) a, *(const char **) b);
}

/* A drop-in may state a format; when it and abdeploy.conf both state one,
 * they must agree. *main_stated is abdeploy.conf's (0: none). */
static gboolean
merge_conf_d (GKeyFile *dst, int sysroot_dfd, gint64 *main_stated, GError **error)
{
  g_autoptr(GError) local = NULL;
  ab_autofd dfd = ab_fs_opendir_at (sysroot_dfd, CONFIG_DIR "/conf.d", &local);
  if (dfd < 0)
    return TRUE;
  g_autofree char *path = ab_fs_fd_path (dfd, NULL, NULL);
  g_autoptr(GDir) dir = path ? g_dir_open (path, 0, NULL) : NULL;
  if (dir == NULL)
    return TRUE;
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  const char *name;
  while ((name = g_dir_read_name (dir)) != NULL)
    if (g_str_has_suffix (name, ".conf"))
      g_ptr_array_add (names, g_strdup (name));
  g_ptr_array_sort (names, compare_names);
  for (guint i = 0; i < names->len; i++)
    {
      g_autofree char *shown = g_strconcat (CONFIG_DIR "/conf.d/", names->pdata[i], NULL);
      gint64 stated = 0;
      if (!merge_file_at (dst, dfd, names->pdata[i], shown, &stated, error))
        return FALSE;
      if (stated != 0 && *main_stated != 0 && stated != *main_stated)
        {
          g_set_error (error, AB_CONFIG_ERROR, AB_CONFIG_ERROR_INVALID,
                       "%s states [abdeploy] format=%" G_GINT64_FORMAT ", but "
                       CONFIG_DIR "/abdeploy.conf states format %" G_GINT64_FORMAT
                       ": a drop-in states the format of abdeploy.conf or none",
                       shown, stated, *main_stated);
          return FALSE;
        }
    }
  return TRUE;
}

static gboolean
read_tries (AbConfig *config, GError **error)
{
  config->boot_tries = AB_CONFIG_DEFAULT_TRIES;
  if (!g_key_file_has_key (config->keyfile, "boot", "tries", NULL))
    return TRUE;
  g_autofree char *v = g_key_file_get_value (config->keyfile, "boot", "tries", NULL);
  guint64 n = 0;
  if (!g_ascii_string_to_unsigned (g_strstrip (v), 10, 1, AB_CONFIG_MAX_TRIES, &n, NULL))
    {
      g_set_error (error, AB_CONFIG_ERROR, AB_CONFIG_ERROR_INVALID,
                   "Invalid [boot] tries=%s in the configuration: use a whole number from 1 to %d",
                   v, AB_CONFIG_MAX_TRIES);
      return FALSE;
    }
  config->boot_tries = (int) n;
  return TRUE;
}

static gboolean
invalid (GError **error, const char *key, const char *value, const char *expected)
{
  g_set_error (error, AB_CONFIG_ERROR, AB_CONFIG_ERROR_INVALID,
               "Invalid %s=%s in the configuration: use %s", key, value, expected);
  return FALSE;
}

static gboolean
read_health (AbConfig *config, GError **error)
{
  GKeyFile *kf = config->keyfile;
  config->health_timeout_sec = AB_CONFIG_DEFAULT_HEALTH_TIMEOUT;
  if (g_key_file_has_key (kf, "health", "timeout-sec", NULL))
    {
      g_autofree char *v = g_key_file_get_value (kf, "health", "timeout-sec", NULL);
      guint64 n = 0;
      if (!g_ascii_string_to_unsigned (g_strstrip (v), 10, 1, 86400, &n, NULL))
        return invalid (error, "[health] timeout-sec", v, "seconds from 1 to 86400");
      config->health_timeout_sec = (guint) n;
    }
  config->greenboot_compat = TRUE;
  if (g_key_file_has_key (kf, "health", "greenboot-compat", NULL))
    {
      g_autoptr(GError) local = NULL;
      config->greenboot_compat = g_key_file_get_boolean (kf, "health", "greenboot-compat", &local);
      if (local != NULL)
        {
          g_autofree char *v = g_key_file_get_value (kf, "health", "greenboot-compat", NULL);
          return invalid (error, "[health] greenboot-compat", v, "true or false");
        }
    }
  config->on_red = g_key_file_get_string (kf, "health", "on-red", NULL);
  if (config->on_red == NULL)
    config->on_red = g_strdup ("reboot");
  g_strstrip (config->on_red);
  if (!g_strv_contains ((const char *const[]) { "reboot", "rollback", "none", NULL }, config->on_red))
    return invalid (error, "[health] on-red", config->on_red, "reboot, rollback or none");
  config->reboot_command = g_key_file_get_string (kf, "health", "reboot-command", NULL);
  return TRUE;
}

AbConfig *
ab_config_load (int sysroot_dfd, const char *override_path, GError **error)
{
  g_autoptr(AbConfig) config = g_new0 (AbConfig, 1);
  config->keyfile = g_key_file_new ();
  gint64 stated = 0;
  if (override_path != NULL)
    {
      if (!merge_file_at (config->keyfile, AT_FDCWD, override_path, override_path, &stated, error))
        return NULL;
    }
  else
    {
      g_autoptr(GError) local = NULL;
      if (!merge_file_at (config->keyfile, sysroot_dfd, CONFIG_DIR "/abdeploy.conf",
                          CONFIG_DIR "/abdeploy.conf", &stated, &local)
          && !g_error_matches (local, AB_FS_ERROR, AB_FS_ERROR_NOT_FOUND))
        {
          g_propagate_error (error, g_steal_pointer (&local));
          return NULL;
        }
      if (!merge_conf_d (config->keyfile, sysroot_dfd, &stated, error))
        return NULL;
    }
  /* A file without the key has format 1: the format that had no key. */
  config->format = stated != 0 ? stated : 1;
  if (!read_tries (config, error) || !read_health (config, error))
    return NULL;
  config->update_url = g_key_file_get_string (config->keyfile, "update", "url", NULL);
  if (config->update_url && *g_strstrip (config->update_url) == '\0')
    g_clear_pointer (&config->update_url, g_free);
  config->update_channel = g_key_file_get_string (config->keyfile, "update", "channel", NULL);
  if (config->update_channel == NULL)
    config->update_channel = g_strdup ("stable");
  return g_steal_pointer (&config);
}

void
ab_config_free (AbConfig *config)
{
  if (config == NULL)
    return;
  g_clear_pointer (&config->keyfile, g_key_file_unref);
  g_free (config->update_url);
  g_free (config->update_channel);
  g_free (config->on_red);
  g_free (config->reboot_command);
  g_free (config);
}

/* The line's key when it is KEY=VALUE (blanks around KEY allowed), else NULL. */
static char *
line_key (const char *line)
{
  const char *eq = strchr (line, '=');
  if (eq == NULL || line[strspn (line, " \t")] == '#')
    return NULL;
  return g_strstrip (g_strndup (line, (gsize) (eq - line)));
}

/* The group name when LINE is a [group] header, else NULL. */
static char *
line_group (const char *line)
{
  g_autofree char *t = g_strstrip (g_strdup (line));
  gsize n = strlen (t);
  if (n < 2 || t[0] != '[' || t[n - 1] != ']')
    return NULL;
  return g_strndup (t + 1, n - 2);
}

/* Index of the line that sets KEY in GROUP, -1 when none. */
static int
find_key_line (char **lines, const char *group, const char *key)
{
  gboolean in_group = FALSE;
  for (int i = 0; lines[i]; i++)
    {
      g_autofree char *g = line_group (lines[i]);
      g_autofree char *k = g ? NULL : line_key (lines[i]);
      if (g)
        in_group = g_str_equal (g, group);
      else if (in_group && k && g_str_equal (k, key))
        return i;
    }
  return -1;
}

char *
ab_config_stamp_format (const char *text, gint64 format)
{
  g_autofree char *stamp = g_strdup_printf ("format=%" G_GINT64_FORMAT, format);
  g_auto(GStrv) lines = g_strsplit (text, "\n", -1);
  int replace = find_key_line (lines, "abdeploy", "format");
  g_autoptr(GString) out = g_string_new (NULL);
  gboolean done = FALSE;
  for (int i = 0; lines[i]; i++)
    {
      g_autofree char *group = line_group (lines[i]);
      g_string_append (out, i == replace ? stamp : lines[i]);
      if (lines[i + 1] != NULL)
        g_string_append_c (out, '\n');
      if (replace < 0 && !done && group && g_str_equal (group, "abdeploy"))
        {
          g_string_append_printf (out, "%s%s\n", lines[i + 1] ? "" : "\n", stamp);
          done = TRUE;
        }
    }
  if (replace >= 0 || done)
    return g_string_free (g_steal_pointer (&out), FALSE);
  return g_strdup_printf ("[abdeploy]\n%s\n%s%s", stamp, *text ? "\n" : "", text);
}

gboolean
ab_config_stamp_file_at (int sysroot_dfd, gboolean *out_changed, GError **error)
{
  *out_changed = FALSE;
  const char *rel = CONFIG_DIR "/abdeploy.conf";
  g_autofree char *data = NULL;
  gsize len = 0;
  mode_t mode = 0644;
  g_autoptr(GError) local = NULL;
  if (!ab_fs_read_at (sysroot_dfd, rel, &data, &len, &local))
    {
      if (!g_error_matches (local, AB_FS_ERROR, AB_FS_ERROR_NOT_FOUND))
        {
          g_propagate_error (error, g_steal_pointer (&local));
          return FALSE;
        }
      data = g_strdup ("");
      if (!ab_fs_mkdir_p_at (sysroot_dfd, CONFIG_DIR, 0755, error))
        return FALSE;
    }
  else
    {
      struct stat st;
      if (fstatat (sysroot_dfd, rel, &st, 0) == 0)
        mode = st.st_mode & 07777;
    }
  g_autoptr(GKeyFile) kf = g_key_file_new ();
  if (!g_key_file_load_from_data (kf, data, len, G_KEY_FILE_NONE, &local))
    {
      g_set_error (error, AB_CONFIG_ERROR, AB_CONFIG_ERROR_INVALID,
                   "Invalid configuration file %s: %s (fix the syntax: [group] lines and key=value pairs)",
                   rel, local->message);
      return FALSE;
    }
  gint64 stated = 0;
  if (!ab_format_config_stated (kf, rel, &stated, error))
    return FALSE;
  if (stated == AB_CONFIG_FORMAT)
    return TRUE;
  g_autofree char *stamped = ab_config_stamp_format (data, AB_CONFIG_FORMAT);
  if (!ab_fs_replace_at (sysroot_dfd, rel, stamped, strlen (stamped), mode, error))
    return FALSE;
  *out_changed = TRUE;
  return TRUE;
}
