#include "config.h"
#include "ab-format.h"
#include "ab-test-fixture.h"

#include <string.h>

static void
assert_contains (const char *haystack, const char *needle)
{
  if (strstr (haystack, needle) == NULL)
    g_error ("\"%s\" does not contain \"%s\"", haystack, needle);
}

static void
test_versions (void)
{
  g_assert_cmpint (ab_format_current (AB_FORMAT_LAYOUT), ==, 2);
  g_assert_cmpint (ab_format_oldest (AB_FORMAT_LAYOUT), ==, 1);
  for (AbFormatKind k = AB_FORMAT_LAYOUT; k <= AB_FORMAT_BACKUP; k++)
    {
      g_assert_cmpint (ab_format_current (k), ==, 2);
      g_assert_false (ab_format_is_readable (k, 0));
      g_assert_true (ab_format_is_readable (k, 1));
      g_assert_true (ab_format_is_readable (k, 2));
      g_assert_false (ab_format_is_readable (k, 3));
    }
  g_assert_cmpint (ab_format_state_for_layout (1), ==, 1);
  g_assert_cmpint (ab_format_state_for_layout (2), ==, 2);
}

static void
test_newer_state_message (void)
{
  g_autoptr(GError) error = NULL;
  g_assert_false (ab_format_check (AB_FORMAT_STATE, "abdeploy/state/slot-a.json", 3, &error));
  g_assert_error (error, AB_FORMAT_ERROR, AB_FORMAT_ERROR_UNKNOWN);
  assert_contains (error->message, "abdeploy/state/slot-a.json has format 3, but this abdeploy ("
                   PACKAGE_VERSION ") reads formats 1 and 2.");
  assert_contains (error->message, "Install an abdeploy release that knows format 3");
  assert_contains (error->message, "abdeploy/migration/layout-2/");
}

static void
test_newer_layout_message (void)
{
  g_autoptr(GError) error = NULL;
  g_assert_false (ab_format_check (AB_FORMAT_LAYOUT, "abdeploy/version", 7, &error));
  assert_contains (error->message, "abdeploy/version has layout version 7, but this abdeploy ("
                   PACKAGE_VERSION ") reads layout versions 1 and 2.");
  assert_contains (error->message, "knows layout version 7");
}

static void
test_unknown_older_or_garbage (void)
{
  g_autoptr(GError) error = NULL;
  g_assert_false (ab_format_check (AB_FORMAT_STATE, "abdeploy/state/x.json", 0, &error));
  assert_contains (error->message, "has format 0");
  assert_contains (error->message, "No abdeploy release writes it");
  g_clear_error (&error);
  ab_format_set_unknown (&error, AB_FORMAT_LAYOUT, "abdeploy/version", "two");
  assert_contains (error->message, "abdeploy/version has layout version two");
  assert_contains (error->message, "write the layout version of this sysroot (1 or 2)");
  g_clear_error (&error);
  g_assert_false (ab_format_check (AB_FORMAT_CONFIG, "etc/abdeploy/abdeploy.conf", 3, &error));
  assert_contains (error->message, "etc/abdeploy/abdeploy.conf has format 3");
  assert_contains (error->message, "abdeploy.conf(5)");
  g_clear_error (&error);
  g_assert_false (ab_format_check (AB_FORMAT_BACKUP, "The backup b.json", 9, &error));
  assert_contains (error->message, "The backup b.json has format 9, but this abdeploy");
  assert_contains (error->message, "Restore it with an abdeploy release that knows format 9");
}

static JsonObject *
parse_object (const char *text)
{
  g_autoptr(JsonParser) p = json_parser_new ();
  g_assert_true (json_parser_load_from_data (p, text, -1, NULL));
  return json_object_ref (json_node_get_object (json_parser_get_root (p)));
}

static void
test_check_state (void)
{
  static const struct { const char *json; gint64 want; GQuark domain; int code; } cases[] = {
    { "{\"format\": 1}", 1, 0, 0 },
    { "{\"format\": 2, \"x\": 1}", 2, 0, 0 },
    { "{\"x\": 1}", 0, 0, AB_FORMAT_ERROR_MISSING },
    { "{\"format\": \"2\"}", 0, 0, AB_FORMAT_ERROR_UNKNOWN },
    { "{\"format\": 3}", 0, 0, AB_FORMAT_ERROR_UNKNOWN },
    { "{\"format\": null}", 0, 0, AB_FORMAT_ERROR_UNKNOWN },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(JsonObject) o = parse_object (cases[i].json);
      g_autoptr(GError) error = NULL;
      gint64 format = -1;
      gboolean ok = ab_format_check_state ("f.json", o, &format, &error);
      if (cases[i].want)
        {
          g_assert_no_error (error);
          g_assert_true (ok);
          g_assert_cmpint (format, ==, cases[i].want);
        }
      else
        {
          g_assert_false (ok);
          g_assert_error (error, AB_FORMAT_ERROR, cases[i].code);
          assert_contains (error->message, "f.json");
        }
    }
}

static void
test_missing_format_does_not_guess (void)
{
  g_autoptr(JsonObject) o = parse_object ("{\"commit\": \"abc\"}");
  g_autoptr(GError) error = NULL;
  g_assert_false (ab_format_check_state ("abdeploy/state/slot-b.json", o, NULL, &error));
  assert_contains (error->message, "abdeploy/state/slot-b.json has no \"format\" member");
  assert_contains (error->message, "does not guess");
}

static void
test_read_state_at (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) node = NULL;
  gint64 format = 0;
  g_assert_true (ab_format_read_state_at (t->dfd, "none.json", &node, &format, &error));
  g_assert_null (node);
  write_file_at (t->dfd, "ok.json", "{\"format\": 1, \"a\": 2}");
  g_assert_true (ab_format_read_state_at (t->dfd, "ok.json", &node, &format, &error));
  g_assert_no_error (error);
  g_assert_nonnull (node);
  g_assert_cmpint (format, ==, 1);
  g_clear_pointer (&node, json_node_unref);
  write_file_at (t->dfd, "array.json", "[1, 2]");
  g_assert_false (ab_format_read_state_at (t->dfd, "array.json", &node, NULL, &error));
  g_assert_error (error, AB_FORMAT_ERROR, AB_FORMAT_ERROR_INVALID);
  assert_contains (error->message, "abdeploy/state/array.json is not a JSON object");
  g_clear_error (&error);
  write_file_at (t->dfd, "new.json", "{\"format\": 3}");
  g_assert_false (ab_format_read_state_at (t->dfd, "new.json", &node, NULL, &error));
  assert_contains (error->message, "abdeploy/state/new.json has format 3");
  g_assert_null (node);
}

static void
test_read_layout_at (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  gint64 v = -1;
  g_assert_true (ab_format_read_layout_at (t->dfd, &v, &error));
  g_assert_cmpint (v, ==, 0);
  static const struct { const char *text; gint64 want; } cases[] = {
    { "1\n", 1 }, { "2", 2 }, { " 2 \n", 2 }, { "3\n", -1 }, { "0\n", -1 }, { "x\n", -1 }, { "", -1 },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      write_file_at (t->dfd, "abdeploy/version", cases[i].text);
      gboolean ok = ab_format_read_layout_at (t->dfd, &v, &error);
      if (cases[i].want > 0)
        {
          g_assert_no_error (error);
          g_assert_cmpint (v, ==, cases[i].want);
        }
      else
        {
          g_assert_false (ok);
          g_assert_error (error, AB_FORMAT_ERROR, AB_FORMAT_ERROR_UNKNOWN);
          assert_contains (error->message, "abdeploy/version has layout version");
          g_clear_error (&error);
        }
    }
}

/* The format new state files get follows the sysroot's layout (the
 * sysroot keeps it: AbSysroot.state_format, see test-sysroot.c). */
static void
test_state_for_layout (void)
{
  g_assert_cmpint (ab_format_state_for_layout (AB_LAYOUT_PREVIOUS), ==, 1);
  g_assert_cmpint (ab_format_state_for_layout (AB_LAYOUT_VERSION), ==, AB_STATE_FORMAT);
}

static void
collect_warning (const AbEvent *ev, gpointer user_data)
{
  g_assert_cmpint (ev->kind, ==, AB_EVENT_WARNING);
  g_assert_true (ev->tolerated);
  g_ptr_array_add (user_data, g_strdup (ev->message));
}

/* Damage (not JSON, not UTF-8, empty, not an object, no format) is read as
 * missing with a warning; a newer format is still refused. */
static void
test_read_state_tolerant (TmpDir *t, gconstpointer data)
{
  static const char *const damaged[] = { "{\"format\": 2, \"x\": \"\xff\"}", "", "[1]",
                                         "{\"x\": 1}", "{\"format\": 2, " };
  g_autoptr(GPtrArray) warnings = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(AbEventSink) sink = ab_event_sink_new (collect_warning, warnings);
  for (guint i = 0; i < G_N_ELEMENTS (damaged); i++)
    {
      write_file_at (t->dfd, "v.json", damaged[i]);
      g_autoptr(JsonNode) node = NULL;
      g_autoptr(GError) error = NULL;
      g_assert_true (ab_format_read_state_tolerant_at (t->dfd, "v.json", "it is ignored", sink,
                                                       &node, &error));
      g_assert_no_error (error);
      g_assert_null (node);
      g_assert_cmpuint (warnings->len, ==, i + 1);
      g_assert_true (g_str_has_prefix (warnings->pdata[i], "abdeploy/state/v.json is damaged ("));
      g_assert_true (g_str_has_suffix (warnings->pdata[i], "); it is ignored"));
    }
  write_file_at (t->dfd, "v.json", "{\"format\": 3}");
  g_autoptr(JsonNode) node = NULL;
  g_autoptr(GError) error = NULL;
  g_assert_false (ab_format_read_state_tolerant_at (t->dfd, "v.json", "-", sink, &node, &error));
  g_assert_error (error, AB_FORMAT_ERROR, AB_FORMAT_ERROR_UNKNOWN);
  g_assert_false (ab_format_error_is_damage (error));
  g_assert_cmpuint (warnings->len, ==, G_N_ELEMENTS (damaged));
}

static gpointer
warn_in_thread (gpointer data)
{
  ab_format_warn (data, "from the worker");
  return NULL;
}

/* Each sysroot's warnings reach its own sink only, whichever thread reads
 * it (status on the daemon's main thread while an operation runs in a
 * worker); a NULL sink drops them. */
static void
test_warning_sinks (void)
{
  g_autoptr(GPtrArray) worker = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GPtrArray) own = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(AbEventSink) worker_sink = ab_event_sink_new (collect_warning, worker);
  g_autoptr(AbEventSink) own_sink = ab_event_sink_new (collect_warning, own);
  g_thread_join (g_thread_new ("worker", warn_in_thread, worker_sink));
  ab_format_warn (own_sink, "from the main thread");
  ab_format_warn (NULL, "to nobody");
  ab_format_warn (worker_sink, "main thread, the worker's sysroot");
  g_assert_cmpuint (own->len, ==, 1);
  g_assert_cmpstr (own->pdata[0], ==, "from the main thread");
  g_assert_cmpuint (worker->len, ==, 2);
  g_assert_cmpstr (worker->pdata[0], ==, "from the worker");
  g_assert_cmpstr (worker->pdata[1], ==, "main thread, the worker's sysroot");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/format/versions", test_versions);
  g_test_add_func ("/format/newer-state-message", test_newer_state_message);
  g_test_add_func ("/format/newer-layout-message", test_newer_layout_message);
  g_test_add_func ("/format/unknown-older-or-garbage", test_unknown_older_or_garbage);
  g_test_add_func ("/format/check-state", test_check_state);
  g_test_add_func ("/format/missing-format-does-not-guess", test_missing_format_does_not_guess);
  TMPDIR_TEST ("/format/read-state-at", test_read_state_at);
  TMPDIR_TEST ("/format/read-layout-at", test_read_layout_at);
  TMPDIR_TEST ("/format/read-state-tolerant", test_read_state_tolerant);
  g_test_add_func ("/format/state-for-layout", test_state_for_layout);
  g_test_add_func ("/format/warning-sinks", test_warning_sinks);
  return g_test_run ();
}
