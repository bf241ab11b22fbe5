#include "config.h"
#include "ab-slots.h"
#include "ab-format.h"
#include "ab-fsutil.h"
#include "ab-json.h"

#include <json-glib/json-glib.h>
#include <string.h>

G_DEFINE_QUARK (ab-slots-error-quark, ab_slots_error)

void
ab_slot_record_free (AbSlotRecord *rec)
{
  if (rec == NULL)
    return;
  g_free (rec->commit);
  g_free (rec->version);
  g_free (rec->deployed_at);
  g_free (rec->activated_at);
  g_free (rec->origin);
  g_free (rec->ref);
  g_free (rec);
}

char *
ab_slot_record_to_json (const AbSlotRecord *rec, gint64 format)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "format");
  json_builder_add_int_value (b, format);
  ab_json_add_string (b, "commit", rec->commit);
  ab_json_add_string (b, "version", rec->version);
  ab_json_add_string (b, "deployed_at", rec->deployed_at);
  ab_json_add_string (b, "activated_at", rec->activated_at);
  ab_json_add_string (b, "origin", rec->origin);
  ab_json_add_string (b, "ref", rec->ref);
  json_builder_end_object (b);
  g_autoptr(JsonNode) root = json_builder_get_root (b);
  return ab_json_to_text (root);
}

static char *
dup_member (JsonObject *o, const char *key)
{
  JsonNode *n = json_object_get_member (o, key);
  if (n == NULL || JSON_NODE_HOLDS_NULL (n) || json_node_get_value_type (n) != G_TYPE_STRING)
    return NULL;
  return g_strdup (json_node_get_string (n));
}

/* The record in O, whose format was checked. */
static AbSlotRecord *
record_from_object (JsonObject *o, GError **error)
{
  g_autoptr(AbSlotRecord) rec = g_new0 (AbSlotRecord, 1);
  rec->commit = dup_member (o, "commit");
  rec->version = dup_member (o, "version");
  rec->deployed_at = dup_member (o, "deployed_at");
  rec->activated_at = dup_member (o, "activated_at");
  rec->origin = dup_member (o, "origin");
  rec->ref = dup_member (o, "ref");
  if (rec->commit == NULL)
    {
      g_set_error (error, AB_SLOTS_ERROR, AB_SLOTS_ERROR_FORMAT, "slot record has no commit");
      return NULL;
    }
  return g_steal_pointer (&rec);
}

AbSlotRecord *
ab_slot_record_from_json (const char *json, GError **error)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  if (!json_parser_load_from_data (parser, json, -1, error))
    return NULL;
  JsonNode *root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    {
      g_set_error (error, AB_SLOTS_ERROR, AB_SLOTS_ERROR_FORMAT, "not a JSON object");
      return NULL;
    }
  JsonObject *o = json_node_get_object (root);
  if (!ab_format_check_state ("The slot record", o, NULL, error))
    return NULL;
  return record_from_object (o, error);
}

char *
ab_slot_record_file (AbSlot slot)
{
  return g_strdup_printf ("slot-%s.json", ab_slot_name (slot));
}

gboolean
ab_slot_record_load (int state_dfd, AbSlot slot, AbSlotRecord **out, GError **error)
{
  g_autofree char *name = ab_slot_record_file (slot);
  g_autoptr(JsonNode) root = NULL;
  *out = NULL;
  if (!ab_format_read_state_at (state_dfd, name, &root, NULL, error))
    return FALSE;
  if (root == NULL)
    return TRUE;
  *out = record_from_object (json_node_get_object (root), error);
  if (*out == NULL)
    {
      g_prefix_error (error, "Reading state file abdeploy/state/%s: ", name);
      return FALSE;
    }
  return TRUE;
}

gboolean
ab_slot_record_save (int state_dfd, gint64 format, AbSlot slot, const AbSlotRecord *rec,
                     GError **error)
{
  g_autofree char *name = ab_slot_record_file (slot);
  g_autofree char *json = ab_slot_record_to_json (rec, format);
  return ab_fs_replace_at (state_dfd, name, json, strlen (json), 0644, error);
}

gboolean
ab_slot_record_remove (int state_dfd, AbSlot slot, GError **error)
{
  g_autofree char *name = ab_slot_record_file (slot);
  return ab_fs_unlink_durable_at (state_dfd, name, error);
}
