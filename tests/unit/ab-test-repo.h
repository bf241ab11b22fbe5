/* OSTree repos and real GPG keys for unit tests. */
#pragma once

#include <glib.h>
#include <ostree.h>
#include <string.h>

/* Commits the tree at TREE_DFD to REPO (version "4.2"); returns the checksum. */
static inline char *
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

/* A real GPG key in a throwaway home; returns its fingerprint. */
static inline char *
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
