/* ab-json: the sanitizer of external text and the state-file writer. */
#include "config.h"
#include "ab-json.h"

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

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/json/sanitize", test_sanitize);
  g_test_add_func ("/json/sanitize-cut", test_sanitize_cut);
  g_test_add_func ("/json/write-sanitizes-tree", test_write_sanitizes_tree);
  return g_test_run ();
}
