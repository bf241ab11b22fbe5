#include "config.h"
#include <string.h>
#include "ab-fetch.h"
#include "ab-test-fixture.h"

static char *
file_url (TmpDir *t, const char *name)
{
  return ab_fetch_url_join (t->path, name);
}

static void
test_url_join (void)
{
  g_autofree char *a = ab_fetch_url_join ("http://127.0.0.1:8000/repo/", "/abdeploy/x.json");
  g_assert_cmpstr (a, ==, "http://127.0.0.1:8000/repo/abdeploy/x.json");
  g_autofree char *b = ab_fetch_url_join ("http://127.0.0.1:8000/repo", "deltas/a/b");
  g_assert_cmpstr (b, ==, "http://127.0.0.1:8000/repo/deltas/a/b");
  g_autofree char *c = ab_fetch_url_join ("/media/usb/repo", "x");
  g_assert_cmpstr (c, ==, "file:///media/usb/repo/x");
}

static void
test_bytes_and_cap (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  write_file_at (t->dfd, "data", "0123456789");
  g_autofree char *url = file_url (t, "data");
  AbFetchOptions opts;
  ab_fetch_options_init (&opts);
  g_autoptr(GBytes) bytes = NULL;
  g_assert_true (ab_fetch_to_bytes (url, &opts, &bytes, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes), "0123456789", 10);
  opts.max_bytes = 5;
  g_autoptr(GBytes) capped = NULL;
  g_assert_false (ab_fetch_to_bytes (url, &opts, &capped, &error));
  g_assert_error (error, AB_FETCH_ERROR, AB_FETCH_ERROR_TOO_BIG);
  g_assert_false (ab_fetch_error_is_retryable (error));
}

static void
test_missing_is_terminal (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *url = file_url (t, "absent");
  AbFetchOptions opts;
  ab_fetch_options_init (&opts);
  opts.backoff_initial_ms = 1;
  g_autoptr(GBytes) bytes = NULL;
  g_assert_false (ab_fetch_to_bytes (url, &opts, &bytes, &error));
  g_assert_error (error, AB_FETCH_ERROR, AB_FETCH_ERROR_NOT_FOUND); /* terminal too */
}

static void
test_file_resume (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  write_file_at (t->dfd, "src", "abcdefghij");
  write_file_at (t->dfd, "dst.part", "abcd");
  g_autofree char *url = file_url (t, "src");
  AbFetchOptions opts;
  ab_fetch_options_init (&opts);
  opts.expected_size = 10;
  g_assert_true (ab_fetch_to_file_at (url, t->dfd, "dst", &opts, &error));
  g_assert_no_error (error);
  g_autofree char *got = read_file_at (t->dfd, "dst");
  g_assert_cmpstr (got, ==, "abcdefghij");
  g_assert_false (ab_fs_exists_at (t->dfd, "dst.part"));
}

static void
test_expected_size_enforced (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  write_file_at (t->dfd, "src", "abcdefghij");
  g_autofree char *url = file_url (t, "src");
  AbFetchOptions opts;
  ab_fetch_options_init (&opts);
  opts.expected_size = 4;
  g_assert_false (ab_fetch_to_file_at (url, t->dfd, "dst", &opts, &error));
  g_assert_error (error, AB_FETCH_ERROR, AB_FETCH_ERROR_TOO_BIG);
  g_assert_false (ab_fs_exists_at (t->dfd, "dst"));
}

static void
test_redact_url (void)
{
  const char *cases[][2] = {
    { "https://user:s3cret@updates.example.com/repo", "https://updates.example.com/repo" },
    /* a token given as the user name alone (issue 11) */
    { "https://ghp_s3cret@updates.example.com/repo", "https://updates.example.com/repo" },
    { "http://u:p@127.0.0.1:8080/r;x?q=1", "http://127.0.0.1:8080/r;x" },
    { "https://updates.example.com/repo?token=s3cret", "https://updates.example.com/repo" },
    { "http://127.0.0.1:8080/a/b", "http://127.0.0.1:8080/a/b" },
    { "/media/usb/repo", "/media/usb/repo" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *got = ab_fetch_redact_url (cases[i][0]);
      g_assert_cmpstr (got, ==, cases[i][1]);
    }
}

/* A total deadline ends a download even when each attempt would go on. */
static void
test_deadline (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  write_file_at (t->dfd, "src", "abcdefghij");
  g_autofree char *url = file_url (t, "src");
  AbFetchOptions opts;
  ab_fetch_options_init (&opts);
  opts.deadline_us = g_get_monotonic_time () - 1;
  opts.deadline_key = "[update] max-pull-time-sec";
  g_autoptr(GBytes) out = NULL;
  g_assert_false (ab_fetch_to_bytes (url, &opts, &out, &error));
  g_assert_error (error, AB_FETCH_ERROR, AB_FETCH_ERROR_TIMEOUT);
  g_assert_nonnull (strstr (error->message, "max-pull-time-sec"));
  g_assert_true (ab_fetch_error_is_retryable (error));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/fetch/url-join", test_url_join);
  g_test_add_func ("/fetch/redact-url", test_redact_url);
  TMPDIR_TEST ("/fetch/deadline", test_deadline);
  TMPDIR_TEST ("/fetch/bytes-and-cap", test_bytes_and_cap);
  TMPDIR_TEST ("/fetch/missing-is-terminal", test_missing_is_terminal);
  TMPDIR_TEST ("/fetch/file-resume", test_file_resume);
  TMPDIR_TEST ("/fetch/expected-size-enforced", test_expected_size_enforced);
  return g_test_run ();
}
