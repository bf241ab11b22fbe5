#include "config.h"
#include "bootloaders/ab-grubenv.h"

#include <string.h>

G_DEFINE_QUARK (ab-grubenv-error-quark, ab_grubenv_error)

#define GRUBENV_HEADER "# GRUB Environment Block\n"

GPtrArray *
ab_grubenv_parse (const char *data, gsize len, GError **error)
{
  if (len < strlen (GRUBENV_HEADER) || memcmp (data, GRUBENV_HEADER, strlen (GRUBENV_HEADER)) != 0)
    {
      g_set_error (error, AB_GRUBENV_ERROR, AB_GRUBENV_ERROR_PARSE,
                   "Not a GRUB environment block (no \"# GRUB Environment Block\" header); "
                   "recreate it with grub-editenv FILE create");
      return NULL;
    }
  g_autoptr(GPtrArray) env = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *text = g_strndup (data, len);
  g_auto(GStrv) lines = g_strsplit (text + strlen (GRUBENV_HEADER), "\n", -1);
  for (char **l = lines; *l; l++)
    {
      if (**l == '#' || **l == '\0')
        continue;
      if (strchr (*l, '=') == NULL)
        {
          g_set_error (error, AB_GRUBENV_ERROR, AB_GRUBENV_ERROR_PARSE,
                       "Malformed line in GRUB environment block: \"%s\"", *l);
          return NULL;
        }
      g_ptr_array_add (env, g_strdup (*l));
    }
  return g_steal_pointer (&env);
}

static gint
find_index (GPtrArray *env, const char *name)
{
  gsize nlen = strlen (name);
  for (guint i = 0; i < env->len; i++)
    {
      const char *e = env->pdata[i];
      if (strncmp (e, name, nlen) == 0 && e[nlen] == '=')
        return (gint) i;
    }
  return -1;
}

const char *
ab_grubenv_get (GPtrArray *env, const char *name)
{
  gint i = find_index (env, name);
  return i < 0 ? NULL : (const char *) env->pdata[i] + strlen (name) + 1;
}

void
ab_grubenv_set (GPtrArray *env, const char *name, const char *value)
{
  char *entry = g_strconcat (name, "=", value, NULL);
  gint i = find_index (env, name);
  if (i < 0)
    g_ptr_array_add (env, entry);
  else
    {
      g_free (env->pdata[i]);
      env->pdata[i] = entry;
    }
}

char *
ab_grubenv_serialize (GPtrArray *env, GError **error)
{
  g_autoptr(GString) s = g_string_new (GRUBENV_HEADER);
  for (guint i = 0; i < env->len; i++)
    {
      g_string_append (s, env->pdata[i]);
      g_string_append_c (s, '\n');
    }
  if (s->len > AB_GRUBENV_SIZE)
    {
      g_set_error (error, AB_GRUBENV_ERROR, AB_GRUBENV_ERROR_TOO_BIG,
                   "GRUB environment block would need %zu bytes, more than its %d; "
                   "remove unused variables with grub-editenv FILE unset NAME",
                   s->len, AB_GRUBENV_SIZE);
      return NULL;
    }
  while (s->len < AB_GRUBENV_SIZE)
    g_string_append_c (s, '#');
  return g_string_free (g_steal_pointer (&s), FALSE);
}
