#include "config.h"
#include "ab-import.h"
#include "ab-fsutil.h"
#include "ab-sha256.h"
#include "ab-util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

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
  gsize size = 0;
  gconstpointer bytes = g_bytes_get_data (data, &size);
  g_autofree char *actual = ab_sha256_hex (bytes, size);
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
  gboolean direct;    /* both repos bare, on one file system: see direct_import */
  gint no_links;      /* set once a hardlink failed: libostree copies from then on */
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

/* ---- the direct path ----
 * When both repos are bare and on one file system, an object is opened
 * once, hashed from plain read()s (SHA-256 of libcrypto) and hardlinked
 * into DEST under its name only when its bytes (and, for a file, its
 * owner, group and mode) hash to that name: the same check libostree's
 * untrusted import makes, with a sixth of its system calls. What the
 * direct path does not read itself (symlinks, files with extended
 * attributes, a hardlink the file system refuses) goes through libostree's
 * untrusted import, so every object is still checksummed before it lands. */

/* Read size of the direct path, per worker. */
#define DIRECT_BUF_SIZE (1024 * 1024)

typedef struct
{
  AbSha256 *sha;
  guint8 *buf;
} Worker;

/* A bare repo's loose object, relative to the repo: objects/XX/REST.TYPE */
static char *
bare_object_path (const char *checksum, OstreeObjectType type)
{
  return g_strdup_printf ("objects/%.2s/%s.%s", checksum, checksum + 2,
                          ostree_object_type_to_string (type));
}

/* Whether DEST and SRC can take the direct path. */
static gboolean
direct_possible (OstreeRepo *dest, OstreeRepo *src)
{
  struct stat a, b;
  return ostree_repo_get_mode (dest) == OSTREE_REPO_MODE_BARE
         && ostree_repo_get_mode (src) == OSTREE_REPO_MODE_BARE
         && fstat (ostree_repo_get_dfd (dest), &a) == 0
         && fstat (ostree_repo_get_dfd (src), &b) == 0 && a.st_dev == b.st_dev;
}

/* OSTree's file header of a regular file without extended attributes:
 * the length-prefixed (4 bytes big endian, 4 zero bytes) serialized
 * "(uuuusa(ayay))" of uid, gid, mode, rdev 0, no link target, no xattrs. */
static void
hash_file_header (AbSha256 *sha, const struct stat *st)
{
  GVariant *none = g_variant_new_array (G_VARIANT_TYPE ("(ayay)"), NULL, 0);
  g_autoptr(GVariant) header = g_variant_ref_sink (
      g_variant_new ("(uuuus@a(ayay))", GUINT32_TO_BE ((guint32) st->st_uid),
                     GUINT32_TO_BE ((guint32) st->st_gid), GUINT32_TO_BE ((guint32) st->st_mode),
                     (guint32) 0, "", none));
  guint32 prefix[2] = { GUINT32_TO_BE ((guint32) g_variant_get_size (header)), 0 };
  ab_sha256_update (sha, prefix, sizeof prefix);
  ab_sha256_update (sha, g_variant_get_data (header), g_variant_get_size (header));
}

/* Hashes exactly SIZE bytes of FD; a file shorter than its fstat size
 * (changed under us) fails as corrupted. */
static gboolean
hash_content (Worker *w, int fd, guint64 size, const char *checksum, GError **error)
{
  for (guint64 left = size; left > 0;)
    {
      ssize_t n = read (fd, w->buf, MIN (left, DIRECT_BUF_SIZE));
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return ab_throw_errno_prefix (error, errno, "Reading object %s of the source", checksum);
      if (n == 0)
        {
          g_set_error (error, AB_IMPORT_ERROR, AB_IMPORT_ERROR_CHECKSUM,
                       "Corrupted object %s in the source: it is shorter than its size", checksum);
          return FALSE;
        }
      ab_sha256_update (w->sha, w->buf, (gsize) n);
      left -= (guint64) n;
    }
  return TRUE;
}

/* Hashes the object REL of the source as OSTree names TYPE objects and
 * compares with CHECKSUM. *OUT_FALLBACK: the object is not one the direct
 * path reads (no error then). */
static gboolean
direct_verify (ImportJob *job, Worker *w, const char *rel, const char *checksum,
               OstreeObjectType type, gboolean *out_fallback, GError **error)
{
  ab_autofd fd = openat (ostree_repo_get_dfd (job->src), rel,
                         O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
  struct stat st;
  if (fd < 0 && errno == ELOOP)
    return (*out_fallback = TRUE);
  if (fd < 0 || fstat (fd, &st) < 0)
    return ab_throw_errno_prefix (error, errno, "Reading object %s of the source", checksum);
  gboolean is_file = type == OSTREE_OBJECT_TYPE_FILE;
  if (!S_ISREG (st.st_mode) || (is_file && flistxattr (fd, NULL, 0) > 0))
    return (*out_fallback = TRUE);
  if (is_file)
    hash_file_header (w->sha, &st);
  if (!hash_content (w, fd, (guint64) st.st_size, checksum, error))
    return FALSE;
  char got[AB_SHA256_HEX_LEN + 1];
  ab_sha256_finish_hex (w->sha, got);
  if (strcmp (got, checksum) != 0)
    {
      g_set_error (error, AB_IMPORT_ERROR, AB_IMPORT_ERROR_CHECKSUM,
                   "Corrupted %s object %s in the source: it hashes to %s",
                   ostree_object_type_to_string (type), checksum, got);
      return FALSE;
    }
  if (job->count_bytes)
    g_atomic_pointer_add (&job->bytes, (gssize) st.st_size);
  return TRUE;
}

/* Verifies the object and hardlinks it into DEST; *OUT_FALLBACK as above,
 * also when the file system refuses the link. */
static gboolean
direct_import (ImportJob *job, Worker *w, const char *checksum, OstreeObjectType type,
               gboolean *out_fallback, GError **error)
{
  g_autofree char *rel = bare_object_path (checksum, type);
  *out_fallback = g_atomic_int_get (&job->no_links) != 0;
  if (*out_fallback || !direct_verify (job, w, rel, checksum, type, out_fallback, error)
      || *out_fallback)
    return error == NULL || *error == NULL;
  if (linkat (ostree_repo_get_dfd (job->src), rel, ostree_repo_get_dfd (job->dest), rel, 0) == 0
      || errno == EEXIST)
    return TRUE;
  if (errno != EXDEV && errno != EPERM && errno != EMLINK)
    return ab_throw_errno_prefix (error, errno, "Linking object %s into the repo", checksum);
  g_atomic_int_set (&job->no_links, 1);
  return (*out_fallback = TRUE);
}

/* Every objects/XX directory the objects need, made once before the
 * workers start (so no worker tries mkdir on each object). */
static gboolean
make_prefix_dirs (OstreeRepo *dest, GPtrArray *objects, GError **error)
{
  int repo_dfd = ostree_repo_get_dfd (dest);
  gboolean have[256] = { FALSE };
  DIR *d = NULL;
  int objs = openat (repo_dfd, "objects", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (objs < 0 || (d = fdopendir (objs)) == NULL)
    {
      int errsv = errno;
      if (objs >= 0)
        close (objs);
      return ab_throw_errno_prefix (error, errsv, "Opening the objects of the repo");
    }
  for (struct dirent *e; (e = readdir (d)) != NULL;)
    {
      const char *n = e->d_name;
      if (g_ascii_isxdigit (n[0]) && g_ascii_isxdigit (n[1]) && n[2] == '\0')
        have[g_ascii_xdigit_value (n[0]) * 16 + g_ascii_xdigit_value (n[1])] = TRUE;
    }
  closedir (d);
  for (guint i = 0; i < objects->len; i++)
    {
      const char *checksum;
      OstreeObjectType type;
      ostree_object_name_deserialize (objects->pdata[i], &checksum, &type);
      int x = g_ascii_xdigit_value (checksum[0]) * 16 + g_ascii_xdigit_value (checksum[1]);
      g_autofree char *dir = g_strdup_printf ("objects/%.2s", checksum);
      if (!have[x] && mkdirat (repo_dfd, dir, 0777) < 0 && errno != EEXIST)
        return ab_throw_errno_prefix (error, errno, "Creating %s in the repo", dir);
      have[x] = TRUE;
    }
  return TRUE;
}

static gboolean
import_one (ImportJob *job, Worker *w, GVariant *name, GError **error)
{
  const char *checksum;
  OstreeObjectType type;
  ostree_object_name_deserialize (name, &checksum, &type);
  gboolean have = FALSE;
  if (!ostree_repo_has_object (job->dest, type, checksum, &have, job->cancellable, error))
    return FALSE;
  if (have)
    return TRUE;
  gboolean fallback = TRUE;
  if (job->direct && !direct_import (job, w, checksum, type, &fallback, error))
    return FALSE;
  if (!fallback)
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
  g_autoptr(AbSha256) sha = ab_sha256_new ();
  g_autofree guint8 *buf = job->direct ? g_malloc (DIRECT_BUF_SIZE) : NULL;
  Worker w = { sha, buf };
  guint i;
  while ((i = (guint) g_atomic_int_add (&job->next, 1)) < job->objects->len)
    {
      GError *e = NULL;
      if (g_cancellable_set_error_if_cancelled (job->cancellable, &e)
          || !import_one (job, &w, job->objects->pdata[i], &e))
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
                    .count_bytes = progress != NULL, .cancellable = cancellable,
                    .direct = direct_possible (dest, src) };
  if (job.direct && !make_prefix_dirs (dest, objects, error))
    return FALSE;
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
  struct stat st;
  g_autofree char *rel = bare_object_path (checksum, type);
  /* a bare repo's regular file holds exactly the content: one stat */
  if (ostree_repo_get_mode (src) == OSTREE_REPO_MODE_BARE
      && fstatat (ostree_repo_get_dfd (src), rel, &st, AT_SYMLINK_NOFOLLOW) == 0
      && S_ISREG (st.st_mode))
    return (guint64) st.st_size;
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
