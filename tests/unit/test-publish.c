/* The publisher (publisher/ab-publish.h): commits, the content gate,
 * signed channel manifests (release, promote, deprecate, refresh), the
 * refusal of a tampered manifest and static deltas, in a real archive repo
 * with a real signing key. */
#include "config.h"
#include <string.h>
#include <unistd.h>
#include "ab-gpg.h"
#include "ab-test-sysroot.h"

static char *
resolve (SysrootFixture *fx, const char *ref)
{
  g_autoptr(OstreeRepo) repo = ostree_repo_open_at (AT_FDCWD, fx->repo, NULL, NULL);
  g_assert_nonnull (repo);
  char *rev = NULL;
  g_assert_true (ostree_repo_resolve_rev (repo, ref, TRUE, &rev, NULL));
  return rev;
}

static GBytes *
repo_file (SysrootFixture *fx, const char *rel)
{
  g_autofree char *path = g_build_filename (fx->repo, rel, NULL);
  g_autofree char *data = NULL;
  gsize len = 0;
  g_assert_true (g_file_get_contents (path, &data, &len, NULL));
  return g_bytes_new_take (g_steal_pointer (&data), len);
}

/* The channel's files verify with the publisher's public key alone and
 * parse to M. */
static void
assert_channel_signed (SysrootFixture *fx, const AbManifest *m)
{
  g_autofree char *json = g_strdup_printf ("abdeploy/channels/%s.json", m->channel);
  g_autofree char *sig = g_strconcat (json, ".sig", NULL);
  g_autoptr(GBytes) data = repo_file (fx, json);
  g_autoptr(GBytes) signature = repo_file (fx, sig);
  g_autofree char *trusted = g_build_filename (fx->tmp.path, "trusted", NULL);
  g_autofree char *key = g_build_filename (trusted, "publisher.gpg", NULL);
  g_autofree char *pub = NULL;
  gsize len = 0;
  g_assert_cmpint (g_mkdir_with_parents (trusted, 0700), ==, 0);
  g_assert_true (g_file_get_contents (test_key.pubkey, &pub, &len, NULL));
  g_assert_true (g_file_set_contents (key, pub, len, NULL));
  g_autoptr(GError) error = NULL;
  g_autofree char *fpr = NULL;
  g_assert_true (ab_gpg_verify_detached (trusted, data, signature, &fpr, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (fpr, ==, test_key.fpr);
  gsize n = 0;
  const char *text = g_bytes_get_data (data, &n);
  g_autoptr(AbManifest) parsed = ab_manifest_parse (text, n, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (parsed->serial, ==, m->serial);
  g_assert_cmpuint (parsed->releases->len, ==, m->releases->len);
}

static AbManifest *
release (SysrootFixture *fx, const char *channel, const char *version, guint rollout)
{
  g_autoptr(GError) error = NULL;
  AbManifest *m = ab_publish_release (&fx->pub, channel, version, rollout, &error);
  g_assert_no_error (error);
  g_assert_nonnull (m);
  return m;
}

/* Publishing the same tree again is a no-op; another tree under a
 * published version is a conflict that changes nothing. */
static void
test_commit (SysrootFixture *fx, gconstpointer data)
{
  g_autofree char *commit = publish_image (fx, "1.0", NULL);
  g_autofree char *ref = resolve (fx, AB_PUBLISH_VERSION_REF_PREFIX "1.0");
  g_assert_cmpstr (ref, ==, commit);
  g_autofree char *tree = g_build_filename (fx->tmp.path, "tree-1.0", NULL);
  AbPublishCommitOptions o = { .tree = tree, .version = "1.0", .os = "testos" };
  g_autoptr(GError) error = NULL;
  g_autofree char *again = NULL;
  g_auto(GStrv) privileged = NULL;
  gboolean created = TRUE;
  g_assert_true (ab_publish_commit (&fx->pub, &o, &again, &created, &privileged, &error));
  g_assert_no_error (error);
  g_assert_false (created);
  g_assert_cmpstr (again, ==, commit);

  /* the same tree for another OS is another image (issue 16) */
  o.os = "otheros";
  g_autofree char *for_other = NULL;
  g_assert_false (ab_publish_commit (&fx->pub, &o, &for_other, &created, &privileged, &error));
  g_assert_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_CONFLICT);
  g_clear_error (&error);
  o.os = "testos";

  write_file_at (fx->tmp.dfd, "tree-1.0/usr/share/extra", "changed");
  g_autofree char *other = NULL;
  g_assert_false (ab_publish_commit (&fx->pub, &o, &other, &created, &privileged, &error));
  g_assert_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_CONFLICT);
  g_assert_nonnull (strstr (error->message, "bump the version"));
  g_autofree char *still = resolve (fx, AB_PUBLISH_VERSION_REF_PREFIX "1.0");
  g_assert_cmpstr (still, ==, commit);
}

/* A setuid file that root does not own in the tree is refused unless the
 * publisher allows it by name; then it is listed as privileged. */
static void
test_commit_gate (SysrootFixture *fx, gconstpointer data)
{
  write_file_at (fx->tmp.dfd, "gate/usr/lib/modules/6.1.0/vmlinuz", "kernel");
  write_file_at (fx->tmp.dfd, "gate/usr/bin/su", "su");
  g_autofree char *su = g_build_filename (fx->tmp.path, "gate/usr/bin/su", NULL);
  /* owned by a user other than root (as an unprivileged build makes it) */
  uid_t uid = geteuid () == 0 ? 1000 : geteuid ();
  if (geteuid () == 0)
    g_assert_cmpint (chown (su, uid, uid), ==, 0);
  g_assert_cmpint (chmod (su, 04755), ==, 0);
  g_autofree char *tree = g_build_filename (fx->tmp.path, "gate", NULL);
  AbPublishCommitOptions o = { .tree = tree, .version = "1.0", .os = "testos" };
  g_autoptr(GError) error = NULL;
  g_autofree char *commit = NULL;
  g_auto(GStrv) privileged = NULL;
  gboolean created = FALSE;
  g_assert_false (ab_publish_commit (&fx->pub, &o, &commit, &created, &privileged, &error));
  g_assert_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_REFUSED);
  g_autofree char *why = g_strdup_printf ("/usr/bin/su: setuid, owner uid %u", (guint) uid);
  g_assert_nonnull (strstr (error->message, why));
  g_clear_error (&error);
  g_autofree char *none = resolve (fx, AB_PUBLISH_VERSION_REF_PREFIX "1.0");
  g_assert_null (none);

  const char *allow[] = { "/usr/bin/su", NULL };
  o.allow_setuid = allow;
  g_assert_true (ab_publish_commit (&fx->pub, &o, &commit, &created, &privileged, &error));
  g_assert_no_error (error);
  g_assert_true (created);
  g_assert_cmpuint (g_strv_length (privileged), ==, 1);
  g_assert_nonnull (strstr (privileged[0], "allowed by option"));
}

static void
test_usage (SysrootFixture *fx, gconstpointer data)
{
  g_autofree char *commit = publish_image (fx, "1.0", NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(AbManifest) m = ab_publish_release (&fx->pub, "../x", "1.0", 0, &error);
  g_assert_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_USAGE);
  g_clear_error (&error);
  m = ab_publish_release (&fx->pub, "stable", "-1", 0, &error);
  g_assert_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_USAGE);
  g_clear_error (&error);
  m = ab_publish_release (&fx->pub, "stable", "1.0", 101, &error);
  g_assert_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_USAGE);
  g_clear_error (&error);
  m = ab_publish_release (&fx->pub, "stable", "2.0", 0, &error);
  g_assert_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_NOT_FOUND);
  g_clear_error (&error);
  AbPublisher unsigned_pub = { .repo = fx->repo };
  m = ab_publish_release (&unsigned_pub, "stable", "1.0", 0, &error);
  g_assert_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_USAGE);
  g_assert_nonnull (strstr (error->message, "always signed"));
  g_assert_null (m);
  g_autofree char *json = g_build_filename (fx->repo, "abdeploy/channels/stable.json", NULL);
  g_assert_false (g_file_test (json, G_FILE_TEST_EXISTS));
}

/* Every rewrite is signed and raises the serial by one. */
static void
test_release_promote_deprecate (SysrootFixture *fx, gconstpointer data)
{
  g_autofree char *commit = publish_image (fx, "1.0", NULL);
  g_autoptr(AbManifest) m1 = release (fx, "stable", "1.0", 0);
  g_assert_cmpuint (m1->serial, ==, 1);
  g_assert_cmpstr (ab_manifest_find (m1, "1.0")->commit, ==, commit);
  g_assert_cmpuint (ab_manifest_find (m1, "1.0")->rollout, ==, 100);
  assert_channel_signed (fx, m1);
  g_autoptr(AbManifest) m2 = release (fx, "stable", "1.0", 10);
  g_assert_cmpuint (m2->serial, ==, 2);
  g_assert_cmpuint (ab_manifest_find (m2, "1.0")->rollout, ==, 10);

  g_autoptr(GError) error = NULL;
  g_autoptr(AbManifest) beta = ab_publish_promote (&fx->pub, "stable", "beta", "1.0", 0, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (beta->serial, ==, 1);
  g_assert_cmpstr (ab_manifest_find (beta, "1.0")->commit, ==, commit);
  assert_channel_signed (fx, beta);

  g_autoptr(AbManifest) dep = ab_publish_deprecate (&fx->pub, "stable", "1.0", "broken", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (ab_manifest_find (dep, "1.0")->deprecated, ==, "broken");
  g_assert_cmpuint (dep->serial, ==, 3);
  g_autoptr(AbManifest) none = ab_publish_promote (&fx->pub, "stable", "edge", "1.0", 0, &error);
  g_assert_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_FAILED);
  g_assert_nonnull (strstr (error->message, "deprecated"));
  g_clear_error (&error);

  g_autoptr(AbManifest) fresh = ab_publish_refresh (&fx->pub, "stable", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (fresh->serial, ==, 4);
  g_assert_cmpstr (ab_manifest_find (fresh, "1.0")->deprecated, ==, "broken");
  assert_channel_signed (fx, fresh);
}

/* A manifest changed after it was signed is never signed again, and the
 * refused command writes nothing. */
static void
test_tampered_refused (SysrootFixture *fx, gconstpointer data)
{
  g_autofree char *commit = publish_image (fx, "1.0", NULL);
  g_autoptr(AbManifest) m = release (fx, "stable", "1.0", 0);
  g_autofree char *json = g_build_filename (fx->repo, "abdeploy/channels/stable.json", NULL);
  g_autofree char *text = NULL;
  g_assert_true (g_file_get_contents (json, &text, NULL, NULL));
  g_autofree char *tampered = g_strconcat (text, " ", NULL);
  /* the generation's files are read-only links of a published set: write
   * a new file in its place */
  g_assert_cmpint (g_unlink (json), ==, 0);
  g_assert_true (g_file_set_contents (json, tampered, -1, NULL));
  g_autoptr(GError) error = NULL;
  g_autoptr(AbManifest) again = ab_publish_refresh (&fx->pub, "stable", &error);
  g_assert_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_REFUSED);
  g_assert_nonnull (strstr (error->message, "Nothing was written"));
  g_autofree char *after = NULL;
  g_assert_true (g_file_get_contents (json, &after, NULL, NULL));
  g_assert_cmpstr (after, ==, tampered);
}

/* The newest release lists a delta from the one below it, every file of
 * which is in the repo with the size and SHA-256 listed. */
static void
test_deltas (SysrootFixture *fx, gconstpointer data)
{
  g_autofree char *c1 = publish_image (fx, "1.0", NULL);
  g_autofree char *c2 = publish_image (fx, "2.0", "usr/bin/new");
  g_autoptr(AbManifest) m1 = release (fx, "stable", "1.0", 0);
  g_autoptr(AbManifest) m2 = release (fx, "stable", "2.0", 0);
  g_autoptr(GError) error = NULL;
  g_autoptr(AbManifest) m = ab_publish_deltas (&fx->pub, "stable", 1, TRUE, TRUE, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (m->serial, ==, 3);
  const AbRelease *r = ab_manifest_find (m, "2.0");
  g_assert_cmpuint (r->deltas->len, ==, 1);
  const AbDelta *d = ab_release_find_delta (r, c1);
  g_assert_nonnull (d);
  g_assert_null (ab_release_find_delta (ab_manifest_find (m, "1.0"), c2));
  guint64 total = 0;
  for (guint i = 0; i < d->files->len; i++)
    {
      const AbDeltaFile *f = d->files->pdata[i];
      g_autoptr(GBytes) bytes = repo_file (fx, f->path);
      g_autofree char *sum = g_compute_checksum_for_bytes (G_CHECKSUM_SHA256, bytes);
      g_assert_cmpstr (sum, ==, f->sha256);
      g_assert_cmpuint (g_bytes_get_size (bytes), ==, f->size);
      total += f->size;
    }
  g_assert_true (g_str_has_suffix (((AbDeltaFile *) d->files->pdata[0])->path, "/superblock"));
  g_assert_cmpuint (total, ==, d->size);
  assert_channel_signed (fx, m);
  g_autofree char *summary = g_build_filename (fx->repo, "summary.sig", NULL);
  g_assert_true (g_file_test (summary, G_FILE_TEST_IS_REGULAR));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  test_key_setup ();
  SYSROOT_TEST ("/publish/commit", test_commit);
  SYSROOT_TEST ("/publish/commit-gate", test_commit_gate);
  SYSROOT_TEST ("/publish/usage", test_usage);
  SYSROOT_TEST ("/publish/release-promote-deprecate", test_release_promote_deprecate);
  SYSROOT_TEST ("/publish/tampered-refused", test_tampered_refused);
  SYSROOT_TEST ("/publish/deltas", test_deltas);
  int ret = g_test_run ();
  test_key_teardown ();
  return ret;
}
