/* Events: how the engine reports what it does.
 *
 * The engine never prints, exits or controls processes. Everything a user
 * may want to see (phases, messages, warnings, progress) goes through an
 * AbEventSink that the front end (CLI, D-Bus daemon) passes in and renders.
 *
 * Invariants:
 * - A NULL sink, or a sink whose func is NULL, drops every event: the
 *   engine's decisions never depend on whether anybody listens.
 * - Events reach func on the thread that started the operation, in the
 *   order they happened (an engine part that works in a worker thread
 *   hands them over to the calling thread's main context first).
 * - Every event carries the phase it belongs to (the last one announced;
 *   "" before the first), and progress events a unit: done never exceeds a
 *   known total, and within a phase done never goes down.
 * - The strings of an event are valid only during the call. */
#pragma once

#include <glib.h>

typedef enum
{
  AB_EVENT_PHASE,    /* a new phase starts: phase */
  AB_EVENT_MESSAGE,  /* something a user should read: message (see note) */
  AB_EVENT_WARNING,  /* something went wrong but the operation goes on: message */
  AB_EVENT_PROGRESS, /* done of total units in the current phase */
} AbEventKind;

typedef enum
{
  AB_PROGRESS_UNIT_NONE,
  AB_PROGRESS_UNIT_BYTES,
  AB_PROGRESS_UNIT_OBJECTS,
  AB_PROGRESS_UNIT_FILES,
} AbProgressUnit;

/* total of a progress event whose total is not known (yet). */
#define AB_PROGRESS_TOTAL_UNKNOWN ((gint64) -1)

typedef struct
{
  AbEventKind kind;
  const char *phase;   /* never NULL */
  const char *message; /* MESSAGE and WARNING; NULL otherwise */
  AbProgressUnit unit; /* PROGRESS; AB_PROGRESS_UNIT_NONE otherwise */
  guint64 done;
  gint64 total;        /* AB_PROGRESS_TOTAL_UNKNOWN when not known */
  /* MESSAGE: a note about how the operation goes (a migration done, a
   * check that failed), not part of what it produces (a hook's output):
   * the CLI prints notes on stderr and other messages on stdout. */
  gboolean note;
  /* WARNING: a problem the command read past (a damaged state file taken
   * as missing, a migration that waits; ab_format_warn()), not one of the
   * operation itself. status lists these in its "damaged" member. */
  gboolean tolerated;
} AbEvent;

typedef void (*AbEventFunc) (const AbEvent *event, gpointer user_data);

typedef struct
{
  AbEventFunc func;
  gpointer user_data;
  char *phase; /* owned; the current phase, set by ab_event_phase() */
} AbEventSink;

/* A sink that calls FUNC with USER_DATA. Free it with ab_event_sink_free(). */
AbEventSink *ab_event_sink_new (AbEventFunc func, gpointer user_data);
/* Frees SINK and everything it owns; NULL is allowed. */
void ab_event_sink_free (AbEventSink *sink);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AbEventSink, ab_event_sink_free)

/* The current phase of SINK ("" before the first, and for a NULL sink). */
const char *ab_event_sink_phase (const AbEventSink *sink);

/* Starts phase PHASE (a short lower-case word: "download", "checkout", ...). */
void ab_event_phase (AbEventSink *sink, const char *phase);
/* Reports an informational message to SINK (NULL: dropped). */
void ab_event_message (AbEventSink *sink, const char *format, ...) G_GNUC_PRINTF (2, 3);
/* A MESSAGE with note set. */
void ab_event_note (AbEventSink *sink, const char *format, ...) G_GNUC_PRINTF (2, 3);
/* Reports a warning to SINK (NULL: dropped). */
void ab_event_warning (AbEventSink *sink, const char *format, ...) G_GNUC_PRINTF (2, 3);
/* A WARNING with tolerated set (what ab_format_warn() sends). */
void ab_event_warning_tolerated (AbEventSink *sink, const char *format, va_list args)
    G_GNUC_PRINTF (2, 0);
/* DONE of TOTAL (AB_PROGRESS_TOTAL_UNKNOWN when unknown) UNIT in the current phase. */
void ab_event_progress (AbEventSink *sink, AbProgressUnit unit, guint64 done, gint64 total);

/* "bytes", "objects", "files", or NULL for AB_PROGRESS_UNIT_NONE. */
const char *ab_progress_unit_name (AbProgressUnit unit);
