#include "config.h"
#include <string.h>
#include <sys/stat.h>
#include "ab-content.h"
#include "ab-test-fixture.h"

typedef struct
{
  TmpDir tmp;
  OstreeRepo *repo;
  char *commit;
} RepoFixture;

static char *
write_commit (OstreeRepo *repo, int tree_dfd)
{
  g_autoptr(GError) error = NULL;
  g_assert_true (ostree_repo_prepare_transaction (repo, NULL, NULL, &error));
  g_autoptr(OstreeMutableTree) mtree = ostree_mutable_tree_new ();
  g_assert_true (ostree_repo_write_dfd_to_mtree (repo, tree_dfd, ".", mtree, NULL, NULL, &error));
  g_autoptr(GFile) root = NULL;
  g_assert_true (ostree_repo_write_mtree (repo, mtree, &root, NULL, &error));
  g_autoptr(GVariantDict) meta = g_variant_dict_new (NULL);
  g_variant_dict_insert (meta, "version", "s", "4.2");
  g_autofree char *commit = NULL;
  g_assert_true (ostree_repo_write_commit (repo, NULL, "test", NULL, g_variant_dict_end (meta),
                                           OSTREE_REPO_FILE (root), &commit, NULL, &error));
  g_assert_true (ostree_repo_commit_transaction (repo, NULL, NULL, &error));
  g_assert_no_error (error);
  return g_steal_pointer (&commit);
}

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

/* A real GPG key in a throwaway home; returns its fingerprint. */
static char *
make_key (const char *home, const char *export_to)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *params = g_build_filename (home, "params", NULL);
  g_assert_true (g_file_set_contents (params,
      "%no-protection\nKey-Type: RSA\nKey-Length: 2048\nName-Real: Unit Test\n"
      "Name-Email: unit@example.org\nExpire-Date: 0\n%commit\n", -1, &error));
  g_autofree char *gen = g_strdup_printf ("gpg --batch --quiet --homedir %s --gen-key %s", home, params);
  int status = 0;
  g_assert_true (g_spawn_command_line_sync (gen, NULL, NULL, &status, &error));
  g_assert_cmpint (status, ==, 0);
  g_autofree char *list = g_strdup_printf ("gpg --batch --homedir %s --with-colons --list-keys", home);
  g_autofree char *out = NULL;
  g_assert_true (g_spawn_command_line_sync (list, &out, NULL, &status, &error));
  char *fpr = strstr (out, "\nfpr:::::::::");
  g_assert_nonnull (fpr);
  char *keyid = g_strndup (fpr + strlen ("\nfpr:::::::::"), 40);
  g_autofree char *exp = g_strdup_printf ("sh -c 'gpg --batch --homedir %s --export %s > %s'",
                                          home, keyid, export_to);
  g_assert_true (g_spawn_command_line_sync (exp, NULL, NULL, &status, &error));
  g_assert_cmpint (status, ==, 0);
  return keyid;
}

static void
test_no_trusted_keys_refused (RepoFixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_assert_false (ab_content_verify (f->repo, f->tmp.dfd, f->commit, &error));
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
  g_assert_false (ab_content_verify (f->repo, f->tmp.dfd, f->commit, &error));
  g_assert_error (error, AB_CONTENT_ERROR, AB_CONTENT_ERROR_VERIFY);
  g_assert_nonnull (strstr (error->message, "not signed"));
  g_clear_error (&error);
  g_assert_true (ostree_repo_sign_commit (f->repo, f->commit, keyid, home, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (ab_content_verify (f->repo, f->tmp.dfd, f->commit, &error));
  g_assert_no_error (error);
}

static void
test_checkout_hardlinks (RepoFixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_assert_true (ab_content_checkout (f->repo, f->commit, f->tmp.dfd, "co", NULL, &error));
  g_assert_no_error (error);
  struct stat st;
  g_assert_cmpint (fstatat (f->tmp.dfd, "co/usr/bin/tool", &st, 0), ==, 0);
  g_assert_cmpuint (st.st_nlink, >=, 2);
  g_autofree char *version = ab_content_commit_version (f->repo, f->commit, &error);
  g_assert_cmpstr (version, ==, "4.2");
}

static void
test_bad_source (RepoFixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *commit = NULL;
  g_assert_false (ab_content_pull (f->repo, f->tmp.dfd, "ftp://example.invalid/", "x", NULL,
                                   NULL, NULL, NULL, &commit, &error));
  g_assert_error (error, AB_CONTENT_ERROR, AB_CONTENT_ERROR_USAGE);
  g_clear_error (&error);
  g_assert_false (ab_content_pull (f->repo, f->tmp.dfd, f->tmp.path, "x", NULL, NULL, NULL, NULL,
                                   &commit, &error));
  g_assert_error (error, AB_CONTENT_ERROR, AB_CONTENT_ERROR_USAGE);
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
  REPO_TEST ("/content/bad-source", test_bad_source);
  return g_test_run ();
}
