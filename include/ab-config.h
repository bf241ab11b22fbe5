/* abdeploy.conf: GKeyFile, SYSROOT/etc/abdeploy/abdeploy.conf then the
 * conf.d/ *.conf files in lexical order (later keys override earlier ones), or one
 * file given with --config. */
#pragma once

#include <glib.h>

#define AB_CONFIG_ERROR (ab_config_error_quark ())
GQuark ab_config_error_quark (void);

typedef enum
{
  AB_CONFIG_ERROR_INVALID,
} AbConfigError;

typedef struct
{
  int boot_tries;        /* [boot] tries, 1..9, default 3 */
  char *update_url;      /* [update] url, NULL when unset */
  char *update_channel;  /* [update] channel, default "stable" */
  guint health_timeout_sec;   /* [health] timeout-sec, default 300 */
  gboolean greenboot_compat;  /* [health] greenboot-compat, default true */
  char *on_red;               /* [health] on-red: reboot (default), rollback, none */
  char *reboot_command;       /* [health] reboot-command, NULL: systemctl reboot or reboot */
  gint64 format;          /* [abdeploy] format of abdeploy.conf, 1 when it states none */
  GKeyFile *keyfile;     /* merged view of all files */
} AbConfig;

#define AB_CONFIG_DEFAULT_HEALTH_TIMEOUT 300

#define AB_CONFIG_DEFAULT_TRIES 3
#define AB_CONFIG_MAX_TRIES 9

AbConfig *ab_config_load (int sysroot_dfd, const char *override_path, GError **error);
void ab_config_free (AbConfig *config);

/* TEXT (an abdeploy.conf) with format=FORMAT in its [abdeploy] group: an
 * existing format line of that group is replaced, an existing group gets
 * the line after its header, otherwise the group is put first. Every other
 * byte stays as it was. */
char *ab_config_stamp_format (const char *text, gint64 format);
/* Makes SYSROOT/etc/abdeploy/abdeploy.conf state the current format
 * (creating the file when missing), with ab_fs_replace_at(). Changes
 * nothing when it already does; refuses a file that does not parse or
 * states an unknown format. */
gboolean ab_config_stamp_file_at (int sysroot_dfd, gboolean *out_changed, GError **error);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AbConfig, ab_config_free)
