/* Unit tests for src/cli/cli-progress.c: the JSON lines and the terminal
 * bar rendered from events, the option checks, the redraw limit. */
#include "config.h"
#include "cli-progress.h"

#include <json-glib/json-glib.h>
#include <string.h>
#include <unistd.h>

typedef struct
{
  int fd;         /* the progress descriptor: a temporary file */
  char *path;
  char *fd_text;
} Fixture;

static gint64 fake_now;

static gint64
fake_clock (void)
{
  return fake_now;
}

static void
setup (Fixture *f, gconstpointer data)
{
  f->fd = g_file_open_tmp ("test-progress-XXXXXX", &f->path, NULL);
  g_assert_cmpint (f->fd, >=, 0);
  f->fd_text = g_strdup_printf ("%d", f->fd);
  fake_now = 1000 * G_USEC_PER_SEC;
}

static void
teardown (Fixture *f, gconstpointer data)
{
  close (f->fd);
  unlink (f->path);
  g_free (f->path);
  g_free (f->fd_text);
}

static char *
written (Fixture *f)
{
  char *text = NULL;
  g_assert_true (g_file_get_contents (f->path, &text, NULL, NULL));
  return text;
}

static CliProgress *
make (Fixture *f, const char *mode)
{
  CliProgressOptions o = { .mode = (char *) mode, .fd = f->fd_text };
  g_autoptr(GError) error = NULL;
  CliProgress *p = cli_progress_new ("stage", &o, &error);
  g_assert_no_error (error);
  cli_progress_set_clock (p, fake_clock);
  cli_progress_set_width (p, 60);
  return p;
}

static JsonObject *
line_object (JsonParser *parser, const char *line)
{
  g_assert_true (json_parser_load_from_data (parser, line, -1, NULL));
  return json_node_get_object (json_parser_get_root (parser));
}

static void
assert_keys (JsonObject *o)
{
  static const char *const keys[] = { "type", "phase", "done", "total", "unit" };
  for (guint i = 0; i < G_N_ELEMENTS (keys); i++)
    g_assert_true (json_object_has_member (o, keys[i]));
}

/* Every event is one line with the five keys; progress lines carry their
 * counts and unit, the others nulls; the result line comes last. */
static void
test_json_lines (Fixture *f, gconstpointer data)
{
  g_autoptr(CliProgress) p = make (f, "json");
  AbEventSink *sink = cli_progress_sink (p);
  ab_event_phase (sink, "download");
  ab_event_progress (sink, AB_PROGRESS_UNIT_BYTES, 10, 100);
  ab_event_progress (sink, AB_PROGRESS_UNIT_BYTES, 10, 100); /* a repeat: dropped */
  ab_event_progress (sink, AB_PROGRESS_UNIT_OBJECTS, 3, AB_PROGRESS_TOTAL_UNKNOWN);
  ab_event_warning (sink, "slow \"server\"");
  cli_progress_print (p, "Staged x into slot b");
  cli_progress_finish (p, NULL);
  g_autofree char *text = written (f);
  g_auto(GStrv) lines = g_strsplit (text, "\n", -1);
  g_assert_cmpuint (g_strv_length (lines), ==, 7); /* six lines and "" after the last \n */
  g_assert_cmpstr (lines[6], ==, "");
  g_autoptr(JsonParser) parser = json_parser_new ();
  for (guint i = 0; i < 6; i++)
    assert_keys (line_object (parser, lines[i]));
  JsonObject *o = line_object (parser, lines[0]);
  g_assert_cmpstr (json_object_get_string_member (o, "type"), ==, "start");
  g_assert_cmpstr (json_object_get_string_member (o, "command"), ==, "stage");
  o = line_object (parser, lines[2]);
  g_assert_cmpstr (json_object_get_string_member (o, "unit"), ==, "bytes");
  g_assert_cmpint (json_object_get_int_member (o, "done"), ==, 10);
  g_assert_cmpint (json_object_get_int_member (o, "total"), ==, 100);
  o = line_object (parser, lines[3]);
  g_assert_true (json_object_get_null_member (o, "total"));
  o = line_object (parser, lines[4]);
  g_assert_cmpstr (json_object_get_string_member (o, "type"), ==, "warning");
  g_assert_cmpstr (json_object_get_string_member (o, "message"), ==, "slow \"server\"");
  g_assert_true (json_object_get_null_member (o, "done"));
  o = line_object (parser, lines[5]);
  g_assert_cmpstr (json_object_get_string_member (o, "result"), ==, "ok");
  g_assert_cmpstr (json_object_get_string_member (o, "phase"), ==, "download");
  g_assert_cmpstr (json_object_get_string_member (o, "message"), ==, "Staged x into slot b");
}

static void
test_json_result_of_failures (Fixture *f, gconstpointer data)
{
  g_autoptr(CliProgress) p = make (f, "json");
  g_autoptr(GError) cancelled = g_error_new (G_IO_ERROR, G_IO_ERROR_CANCELLED, "Pulling: cancelled");
  cli_progress_finish (p, cancelled);
  g_autoptr(CliProgress) q = make (f, "json");
  g_autoptr(GError) failed = g_error_new (G_IO_ERROR, G_IO_ERROR_FAILED, "it broke");
  cli_progress_finish (q, failed);
  g_autofree char *text = written (f);
  g_assert_nonnull (strstr (text, "\"result\":\"cancelled\",\"message\":\"cancelled\""));
  g_assert_nonnull (strstr (text, "\"result\":\"failed\",\"message\":\"it broke\""));
}

/* The bar is one line: every draw starts with \r and erase-line, no
 * newline; percent, amount, rate and ETA; cut to the width. */
static void
test_bar_one_line (Fixture *f, gconstpointer data)
{
  g_autoptr(CliProgress) p = make (f, "bar");
  g_assert_cmpint (cli_progress_mode (p), ==, CLI_PROGRESS_BAR);
  AbEventSink *sink = cli_progress_sink (p);
  ab_event_phase (sink, "checkout");
  ab_event_progress (sink, AB_PROGRESS_UNIT_FILES, 0, 1000);
  fake_now += G_USEC_PER_SEC;
  ab_event_progress (sink, AB_PROGRESS_UNIT_FILES, 250, 1000);
  g_autofree char *text = written (f);
  g_assert_null (strchr (text, '\n'));
  g_assert_true (g_str_has_prefix (text, "\r\033[Kcheckout"));
  const char *last = g_strrstr (text, "\r\033[K") + 4;
  g_assert_cmpstr (last, ==, "checkout [#####...............]  25% 250/1000 files, 250 fi");
  g_assert_cmpuint (strlen (last), <=, 59);
  cli_progress_set_width (p, 200);
  fake_now += G_USEC_PER_SEC;
  ab_event_progress (sink, AB_PROGRESS_UNIT_FILES, 500, 1000);
  g_autofree char *more = written (f);
  g_assert_true (g_str_has_suffix (more, " 50% 500/1000 files, 250 files/s, ETA 0:02"));
  cli_progress_finish (p, NULL);
  g_autofree char *end = written (f);
  g_assert_true (g_str_has_suffix (end, "\r\033[K"));
}

static guint
count (const char *text, const char *needle)
{
  guint n = 0;
  for (const char *s = text; (s = strstr (s, needle)) != NULL; s += strlen (needle))
    n++;
  return n;
}

/* 1000 events in one second draw at most ten times, plus the phase's first
 * count and its completion. */
static void
test_bar_redraw_limit (Fixture *f, gconstpointer data)
{
  g_autoptr(CliProgress) p = make (f, "bar");
  cli_progress_set_width (p, 200);
  AbEventSink *sink = cli_progress_sink (p);
  ab_event_phase (sink, "download");
  for (guint i = 1; i <= 1000; i++)
    {
      fake_now += G_USEC_PER_SEC / 1000;
      ab_event_progress (sink, AB_PROGRESS_UNIT_BYTES, i * 1000, 1000 * 1000);
    }
  g_autofree char *text = written (f);
  guint draws = count (text, "\r\033[K");
  g_assert_cmpuint (draws, >=, 10);
  g_assert_cmpuint (draws, <=, 1 + 1 + 10 + 1);
  /* the last draw: complete, with its rate */
  g_assert_nonnull (strstr (g_strrstr (text, "\r"), "] 100% "));
  g_assert_true (g_str_has_suffix (text, "B/s"));
}

/* A message clears the bar first, so that it starts on a clean line. */
static void
test_bar_cleared_before_a_message (Fixture *f, gconstpointer data)
{
  g_autoptr(CliProgress) p = make (f, "bar");
  AbEventSink *sink = cli_progress_sink (p);
  ab_event_phase (sink, "download");
  ab_event_progress (sink, AB_PROGRESS_UNIT_BYTES, 1, 2);
  g_autofree char *before = written (f);
  ab_event_note (sink, "a note");
  g_autofree char *after = written (f);
  g_assert_cmpstr (after + strlen (before), ==, "\r\033[K");
}

static void
test_bad_values (Fixture *f, gconstpointer data)
{
  static const char *const cases[][3] = {
    { "fancy", NULL, "--progress=fancy: use auto, bar, json or none" },
    { "json", "x", "--progress-fd=x: give the number" },
    { "json", "-3", "--progress-fd=-3: give the number" },
    { "bar", "987", "--progress-fd=987: that file descriptor is not open" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      CliProgressOptions o = { .mode = (char *) cases[i][0], .fd = (char *) cases[i][1] };
      g_autoptr(GError) error = NULL;
      g_assert_null (cli_progress_new ("stage", &o, &error));
      g_assert_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE);
      g_assert_true (g_str_has_prefix (error->message, cases[i][2]));
    }
  /* auto on a file (not a terminal) shows nothing */
  CliProgressOptions o = { .mode = "auto", .fd = f->fd_text };
  g_autoptr(CliProgress) p = cli_progress_new ("stage", &o, NULL);
  g_assert_cmpint (cli_progress_mode (p), ==, CLI_PROGRESS_NONE);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add ("/progress/json-lines", Fixture, NULL, setup, test_json_lines, teardown);
  g_test_add ("/progress/json-result-of-failures", Fixture, NULL, setup,
              test_json_result_of_failures, teardown);
  g_test_add ("/progress/bar-one-line", Fixture, NULL, setup, test_bar_one_line, teardown);
  g_test_add ("/progress/bar-redraw-limit", Fixture, NULL, setup, test_bar_redraw_limit, teardown);
  g_test_add ("/progress/bar-cleared-before-a-message", Fixture, NULL, setup,
              test_bar_cleared_before_a_message, teardown);
  g_test_add ("/progress/bad-values", Fixture, NULL, setup, test_bad_values, teardown);
  return g_test_run ();
}
