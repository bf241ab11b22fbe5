/* ab-ostree-error: libostree's untyped errors become typed failures. The
 * signature cases are libostree's own errors, from real pulls of real
 * commits with gpg verification on; the others are the words libostree
 * 2022.7 uses, one row each. */
#include "config.h"
#include <errno.h>
#include <string.h>
#include "ab-ostree-error.h"
#include "ab-test-fixture.h"
#include "ab-test-repo.h"

/* Pulls TREE's commit, signed by SIGN_KEY (NULL: unsigned), from an archive
 * repo into a bare one that trusts only the key exported to TRUSTED;
 * returns libostree's error. */
static GError *
pull_error (TmpDir *t, const char *home, const char *sign_key, const char *trusted)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GFile) src_path = g_file_new_build_filename (t->path, "src", NULL);
  g_autoptr(OstreeRepo) src = ostree_repo_new (src_path);
  g_assert_true (ostree_repo_create (src, OSTREE_REPO_MODE_ARCHIVE, NULL, &error));
  write_file_at (t->dfd, "tree/usr/bin/tool", "#!/bin/sh\n");
  ab_autofd tree = ab_fs_opendir_at (t->dfd, "tree", &error);
  g_autofree char *commit = write_commit (src, tree);
  if (sign_key != NULL)
    g_assert_true (ostree_repo_sign_commit (src, commit, sign_key, home, NULL, &error));
  g_assert_true (ostree_repo_set_ref_immediate (src, NULL, "test", commit, NULL, &error));
  g_assert_no_error (error);
  g_autoptr(GFile) dst_path = g_file_new_build_filename (t->path, "dst", NULL);
  g_autoptr(OstreeRepo) dst = ostree_repo_new (dst_path);
  g_assert_true (ostree_repo_create (dst, OSTREE_REPO_MODE_BARE_USER_ONLY, NULL, &error));
  g_autoptr(GVariantBuilder) b = g_variant_builder_new (G_VARIANT_TYPE ("a{sv}"));
  g_variant_builder_add (b, "{sv}", "gpg-verify", g_variant_new_boolean (TRUE));
  g_variant_builder_add (b, "{sv}", "gpgkeypath", g_variant_new_string (trusted));
  g_autofree char *url = g_strconcat ("file://", t->path, "/src", NULL);
  g_assert_true (ostree_repo_remote_add (dst, "src", url, g_variant_builder_end (b), NULL,
                                         &error));
  char *refs[] = { "test", NULL };
  g_assert_false (ostree_repo_pull (dst, "src", refs, OSTREE_REPO_PULL_FLAGS_NONE, NULL, NULL,
                                    &error));
  g_assert_nonnull (error);
  return g_steal_pointer (&error);
}

typedef struct
{
  char *home;
  char *signer;     /* fingerprint of the key that signs */
  char *trusted;    /* the exported key of another, trusted key */
} Keys;

static void
make_keys (TmpDir *t, Keys *k)
{
  k->home = g_build_filename (t->path, "gnupg", NULL);
  g_autofree char *other_home = g_build_filename (t->path, "gnupg-other", NULL);
  g_assert_cmpint (g_mkdir (k->home, 0700), ==, 0);
  g_assert_cmpint (g_mkdir (other_home, 0700), ==, 0);
  g_autofree char *signer_pub = g_build_filename (t->path, "signer.gpg", NULL);
  k->signer = make_key (k->home, signer_pub);
  k->trusted = g_build_filename (t->path, "trusted.gpg", NULL);
  g_free (make_key (other_home, k->trusted));
}

static void
free_keys (Keys *k)
{
  g_free (k->home);
  g_free (k->signer);
  g_free (k->trusted);
}

static void
test_unsigned_commit (TmpDir *t, gconstpointer data)
{
  Keys k;
  make_keys (t, &k);
  g_autoptr(GError) e = pull_error (t, k.home, NULL, k.trusted);
  g_test_message ("libostree: %s %d: %s", g_quark_to_string (e->domain), e->code, e->message);
  g_assert_cmpint (ab_ostree_failure_of (e), ==, AB_OSTREE_FAILURE_NOT_SIGNED);
  g_assert_true (ab_ostree_failure_is_signature (ab_ostree_failure_of (e)));
  free_keys (&k);
}

static void
test_untrusted_signer (TmpDir *t, gconstpointer data)
{
  Keys k;
  make_keys (t, &k);
  g_autoptr(GError) e = pull_error (t, k.home, k.signer, k.trusted);
  g_assert_cmpint (ab_ostree_failure_of (e), ==, AB_OSTREE_FAILURE_UNTRUSTED);
  g_autofree char *signer = ab_ostree_failure_signer (e);
  g_assert_nonnull (signer);
  /* libostree names the key id: the last hex digits of the fingerprint */
  g_assert_true (g_str_has_suffix (k.signer, signer));
  free_keys (&k);
}

static void
test_typed_gpg_errors (void)
{
  g_autoptr(GError) none = g_error_new_literal (OSTREE_GPG_ERROR, OSTREE_GPG_ERROR_NO_SIGNATURE, "x");
  g_autoptr(GError) key = g_error_new_literal (OSTREE_GPG_ERROR, OSTREE_GPG_ERROR_MISSING_KEY, "x");
  g_autoptr(GError) bad = g_error_new_literal (OSTREE_GPG_ERROR, OSTREE_GPG_ERROR_INVALID_SIGNATURE, "x");
  g_assert_cmpint (ab_ostree_failure_of (none), ==, AB_OSTREE_FAILURE_NOT_SIGNED);
  g_assert_cmpint (ab_ostree_failure_of (key), ==, AB_OSTREE_FAILURE_UNTRUSTED);
  g_assert_cmpint (ab_ostree_failure_of (bad), ==, AB_OSTREE_FAILURE_SIGNATURE);
}

static void
test_words (void)
{
  g_autofree char *efbig = g_strdup_printf ("Writing content object: %s", g_strerror (EFBIG));
  g_autofree char *eio = g_strdup_printf ("fsync: %s", g_strerror (EIO));
  const struct { const char *message; AbOstreeFailure want; } rows[] = {
    { "Corrupted file object; checksum expected='aa' actual='bb'", AB_OSTREE_FAILURE_CORRUPTED },
    { "Invalid checksum for object 12ab", AB_OSTREE_FAILURE_CHECKSUM },
    { efbig, AB_OSTREE_FAILURE_OBJECT_TOO_BIG },
    { "Metadata object 12ab.dirtree exceeded maximum size", AB_OSTREE_FAILURE_METADATA_TOO_BIG },
    { eio, AB_OSTREE_FAILURE_IO },
    { "Server returned HTTP 500", AB_OSTREE_FAILURE_OTHER },
  };
  for (guint i = 0; i < G_N_ELEMENTS (rows); i++)
    {
      g_autoptr(GError) e = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_FAILED, rows[i].message);
      g_assert_cmpint (ab_ostree_failure_of (e), ==, rows[i].want);
      g_assert_false (ab_ostree_failure_is_signature (rows[i].want));
      g_assert_null (ab_ostree_failure_signer (e));
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  TMPDIR_TEST ("/ostree-error/unsigned-commit", test_unsigned_commit);
  TMPDIR_TEST ("/ostree-error/untrusted-signer", test_untrusted_signer);
  g_test_add_func ("/ostree-error/typed-gpg-errors", test_typed_gpg_errors);
  g_test_add_func ("/ostree-error/words", test_words);
  return g_test_run ();
}
