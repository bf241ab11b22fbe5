#include "config.h"
#include <sys/stat.h>
#include "ab-etcmerge.h"
#include "ab-test-fixture.h"

/* old/ is the running deployment, new/ the one being built. */
static void
setup_trees (TmpDir *t)
{
  write_file_at (t->dfd, "old/usr/etc/kept.conf", "default-1");
  write_file_at (t->dfd, "old/usr/etc/changed.conf", "default-1");
  write_file_at (t->dfd, "old/usr/etc/deleted.conf", "default-1");
  write_file_at (t->dfd, "old/usr/etc/sub/nested.conf", "default-1");
  write_file_at (t->dfd, "old/etc/kept.conf", "default-1");
  write_file_at (t->dfd, "old/etc/changed.conf", "operator");
  write_file_at (t->dfd, "old/etc/sub/nested.conf", "operator-nested");
  write_file_at (t->dfd, "old/etc/added.conf", "operator-added");
  write_file_at (t->dfd, "new/usr/etc/kept.conf", "default-2");
  write_file_at (t->dfd, "new/usr/etc/changed.conf", "default-2");
  write_file_at (t->dfd, "new/usr/etc/deleted.conf", "default-2");
  write_file_at (t->dfd, "new/usr/etc/brand-new.conf", "default-2");
}

static void
merge (TmpDir *t, gboolean with_old)
{
  g_autoptr(GError) error = NULL;
  ab_autofd old_dfd = with_old ? ab_fs_opendir_at (t->dfd, "old", &error) : -1;
  ab_autofd new_dfd = ab_fs_opendir_at (t->dfd, "new", &error);
  g_assert_true (ab_etc_merge (old_dfd, new_dfd, &error));
  g_assert_no_error (error);
}

static void
assert_file (TmpDir *t, const char *name, const char *expected)
{
  g_autofree char *got = read_file_at (t->dfd, name);
  g_assert_cmpstr (got, ==, expected);
}

static void
test_three_way (TmpDir *t, gconstpointer data)
{
  setup_trees (t);
  merge (t, TRUE);
  assert_file (t, "new/etc/kept.conf", "default-2");
  assert_file (t, "new/etc/changed.conf", "operator");
  assert_file (t, "new/etc/brand-new.conf", "default-2");
  assert_file (t, "new/etc/added.conf", "operator-added");
  assert_file (t, "new/etc/sub/nested.conf", "operator-nested");
  g_assert_false (ab_fs_exists_at (t->dfd, "new/etc/deleted.conf"));
  /* Defaults are untouched and etc holds copies, not hardlinks. */
  assert_file (t, "new/usr/etc/changed.conf", "default-2");
  struct stat st;
  g_assert_cmpint (fstatat (t->dfd, "new/etc/kept.conf", &st, 0), ==, 0);
  g_assert_cmpuint (st.st_nlink, ==, 1);
}

static void
test_first_deployment (TmpDir *t, gconstpointer data)
{
  setup_trees (t);
  merge (t, FALSE);
  assert_file (t, "new/etc/changed.conf", "default-2");
  assert_file (t, "new/etc/deleted.conf", "default-2");
  g_assert_false (ab_fs_exists_at (t->dfd, "new/etc/added.conf"));
}

static void
test_mode_change_is_kept (TmpDir *t, gconstpointer data)
{
  setup_trees (t);
  g_assert_cmpint (fchmodat (t->dfd, "old/etc/kept.conf", 0600, 0), ==, 0);
  merge (t, TRUE);
  struct stat st;
  g_assert_cmpint (fstatat (t->dfd, "new/etc/kept.conf", &st, 0), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0600);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  TMPDIR_TEST ("/etcmerge/three-way", test_three_way);
  TMPDIR_TEST ("/etcmerge/first-deployment", test_first_deployment);
  TMPDIR_TEST ("/etcmerge/mode-change-is-kept", test_mode_change_is_kept);
  return g_test_run ();
}
