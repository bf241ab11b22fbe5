/* Events (ab-events.h): the engine's only way to tell anybody anything. */
#include "config.h"
#include "ab-events.h"

AbEventSink *
ab_event_sink_new (AbEventFunc func, gpointer user_data)
{
  AbEventSink *sink = g_new0 (AbEventSink, 1);
  sink->func = func;
  sink->user_data = user_data;
  return sink;
}

void
ab_event_sink_free (AbEventSink *sink)
{
  if (sink == NULL)
    return;
  g_free (sink->phase);
  g_free (sink);
}

const char *
ab_event_sink_phase (const AbEventSink *sink)
{
  return sink != NULL && sink->phase != NULL ? sink->phase : "";
}

static void
deliver (AbEventSink *sink, AbEvent *ev)
{
  if (sink == NULL || sink->func == NULL)
    return;
  ev->phase = ab_event_sink_phase (sink);
  sink->func (ev, sink->user_data);
}

void
ab_event_phase (AbEventSink *sink, const char *phase)
{
  if (sink == NULL)
    return;
  g_free (sink->phase);
  sink->phase = g_strdup (phase);
  AbEvent ev = { .kind = AB_EVENT_PHASE, .total = AB_PROGRESS_TOTAL_UNKNOWN };
  deliver (sink, &ev);
}

/* FLAG: note for a MESSAGE, tolerated for a WARNING. */
static void
deliver_text (AbEventSink *sink, AbEventKind kind, gboolean flag, const char *format,
              va_list args)
{
  if (sink == NULL || sink->func == NULL)
    return;
  g_autofree char *text = g_strdup_vprintf (format, args);
  AbEvent ev = { .kind = kind, .message = text, .total = AB_PROGRESS_TOTAL_UNKNOWN,
                 .note = kind == AB_EVENT_MESSAGE && flag,
                 .tolerated = kind == AB_EVENT_WARNING && flag };
  deliver (sink, &ev);
}

void
ab_event_message (AbEventSink *sink, const char *format, ...)
{
  va_list args;
  va_start (args, format);
  deliver_text (sink, AB_EVENT_MESSAGE, FALSE, format, args);
  va_end (args);
}

void
ab_event_note (AbEventSink *sink, const char *format, ...)
{
  va_list args;
  va_start (args, format);
  deliver_text (sink, AB_EVENT_MESSAGE, TRUE, format, args);
  va_end (args);
}

void
ab_event_warning (AbEventSink *sink, const char *format, ...)
{
  va_list args;
  va_start (args, format);
  deliver_text (sink, AB_EVENT_WARNING, FALSE, format, args);
  va_end (args);
}

void
ab_event_warning_tolerated (AbEventSink *sink, const char *format, va_list args)
{
  deliver_text (sink, AB_EVENT_WARNING, TRUE, format, args);
}

void
ab_event_progress (AbEventSink *sink, AbProgressUnit unit, guint64 done, gint64 total)
{
  if (total >= 0 && done > (guint64) total)
    done = (guint64) total;
  AbEvent ev = { .kind = AB_EVENT_PROGRESS, .unit = unit, .done = done, .total = total };
  deliver (sink, &ev);
}

const char *
ab_progress_unit_name (AbProgressUnit unit)
{
  static const char *const names[] = {
    [AB_PROGRESS_UNIT_NONE] = NULL,
    [AB_PROGRESS_UNIT_BYTES] = "bytes",
    [AB_PROGRESS_UNIT_OBJECTS] = "objects",
    [AB_PROGRESS_UNIT_FILES] = "files",
  };
  return (guint) unit < G_N_ELEMENTS (names) ? names[unit] : NULL;
}
