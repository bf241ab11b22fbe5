/* greenboot's configuration, /etc/greenboot/greenboot.conf: shell-style
 * KEY=VALUE lines that greenboot sources. abdeploy never runs it: it reads
 * the two keys it honours with a parser that accepts only literal values
 * (bare words, 'single' or "double" quoted; arrays KEY=(WORD ...)), and
 * refuses anything a shell would expand ($, `) with an error naming the
 * line. Other keys are ignored; comments (#) and "export " are allowed. */
#pragma once

#include <glib.h>

#define AB_GREENBOOT_ERROR (ab_greenboot_error_quark ())
/* The error domain of ab-greenboot (AbGreenbootError). */
GQuark ab_greenboot_error_quark (void);

typedef enum
{
  AB_GREENBOOT_ERROR_SYNTAX,   /* a line the parser does not take */
  AB_GREENBOOT_ERROR_VALUE,    /* a value out of range */
} AbGreenbootError;

/* greenboot.conf, relative to the sysroot. */
#define AB_GREENBOOT_CONF "etc/greenboot/greenboot.conf"

typedef struct
{
  guint max_boot_attempts;       /* GREENBOOT_MAX_BOOT_ATTEMPTS; 0: not set */
  char **disabled_healthchecks;  /* DISABLED_HEALTHCHECKS; NULL-terminated, never NULL */
} AbGreenbootConf;

/* Parses TEXT (LEN bytes; WHAT names it in messages) into OUT, which the
 * caller clears with ab_greenboot_conf_clear() (also after a failure). */
gboolean ab_greenboot_conf_parse (const char *text, gsize len, const char *what,
                                  AbGreenbootConf *out, GError **error) G_GNUC_WARN_UNUSED_RESULT;
/* SYSROOT_DFD/etc/greenboot/greenboot.conf parsed into OUT; a missing
 * file leaves OUT empty (nothing set). */
gboolean ab_greenboot_conf_load (int sysroot_dfd, AbGreenbootConf *out,
                                 GError **error) G_GNUC_WARN_UNUSED_RESULT;
/* Frees what OUT holds and empties it. */
void ab_greenboot_conf_clear (AbGreenbootConf *conf);
