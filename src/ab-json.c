#include "config.h"
#include "ab-json.h"
#include "ab-fsutil.h"

#include <string.h>

void
ab_json_add_string (JsonBuilder *b, const char *key, const char *value)
{
  json_builder_set_member_name (b, key);
  if (value)
    json_builder_add_string_value (b, value);
  else
    json_builder_add_null_value (b);
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
  *out = json_node_copy (json_parser_get_root (parser));
  return TRUE;
}

char *
ab_json_to_text (JsonNode *node)
{
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
