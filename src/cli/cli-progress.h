/* Progress rendering of the command line: the CLI's AbEventSink.
 *
 * One renderer per command run. It turns the engine's events
 * (ab-events.h) into
 * - text: messages on stdout, notes and warnings ("warning: ...") on
 *   stderr, exactly as the commands printed them before events existed;
 * - a terminal bar (--progress=bar): one line rewritten in place (phase,
 *   percent, amount, rate, ETA), cut to the terminal's width so that it
 *   never wraps or scrolls, redrawn at most CLI_PROGRESS_REDRAW_US apart,
 *   cleared before any text line is printed and at the end;
 * - JSON lines (--progress=json): one object per event, written whole with
 *   its newline, flushed at once; the first line is a "start" object, the
 *   last a "result" object (abdeploy(8), PROGRESS).
 *
 * Invariants: text never goes to the descriptor that carries JSON lines
 * (with JSON on stdout, the command's own result text moves into the
 * result line); the renderer never fails the command (a write error to the
 * progress descriptor drops that line). */
#pragma once

#include <gio/gio.h>
#include "ab-events.h"

typedef enum
{
  CLI_PROGRESS_NONE,
  CLI_PROGRESS_BAR,
  CLI_PROGRESS_JSON,
} CliProgressMode;

/* At most this often the bar is redrawn (10 times a second). */
#define CLI_PROGRESS_REDRAW_US (G_USEC_PER_SEC / 10)
/* "format" of the start line of the JSON stream. */
#define CLI_PROGRESS_JSON_FORMAT 1

typedef struct _CliProgress CliProgress;

/* The values of --progress and --progress-fd (NULL: not given). */
typedef struct
{
  char *mode;
  char *fd;
} CliProgressOptions;

void cli_progress_options_clear (CliProgressOptions *o);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (CliProgressOptions, cli_progress_options_clear)

/* The two option entries of a command that shows progress. */
#define CLI_PROGRESS_OPTION_ENTRIES(o)                                                       \
  { "progress", 0, 0, G_OPTION_ARG_STRING, &(o).mode,                                        \
    "Show progress as a terminal bar, JSON lines or not at all (auto: a bar when the "      \
    "progress goes to a terminal)", "auto|bar|json|none" },                                 \
  { "progress-fd", 0, 0, G_OPTION_ARG_STRING, &(o).fd,                                       \
    "Write the progress to file descriptor N (default: the bar to stderr, JSON to stdout)", \
    "N" }

/* A renderer for COMMAND (named in the JSON start line) from the option
 * values O: MODE auto (or NULL), bar, json or none; FD a number naming an
 * open descriptor that is open for writing. A bad value is an error
 * (G_OPTION_ERROR_BAD_VALUE) that names it and the values allowed. */
G_GNUC_WARN_UNUSED_RESULT
CliProgress *cli_progress_new (const char *command, const CliProgressOptions *o, GError **error);
/* A renderer of text only (messages, notes, warnings): what every command
 * that takes no --progress reports through. */
CliProgress *cli_progress_new_text (void);
void cli_progress_free (CliProgress *p);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CliProgress, cli_progress_free)

CliProgressMode cli_progress_mode (const CliProgress *p);
/* The sink to hand to the engine (owned by P). */
AbEventSink *cli_progress_sink (CliProgress *p);
/* The function of that sink (for tests that feed events directly). */
void cli_progress_render (const AbEvent *event, gpointer p);
/* Prints what a command read past (a tolerated warning, ab_format_warn())
 * as abdeploy always has: "abdeploy: warning: MESSAGE" (sanitized) on
 * stderr. */
void cli_print_tolerated (const char *message);

/* The command's own result line (text, newline added): on stdout unless
 * the JSON lines go there; with JSON, also the message of the result line
 * (several lines joined by newlines). */
void cli_progress_print (CliProgress *p, const char *format, ...) G_GNUC_PRINTF (2, 3);
/* Clears the bar (when shown) before the caller prints text itself. */
void cli_progress_clear (CliProgress *p);
/* Ends the run: clears the bar; with JSON, writes the result line: "ok"
 * (message: the text given to cli_progress_print()), or "failed" or
 * "cancelled" with ERROR's message. Call once. */
void cli_progress_finish (CliProgress *p, const GError *error);

/* Tests: the monotonic clock (microseconds) that rates and the redraw limit use. */
void cli_progress_set_clock (CliProgress *p, gint64 (*clock) (void));
/* Tests: the terminal width the bar is cut to (0: ask the terminal). */
void cli_progress_set_width (CliProgress *p, guint width);
