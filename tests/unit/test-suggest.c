/* Unit tests for src/cli/cli-suggest.c: edit distance and "did you mean". */
#include "config.h"
#include "cli-suggest.h"

static const char *const commands[] = { "init", "stage", "activate", "deploy", "rollback",
                                        "status", "history", "update", "resume", "pin",
                                        "version", "verify", "publish", NULL };

static void
test_distance (void)
{
  g_assert_cmpuint (cli_edit_distance ("", ""), ==, 0);
  g_assert_cmpuint (cli_edit_distance ("status", "status"), ==, 0);
  g_assert_cmpuint (cli_edit_distance ("stauts", "status"), ==, 2);
  g_assert_cmpuint (cli_edit_distance ("kitten", "sitting"), ==, 3);
  g_assert_cmpuint (cli_edit_distance ("", "abc"), ==, 3);
  g_assert_cmpuint (cli_edit_distance ("abc", ""), ==, 3);
}

static void
test_suggest (void)
{
  g_assert_cmpstr (cli_suggest ("stauts", commands), ==, "status");
  g_assert_cmpstr (cli_suggest ("statu", commands), ==, "status");
  g_assert_cmpstr (cli_suggest ("rollbak", commands), ==, "rollback");
  g_assert_cmpstr (cli_suggest ("hist", commands), ==, "history");   /* unique prefix */
  g_assert_cmpstr (cli_suggest ("publsh", commands), ==, "publish");
  /* nothing close: no suggestion */
  g_assert_null (cli_suggest ("frobnicate", commands));
  g_assert_null (cli_suggest ("x", commands));
  g_assert_null (cli_suggest ("ve", commands));  /* prefix of two, too short anyway */
  g_assert_null (cli_suggest ("ver", commands)); /* prefix of version and verify */
}

static void
test_did_you_mean (void)
{
  g_autofree char *yes = cli_did_you_mean ("stauts", commands);
  g_autofree char *no = cli_did_you_mean ("frobnicate", commands);
  g_assert_cmpstr (yes, ==, "; did you mean \"status\"?");
  g_assert_cmpstr (no, ==, "");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/suggest/distance", test_distance);
  g_test_add_func ("/suggest/suggest", test_suggest);
  g_test_add_func ("/suggest/did-you-mean", test_did_you_mean);
  return g_test_run ();
}
