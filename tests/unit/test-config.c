#include "config.h"
#include "ab-config.h"
#include "ab-format.h"
#include "ab-test-fixture.h"

#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static void
test_defaults (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(AbConfig) c = ab_config_load (t->dfd, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (c->boot.tries, ==, 3);
  g_assert_null (c->update.url);
}

static void
test_conf_d_overrides (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  write_file_at (t->dfd, "etc/abdeploy/abdeploy.conf", "[boot]\ntries=5\n[update]\nurl=http://127.0.0.1:1/\n");
  write_file_at (t->dfd, "etc/abdeploy/conf.d/20-b.conf", "[boot]\ntries=7\n");
  write_file_at (t->dfd, "etc/abdeploy/conf.d/10-a.conf", "[boot]\ntries=6\n");
  g_autoptr(AbConfig) c = ab_config_load (t->dfd, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (c->boot.tries, ==, 7);
  g_assert_cmpstr (c->update.url, ==, "http://127.0.0.1:1/");
}

/* greenboot.conf (issue 16, point 8): GREENBOOT_MAX_BOOT_ATTEMPTS gives
 * the tries unless abdeploy's own configuration sets them;
 * DISABLED_HEALTHCHECKS names hooks not to run; nothing of it is read
 * with [health] greenboot-compat=false; a bad file is refused by name. */
static void
test_greenboot_conf (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  write_file_at (t->dfd, "etc/greenboot/greenboot.conf",
                 "GREENBOOT_MAX_BOOT_ATTEMPTS=6\nDISABLED_HEALTHCHECKS=(\"a.sh\" \"b.sh\")\n");
  g_autoptr(AbConfig) c = ab_config_load (t->dfd, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (c->boot.tries, ==, 6);
  g_assert_cmpuint (g_strv_length (c->health.disabled_hooks), ==, 2);
  g_assert_cmpstr (c->health.disabled_hooks[1], ==, "b.sh");

  write_file_at (t->dfd, "etc/abdeploy/conf.d/10-tries.conf", "[boot]\ntries=2\n");
  g_autoptr(AbConfig) own = ab_config_load (t->dfd, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (own->boot.tries, ==, 2);
  g_assert_cmpuint (g_strv_length (own->health.disabled_hooks), ==, 2);

  write_file_at (t->dfd, "etc/abdeploy/conf.d/10-tries.conf", "[health]\ngreenboot-compat=false\n");
  g_autoptr(AbConfig) off = ab_config_load (t->dfd, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (off->boot.tries, ==, 3);
  g_assert_null (off->health.disabled_hooks);

  g_assert_cmpint (unlinkat (t->dfd, "etc/abdeploy/conf.d/10-tries.conf", 0), ==, 0);
  write_file_at (t->dfd, "etc/greenboot/greenboot.conf", "GREENBOOT_MAX_BOOT_ATTEMPTS=$(x)\n");
  g_autoptr(AbConfig) bad = ab_config_load (t->dfd, NULL, &error);
  g_assert_null (bad);
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, "/etc/greenboot/greenboot.conf, line 1"));
}

static void
test_invalid_tries (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  write_file_at (t->dfd, "etc/abdeploy/abdeploy.conf", "[boot]\ntries=12\n");
  g_autoptr(AbConfig) c = ab_config_load (t->dfd, NULL, &error);
  g_assert_null (c);
  g_assert_error (error, AB_CONFIG_ERROR, AB_CONFIG_ERROR_INVALID);
}

/* [boot] kernel-args: kept as written; abdeploy.slot= (which the engine
 * puts first) and an over-long value are refused with the key named. */
static void
test_kernel_args (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  write_file_at (t->dfd, "etc/abdeploy/abdeploy.conf", "[boot]\nkernel-args=root=LABEL=r rw quiet\n");
  g_autoptr(AbConfig) c = ab_config_load (t->dfd, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (c->boot.kernel_args, ==, "root=LABEL=r rw quiet");
  g_autofree char *longer = g_strnfill (AB_CONFIG_MAX_KERNEL_ARGS + 1, 'x');
  g_autofree char *too_long = g_strdup_printf ("[boot]\nkernel-args=%s\n", longer);
  const char *bad[] = { "[boot]\nkernel-args=quiet abdeploy.slot=b\n", too_long };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      write_file_at (t->dfd, "etc/abdeploy/abdeploy.conf", bad[i]);
      g_autoptr(AbConfig) refused = ab_config_load (t->dfd, NULL, &error);
      g_assert_null (refused);
      g_assert_error (error, AB_CONFIG_ERROR, AB_CONFIG_ERROR_INVALID);
      g_assert_nonnull (strstr (error->message, "kernel-args"));
      g_assert_nonnull (strstr (error->message, "abdeploy.slot="));
      g_clear_error (&error);
    }
}

static void
test_syntax_error_names_file (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  write_file_at (t->dfd, "etc/abdeploy/abdeploy.conf", "this is not a keyfile\n");
  g_autoptr(AbConfig) c = ab_config_load (t->dfd, NULL, &error);
  g_assert_null (c);
  g_assert_nonnull (strstr (error->message, "abdeploy.conf"));
}

static void
test_override_path (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  write_file_at (t->dfd, "etc/abdeploy/abdeploy.conf", "[boot]\ntries=5\n");
  write_file_at (t->dfd, "other.conf", "[boot]\ntries=2\n");
  g_autofree char *path = g_build_filename (t->path, "other.conf", NULL);
  g_autoptr(AbConfig) c = ab_config_load (t->dfd, path, &error);
  g_assert_no_error (error);
  g_assert_cmpint (c->boot.tries, ==, 2);
}

static void
test_format (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(AbConfig) none = ab_config_load (t->dfd, NULL, &error);
  g_assert_cmpint (none->abdeploy.format, ==, 1);
  write_file_at (t->dfd, "etc/abdeploy/abdeploy.conf", "[abdeploy]\nformat=2\n[boot]\ntries=5\n");
  write_file_at (t->dfd, "etc/abdeploy/conf.d/10-a.conf", "[boot]\ntries=6\n");
  write_file_at (t->dfd, "etc/abdeploy/conf.d/20-b.conf", "[abdeploy]\nformat=2\n");
  g_autoptr(AbConfig) c = ab_config_load (t->dfd, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (c->abdeploy.format, ==, 2);
  g_assert_cmpint (c->boot.tries, ==, 6);
}

static void
test_format_refused (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  write_file_at (t->dfd, "etc/abdeploy/abdeploy.conf", "[abdeploy]\nformat=3\n");
  g_autoptr(AbConfig) c = ab_config_load (t->dfd, NULL, &error);
  g_assert_null (c);
  g_assert_error (error, AB_FORMAT_ERROR, AB_FORMAT_ERROR_UNKNOWN);
  g_assert_nonnull (strstr (error->message, "etc/abdeploy/abdeploy.conf has format 3, but this abdeploy"));
  g_clear_error (&error);
  /* a drop-in that states another format than abdeploy.conf */
  write_file_at (t->dfd, "etc/abdeploy/abdeploy.conf", "[abdeploy]\nformat=2\n");
  write_file_at (t->dfd, "etc/abdeploy/conf.d/50-x.conf", "[abdeploy]\nformat=1\n");
  g_autoptr(AbConfig) c2 = ab_config_load (t->dfd, NULL, &error);
  g_assert_null (c2);
  g_assert_error (error, AB_CONFIG_ERROR, AB_CONFIG_ERROR_INVALID);
  g_assert_nonnull (strstr (error->message, "conf.d/50-x.conf states [abdeploy] format=1"));
  g_clear_error (&error);
  /* --config=FILE is checked the same way */
  write_file_at (t->dfd, "other.conf", "[abdeploy]\nformat=7\n");
  g_autofree char *path = g_build_filename (t->path, "other.conf", NULL);
  g_autoptr(AbConfig) c3 = ab_config_load (t->dfd, path, &error);
  g_assert_null (c3);
  g_assert_nonnull (strstr (error->message, "has format 7"));
}

static void
test_stamp_format (void)
{
  static const char *const cases[][2] = {
    { "", "[abdeploy]\nformat=2\n" },
    { "[boot]\ntries=2\n", "[abdeploy]\nformat=2\n\n[boot]\ntries=2\n" },
    { "# c\n[abdeploy]\n# note\n[boot]\n", "# c\n[abdeploy]\nformat=2\n# note\n[boot]\n" },
    { "[abdeploy]\nformat = 1\nx=y\n", "[abdeploy]\nformat=2\nx=y\n" },
    { "[boot]\nformat=1\n[abdeploy]\nformat=1", "[boot]\nformat=1\n[abdeploy]\nformat=2" },
    { "[boot]\n[abdeploy]", "[boot]\n[abdeploy]\nformat=2\n" },
    /* Found by tests/fuzz/fuzz-config: GKeyFile merges a repeated group
     * (the last format wins), and reads "[abdeploy]" followed by blanks or
     * stray UTF-8 continuation bytes as the group header. */
    { "[abdeploy]\nformat=1\n[boot]\n[abdeploy]\nformat=3\n",
      "[abdeploy]\nformat=2\n[boot]\n[abdeploy]\nformat=2\n" },
    { " [abdeploy]\x92\x92 \nformat=7\n", " [abdeploy]\x92\x92 \nformat=2\n" },
    /* GKeyFile drops a "\r" before "\n": "[boot]\r" starts group boot. */
    { "[abdeploy]\r\nx=1\r\n[boot]\r\nformat=7\r\n",
      "[abdeploy]\r\nformat=2\nx=1\r\n[boot]\r\nformat=7\r\n" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *out = ab_config_stamp_format (cases[i][0], 2);
      g_assert_cmpstr (out, ==, cases[i][1]);
      g_autoptr(GKeyFile) kf = g_key_file_new ();
      g_assert_true (g_key_file_load_from_data (kf, out, -1, G_KEY_FILE_NONE, NULL));
      g_assert_cmpint (g_key_file_get_integer (kf, "abdeploy", "format", NULL), ==, 2);
    }
}

static void
test_stamp_file (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  gboolean changed = FALSE;
  g_assert_true (ab_config_stamp_file_at (t->dfd, &changed, &error));
  g_assert_true (changed);
  g_autofree char *made = read_file_at (t->dfd, "etc/abdeploy/abdeploy.conf");
  g_assert_cmpstr (made, ==, "[abdeploy]\nformat=2\n");
  g_assert_true (ab_config_stamp_file_at (t->dfd, &changed, &error));
  g_assert_false (changed);
  write_file_at (t->dfd, "etc/abdeploy/abdeploy.conf", "[abdeploy]\nformat=5\n");
  g_assert_false (ab_config_stamp_file_at (t->dfd, &changed, &error));
  g_assert_error (error, AB_FORMAT_ERROR, AB_FORMAT_ERROR_UNKNOWN);
}

/* ---- every key: valid, boundary, out-of-range and junk values ---- */

typedef struct
{
  const char *group;
  const char *key;
  const char *value;
  const char *expect;  /* the stored value as shown by shown_value(); NULL: refused */
  const char *extra;   /* more lines for the same group, or NULL */
} KeyCase;

static char *
show_str (const char *s)
{
  return g_strdup (s ? s : "(null)");
}

static char *
shown_update (const AbConfigUpdate *u, const char *key)
{
  static const char *const strings[] = { "url", "channel", "ca-file", NULL };
  const char *const s[] = { u->url, u->channel, u->ca_file };
  for (guint i = 0; strings[i]; i++)
    if (g_str_equal (key, strings[i]))
      return show_str (s[i]);
  guint64 n = g_str_equal (key, "manifest-max-bytes") ? u->manifest_max_bytes
            : g_str_equal (key, "min-rate") ? u->min_rate
            : g_str_equal (key, "min-rate-time-sec") ? u->min_rate_time_sec
            : g_str_equal (key, "max-attempts") ? u->max_attempts
            : g_str_equal (key, "backoff-initial-ms") ? u->backoff_initial_ms
            : g_str_equal (key, "backoff-max-ms") ? u->backoff_max_ms
            : g_str_equal (key, "max-resume-attempts") ? u->max_resume_attempts
            : g_str_equal (key, "max-object-bytes") ? u->max_object_bytes
            : g_str_equal (key, "max-pull-bytes") ? u->max_pull_bytes
            : g_str_equal (key, "max-pull-time-sec") ? u->max_pull_time_sec
            : g_str_equal (key, "min-free-space") ? u->min_free_space : G_MAXUINT64;
  g_assert_cmpuint (n, !=, G_MAXUINT64);
  return g_strdup_printf ("%" G_GUINT64_FORMAT, n);
}

static char *
shown_value (const AbConfig *c, const char *group, const char *key)
{
  const AbConfigBoot *b = &c->boot;
  const AbConfigHealth *h = &c->health;
  if (g_str_equal (group, "update"))
    return shown_update (&c->update, key);
  if (g_str_equal (group, "health-timeouts"))
    return g_strdup_printf ("%u", GPOINTER_TO_UINT (g_hash_table_lookup (h->hook_timeouts, key)));
  if (g_str_equal (key, "format"))
    return g_strdup_printf ("%" G_GINT64_FORMAT, c->abdeploy.format);
  if (g_str_equal (key, "tries"))
    return g_strdup_printf ("%u", b->tries);
  if (g_str_equal (key, "custom-backend-timeout-sec"))
    return g_strdup_printf ("%u", b->custom_backend_timeout_sec);
  if (g_str_equal (key, "uboot-env-config"))
    return show_str (b->uboot_env_config);
  if (g_str_equal (key, "uboot-env-defaults"))
    return show_str (b->uboot_env_defaults);
  if (g_str_equal (key, "custom-backend"))
    return show_str (b->custom_backend);
  if (g_str_equal (key, "timeout-sec"))
    return g_strdup_printf ("%u", h->timeout_sec);
  if (g_str_equal (key, "greenboot-compat"))
    return g_strdup (h->greenboot_compat ? "true" : "false");
  if (g_str_equal (key, "on-red"))
    return g_strdup_printf ("%d", (int) h->on_red);
  g_assert_cmpstr (key, ==, "reboot-command");
  return show_str (h->reboot_command);
}

static const KeyCase key_cases[] = {
  { "abdeploy", "format", "1", "1" }, { "abdeploy", "format", "2", "2" },
  { "abdeploy", "format", "3", NULL }, { "abdeploy", "format", "2x", NULL },
  { "abdeploy", "format", "-2", NULL },
  { "boot", "tries", "1", "1" }, { "boot", "tries", "9", "9" }, { "boot", "tries", " 4 ", "4" },
  { "boot", "tries", "0", NULL }, { "boot", "tries", "10", NULL }, { "boot", "tries", "3x", NULL },
  { "boot", "tries", "-1", NULL }, { "boot", "tries", "+3", NULL }, { "boot", "tries", "0x3", NULL },
  { "boot", "tries", "", NULL }, { "boot", "tries", "3 4", NULL },
  { "boot", "tries", "18446744073709551617", NULL },
  { "boot", "custom-backend-timeout-sec", "1", "1" },
  { "boot", "custom-backend-timeout-sec", "3600", "3600" },
  { "boot", "custom-backend-timeout-sec", "0", NULL },
  { "boot", "custom-backend-timeout-sec", "3601", NULL },
  { "boot", "custom-backend-timeout-sec", "30s", NULL },
  { "boot", "uboot-env-config", "etc/my-env.config", "etc/my-env.config" },
  { "boot", "uboot-env-config", "", "etc/fw_env.config" },
  { "boot", "uboot-env-config", "a\\nb", NULL },
  { "boot", "uboot-env-defaults", "/boot/env.txt", "/boot/env.txt" },
  { "boot", "uboot-env-defaults", "", "etc/u-boot-initial-env" },
  { "boot", "custom-backend", "usr/libexec/ptr", "usr/libexec/ptr" },
  { "boot", "custom-backend", "", "(null)" },
  { "boot", "custom-backend", "x\\ty", NULL },
  { "update", "url", "https://updates.example.com/repo", "https://updates.example.com/repo" },
  { "update", "url", "/media/usb/repo", "/media/usb/repo" },
  { "update", "url", "file:///media/usb/repo", "file:///media/usb/repo" },
  { "update", "url", "", "(null)" },
  { "update", "url", "ftp://example.com/repo", NULL },
  { "update", "url", "http://", NULL },
  { "update", "channel", "beta-1.x_y", "beta-1.x_y" }, { "update", "channel", "", "stable" },
  { "update", "channel", "../stable", NULL }, { "update", "channel", "a/b", NULL },
  { "update", "channel", "-x", NULL },
  { "update", "manifest-max-bytes", "1024", "1024" },
  { "update", "manifest-max-bytes", "1K", "1024" },
  { "update", "manifest-max-bytes", "256M", "268435456" },
  { "update", "manifest-max-bytes", "1023", NULL },
  { "update", "manifest-max-bytes", "268435457", NULL },
  { "update", "manifest-max-bytes", "1KB", NULL },
  { "update", "manifest-max-bytes", "1.5M", NULL },
  { "update", "manifest-max-bytes", "-1", NULL },
  { "update", "manifest-max-bytes", "18014398509481984K", NULL },
  { "update", "manifest-max-bytes", "18446744073709551616", NULL },
  { "update", "min-rate", "1", "1" }, { "update", "min-rate", "1k", "1024" },
  { "update", "min-rate", "1K", "1024" }, { "update", "min-rate", "2m", "2097152" },
  { "update", "min-rate", "1G", "1073741824" }, { "update", "min-rate", "1073741824", "1073741824" },
  { "update", "min-rate", "0", NULL }, { "update", "min-rate", "0k", NULL },
  { "update", "min-rate", "1073741825", NULL }, { "update", "min-rate", "2G", NULL },
  { "update", "min-rate", "1kb", NULL }, { "update", "min-rate", "1KiB", NULL },
  { "update", "min-rate", "k", NULL }, { "update", "min-rate", "1 k", NULL },
  { "update", "min-rate", "-1k", NULL }, { "update", "min-rate", "1T", NULL },
  { "update", "min-rate-time-sec", "1", "1" }, { "update", "min-rate-time-sec", "3600", "3600" },
  { "update", "min-rate-time-sec", "0", NULL }, { "update", "min-rate-time-sec", "3601", NULL },
  { "update", "min-rate-time-sec", "20s", NULL },
  { "update", "max-attempts", "1", "1" }, { "update", "max-attempts", "100", "100" },
  { "update", "max-attempts", "0", NULL }, { "update", "max-attempts", "101", NULL },
  { "update", "max-attempts", "four", NULL },
  { "update", "backoff-initial-ms", "1", "1" },
  { "update", "backoff-initial-ms", "600000", "600000", "backoff-max-ms=600000" },
  { "update", "backoff-initial-ms", "0", NULL },
  { "update", "backoff-initial-ms", "600001", NULL, "backoff-max-ms=3600000" },
  { "update", "backoff-initial-ms", "9000", NULL },   /* above the default backoff-max-ms */
  { "update", "backoff-max-ms", "500", "500" }, { "update", "backoff-max-ms", "3600000", "3600000" },
  { "update", "backoff-max-ms", "499", NULL }, { "update", "backoff-max-ms", "0", NULL },
  { "update", "backoff-max-ms", "3600001", NULL }, { "update", "backoff-max-ms", "8s", NULL },
  { "update", "ca-file", "/etc/ssl/mine.pem", "/etc/ssl/mine.pem" },
  { "update", "ca-file", "", "(null)" },
  { "update", "max-resume-attempts", "1", "1" }, { "update", "max-resume-attempts", "1000", "1000" },
  { "update", "max-resume-attempts", "0", NULL }, { "update", "max-resume-attempts", "1001", NULL },
  { "update", "max-object-bytes", "4096", "4096" }, { "update", "max-object-bytes", "1k", NULL },
  { "update", "max-object-bytes", "4k", "4096" }, { "update", "max-object-bytes", "1G", "1073741824" },
  { "update", "max-object-bytes", "1099511627776", "1099511627776" },
  { "update", "max-object-bytes", "1099511627777", NULL }, { "update", "max-object-bytes", "", NULL },
  { "update", "max-pull-bytes", "16G", "17179869184" }, { "update", "max-pull-bytes", "4095", NULL },
  { "update", "max-pull-bytes", "-1", NULL }, { "update", "max-pull-bytes", "8 M", NULL },
  { "update", "max-pull-time-sec", "1", "1" }, { "update", "max-pull-time-sec", "604800", "604800" },
  { "update", "max-pull-time-sec", "0", NULL }, { "update", "max-pull-time-sec", "604801", NULL },
  { "update", "max-pull-time-sec", "1e3", NULL }, { "update", "max-pull-time-sec", "6h", NULL },
  { "update", "min-free-space", "0", "0" }, { "update", "min-free-space", "64M", "67108864" },
  { "update", "min-free-space", "64MiB", NULL }, { "update", "min-free-space", "", NULL },
  { "health", "timeout-sec", "1", "1" }, { "health", "timeout-sec", "86400", "86400" },
  { "health", "timeout-sec", "0", NULL }, { "health", "timeout-sec", "86401", NULL },
  { "health", "timeout-sec", "5m", NULL },
  { "health", "greenboot-compat", "true", "true" }, { "health", "greenboot-compat", "false", "false" },
  { "health", "greenboot-compat", "1", "true" }, { "health", "greenboot-compat", "0", "false" },
  { "health", "greenboot-compat", "yes", NULL }, { "health", "greenboot-compat", "True", NULL },
  { "health", "greenboot-compat", "truex", NULL }, { "health", "greenboot-compat", "2", NULL },
  { "health", "greenboot-compat", "", NULL },
  { "health", "on-red", "reboot", "0" }, { "health", "on-red", "rollback", "1" },
  { "health", "on-red", "none", "2" }, { "health", "on-red", "Reboot", NULL },
  { "health", "on-red", "", NULL }, { "health", "on-red", "off", NULL },
  { "health", "reboot-command", "/sbin/reboot -f", "/sbin/reboot -f" },
  { "health", "reboot-command", "", "(null)" },
  { "health", "reboot-command", "sh -c 'unterminated", NULL },
  { "health-timeouts", "50-net.sh", "1", "1" }, { "health-timeouts", "50-net.sh", "86400", "86400" },
  { "health-timeouts", "50-net.sh", "0", NULL }, { "health-timeouts", "50-net.sh", "86401", NULL },
  { "health-timeouts", "50-net.sh", "5m", NULL }, { "health-timeouts", "50-net.sh", "", NULL },
};

/* Each value is set in a drop-in over a valid abdeploy.conf: a refused
 * value is an error that names the drop-in, the group, the key and what
 * is accepted; an accepted one overrides the main file. */
static void
check_key_case (TmpDir *t, const KeyCase *c)
{
  g_autofree char *conf = g_strdup_printf ("[%s]\n%s=%s\n%s\n", c->group, c->key, c->value,
                                           c->extra ? c->extra : "");
  write_file_at (t->dfd, "etc/abdeploy/conf.d/50-case.conf", conf);
  g_autoptr(GError) error = NULL;
  g_autoptr(AbConfig) cfg = ab_config_load (t->dfd, NULL, &error);
  g_test_message ("[%s] %s=%s: %s", c->group, c->key, c->value, error ? error->message : "ok");
  if (c->expect != NULL)
    {
      g_assert_no_error (error);
      g_autofree char *shown = shown_value (cfg, c->group, c->key);
      g_assert_cmpstr (shown, ==, c->expect);
      return;
    }
  g_assert_null (cfg);
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, "etc/abdeploy/conf.d/50-case.conf"));
  if (g_str_equal (c->key, "format"))
    return;   /* refused by the format check: names the file and the formats read */
  g_autofree char *named = g_strdup_printf ("%s", c->key);
  g_assert_nonnull (strstr (error->message, named));
  g_assert_true (strstr (error->message, "use ") || strstr (error->message, "below"));
}

static void
test_every_key (TmpDir *t, gconstpointer data)
{
  write_file_at (t->dfd, "etc/abdeploy/abdeploy.conf",
                 "[abdeploy]\nformat=2\n[boot]\ntries=2\n[update]\nmin-rate=4096\n");
  for (guint i = 0; i < G_N_ELEMENTS (key_cases); i++)
    {
      const KeyCase *c = &key_cases[i];
      if (g_str_equal (c->key, "format") && g_str_equal (c->value, "1"))
        continue;   /* a drop-in may not state another format than abdeploy.conf */
      check_key_case (t, c);
    }
}

/* The same values from memory (the fuzz target's entry point). */
static void
test_load_from_data (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (key_cases); i++)
    {
      const KeyCase *c = &key_cases[i];
      g_autofree char *conf = g_strdup_printf ("[%s]\n%s=%s\n%s\n", c->group, c->key, c->value,
                                               c->extra ? c->extra : "");
      g_autoptr(GError) error = NULL;
      g_autoptr(AbConfig) cfg = ab_config_load_from_data (conf, strlen (conf), "mem.conf", &error);
      g_assert_true ((cfg != NULL) == (c->expect != NULL));
      if (cfg == NULL)
        g_assert_nonnull (strstr (error->message, "mem.conf"));
    }
  /* not NUL-terminated, binary junk */
  static const char junk[] = { '[', 'u', 'p', 'd', 'a', 't', 'e', ']', '\n', 'u', '=', '\xff' };
  g_autoptr(GError) error = NULL;
  g_autoptr(AbConfig) cfg = ab_config_load_from_data (junk, sizeof junk, "junk", &error);
  g_assert_null (cfg);
}

/* The example: 1k is 1024 bytes per second, never 0. */
static void
test_min_rate_1k (TmpDir *t, gconstpointer data)
{
  write_file_at (t->dfd, "etc/abdeploy/abdeploy.conf", "[update]\nmin-rate=1k\n");
  g_autoptr(GError) error = NULL;
  g_autoptr(AbConfig) c = ab_config_load (t->dfd, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (c->update.min_rate, ==, 1024);
  g_autoptr(AbConfig) d = ab_config_new_defaults ();
  g_assert_cmpuint (d->update.min_rate, ==, 1024);
  g_assert_cmpuint (d->update.min_rate_time_sec, ==, 20);
}

static void
test_unknown_keys_and_groups (TmpDir *t, gconstpointer data)
{
  static const char *const refused[][2] = {
    { "[update]\nmin_rate=1k\n", "unknown key min_rate in group [update]" },
    { "[boot]\ntries=3\ntrys=4\n", "unknown key trys in group [boot]" },
    { "[updates]\nurl=x\n", "unknown group [updates]" },
    { "[abdeploy]\nversion=2\n", "unknown key version in group [abdeploy]" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (refused); i++)
    {
      write_file_at (t->dfd, "etc/abdeploy/conf.d/10-x.conf", refused[i][0]);
      g_autoptr(GError) error = NULL;
      g_autoptr(AbConfig) c = ab_config_load (t->dfd, NULL, &error);
      g_assert_null (c);
      g_assert_error (error, AB_CONFIG_ERROR, AB_CONFIG_ERROR_INVALID);
      g_assert_nonnull (strstr (error->message, "etc/abdeploy/conf.d/10-x.conf: "));
      g_assert_nonnull (strstr (error->message, refused[i][1]));
    }
  /* X- extensions are ignored, as systemd does */
  write_file_at (t->dfd, "etc/abdeploy/conf.d/10-x.conf",
                 "[X-Vendor]\nanything=1\n[update]\nX-note=fast mirror\nmin-rate=2k\n");
  g_autoptr(GError) error = NULL;
  g_autoptr(AbConfig) c = ab_config_load (t->dfd, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (c->update.min_rate, ==, 2048);
}

/* The error names the file that set the value, not abdeploy.conf. */
static void
test_error_names_drop_in (TmpDir *t, gconstpointer data)
{
  write_file_at (t->dfd, "etc/abdeploy/abdeploy.conf", "[update]\nmin-rate=2k\n");
  write_file_at (t->dfd, "etc/abdeploy/conf.d/10-ok.conf", "[update]\nmin-rate=8k\n");
  write_file_at (t->dfd, "etc/abdeploy/conf.d/20-bad.conf", "[update]\nmin-rate=1kb\n");
  g_autoptr(GError) error = NULL;
  g_autoptr(AbConfig) c = ab_config_load (t->dfd, NULL, &error);
  g_assert_null (c);
  g_assert_cmpstr (error->message, ==,
                   "etc/abdeploy/conf.d/20-bad.conf: invalid value [update] min-rate=1kb: use a "
                   "whole number of bytes per second optionally followed by K, M or G (either "
                   "case: 1024, 1024^2, 1024^3) from 1 to 1073741824 (see abdeploy.conf(5))");
  g_clear_error (&error);
  /* a cross-key check names where each value came from */
  write_file_at (t->dfd, "etc/abdeploy/conf.d/20-bad.conf", "[update]\nbackoff-max-ms=100\n");
  g_autoptr(AbConfig) c2 = ab_config_load (t->dfd, NULL, &error);
  g_assert_null (c2);
  g_assert_nonnull (strstr (error->message, "backoff-max-ms=100 (etc/abdeploy/conf.d/20-bad.conf) "
                                            "is below backoff-initial-ms=500 (the default)"));
}

static void
expect_refused_entry (TmpDir *t, const char *name, const char *what)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(AbConfig) c = ab_config_load (t->dfd, NULL, &error);
  g_test_message ("%s: %s", name, error ? error->message : "accepted");
  g_assert_null (c);
  g_assert_error (error, AB_CONFIG_ERROR, AB_CONFIG_ERROR_INVALID);
  g_autofree char *shown = g_strdup_printf ("etc/abdeploy/conf.d/%s is %s", name, what);
  g_assert_nonnull (strstr (error->message, shown));
  g_assert_true (ab_fs_rm_rf_at (t->dfd, "etc/abdeploy/conf.d/x.conf", NULL));
}

/* A conf.d entry that is not a regular file is refused; a link to a
 * regular file inside the sysroot is read (absolute targets resolve in
 * the sysroot, as on the booted system). */
static void
test_conf_d_not_regular (TmpDir *t, gconstpointer data)
{
  const char *d = "etc/abdeploy/conf.d";
  write_file_at (t->dfd, "etc/abdeploy/shared/real.conf", "[boot]\ntries=4\n");
  write_file_at (t->dfd, "etc/abdeploy/shared/sub/a.conf", "[boot]\ntries=4\n");
  g_assert_true (ab_fs_mkdir_p_at (t->dfd, d, 0755, NULL));
  g_assert_cmpint (mkdirat (t->dfd, "etc/abdeploy/conf.d/x.conf", 0755), ==, 0);
  expect_refused_entry (t, "x.conf", "a directory");
  g_assert_cmpint (mkfifoat (t->dfd, "etc/abdeploy/conf.d/x.conf", 0644), ==, 0);
  expect_refused_entry (t, "x.conf", "a FIFO");
  g_assert_cmpint (symlinkat ("../shared/sub", t->dfd, "etc/abdeploy/conf.d/x.conf"), ==, 0);
  expect_refused_entry (t, "x.conf", "a directory");
  g_assert_cmpint (symlinkat ("nowhere.conf", t->dfd, "etc/abdeploy/conf.d/x.conf"), ==, 0);
  expect_refused_entry (t, "x.conf", "a symbolic link to nothing");
  /* /etc/passwd of the host is not /etc/passwd of the sysroot */
  g_assert_cmpint (symlinkat ("/etc/passwd", t->dfd, "etc/abdeploy/conf.d/x.conf"), ==, 0);
  expect_refused_entry (t, "x.conf", "a symbolic link to nothing");
  if (mknodat (t->dfd, "etc/abdeploy/conf.d/x.conf", S_IFCHR | 0644, makedev (1, 3)) == 0)
    expect_refused_entry (t, "x.conf", "a device");
  else
    g_test_message ("cannot make a device node here: %s", g_strerror (errno));
  /* links to regular files are fine, absolute ones resolved in the sysroot */
  g_assert_cmpint (symlinkat ("/etc/abdeploy/shared/real.conf", t->dfd,
                              "etc/abdeploy/conf.d/x.conf"), ==, 0);
  g_autoptr(GError) error = NULL;
  g_autoptr(AbConfig) c = ab_config_load (t->dfd, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (c->boot.tries, ==, 4);
}

/* abdeploy.conf itself and conf.d are checked too. */
static void
test_main_not_regular (TmpDir *t, gconstpointer data)
{
  g_assert_true (ab_fs_mkdir_p_at (t->dfd, "etc/abdeploy/abdeploy.conf", 0755, NULL));
  g_autoptr(GError) error = NULL;
  g_autoptr(AbConfig) c = ab_config_load (t->dfd, NULL, &error);
  g_assert_null (c);
  g_assert_nonnull (strstr (error->message, "etc/abdeploy/abdeploy.conf is a directory"));
  g_clear_error (&error);
  g_assert_cmpint (unlinkat (t->dfd, "etc/abdeploy/abdeploy.conf", AT_REMOVEDIR), ==, 0);
  g_assert_cmpint (symlinkat ("gone", t->dfd, "etc/abdeploy/abdeploy.conf"), ==, 0);
  g_autoptr(AbConfig) c2 = ab_config_load (t->dfd, NULL, &error);
  g_assert_null (c2);
  g_assert_nonnull (strstr (error->message, "abdeploy.conf is a symbolic link to nothing"));
  g_clear_error (&error);
  g_assert_cmpint (unlinkat (t->dfd, "etc/abdeploy/abdeploy.conf", 0), ==, 0);
  write_file_at (t->dfd, "etc/abdeploy/conf.d", "not a directory\n");
  g_autoptr(AbConfig) c3 = ab_config_load (t->dfd, NULL, &error);
  g_assert_null (c3);
  g_assert_nonnull (strstr (error->message, "etc/abdeploy/conf.d"));
}


/* The format a configuration text states (issue 12, point 4: nothing
 * outside ab-config parses a key file; restore asks it). */
static void
test_stated_format (TmpDir *t, gconstpointer data)
{
  static const struct { const char *text; gint64 want; gboolean ok; } cases[] = {
    { "[boot]\ntries=2\n", 0, TRUE },
    { "[abdeploy]\nformat=2\n", 2, TRUE },
    { "[abdeploy]\nformat = 1 \n", 1, TRUE },
    { "[abdeploy]\nformat=3\n", 0, FALSE },
    { "[abdeploy]\nformat=two\n", 0, FALSE },
    { "[abdeploy]\nformat=\n", 0, FALSE },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GError) error = NULL;
      gint64 stated = -1;
      const char *text = cases[i].text;
      g_assert_cmpint (ab_config_stated_format (text, strlen (text), "c.conf", &stated, &error),
                       ==, cases[i].ok);
      if (cases[i].ok)
        g_assert_cmpint (stated, ==, cases[i].want);
      else
        {
          g_assert_error (error, AB_FORMAT_ERROR, AB_FORMAT_ERROR_UNKNOWN);
          g_assert_nonnull (strstr (error->message, "c.conf has format"));
        }
      /* without OUT_STATED only the syntax counts */
      g_assert_true (ab_config_stated_format (text, strlen (text), "c.conf", NULL, NULL));
    }
  g_autoptr(GError) error = NULL;
  const char *junk = "not a key file\n";
  g_assert_false (ab_config_stated_format (junk, strlen (junk), "c.conf", NULL, &error));
  g_assert_error (error, AB_CONFIG_ERROR, AB_CONFIG_ERROR_SYNTAX);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  TMPDIR_TEST ("/config/defaults", test_defaults);
  TMPDIR_TEST ("/config/conf-d-overrides", test_conf_d_overrides);
  TMPDIR_TEST ("/config/invalid-tries", test_invalid_tries);
  TMPDIR_TEST ("/config/syntax-error-names-file", test_syntax_error_names_file);
  TMPDIR_TEST ("/config/override-path", test_override_path);
  TMPDIR_TEST ("/config/format", test_format);
  TMPDIR_TEST ("/config/format-refused", test_format_refused);
  TMPDIR_TEST ("/config/greenboot-conf", test_greenboot_conf);
  TMPDIR_TEST ("/config/kernel-args", test_kernel_args);
  g_test_add_func ("/config/stamp-format", test_stamp_format);
  TMPDIR_TEST ("/config/stamp-file", test_stamp_file);
  TMPDIR_TEST ("/config/every-key", test_every_key);
  g_test_add_func ("/config/load-from-data", test_load_from_data);
  TMPDIR_TEST ("/config/min-rate-1k", test_min_rate_1k);
  TMPDIR_TEST ("/config/unknown-keys-and-groups", test_unknown_keys_and_groups);
  TMPDIR_TEST ("/config/error-names-drop-in", test_error_names_drop_in);
  TMPDIR_TEST ("/config/conf-d-not-regular", test_conf_d_not_regular);
  TMPDIR_TEST ("/config/main-not-regular", test_main_not_regular);
  TMPDIR_TEST ("/config/stated-format", test_stated_format);
  return g_test_run ();
}
