#include "config.h"
#include "ab-format.h"
#include "ab-fsutil.h"
#include "ab-json.h"

#include <errno.h>

G_DEFINE_QUARK (ab-format-error-quark, ab_format_error)

typedef struct
{
  const char *noun;    /* "format" or "layout version" */
  const char *nouns;   /* plural */
  gint64 oldest;       /* oldest readable version */
  gint64 current;      /* version written */
} KindInfo;

static const KindInfo kinds[] = {
  [AB_FORMAT_LAYOUT] = { "layout version", "layout versions", AB_LAYOUT_PREVIOUS, AB_LAYOUT_VERSION },
  [AB_FORMAT_STATE] = { "format", "formats", 1, AB_STATE_FORMAT },
  [AB_FORMAT_CONFIG] = { "format", "formats", 1, AB_CONFIG_FORMAT },
  [AB_FORMAT_BACKUP] = { "format", "formats", 1, AB_BACKUP_FORMAT },
};

gint64
ab_format_current (AbFormatKind kind)
{
  return kinds[kind].current;
}

gint64
ab_format_oldest (AbFormatKind kind)
{
  return kinds[kind].oldest;
}

gboolean
ab_format_is_readable (AbFormatKind kind, gint64 version)
{
  return version >= kinds[kind].oldest && version <= kinds[kind].current;
}

#define VERSION_FILE "abdeploy/version"

gboolean
ab_format_read_layout_at (int sysroot_dfd, gint64 *out_version, GError **error)
{
  *out_version = 0;
  g_autofree char *data = NULL;
  g_autoptr(GError) local = NULL;
  if (!ab_fs_read_at (sysroot_dfd, VERSION_FILE, &data, NULL, &local))
    {
      if (g_error_matches (local, AB_FS_ERROR, AB_FS_ERROR_NOT_FOUND))
        return TRUE;
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  guint64 v = 0;
  if (!g_ascii_string_to_unsigned (g_strstrip (data), 10, 1, G_MAXINT32, &v, NULL))
    {
      ab_format_set_unknown (error, AB_FORMAT_LAYOUT, VERSION_FILE, *data ? data : "\"\" (empty)");
      return FALSE;
    }
  if (!ab_format_check (AB_FORMAT_LAYOUT, VERSION_FILE, (gint64) v, error))
    return FALSE;
  *out_version = (gint64) v;
  return TRUE;
}

gint64
ab_format_state_for_layout (gint64 layout)
{
  /* Layout 1 had state format 1; from layout 2 on they are equal. */
  return layout <= 1 ? 1 : layout;
}

/* "formats 1 and 2", "format 2", "formats 1 to 3". */
static char *
readable_versions (const KindInfo *k)
{
  if (k->oldest == k->current)
    return g_strdup_printf ("%s %" G_GINT64_FORMAT, k->noun, k->current);
  return g_strdup_printf ("%s %" G_GINT64_FORMAT " %s %" G_GINT64_FORMAT, k->nouns, k->oldest,
                          k->current == k->oldest + 1 ? "and" : "to", k->current);
}

static char *
advice (AbFormatKind kind, const KindInfo *k, const char *found, gboolean newer)
{
  if (!newer)
    switch (kind)
      {
      case AB_FORMAT_LAYOUT:
        return g_strdup_printf ("No abdeploy release writes it: write the layout version of this "
                                "sysroot (%" G_GINT64_FORMAT " or %" G_GINT64_FORMAT ") into "
                                "abdeploy/version (see abdeploy-layout(7))", k->oldest, k->current);
      case AB_FORMAT_CONFIG:
        return g_strdup_printf ("Set format=%" G_GINT64_FORMAT " in its [abdeploy] group, or "
                                "remove the key (see abdeploy.conf(5))", k->current);
      case AB_FORMAT_BACKUP:
        return g_strdup ("Use another copy of the backup");
      case AB_FORMAT_STATE:
      default:
        return g_strdup ("No abdeploy release writes it: restore the file from a backup "
                         "(abdeploy restore) or from the copy a migration kept in "
                         "abdeploy/migration/ (see abdeploy-layout(7))");
      }
  g_autofree char *copy = g_strdup_printf (AB_FORMAT_COPY_DIR_FMT, (int) k->current);
  switch (kind)
    {
    case AB_FORMAT_CONFIG:
      return g_strdup_printf ("Install an abdeploy release that knows %s %s, or write the file for "
                              "this one (format=%" G_GINT64_FORMAT " in [abdeploy]; see "
                              "abdeploy.conf(5))", k->noun, found, k->current);
    case AB_FORMAT_BACKUP:
      return g_strdup_printf ("Restore it with an abdeploy release that knows %s %s", k->noun, found);
    case AB_FORMAT_LAYOUT:
    case AB_FORMAT_STATE:
    default:
      return g_strdup_printf ("Install an abdeploy release that knows %s %s, or restore the copy "
                              "of layout %" G_GINT64_FORMAT " that the newer abdeploy kept in %s/ "
                              "(see abdeploy-layout(7))", k->noun, found, k->current, copy);
    }
}

void
ab_format_set_unknown (GError **error, AbFormatKind kind, const char *what, const char *found)
{
  const KindInfo *k = &kinds[kind];
  guint64 v = 0;
  gboolean newer = g_ascii_string_to_unsigned (found, 10, 0, G_MAXINT64, &v, NULL)
                   && (gint64) v > k->current;
  g_autofree char *readable = readable_versions (k);
  g_autofree char *remedy = advice (kind, k, found, newer);
  g_set_error (error, AB_FORMAT_ERROR, AB_FORMAT_ERROR_UNKNOWN,
               "%s has %s %s, but this abdeploy (%s) reads %s. %s",
               what, k->noun, found, PACKAGE_VERSION, readable, remedy);
}

gboolean
ab_format_check (AbFormatKind kind, const char *what, gint64 version, GError **error)
{
  if (ab_format_is_readable (kind, version))
    return TRUE;
  g_autofree char *found = g_strdup_printf ("%" G_GINT64_FORMAT, version);
  ab_format_set_unknown (error, kind, what, found);
  return FALSE;
}

gboolean
ab_format_check_state (const char *what, JsonObject *o, gint64 *out_format, GError **error)
{
  JsonNode *n = o ? json_object_get_member (o, "format") : NULL;
  if (n == NULL)
    {
      g_autofree char *readable = readable_versions (&kinds[AB_FORMAT_STATE]);
      g_set_error (error, AB_FORMAT_ERROR, AB_FORMAT_ERROR_MISSING,
                   "%s has no \"format\" member; this abdeploy (%s) reads %s and does not guess "
                   "which one a file is. Restore the file from a backup (abdeploy restore)",
                   what, PACKAGE_VERSION, readable);
      return FALSE;
    }
  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_INT64)
    {
      g_autofree char *text = json_to_string (n, FALSE);
      ab_format_set_unknown (error, AB_FORMAT_STATE, what, text);
      return FALSE;
    }
  gint64 format = json_node_get_int (n);
  if (!ab_format_check (AB_FORMAT_STATE, what, format, error))
    return FALSE;
  if (out_format)
    *out_format = format;
  return TRUE;
}

gboolean
ab_format_read_state_at (int state_dfd, const char *name, JsonNode **out, gint64 *out_format,
                         GError **error)
{
  *out = NULL;
  g_autofree char *what = g_strconcat ("abdeploy/state/", name, NULL);
  g_autoptr(JsonNode) root = NULL;
  if (!ab_json_read_at (state_dfd, name, &root, error))
    return FALSE;
  if (root == NULL)
    return TRUE;
  if (!JSON_NODE_HOLDS_OBJECT (root))
    {
      g_set_error (error, AB_FORMAT_ERROR, AB_FORMAT_ERROR_INVALID,
                   "%s is not a JSON object; restore it from a backup (abdeploy restore)", what);
      return FALSE;
    }
  if (!ab_format_check_state (what, json_node_get_object (root), out_format, error))
    return FALSE;
  *out = g_steal_pointer (&root);
  return TRUE;
}

gboolean
ab_format_error_is_damage (const GError *error)
{
  return error != NULL
         && (g_error_matches (error, AB_FORMAT_ERROR, AB_FORMAT_ERROR_INVALID)
             || g_error_matches (error, AB_FORMAT_ERROR, AB_FORMAT_ERROR_MISSING)
             || error->domain == JSON_PARSER_ERROR);
}

void
ab_format_warn (AbEventSink *events, const char *format, ...)
{
  va_list args;
  va_start (args, format);
  ab_event_warning_tolerated (events, format, args);
  va_end (args);
}

gboolean
ab_format_read_state_tolerant_at (int state_dfd, const char *name, const char *consequence,
                                  AbEventSink *events, JsonNode **out, GError **error)
{
  g_autoptr(GError) local = NULL;
  if (ab_format_read_state_at (state_dfd, name, out, NULL, &local))
    return TRUE;
  if (!ab_format_error_is_damage (local))
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  ab_format_warn (events, "abdeploy/state/%s is damaged (%s); %s", name, local->message,
                  consequence);
  return TRUE;
}
