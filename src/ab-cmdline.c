#include "config.h"
#include "ab-cmdline.h"

#include <string.h>

char *
ab_cmdline_get (const char *cmdline, const char *key)
{
  g_autofree char *prefix = g_strconcat (key, "=", NULL);
  g_auto(GStrv) words = g_strsplit_set (cmdline, " \t\n", -1);
  char *found = NULL;
  /* The last occurrence wins, as for the kernel's own parameters. */
  for (char **w = words; *w; w++)
    if (g_str_has_prefix (*w, prefix))
      {
        g_free (found);
        found = g_strdup (*w + strlen (prefix));
      }
  return found;
}

AbSlot
ab_cmdline_booted_slot (GError **error)
{
  const char *path = g_getenv ("ABDEPLOY_CMDLINE");
  if (path == NULL || *path == '\0')
    path = "/proc/cmdline";
  g_autofree char *contents = NULL;
  if (!g_file_get_contents (path, &contents, NULL, error))
    return AB_SLOT_NONE;
  g_autofree char *value = ab_cmdline_get (contents, "abdeploy.slot");
  if (value == NULL)
    return AB_SLOT_NONE;
  AbSlot slot = ab_slot_from_name (value);
  if (slot == AB_SLOT_NONE)
    g_warning ("Ignoring abdeploy.slot=%s on the kernel command line in %s: slots are a and b",
               value, path);
  return slot;
}
