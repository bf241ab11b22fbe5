/* ab-history: events appended and read back (newest first), the cap of
 * AB_HISTORY_MAX_EVENTS, a damaged history kept aside, the last rollback,
 * the all-or-nothing pair write and keep/put-back, in a real state
 * directory. */
#include "config.h"
#include <string.h>
#include "ab-format.h"
#include "ab-history.h"
#include "ab-test-fixture.h"

/* Where the history reports damage (NULL: nowhere), as a sysroot's sink. */
static AbEventSink *sink;

static void
append (TmpDir *t, const char *type, const char *slot)
{
  g_autoptr(JsonBuilder) b = ab_history_event_begin (type);
  ab_json_add_string (b, "slot", slot);
  g_autoptr(GError) error = NULL;
  g_assert_true (ab_history_append (t->dfd, AB_STATE_FORMAT, sink, b, &error));
  g_assert_no_error (error);
}

static JsonArray *
load (TmpDir *t)
{
  g_autoptr(GError) error = NULL;
  JsonArray *events = ab_history_load (t->dfd, sink, &error);
  g_assert_no_error (error);
  g_assert_nonnull (events);
  return events;
}

static const char *
member (JsonArray *events, guint i, const char *name)
{
  return json_object_get_string_member (json_array_get_object_element (events, i), name);
}

static void
collect_warning (const AbEvent *ev, gpointer user_data)
{
  g_assert_cmpint (ev->kind, ==, AB_EVENT_WARNING);
  g_assert_true (ev->tolerated);
  g_ptr_array_add (user_data, g_strdup (ev->message));
}

static void
test_append_and_load (TmpDir *t, gconstpointer data)
{
  g_autoptr(JsonArray) none = load (t);
  g_assert_cmpuint (json_array_get_length (none), ==, 0);
  append (t, "deploy", "a");
  append (t, "activate", "b");
  g_autoptr(JsonArray) events = load (t);
  g_assert_cmpuint (json_array_get_length (events), ==, 2);
  g_assert_cmpstr (member (events, 0, "type"), ==, "activate"); /* newest first */
  g_assert_cmpstr (member (events, 0, "slot"), ==, "b");
  g_assert_cmpstr (member (events, 1, "type"), ==, "deploy");
  g_autoptr(GDateTime) at = g_date_time_new_from_iso8601 (member (events, 1, "at"), NULL);
  g_assert_nonnull (at);
  /* on disk: oldest first, with the format */
  g_autofree char *path = g_build_filename (t->path, "history.json", NULL);
  g_autofree char *text = NULL;
  g_assert_true (g_file_get_contents (path, &text, NULL, NULL));
  const char *deploy = strstr (text, "\"deploy\""), *activate = strstr (text, "\"activate\"");
  g_assert_true (deploy != NULL && activate != NULL && deploy < activate);
  g_assert_nonnull (strstr (text, "\"format\""));
  g_autoptr(GError) error = NULL;
  g_assert_true (ab_history_check_readable (t->dfd, &error));
  g_assert_no_error (error);
}

/* The oldest events go; the newest AB_HISTORY_MAX_EVENTS stay. */
static void
test_cap (TmpDir *t, gconstpointer data)
{
  g_autoptr(GString) full = g_string_new ("{\"format\":2,\"events\":[");
  for (guint i = 0; i < AB_HISTORY_MAX_EVENTS; i++)
    g_string_append_printf (full, "%s{\"type\":\"mark-good\",\"at\":\"2026-01-01T00:00:00Z\","
                            "\"slot\":\"%u\"}", i ? "," : "", i);
  g_string_append (full, "]}\n");
  write_file_at (t->dfd, "history.json", full->str);
  append (t, "mark-bad", "new1");
  append (t, "mark-bad", "new2");
  g_autoptr(JsonArray) events = load (t);
  g_assert_cmpuint (json_array_get_length (events), ==, AB_HISTORY_MAX_EVENTS);
  g_assert_cmpstr (member (events, 0, "slot"), ==, "new2");
  g_assert_cmpstr (member (events, 1, "slot"), ==, "new1");
  g_assert_cmpstr (member (events, 2, "slot"), ==, "999");
  g_assert_cmpstr (member (events, AB_HISTORY_MAX_EVENTS - 1, "slot"), ==, "2");
}

/* A damaged history is shown as empty with a warning, refused by the
 * strict check, and kept as history.json.damaged by the next append,
 * which starts a new history. */
static void
test_damaged (TmpDir *t, gconstpointer data)
{
  const char *damaged = "{\"format\":2,\"events\":[{\"type\":";
  write_file_at (t->dfd, "history.json", damaged);
  g_autoptr(GPtrArray) warnings = g_ptr_array_new_with_free_func (g_free);
  sink = ab_event_sink_new (collect_warning, warnings);

  g_autoptr(JsonArray) shown = load (t);
  g_assert_cmpuint (json_array_get_length (shown), ==, 0);
  g_assert_cmpuint (warnings->len, ==, 1);
  g_assert_nonnull (strstr (warnings->pdata[0], "history.json is damaged"));
  g_autoptr(GError) error = NULL;
  g_assert_false (ab_history_check_readable (t->dfd, &error));
  g_assert_true (ab_format_error_is_damage (error));

  append (t, "rollback", "a");
  g_clear_pointer (&sink, ab_event_sink_free);
  g_assert_cmpuint (warnings->len, ==, 2);
  g_assert_nonnull (strstr (warnings->pdata[1], "history.json.damaged"));
  g_autofree char *kept = read_file_at (t->dfd, "history.json.damaged");
  g_assert_cmpstr (kept, ==, damaged);
  g_autoptr(JsonArray) events = load (t);
  g_assert_cmpuint (json_array_get_length (events), ==, 1);
  g_assert_cmpstr (member (events, 0, "type"), ==, "rollback");
}

static void
record_rollback (TmpDir *t, const char *reason)
{
  AbRollbackInfo info = { .from_slot = "b", .to_slot = "a", .from_version = "2.0",
                          .to_version = "1.0", .from_commit = "cb", .to_commit = "ca",
                          .reason = reason, .kind = "health" };
  g_autoptr(GError) error = NULL;
  g_assert_true (ab_history_record_rollback (t->dfd, AB_STATE_FORMAT, NULL, &info, &error));
  g_assert_no_error (error);
}

/* last-rollback.json and the "rollback" event carry the same members. */
static void
test_record_rollback (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) none = NULL;
  g_assert_true (ab_history_load_last_rollback (t->dfd, NULL, &none, &error));
  g_assert_null (none);
  record_rollback (t, "required hook failed");
  g_autoptr(JsonNode) last = NULL;
  g_assert_true (ab_history_load_last_rollback (t->dfd, NULL, &last, &error));
  g_assert_no_error (error);
  JsonObject *o = json_node_get_object (last);
  g_autoptr(JsonArray) events = load (t);
  g_assert_cmpuint (json_array_get_length (events), ==, 1);
  JsonObject *e = json_array_get_object_element (events, 0);
  const char *names[] = { "type", "kind", "from_slot", "to_slot", "from_version", "to_version",
                          "from_commit", "to_commit", "reason" };
  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    g_assert_cmpstr (json_object_get_string_member (o, names[i]), ==,
                     json_object_get_string_member (e, names[i]));
  g_assert_cmpstr (json_object_get_string_member (o, "reason"), ==, "required hook failed");
  g_assert_cmpstr (json_object_get_string_member (o, "type"), ==, "rollback");
}

/* append_with writes NAME and the history together. */
static void
test_append_with (TmpDir *t, gconstpointer data)
{
  g_autoptr(JsonBuilder) b = ab_history_event_begin ("verdict");
  g_autoptr(GError) error = NULL;
  g_assert_true (ab_history_append_with (t->dfd, AB_STATE_FORMAT, NULL, b, "verdict.json",
                                         "{\"v\":1}\n", &error));
  g_assert_no_error (error);
  g_autofree char *text = read_file_at (t->dfd, "verdict.json");
  g_assert_cmpstr (text, ==, "{\"v\":1}\n");
  g_autoptr(JsonArray) events = load (t);
  g_assert_cmpstr (member (events, 0, "type"), ==, "verdict");
}

/* put_back restores the files kept before a rollback was recorded: their
 * old contents, and no file where there was none. */
static void
test_keep_put_back (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  {
    g_auto(AbHistoryKept) kept = { 0 };
    g_assert_true (ab_history_keep (t->dfd, &kept, &error));
    g_assert_null (kept.history);
    g_assert_null (kept.last);
    record_rollback (t, "first");
    ab_history_put_back (t->dfd, &kept);
    g_assert_false (ab_fs_exists_at (t->dfd, "history.json"));
    g_assert_false (ab_fs_exists_at (t->dfd, "last-rollback.json"));
  }
  record_rollback (t, "first");
  g_autofree char *history = read_file_at (t->dfd, "history.json");
  g_autofree char *last = read_file_at (t->dfd, "last-rollback.json");
  g_auto(AbHistoryKept) kept = { 0 };
  g_assert_true (ab_history_keep (t->dfd, &kept, &error));
  record_rollback (t, "second");
  g_autofree char *changed = read_file_at (t->dfd, "last-rollback.json");
  g_assert_nonnull (strstr (changed, "second"));
  ab_history_put_back (t->dfd, &kept);
  g_autofree char *history2 = read_file_at (t->dfd, "history.json");
  g_autofree char *last2 = read_file_at (t->dfd, "last-rollback.json");
  g_assert_cmpstr (history2, ==, history);
  g_assert_cmpstr (last2, ==, last);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  TMPDIR_TEST ("/history/append-and-load", test_append_and_load);
  TMPDIR_TEST ("/history/cap", test_cap);
  TMPDIR_TEST ("/history/damaged", test_damaged);
  TMPDIR_TEST ("/history/record-rollback", test_record_rollback);
  TMPDIR_TEST ("/history/append-with", test_append_with);
  TMPDIR_TEST ("/history/keep-put-back", test_keep_put_back);
  return g_test_run ();
}
