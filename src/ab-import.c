#include "config.h"
#include "ab-import.h"

#include <string.h>

G_DEFINE_QUARK (ab-import-error-quark, ab_import_error)

/* The detached OpenPGP signatures of a commit, concatenated: one packet
 * list is what libostree's verifier reads. NULL when there are none. */
static GBytes *
commit_signatures (OstreeRepo *src, const char *commit, GCancellable *cancellable,
                   GError **error)
{
  g_autoptr(GVariant) detached = NULL;
  if (!ostree_repo_read_commit_detached_metadata (src, commit, &detached, cancellable, error))
    return NULL;
  g_autoptr(GVariant) sigs = detached ? g_variant_lookup_value (detached, "ostree.gpgsigs",
                                                                G_VARIANT_TYPE ("aay"))
                                      : NULL;
  if (sigs == NULL || g_variant_n_children (sigs) == 0)
    {
      g_set_error (error, OSTREE_GPG_ERROR, OSTREE_GPG_ERROR_NO_SIGNATURE,
                   "no signatures found on commit %s", commit);
      return NULL;
    }
  g_autoptr(GByteArray) buf = g_byte_array_new ();
  for (gsize i = 0; i < g_variant_n_children (sigs); i++)
    {
      g_autoptr(GVariant) s = g_variant_get_child_value (sigs, i);
      g_byte_array_append (buf, g_variant_get_data (s), g_variant_get_size (s));
    }
  return g_byte_array_free_to_bytes (g_steal_pointer (&buf));
}

/* Checks, without writing to DEST, that the commit object in SRC hashes to
 * COMMIT and that a key of DEST's REMOTE signed those same bytes. */
static gboolean
verify_source_commit (OstreeRepo *dest, const char *remote, OstreeRepo *src,
                      const char *commit, GCancellable *cancellable, GError **error)
{
  g_autoptr(GVariant) commit_v = NULL;
  if (!ostree_repo_load_variant (src, OSTREE_OBJECT_TYPE_COMMIT, commit, &commit_v, error))
    return FALSE;
  g_autoptr(GBytes) data = g_variant_get_data_as_bytes (commit_v);
  g_autofree char *actual = g_compute_checksum_for_bytes (G_CHECKSUM_SHA256, data);
  if (g_strcmp0 (actual, commit) != 0)
    {
      g_set_error (error, AB_IMPORT_ERROR, AB_IMPORT_ERROR_CHECKSUM,
                   "Corrupted commit object %s: its content hashes to %s", commit, actual);
      return FALSE;
    }
  g_autoptr(GBytes) sigs = commit_signatures (src, commit, cancellable, error);
  if (sigs == NULL)
    return FALSE;
  g_autoptr(OstreeGpgVerifyResult) result =
      ostree_repo_gpg_verify_data (dest, remote, data, sigs, NULL, NULL, cancellable, error);
  return result != NULL && ostree_gpg_verify_result_require_valid_signature (result, error);
}

typedef struct
{
  OstreeRepo *dest;
  OstreeRepo *src;
  GPtrArray *objects; /* object names (GVariant "(su)"), metadata first */
  gboolean count_bytes;
  GCancellable *cancellable;
  gint next;          /* index of the next object to take */
  gint done;
  gint finished;      /* workers that returned */
  gsize bytes;        /* atomically added */
  GMutex lock;
  GError *error;      /* the first error; every worker stops once it is set */
} ImportJob;

static void
job_fail (ImportJob *job, GError *e)
{
  g_mutex_lock (&job->lock);
  if (job->error == NULL)
    job->error = e;
  else
    g_error_free (e);
  g_atomic_int_set (&job->next, (gint) job->objects->len);
  g_mutex_unlock (&job->lock);
}

static gboolean
import_one (ImportJob *job, GVariant *name, GError **error)
{
  const char *checksum;
  OstreeObjectType type;
  ostree_object_name_deserialize (name, &checksum, &type);
  gboolean have = FALSE;
  if (!ostree_repo_has_object (job->dest, type, checksum, &have, job->cancellable, error))
    return FALSE;
  if (have)
    return TRUE;
  if (!ostree_repo_import_object_from_with_trust (job->dest, job->src, type, checksum, FALSE,
                                                  job->cancellable, error))
    return FALSE;
  guint64 size = 0;
  if (job->count_bytes
      && ostree_repo_query_object_storage_size (job->src, type, checksum, &size, NULL, NULL))
    g_atomic_pointer_add (&job->bytes, (gssize) size);
  return TRUE;
}

static gpointer
import_worker (gpointer data)
{
  ImportJob *job = data;
  guint i;
  while ((i = (guint) g_atomic_int_add (&job->next, 1)) < job->objects->len)
    {
      GError *e = NULL;
      if (g_cancellable_set_error_if_cancelled (job->cancellable, &e)
          || !import_one (job, job->objects->pdata[i], &e))
        {
          job_fail (job, e);
          break;
        }
      g_atomic_int_inc (&job->done);
    }
  g_atomic_int_inc (&job->finished);
  return NULL;
}

static void
report (ImportJob *job, AbProgressFunc progress, gpointer user_data)
{
  if (progress != NULL)
    progress ((guint) g_atomic_int_get (&job->done), job->objects->len,
              (guint64) g_atomic_pointer_get (&job->bytes), user_data);
}

static gboolean
run_workers (ImportJob *job, guint n_workers, AbProgressFunc progress, gpointer user_data,
             GError **error)
{
  if (n_workers == 0)
    n_workers = CLAMP (g_get_num_processors (), 1, 8);
  g_autoptr(GPtrArray) threads = g_ptr_array_new ();
  for (guint i = 0; i < n_workers; i++)
    g_ptr_array_add (threads, g_thread_new ("ab-import", import_worker, job));
  while (g_atomic_int_get (&job->finished) < (gint) n_workers)
    {
      report (job, progress, user_data);
      g_usleep (G_USEC_PER_SEC / 20);
    }
  for (guint i = 0; i < threads->len; i++)
    g_thread_join (threads->pdata[i]);
  report (job, progress, user_data);
  if (job->error != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&job->error));
      return FALSE;
    }
  return TRUE;
}

/* Every object COMMIT reaches except the commit itself, metadata first: a
 * dirtree that fails its checksum stops the import early. */
static GPtrArray *
objects_below (GHashTable *reachable, const char *commit)
{
  GPtrArray *meta = g_ptr_array_new_with_free_func ((GDestroyNotify) g_variant_unref);
  g_autoptr(GPtrArray) content = g_ptr_array_new ();
  GHashTableIter it;
  gpointer key;
  g_hash_table_iter_init (&it, reachable);
  while (g_hash_table_iter_next (&it, &key, NULL))
    {
      const char *checksum;
      OstreeObjectType type;
      ostree_object_name_deserialize (key, &checksum, &type);
      if (type == OSTREE_OBJECT_TYPE_COMMIT && g_str_equal (checksum, commit))
        continue;
      g_ptr_array_add (OSTREE_OBJECT_TYPE_IS_META (type) ? meta : content, g_variant_ref (key));
    }
  g_ptr_array_extend_and_steal (meta, g_steal_pointer (&content));
  return meta;
}

static gboolean
import_objects (OstreeRepo *dest, OstreeRepo *src, GPtrArray *objects, guint n_workers,
                AbProgressFunc progress, gpointer user_data, GCancellable *cancellable,
                GError **error)
{
  ImportJob job = { .dest = dest, .src = src, .objects = objects,
                    .count_bytes = progress != NULL, .cancellable = cancellable };
  g_mutex_init (&job.lock);
  gboolean ok = run_workers (&job, n_workers, progress, user_data, error);
  g_mutex_clear (&job.lock);
  return ok;
}

gboolean
ab_import_commit (OstreeRepo *dest, const char *remote, OstreeRepo *src, const char *commit,
                  guint n_workers, AbProgressFunc progress, gpointer user_data,
                  GCancellable *cancellable, GError **error)
{
  if (!verify_source_commit (dest, remote, src, commit, cancellable, error))
    return FALSE;
  g_autoptr(GHashTable) reachable = NULL;
  if (!ostree_repo_traverse_commit (src, commit, 0, &reachable, cancellable, error))
    return FALSE;
  g_autoptr(GPtrArray) objects = objects_below (reachable, commit);
  g_clear_pointer (&reachable, g_hash_table_unref);
  return import_objects (dest, src, objects, n_workers, progress, user_data, cancellable, error)
         && ostree_repo_import_object_from_with_trust (dest, src, OSTREE_OBJECT_TYPE_COMMIT,
                                                       commit, FALSE, cancellable, error)
         && ostree_repo_mark_commit_partial (dest, commit, FALSE, error);
}

/* Bytes that OBJECT (not in DEST) takes once imported: a file's unpacked
 * size, a metadata object's stored size. */
static guint64
object_bytes (OstreeRepo *src, const char *checksum, OstreeObjectType type)
{
  guint64 size = 0;
  if (type == OSTREE_OBJECT_TYPE_FILE)
    {
      g_autoptr(GFileInfo) info = NULL;
      if (ostree_repo_load_file (src, checksum, NULL, &info, NULL, NULL, NULL))
        return (guint64) g_file_info_get_size (info);
    }
  (void) ostree_repo_query_object_storage_size (src, type, checksum, &size, NULL, NULL);
  return size;
}

gboolean
ab_import_needed_bytes (OstreeRepo *dest, OstreeRepo *src, const char *commit,
                        guint64 *out_bytes, GCancellable *cancellable, GError **error)
{
  g_autoptr(GHashTable) reachable = NULL;
  if (!ostree_repo_traverse_commit (src, commit, 0, &reachable, cancellable, error))
    return FALSE;
  guint64 total = 0;
  GHashTableIter it;
  gpointer key;
  g_hash_table_iter_init (&it, reachable);
  while (g_hash_table_iter_next (&it, &key, NULL))
    {
      GVariant *name = key;
      const char *checksum;
      OstreeObjectType type;
      gboolean have = FALSE;
      ostree_object_name_deserialize (name, &checksum, &type);
      if (!ostree_repo_has_object (dest, type, checksum, &have, cancellable, error))
        return FALSE;
      if (!have)
        total += object_bytes (src, checksum, type);
    }
  *out_bytes = total;
  return TRUE;
}
