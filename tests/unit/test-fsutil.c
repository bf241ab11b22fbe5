#include "config.h"
#include <string.h>
#include <sys/stat.h>
#include "ab-test-fixture.h"

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
  return g_test_run ();
}
