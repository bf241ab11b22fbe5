#include "config.h"
#include "ab-history.h"
#include "ab-format.h"
#include "ab-json.h"
#include "ab-fsutil.h"
#include "ab-util.h"

#include <string.h>

G_DEFINE_QUARK (ab-history-error-quark, ab_history_error)

#define HISTORY_FILE "history.json"
#define LAST_ROLLBACK_FILE "last-rollback.json"
#define HISTORY_DAMAGED_FILE "history.json.damaged"

JsonBuilder *
ab_history_event_begin (const char *type)
{
  JsonBuilder *b = json_builder_new ();
  g_autofree char *now = ab_now_iso8601 ();
  json_builder_begin_object (b);
  ab_json_add_string (b, "type", type);
  ab_json_add_string (b, "at", now);
  return b;
}

/* The events array of the history file (oldest first); empty when none.
 * A damaged file (not JSON, no "events" array...) is an error with
 * ab_format_error_is_damage() TRUE. */
static JsonArray *
load_events (int state_dfd, GError **error)
{
  g_autoptr(JsonNode) root = NULL;
  if (!ab_format_read_state_at (state_dfd, HISTORY_FILE, &root, NULL, error))
    return NULL;
  if (root == NULL)
    return json_array_new ();
  JsonNode *events = json_object_get_member (json_node_get_object (root), "events");
  if (events == NULL || !JSON_NODE_HOLDS_ARRAY (events))
    {
      g_set_error (error, AB_FORMAT_ERROR, AB_FORMAT_ERROR_INVALID,
                   "abdeploy/state/" HISTORY_FILE " has no \"events\" array");
      return NULL;
    }
  return json_array_ref (json_node_get_array (events));
}

/* The events to append to. A damaged history never blocks the command
 * that appends (a rollback, a mark-good...): it is kept as
 * history.json.damaged (replacing an older one) and a new history starts. */
static JsonArray *
load_events_to_append (int state_dfd, AbEventSink *sink, GError **error)
{
  g_autoptr(GError) local = NULL;
  JsonArray *events = load_events (state_dfd, &local);
  if (events != NULL)
    return events;
  if (!ab_format_error_is_damage (local))
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return NULL;
    }
  if (!ab_fs_rename_at (state_dfd, HISTORY_FILE, HISTORY_DAMAGED_FILE, error)
      || !ab_fs_fsync_dir_at (state_dfd, ".", error))
    return NULL;
  ab_format_warn (sink, "abdeploy/state/" HISTORY_FILE " is damaged (%s); it was kept as "
                  "abdeploy/state/" HISTORY_DAMAGED_FILE " and a new history starts",
                  local->message);
  return json_array_new ();
}

/* The text of history.json with EVENT (ended here) appended. */
static char *
history_with (int state_dfd, gint64 format, AbEventSink *sink, JsonBuilder *event,
              GError **error)
{
  json_builder_end_object (event);
  g_autoptr(JsonArray) events = load_events_to_append (state_dfd, sink, error);
  if (events == NULL)
    return NULL;
  g_autoptr(JsonArray) kept = json_array_new ();
  guint n = json_array_get_length (events);
  guint first = n >= AB_HISTORY_MAX_EVENTS ? n - AB_HISTORY_MAX_EVENTS + 1 : 0;
  for (guint i = first; i < n; i++)
    json_array_add_element (kept, json_node_copy (json_array_get_element (events, i)));
  json_array_add_element (kept, json_builder_get_root (event));
  g_autoptr(JsonNode) root = json_node_new (JSON_NODE_OBJECT);
  g_autoptr(JsonObject) o = json_object_new ();
  json_object_set_int_member (o, "format", format);
  json_object_set_array_member (o, "events", g_steal_pointer (&kept));
  json_node_set_object (root, o);
  return ab_json_to_text (root);
}

gboolean
ab_history_append (int state_dfd, gint64 format, AbEventSink *sink, JsonBuilder *event,
                   GError **error)
{
  return ab_history_append_with (state_dfd, format, sink, event, NULL, NULL, error);
}

gboolean
ab_history_append_with (int state_dfd, gint64 format, AbEventSink *sink, JsonBuilder *event,
                        const char *name, const char *text, GError **error)
{
  g_autofree char *history = history_with (state_dfd, format, sink, event, error);
  if (history == NULL)
    return FALSE;
  AbFsWrite files[] = {
    { HISTORY_FILE, history, strlen (history), 0644 },
    { name, text, text ? strlen (text) : 0, 0644 },
  };
  /* NAME first: the state it records is what the history event reports. */
  if (name == NULL)
    return ab_fs_replace_all_at (state_dfd, files, 1, error);
  AbFsWrite ordered[] = { files[1], files[0] };
  return ab_fs_replace_all_at (state_dfd, ordered, 2, error);
}

JsonArray *
ab_history_load (int state_dfd, AbEventSink *sink, GError **error)
{
  g_autoptr(GError) local = NULL;
  g_autoptr(JsonArray) events = load_events (state_dfd, &local);
  if (events == NULL && !ab_format_error_is_damage (local))
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return NULL;
    }
  if (events == NULL)
    {
      ab_format_warn (sink, "abdeploy/state/" HISTORY_FILE " is damaged (%s); no history is shown. "
                      "The next event recorded starts a new history and keeps the damaged "
                      "file as abdeploy/state/" HISTORY_DAMAGED_FILE, local->message);
      events = json_array_new ();
    }
  JsonArray *newest_first = json_array_new ();
  for (guint i = json_array_get_length (events); i > 0; i--)
    json_array_add_element (newest_first, json_node_copy (json_array_get_element (events, i - 1)));
  return newest_first;
}

gboolean
ab_history_check_readable (int state_dfd, GError **error)
{
  g_autoptr(JsonArray) events = load_events (state_dfd, error);
  g_autoptr(JsonNode) last = NULL;
  return events != NULL
         && ab_format_read_state_at (state_dfd, LAST_ROLLBACK_FILE, &last, NULL, error);
}

static void
add_rollback_members (JsonBuilder *b, const AbRollbackInfo *info)
{
  ab_json_add_string (b, "kind", info->kind);
  ab_json_add_string (b, "from_slot", info->from_slot);
  ab_json_add_string (b, "to_slot", info->to_slot);
  ab_json_add_string (b, "from_version", info->from_version);
  ab_json_add_string (b, "to_version", info->to_version);
  ab_json_add_string (b, "from_commit", info->from_commit);
  ab_json_add_string (b, "to_commit", info->to_commit);
  ab_json_add_string (b, "reason", info->reason);
}

gboolean
ab_history_record_rollback (int state_dfd, gint64 format, AbEventSink *sink,
                            const AbRollbackInfo *info, GError **error)
{
  g_autoptr(JsonBuilder) last = ab_history_event_begin ("rollback");
  add_rollback_members (last, info);
  json_builder_set_member_name (last, "format");
  json_builder_add_int_value (last, format);
  json_builder_end_object (last);
  g_autoptr(JsonNode) node = json_builder_get_root (last);
  g_autofree char *text = ab_json_to_text (node);
  g_autoptr(JsonBuilder) event = ab_history_event_begin ("rollback");
  add_rollback_members (event, info);
  return ab_history_append_with (state_dfd, format, sink, event, LAST_ROLLBACK_FILE, text,
                                 error);
}

gboolean
ab_history_load_last_rollback (int state_dfd, AbEventSink *sink, JsonNode **out,
                               GError **error)
{
  return ab_format_read_state_tolerant_at (state_dfd, LAST_ROLLBACK_FILE,
                                           "the last rollback is not known; the next rollback "
                                           "replaces the file", sink, out, error);
}

static gboolean
read_optional (int state_dfd, const char *name, char **out, gsize *out_len, GError **error)
{
  g_autoptr(GError) local = NULL;
  *out = NULL;
  *out_len = 0;
  if (ab_fs_read_at (state_dfd, name, out, out_len, &local))
    return TRUE;
  if (g_error_matches (local, AB_FS_ERROR, AB_FS_ERROR_NOT_FOUND))
    return TRUE;
  g_propagate_error (error, g_steal_pointer (&local));
  return FALSE;
}

gboolean
ab_history_keep (int state_dfd, AbHistoryKept *out, GError **error)
{
  return read_optional (state_dfd, LAST_ROLLBACK_FILE, &out->last, &out->last_len, error)
         && read_optional (state_dfd, HISTORY_FILE, &out->history, &out->history_len, error);
}

void
ab_history_put_back (int state_dfd, const AbHistoryKept *kept)
{
  if (kept->last == NULL)
    AB_IGNORE_RESULT (ab_fs_unlink_durable_at (state_dfd, LAST_ROLLBACK_FILE, NULL));
  AbFsWrite files[] = {
    { HISTORY_FILE, kept->history, kept->history_len, 0644 },
    { LAST_ROLLBACK_FILE, kept->last, kept->last_len, 0644 },
  };
  gboolean done = kept->history == NULL
                  ? ab_fs_unlink_durable_at (state_dfd, HISTORY_FILE, NULL)
                  : ab_fs_replace_all_at (state_dfd, files, kept->last ? 2 : 1, NULL);
  (void) done; /* best effort: the caller reports the error that brought it here */
}

void
ab_history_kept_clear (AbHistoryKept *kept)
{
  g_clear_pointer (&kept->last, g_free);
  g_clear_pointer (&kept->history, g_free);
}
