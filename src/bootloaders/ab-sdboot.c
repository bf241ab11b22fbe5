/* Entry names of the systemd-boot backend; the rules are in ab-sdboot.h. */
#include "config.h"
#include "bootloaders/ab-sdboot.h"

#include <string.h>

/* A decimal number without a leading zero (or "0") at *P, up to
 * AB_SDBOOT_MAX_NUMBER; *P moves past it. */
static gboolean
parse_number (const char **p, guint *out)
{
  const char *s = *p;
  guint64 n = 0;
  if (!g_ascii_isdigit (*s) || (s[0] == '0' && g_ascii_isdigit (s[1])))
    return FALSE;
  for (; g_ascii_isdigit (*s); s++)
    {
      n = n * 10 + (guint64) (*s - '0');
      if (n > AB_SDBOOT_MAX_NUMBER)
        return FALSE;
    }
  *out = (guint) n;
  *p = s;
  return TRUE;
}

/* "+LEFT[-DONE]" at *P, if there. */
static gboolean
parse_counter (const char **p, AbSdbootName *out)
{
  if (**p != '+')
    return TRUE;
  (*p)++;
  out->counted = TRUE;
  if (!parse_number (p, &out->left))
    return FALSE;
  if (**p != '-')
    return TRUE;
  (*p)++;
  out->has_done = TRUE;
  return parse_number (p, &out->done);
}

gboolean
ab_sdboot_name_parse (const char *name, AbSdbootName *out)
{
  memset (out, 0, sizeof *out);
  out->slot = AB_SLOT_NONE;
  if (!g_str_has_prefix (name, AB_SDBOOT_PREFIX))
    return FALSE;
  const char *p = name + strlen (AB_SDBOOT_PREFIX);
  if (!parse_number (&p, &out->gen) || *p++ != '-')
    return FALSE;
  if (*p != 'a' && *p != 'b')
    return FALSE;
  out->slot = *p++ == 'a' ? AB_SLOT_A : AB_SLOT_B;
  if (g_str_equal (p, ".staged"))
    {
      out->staged = TRUE;
      return TRUE;
    }
  return parse_counter (&p, out) && g_str_equal (p, ".conf");
}

char *
ab_sdboot_name_format (const AbSdbootName *n)
{
  g_autoptr(GString) s = g_string_new (AB_SDBOOT_PREFIX);
  g_string_append_printf (s, "%u-%s", n->gen, ab_slot_name (n->slot));
  if (n->staged)
    {
      g_string_append (s, ".staged");
      return g_string_free (g_steal_pointer (&s), FALSE);
    }
  if (n->counted)
    g_string_append_printf (s, "+%u", n->left);
  if (n->counted && n->has_done)
    g_string_append_printf (s, "-%u", n->done);
  g_string_append (s, ".conf");
  return g_string_free (g_steal_pointer (&s), FALSE);
}

void
ab_sdboot_name_state (const AbSdbootName *n, gboolean primary, AbBootState *out_state,
                      int *out_tries)
{
  *out_tries = 0;
  if (n->staged)
    *out_state = AB_BOOT_STATE_NONE;
  else if (!n->counted)
    *out_state = AB_BOOT_STATE_GOOD;
  else if (n->left > 0)
    {
      *out_state = AB_BOOT_STATE_TRIAL;
      *out_tries = (int) MIN (n->left, (guint) G_MAXINT);
    }
  else if (primary && !(n->has_done && n->done == 0))
    *out_state = AB_BOOT_STATE_TRIAL;
  else
    *out_state = AB_BOOT_STATE_BAD;
}

/* CUR's counter when it already stands for a trial with TRIES left. */
static gboolean
keeps_trial (const AbSdbootName *cur, int tries)
{
  return !cur->staged && cur->counted && cur->left > 0 && cur->left == (guint) tries;
}

AbSdbootName
ab_sdboot_name_for_state (const AbSdbootName *cur, AbBootState state, int tries,
                          gboolean primary)
{
  AbSdbootName n = { .gen = cur->gen, .slot = cur->slot };
  guint done = !cur->staged && cur->counted ? cur->done : 0;
  switch (state)
    {
    case AB_BOOT_STATE_NONE:
      n.staged = TRUE;
      break;
    case AB_BOOT_STATE_GOOD:
      break;
    case AB_BOOT_STATE_TRIAL:
      if (keeps_trial (cur, tries))
        return *cur;
      n.counted = TRUE;
      n.left = (guint) MAX (tries, 0);
      /* no tries left: only "+0-DONE" with DONE >= 1 reads as a trial */
      n.has_done = tries <= 0;
      n.done = tries <= 0 ? MAX (done, 1u) : 0;
      break;
    case AB_BOOT_STATE_BAD:
      n.counted = TRUE;
      /* the primary: "+0-0"; else systemd-bless-boot's "+0-DONE" ("+0") */
      n.has_done = primary || done > 0;
      n.done = primary ? 0 : done;
      break;
    }
  return n;
}

static gboolean
used_up (const AbSdbootName *n)
{
  return n->counted && n->left == 0;
}

int
ab_sdboot_name_compare (const AbSdbootName *a, const AbSdbootName *b)
{
  if (a->staged != b->staged)
    return a->staged ? 1 : -1;
  if (used_up (a) != used_up (b))
    return used_up (a) ? 1 : -1;
  if (a->gen != b->gen)
    return a->gen > b->gen ? -1 : 1;
  if (a->slot != b->slot)
    return a->slot > b->slot ? -1 : 1;
  if (a->counted != b->counted)
    return a->counted ? 1 : -1;
  if (a->left != b->left)
    return a->left > b->left ? -1 : 1;
  return a->done == b->done ? 0 : a->done < b->done ? -1 : 1;
}
