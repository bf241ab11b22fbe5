#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include "ab-mount.h"
#include "ab-test-fixture.h"

static const char *const dirs[] = { "d", "missing", NULL };

static char *
mount_ns (void)
{
  return g_file_read_link ("/proc/self/ns/mnt", NULL);
}

/* A read-write directory: nothing to do, no namespace entered. */
static void
test_writable_untouched (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_assert_cmpint (mkdirat (t->dfd, "d", 0755), ==, 0);
  g_autofree char *before = mount_ns ();
  gboolean changed = TRUE;
  g_assert_true (ab_mount_make_writable (t->path, dirs, &changed, &error));
  g_assert_no_error (error);
  g_assert_false (changed);
  g_autofree char *after = mount_ns ();
  g_assert_cmpstr (before, ==, after);
}

/* In the writer (a child): make T writable, write T/d/written. */
static int
writer (const char *path)
{
  g_autoptr(GError) error = NULL;
  gboolean changed = FALSE;
  if (!ab_mount_make_writable (path, dirs, &changed, &error) || !changed)
    return 10;
  g_autofree char *file = g_build_filename (path, "d", "written", NULL);
  return g_file_set_contents (file, "x", 1, NULL) ? 0 : 11;
}

/* In a namespace of the test's own: T becomes a read-only bind mount; the
 * writer's write lands, and T is still read-only here afterwards. */
static int
readonly_host (const char *path)
{
  if (unshare (CLONE_NEWNS) < 0 || mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0
      || mount (path, path, NULL, MS_BIND, NULL) < 0
      || mount (NULL, path, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0)
    return 20;
  pid_t pid = fork ();
  if (pid == 0)
    _exit (writer (path));
  int status = 0;
  if (pid < 0 || waitpid (pid, &status, 0) < 0 || !WIFEXITED (status))
    return 21;
  if (WEXITSTATUS (status) != 0)
    return WEXITSTATUS (status);
  g_autofree char *written = g_build_filename (path, "d", "written", NULL);
  g_autofree char *other = g_build_filename (path, "d", "other", NULL);
  struct statvfs vfs;
  if (!g_file_test (written, G_FILE_TEST_EXISTS))
    return 22;
  if (open (other, O_WRONLY | O_CREAT | O_CLOEXEC, 0644) >= 0 || errno != EROFS)
    return 23;
  return statvfs (path, &vfs) == 0 && (vfs.f_flag & ST_RDONLY) ? 0 : 24;
}

static void
test_readonly_bind_mount (TmpDir *t, gconstpointer data)
{
  if (geteuid () != 0)
    {
      g_test_skip ("needs root (mount namespaces)");
      return;
    }
  g_assert_cmpint (mkdirat (t->dfd, "d", 0755), ==, 0);
  pid_t pid = fork ();
  if (pid == 0)
    _exit (readonly_host (t->path));
  int status = 0;
  g_assert_cmpint (waitpid (pid, &status, 0), ==, pid);
  g_assert_true (WIFEXITED (status));
  g_assert_cmpint (WEXITSTATUS (status), ==, 0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  TMPDIR_TEST ("/mount/writable-untouched", test_writable_untouched);
  TMPDIR_TEST ("/mount/readonly-bind-mount", test_readonly_bind_mount);
  return g_test_run ();
}
