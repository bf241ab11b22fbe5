#include "config.h"
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "ab-import.h"
#include "ab-content.h"
#include "ab-test-fixture.h"
#include "ab-test-repo.h"

/* Two real keys, made once: the trusted one and a stranger's. */
static struct
{
  TmpDir dir;
  char *home;
  char *trusted_id;
  char *trusted_pub;
  char *stranger_home;
  char *stranger_id;
} keys;

typedef struct
{
  TmpDir tmp;
  OstreeRepo *src;
  OstreeRepo *dest;
  char *commit; /* signed by the trusted key */
} ImportFixture;

static OstreeRepo *
make_bare_repo (int dfd, const char *path)
{
  g_autoptr(GError) error = NULL;
  g_assert_true (ab_fs_mkdir_p_at (dfd, path, 0755, &error));
  OstreeRepo *repo = ostree_repo_create_at (dfd, path, OSTREE_REPO_MODE_BARE, NULL, NULL, &error);
  g_assert_no_error (error);
  return repo;
}

static char *
commit_tree (ImportFixture *f, const char *name, const char *keyid)
{
  const char *home = g_strcmp0 (keyid, keys.stranger_id) == 0 ? keys.stranger_home : keys.home;
  g_autoptr(GError) error = NULL;
  ab_autofd tree = ab_fs_opendir_at (f->tmp.dfd, name, &error);
  g_assert_no_error (error);
  char *commit = write_commit (f->src, tree);
  if (keyid != NULL)
    g_assert_true (ostree_repo_sign_commit (f->src, commit, keyid, home, NULL, &error));
  g_assert_no_error (error);
  return commit;
}

static void
import_setup (ImportFixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  tmpdir_setup (&f->tmp, data);
  f->src = make_bare_repo (f->tmp.dfd, "src");
  f->dest = make_bare_repo (f->tmp.dfd, "dest");
  g_autoptr(GVariantBuilder) b = g_variant_builder_new (G_VARIANT_TYPE ("a{sv}"));
  g_variant_builder_add (b, "{sv}", "gpg-verify", g_variant_new_string ("true"));
  g_variant_builder_add (b, "{sv}", "gpgkeypath", g_variant_new_string (keys.trusted_pub));
  g_assert_true (ostree_repo_remote_change (f->dest, NULL, OSTREE_REPO_REMOTE_CHANGE_ADD, "media",
                                            "file:///nonexistent", g_variant_builder_end (b),
                                            NULL, &error));
  g_assert_no_error (error);
  write_file_at (f->tmp.dfd, "tree/usr/bin/tool", "#!/bin/sh\necho tool\n");
  write_file_at (f->tmp.dfd, "tree/usr/lib/libx.so", "library bytes");
  write_file_at (f->tmp.dfd, "tree/usr/etc/motd", "hello\n");
  f->commit = commit_tree (f, "tree", keys.trusted_id);
}

static void
import_teardown (ImportFixture *f, gconstpointer data)
{
  g_clear_object (&f->src);
  g_clear_object (&f->dest);
  g_free (f->commit);
  tmpdir_teardown (&f->tmp, data);
}

static guint
n_objects (OstreeRepo *repo)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GHashTable) objects = NULL;
  g_assert_true (ostree_repo_list_objects (repo, OSTREE_REPO_LIST_OBJECTS_ALL, &objects, NULL,
                                           &error));
  g_assert_no_error (error);
  return g_hash_table_size (objects);
}

static gboolean
do_import (ImportFixture *f, const char *commit, GCancellable *cancellable, GError **error)
{
  return ab_import_commit (f->dest, "media", f->src, commit, 2, NULL, NULL, cancellable, error);
}

/* Path of the loose object CHECKSUM.EXT in the bare REPO. */
static char *
loose_object (OstreeRepo *repo, const char *checksum, const char *ext)
{
  g_autofree char *name = g_strdup_printf ("objects/%.2s/%s.%s", checksum, checksum + 2, ext);
  return g_build_filename (g_file_peek_path (ostree_repo_get_path (repo)), name, NULL);
}

/* Path of the loose object of file PATH of COMMIT in REPO. */
static char *
file_object (OstreeRepo *repo, const char *commit, const char *path)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GFile) root = NULL;
  g_assert_true (ostree_repo_read_commit (repo, commit, &root, NULL, NULL, &error));
  g_autoptr(GFile) file = g_file_resolve_relative_path (root, path);
  g_assert_true (ostree_repo_file_ensure_resolved (OSTREE_REPO_FILE (file), &error));
  return loose_object (repo, ostree_repo_file_get_checksum (OSTREE_REPO_FILE (file)), "file");
}

static void
damage (const char *path)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *data = NULL;
  g_assert_true (g_file_get_contents (path, &data, NULL, &error));
  data[0] ^= 0x20;
  g_assert_cmpint (unlink (path), ==, 0); /* a new inode: nothing else shares the damage */
  g_assert_true (g_file_set_contents (path, data, -1, &error));
}

static void
test_signed_commit_imported_complete (ImportFixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_assert_true (do_import (f, f->commit, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (n_objects (f->dest), ==, n_objects (f->src));
  OstreeRepoCommitState state = 0;
  g_assert_true (ostree_repo_load_commit (f->dest, f->commit, NULL, &state, &error));
  g_assert_cmpint (state & OSTREE_REPO_COMMIT_STATE_PARTIAL, ==, 0);
  g_autoptr(OstreeGpgVerifyResult) result =
      ostree_repo_verify_commit_for_remote (f->dest, f->commit, "media", NULL, &error);
  g_assert_no_error (error);
  g_assert_true (ostree_gpg_verify_result_require_valid_signature (result, &error));
  g_assert_cmpint (ostree_repo_checkout_at (f->dest, NULL, f->tmp.dfd, "co", f->commit, NULL, &error),
                   ==, TRUE);
  g_autofree char *tool = read_file_at (f->tmp.dfd, "co/usr/bin/tool");
  g_assert_cmpstr (tool, ==, "#!/bin/sh\necho tool\n");
}

static void
test_unsigned_commit_leaves_nothing (ImportFixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  write_file_at (f->tmp.dfd, "tree2/usr/bin/other", "unsigned");
  g_autofree char *unsigned_commit = commit_tree (f, "tree2", NULL);
  g_assert_false (do_import (f, unsigned_commit, NULL, &error));
  g_assert_error (error, OSTREE_GPG_ERROR, OSTREE_GPG_ERROR_NO_SIGNATURE);
  g_assert_cmpuint (n_objects (f->dest), ==, 0);
}

static void
test_untrusted_signer_leaves_nothing (ImportFixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  write_file_at (f->tmp.dfd, "tree2/usr/bin/other", "evil");
  g_autofree char *evil = commit_tree (f, "tree2", keys.stranger_id);
  g_assert_false (do_import (f, evil, NULL, &error));
  g_assert_nonnull (error);
  g_assert_true (error->domain == OSTREE_GPG_ERROR);
  g_assert_cmpuint (n_objects (f->dest), ==, 0);
}

static void
test_damaged_commit_object_refused (ImportFixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = loose_object (f->src, f->commit, "commit");
  damage (path);
  g_assert_false (do_import (f, f->commit, NULL, &error));
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, "orrupted"));
  g_assert_cmpuint (n_objects (f->dest), ==, 0);
}

static void
test_damaged_file_object_refused (ImportFixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *obj = file_object (f->src, f->commit, "usr/lib/libx.so");
  damage (obj);
  g_assert_false (do_import (f, f->commit, NULL, &error));
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, "orrupted"));
  gboolean have = TRUE;
  g_assert_true (ostree_repo_has_object (f->dest, OSTREE_OBJECT_TYPE_COMMIT, f->commit, &have,
                                         NULL, &error));
  g_assert_false (have);
}

/* The mode is part of a file object's checksum: a medium that makes a
 * file setuid is refused like one that changes its bytes. */
static void
test_changed_mode_refused (ImportFixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *obj = file_object (f->src, f->commit, "usr/bin/tool");
  g_assert_cmpint (chmod (obj, 04755), ==, 0);
  g_assert_false (do_import (f, f->commit, NULL, &error));
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, "orrupted"));
  gboolean have = TRUE;
  g_assert_true (ostree_repo_has_object (f->dest, OSTREE_OBJECT_TYPE_COMMIT, f->commit, &have,
                                         NULL, &error));
  g_assert_false (have);
}

/* A damaged directory listing is refused before anything reads it. */
static void
test_damaged_dirtree_object_refused (ImportFixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) commit_v = NULL;
  g_assert_true (ostree_repo_load_variant (f->src, OSTREE_OBJECT_TYPE_COMMIT, f->commit,
                                           &commit_v, &error));
  g_autoptr(GVariant) root = g_variant_get_child_value (commit_v, 6);
  g_autofree char *hex = ostree_checksum_from_bytes_v (root);
  g_autofree char *path = loose_object (f->src, hex, "dirtree");
  damage (path);
  g_assert_false (do_import (f, f->commit, NULL, &error));
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, "orrupted"));
}

/* Objects the direct path leaves to libostree (a symlink) still arrive. */
static void
test_symlink_imported (ImportFixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_assert_cmpint (symlinkat ("tool", f->tmp.dfd, "tree/usr/bin/alias"), ==, 0);
  g_autofree char *second = commit_tree (f, "tree", keys.trusted_id);
  g_assert_true (do_import (f, second, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (ostree_repo_checkout_at (f->dest, NULL, f->tmp.dfd, "co", second, NULL, &error));
  g_autofree char *link = g_build_filename (f->tmp.path, "co/usr/bin/alias", NULL);
  g_autofree char *target = g_file_read_link (link, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (target, ==, "tool");
}

/* Objects the destination holds are taken as they are: the second commit
 * shares usr/bin/tool, whose source object is gone by then. */
static void
test_present_objects_not_read_again (ImportFixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_assert_true (do_import (f, f->commit, NULL, &error));
  write_file_at (f->tmp.dfd, "tree/usr/lib/new", "new in 2");
  g_autofree char *second = commit_tree (f, "tree", keys.trusted_id);
  g_autofree char *shared = file_object (f->src, second, "usr/bin/tool");
  g_assert_cmpint (unlink (shared), ==, 0);
  g_assert_true (do_import (f, second, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (ostree_repo_checkout_at (f->dest, NULL, f->tmp.dfd, "co", second, NULL, &error));
  g_autofree char *added = read_file_at (f->tmp.dfd, "co/usr/lib/new");
  g_assert_cmpstr (added, ==, "new in 2");
}

static void
test_cancelled_import_leaves_no_commit (ImportFixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_cancellable_cancel (cancellable);
  g_assert_false (do_import (f, f->commit, cancellable, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  gboolean have = TRUE;
  g_clear_error (&error);
  g_assert_true (ostree_repo_has_object (f->dest, OSTREE_OBJECT_TYPE_COMMIT, f->commit, &have,
                                         NULL, &error));
  g_assert_false (have);
}

static void
progress_counter (guint64 done, guint64 total, guint64 bytes, gpointer user_data)
{
  guint64 *last = user_data;
  g_assert_cmpuint (done, <=, total);
  last[0] = done;
  last[1] = total;
  last[2] = bytes;
}

static void
test_progress_reaches_total (ImportFixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  guint64 last[3] = { 0 };
  g_assert_true (ab_import_commit (f->dest, "media", f->src, f->commit, 0, progress_counter, last,
                                   NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (last[1], >, 3);
  g_assert_cmpuint (last[0], ==, last[1]);
  g_assert_cmpuint (last[2], >=, strlen ("library bytes"));
}

/* One walk of the commit serves the space check, the progress count and
 * the checkout: the plan names the bytes to add, and the import leaves the
 * verified dirtrees, the file count and the signature check on DEST. */
static void
test_plan_caches_verified_metadata (ImportFixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(AbImportPlan) plan = ab_import_plan_new (f->dest, "media", f->src, f->commit, NULL,
                                                     &error);
  g_assert_no_error (error);
  g_assert_cmpuint (ab_import_plan_needed_bytes (plan), >=,
                    strlen ("library bytes") + strlen ("hello\n"));
  g_assert_null (ab_import_meta_cache (f->dest));
  g_assert_true (ab_import_plan_run (plan, 2, NULL, NULL, NULL, &error));
  g_assert_no_error (error);
  AbMetaCache *cache = ab_import_meta_cache (f->dest);
  g_assert_nonnull (cache);
  guint64 files = 0;
  g_assert_true (ab_meta_cache_files (cache, f->commit, &files));
  g_assert_cmpuint (files, ==, 3);
  g_assert_true (ab_meta_cache_verified (cache, f->commit, "media"));
  g_assert_false (ab_meta_cache_verified (cache, f->commit, "other"));
  g_autoptr(GVariant) commit_v = NULL;
  g_assert_true (ostree_repo_load_variant (f->dest, OSTREE_OBJECT_TYPE_COMMIT, f->commit,
                                           &commit_v, &error));
  g_autoptr(GVariant) root = g_variant_get_child_value (commit_v, 6);
  g_autofree char *hex = ostree_checksum_from_bytes_v (root);
  g_autoptr(GVariant) tree = ab_meta_cache_lookup (cache, OSTREE_OBJECT_TYPE_DIR_TREE, hex);
  g_assert_nonnull (tree);
  g_assert_null (ab_meta_cache_lookup (cache, OSTREE_OBJECT_TYPE_DIR_META, hex));
  ab_import_drop_meta_cache (f->dest);
  g_assert_null (ab_import_meta_cache (f->dest));
}

/* A plan of a commit DEST already holds has nothing but the commit to add. */
static void
test_plan_of_present_commit_needs_little (ImportFixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_assert_true (do_import (f, f->commit, NULL, &error));
  g_autoptr(AbImportPlan) plan = ab_import_plan_new (f->dest, "media", f->src, f->commit, NULL,
                                                     &error);
  g_assert_no_error (error);
  g_assert_cmpuint (ab_import_plan_needed_bytes (plan), <, 4096);
}

/* The walk verified a dirtree's file; the import links that file without
 * reading it again, so a file put in its place in between (here: the same
 * bytes, a new inode) is refused, and nothing of it stays in DEST. (This
 * guards against a replaced file; a hardlink import shares its inodes
 * with the source by design, so writes into them are not its concern.) */
static void
test_meta_replaced_after_walk_refused (ImportFixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) commit_v = NULL;
  g_assert_true (ostree_repo_load_variant (f->src, OSTREE_OBJECT_TYPE_COMMIT, f->commit,
                                           &commit_v, &error));
  g_autoptr(GVariant) root = g_variant_get_child_value (commit_v, 6);
  g_autofree char *hex = ostree_checksum_from_bytes_v (root);
  g_autofree char *path = loose_object (f->src, hex, "dirtree");
  g_autoptr(AbImportPlan) plan = ab_import_plan_new (f->dest, "media", f->src, f->commit, NULL,
                                                     &error);
  g_assert_no_error (error);
  g_autofree char *bytes = NULL;
  gsize len = 0;
  g_assert_true (g_file_get_contents (path, &bytes, &len, &error));
  /* the walked file stays (renamed), so the new one cannot get its inode */
  g_autofree char *aside = g_strconcat (path, ".walked", NULL);
  g_assert_cmpint (rename (path, aside), ==, 0);
  g_assert_true (g_file_set_contents (path, bytes, (gssize) len, &error));
  g_assert_false (ab_import_plan_run (plan, 1, NULL, NULL, NULL, &error));
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, "replaced"));
  gboolean have = TRUE;
  g_clear_error (&error);
  g_assert_true (ostree_repo_has_object (f->dest, OSTREE_OBJECT_TYPE_DIR_TREE, hex, &have, NULL,
                                         &error));
  g_assert_false (have);
}

static void
make_keys (void)
{
  tmpdir_setup (&keys.dir, NULL);
  keys.home = g_build_filename (keys.dir.path, "gnupg", NULL);
  g_assert_cmpint (g_mkdir (keys.home, 0700), ==, 0);
  keys.trusted_pub = g_build_filename (keys.dir.path, "trusted.gpg", NULL);
  keys.trusted_id = make_key (keys.home, keys.trusted_pub);
  /* A home of its own: make_key() reads the first key of its home. */
  keys.stranger_home = g_build_filename (keys.dir.path, "stranger", NULL);
  g_assert_cmpint (g_mkdir (keys.stranger_home, 0700), ==, 0);
  g_autofree char *stranger_pub = g_build_filename (keys.dir.path, "stranger.gpg", NULL);
  keys.stranger_id = make_key (keys.stranger_home, stranger_pub);
  g_assert_cmpstr (keys.stranger_id, !=, keys.trusted_id);
}

#define IMPORT_TEST(name, func) \
  g_test_add (name, ImportFixture, NULL, import_setup, func, import_teardown)

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  make_keys ();
  IMPORT_TEST ("/import/signed-commit-imported-complete", test_signed_commit_imported_complete);
  IMPORT_TEST ("/import/unsigned-commit-leaves-nothing", test_unsigned_commit_leaves_nothing);
  IMPORT_TEST ("/import/untrusted-signer-leaves-nothing", test_untrusted_signer_leaves_nothing);
  IMPORT_TEST ("/import/damaged-commit-object-refused", test_damaged_commit_object_refused);
  IMPORT_TEST ("/import/damaged-file-object-refused", test_damaged_file_object_refused);
  IMPORT_TEST ("/import/changed-mode-refused", test_changed_mode_refused);
  IMPORT_TEST ("/import/damaged-dirtree-object-refused", test_damaged_dirtree_object_refused);
  IMPORT_TEST ("/import/symlink-imported", test_symlink_imported);
  IMPORT_TEST ("/import/present-objects-not-read-again", test_present_objects_not_read_again);
  IMPORT_TEST ("/import/cancelled-import-leaves-no-commit", test_cancelled_import_leaves_no_commit);
  IMPORT_TEST ("/import/progress-reaches-total", test_progress_reaches_total);
  IMPORT_TEST ("/import/plan-caches-verified-metadata", test_plan_caches_verified_metadata);
  IMPORT_TEST ("/import/meta-replaced-after-walk-refused",
               test_meta_replaced_after_walk_refused);
  IMPORT_TEST ("/import/plan-of-present-commit-needs-little",
               test_plan_of_present_commit_needs_little);
  int status = g_test_run ();
  tmpdir_teardown (&keys.dir, NULL);
  return status;
}
