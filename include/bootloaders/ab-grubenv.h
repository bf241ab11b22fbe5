/* The GRUB environment block: exactly 1024 bytes, a "# GRUB Environment
 * Block" header line, NAME=VALUE lines, '#' padding. Readable and writable
 * by grub-editenv(1). */
#pragma once

#include <glib.h>

#define AB_GRUBENV_SIZE 1024

#define AB_GRUBENV_ERROR (ab_grubenv_error_quark ())
/* The error domain of ab-grubenv (the codes of the enum below). */
GQuark ab_grubenv_error_quark (void);

typedef enum
{
  AB_GRUBENV_ERROR_PARSE,
  AB_GRUBENV_ERROR_TOO_BIG,
} AbGrubenvError;

/* Ordered list of "NAME=VALUE" strings. */
G_GNUC_WARN_UNUSED_RESULT
GPtrArray *ab_grubenv_parse (const char *data, gsize len, GError **error);
/* The value of NAME in ENV (borrowed), or NULL. */
const char *ab_grubenv_get (GPtrArray *env, const char *name);
/* Sets NAME to VALUE in ENV, replacing an earlier value. */
void ab_grubenv_set (GPtrArray *env, const char *name, const char *value);
/* Returns a newly allocated block of AB_GRUBENV_SIZE bytes. */
G_GNUC_WARN_UNUSED_RESULT
char *ab_grubenv_serialize (GPtrArray *env, GError **error);
