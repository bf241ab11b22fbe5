#include "config.h"
#include <signal.h>
#include <string.h>
#include <unistd.h>
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

static gpointer
release_later (gpointer data)
{
  int *fd = data;
  g_usleep (50 * 1000);
  close (*fd);
  return NULL;
}

/* The waiting variant (check-update recording a serial) gets the lock once
 * the holder lets go, and gives up with AB_LOCK_ERROR_HELD otherwise. */
static void
test_wait (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  int holder = ab_lock_acquire (t->dfd, &error);
  g_assert_cmpint (holder, >=, 0);
  g_assert_cmpint (ab_lock_acquire_wait (t->dfd, 0, &error), ==, -1);
  g_assert_error (error, AB_LOCK_ERROR, AB_LOCK_ERROR_HELD);
  g_clear_error (&error);
  GThread *th = g_thread_new ("release", release_later, &holder);
  ab_autofd got = ab_lock_acquire_wait (t->dfd, 60 * 1000, &error);
  g_thread_join (th);
  g_assert_no_error (error);
  g_assert_cmpint (got, >=, 0);
}

/* The refusal names the holder's command line, read from /proc with the
 * pid in the lock file, and the D-Bus daemon as such. The holder here is a
 * shell whose arguments play the part ("... daemon" or not); the test
 * process holds the flock and writes the shell's pid in the file. */
static void
check_holder_named (TmpDir *t, const char *last_word, gboolean is_daemon)
{
  g_autoptr(GError) error = NULL;
  const char *argv[] = { "/bin/sh", "-c", "sleep 30; true", last_word, NULL };
  GPid child = 0;
  /* its sleep outlives the kill: it must not hold the test's output open */
  GSpawnFlags quiet = G_SPAWN_STDOUT_TO_DEV_NULL | G_SPAWN_STDERR_TO_DEV_NULL;
  g_assert_true (g_spawn_async (NULL, (char **) argv, NULL, quiet, NULL, NULL, &child, &error));
  ab_autofd holder = ab_lock_acquire (t->dfd, &error);
  g_assert_no_error (error);
  g_autofree char *pid = g_strdup_printf ("%d\n", (int) child);
  g_assert_cmpint (ftruncate (holder, 0), ==, 0);
  g_assert_cmpint (pwrite (holder, pid, strlen (pid), 0), ==, (gssize) strlen (pid));
  g_assert_cmpint (ab_lock_acquire (t->dfd, &error), ==, -1);
  kill (child, SIGKILL);
  g_spawn_close_pid (child);
  g_assert_error (error, AB_LOCK_ERROR, AB_LOCK_ERROR_HELD);
  g_autofree char *named = g_strdup_printf ("pid %d", (int) child);
  g_assert_nonnull (strstr (error->message, named));
  g_assert_nonnull (strstr (error->message, "/bin/sh -c sleep 30; true"));
  g_assert_true ((strstr (error->message, "abdeploy daemon") != NULL) == is_daemon);
  g_assert_true ((strstr (error->message, "org.abdeploy1.Manager Cancel") != NULL) == is_daemon);
}

static void
test_holder_named (TmpDir *t, gconstpointer data)
{
  check_holder_named (t, "stage", FALSE);
}

static void
test_daemon_named (TmpDir *t, gconstpointer data)
{
  check_holder_named (t, "daemon", TRUE);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  TMPDIR_TEST ("/lock/second-writer-refused", test_second_writer_refused);
  TMPDIR_TEST ("/lock/released-on-close", test_released_on_close);
  TMPDIR_TEST ("/lock/wait", test_wait);
  TMPDIR_TEST ("/lock/holder-named", test_holder_named);
  TMPDIR_TEST ("/lock/daemon-named", test_daemon_named);
  return g_test_run ();
}
