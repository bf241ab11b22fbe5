/* greenboot.conf, read without a shell (ab-greenboot.h). */
#include "config.h"
#include "ab-greenboot.h"
#include "ab-util.h"
#include "ab-fsutil.h"

#include <string.h>

G_DEFINE_QUARK (ab-greenboot-error-quark, ab_greenboot_error)

typedef struct
{
  const char *what;
  guint line;
} Where;

static gboolean
syntax (GError **error, const Where *w, const char *problem)
{
  g_set_error (error, AB_GREENBOOT_ERROR, AB_GREENBOOT_ERROR_SYNTAX,
               "%s, line %u: %s. abdeploy reads this file without a shell: write "
               "KEY=VALUE or KEY=(\"a\" \"b\") with literal values", w->what, w->line, problem);
  return FALSE;
}

/* The next word of *P (quoted or bare) into OUT; *P moves past it. */
static gboolean
next_word (const char **p, GString *out, const Where *w, GError **error)
{
  const char *s = *p;
  while (*s && !g_ascii_isspace (*s) && *s != ')' && *s != '#')
    {
      if (*s == '$' || *s == '`' || *s == '\\' || *s == '(' || *s == ';' || *s == '&'
          || *s == '|' || *s == '<' || *s == '>')
        return syntax (error, w, "a value a shell would expand or run (one of $ ` \\ ( ; & | < >)");
      if (*s == '\'' || *s == '"')
        {
          const char *end = strchr (s + 1, *s);
          if (end == NULL)
            return syntax (error, w, "a quote that is not closed");
          if (*s == '"' && (memchr (s + 1, '$', end - s - 1) || memchr (s + 1, '`', end - s - 1)
                            || memchr (s + 1, '\\', end - s - 1)))
            return syntax (error, w, "a double-quoted value a shell would expand ($ ` \\)");
          g_string_append_len (out, s + 1, end - s - 1);
          s = end + 1;
          continue;
        }
      g_string_append_c (out, *s++);
    }
  *p = s;
  return TRUE;
}

static const char *
skip_space (const char *s)
{
  while (g_ascii_isspace (*s))
    s++;
  return s;
}

/* VALUE, a scalar or "(WORD ...)", into a NULL-terminated array. */
static char **
parse_value (const char *value, const Where *w, GError **error)
{
  g_autoptr(GPtrArray) words = g_ptr_array_new_with_free_func (g_free);
  gboolean array = *value == '(';
  const char *p = array ? value + 1 : value;
  for (;;)
    {
      p = skip_space (p);
      if (*p == '\0' || *p == '#' || *p == ')')
        break;
      g_autoptr(GString) word = g_string_new (NULL);
      if (!next_word (&p, word, w, error))
        return NULL;
      g_ptr_array_add (words, g_string_free (g_steal_pointer (&word), FALSE));
      if (!array)
        break;
    }
  if (array && *p != ')')
    return syntax (error, w, "an array without its closing )"), NULL;
  p = skip_space (array ? p + 1 : p);
  if (*p != '\0' && *p != '#')
    return syntax (error, w, "more than one value (quote a value with spaces)"), NULL;
  g_ptr_array_add (words, NULL);
  return (char **) g_ptr_array_free (g_steal_pointer (&words), FALSE);
}

static gboolean
apply (AbGreenbootConf *out, const char *key, char **values, const Where *w, GError **error)
{
  if (g_str_equal (key, "DISABLED_HEALTHCHECKS"))
    {
      g_strfreev (out->disabled_healthchecks);
      out->disabled_healthchecks = g_strdupv (values);
      return TRUE;
    }
  if (!g_str_equal (key, "GREENBOOT_MAX_BOOT_ATTEMPTS"))
    return TRUE;
  guint64 n = 0;
  if (values[0] == NULL || values[1] != NULL
      || !g_ascii_string_to_unsigned (values[0], 10, 1, AB_MAX_TRIES, &n, NULL))
    {
      g_set_error (error, AB_GREENBOOT_ERROR, AB_GREENBOOT_ERROR_VALUE,
                   "%s, line %u: GREENBOOT_MAX_BOOT_ATTEMPTS=%s: use a whole number of boot "
                   "attempts from 1 to %d", w->what, w->line, values[0] ? values[0] : "",
                   AB_MAX_TRIES);
      return FALSE;
    }
  out->max_boot_attempts = (guint) n;
  return TRUE;
}

static gboolean
is_name (const char *s, gsize len)
{
  if (len == 0 || g_ascii_isdigit (s[0]))
    return FALSE;
  for (gsize i = 0; i < len; i++)
    if (!g_ascii_isalnum (s[i]) && s[i] != '_')
      return FALSE;
  return TRUE;
}

static gboolean
parse_line (AbGreenbootConf *out, const char *line, const Where *w, GError **error)
{
  const char *s = skip_space (line);
  if (*s == '\0' || *s == '#')
    return TRUE;
  if (g_str_has_prefix (s, "export "))
    s = skip_space (s + strlen ("export "));
  const char *eq = strchr (s, '=');
  if (eq == NULL || !is_name (s, eq - s))
    return syntax (error, w, "not KEY=VALUE");
  g_autofree char *key = g_strndup (s, eq - s);
  g_auto(GStrv) values = parse_value (eq + 1, w, error);
  return values != NULL && apply (out, key, values, w, error);
}

gboolean
ab_greenboot_conf_parse (const char *text, gsize len, const char *what, AbGreenbootConf *out,
                         GError **error)
{
  if (out->disabled_healthchecks == NULL)
    out->disabled_healthchecks = g_new0 (char *, 1);
  if (memchr (text, '\0', len) != NULL)
    return syntax (error, &(Where) { what, 0 }, "a NUL byte");
  g_autofree char *copy = g_strndup (text, len);
  g_auto(GStrv) lines = g_strsplit (copy, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    if (!parse_line (out, lines[i], &(Where) { what, i + 1 }, error))
      return FALSE;
  return TRUE;
}

gboolean
ab_greenboot_conf_load (int sysroot_dfd, AbGreenbootConf *out, GError **error)
{
  g_autofree char *text = NULL;
  gsize len = 0;
  g_autoptr(GError) local = NULL;
  if (out->disabled_healthchecks == NULL)
    out->disabled_healthchecks = g_new0 (char *, 1);
  if (!ab_fs_read_at (sysroot_dfd, AB_GREENBOOT_CONF, &text, &len, &local))
    {
      if (g_error_matches (local, AB_FS_ERROR, AB_FS_ERROR_NOT_FOUND))
        return TRUE;
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  return ab_greenboot_conf_parse (text, len, "/" AB_GREENBOOT_CONF, out, error);
}

void
ab_greenboot_conf_clear (AbGreenbootConf *conf)
{
  g_clear_pointer (&conf->disabled_healthchecks, g_strfreev);
  conf->max_boot_attempts = 0;
}
