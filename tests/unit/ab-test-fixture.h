/* A scratch directory per test: fixture->dfd is open on it and it is
 * removed afterwards. */
#pragma once

#include <fcntl.h>
#include <glib.h>
#include <glib/gstdio.h>
#include "ab-fsutil.h"
#include "ab-util.h"

typedef struct
{
  char *path;
  int dfd;
} TmpDir;

static inline void
tmpdir_setup (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  t->path = g_dir_make_tmp ("abdeploy-test-XXXXXX", &error);
  g_assert_no_error (error);
  t->dfd = open (t->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  g_assert_cmpint (t->dfd, >=, 0);
}

static inline void
tmpdir_teardown (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_assert_true (ab_fs_rm_rf_at (AT_FDCWD, t->path, &error));
  g_assert_no_error (error);
  close (t->dfd);
  g_free (t->path);
}

#define TMPDIR_TEST(name, func) \
  g_test_add (name, TmpDir, NULL, tmpdir_setup, func, tmpdir_teardown)

static inline void
write_file_at (int dfd, const char *name, const char *contents)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *parent = g_path_get_dirname (name);
  if (g_strcmp0 (parent, ".") != 0)
    g_assert_true (ab_fs_mkdir_p_at (dfd, parent, 0755, &error));
  g_assert_true (ab_fs_replace_at (dfd, name, contents, strlen (contents), 0644, &error));
  g_assert_no_error (error);
}

static inline char *
read_file_at (int dfd, const char *name)
{
  g_autoptr(GError) error = NULL;
  char *data = NULL;
  g_assert_true (ab_fs_read_at (dfd, name, &data, NULL, &error));
  g_assert_no_error (error);
  return data;
}
