/* Unit tests for ab-events.c: the sink contract of ab-events.h. */
#include "config.h"
#include "ab-events.h"

typedef struct
{
  GPtrArray *seen; /* "KIND|phase|message|unit|done|total" */
} Fixture;

static void
record (const AbEvent *ev, gpointer user_data)
{
  Fixture *f = user_data;
  const char *unit = ab_progress_unit_name (ev->unit);
  g_ptr_array_add (f->seen, g_strdup_printf ("%d|%s|%s|%s|%" G_GUINT64_FORMAT "|%" G_GINT64_FORMAT,
                                             ev->kind, ev->phase, ev->message ? ev->message : "-",
                                             unit ? unit : "-", ev->done, ev->total));
}

static void
setup (Fixture *f, gconstpointer data)
{
  f->seen = g_ptr_array_new_with_free_func (g_free);
}

static void
teardown (Fixture *f, gconstpointer data)
{
  g_ptr_array_unref (f->seen);
}

static void
test_order_and_phase (Fixture *f, gconstpointer data)
{
  g_autoptr (AbEventSink) sink = ab_event_sink_new (record, f);
  ab_event_message (sink, "before %d", 1);
  ab_event_phase (sink, "download");
  ab_event_progress (sink, AB_PROGRESS_UNIT_BYTES, 10, 100);
  ab_event_warning (sink, "slow");
  ab_event_progress (sink, AB_PROGRESS_UNIT_FILES, 5, AB_PROGRESS_TOTAL_UNKNOWN);
  g_assert_cmpuint (f->seen->len, ==, 5);
  g_assert_cmpstr (f->seen->pdata[0], ==, "1||before 1|-|0|-1");
  g_assert_cmpstr (f->seen->pdata[1], ==, "0|download|-|-|0|-1");
  g_assert_cmpstr (f->seen->pdata[2], ==, "3|download|-|bytes|10|100");
  g_assert_cmpstr (f->seen->pdata[3], ==, "2|download|slow|-|0|-1");
  g_assert_cmpstr (f->seen->pdata[4], ==, "3|download|-|files|5|-1");
  g_assert_cmpstr (ab_event_sink_phase (sink), ==, "download");
}

static void
test_done_capped_at_total (Fixture *f, gconstpointer data)
{
  g_autoptr (AbEventSink) sink = ab_event_sink_new (record, f);
  ab_event_progress (sink, AB_PROGRESS_UNIT_OBJECTS, 12, 10);
  g_assert_cmpstr (f->seen->pdata[0], ==, "3||-|objects|10|10");
}

static void
test_null_sink_drops (Fixture *f, gconstpointer data)
{
  ab_event_phase (NULL, "x");
  ab_event_message (NULL, "y");
  ab_event_warning (NULL, "z");
  ab_event_progress (NULL, AB_PROGRESS_UNIT_BYTES, 1, 2);
  g_autoptr (AbEventSink) mute = ab_event_sink_new (NULL, NULL);
  ab_event_phase (mute, "apply");
  ab_event_message (mute, "dropped");
  g_assert_cmpstr (ab_event_sink_phase (mute), ==, "apply");
  g_assert_cmpstr (ab_event_sink_phase (NULL), ==, "");
  g_assert_cmpuint (f->seen->len, ==, 0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add ("/events/order-and-phase", Fixture, NULL, setup, test_order_and_phase, teardown);
  g_test_add ("/events/done-capped", Fixture, NULL, setup, test_done_capped_at_total, teardown);
  g_test_add ("/events/null-sink", Fixture, NULL, setup, test_null_sink_drops, teardown);
  return g_test_run ();
}
