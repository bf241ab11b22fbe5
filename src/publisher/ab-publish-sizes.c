/* Publisher: the size index file of a commit (issue 18), written beside
 * the commit instead of into it: abdeploy/sizes/COMMIT.sizes (ab-sizes.h).
 * A static delta carries its target commit object uncompressed, so an
 * index inside the commit (about 44 bytes per file) made every delta grow
 * with the image. */
#include "config.h"
#include "ab-publish-private.h"
#include "ab-fsutil.h"
#include "ab-sizes.h"
#include "ab-util.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

/* What object NAME (a serialized object name) takes in the archive repo
 * (archived) and once stored on a device (unpacked: a regular file's
 * content size, 0 for a symlink; a metadata object's own size). */
static gboolean
object_entry (OstreeRepo *repo, GVariant *name, AbSizesEntry *e, GError **error)
{
  const char *csum = NULL;
  OstreeObjectType type;
  ostree_object_name_deserialize (name, &csum, &type);
  guint64 archived = 0;
  if (!ostree_repo_query_object_storage_size (repo, type, csum, &archived, NULL, error))
    return FALSE;
  e->type = type;
  e->archived = e->unpacked = archived;
  ostree_checksum_inplace_to_bytes (csum, e->checksum);
  if (type != OSTREE_OBJECT_TYPE_FILE)
    return TRUE;
  g_autoptr(GFileInfo) info = NULL;
  if (!ostree_repo_load_file (repo, csum, NULL, &info, NULL, NULL, error))
    return FALSE;
  e->unpacked = g_file_info_get_file_type (info) == G_FILE_TYPE_REGULAR
                    ? (guint64) g_file_info_get_size (info) : 0;
  return TRUE;
}

/* The entries of every object COMMIT reaches but the commit itself. */
static GArray *
commit_entries (OstreeRepo *repo, const char *commit, GError **error)
{
  g_autoptr(GHashTable) reachable = NULL;
  if (!ostree_repo_traverse_commit (repo, commit, 0, &reachable, NULL, error))
    return NULL;
  g_autoptr(GArray) out = g_array_sized_new (FALSE, TRUE, sizeof (AbSizesEntry),
                                             g_hash_table_size (reachable));
  GHashTableIter it;
  gpointer key;
  g_hash_table_iter_init (&it, reachable);
  while (g_hash_table_iter_next (&it, &key, NULL))
    {
      const char *csum = NULL;
      OstreeObjectType type;
      ostree_object_name_deserialize (key, &csum, &type);
      if (type == OSTREE_OBJECT_TYPE_COMMIT || type == OSTREE_OBJECT_TYPE_COMMIT_META)
        continue;
      AbSizesEntry e = { 0 };
      if (!object_entry (repo, key, &e, error))
        return NULL;
      g_array_append_val (out, e);
    }
  return g_steal_pointer (&out);
}

gboolean
ab_publish_write_size_index (AbPublishSession *s, const char *commit, GError **error)
{
  g_autofree char *path = ab_sizes_path (commit);
  if (ab_fs_exists_at (s->dfd, path))
    return TRUE;
  g_autoptr(GArray) entries = commit_entries (s->repo, commit, error);
  if (entries == NULL)
    {
      g_prefix_error (error, "Writing the size index of %s: ", commit);
      return FALSE;
    }
  g_autoptr(GBytes) data = ab_sizes_serialize (entries);
  ab_autofd dfd = -1;
  if (!ab_fs_mkdir_p_at (s->dfd, AB_SIZES_DIR, 0755, error)
      || (dfd = ab_fs_opendir_at (s->dfd, AB_SIZES_DIR, error)) < 0)
    return FALSE;
  gsize len = 0;
  const void *bytes = g_bytes_get_data (data, &len);
  return ab_fs_replace_at (dfd, strrchr (path, '/') + 1, bytes, len, 0644, error);
}

gboolean
ab_publish_describe_size_index (AbPublishSession *s, const char *commit, AbDeltaFile **out,
                                GError **error)
{
  g_autofree char *path = ab_sizes_path (commit);
  g_autofree char *sha = NULL;
  guint64 size = 0;
  g_clear_pointer (out, ab_delta_file_free);
  if (!ab_fs_exists_at (s->dfd, path))
    return TRUE; /* a commit of a publisher before issue 18 */
  if (!ab_publish_sha256_file (s->dfd, path, &sha, &size, error))
    return FALSE;
  if (size == 0 || size > AB_SIZES_MAX_BYTES)
    {
      g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_FAILED,
                   "%s is %" G_GUINT64_FORMAT " bytes, not 1 byte to 64 MiB; remove it and run "
                   "abdeploy publish commit of that version again", path, size);
      return FALSE;
    }
  *out = ab_delta_file_new (path, size, sha);
  return TRUE;
}

/* The commit of index file NAME ("COMMIT.sizes"), or NULL for another name. */
static char *
index_commit (const char *name)
{
  if (!g_str_has_suffix (name, ".sizes"))
    return NULL;
  char *commit = g_strndup (name, strlen (name) - strlen (".sizes"));
  if (!ab_is_commit_checksum (commit))
    g_clear_pointer (&commit, g_free);
  return commit;
}

gboolean
ab_publish_prune_size_indexes (AbPublishSession *s, GHashTable *reachable, gboolean dry_run,
                               guint64 *out_bytes, GError **error)
{
  g_autofree char *dir = g_build_filename (s->p->repo, AB_SIZES_DIR, NULL);
  g_autoptr(GDir) d = g_dir_open (dir, 0, NULL);
  const char *name;
  while (d != NULL && (name = g_dir_read_name (d)) != NULL)
    {
      g_autofree char *commit = index_commit (name);
      if (commit == NULL)
        continue;
      g_autoptr(GVariant) key = ostree_object_name_serialize (commit, OSTREE_OBJECT_TYPE_COMMIT);
      g_autofree char *path = g_build_filename (AB_SIZES_DIR, name, NULL);
      struct stat st;
      if (g_hash_table_contains (reachable, key) || fstatat (s->dfd, path, &st, 0) < 0)
        continue;
      *out_bytes += (guint64) st.st_size;
      if (!dry_run && unlinkat (s->dfd, path, 0) < 0 && errno != ENOENT)
        {
          g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_FAILED, "Removing %s: %s", path,
                       g_strerror (errno));
          return FALSE;
        }
    }
  return dry_run || d == NULL || ab_fs_fsync_dir_at (s->dfd, AB_SIZES_DIR, error);
}
