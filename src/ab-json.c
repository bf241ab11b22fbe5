#include "config.h"
#include "ab-json.h"
#include "ab-fsutil.h"

#include <string.h>

#define REPLACEMENT "\xef\xbf\xbd" /* U+FFFD */

static gboolean
is_unsafe_char (gunichar c)
{
  if (c == '\t' || c == '\n' || c == '\r')
    return FALSE;
  return c < 0x20 || (c >= 0x7f && c <= 0x9f) || c == 0x2028 || c == 0x2029;
}

static gboolean
is_continuation (guchar byte)
{
  return (byte & 0xc0) == 0x80;
}

/* [*start, *end) of DATA[0, LEN) holding at most MAX bytes (0: all), the
 * end kept when KEEP_END, moved off a character that the cut would split. */
static void
raw_window (const char *data, gsize len, gsize max, gboolean keep_end, gsize *start, gsize *end)
{
  *start = 0;
  *end = len;
  if (max == 0 || len <= max)
    return;
  if (keep_end)
    {
      *start = len - max;
      for (int i = 0; i < 3 && *start < len && is_continuation ((guchar) data[*start]); i++)
        (*start)++;
      return;
    }
  *end = max;
  for (int i = 0; i < 3 && *end > 0 && is_continuation ((guchar) data[*end]); i++)
    (*end)--;
}

/* Appends DATA[0, LEN) to OUT, each invalid byte and unsafe character as U+FFFD. */
static void
append_clean (GString *out, const char *data, gsize len)
{
  const char *p = data, *limit = data + len;
  while (p < limit)
    {
      const char *valid_end = NULL;
      (void) g_utf8_validate_len (p, (gsize) (limit - p), &valid_end);
      for (const char *c = p; c < valid_end; c = g_utf8_next_char (c))
        {
          if (is_unsafe_char (g_utf8_get_char (c)))
            g_string_append (out, REPLACEMENT);
          else
            g_string_append_len (out, c, g_utf8_next_char (c) - c);
        }
      p = valid_end;
      if (p < limit)
        {
          g_string_append (out, REPLACEMENT); /* an invalid byte, or NUL */
          p++;
        }
    }
}

/* Cuts the valid UTF-8 in OUT to at most MAX bytes on a character boundary. */
static void
cut_clean (GString *out, gsize max, gboolean keep_end)
{
  if (max == 0 || out->len <= max)
    return;
  if (!keep_end)
    {
      gsize end = max;
      while (end > 0 && is_continuation ((guchar) out->str[end]))
        end--;
      g_string_truncate (out, end);
      return;
    }
  gsize start = out->len - max;
  while (start < out->len && is_continuation ((guchar) out->str[start]))
    start++;
  g_string_erase (out, 0, (gssize) start);
}

char *
ab_json_sanitize (const char *data, gssize len, gsize max_bytes, gboolean keep_end)
{
  if (data == NULL)
    return NULL;
  gsize n = len < 0 ? strlen (data) : (gsize) len;
  gsize start = 0, end = 0;
  raw_window (data, n, max_bytes, keep_end, &start, &end);
  GString *out = g_string_sized_new (end - start + 1);
  append_clean (out, data + start, end - start);
  cut_clean (out, max_bytes, keep_end);
  return g_string_free (out, FALSE);
}

gboolean
ab_json_text_is_clean (const char *s)
{
  if (!g_utf8_validate (s, -1, NULL))
    return FALSE;
  for (const char *c = s; *c; c = g_utf8_next_char (c))
    if (is_unsafe_char (g_utf8_get_char (c)))
      return FALSE;
  return TRUE;
}

static void sanitize_object (JsonObject *o);

void
ab_json_sanitize_node (JsonNode *node)
{
  if (node == NULL)
    return;
  switch (JSON_NODE_TYPE (node))
    {
    case JSON_NODE_OBJECT:
      sanitize_object (json_node_get_object (node));
      break;
    case JSON_NODE_ARRAY:
      {
        JsonArray *a = json_node_get_array (node);
        for (guint i = 0; i < json_array_get_length (a); i++)
          ab_json_sanitize_node (json_array_get_element (a, i));
        break;
      }
    case JSON_NODE_VALUE:
      if (json_node_get_value_type (node) == G_TYPE_STRING
          && !ab_json_text_is_clean (json_node_get_string (node)))
        {
          g_autofree char *clean = ab_json_sanitize (json_node_get_string (node), -1, 0, FALSE);
          json_node_set_string (node, clean);
        }
      break;
    case JSON_NODE_NULL:
    default:
      break;
    }
}

/* Member values in place; a member whose name is not clean is renamed
 * (it moves to the end of the object). The names are copied first: a
 * renamed member may replace another one. */
static void
sanitize_object (JsonObject *o)
{
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  GList *list = json_object_get_members (o);
  for (GList *l = list; l != NULL; l = l->next)
    g_ptr_array_add (names, g_strdup (l->data));
  g_list_free (list);
  for (guint i = 0; i < names->len; i++)
    {
      const char *name = names->pdata[i];
      JsonNode *member = json_object_get_member (o, name);
      if (member == NULL)
        continue;
      ab_json_sanitize_node (member);
      if (ab_json_text_is_clean (name))
        continue;
      g_autofree char *clean = ab_json_sanitize (name, -1, 0, FALSE);
      JsonNode *value = json_node_copy (member);
      json_object_remove_member (o, name);
      json_object_set_member (o, clean, value);
    }
}

void
ab_json_add_string (JsonBuilder *b, const char *key, const char *value)
{
  json_builder_set_member_name (b, key);
  if (value == NULL)
    json_builder_add_null_value (b);
  else if (ab_json_text_is_clean (value))
    json_builder_add_string_value (b, value);
  else
    {
      g_autofree char *clean = ab_json_sanitize (value, -1, 0, FALSE);
      json_builder_add_string_value (b, clean);
    }
}

void
ab_json_add_int (JsonBuilder *b, const char *key, gint64 value)
{
  json_builder_set_member_name (b, key);
  json_builder_add_int_value (b, value);
}

void
ab_json_add_int_or_null (JsonBuilder *b, const char *key, gboolean known, gint64 value)
{
  json_builder_set_member_name (b, key);
  if (known)
    json_builder_add_int_value (b, value);
  else
    json_builder_add_null_value (b);
}

void
ab_json_add_boolean (JsonBuilder *b, const char *key, gboolean value)
{
  json_builder_set_member_name (b, key);
  json_builder_add_boolean_value (b, value);
}

gboolean
ab_json_read_at (int dfd, const char *name, JsonNode **out, GError **error)
{
  *out = NULL;
  g_autofree char *data = NULL;
  g_autoptr(GError) local = NULL;
  if (!ab_fs_read_at (dfd, name, &data, NULL, &local))
    {
      if (g_error_matches (local, AB_FS_ERROR, AB_FS_ERROR_NOT_FOUND))
        return TRUE;
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  g_autoptr(JsonParser) parser = json_parser_new ();
  if (!json_parser_load_from_data (parser, data, -1, error))
    {
      g_prefix_error (error, "Reading state file %s: ", name);
      return FALSE;
    }
  /* An empty (or blank) file parses to no root at all. */
  JsonNode *root = json_parser_get_root (parser);
  if (root == NULL)
    {
      g_set_error (error, JSON_PARSER_ERROR, JSON_PARSER_ERROR_PARSE,
                   "Reading state file %s: the file is empty", name);
      return FALSE;
    }
  *out = json_node_copy (root);
  return TRUE;
}

char *
ab_json_to_text (JsonNode *node)
{
  ab_json_sanitize_node (node);
  g_autoptr(JsonGenerator) gen = json_generator_new ();
  json_generator_set_root (gen, node);
  json_generator_set_pretty (gen, TRUE);
  g_autofree char *text = json_generator_to_data (gen, NULL);
  return g_strconcat (text, "\n", NULL);
}

gboolean
ab_json_write_at (int dfd, const char *name, JsonNode *node, GError **error)
{
  g_autofree char *line = ab_json_to_text (node);
  return ab_fs_replace_at (dfd, name, line, strlen (line), 0644, error);
}

gboolean
ab_json_write_builder_at (int dfd, const char *name, JsonBuilder *b, GError **error)
{
  json_builder_end_object (b);
  g_autoptr(JsonNode) root = json_builder_get_root (b);
  return ab_json_write_at (dfd, name, root, error);
}

/* The member KEY of O when it is a value of TYPE, else NULL. */
static JsonNode *
typed_value (JsonObject *o, const char *key, GType type)
{
  JsonNode *n = o ? json_object_get_member (o, key) : NULL;
  if (n == NULL || !JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != type)
    return NULL;
  return n;
}

const char *
ab_json_get_string (JsonObject *o, const char *key, const char *default_value)
{
  JsonNode *n = typed_value (o, key, G_TYPE_STRING);
  return n ? json_node_get_string (n) : default_value;
}

gint64
ab_json_get_int (JsonObject *o, const char *key, gint64 default_value)
{
  JsonNode *n = typed_value (o, key, G_TYPE_INT64);
  return n ? json_node_get_int (n) : default_value;
}

gboolean
ab_json_get_boolean (JsonObject *o, const char *key, gboolean default_value)
{
  JsonNode *n = typed_value (o, key, G_TYPE_BOOLEAN);
  return n ? json_node_get_boolean (n) : default_value;
}

JsonArray *
ab_json_get_array (JsonObject *o, const char *key)
{
  JsonNode *n = o ? json_object_get_member (o, key) : NULL;
  return n && JSON_NODE_HOLDS_ARRAY (n) ? json_node_get_array (n) : NULL;
}

JsonObject *
ab_json_get_object (JsonObject *o, const char *key)
{
  JsonNode *n = o ? json_object_get_member (o, key) : NULL;
  return n && JSON_NODE_HOLDS_OBJECT (n) ? json_node_get_object (n) : NULL;
}

const char *
ab_json_array_get_string (JsonArray *a, guint i, const char *default_value)
{
  JsonNode *n = a && i < json_array_get_length (a) ? json_array_get_element (a, i) : NULL;
  if (n == NULL || !JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_STRING)
    return default_value;
  return json_node_get_string (n);
}

JsonObject *
ab_json_array_get_object (JsonArray *a, guint i)
{
  JsonNode *n = a && i < json_array_get_length (a) ? json_array_get_element (a, i) : NULL;
  return n && JSON_NODE_HOLDS_OBJECT (n) ? json_node_get_object (n) : NULL;
}
