/* Publisher: the customer note file of publish release --notes=FILE
 * (abdeploy-publish(8), CUSTOMER NOTES; docs/customer-release-note-template.md).
 *
 * The file is Markdown with exactly three second-level headings, in this
 * order: "## What changed", "## What you need to do", "## If something goes
 * wrong". HTML comments ("<!-- ... -->", also over several lines) are
 * dropped first; before the first heading only blank lines and "# " title
 * lines may stand. Each part is the text under its
 * heading, trimmed, non-empty, at most AB_MANIFEST_NOTE_PART_MAX bytes;
 * the last one names the one-line rollback command ("abdeploy rollback").
 *
 * Invariant: a note is returned only when every rule holds; otherwise the
 * error names the file, the line or part and the fix. */
#include "config.h"
#include "ab-publish-private.h"

#include <string.h>

#define MAX_NOTES_FILE 8192
#define ROLLBACK_COMMAND "abdeploy rollback"
#define PLACEHOLDER "FILL IN"

static const char *const headings[] = {
  "## What changed", "## What you need to do", "## If something goes wrong",
};

static gboolean
notes_error (GError **error, const char *path, const char *problem)
{
  g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_USAGE,
               "Customer note %s: %s. The file needs the three headings \"## What changed\", "
               "\"## What you need to do\" and \"## If something goes wrong\" in this order, "
               "each followed by text (see docs/customer-release-note-template.md)",
               path, problem);
  return FALSE;
}

/* Text before the headings may only be blank or a "# " title. */
static gboolean
is_preamble_line (const char *line)
{
  g_autofree char *t = g_strstrip (g_strdup (line));
  return *t == '\0' || g_str_has_prefix (t, "# ");
}

/* TEXT without its HTML comments; NULL when one is not closed. */
static char *
drop_comments (const char *text)
{
  g_autoptr(GRegex) re = g_regex_new ("<!--.*?-->", G_REGEX_DOTALL, 0, NULL);
  g_autofree char *out = g_regex_replace_literal (re, text, -1, 0, "", 0, NULL);
  return out && strstr (out, "<!--") == NULL ? g_steal_pointer (&out) : NULL;
}

static gboolean
check_text (GError **error, const char *path, const char *data, gsize len)
{
  if (len > MAX_NOTES_FILE)
    return notes_error (error, path, "it is larger than 8192 bytes; keep the note short");
  if (!g_utf8_validate_len (data, len, NULL))
    return notes_error (error, path, "it is not UTF-8 text");
  for (gsize i = 0; i < len; i++)
    if (((guchar) data[i] < 0x20 && data[i] != '\n' && data[i] != '\t') || data[i] == 0x7f)
      return notes_error (error, path, "it holds a control character (a binary file?)");
  return TRUE;
}

static void
add_line (GString *part, const char *line)
{
  g_string_append (part, line);
  g_string_append_c (part, '\n');
}

static gboolean
split_parts (GError **error, const char *path, char **lines, GString **parts)
{
  int at = -1;
  for (guint n = 0; lines[n]; n++)
    {
      g_autofree char *t = g_strchomp (g_strdup (lines[n]));
      int next = at + 1;
      if (next < 3 && strcmp (t, headings[next]) == 0)
        at = next;
      else if (g_str_has_prefix (t, "## ") || (at < 0 && !is_preamble_line (t)))
        {
          g_autofree char *problem = g_strdup_printf (
            "line %u (\"%s\") is not where the template has it; expected \"%s\"", n + 1, t,
            next < 3 ? headings[next] : "no further heading");
          return notes_error (error, path, problem);
        }
      else if (at >= 0)
        add_line (parts[at], lines[n]);
    }
  if (at < 2)
    {
      g_autofree char *problem = g_strdup_printf ("the heading \"%s\" is missing", headings[at + 1]);
      return notes_error (error, path, problem);
    }
  return TRUE;
}

static gboolean
check_part (GError **error, const char *path, guint i, const char *text)
{
  g_autofree char *problem = NULL;
  if (*text == '\0')
    problem = g_strdup_printf ("the part \"%s\" is empty", headings[i] + 3);
  else if (strlen (text) > AB_MANIFEST_NOTE_PART_MAX)
    problem = g_strdup_printf ("the part \"%s\" is longer than 2048 bytes", headings[i] + 3);
  else if (strstr (text, PLACEHOLDER) != NULL)
    problem = g_strdup_printf ("the part \"%s\" still holds the template's \"" PLACEHOLDER
                               "\"", headings[i] + 3);
  else if (i == 2 && strstr (text, ROLLBACK_COMMAND) == NULL)
    problem = g_strdup ("the part \"If something goes wrong\" does not give the one-line "
                        "rollback command \"" ROLLBACK_COMMAND "\"");
  return problem == NULL || notes_error (error, path, problem);
}

AbReleaseNotes *
ab_publish_read_notes (const char *path, GError **error)
{
  g_autofree char *data = NULL;
  gsize len = 0;
  g_autoptr(GError) local = NULL;
  if (!g_file_get_contents (path, &data, &len, &local))
    {
      notes_error (error, path, local->message);
      return NULL;
    }
  if (!check_text (error, path, data, len))
    return NULL;
  g_autofree char *text = drop_comments (data);
  if (text == NULL)
    {
      notes_error (error, path, "an HTML comment (\"<!--\") is not closed");
      return NULL;
    }
  g_auto(GStrv) lines = g_strsplit (text, "\n", -1);
  g_autoptr(GString) p0 = g_string_new (NULL), p1 = g_string_new (NULL), p2 = g_string_new (NULL);
  GString *parts[3] = { p0, p1, p2 };
  if (!split_parts (error, path, lines, parts))
    return NULL;
  for (guint i = 0; i < 3; i++)
    if (!check_part (error, path, i, g_strstrip (parts[i]->str)))
      return NULL;
  AbReleaseNotes *n = g_new0 (AbReleaseNotes, 1);
  n->changed = g_strdup (p0->str);
  n->action = g_strdup (p1->str);
  n->rollback = g_strdup (p2->str);
  return n;
}
