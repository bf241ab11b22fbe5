/* ab-json: the sanitizer of external text and the state-file writer. */
#include "config.h"
#include "ab-json.h"
#include "ab-test-fixture.h"

#include <string.h>

#define FFFD "\xef\xbf\xbd"

static void
check (const char *in, gssize len, gsize max, gboolean keep_end, const char *expected)
{
  g_autofree char *out = ab_json_sanitize (in, len, max, keep_end);
  g_assert_cmpstr (out, ==, expected);
  g_assert_true (g_utf8_validate (out, -1, NULL));
  g_assert_true (ab_json_text_is_clean (out));
}

static void
test_sanitize (void)
{
  check ("plain text\twith\r\nlines", -1, 0, FALSE, "plain text\twith\r\nlines");
  check ("a\xff" "b", -1, 0, FALSE, "a" FFFD "b");
  check ("nul:\0:", 6, 0, FALSE, "nul:" FFFD ":");
  check ("esc\x1b[0m del\x7f", -1, 0, FALSE, "esc" FFFD "[0m del" FFFD);
  check ("c1:\xc2\x85 ls:\xe2\x80\xa8", -1, 0, FALSE, "c1:" FFFD " ls:" FFFD);
  check ("surrogate:\xed\xa0\x80", -1, 0, FALSE, "surrogate:" FFFD FFFD FFFD);
  check ("cut:\xe2\x82", -1, 0, FALSE, "cut:" FFFD FFFD);
  g_assert_null (ab_json_sanitize (NULL, -1, 0, FALSE));
  g_assert_false (ab_json_text_is_clean ("a\x01"));
  g_assert_true (ab_json_text_is_clean ("\xc3\xa9t\xc3\xa9"));
}

static void
test_sanitize_cut (void)
{
  /* "é" is two bytes: a cut never splits it. */
  check ("\xc3\xa9\xc3\xa9\xc3\xa9", -1, 3, FALSE, "\xc3\xa9");
  check ("\xc3\xa9\xc3\xa9\xc3\xa9", -1, 3, TRUE, "\xc3\xa9");
  check ("x\xc3\xa9\xc3\xa9", -1, 4, TRUE, "\xc3\xa9\xc3\xa9");
  check ("abcdef", -1, 4, TRUE, "cdef");
  check ("abcdef", -1, 4, FALSE, "abcd");
  /* Replacement characters count against the limit too. */
  check ("\xff\xff\xff", -1, 4, TRUE, FFFD);
}

static void
test_write_sanitizes_tree (void)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "raw");
  json_builder_add_string_value (b, "bad\xfe");
  json_builder_set_member_name (b, "key\xff");
  json_builder_begin_array (b);
  json_builder_add_string_value (b, "ok");
  json_builder_add_string_value (b, "ctl\x02");
  json_builder_end_array (b);
  ab_json_add_string (b, "added", "x\xc3");
  json_builder_end_object (b);
  g_autoptr(JsonNode) root = json_builder_get_root (b);
  g_autofree char *text = ab_json_to_text (root);
  g_assert_true (g_utf8_validate (text, -1, NULL));
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) error = NULL;
  g_assert_true (json_parser_load_from_data (parser, text, -1, &error));
  g_assert_no_error (error);
  JsonObject *o = json_node_get_object (json_parser_get_root (parser));
  g_assert_cmpstr (json_object_get_string_member (o, "raw"), ==, "bad" FFFD);
  g_assert_cmpstr (json_object_get_string_member (o, "added"), ==, "x" FFFD);
  JsonArray *a = json_object_get_array_member (o, "key" FFFD);
  g_assert_nonnull (a);
  g_assert_cmpstr (json_array_get_string_element (a, 1), ==, "ctl" FFFD);
}

/* Members of state files read from disk may hold any type: the typed
 * getters return the default for every other type, without a critical
 * (this suite makes criticals fatal). */
static JsonObject *
parse_object (const char *text)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_assert_true (json_parser_load_from_data (parser, text, -1, NULL));
  return json_object_ref (json_node_get_object (json_parser_get_root (parser)));
}

static void
test_wrong_types (void)
{
  g_autoptr(JsonObject) o = parse_object (
      "{\"s\":[],\"i\":{},\"b\":\"yes\",\"a\":7,\"o\":null,\"d\":2.5,"
      "\"list\":[\"x\",1,{},null]}");
  g_assert_cmpstr (ab_json_get_string (o, "s", "def"), ==, "def");
  g_assert_cmpstr (ab_json_get_string (o, "o", "def"), ==, "def");
  g_assert_cmpint (ab_json_get_int (o, "i", 42), ==, 42);
  g_assert_cmpint (ab_json_get_int (o, "d", 42), ==, 42);
  g_assert_true (ab_json_get_boolean (o, "b", TRUE));
  g_assert_null (ab_json_get_array (o, "a"));
  g_assert_null (ab_json_get_object (o, "s"));
  g_assert_null (ab_json_get_string (NULL, "s", NULL));
  JsonArray *list = ab_json_get_array (o, "list");
  g_assert_nonnull (list);
  g_assert_cmpstr (ab_json_array_get_string (list, 0, "?"), ==, "x");
  for (guint i = 1; i < 5; i++)
    g_assert_cmpstr (ab_json_array_get_string (list, i, "?"), ==, "?");
}

static void
test_right_types (void)
{
  g_autoptr(JsonObject) o = parse_object (
      "{\"s\":\"v\",\"i\":-3,\"b\":false,\"a\":[1],\"o\":{\"k\":1}}");
  g_assert_cmpstr (ab_json_get_string (o, "s", NULL), ==, "v");
  g_assert_cmpint (ab_json_get_int (o, "i", 0), ==, -3);
  g_assert_false (ab_json_get_boolean (o, "b", TRUE));
  g_assert_cmpuint (json_array_get_length (ab_json_get_array (o, "a")), ==, 1);
  g_assert_cmpint (ab_json_get_int (ab_json_get_object (o, "o"), "k", 0), ==, 1);
  g_assert_cmpstr (ab_json_get_string (o, "missing", "def"), ==, "def");
}

/* An empty or blank state file is an error that names it, not a missing
 * file (found by tests/fuzz/fuzz-state: it was a critical). */
static void
test_read_empty (TmpDir *t, gconstpointer data)
{
  const char *texts[] = { "", " \n\t" };
  for (guint i = 0; i < G_N_ELEMENTS (texts); i++)
    {
      write_file_at (t->dfd, "slot-a.json", texts[i]);
      g_autoptr(JsonNode) node = NULL;
      g_autoptr(GError) error = NULL;
      g_assert_false (ab_json_read_at (t->dfd, "slot-a.json", &node, &error));
      g_assert_nonnull (error);
      g_assert_nonnull (strstr (error->message, "slot-a.json"));
      g_assert_null (node);
    }
}

/* The builder helpers write each member as the manifest, state and
 * progress writers need it. */
static void
test_builder_helpers (void)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  ab_json_add_string (b, "s", "a\001b");
  ab_json_add_string (b, "none", NULL);
  ab_json_add_int (b, "n", G_GINT64_CONSTANT (9007199254740991));
  ab_json_add_int_or_null (b, "known", TRUE, 7);
  ab_json_add_int_or_null (b, "unknown", FALSE, 7);
  ab_json_add_boolean (b, "yes", TRUE);
  json_builder_end_object (b);
  g_autoptr(JsonNode) root = json_builder_get_root (b);
  g_autofree char *text = json_to_string (root, FALSE);
  g_assert_cmpstr (text, ==, "{\"s\":\"a\xef\xbf\xbd" "b\",\"none\":null,\"n\":9007199254740991,"
                   "\"known\":7,\"unknown\":null,\"yes\":true}");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/json/sanitize", test_sanitize);
  g_test_add_func ("/json/sanitize-cut", test_sanitize_cut);
  g_test_add_func ("/json/write-sanitizes-tree", test_write_sanitizes_tree);
  g_test_add_func ("/json/wrong-types", test_wrong_types);
  g_test_add_func ("/json/right-types", test_right_types);
  g_test_add_func ("/json/builder-helpers", test_builder_helpers);
  TMPDIR_TEST ("/json/read-empty", test_read_empty);
  return g_test_run ();
}
