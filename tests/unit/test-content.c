#include "config.h"
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include "ab-content.h"
#include "ab-test-fixture.h"
#include "ab-test-repo.h"

typedef struct
{
  TmpDir tmp;
  OstreeRepo *repo;
  char *commit;
} RepoFixture;

static void
repo_setup (RepoFixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  tmpdir_setup (&f->tmp, data);
  g_assert_true (ab_fs_mkdir_p_at (f->tmp.dfd, "ostree", 0755, &error));
  g_assert_true (ab_fs_mkdir_p_at (f->tmp.dfd, AB_TRUSTED_KEYS_DIR, 0755, &error));
  f->repo = ab_content_create_repo (f->tmp.dfd, &error);
  g_assert_no_error (error);
  write_file_at (f->tmp.dfd, "tree/usr/bin/tool", "#!/bin/sh\n");
  write_file_at (f->tmp.dfd, "tree/usr/etc/motd", "hello\n");
  ab_autofd tree = ab_fs_opendir_at (f->tmp.dfd, "tree", &error);
  f->commit = write_commit (f->repo, tree);
}

static void
repo_teardown (RepoFixture *f, gconstpointer data)
{
  g_clear_object (&f->repo);
  g_free (f->commit);
  tmpdir_teardown (&f->tmp, data);
}

static void
test_no_trusted_keys_refused (RepoFixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_assert_false (ab_content_verify (f->repo, f->tmp.path, f->commit, &error));
  g_assert_error (error, AB_CONTENT_ERROR, AB_CONTENT_ERROR_VERIFY);
  g_assert_nonnull (strstr (error->message, "trusted"));
}

static void
test_unsigned_refused_signed_accepted (RepoFixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *home = g_build_filename (f->tmp.path, "gnupg", NULL);
  g_assert_cmpint (g_mkdir (home, 0700), ==, 0);
  g_autofree char *pub = g_build_filename (f->tmp.path, AB_TRUSTED_KEYS_DIR, "test.gpg", NULL);
  g_autofree char *keyid = make_key (home, pub);
  g_assert_false (ab_content_verify (f->repo, f->tmp.path, f->commit, &error));
  g_assert_error (error, AB_CONTENT_ERROR, AB_CONTENT_ERROR_VERIFY);
  g_assert_nonnull (strstr (error->message, "not signed"));
  g_clear_error (&error);
  g_assert_true (ostree_repo_sign_commit (f->repo, f->commit, keyid, home, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (ab_content_verify (f->repo, f->tmp.path, f->commit, &error));
  g_assert_no_error (error);
}

static void
test_checkout_hardlinks (RepoFixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_assert_true (ab_content_checkout (f->repo, f->commit, f->tmp.dfd, "co", NULL, NULL, &error));
  g_assert_no_error (error);
  struct stat st;
  g_assert_cmpint (fstatat (f->tmp.dfd, "co/usr/bin/tool", &st, 0), ==, 0);
  g_assert_cmpuint (st.st_nlink, >=, 2);
  g_autofree char *version = ab_content_commit_version (f->repo, f->commit, &error);
  g_assert_cmpstr (version, ==, "4.2");
}

/* Lists every entry under ROOT as "path type mode uid gid inode-or-target",
 * sorted, for comparing two checkouts. */
static void
list_tree (const char *root, const char *rel, GPtrArray *out)
{
  g_autofree char *dir_path = g_build_filename (root, rel, NULL);
  g_autoptr(GDir) dir = g_dir_open (dir_path, 0, NULL);
  g_assert_nonnull (dir);
  const char *name;
  while ((name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *child = g_build_filename (rel, name, NULL);
      g_autofree char *path = g_build_filename (root, child, NULL);
      struct stat st;
      g_assert_cmpint (lstat (path, &st), ==, 0);
      g_autofree char *what = S_ISLNK (st.st_mode) ? g_file_read_link (path, NULL)
                              : S_ISREG (st.st_mode) ? g_strdup_printf ("%lu", (gulong) st.st_ino)
                                                     : g_strdup_printf ("dir mtime %ld",
                                                                        (long) st.st_mtime);
      g_ptr_array_add (out, g_strdup_printf ("%s %o %u %u %s", child, st.st_mode, st.st_uid,
                                             st.st_gid, what));
      if (S_ISDIR (st.st_mode))
        list_tree (root, child, out);
    }
}

static int
compare_lines (gconstpointer a, gconstpointer b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

static char *
tree_listing (const char *root)
{
  g_autoptr(GPtrArray) lines = g_ptr_array_new_with_free_func (g_free);
  list_tree (root, "", lines);
  g_ptr_array_sort (lines, compare_lines);
  g_ptr_array_add (lines, NULL);
  return g_strjoinv ("\n", (char **) lines->pdata);
}

/* The checkout is split over threads below a skeleton (and, from a bare
 * repo, made by abdeploy's own linkat walk); the result must be the tree
 * libostree checks out in one pass: same entries, modes, owners, directory
 * times, symlink targets, and every file a hardlink of the same repo object. */
static void
test_checkout_parallel_matches_single_pass (RepoFixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  const char *files[] = { "top", "usr/one", "usr/lib/two", "usr/lib/a/three", "usr/lib/a/b/four",
                          "usr/lib/a/b/c/five", "usr/lib/z/six", "usr/share/doc/x/seven",
                          "usr/share/doc/y/eight", "etc/nine" };
  for (guint i = 0; i < G_N_ELEMENTS (files); i++)
    {
      g_autofree char *name = g_build_filename ("deep", files[i], NULL);
      write_file_at (f->tmp.dfd, name, files[i]);
    }
  g_assert_true (ab_fs_mkdir_p_at (f->tmp.dfd, "deep/usr/lib/empty", 0755, &error));
  g_assert_cmpint (symlinkat ("a/three", f->tmp.dfd, "deep/usr/lib/link"), ==, 0);
  g_assert_cmpint (symlinkat ("../lib", f->tmp.dfd, "deep/usr/share/dirlink"), ==, 0);
  g_assert_cmpint (fchmodat (f->tmp.dfd, "deep/usr/lib/a/b", 0700, 0), ==, 0);
  g_assert_cmpint (fchmodat (f->tmp.dfd, "deep/usr/lib/z", 0555, 0), ==, 0);
  g_assert_cmpint (fchownat (f->tmp.dfd, "deep/usr/lib/z", 1234, 5678, 0), ==, 0);
  g_assert_cmpint (fchmodat (f->tmp.dfd, "deep/usr/lib/a", 02755, 0), ==, 0);
  g_assert_cmpint (fchmodat (f->tmp.dfd, "deep/usr/share/doc", 0555, 0), ==, 0);
  ab_autofd tree = ab_fs_opendir_at (f->tmp.dfd, "deep", &error);
  g_autofree char *commit = write_commit (f->repo, tree);

  g_assert_true (ab_content_checkout (f->repo, commit, f->tmp.dfd, "co", NULL, NULL, &error));
  g_assert_no_error (error);
  OstreeRepoCheckoutAtOptions opts = { 0 };
  opts.no_copy_fallback = TRUE;
  g_assert_true (ostree_repo_checkout_at (f->repo, &opts, f->tmp.dfd, "ref", commit, NULL, &error));
  g_assert_no_error (error);

  g_autofree char *co = g_build_filename (f->tmp.path, "co", NULL);
  g_autofree char *ref = g_build_filename (f->tmp.path, "ref", NULL);
  g_autofree char *co_list = tree_listing (co);
  g_autofree char *ref_list = tree_listing (ref);
  g_assert_cmpstr (co_list, ==, ref_list);
  g_assert_nonnull (strstr (co_list, "usr/lib/a/b/c/five"));
  g_assert_nonnull (strstr (co_list, "usr/share/doc/y/eight"));
}

/* A failed checkout (the destination exists) reports the commit. */
static void
test_checkout_existing_destination_fails (RepoFixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_assert_true (ab_fs_mkdir_p_at (f->tmp.dfd, "co/usr", 0755, &error));
  g_assert_false (ab_content_checkout (f->repo, f->commit, f->tmp.dfd, "co", NULL, NULL, &error));
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, f->commit));
}

static void
test_bad_source (RepoFixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *commit = NULL;
  g_assert_false (ab_content_pull (f->repo, f->tmp.path, "ftp://example.invalid/", "x", NULL,
                                   NULL, NULL, NULL, &commit, &error));
  g_assert_error (error, AB_CONTENT_ERROR, AB_CONTENT_ERROR_USAGE);
  g_clear_error (&error);
  g_assert_false (ab_content_pull (f->repo, f->tmp.path, f->tmp.path, "x", NULL, NULL, NULL, NULL,
                                   &commit, &error));
  g_assert_error (error, AB_CONTENT_ERROR, AB_CONTENT_ERROR_USAGE);
}

/* The one delta superblock under ROOT/ostree/repo/deltas (names there are
 * libostree's modified base64), relative to ROOT. */
static char *
find_superblock (const char *root)
{
  g_autofree char *top = g_build_filename (root, "ostree/repo/deltas", NULL);
  g_autoptr(GDir) d1 = g_dir_open (top, 0, NULL);
  const char *a = d1 ? g_dir_read_name (d1) : NULL;
  g_assert_nonnull (a);
  g_autofree char *mid = g_build_filename (top, a, NULL);
  g_autoptr(GDir) d2 = g_dir_open (mid, 0, NULL);
  const char *b = d2 ? g_dir_read_name (d2) : NULL;
  g_assert_nonnull (b);
  return g_build_filename ("ostree/repo/deltas", a, b, "superblock", NULL);
}

/* The superblock of a real delta tells what applying it writes: at least
 * the 256 KiB file it adds (compressed to much less); junk tells nothing. */
static void
test_delta_unpacked_bytes (RepoFixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *big = g_strnfill (256 * 1024, 'x');
  write_file_at (f->tmp.dfd, "tree/usr/lib/big", big);
  ab_autofd tree = ab_fs_opendir_at (f->tmp.dfd, "tree", &error);
  g_autofree char *to = write_commit (f->repo, tree);
  g_autoptr(GVariant) params = g_variant_ref_sink (g_variant_new ("a{sv}", NULL));
  g_assert_true (ostree_repo_static_delta_generate (f->repo, OSTREE_STATIC_DELTA_GENERATE_OPT_MAJOR,
                                                    f->commit, to, NULL, params, NULL, &error));
  g_assert_no_error (error);
  g_autofree char *rel = find_superblock (f->tmp.path);
  g_autofree char *sb = NULL;
  gsize len = 0;
  g_assert_true (ab_fs_read_at (f->tmp.dfd, rel, &sb, &len, &error));
  g_autoptr(GBytes) bytes = g_bytes_new (sb, len);
  guint64 n = ab_content_delta_unpacked_bytes (bytes);
  g_assert_cmpuint (n, >=, 256 * 1024);
  g_assert_cmpuint (n, <, 1024 * 1024);
  g_autoptr(GBytes) junk = g_bytes_new_static ("not a superblock", 16);
  g_assert_cmpuint (ab_content_delta_unpacked_bytes (junk), ==, 0);
}

static void
test_free_space_check (RepoFixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_assert_true (ab_content_check_free_space (f->tmp.dfd, 0, 0, "nothing", &error));
  g_assert_false (ab_content_check_free_space (f->tmp.dfd, G_MAXUINT64 / 2, 4096, "a test",
                                               &error));
  g_assert_error (error, AB_CONTENT_ERROR, AB_CONTENT_ERROR_NO_SPACE);
  g_autofree char *needed = g_strdup_printf ("needs %" G_GUINT64_FORMAT " bytes", G_MAXUINT64 / 2);
  g_assert_nonnull (strstr (error->message, needed));
  g_assert_nonnull (strstr (error->message, "min-free-space=4096"));
  g_assert_nonnull (strstr (error->message, "are available"));
}


/* Replaces the content of every file object of the bare repo at ROOT
 * (an absolute path) that holds FROM with TO (same length). */
static guint
tamper_objects (const char *root, const char *from, const char *to)
{
  guint n = 0;
  for (guint i = 0; i < 256; i++)
    {
      g_autofree char *dir = g_strdup_printf ("%s/objects/%02x", root, i);
      g_autoptr(GDir) list = g_dir_open (dir, 0, NULL);
      const char *name;
      while (list != NULL && (name = g_dir_read_name (list)) != NULL)
        {
          g_autofree char *path = g_build_filename (dir, name, NULL);
          g_autofree char *data = NULL;
          if (!g_str_has_suffix (name, ".file") || !g_file_get_contents (path, &data, NULL, NULL)
              || !g_str_equal (data, from))
            continue;
          ab_autofd fd = open (path, O_WRONLY | O_TRUNC | O_CLOEXEC);
          g_assert_cmpint (fd, >=, 0);
          g_assert_cmpint (write (fd, to, strlen (to)), ==, (gssize) strlen (to));
          n++;
        }
    }
  return n;
}

/* A local source whose file object does not hash to its name: typed
 * AB_CONTENT_ERROR_CORRUPTED (callers decide on the code, not on the
 * words of libostree's message), and the message still says so. */
static void
test_corrupted_source_is_typed (RepoFixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *home = g_build_filename (f->tmp.path, "gnupg", NULL);
  g_assert_cmpint (g_mkdir (home, 0700), ==, 0);
  g_autofree char *pub = g_build_filename (f->tmp.path, AB_TRUSTED_KEYS_DIR, "test.gpg", NULL);
  g_autofree char *keyid = make_key (home, pub);
  g_autofree char *src_path = g_build_filename (f->tmp.path, "src", NULL);
  g_autoptr(GFile) src_dir = g_file_new_for_path (src_path);
  g_autoptr(OstreeRepo) src = ostree_repo_new (src_dir);
  g_assert_true (ostree_repo_create (src, OSTREE_REPO_MODE_BARE, NULL, &error));
  g_assert_no_error (error);
  write_file_at (f->tmp.dfd, "tree2/usr/bin/other", "original content\n");
  ab_autofd tree = ab_fs_opendir_at (f->tmp.dfd, "tree2", &error);
  g_autofree char *commit = write_commit (src, tree);
  g_assert_true (ostree_repo_sign_commit (src, commit, keyid, home, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (tamper_objects (src_path, "original content\n", "tampered content\n"),
                    ==, 1);
  g_autofree char *pulled = NULL;
  g_assert_false (ab_content_pull (f->repo, f->tmp.path, src_path, commit, NULL, NULL, NULL, NULL,
                                   &pulled, &error));
  g_assert_error (error, AB_CONTENT_ERROR, AB_CONTENT_ERROR_CORRUPTED);
  g_assert_nonnull (strstr (error->message, "corrupted object"));
}

#define REPO_TEST(name, func) \
  g_test_add (name, RepoFixture, NULL, repo_setup, func, repo_teardown)

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  REPO_TEST ("/content/no-trusted-keys-refused", test_no_trusted_keys_refused);
  REPO_TEST ("/content/unsigned-refused-signed-accepted", test_unsigned_refused_signed_accepted);
  REPO_TEST ("/content/checkout-hardlinks", test_checkout_hardlinks);
  REPO_TEST ("/content/checkout-parallel-matches-single-pass",
             test_checkout_parallel_matches_single_pass);
  REPO_TEST ("/content/checkout-existing-destination-fails",
             test_checkout_existing_destination_fails);
  REPO_TEST ("/content/bad-source", test_bad_source);
  REPO_TEST ("/content/delta-unpacked-bytes", test_delta_unpacked_bytes);
  REPO_TEST ("/content/free-space-check", test_free_space_check);
  REPO_TEST ("/content/corrupted-source-is-typed", test_corrupted_source_is_typed);
  return g_test_run ();
}
