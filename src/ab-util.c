#include "config.h"
#include "ab-util.h"

#include <string.h>

const char *
ab_slot_name (AbSlot slot)
{
  switch (slot)
    {
    case AB_SLOT_A: return "a";
    case AB_SLOT_B: return "b";
    default: return NULL;
    }
}

AbSlot
ab_slot_from_name (const char *name)
{
  if (g_strcmp0 (name, "a") == 0)
    return AB_SLOT_A;
  if (g_strcmp0 (name, "b") == 0)
    return AB_SLOT_B;
  return AB_SLOT_NONE;
}

AbSlot
ab_slot_other (AbSlot slot)
{
  switch (slot)
    {
    case AB_SLOT_A: return AB_SLOT_B;
    case AB_SLOT_B: return AB_SLOT_A;
    default: return AB_SLOT_NONE;
    }
}

char *
ab_now_iso8601 (void)
{
  g_autoptr(GDateTime) now = g_date_time_new_now_utc ();
  return g_date_time_format (now, "%Y-%m-%dT%H:%M:%SZ");
}

gboolean
ab_is_commit_checksum (const char *s)
{
  if (s == NULL || strlen (s) != 64)
    return FALSE;
  for (const char *p = s; *p; p++)
    if (!g_ascii_isxdigit (*p) || g_ascii_isupper (*p))
      return FALSE;
  return TRUE;
}
