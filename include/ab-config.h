/* abdeploy.conf: GKeyFile, SYSROOT/etc/abdeploy/abdeploy.conf then the
 * conf.d/ *.conf files in lexical order (later keys override earlier ones), or one
 * file given with --config.
 *
 * Invariants:
 * - Every file is parsed once, here, into the typed AbConfig; no other
 *   module reads a key file. Every key is parsed strictly (the whole value,
 *   no sign, no overflow) and range-checked; a bad value is an error naming
 *   the file it came from, the group, the key and what is accepted.
 * - A key that this abdeploy does not know, in a group it knows, and a group
 *   it does not know are errors (as in RAUC's system.conf): a typo never
 *   silently leaves a defence at its default. Groups and keys whose name
 *   starts with "X-" are ignored (systemd's convention for extensions).
 * - Every drop-in is a regular file (after following links inside the
 *   sysroot); anything else named *.conf is refused. */
#pragma once

#include <glib.h>
#include "ab-util.h"

#define AB_CONFIG_ERROR (ab_config_error_quark ())
/* The error domain of ab-config (the codes of the enum below). */
GQuark ab_config_error_quark (void);

typedef enum
{
  AB_CONFIG_ERROR_INVALID,
  AB_CONFIG_ERROR_SYNTAX,   /* not a key file at all (ab_config_stated_format()) */
} AbConfigError;

typedef enum
{
  AB_CONFIG_ON_RED_REBOOT,
  AB_CONFIG_ON_RED_ROLLBACK,
  AB_CONFIG_ON_RED_NONE,
} AbConfigOnRed;

/* [abdeploy] */
typedef struct
{
  gint64 format;                    /* format of abdeploy.conf, 1 when it states none */
} AbConfigAbdeploy;

/* [boot] */
typedef struct
{
  guint tries;                      /* 1..9, default 3 */
  char *uboot_env_config;           /* path, default etc/fw_env.config */
  char *uboot_env_defaults;         /* path, default etc/u-boot-initial-env */
  char *custom_backend;             /* path, NULL when unset */
  guint custom_backend_timeout_sec; /* 1..3600, default 30 */
  char *kernel_args;                /* NULL when unset; never holds abdeploy.slot= */
  char *esp_path;                   /* path, NULL: the first of efi, boot, boot/efi that is one */
  char *xbootldr_path;              /* path, NULL: the entries live on the ESP */
} AbConfigBoot;

/* [update] */
typedef struct
{
  char *url;                        /* NULL when unset */
  char *url_file;                   /* the file that set url (as loaded), NULL when unset */
  gboolean url_file_from_cwd;       /* url_file is a --config path, not relative to the sysroot */
  char *channel;                    /* a valid channel name, default "stable" */
  guint64 manifest_max_bytes;       /* 1 KiB..256 MiB, default 1 MiB */
  guint64 min_rate;                 /* bytes/s, 1..1 GiB, default 1024 (never 0) */
  guint min_rate_time_sec;          /* 1..3600, default 20 (never 0) */
  guint max_attempts;               /* 1..100, default 4 */
  guint backoff_initial_ms;         /* 1..600000, default 500 */
  guint backoff_max_ms;             /* backoff_initial_ms..3600000, default 8000 */
  char *ca_file;                    /* NULL: the system's CAs */
  guint max_resume_attempts;        /* 1..1000, default 5 */
  /* Bounds of every pull (ab-content.h, AbPullLimits) */
  guint64 max_object_bytes;         /* 4 KiB..1 TiB, default 1 GiB */
  guint64 max_pull_bytes;           /* 4 KiB..64 TiB, default 16 GiB */
  guint max_pull_time_sec;          /* 1..604800, default 21600 (6 h) */
  guint64 min_free_space;           /* 0..64 TiB, default 64 MiB */
  gboolean security_only;           /* offer only releases marked "security" (issue 17) */
} AbConfigUpdate;

/* [health] and [health-timeouts] */
typedef struct
{
  guint timeout_sec;                /* 1..86400, default 300 */
  gboolean greenboot_compat;        /* default true */
  AbConfigOnRed on_red;             /* default reboot */
  char *reboot_command;             /* NULL: systemctl reboot or reboot */
  GHashTable *hook_timeouts;        /* hook file name -> seconds (GUINT_TO_POINTER), 1..86400 */
  char **disabled_hooks;            /* greenboot.conf DISABLED_HEALTHCHECKS; NULL-terminated */
} AbConfigHealth;

typedef struct
{
  AbConfigAbdeploy abdeploy;
  AbConfigBoot boot;
  AbConfigUpdate update;
  AbConfigHealth health;
} AbConfig;

#define AB_CONFIG_DEFAULT_HEALTH_TIMEOUT 300

#define AB_CONFIG_DEFAULT_MAX_OBJECT_BYTES (G_GUINT64_CONSTANT (1) << 30)  /* 1 GiB */
#define AB_CONFIG_DEFAULT_MAX_PULL_BYTES (G_GUINT64_CONSTANT (16) << 30)   /* 16 GiB */
#define AB_CONFIG_DEFAULT_MAX_PULL_TIME_SEC (6 * 3600)
#define AB_CONFIG_DEFAULT_MIN_FREE_SPACE (G_GUINT64_CONSTANT (64) << 20)   /* 64 MiB */

#define AB_CONFIG_MAX_KERNEL_ARGS 2048

#define AB_CONFIG_DEFAULT_TRIES 3
#define AB_CONFIG_MAX_TRIES AB_MAX_TRIES

/* Every key at its default. */
AbConfig *ab_config_new_defaults (void);
/* Parses abdeploy.conf and its drop-ins under SYSROOT_DFD (OVERRIDE_PATH
 * instead when not NULL) into a typed, range-checked AbConfig; an unknown key
 * or a bad value fails naming the file, the key and the fix. */
G_GNUC_WARN_UNUSED_RESULT
AbConfig *ab_config_load (int sysroot_dfd, const char *override_path, GError **error);
/* The configuration that one file with contents DATA (LEN bytes, need not
 * be NUL-terminated) gives, NAME being the file's name in messages: the
 * same checks as ab_config_load() apart from reading files. The entry
 * point of the configuration fuzz target. */
G_GNUC_WARN_UNUSED_RESULT
AbConfig *ab_config_load_from_data (const char *data, gsize len, const char *name,
                                    GError **error);
/* The checks of ab_config_load() that one file passes or fails on its
 * own (syntax, groups, keys, each value and its range), on DATA (LEN bytes)
 * named NAME in messages; the checks between keys, which need every file
 * (backoff-max-ms against backoff-initial-ms, the format of a drop-in
 * against abdeploy.conf's), are left to ab_config_load(). */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_config_check_data (const char *data, gsize len, const char *name, GError **error);
/* The configuration format that the text DATA (LEN bytes), named WHAT in
 * messages, states in its [abdeploy] group: 0 when it states none (a
 * format-1 file). A text that is no key file at all is
 * AB_CONFIG_ERROR_SYNTAX with the parser's message; a stated format this
 * abdeploy does not read is AB_FORMAT_ERROR_UNKNOWN (ab_format_set_unknown()).
 * OUT_STATED NULL: only the syntax is checked. For readers of archived
 * configuration files (restore): nothing outside this module parses a key
 * file. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_config_stated_format (const char *data, gsize len, const char *what,
                                  gint64 *out_stated, GError **error);
/* Frees CONFIG and everything it owns; NULL is allowed. */
void ab_config_free (AbConfig *config);

/* TRUE when [update] url holds credentials (a user name or a password) and
 * the file that sets it can be read by users other than its owner: the
 * caller warns (issue 11: keep credentials in root-only files). */
gboolean ab_config_url_exposed (const AbConfig *config, int sysroot_dfd);

/* TEXT (an abdeploy.conf) with format=FORMAT in its [abdeploy] group: an
 * existing format line of that group is replaced, an existing group gets
 * the line after its header, otherwise the group is put first. Every other
 * byte stays as it was. */
char *ab_config_stamp_format (const char *text, gint64 format);
/* Makes SYSROOT/etc/abdeploy/abdeploy.conf state the current format
 * (creating the file when missing), with ab_fs_replace_at(). Changes
 * nothing when it already does; refuses a file that does not parse or
 * states an unknown format. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_config_stamp_file_at (int sysroot_dfd, gboolean *out_changed, GError **error);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AbConfig, ab_config_free)
