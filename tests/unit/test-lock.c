#include "config.h"
#include <string.h>
#include "ab-lock.h"
#include "ab-test-fixture.h"

static void
test_second_writer_refused (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  ab_autofd first = ab_lock_acquire (t->dfd, &error);
  g_assert_no_error (error);
  g_assert_cmpint (first, >=, 0);
  /* flock(2) locks belong to the open file description: a second open in
   * the same process conflicts like another process would. */
  int second = ab_lock_acquire (t->dfd, &error);
  g_assert_cmpint (second, ==, -1);
  g_assert_error (error, AB_LOCK_ERROR, AB_LOCK_ERROR_HELD);
  g_autofree char *pid = g_strdup_printf ("pid %d", (int) getpid ());
  g_assert_nonnull (strstr (error->message, pid));
}

static void
test_released_on_close (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  int first = ab_lock_acquire (t->dfd, &error);
  close (first);
  ab_autofd again = ab_lock_acquire (t->dfd, &error);
  g_assert_no_error (error);
  g_assert_cmpint (again, >=, 0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  TMPDIR_TEST ("/lock/second-writer-refused", test_second_writer_refused);
  TMPDIR_TEST ("/lock/released-on-close", test_released_on_close);
  return g_test_run ();
}
