/* The nearest known word to a mistyped command, subcommand or option. */
#include "config.h"
#include "cli-suggest.h"

#include <string.h>

guint
cli_edit_distance (const char *a, const char *b)
{
  gsize la = strlen (a), lb = strlen (b);
  g_autofree guint *row = g_new (guint, lb + 1);
  for (gsize j = 0; j <= lb; j++)
    row[j] = (guint) j;
  /* ROW holds the distances of a[0..i) to every prefix of B */
  for (gsize i = 1; i <= la; i++)
    {
      guint diag = row[0];
      row[0] = (guint) i;
      for (gsize j = 1; j <= lb; j++)
        {
          guint up = row[j];
          guint cost = diag + (a[i - 1] == b[j - 1] ? 0 : 1);
          row[j] = MIN (cost, MIN (up, row[j - 1]) + 1);
          diag = up;
        }
    }
  return row[lb];
}

/* The only candidate that starts with WORD (3 bytes or more), or NULL. */
static const char *
unique_prefix (const char *word, const char *const *candidates)
{
  const char *found = NULL;
  if (strlen (word) < 3)
    return NULL;
  for (const char *const *c = candidates; *c; c++)
    if (g_str_has_prefix (*c, word))
      {
        if (found != NULL)
          return NULL;
        found = *c;
      }
  return found;
}

const char *
cli_suggest (const char *word, const char *const *candidates)
{
  const char *best = NULL;
  guint best_d = G_MAXUINT;
  for (const char *const *c = candidates; *c; c++)
    {
      guint d = cli_edit_distance (word, *c);
      if (d < best_d)
        {
          best = *c;
          best_d = d;
        }
    }
  if (best != NULL && best_d <= 2 && best_d * 2 <= strlen (word))
    return best;
  return unique_prefix (word, candidates);
}

char *
cli_did_you_mean (const char *word, const char *const *candidates)
{
  const char *s = cli_suggest (word, candidates);
  return s ? g_strdup_printf ("; did you mean \"%s\"?", s) : g_strdup ("");
}
