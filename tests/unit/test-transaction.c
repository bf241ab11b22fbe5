#include "config.h"
#include "ab-test-fixture.h"
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

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  TMPDIR_TEST ("/transaction/wrong-types", test_wrong_types);
  return g_test_run ();
}
