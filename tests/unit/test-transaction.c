/* ab-transaction: the update transaction written at every phase change and
 * read back, a failure recorded with its phase, and which phases are open. */
#include "config.h"
#include "ab-test-fixture.h"
#include "ab-format.h"
#include "ab-transaction.h"

#include <string.h>

/* A transaction.json whose members have the wrong types is refused with a
 * clear error (or read with defaults), never with a critical: this suite
 * makes criticals fatal. Found by tests/fuzz/fuzz-state. */
static void
test_wrong_types (TmpDir *t, gconstpointer data)
{
  write_file_at (t->dfd, "transaction.json",
                 "{\"format\":2,\"phase\":[],\"id\":7,\"use_delta\":\"yes\",\"attempts\":{}}");
  g_autoptr(GError) error = NULL;
  g_autoptr(AbTransaction) tr = NULL;
  g_assert_false (ab_transaction_load (t->dfd, &tr, &error));
  g_assert_error (error, AB_TRANSACTION_ERROR, AB_TRANSACTION_ERROR_FORMAT);
  g_assert_nonnull (strstr (error->message, "unknown phase"));
  g_clear_error (&error);

  write_file_at (t->dfd, "transaction.json",
                 "{\"format\":2,\"phase\":\"failed\",\"failed_in\":{},\"id\":7,"
                 "\"use_delta\":\"yes\",\"activate\":[],\"attempts\":{},\"reason\":null}");
  g_assert_true (ab_transaction_load (t->dfd, &tr, &error));
  g_assert_no_error (error);
  g_assert_cmpint (tr->phase, ==, AB_PHASE_FAILED);
  g_assert_null (tr->id);
  g_assert_false (tr->use_delta);
  g_assert_true (tr->activate);
  g_assert_cmpuint (tr->attempts, ==, 0);
}

static AbTransaction *
load (TmpDir *t)
{
  g_autoptr(GError) error = NULL;
  AbTransaction *tr = NULL;
  g_assert_true (ab_transaction_load (t->dfd, &tr, &error));
  g_assert_no_error (error);
  return tr;
}

/* Every member written is read back, at every phase. */
static void
test_round_trip (TmpDir *t, gconstpointer data)
{
  g_autoptr(AbTransaction) none = load (t);
  g_assert_null (none);
  g_autoptr(AbTransaction) tr = ab_transaction_new ("stable", "2.0", "c2", "c1");
  tr->use_delta = TRUE;
  tr->attempts = 3;
  g_autoptr(GError) error = NULL;
  for (AbPhase p = AB_PHASE_CREATED; p <= AB_PHASE_APPLIED; p++)
    {
      g_assert_true (ab_transaction_set_phase (t->dfd, AB_STATE_FORMAT, tr, p, &error));
      g_assert_no_error (error);
      g_autoptr(AbTransaction) back = load (t);
      g_assert_cmpint (back->phase, ==, p);
      g_assert_cmpstr (ab_phase_name (back->phase), ==, ab_phase_name (p));
      g_assert_cmpstr (back->id, ==, tr->id);
      g_assert_cmpstr (back->channel, ==, "stable");
      g_assert_cmpstr (back->version, ==, "2.0");
      g_assert_cmpstr (back->commit, ==, "c2");
      g_assert_cmpstr (back->from_commit, ==, "c1");
      g_assert_true (back->use_delta);
      g_assert_true (back->activate);
      g_assert_cmpuint (back->attempts, ==, 3);
      g_assert_cmpstr (back->created_at, ==, tr->created_at);
      g_assert_cmpint (ab_transaction_is_open (back), ==, p != AB_PHASE_APPLIED);
    }
}

/* A failure keeps the phase it happened in and its reason; moving on
 * clears the reason. */
static void
test_fail (TmpDir *t, gconstpointer data)
{
  g_autoptr(AbTransaction) tr = ab_transaction_new ("stable", "2.0", "c2", NULL);
  g_autoptr(GError) error = NULL;
  g_assert_true (ab_transaction_set_phase (t->dfd, AB_STATE_FORMAT, tr, AB_PHASE_DOWNLOADING, &error));
  g_assert_true (ab_transaction_fail (t->dfd, AB_STATE_FORMAT, tr, "No space left on device", TRUE, &error));
  g_assert_no_error (error);
  /* a second failure keeps the phase the first one happened in */
  g_assert_true (ab_transaction_fail (t->dfd, AB_STATE_FORMAT, tr, "still no space", TRUE, &error));
  g_autoptr(AbTransaction) failed = load (t);
  g_assert_cmpint (failed->phase, ==, AB_PHASE_FAILED);
  g_assert_cmpint (failed->failed_in, ==, AB_PHASE_DOWNLOADING);
  g_assert_cmpstr (failed->reason, ==, "still no space");
  g_assert_true (failed->retryable);
  g_assert_null (failed->from_commit);
  g_assert_true (ab_transaction_is_open (failed));
  g_assert_true (ab_transaction_set_phase (t->dfd, AB_STATE_FORMAT, tr, AB_PHASE_ABANDONED, &error));
  g_autoptr(AbTransaction) abandoned = load (t);
  g_assert_null (abandoned->reason);
  g_assert_false (ab_transaction_is_open (abandoned));
  g_assert_false (ab_transaction_is_open (NULL));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  TMPDIR_TEST ("/transaction/wrong-types", test_wrong_types);
  TMPDIR_TEST ("/transaction/round-trip", test_round_trip);
  TMPDIR_TEST ("/transaction/fail", test_fail);
  return g_test_run ();
}
