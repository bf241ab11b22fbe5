/* Publisher: publish commit. */
#include "config.h"
#include "ab-publish-private.h"
#include "ab-util.h"
#include "ab-fsutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <string.h>

/* ---- publish commit ---- */

/* Entries of the tree at DFD that are not directories (what the commit's
 * progress counts), or AB_PROGRESS_TOTAL_UNKNOWN when it cannot be read. */
static gint64
count_tree_files (int dfd, guint depth)
{
  int fd = openat (dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d = fd >= 0 ? fdopendir (fd) : NULL;
  if (d == NULL || depth > 256)
    {
      if (d != NULL)
        closedir (d);
      else if (fd >= 0)
        close (fd);
      return AB_PROGRESS_TOTAL_UNKNOWN;
    }
  gint64 n = 0;
  struct dirent *e;
  while (n >= 0 && (e = readdir (d)) != NULL)
    {
      struct stat st;
      if (g_str_equal (e->d_name, ".") || g_str_equal (e->d_name, "..")
          || fstatat (dirfd (d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        continue;
      if (!S_ISDIR (st.st_mode))
        n++;
      else
        {
          ab_autofd sub = openat (dirfd (d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
          gint64 m = sub >= 0 ? count_tree_files (sub, depth + 1) : AB_PROGRESS_TOTAL_UNKNOWN;
          n = m < 0 ? m : n + m;
        }
    }
  closedir (d);
  return n;
}

static GFile *
write_tree (AbPublishSession *s, const AbPublishCommitOptions *o, GPtrArray *allowed,
            GError **error)
{
  ab_autofd dfd = ab_fs_opendir_at (AT_FDCWD, o->tree, error);
  if (dfd < 0)
    return NULL;
  g_autoptr(GPtrArray) refused = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GHashTable) kinds = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  AbPublishGate gate = { .o = o, .tree_dfd = dfd, .refused = refused, .allowed = allowed,
                         .events = s->p->events, .total = AB_PROGRESS_TOTAL_UNKNOWN,
                         .kinds = kinds };
  AbPublishLayout layout = { .o = o, .repo = s->repo, .kinds = kinds };
  ab_event_phase (s->p->events, "commit");
  if (s->p->events != NULL)
    gate.total = count_tree_files (dfd, 0);
  ab_event_progress (s->p->events, AB_PROGRESS_UNIT_FILES, 0, gate.total);
  g_autoptr(OstreeMutableTree) mtree = ostree_mutable_tree_new ();
  /* No GENERATE_SIZES: the size index is a file beside the commit
   * (ab-publish-sizes.c); inside it, every static delta would carry it. */
  g_autoptr(OstreeRepoCommitModifier) modifier =
      ostree_repo_commit_modifier_new (OSTREE_REPO_COMMIT_MODIFIER_FLAGS_NONE,
                                       ab_publish_gate_filter, &gate, NULL);
  GFile *root = NULL;
  if (!ostree_repo_write_dfd_to_mtree (s->repo, dfd, ".", mtree, modifier, NULL, error))
    {
      g_prefix_error (error, "Committing %s: ", o->tree);
      return NULL;
    }
  ab_event_progress (s->p->events, AB_PROGRESS_UNIT_FILES, gate.files, gate.total);
  if (!ab_publish_gate_verdict (&gate, error) || !ab_publish_layout_apply (&layout, mtree, error))
    return NULL;
  if (!ostree_repo_write_mtree (s->repo, mtree, &root, NULL, error))
    {
      g_prefix_error (error, "Committing %s: ", o->tree);
      return NULL;
    }
  return root;
}

static gboolean
same_tree (AbPublishSession *s, GFile *root, const char *commit, gboolean *out_same, GError **error)
{
  g_autoptr(GFile) old_root = NULL;
  if (!ostree_repo_read_commit (s->repo, commit, &old_root, NULL, NULL, error))
    return FALSE;
  OstreeRepoFile *a = OSTREE_REPO_FILE (root), *b = OSTREE_REPO_FILE (old_root);
  if (!ostree_repo_file_ensure_resolved (b, error))
    return FALSE;
  *out_same = strcmp (ostree_repo_file_tree_get_contents_checksum (a),
                      ostree_repo_file_tree_get_contents_checksum (b)) == 0
              && strcmp (ostree_repo_file_tree_get_metadata_checksum (a),
                         ostree_repo_file_tree_get_metadata_checksum (b)) == 0;
  return TRUE;
}

/* *out_same: COMMIT is stamped for OS, or not stamped at all (published
 * before the stamp existed: it stays as it was published). */
static gboolean
same_os (AbPublishSession *s, const char *commit, const char *os, gboolean *out_same,
         GError **error)
{
  g_autoptr(GError) local = NULL;
  g_autofree char *stamped = NULL;
  *out_same = ab_content_check_os (s->repo, commit, os, &stamped, &local);
  if (local == NULL || g_error_matches (local, AB_CONTENT_ERROR, AB_CONTENT_ERROR_WRONG_OS))
    return TRUE;
  g_propagate_error (error, g_steal_pointer (&local));
  return FALSE;
}

static GVariant *
commit_metadata (const AbPublishCommitOptions *o, GDateTime *now)
{
  g_autofree char *build_time = ab_publish_format_time (now);
  g_autoptr(GVariantDict) d = g_variant_dict_new (NULL);
  g_variant_dict_insert (d, OSTREE_COMMIT_META_KEY_VERSION, "s", o->version);
  g_variant_dict_insert (d, "build-time", "s", build_time);
  g_variant_dict_insert (d, AB_PUBLISH_COMMIT_META_OS, "s", o->os);
  if (o->source_revision)
    g_variant_dict_insert (d, "source-revision", "s", o->source_revision);
  return g_variant_ref_sink (g_variant_dict_end (d));
}

/* Inside a transaction: writes the tree and, unless VERSION is already
 * PUBLISHED (as recorded in WHERE), a commit of it. A published version
 * must have the same tree. */
static gboolean
write_commit_txn (AbPublishSession *s, const AbPublishCommitOptions *o, const char *published,
                  const char *where, GPtrArray *allowed, char **out_commit, GError **error)
{
  g_autoptr(GFile) root = write_tree (s, o, allowed, error);
  if (root == NULL)
    return FALSE;
  if (published != NULL)
    {
      gboolean same = FALSE;
      if (!same_tree (s, root, published, &same, error))
        return FALSE;
      g_autofree char *why = g_strdup_printf ("%s; the tree or the OS (--os) differs", where);
      if (same && !same_os (s, published, o->os, &same, error))
        return FALSE;
      if (!same)
        return ab_publish_conflict (error, o->version, published, why);
      *out_commit = g_strdup (published);
      return TRUE;
    }
  g_autofree char *parent = NULL;
  if (o->branch && !ostree_repo_resolve_rev (s->repo, o->branch, TRUE, &parent, error))
    return FALSE;
  g_autoptr(GDateTime) now = g_date_time_new_now_utc ();
  g_autoptr(GVariant) meta = commit_metadata (o, now);
  g_autofree char *subject = g_strdup_printf ("Version %s", o->version);
  return ostree_repo_write_commit_with_time (s->repo, parent, subject, NULL, meta,
                                             OSTREE_REPO_FILE (root),
                                             (guint64) g_date_time_to_unix (now), out_commit,
                                             NULL, error);
}

/* A new commit is kept (transaction committed); re-publishing the same
 * tree stores nothing new, so its transaction is dropped. */
static gboolean
write_commit (AbPublishSession *s, const AbPublishCommitOptions *o, const char *published,
              const char *where, GPtrArray *allowed, char **out_commit, GError **error)
{
  if (!ostree_repo_prepare_transaction (s->repo, NULL, NULL, error))
    return FALSE;
  if (!write_commit_txn (s, o, published, where, allowed, out_commit, error))
    {
      (void) ostree_repo_abort_transaction (s->repo, NULL, NULL);
      return FALSE;
    }
  if (published != NULL)
    return ostree_repo_abort_transaction (s->repo, NULL, error);
  return ostree_repo_commit_transaction (s->repo, NULL, NULL, error);
}

static gboolean
check_commit_options (const AbPublishCommitOptions *o, GError **error)
{
  if (o->tree == NULL || !g_file_test (o->tree, G_FILE_TEST_IS_DIR))
    return ab_publish_usage (error, "Give the image tree to commit with --tree=DIR (a directory)");
  if (!ab_publish_check_version (o->version, error))
    return FALSE;
  g_autoptr(GError) local = NULL;
  if (o->branch && !ostree_validate_rev (o->branch, &local))
    {
      g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_USAGE, "Invalid --branch: %s",
                   local->message);
      return FALSE;
    }
  return TRUE;
}

/* --os, else the tree's os-release ID. */
static char *
resolve_os (const AbPublishCommitOptions *o, GError **error)
{
  if (o->os != NULL && !ab_publish_os_name_is_valid (o->os))
    {
      g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_USAGE,
                   "--os=%s is not a valid OS name (letters, digits, . _ -, as os-release's ID)",
                   o->os);
      return NULL;
    }
  if (o->os != NULL)
    return g_strdup (o->os);
  ab_autofd dfd = ab_fs_opendir_at (AT_FDCWD, o->tree, error);
  return dfd < 0 ? NULL : ab_publish_tree_os (dfd, o->tree, error);
}

gboolean
ab_publish_commit (const AbPublisher *p, const AbPublishCommitOptions *opts, char **out_commit,
                   gboolean *out_created, char ***out_privileged, GError **error)
{
  g_auto(AbPublishSession) s = AB_PUBLISH_SESSION_INIT;
  if (!check_commit_options (opts, error))
    return FALSE;
  g_autofree char *os = resolve_os (opts, error);
  AbPublishCommitOptions with_os = *opts;
  const AbPublishCommitOptions *o = &with_os;
  with_os.os = os;
  if (os == NULL || !ab_publish_session_open (&s, p, TRUE, error))
    return FALSE;
  g_autofree char *published = NULL, *where = NULL, *commit = NULL;
  g_autoptr(GPtrArray) allowed = g_ptr_array_new_with_free_func (g_free);
  if ((p->gpg_key && !ab_publish_check_repo_deltas (&s, NULL, error))
      || !ab_publish_published_commit (&s, o->version, &published, &where, error)
      || !write_commit (&s, o, published, where, allowed, &commit, error))
    return FALSE;
  ab_event_phase (p->events, "sign");
  if (!ab_publish_sign_commit (&s, commit, error)
      || !ab_publish_write_size_index (&s, commit, error))
    return FALSE;
  /* Refs last: a version is published once its commit is complete and signed. */
  g_autofree char *ref = ab_publish_version_ref (o->version);
  if (!ostree_repo_set_ref_immediate (s.repo, NULL, ref, commit, NULL, error)
      || (o->branch && !ostree_repo_set_ref_immediate (s.repo, NULL, o->branch, commit, NULL, error)))
    return FALSE;
  ab_event_phase (p->events, "summary");
  if (!ab_publish_update_summary (&s, NULL, error))
    return FALSE;
  *out_created = published == NULL;
  *out_commit = g_steal_pointer (&commit);
  g_ptr_array_add (allowed, NULL);
  *out_privileged = (char **) g_ptr_array_steal (allowed, NULL);
  return TRUE;
}
