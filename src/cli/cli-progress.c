/* Progress rendering of the command line (cli-progress.h). */
#include "config.h"
#include "cli-progress.h"
#include "ab-fetch.h"
#include "ab-json.h"

#include <errno.h>
#include <fcntl.h>
#include <json-glib/json-glib.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define BAR_CELLS 20

struct _CliProgress
{
  CliProgressMode mode;
  char *command;
  int fd;             /* the bar's or the JSON lines' descriptor; -1: none */
  FILE *out;          /* stream on fd (stdout, stderr or our own) */
  gboolean own_out;   /* out was opened here */
  AbEventSink *sink;
  gint64 (*clock) (void);
  guint width;        /* terminal columns; 0: unknown */
  char *result;       /* the command's result text (cli_progress_print) */
  /* the phase's progress so far */
  AbProgressUnit unit;
  guint64 done;
  gint64 total;
  gboolean have_progress;
  guint64 first_done; /* done of the phase's first progress event */
  gint64 phase_us;    /* when the phase started */
  /* the bar */
  gboolean line_shown;
  gint64 last_draw_us;
};

void
cli_progress_options_clear (CliProgressOptions *o)
{
  g_clear_pointer (&o->mode, g_free);
  g_clear_pointer (&o->fd, g_free);
}

static gboolean
bad_value (GError **error, const char *format, const char *value)
{
  g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, format, value);
  return FALSE;
}

static gboolean
parse_mode (const char *text, gboolean *out_auto, CliProgressMode *out, GError **error)
{
  static const char *const names[] = { "none", "bar", "json" };
  *out_auto = text == NULL || g_str_equal (text, "auto");
  *out = CLI_PROGRESS_NONE;
  for (guint i = 0; text != NULL && i < G_N_ELEMENTS (names); i++)
    if (g_str_equal (text, names[i]))
      *out = (CliProgressMode) i;
  if (*out_auto || *out != CLI_PROGRESS_NONE || g_str_equal (text, "none"))
    return TRUE;
  return bad_value (error, "--progress=%s: use auto, bar, json or none", text);
}

/* FD_TEXT must name a descriptor that is open for writing. */
static gboolean
parse_fd (const char *text, int *out, GError **error)
{
  guint64 n = 0;
  if (!g_ascii_string_to_unsigned (text, 10, 0, G_MAXINT, &n, NULL))
    return bad_value (error, "--progress-fd=%s: give the number of an open file descriptor", text);
  int flags = fcntl ((int) n, F_GETFL);
  if (flags < 0)
    return bad_value (error, "--progress-fd=%s: that file descriptor is not open; open it in "
                      "the calling shell (e.g. 3>FILE) or leave the option out", text);
  if ((flags & O_ACCMODE) == O_RDONLY)
    return bad_value (error, "--progress-fd=%s: that file descriptor is open for reading "
                      "only; open it for writing (e.g. 3>FILE)", text);
  *out = (int) n;
  return TRUE;
}

static guint
terminal_width (int fd)
{
  struct winsize ws = { 0 };
  if (ioctl (fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
    return ws.ws_col;
  return 80;
}

static CliProgress *
progress_alloc (CliProgressMode mode, const char *command)
{
  CliProgress *p = g_new0 (CliProgress, 1);
  p->mode = mode;
  p->command = g_strdup (command);
  p->fd = -1;
  p->clock = g_get_monotonic_time;
  p->total = AB_PROGRESS_TOTAL_UNKNOWN;
  p->sink = ab_event_sink_new (cli_progress_render, p);
  return p;
}

/* The stream of P's descriptor: stdout and stderr are used as they are
 * (their other writers share the buffer), another descriptor gets its own. */
static gboolean
open_out (CliProgress *p, GError **error)
{
  if (p->fd == STDOUT_FILENO || p->fd == STDERR_FILENO)
    {
      p->out = p->fd == STDOUT_FILENO ? stdout : stderr;
      return TRUE;
    }
  int dup_fd = fcntl (p->fd, F_DUPFD_CLOEXEC, 3);
  p->out = dup_fd >= 0 ? fdopen (dup_fd, "w") : NULL;
  if (p->out == NULL)
    {
      int errsv = errno;
      if (dup_fd >= 0)
        close (dup_fd);
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                   "--progress-fd=%d: %s", p->fd, g_strerror (errsv));
      return FALSE;
    }
  p->own_out = TRUE;
  return TRUE;
}

static void write_json_start (CliProgress *p);

CliProgress *
cli_progress_new (const char *command, const CliProgressOptions *o, GError **error)
{
  gboolean is_auto = FALSE;
  CliProgressMode mode = CLI_PROGRESS_NONE;
  int fd = -1;
  if (!parse_mode (o->mode, &is_auto, &mode, error) || (o->fd && !parse_fd (o->fd, &fd, error)))
    return NULL;
  if (fd < 0)
    fd = mode == CLI_PROGRESS_JSON ? STDOUT_FILENO : STDERR_FILENO;
  if (is_auto)
    mode = isatty (fd) ? CLI_PROGRESS_BAR : CLI_PROGRESS_NONE;
  g_autoptr(CliProgress) p = progress_alloc (mode, command);
  if (mode == CLI_PROGRESS_NONE)
    return g_steal_pointer (&p);
  p->fd = fd;
  if (!open_out (p, error))
    return NULL;
  if (mode == CLI_PROGRESS_JSON)
    write_json_start (p);
  return g_steal_pointer (&p);
}

CliProgress *
cli_progress_new_text (void)
{
  return progress_alloc (CLI_PROGRESS_NONE, NULL);
}

void
cli_progress_free (CliProgress *p)
{
  if (p == NULL)
    return;
  if (p->own_out)
    fclose (p->out);
  ab_event_sink_free (p->sink);
  g_free (p->command);
  g_free (p->result);
  g_free (p);
}

CliProgressMode
cli_progress_mode (const CliProgress *p)
{
  return p->mode;
}

AbEventSink *
cli_progress_sink (CliProgress *p)
{
  return p->sink;
}

void
cli_progress_set_clock (CliProgress *p, gint64 (*clock) (void))
{
  p->clock = clock;
}

void
cli_progress_set_width (CliProgress *p, guint width)
{
  p->width = width;
}

static gboolean
json_on (const CliProgress *p, int fd)
{
  return p->mode == CLI_PROGRESS_JSON && p->fd == fd;
}

/* ---- JSON lines ---- */

/* Every line carries type, phase, done, total and unit. */
static JsonBuilder *
json_line_begin (const char *type, const char *phase, const AbEvent *ev)
{
  JsonBuilder *b = json_builder_new ();
  gboolean progress = ev != NULL && ev->kind == AB_EVENT_PROGRESS;
  json_builder_begin_object (b);
  ab_json_add_string (b, "type", type);
  ab_json_add_string (b, "phase", phase);
  ab_json_add_int_or_null (b, "done", progress, progress ? (gint64) MIN (ev->done, (guint64) G_MAXINT64) : 0);
  ab_json_add_int_or_null (b, "total", progress && ev->total >= 0, progress ? ev->total : 0);
  ab_json_add_string (b, "unit", progress ? ab_progress_unit_name (ev->unit) : NULL);
  return b;
}

static void
json_line_end (CliProgress *p, JsonBuilder *b)
{
  json_builder_end_object (b);
  g_autoptr(JsonNode) node = json_builder_get_root (b);
  g_autofree char *text = json_to_string (node, FALSE);
  if (p->fd == STDERR_FILENO)
    fflush (stdout);
  fprintf (p->out, "%s\n", text);
  fflush (p->out);
}

static void
write_json_start (CliProgress *p)
{
  g_autoptr(JsonBuilder) b = json_line_begin ("start", "", NULL);
  ab_json_add_string (b, "command", p->command);
  json_builder_set_member_name (b, "format");
  json_builder_add_int_value (b, CLI_PROGRESS_JSON_FORMAT);
  json_line_end (p, b);
}

static void
write_json_event (CliProgress *p, const AbEvent *ev)
{
  static const char *const types[] = {
    [AB_EVENT_PHASE] = "phase", [AB_EVENT_MESSAGE] = "message",
    [AB_EVENT_WARNING] = "warning", [AB_EVENT_PROGRESS] = "progress",
  };
  g_autoptr(JsonBuilder) b = json_line_begin (types[ev->kind], ev->phase, ev);
  if (ev->kind == AB_EVENT_MESSAGE || ev->kind == AB_EVENT_WARNING)
    ab_json_add_string (b, "message", ev->message);
  json_line_end (p, b);
}

/* ---- the terminal bar ---- */

static void
clear_line (CliProgress *p)
{
  if (!p->line_shown)
    return;
  fputs ("\r\033[K", p->out);
  fflush (p->out);
  p->line_shown = FALSE;
  p->last_draw_us = 0; /* the next event draws at once */
}

static void
append_amount (GString *s, AbProgressUnit unit, guint64 done, gint64 total)
{
  if (unit == AB_PROGRESS_UNIT_BYTES)
    {
      g_autofree char *d = g_format_size (done);
      g_autofree char *t = total >= 0 ? g_format_size ((guint64) total) : NULL;
      g_string_append_printf (s, " %s%s%s", d, t ? " of " : "", t ? t : "");
      return;
    }
  g_string_append_printf (s, " %" G_GUINT64_FORMAT, done);
  if (total >= 0)
    g_string_append_printf (s, "/%" G_GINT64_FORMAT, total);
  g_string_append_printf (s, " %s", ab_progress_unit_name (unit));
}

static void
append_rate_eta (GString *s, const CliProgress *p, gint64 now)
{
  double secs = (double) (now - p->phase_us) / G_USEC_PER_SEC;
  if (secs <= 0 || p->done <= p->first_done)
    return;
  double rate = (double) (p->done - p->first_done) / secs;
  if (p->unit == AB_PROGRESS_UNIT_BYTES)
    {
      g_autofree char *r = g_format_size ((guint64) rate);
      g_string_append_printf (s, ", %s/s", r);
    }
  else
    g_string_append_printf (s, ", %.0f %s/s", rate, ab_progress_unit_name (p->unit));
  if (p->total >= 0 && (guint64) p->total > p->done)
    {
      guint64 eta = (guint64) (((guint64) p->total - p->done) / rate + 0.5);
      g_string_append_printf (s, ", ETA %" G_GUINT64_FORMAT ":%02u", eta / 60, (guint) (eta % 60));
    }
}

static void
append_bar (GString *s, guint64 done, gint64 total)
{
  guint pct = total > 0 ? (guint) MIN (100, done * 100 / (guint64) total) : 100;
  guint cells = pct * BAR_CELLS / 100;
  g_string_append (s, " [");
  for (guint i = 0; i < BAR_CELLS; i++)
    g_string_append_c (s, i < cells ? '#' : '.');
  g_string_append_printf (s, "] %3u%%", pct);
}

/* The text of the bar for the state of P (no control characters). */
static char *
bar_text (const CliProgress *p, gint64 now)
{
  GString *s = g_string_new (ab_event_sink_phase (p->sink));
  if (!p->have_progress)
    return g_string_free (s, FALSE);
  if (p->total > 0)
    append_bar (s, p->done, p->total);
  append_amount (s, p->unit, p->done, p->total);
  append_rate_eta (s, p, now);
  return g_string_free (s, FALSE);
}

/* Cut to one character less than the terminal is wide: a line that fills
 * it would wrap, and the next \r would then rewrite only its last row. */
static void
fit_width (CliProgress *p, char *text)
{
  if (p->width == 0)
    p->width = terminal_width (p->fd);
  glong max = MAX (1, (glong) p->width - 1);
  if (g_utf8_strlen (text, -1) > max)
    *g_utf8_offset_to_pointer (text, max) = '\0';
}

static void
draw (CliProgress *p, gint64 now)
{
  g_autofree char *text = bar_text (p, now);
  fit_width (p, text);
  fprintf (p->out, "\r\033[K%s", text);
  fflush (p->out);
  p->line_shown = TRUE;
  p->last_draw_us = now;
}

/* Redraws at most every CLI_PROGRESS_REDRAW_US, but a phase's first
 * progress and its completion at once. */
static void
maybe_draw (CliProgress *p, gboolean force)
{
  gint64 now = p->clock ();
  gboolean complete = p->total >= 0 && p->done == (guint64) p->total;
  if (force || complete || !p->line_shown || now - p->last_draw_us >= CLI_PROGRESS_REDRAW_US)
    draw (p, now);
}

/* ---- events ---- */

static void
note_progress (CliProgress *p, const AbEvent *ev)
{
  if (!p->have_progress || p->unit != ev->unit)
    p->first_done = ev->done;
  p->have_progress = TRUE;
  p->unit = ev->unit;
  p->done = ev->done;
  p->total = ev->total;
}

/* What a command read past and why (ab_format_warn()): on stderr in
 * every mode, as abdeploy always printed it. */
void
cli_print_tolerated (const char *message)
{
  g_autofree char *clean = ab_json_sanitize (message, -1, 0, FALSE);
  g_printerr ("abdeploy: warning: %s\n", clean);
}

static void
print_tolerated (CliProgress *p, const AbEvent *ev)
{
  if (p->mode == CLI_PROGRESS_BAR)
    clear_line (p);
  cli_print_tolerated (ev->message);
}

/* A text line on stdout (messages) or stderr (notes, warnings), unless
 * that descriptor carries the JSON lines. */
static void
print_text (CliProgress *p, const AbEvent *ev)
{
  gboolean to_stdout = ev->kind == AB_EVENT_MESSAGE && !ev->note;
  if (ev->kind == AB_EVENT_WARNING && ev->tolerated)
    {
      print_tolerated (p, ev);
      return;
    }
  if (json_on (p, to_stdout ? STDOUT_FILENO : STDERR_FILENO))
    return;
  if (p->mode == CLI_PROGRESS_BAR)
    clear_line (p);
  if (to_stdout)
    {
      g_print ("%s\n", ev->message);
      fflush (stdout);
    }
  else
    g_printerr ("%s%s\n", ev->kind == AB_EVENT_WARNING ? "warning: " : "", ev->message);
}

void
cli_progress_render (const AbEvent *ev, gpointer user_data)
{
  CliProgress *p = user_data;
  if (ev->kind == AB_EVENT_PHASE)
    {
      p->have_progress = FALSE;
      p->total = AB_PROGRESS_TOTAL_UNKNOWN;
      p->phase_us = p->clock ();
    }
  else if (ev->kind == AB_EVENT_PROGRESS)
    {
      /* the same count twice says nothing new */
      if (p->have_progress && p->unit == ev->unit && p->done == ev->done && p->total == ev->total)
        return;
      note_progress (p, ev);
    }
  else
    print_text (p, ev);
  if (p->mode == CLI_PROGRESS_JSON)
    write_json_event (p, ev);
  else if (p->mode == CLI_PROGRESS_BAR && ev->kind != AB_EVENT_MESSAGE
           && ev->kind != AB_EVENT_WARNING)
    maybe_draw (p, ev->kind == AB_EVENT_PHASE);
}

/* ---- the command's result ---- */

void
cli_progress_print (CliProgress *p, const char *format, ...)
{
  va_list args;
  va_start (args, format);
  g_autofree char *text = g_strdup_vprintf (format, args);
  va_end (args);
  char *joined = p->result ? g_strconcat (p->result, "\n", text, NULL) : g_strdup (text);
  g_free (p->result);
  p->result = joined;
  if (json_on (p, STDOUT_FILENO))
    return;
  if (p->mode == CLI_PROGRESS_BAR)
    clear_line (p);
  g_print ("%s\n", text);
}

void
cli_progress_clear (CliProgress *p)
{
  if (p->mode == CLI_PROGRESS_BAR)
    clear_line (p);
}

static gboolean
is_cancelled (const GError *error)
{
  return g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED)
         || g_error_matches (error, AB_FETCH_ERROR, AB_FETCH_ERROR_CANCELLED);
}

void
cli_progress_finish (CliProgress *p, const GError *error)
{
  if (p->mode == CLI_PROGRESS_BAR)
    clear_line (p);
  if (p->mode != CLI_PROGRESS_JSON)
    return;
  const char *result = error == NULL ? "ok" : is_cancelled (error) ? "cancelled" : "failed";
  g_autoptr(JsonBuilder) b = json_line_begin ("result", ab_event_sink_phase (p->sink), NULL);
  json_builder_set_member_name (b, "result");
  json_builder_add_string_value (b, result);
  /* a cancelled run says so in one word; the error itself goes to stderr */
  ab_json_add_string (b, "message", error == NULL ? p->result
                                     : is_cancelled (error) ? "cancelled" : error->message);
  json_line_end (p, b);
}
