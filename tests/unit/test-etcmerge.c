#include "config.h"
#include <sys/stat.h>
#include "ab-etcmerge.h"
#include "ab-test-fixture.h"
#include <unistd.h>

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

/* ---- links from the new image (issue 10) ---- */

typedef struct
{
  const char *target;     /* of new/usr/etc/somedir; "%s" is the scratch dir */
  gboolean change;        /* the operator changed and added files in somedir */
  gboolean delete;        /* the operator deleted somedir/deleted.conf */
  gboolean walk;          /* without openat2 */
} LinkCase;

/* outside/ holds the files a merge through the link would touch. */
static void
setup_link_trees (TmpDir *t, const LinkCase *c)
{
  write_file_at (t->dfd, "outside/somedir/changed.conf", "outside");
  write_file_at (t->dfd, "outside/somedir/deleted.conf", "outside");
  write_file_at (t->dfd, "outside/changed.conf", "outside");
  write_file_at (t->dfd, "outside/deleted.conf", "outside");
  write_file_at (t->dfd, "old/usr/etc/somedir/changed.conf", "default-1");
  write_file_at (t->dfd, "old/usr/etc/somedir/deleted.conf", "default-1");
  write_file_at (t->dfd, "old/etc/somedir/changed.conf", c->change ? "operator" : "default-1");
  if (c->change)
    write_file_at (t->dfd, "old/etc/somedir/added.conf", "operator-added");
  if (!c->delete)
    write_file_at (t->dfd, "old/etc/somedir/deleted.conf", "default-1");
  write_file_at (t->dfd, "new/usr/etc/other.conf", "default-2");
  g_autofree char *target = g_strdup_printf (c->target, t->path);
  g_assert_true (ab_fs_mkdir_p_at (t->dfd, "new/usr/etc", 0755, NULL));
  g_assert_cmpint (symlinkat (target, t->dfd, "new/usr/etc/somedir"), ==, 0);
}

/* Nothing below outside/ (or beside the trees) was written or deleted. */
static void
assert_outside_untouched (TmpDir *t)
{
  static const char *const files[] = { "outside/somedir/changed.conf",
                                       "outside/somedir/deleted.conf", "outside/changed.conf",
                                       "outside/deleted.conf" };
  for (guint i = 0; i < G_N_ELEMENTS (files); i++)
    assert_file (t, files[i], "outside");
  g_assert_false (ab_fs_exists_at (t->dfd, "outside/somedir/added.conf"));
  g_assert_false (ab_fs_exists_at (t->dfd, "outside/added.conf"));
  g_autoptr(GDir) dir = g_dir_open (t->path, 0, NULL);
  const char *name;
  while ((name = g_dir_read_name (dir)) != NULL)
    g_assert_true (g_strv_contains ((const char *const[]) { "outside", "old", "new", NULL }, name));
}

static void
check_link_case (TmpDir *t, const LinkCase *c)
{
  setup_link_trees (t, c);
  ab_fs_openat2_disabled = c->walk;
  g_autoptr(GError) error = NULL;
  ab_autofd old_dfd = ab_fs_opendir_at (t->dfd, "old", &error);
  ab_autofd new_dfd = ab_fs_opendir_at (t->dfd, "new", &error);
  gboolean ok = ab_etc_merge (old_dfd, new_dfd, &error);
  ab_fs_openat2_disabled = FALSE;
  g_test_message ("%s change=%d delete=%d walk=%d: %s", c->target, c->change, c->delete,
                  c->walk, error ? error->message : "merged");
  assert_outside_untouched (t);
  if (!c->change && !c->delete)
    {
      /* no local change below the link: the image's link is kept as it is */
      g_assert_no_error (error);
      g_assert_true (ok);
      return;
    }
  g_assert_false (ok);
  g_assert_error (error, AB_ETCMERGE_ERROR, AB_ETCMERGE_ERROR_CONFLICT);
  g_assert_nonnull (strstr (error->message, c->change ? "changed etc/somedir/" : "deleted etc/somedir/deleted.conf"));
  g_assert_nonnull (strstr (error->message, "symbolic link"));
}

/* The new image turns etc/somedir into a link (absolute, or climbing out
 * with ../../..) while the operator has changes in it: the merge is
 * refused and writes or deletes nothing outside the tree. */
static void
test_new_dir_became_link (void)
{
  /* new/etc/somedir -> ../.. is the scratch dir itself: out of the image */
  static const char *const targets[] = { "%s/outside/somedir", "../..", "../../outside" };
  for (guint i = 0; i < G_N_ELEMENTS (targets); i++)
    for (int mode = 0; mode < 4; mode++)
      for (int walk = 0; walk <= 1; walk++)
        {
          TmpDir t;
          tmpdir_setup (&t, NULL);
          LinkCase c = { targets[i], mode & 1, (mode & 2) != 0, walk };
          check_link_case (&t, &c);
          tmpdir_teardown (&t, NULL);
        }
}

/* A new usr/etc that is itself a link is refused, not copied through. */
static void
test_new_usr_etc_is_link (TmpDir *t, gconstpointer data)
{
  write_file_at (t->dfd, "outside/passwd", "outside");
  g_assert_true (ab_fs_mkdir_p_at (t->dfd, "new/usr", 0755, NULL));
  g_autofree char *target = g_build_filename (t->path, "outside", NULL);
  g_assert_cmpint (symlinkat (target, t->dfd, "new/usr/etc"), ==, 0);
  g_autoptr(GError) error = NULL;
  ab_autofd new_dfd = ab_fs_opendir_at (t->dfd, "new", &error);
  g_assert_false (ab_etc_merge (-1, new_dfd, &error));
  g_assert_error (error, AB_ETCMERGE_ERROR, AB_ETCMERGE_ERROR_FAILED);
  g_assert_false (ab_fs_exists_at (t->dfd, "new/etc"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  TMPDIR_TEST ("/etcmerge/three-way", test_three_way);
  TMPDIR_TEST ("/etcmerge/first-deployment", test_first_deployment);
  TMPDIR_TEST ("/etcmerge/mode-change-is-kept", test_mode_change_is_kept);
  g_test_add_func ("/etcmerge/new-dir-became-link", test_new_dir_became_link);
  TMPDIR_TEST ("/etcmerge/new-usr-etc-is-link", test_new_usr_etc_is_link);
  return g_test_run ();
}
