#include "config.h"
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include "ab-test-fixture.h"
#include <unistd.h>

static void
test_replace_roundtrip (TmpDir *t, gconstpointer data)
{
  write_file_at (t->dfd, "f", "one");
  write_file_at (t->dfd, "f", "two");
  g_autofree char *got = read_file_at (t->dfd, "f");
  g_assert_cmpstr (got, ==, "two");
  /* No temporary file is left behind. */
  g_autoptr(GDir) dir = g_dir_open (t->path, 0, NULL);
  const char *name;
  int n = 0;
  while ((name = g_dir_read_name (dir)) != NULL)
    n++;
  g_assert_cmpint (n, ==, 1);
}

static void
test_read_missing (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  char *out = NULL;
  g_assert_false (ab_fs_read_at (t->dfd, "nope", &out, NULL, &error));
  g_assert_error (error, AB_FS_ERROR, AB_FS_ERROR_NOT_FOUND);
}

static void
test_exchange (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  write_file_at (t->dfd, "x/file", "old");
  write_file_at (t->dfd, "y/file", "new");
  g_assert_true (ab_fs_exchange_at (t->dfd, "y", "x", &error));
  g_autofree char *x = read_file_at (t->dfd, "x/file");
  g_autofree char *y = read_file_at (t->dfd, "y/file");
  g_assert_cmpstr (x, ==, "new");
  g_assert_cmpstr (y, ==, "old");
}

static void
test_copy_tree_is_copy (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  write_file_at (t->dfd, "src/a/b", "bee");
  g_assert_cmpint (symlinkat ("a/b", t->dfd, "src/link"), ==, 0);
  g_assert_true (ab_fs_copy_at (t->dfd, "src", t->dfd, "dst", &error));
  g_assert_no_error (error);
  g_autofree char *b = read_file_at (t->dfd, "dst/a/b");
  g_assert_cmpstr (b, ==, "bee");
  struct stat s1, s2;
  g_assert_cmpint (fstatat (t->dfd, "src/a/b", &s1, 0), ==, 0);
  g_assert_cmpint (fstatat (t->dfd, "dst/a/b", &s2, 0), ==, 0);
  g_assert_cmpuint (s1.st_ino, !=, s2.st_ino);
  char target[64] = { 0 };
  g_assert_cmpint (readlinkat (t->dfd, "dst/link", target, sizeof target - 1), >, 0);
  g_assert_cmpstr (target, ==, "a/b");
}

static void
test_same_content (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  write_file_at (t->dfd, "a", "same");
  write_file_at (t->dfd, "b", "same");
  write_file_at (t->dfd, "c", "diff");
  gboolean same = FALSE;
  g_assert_true (ab_fs_same_content_at (t->dfd, "a", t->dfd, "b", &same, &error));
  g_assert_true (same);
  g_assert_true (ab_fs_same_content_at (t->dfd, "a", t->dfd, "c", &same, &error));
  g_assert_false (same);
  g_assert_cmpint (fchmodat (t->dfd, "b", 0600, 0), ==, 0);
  g_assert_true (ab_fs_same_content_at (t->dfd, "a", t->dfd, "b", &same, &error));
  g_assert_false (same);
}

static void
test_rm_rf (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  write_file_at (t->dfd, "d/e/f/g", "x");
  g_assert_true (ab_fs_rm_rf_at (t->dfd, "d", &error));
  g_assert_false (ab_fs_exists_at (t->dfd, "d"));
  g_assert_true (ab_fs_rm_rf_at (t->dfd, "d", &error));
}

/* root/ with: d/f (regular), in -> d (relative link inside), up -> ..
 * (leaves the root), abs -> /d (absolute), out -> ../outside/ */
static int
make_tree (TmpDir *t)
{
  write_file_at (t->dfd, "root/d/f", "inside");
  write_file_at (t->dfd, "outside/f", "outside");
  write_file_at (t->dfd, "d/f", "host");
  g_assert_cmpint (symlinkat ("d", t->dfd, "root/in"), ==, 0);
  g_assert_cmpint (symlinkat ("..", t->dfd, "root/up"), ==, 0);
  g_assert_cmpint (symlinkat ("/d", t->dfd, "root/abs"), ==, 0);
  g_assert_cmpint (symlinkat ("../outside", t->dfd, "root/out"), ==, 0);
  g_assert_cmpint (symlinkat ("d/f", t->dfd, "root/lf"), ==, 0);
  return openat (t->dfd, "root", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* What reading ROOT/PATH with HOW gives: the contents, or "ESCAPES",
 * "NOT_FOUND", "FAILED". */
static char *
read_beneath (int root, const char *path, AbFsResolve how)
{
  g_autoptr(GError) error = NULL;
  ab_autofd fd = ab_fs_open_beneath (root, path, O_RDONLY, 0, how, &error);
  if (fd < 0)
    return g_strdup (g_error_matches (error, AB_FS_ERROR, AB_FS_ERROR_ESCAPES) ? "ESCAPES"
                     : g_error_matches (error, AB_FS_ERROR, AB_FS_ERROR_NOT_FOUND) ? "NOT_FOUND"
                     : "FAILED");
  char *data = NULL;
  g_assert_true (ab_fs_read_fd (fd, path, &data, NULL, NULL));
  return data;
}

static void
check_beneath (TmpDir *t, gboolean walk)
{
  ab_autofd root = make_tree (t);
  /* path, NO_SYMLINKS, BENEATH, IN_ROOT (openat2); the walk refuses every link */
  static const char *const cases[][4] = {
    { "d/f", "inside", "inside", "inside" },
    { "in/f", "ESCAPES", "inside", "inside" },
    { "lf", "ESCAPES", "inside", "inside" },
    { "up/outside/f", "ESCAPES", "ESCAPES", "NOT_FOUND" },
    { "abs/f", "ESCAPES", "ESCAPES", "inside" },
    { "out/f", "ESCAPES", "ESCAPES", "NOT_FOUND" },
    { "../outside/f", "ESCAPES", "ESCAPES", "NOT_FOUND" },
    { "d/../d/f", "inside", "inside", "inside" },
    { "d/missing", "NOT_FOUND", "NOT_FOUND", "NOT_FOUND" },
  };
  ab_fs_openat2_disabled = walk;
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    for (int how = AB_FS_RESOLVE_NO_SYMLINKS; how <= AB_FS_RESOLVE_IN_ROOT; how++)
      {
        g_autofree char *got = read_beneath (root, cases[i][0], how);
        const char *want = cases[i][1 + how];
        /* the walk follows no link and no "..": stricter, never looser */
        if (walk && (strstr (cases[i][0], "..") || !g_str_has_prefix (cases[i][0], "d/")))
          want = g_str_equal (want, "NOT_FOUND") || strstr (want, "inside") ? "ESCAPES" : want;
        g_test_message ("%s %d walk=%d: %s", cases[i][0], how, walk, got);
        g_assert_cmpstr (got, ==, want);
      }
  ab_fs_openat2_disabled = FALSE;
}

static void
test_open_beneath (TmpDir *t, gconstpointer data)
{
  check_beneath (t, FALSE);
}

static void
test_open_beneath_walk (TmpDir *t, gconstpointer data)
{
  check_beneath (t, TRUE);
}

/* Creating through a link that leaves the root creates nothing outside. */
static void
test_create_beneath (TmpDir *t, gconstpointer data)
{
  ab_autofd root = make_tree (t);
  for (int walk = 0; walk <= 1; walk++)
    {
      ab_fs_openat2_disabled = walk;
      g_autoptr(GError) error = NULL;
      int fd = ab_fs_open_beneath (root, "out/new", O_WRONLY | O_CREAT, 0644,
                                   AB_FS_RESOLVE_NO_SYMLINKS, &error);
      g_assert_cmpint (fd, <, 0);
      g_assert_error (error, AB_FS_ERROR, AB_FS_ERROR_ESCAPES);
      g_assert_false (ab_fs_exists_at (t->dfd, "outside/new"));
      const char *name = NULL;
      ab_autofd parent = ab_fs_open_parent_beneath (root, "d/new", &name,
                                                    AB_FS_RESOLVE_NO_SYMLINKS, NULL);
      g_assert_cmpint (parent, >=, 0);
      g_assert_cmpstr (name, ==, "new");
    }
  ab_fs_openat2_disabled = FALSE;
}

static int
count_entries (const char *path)
{
  g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
  int n = 0;
  while (g_dir_read_name (dir) != NULL)
    n++;
  return n;
}

/* A write that fails part-way through a batch (here EFBIG past
 * RLIMIT_FSIZE, as ENOSPC or EIO would) changes none of the files. */
static void
test_replace_all_or_nothing (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  write_file_at (t->dfd, "first", "old first");
  write_file_at (t->dfd, "second", "old second");
  g_autofree char *big = g_strnfill (64 * 1024, 'x');
  AbFsWrite files[] = {
    { "first", "new first", 9, 0644 },
    { "second", big, strlen (big), 0644 },
  };
  struct rlimit old, small = { 16 * 1024, 0 };
  g_assert_cmpint (getrlimit (RLIMIT_FSIZE, &old), ==, 0);
  small.rlim_max = old.rlim_max;
  void (*prev) (int) = signal (SIGXFSZ, SIG_IGN);
  g_assert_cmpint (setrlimit (RLIMIT_FSIZE, &small), ==, 0);
  gboolean ok = ab_fs_replace_all_at (t->dfd, files, 2, &error);
  g_assert_cmpint (setrlimit (RLIMIT_FSIZE, &old), ==, 0);
  signal (SIGXFSZ, prev);
  g_assert_false (ok);
  g_assert_nonnull (error);
  g_autofree char *first = read_file_at (t->dfd, "first");
  g_autofree char *second = read_file_at (t->dfd, "second");
  g_assert_cmpstr (first, ==, "old first");
  g_assert_cmpstr (second, ==, "old second");
  g_assert_cmpint (count_entries (t->path), ==, 2);
  /* and without the limit, both are replaced */
  g_clear_error (&error);
  g_assert_true (ab_fs_replace_all_at (t->dfd, files, 2, &error));
  g_autofree char *first2 = read_file_at (t->dfd, "first");
  g_assert_cmpstr (first2, ==, "new first");
  g_assert_cmpint (count_entries (t->path), ==, 2);
}

/* The one errno helper: the errno becomes a typed code, the message keeps
 * the prefix, and a failure deep in a module (here the mount module's
 * path lookup) arrives typed too. */
static void
test_throw_errno_prefix (void)
{
  g_autoptr (GError) error = NULL;
  g_assert_false (ab_throw_errno_prefix (&error, ENOSPC, "Writing %s", "x"));
  g_assert_error (error, AB_FS_ERROR, AB_FS_ERROR_NO_SPACE);
  g_assert_cmpstr (error->message, ==, "Writing x: No space left on device");
  g_clear_error (&error);
  g_assert_false (ab_throw_errno_prefix (&error, EIO, "%s", "Reading"));
  g_assert_error (error, AB_FS_ERROR, AB_FS_ERROR_IO);
  g_assert_true (ab_fs_error_is_local_disk (error));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  TMPDIR_TEST ("/fsutil/replace-roundtrip", test_replace_roundtrip);
  TMPDIR_TEST ("/fsutil/read-missing", test_read_missing);
  TMPDIR_TEST ("/fsutil/exchange", test_exchange);
  TMPDIR_TEST ("/fsutil/copy-tree-is-copy", test_copy_tree_is_copy);
  TMPDIR_TEST ("/fsutil/same-content", test_same_content);
  TMPDIR_TEST ("/fsutil/rm-rf", test_rm_rf);
  TMPDIR_TEST ("/fsutil/open-beneath", test_open_beneath);
  TMPDIR_TEST ("/fsutil/open-beneath-walk", test_open_beneath_walk);
  TMPDIR_TEST ("/fsutil/create-beneath", test_create_beneath);
  TMPDIR_TEST ("/fsutil/replace-all-or-nothing", test_replace_all_or_nothing);
  g_test_add_func ("/fsutil/throw-errno-prefix", test_throw_errno_prefix);
  return g_test_run ();
}
