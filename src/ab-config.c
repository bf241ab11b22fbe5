#include "config.h"
#include "ab-config.h"
#include "ab-greenboot.h"
#include "ab-format.h"
#include "ab-fsutil.h"
#include "ab-manifest.h"
#include "ab-util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

G_DEFINE_QUARK (ab-config-error-quark, ab_config_error)

#define CONFIG_DIR "etc/abdeploy"
#define KIB G_GUINT64_CONSTANT (1024)
#define MAX_HOOK_TIMEOUT 86400

/* ---- the keys ---- */

typedef struct Key Key;
/* Parses VALUE (stripped, escapes resolved) into the member at OUT; FALSE
 * when it is not accepted. */
typedef gboolean (*ParseFunc) (const Key *key, const char *value, gpointer out);

struct Key
{
  const char *group;
  const char *name;
  ParseFunc parse;
  gsize offset;         /* of the member in AbConfig */
  guint64 min, max;     /* numbers: the accepted range */
  const char *def;      /* strings: what an empty value means (NULL: unset) */
  const char *accepted; /* what is accepted, for the error ("%s" min, max) */
};

static gboolean parse_format (const Key *key, const char *value, gpointer out);
static gboolean parse_uint (const Key *key, const char *value, gpointer out);
static gboolean parse_size (const Key *key, const char *value, gpointer out);
static gboolean parse_bool (const Key *key, const char *value, gpointer out);
static gboolean parse_string (const Key *key, const char *value, gpointer out);
static gboolean parse_url (const Key *key, const char *value, gpointer out);
static gboolean parse_channel (const Key *key, const char *value, gpointer out);
static gboolean parse_on_red (const Key *key, const char *value, gpointer out);
static gboolean parse_command (const Key *key, const char *value, gpointer out);
static gboolean parse_kernel_args (const Key *key, const char *value, gpointer out);

#define NUMBER "a whole number"
#define SIZE_UNITS "optionally followed by K, M or G (either case: 1024, 1024^2, 1024^3)"
#define CONFIG_KEY(group, name, parse, member, min, max, def, accepted) \
  { group, name, parse, G_STRUCT_OFFSET (AbConfig, member), min, max, def, accepted }

/* Every key of every group but [health-timeouts], whose keys are hook names.
 * tests/docs reads this table: each CONFIG_KEY must be in abdeploy.conf(5). */
static const Key keys[] = {
  CONFIG_KEY ("abdeploy", "format", parse_format, abdeploy.format, 1, 2, NULL, "1 or 2"),
  CONFIG_KEY ("boot", "tries", parse_uint, boot.tries, 1, AB_CONFIG_MAX_TRIES, NULL,
              NUMBER " of trial boots"),
  CONFIG_KEY ("boot", "uboot-env-config", parse_string, boot.uboot_env_config, 0, 0,
              "etc/fw_env.config", "a path"),
  CONFIG_KEY ("boot", "uboot-env-defaults", parse_string, boot.uboot_env_defaults, 0, 0,
              "etc/u-boot-initial-env", "a path"),
  CONFIG_KEY ("boot", "custom-backend", parse_string, boot.custom_backend, 0, 0, NULL,
              "the path of an executable"),
  CONFIG_KEY ("boot", "custom-backend-timeout-sec", parse_uint, boot.custom_backend_timeout_sec,
              1, 3600, NULL, NUMBER " of seconds"),
  CONFIG_KEY ("boot", "esp-path", parse_string, boot.esp_path, 0, 0, NULL, "a path"),
  CONFIG_KEY ("boot", "xbootldr-path", parse_string, boot.xbootldr_path, 0, 0, NULL, "a path"),
  CONFIG_KEY ("boot", "kernel-args", parse_kernel_args, boot.kernel_args, 0, 0, NULL,
              "kernel arguments separated by blanks, at most 2048 bytes, without abdeploy.slot="),
  CONFIG_KEY ("update", "url", parse_url, update.url, 0, 0, NULL,
              "an http://, https:// or file:// URL or a path"),
  CONFIG_KEY ("update", "channel", parse_channel, update.channel, 0, 0, "stable",
              "a channel name: letters, digits, '.', '_' and '-', starting with a letter or digit"),
  CONFIG_KEY ("update", "manifest-max-bytes", parse_size, update.manifest_max_bytes, KIB,
              256 * KIB * KIB, NULL, NUMBER " of bytes " SIZE_UNITS),
  CONFIG_KEY ("update", "min-rate", parse_size, update.min_rate, 1, KIB * KIB * KIB, NULL,
              NUMBER " of bytes per second " SIZE_UNITS),
  CONFIG_KEY ("update", "min-rate-time-sec", parse_uint, update.min_rate_time_sec, 1, 3600,
              NULL, NUMBER " of seconds"),
  CONFIG_KEY ("update", "max-attempts", parse_uint, update.max_attempts, 1, 100, NULL, NUMBER),
  CONFIG_KEY ("update", "backoff-initial-ms", parse_uint, update.backoff_initial_ms, 1, 600000,
              NULL, NUMBER " of milliseconds"),
  CONFIG_KEY ("update", "backoff-max-ms", parse_uint, update.backoff_max_ms, 1, 3600000, NULL,
              NUMBER " of milliseconds, not below backoff-initial-ms"),
  CONFIG_KEY ("update", "ca-file", parse_string, update.ca_file, 0, 0, NULL,
              "the path of a PEM file"),
  CONFIG_KEY ("update", "max-resume-attempts", parse_uint, update.max_resume_attempts, 1, 1000,
              NULL, NUMBER),
  CONFIG_KEY ("update", "max-object-bytes", parse_size, update.max_object_bytes, 4 * KIB,
              KIB * KIB * KIB * KIB, NULL, NUMBER " of bytes " SIZE_UNITS),
  CONFIG_KEY ("update", "max-pull-bytes", parse_size, update.max_pull_bytes, 4 * KIB,
              64 * KIB * KIB * KIB * KIB, NULL, NUMBER " of bytes " SIZE_UNITS),
  CONFIG_KEY ("update", "max-pull-time-sec", parse_uint, update.max_pull_time_sec, 1, 7 * 86400,
              NULL, NUMBER " of seconds"),
  CONFIG_KEY ("update", "min-free-space", parse_size, update.min_free_space, 0,
              64 * KIB * KIB * KIB * KIB, NULL, NUMBER " of bytes " SIZE_UNITS),
  CONFIG_KEY ("update", "security-only", parse_bool, update.security_only, 0, 0, NULL,
              "true or false (or 1 or 0)"),
  CONFIG_KEY ("health", "timeout-sec", parse_uint, health.timeout_sec, 1, MAX_HOOK_TIMEOUT, NULL,
              NUMBER " of seconds"),
  CONFIG_KEY ("health", "greenboot-compat", parse_bool, health.greenboot_compat, 0, 0, NULL,
              "true or false (or 1 or 0)"),
  CONFIG_KEY ("health", "on-red", parse_on_red, health.on_red, 0, 0, NULL,
              "reboot, rollback or none"),
  CONFIG_KEY ("health", "reboot-command", parse_command, health.reboot_command, 0, 0, NULL,
              "a command line (words, quotes as in a shell; no shell runs it)"),
};

#define HOOK_TIMEOUTS_GROUP "health-timeouts"

static gpointer
member (AbConfig *config, const Key *key)
{
  return G_STRUCT_MEMBER_P (config, key->offset);
}

static const Key *
find_key (const char *group, const char *name)
{
  for (gsize i = 0; i < G_N_ELEMENTS (keys); i++)
    if (g_str_equal (keys[i].group, group) && g_str_equal (keys[i].name, name))
      return &keys[i];
  return NULL;
}

static gboolean
group_is_known (const char *group)
{
  if (g_str_equal (group, HOOK_TIMEOUTS_GROUP))
    return TRUE;
  for (gsize i = 0; i < G_N_ELEMENTS (keys); i++)
    if (g_str_equal (keys[i].group, group))
      return TRUE;
  return FALSE;
}

/* The version stated by the key file KF ([abdeploy] format): 0 when it
 * states none (a format-1 file). WHAT names the file in errors. An
 * unparsable value is refused. */
static gboolean
config_stated (GKeyFile *kf, const char *what, gint64 *out_stated, GError **error)
{
  *out_stated = 0;
  if (!g_key_file_has_key (kf, "abdeploy", "format", NULL))
    return TRUE;
  g_autofree char *v = g_key_file_get_value (kf, "abdeploy", "format", NULL);
  g_strstrip (v);
  guint64 n = 0;
  if (!g_ascii_string_to_unsigned (v, 10, 0, G_MAXINT64, &n, NULL)
      || !ab_format_is_readable (AB_FORMAT_CONFIG, (gint64) n))
    {
      ab_format_set_unknown (error, AB_FORMAT_CONFIG, what, v);
      return FALSE;
    }
  *out_stated = (gint64) n;
  return TRUE;
}

/* ---- value parsers ---- */

/* Validated by config_stated() before the keys are applied. */
static gboolean
parse_format (const Key *key, const char *value, gpointer out)
{
  return TRUE;
}

/* The whole string, decimal digits only: no blank, sign, or trailing junk. */
static gboolean
parse_u64 (const char *value, guint64 min, guint64 max, guint64 *out)
{
  if (!g_ascii_isdigit (value[0]))
    return FALSE;
  return g_ascii_string_to_unsigned (value, 10, min, max, out, NULL);
}

static gboolean
parse_uint (const Key *key, const char *value, gpointer out)
{
  guint64 n = 0;
  if (!parse_u64 (value, key->min, key->max, &n))
    return FALSE;
  *(guint *) out = (guint) n;
  return TRUE;
}

/* N, NK, NM or NG (suffix in either case, powers of 1024). */
static gboolean
parse_size (const Key *key, const char *value, gpointer out)
{
  static const char units[] = "kKmMgG";
  g_autofree char *digits = g_strdup (value);
  gsize len = strlen (digits);
  guint64 unit = 1;
  const char *suffix = len > 0 ? strchr (units, digits[len - 1]) : NULL;
  if (suffix != NULL)
    {
      for (long i = (suffix - units) / 2; i >= 0; i--)
        unit *= KIB;
      digits[len - 1] = '\0';
    }
  guint64 n = 0;
  if (!parse_u64 (digits, 0, G_MAXUINT64 / unit, &n))
    return FALSE;
  n *= unit;
  if (n < key->min || n > key->max)
    return FALSE;
  *(guint64 *) out = n;
  return TRUE;
}

static gboolean
parse_bool (const Key *key, const char *value, gpointer out)
{
  gboolean yes = g_str_equal (value, "true") || g_str_equal (value, "1");
  if (!yes && !g_str_equal (value, "false") && !g_str_equal (value, "0"))
    return FALSE;
  *(gboolean *) out = yes;
  return TRUE;
}

/* An empty value is the key's default (or unset). */
static gboolean
parse_string (const Key *key, const char *value, gpointer out)
{
  char **slot = out;
  g_free (*slot);
  *slot = g_strdup (*value != '\0' ? value : key->def);
  return TRUE;
}

static gboolean
parse_url (const Key *key, const char *value, gpointer out)
{
  const char *sep = strstr (value, "://");
  if (sep != NULL && !g_str_has_prefix (value, "http://") && !g_str_has_prefix (value, "https://")
      && !g_str_has_prefix (value, "file://"))
    return FALSE;
  if (sep != NULL && sep[3] == '\0')
    return FALSE;
  return parse_string (key, value, out);
}

static gboolean
parse_channel (const Key *key, const char *value, gpointer out)
{
  if (*value != '\0' && !ab_manifest_channel_name_is_valid (value))
    return FALSE;
  return parse_string (key, value, out);
}

static gboolean
parse_on_red (const Key *key, const char *value, gpointer out)
{
  static const char *const names[] = { "reboot", "rollback", "none" };
  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    if (g_str_equal (value, names[i]))
      {
        *(AbConfigOnRed *) out = (AbConfigOnRed) i;
        return TRUE;
      }
  return FALSE;
}

/* Must split into words now, not when the machine is to reboot. */
static gboolean
parse_command (const Key *key, const char *value, gpointer out)
{
  g_auto(GStrv) argv = NULL;
  if (*value != '\0' && !g_shell_parse_argv (value, NULL, &argv, NULL))
    return FALSE;
  return parse_string (key, value, out);
}

/* The engine puts abdeploy.slot= first on every command line it writes:
 * a second one would contradict it. */
static gboolean
parse_kernel_args (const Key *key, const char *value, gpointer out)
{
  g_auto(GStrv) words = g_strsplit_set (value, " \t", -1);
  for (char **w = words; *w != NULL; w++)
    if (g_str_has_prefix (*w, "abdeploy.slot="))
      return FALSE;
  return strlen (value) <= AB_CONFIG_MAX_KERNEL_ARGS && parse_string (key, value, out);
}

/* ---- applying one file ---- */

typedef struct
{
  AbConfig *config;
  GHashTable *origins;   /* const Key * -> the file that set it */
  gint64 main_stated;    /* the format abdeploy.conf states, 0: none */
} Loader;

static gboolean
has_control (const char *value)
{
  for (const char *p = value; *p; p++)
    if (g_ascii_iscntrl (*p))
      return TRUE;
  return FALSE;
}

static gboolean
bad_value (GError **error, const char *file, const char *group, const char *name,
           const char *raw, const char *accepted)
{
  g_autofree char *shown = g_strescape (raw ? raw : "", NULL);
  g_set_error (error, AB_CONFIG_ERROR, AB_CONFIG_ERROR_INVALID,
               "%s: invalid value [%s] %s=%s: use %s (see abdeploy.conf(5))",
               file, group, name, shown, accepted);
  return FALSE;
}

/* The value of GROUP NAME, escapes resolved and blanks around it removed;
 * NULL (and a raw copy in *OUT_RAW) when it is not a valid string. */
static char *
read_value (GKeyFile *kf, const char *group, const char *name, char **out_raw)
{
  *out_raw = g_key_file_get_value (kf, group, name, NULL);
  char *v = g_key_file_get_string (kf, group, name, NULL);
  if (v != NULL && has_control (v))
    g_clear_pointer (&v, g_free);
  return v ? g_strstrip (v) : NULL;
}

static char *
accepted_text (const Key *key)
{
  if (key->parse != parse_uint && key->parse != parse_size)
    return g_strdup (key->accepted);
  return g_strdup_printf ("%s from %" G_GUINT64_FORMAT " to %" G_GUINT64_FORMAT,
                          key->accepted, key->min, key->max);
}

static gboolean
apply_key (Loader *l, GKeyFile *kf, const Key *key, const char *file, GError **error)
{
  g_autofree char *raw = NULL;
  g_autofree char *v = read_value (kf, key->group, key->name, &raw);
  if (v == NULL || !key->parse (key, v, member (l->config, key)))
    {
      g_autofree char *accepted = accepted_text (key);
      return bad_value (error, file, key->group, key->name, raw, accepted);
    }
  g_hash_table_insert (l->origins, (gpointer) key, g_strdup (file));
  return TRUE;
}

static gboolean
apply_hook_timeout (Loader *l, GKeyFile *kf, const char *name, const char *file,
                    GError **error)
{
  g_autofree char *raw = NULL;
  g_autofree char *v = read_value (kf, HOOK_TIMEOUTS_GROUP, name, &raw);
  guint64 n = 0;
  if (v == NULL || !parse_u64 (v, 1, MAX_HOOK_TIMEOUT, &n))
    return bad_value (error, file, HOOK_TIMEOUTS_GROUP, name, raw,
                      NUMBER " of seconds from 1 to 86400");
  g_hash_table_insert (l->config->health.hook_timeouts, g_strdup (name), GUINT_TO_POINTER (n));
  return TRUE;
}

/* Names starting with "X-" are extensions, ignored as systemd does. */
static gboolean
is_extension (const char *name)
{
  return g_str_has_prefix (name, "X-");
}

static gboolean
unknown_key (GError **error, const char *file, const char *group, const char *name)
{
  g_autoptr(GString) known = g_string_new (NULL);
  for (gsize i = 0; i < G_N_ELEMENTS (keys); i++)
    if (g_str_equal (keys[i].group, group))
      g_string_append_printf (known, "%s%s", known->len ? ", " : "", keys[i].name);
  g_set_error (error, AB_CONFIG_ERROR, AB_CONFIG_ERROR_INVALID,
               "%s: unknown key %s in group [%s]: the keys of [%s] are %s; fix its spelling, "
               "or remove it (see abdeploy.conf(5))", file, name, group, group, known->str);
  return FALSE;
}

static gboolean
apply_group (Loader *l, GKeyFile *kf, const char *group, const char *file, GError **error)
{
  if (!group_is_known (group))
    {
      g_set_error (error, AB_CONFIG_ERROR, AB_CONFIG_ERROR_INVALID,
                   "%s: unknown group [%s]: abdeploy reads [abdeploy], [boot], [update], "
                   "[health] and [health-timeouts]; fix its spelling, or remove it "
                   "(see abdeploy.conf(5))", file, group);
      return FALSE;
    }
  g_auto(GStrv) names = g_key_file_get_keys (kf, group, NULL, NULL);
  gboolean hooks = g_str_equal (group, HOOK_TIMEOUTS_GROUP);
  for (char **n = names; n && *n; n++)
    {
      const Key *key = hooks ? NULL : find_key (group, *n);
      if (is_extension (*n))
        continue;
      if (hooks ? !apply_hook_timeout (l, kf, *n, file, error)
                : key == NULL ? !unknown_key (error, file, group, *n)
                              : !apply_key (l, kf, key, file, error))
        return FALSE;
    }
  return TRUE;
}

/* A drop-in may state a format; when it and abdeploy.conf both state one,
 * they must agree. */
static gboolean
check_stated (Loader *l, gint64 stated, gboolean is_main, const char *file, GError **error)
{
  if (is_main)
    l->main_stated = stated;
  if (is_main || stated == 0 || l->main_stated == 0 || stated == l->main_stated)
    return TRUE;
  g_set_error (error, AB_CONFIG_ERROR, AB_CONFIG_ERROR_INVALID,
               "%s states [abdeploy] format=%" G_GINT64_FORMAT ", but "
               CONFIG_DIR "/abdeploy.conf states format %" G_GINT64_FORMAT
               ": a drop-in states the format of abdeploy.conf or none",
               file, stated, l->main_stated);
  return FALSE;
}

static gboolean
apply_data (Loader *l, const char *data, gsize len, const char *file, gboolean is_main,
            GError **error)
{
  g_autoptr(GKeyFile) kf = g_key_file_new ();
  g_autoptr(GError) local = NULL;
  gint64 stated = 0;
  if (!g_key_file_load_from_data (kf, data, len, G_KEY_FILE_NONE, &local))
    {
      g_set_error (error, AB_CONFIG_ERROR, AB_CONFIG_ERROR_INVALID,
                   "Invalid configuration file %s: %s (fix the syntax: [group] lines and key=value pairs)",
                   file, local->message);
      return FALSE;
    }
  if (!config_stated (kf, file, &stated, error)
      || !check_stated (l, stated, is_main, file, error))
    return FALSE;
  g_auto(GStrv) groups = g_key_file_get_groups (kf, NULL);
  for (char **g = groups; *g; g++)
    if (!is_extension (*g) && !apply_group (l, kf, *g, file, error))
      return FALSE;
  return TRUE;
}

/* Checks between keys, once every file is applied. */
static gboolean
check_loaded (Loader *l, GError **error)
{
  AbConfigUpdate *u = &l->config->update;
  if (u->backoff_max_ms >= u->backoff_initial_ms)
    return TRUE;
  const char *max_from = g_hash_table_lookup (l->origins, find_key ("update", "backoff-max-ms"));
  const char *init_from = g_hash_table_lookup (l->origins, find_key ("update", "backoff-initial-ms"));
  g_set_error (error, AB_CONFIG_ERROR, AB_CONFIG_ERROR_INVALID,
               "[update] backoff-max-ms=%u (%s) is below backoff-initial-ms=%u (%s): use a "
               "backoff-max-ms at least as large as backoff-initial-ms (see abdeploy.conf(5))",
               u->backoff_max_ms, max_from ? max_from : "the default", u->backoff_initial_ms,
               init_from ? init_from : "the default");
  return FALSE;
}

/* ---- reading the files ---- */

static const char *
kind_of (mode_t mode)
{
  if (S_ISDIR (mode))
    return "a directory";
  if (S_ISFIFO (mode))
    return "a FIFO";
  if (S_ISCHR (mode) || S_ISBLK (mode))
    return "a device";
  if (S_ISSOCK (mode))
    return "a socket";
  return "not a regular file";
}

static gboolean
not_regular (GError **error, const char *file, const char *what)
{
  g_set_error (error, AB_CONFIG_ERROR, AB_CONFIG_ERROR_INVALID,
               "Configuration file %s is %s, not a regular file: remove it, or rename it so "
               "that its name does not end in .conf", file, what);
  return FALSE;
}

/* REL below ROOT_DFD (links followed inside the sysroot), or a host path
 * when ROOT_DFD is AT_FDCWD. */
static int
open_config (int root_dfd, const char *rel, int flags, GError **error)
{
  if (root_dfd != AT_FDCWD)
    return ab_fs_open_beneath (root_dfd, rel, flags, 0, AB_FS_RESOLVE_IN_ROOT, error);
  int fd = openat (AT_FDCWD, rel, flags | O_CLOEXEC);
  if (fd < 0)
    g_set_error (error, AB_FS_ERROR, errno == ENOENT ? AB_FS_ERROR_NOT_FOUND : AB_FS_ERROR_FAILED,
                 "Opening %s: %s", rel, g_strerror (errno));
  return fd;
}

/* The contents of a regular file. It is examined through O_PATH first, so
 * that a FIFO never blocks and a device is never opened. */
static gboolean
read_regular (int root_dfd, const char *rel, const char *file, char **out, gsize *out_len,
              GError **error)
{
  struct stat st, st2;
  ab_autofd pfd = open_config (root_dfd, rel, O_PATH, error);
  if (pfd < 0)
    return FALSE;
  if (fstat (pfd, &st) < 0 || !S_ISREG (st.st_mode))
    return not_regular (error, file, kind_of (st.st_mode));
  ab_autofd fd = open_config (root_dfd, rel, O_RDONLY | O_NOCTTY | O_NONBLOCK, error);
  if (fd < 0)
    return FALSE;
  if (fstat (fd, &st2) < 0 || st2.st_ino != st.st_ino || st2.st_dev != st.st_dev)
    return not_regular (error, file, "replaced while it was read");
  return ab_fs_read_fd (fd, file, out, out_len, error);
}

static gboolean
dangling (GError **error, const char *file)
{
  g_set_error (error, AB_CONFIG_ERROR, AB_CONFIG_ERROR_INVALID,
               "Configuration file %s is a symbolic link to nothing: remove it or make it point "
               "to a regular file", file);
  return FALSE;
}

/* Applies ROOT_DFD/REL; a missing file is fine when OPTIONAL. */
static gboolean
load_file (Loader *l, int root_dfd, const char *rel, gboolean is_main, gboolean optional,
           GError **error)
{
  g_autofree char *data = NULL;
  gsize len = 0;
  g_autoptr(GError) local = NULL;
  if (read_regular (root_dfd, rel, rel, &data, &len, &local))
    return apply_data (l, data, len, rel, is_main, error);
  if (!g_error_matches (local, AB_FS_ERROR, AB_FS_ERROR_NOT_FOUND))
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  /* Listed (or present as a link) but not found: a link to nothing. */
  if (!optional || (root_dfd != AT_FDCWD && ab_fs_exists_at (root_dfd, rel)))
    return dangling (error, rel);
  return TRUE;
}

static int
compare_names (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char **) a, *(const char **) b);
}

/* The names ending in .conf in conf.d, sorted; NULL with ERROR when
 * conf.d exists but cannot be listed. */
static GPtrArray *
list_conf_d (int sysroot_dfd, GError **error)
{
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GError) local = NULL;
  ab_autofd dfd = ab_fs_open_beneath (sysroot_dfd, CONFIG_DIR "/conf.d", O_RDONLY | O_DIRECTORY,
                                      0, AB_FS_RESOLVE_IN_ROOT, &local);
  if (dfd < 0 && g_error_matches (local, AB_FS_ERROR, AB_FS_ERROR_NOT_FOUND))
    return g_steal_pointer (&names);
  if (dfd < 0)
    {
      g_propagate_prefixed_error (error, g_steal_pointer (&local),
                                  "Configuration directory " CONFIG_DIR "/conf.d: ");
      return NULL;
    }
  DIR *dir = fdopendir (ab_steal_fd (&dfd));
  struct dirent *de;
  while (dir != NULL && (de = readdir (dir)) != NULL)
    if (g_str_has_suffix (de->d_name, ".conf"))
      g_ptr_array_add (names, g_strdup (de->d_name));
  if (dir != NULL)
    closedir (dir);
  g_ptr_array_sort (names, compare_names);
  return g_steal_pointer (&names);
}

static gboolean
load_conf_d (Loader *l, int sysroot_dfd, GError **error)
{
  g_autoptr(GPtrArray) names = list_conf_d (sysroot_dfd, error);
  if (names == NULL)
    return FALSE;
  for (guint i = 0; i < names->len; i++)
    {
      g_autofree char *rel = g_strconcat (CONFIG_DIR "/conf.d/", names->pdata[i], NULL);
      if (!load_file (l, sysroot_dfd, rel, FALSE, FALSE, error))
        return FALSE;
    }
  return TRUE;
}

/* ---- public ---- */

AbConfig *
ab_config_new_defaults (void)
{
  AbConfig *c = g_new0 (AbConfig, 1);
  c->abdeploy.format = 1;
  c->boot.tries = AB_CONFIG_DEFAULT_TRIES;
  c->boot.uboot_env_config = g_strdup ("etc/fw_env.config");
  c->boot.uboot_env_defaults = g_strdup ("etc/u-boot-initial-env");
  c->boot.custom_backend_timeout_sec = 30;
  c->update.channel = g_strdup ("stable");
  c->update.manifest_max_bytes = 1024 * 1024;
  c->update.min_rate = 1024;
  c->update.min_rate_time_sec = 20;
  c->update.max_attempts = 4;
  c->update.backoff_initial_ms = 500;
  c->update.backoff_max_ms = 8000;
  c->update.max_resume_attempts = 5;
  c->update.max_object_bytes = AB_CONFIG_DEFAULT_MAX_OBJECT_BYTES;
  c->update.max_pull_bytes = AB_CONFIG_DEFAULT_MAX_PULL_BYTES;
  c->update.max_pull_time_sec = AB_CONFIG_DEFAULT_MAX_PULL_TIME_SEC;
  c->update.min_free_space = AB_CONFIG_DEFAULT_MIN_FREE_SPACE;
  c->health.timeout_sec = AB_CONFIG_DEFAULT_HEALTH_TIMEOUT;
  c->health.greenboot_compat = TRUE;
  c->health.on_red = AB_CONFIG_ON_RED_REBOOT;
  c->health.hook_timeouts = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  return c;
}

static void
loader_init (Loader *l)
{
  l->config = ab_config_new_defaults ();
  l->origins = g_hash_table_new_full (g_direct_hash, g_direct_equal, NULL, g_free);
  l->main_stated = 0;
}

/* The config when OK, else NULL; frees everything else. */
static AbConfig *
loader_finish (Loader *l, gboolean ok, GError **error)
{
  g_autoptr(AbConfig) config = g_steal_pointer (&l->config);
  g_autoptr(GHashTable) origins = g_steal_pointer (&l->origins);
  if (!ok || !check_loaded (&(Loader) { config, origins, 0 }, error))
    return NULL;
  config->update.url_file = g_strdup (g_hash_table_lookup (origins, find_key ("update", "url")));
  /* A file without the key has format 1: the format that had no key. */
  config->abdeploy.format = l->main_stated != 0 ? l->main_stated : 1;
  return g_steal_pointer (&config);
}

/* greenboot.conf, with [health] greenboot-compat (the default): its
 * GREENBOOT_MAX_BOOT_ATTEMPTS gives the tries unless abdeploy.conf or a
 * conf.d file sets [boot] tries (abdeploy's own setting wins), and its
 * DISABLED_HEALTHCHECKS names hooks not to run. */
static gboolean
load_greenboot (Loader *l, int sysroot_dfd, GError **error)
{
  if (!l->config->health.greenboot_compat)
    return TRUE;
  AbGreenbootConf gb = { 0 };
  gboolean ok = ab_greenboot_conf_load (sysroot_dfd, &gb, error);
  if (ok && gb.max_boot_attempts > 0 && !g_hash_table_contains (l->origins, find_key ("boot", "tries")))
    l->config->boot.tries = gb.max_boot_attempts;
  if (ok)
    {
      g_strfreev (l->config->health.disabled_hooks);
      l->config->health.disabled_hooks = g_steal_pointer (&gb.disabled_healthchecks);
    }
  ab_greenboot_conf_clear (&gb);
  return ok;
}

AbConfig *
ab_config_load (int sysroot_dfd, const char *override_path, GError **error)
{
  Loader l;
  loader_init (&l);
  gboolean ok;
  if (override_path != NULL)
    ok = load_file (&l, AT_FDCWD, override_path, TRUE, FALSE, error);
  else
    ok = load_file (&l, sysroot_dfd, CONFIG_DIR "/abdeploy.conf", TRUE, TRUE, error)
         && load_conf_d (&l, sysroot_dfd, error)
         && load_greenboot (&l, sysroot_dfd, error);
  AbConfig *config = loader_finish (&l, ok, error);
  if (config != NULL)
    config->update.url_file_from_cwd = override_path != NULL;
  return config;
}

gboolean
ab_config_url_exposed (const AbConfig *config, int sysroot_dfd)
{
  const AbConfigUpdate *u = &config->update;
  if (u->url == NULL || u->url_file == NULL)
    return FALSE;
  g_autoptr(GUri) uri = g_uri_parse (u->url, G_URI_FLAGS_HAS_PASSWORD, NULL);
  if (uri == NULL || (g_uri_get_user (uri) == NULL && g_uri_get_password (uri) == NULL))
    return FALSE;
  struct stat st;
  int dfd = u->url_file_from_cwd ? AT_FDCWD : sysroot_dfd;
  return fstatat (dfd, u->url_file, &st, 0) == 0 && (st.st_mode & 0044) != 0;
}

AbConfig *
ab_config_load_from_data (const char *data, gsize len, const char *name, GError **error)
{
  Loader l;
  loader_init (&l);
  gboolean ok = apply_data (&l, data, len, name, TRUE, error);
  return loader_finish (&l, ok, error);
}

gboolean
ab_config_stated_format (const char *data, gsize len, const char *what, gint64 *out_stated,
                         GError **error)
{
  g_autoptr(GKeyFile) kf = g_key_file_new ();
  g_autoptr(GError) local = NULL;
  if (!g_key_file_load_from_data (kf, data, len, G_KEY_FILE_NONE, &local))
    {
      g_set_error_literal (error, AB_CONFIG_ERROR, AB_CONFIG_ERROR_SYNTAX, local->message);
      return FALSE;
    }
  gint64 stated = 0;
  if (out_stated == NULL)
    return TRUE;
  if (!config_stated (kf, what, &stated, error))
    return FALSE;
  *out_stated = stated;
  return TRUE;
}

gboolean
ab_config_check_data (const char *data, gsize len, const char *name, GError **error)
{
  Loader l;
  loader_init (&l);
  gboolean ok = apply_data (&l, data, len, name, TRUE, error);
  g_autoptr(AbConfig) config = g_steal_pointer (&l.config);
  g_autoptr(GHashTable) origins = g_steal_pointer (&l.origins);
  return ok;
}

void
ab_config_free (AbConfig *config)
{
  if (config == NULL)
    return;
  g_free (config->boot.uboot_env_config);
  g_free (config->boot.uboot_env_defaults);
  g_free (config->boot.custom_backend);
  g_free (config->boot.kernel_args);
  g_free (config->boot.esp_path);
  g_free (config->boot.xbootldr_path);
  g_free (config->update.url);
  g_free (config->update.url_file);
  g_free (config->update.channel);
  g_free (config->update.ca_file);
  g_free (config->health.reboot_command);
  g_clear_pointer (&config->health.hook_timeouts, g_hash_table_unref);
  g_clear_pointer (&config->health.disabled_hooks, g_strfreev);
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

/* The group name when LINE (split off at "\n") is a [group] header, else
 * NULL: GKeyFile itself reads the line with its "\n", so that this agrees
 * with it on every byte (blanks before '[', blanks and stray UTF-8
 * continuation bytes after ']', a "\r" before the "\n"). */
static char *
line_group (const char *line)
{
  while (g_ascii_isspace (*line))
    line++;
  if (*line != '[')
    return NULL;
  g_autofree char *text = g_strconcat (line, "\n", NULL);
  g_autoptr(GKeyFile) kf = g_key_file_new ();
  if (!g_key_file_load_from_data (kf, text, (gsize) -1, G_KEY_FILE_NONE, NULL))
    return NULL;
  return g_key_file_get_start_group (kf);
}

/* Replaces every line that sets KEY in GROUP (GKeyFile merges repeated
 * groups and the last line wins, so all of them) by NEW_LINE; returns how
 * many. *out_header is the index of GROUP's first header, -1 when none. */
static guint
replace_key_lines (char **lines, const char *group, const char *key, const char *new_line,
                   int *out_header)
{
  gboolean in_group = FALSE;
  guint replaced = 0;
  *out_header = -1;
  for (int i = 0; lines[i]; i++)
    {
      g_autofree char *g = line_group (lines[i]);
      g_autofree char *k = g ? NULL : line_key (lines[i]);
      if (g)
        {
          in_group = g_str_equal (g, group);
          if (in_group && *out_header < 0)
            *out_header = i;
        }
      else if (in_group && k && g_str_equal (k, key))
        {
          g_free (lines[i]);
          lines[i] = g_strdup (new_line);
          replaced++;
        }
    }
  return replaced;
}

char *
ab_config_stamp_format (const char *text, gint64 format)
{
  g_autofree char *stamp = g_strdup_printf ("format=%" G_GINT64_FORMAT, format);
  g_auto(GStrv) lines = g_strsplit (text, "\n", -1);
  int header = -1;
  if (replace_key_lines (lines, "abdeploy", "format", stamp, &header) > 0)
    return g_strjoinv ("\n", lines);
  if (header < 0)
    return g_strdup_printf ("[abdeploy]\n%s\n%s%s", stamp, *text ? "\n" : "", text);
  /* The line goes right after the group's first header. */
  g_autoptr(GString) out = g_string_new (NULL);
  for (int i = 0; lines[i]; i++)
    {
      g_string_append (out, lines[i]);
      if (lines[i + 1] != NULL)
        g_string_append_c (out, '\n');
      if (i == header)
        g_string_append_printf (out, "%s%s\n", lines[i + 1] ? "" : "\n", stamp);
    }
  return g_string_free (g_steal_pointer (&out), FALSE);
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
  if (!config_stated (kf, rel, &stated, error))
    return FALSE;
  if (stated == AB_CONFIG_FORMAT)
    return TRUE;
  g_autofree char *stamped = ab_config_stamp_format (data, AB_CONFIG_FORMAT);
  if (!ab_fs_replace_at (sysroot_dfd, rel, stamped, strlen (stamped), mode, error))
    return FALSE;
  *out_changed = TRUE;
  return TRUE;
}
