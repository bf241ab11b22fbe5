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
 * COMMIT and that a key of DEST's REMOTE signed those same bytes; the
 * verified commit goes to OUT_COMMIT_V. */
static gboolean
verify_source_commit (OstreeRepo *dest, const char *remote, OstreeRepo *src,
                      const char *commit, GVariant **out_commit_v, GCancellable *cancellable,
                      GError **error)
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
  if (result == NULL || !ostree_gpg_verify_result_require_valid_signature (result, error))
    return FALSE;
  /* the walk takes checksums from its bytes (libostree writes normal form) */
  if (!g_variant_is_normal_form (commit_v))
    {
      g_set_error (error, AB_IMPORT_ERROR, AB_IMPORT_ERROR_CHECKSUM,
                   "Corrupted commit object %s: not in GVariant normal form", commit);
      return FALSE;
    }
  *out_commit_v = g_steal_pointer (&commit_v);
  return TRUE;
}

typedef struct
{
  OstreeRepo *dest;
  OstreeRepo *src;
  GArray *objects;    /* PlanObject, metadata first */
  gboolean count_bytes;
  gboolean direct;    /* both repos bare, on one file system: see direct_import */
  gint no_links;      /* set once a hardlink failed: libostree copies from then on */
  GCancellable *cancellable;
  gint next;          /* index of the next object to take */
  gint done;
  gint finished;      /* workers that returned (under LOCK; FINISHED_COND signalled) */
  GCond finished_cond;
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
  /* Written out rather than built as a GVariant per file: the 18 bytes
   * are uid, gid, mode and rdev as big-endian u32, the empty string (one
   * NUL), the empty array (no bytes) and the string's framing offset
   * (17); the prefix is their size, big endian, and 4 zero bytes. Every
   * import test fails if these bytes are wrong. */
  guint32 words[6] = { GUINT32_TO_BE (18), 0, GUINT32_TO_BE ((guint32) st->st_uid),
                       GUINT32_TO_BE ((guint32) st->st_gid),
                       GUINT32_TO_BE ((guint32) st->st_mode), 0 };
  guint8 buf[8 + 18];
  memcpy (buf, words, sizeof words);
  buf[24] = 0;
  buf[25] = 17;
  ab_sha256_update (sha, buf, sizeof buf);
}

/* Reads exactly LEN bytes of FD into BUF; a short file fails as corrupted. */
static gboolean
read_exactly (int fd, guint8 *buf, gsize len, const char *checksum, GError **error)
{
  for (gsize got = 0; got < len;)
    {
      ssize_t n = read (fd, buf + got, len - got);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return ab_throw_errno_prefix (error, errno, "Reading object %s of the source", checksum);
      if (n == 0)
        {
          g_set_error (error, AB_IMPORT_ERROR, AB_IMPORT_ERROR_CHECKSUM,
                       "Corrupted object %s in the source: it is shorter than its size",
                       checksum);
          return FALSE;
        }
      got += (gsize) n;
    }
  return TRUE;
}

/* Hashes exactly SIZE bytes of FD; a file shorter than its fstat size
 * (changed under us) fails as corrupted (read_exactly()). */
static gboolean
hash_content (Worker *w, int fd, guint64 size, const char *checksum, GError **error)
{
  for (guint64 left = size; left > 0;)
    {
      gsize chunk = (gsize) MIN (left, DIRECT_BUF_SIZE);
      if (!read_exactly (fd, w->buf, chunk, checksum, error))
        return FALSE;
      ab_sha256_update (w->sha, w->buf, chunk);
      left -= chunk;
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

/* ---- the plan ----
 * One walk of the commit serves the free-space check, the import, the
 * progress count and the checkout. Every dirtree and dirmeta object is
 * read once, hashed and compared with the checksum its parent (or the
 * verified commit) names, and must be in GVariant normal form (libostree
 * writes nothing else), so the checksums the walk takes from it point into
 * its own, verified bytes. The parsed objects stay in an AbMetaCache,
 * content-addressed: a cached object is the object of that name, whatever
 * commit or repo asks for it. */

/* ostree's own bound on directory nesting is 256 */
#define MAX_DEPTH 1024

struct AbMetaCache
{
  GHashTable *trees; /* checksum -> dirtree GVariant, each hashed to its name */
  GHashTable *metas; /* checksum -> dirmeta GVariant */
  char *commit;      /* the commit the walk started from */
  guint64 files;     /* its non-directory entries, as a checkout counts them */
  char *remote;      /* the remote whose keys verified COMMIT's signature */
};

/* An object the destination lacks: its checksum points into a cached
 * dirtree or the commit. */
typedef struct
{
  const guint8 *csum;
  OstreeObjectType type;
  /* a metadata object read by the walk from a loose file: that file's
   * inode, size and mtime, which the import links without reading it
   * again (ino 0: none) */
  dev_t dev;
  ino_t ino;
  gint64 size;
  gint64 mtime_ns;
} PlanObject;

static gint64
mtime_ns (const struct stat *st)
{
  return (gint64) st->st_mtim.tv_sec * G_GINT64_CONSTANT (1000000000) + st->st_mtim.tv_nsec;
}

/* Whether ST is the file the walk read for O (not one put in its place:
 * an inode number freed and given to a new file comes with a new mtime). */
static gboolean
same_walked_file (const PlanObject *o, const struct stat *st)
{
  return st->st_dev == o->dev && st->st_ino == o->ino && (gint64) st->st_size == o->size
         && mtime_ns (st) == o->mtime_ns;
}

struct AbImportPlan
{
  OstreeRepo *dest;
  OstreeRepo *src;
  GVariant *commit_v;
  AbMetaCache *cache;
  GHashTable *seen_files; /* raw checksums (into the cache) */
  GArray *meta;           /* PlanObject, then the content objects appended */
  GArray *content;
  guint64 needed;
  gboolean prefix_known;  /* the destination's objects/XX listing is complete */
  gboolean prefix[256];
  GCancellable *cancellable;
};

static void
meta_cache_free (AbMetaCache *c)
{
  g_hash_table_unref (c->trees);
  g_hash_table_unref (c->metas);
  g_free (c->commit);
  g_free (c->remote);
  g_free (c);
}

#define META_CACHE_KEY "ab-import-meta-cache"

AbMetaCache *
ab_import_meta_cache (OstreeRepo *repo)
{
  return g_object_get_data (G_OBJECT (repo), META_CACHE_KEY);
}

void
ab_import_drop_meta_cache (OstreeRepo *repo)
{
  g_object_set_data (G_OBJECT (repo), META_CACHE_KEY, NULL);
}

GVariant *
ab_meta_cache_lookup (AbMetaCache *cache, OstreeObjectType type, const char *checksum)
{
  GHashTable *t = type == OSTREE_OBJECT_TYPE_DIR_TREE ? cache->trees
                  : type == OSTREE_OBJECT_TYPE_DIR_META ? cache->metas : NULL;
  GVariant *v = t != NULL ? g_hash_table_lookup (t, checksum) : NULL;
  return v != NULL ? g_variant_ref (v) : NULL;
}

gboolean
ab_meta_cache_files (AbMetaCache *cache, const char *commit, guint64 *out_files)
{
  if (cache == NULL || g_strcmp0 (cache->commit, commit) != 0)
    return FALSE;
  *out_files = cache->files;
  return TRUE;
}

gboolean
ab_meta_cache_verified (AbMetaCache *cache, const char *commit, const char *remote)
{
  return cache != NULL && cache->remote != NULL && g_strcmp0 (cache->commit, commit) == 0
         && g_strcmp0 (cache->remote, remote) == 0;
}

void
ab_import_plan_free (AbImportPlan *p)
{
  g_clear_object (&p->dest);
  g_clear_object (&p->src);
  g_clear_pointer (&p->seen_files, g_hash_table_unref);
  g_clear_pointer (&p->meta, g_array_unref);
  g_clear_pointer (&p->content, g_array_unref);
  g_clear_pointer (&p->commit_v, g_variant_unref);
  g_clear_pointer (&p->cache, meta_cache_free);
  g_free (p);
}

static gboolean
corrupted (GError **error, const char *what, const char *checksum, const char *why)
{
  g_set_error (error, AB_IMPORT_ERROR, AB_IMPORT_ERROR_CHECKSUM,
               "Corrupted %s object %s in the source: %s", what, checksum, why);
  return FALSE;
}

/* The bytes of metadata object CHECKSUM of SRC: the loose file (one open,
 * stat and read), or whatever libostree finds (a parent repo). */
static GBytes *
read_meta_bytes (OstreeRepo *src, OstreeObjectType type, const char *checksum,
                 struct stat *out_st, GError **error)
{
  g_autofree char *rel = bare_object_path (checksum, type);
  ab_autofd fd = openat (ostree_repo_get_dfd (src), rel,
                         O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
  struct stat st;
  memset (out_st, 0, sizeof *out_st);
  if (fd < 0 && errno == ENOENT)
    {
      g_autoptr(GVariant) v = NULL;
      if (!ostree_repo_load_variant (src, type, checksum, &v, error))
        return NULL;
      return g_variant_get_data_as_bytes (v);
    }
  if (fd < 0 || fstat (fd, &st) < 0)
    {
      AB_IGNORE_RESULT (ab_throw_errno_prefix (error, errno, "Reading object %s of the source",
                                               checksum));
      return NULL;
    }
  if (!S_ISREG (st.st_mode) || st.st_size > OSTREE_MAX_METADATA_SIZE)
    return corrupted (error, ostree_object_type_to_string (type), checksum,
                      "not a regular file of at most 10 MiB"), NULL;
  g_autofree guint8 *buf = g_malloc ((gsize) st.st_size + 1);
  if (!read_exactly (fd, buf, (gsize) st.st_size, checksum, error))
    return NULL;
  *out_st = st;
  return g_bytes_new_take (g_steal_pointer (&buf), (gsize) st.st_size);
}

/* Metadata object CHECKSUM of SRC, hashed to its name, in normal form. */
static GVariant *
read_verified_meta (OstreeRepo *src, OstreeObjectType type, const char *checksum,
                    struct stat *out_st, GError **error)
{
  g_autoptr(GBytes) bytes = read_meta_bytes (src, type, checksum, out_st, error);
  if (bytes == NULL)
    return NULL;
  gsize size = 0;
  gconstpointer data = g_bytes_get_data (bytes, &size);
  g_autofree char *got = ab_sha256_hex (data, size);
  const char *what = ostree_object_type_to_string (type);
  g_autofree char *why = g_strdup_printf ("it hashes to %s", got);
  if (strcmp (got, checksum) != 0)
    return corrupted (error, what, checksum, why), NULL;
  g_autoptr(GVariant) v = g_variant_ref_sink (
      g_variant_new_from_bytes (ostree_metadata_variant_type (type), bytes, FALSE));
  if (!g_variant_is_normal_form (v))
    return corrupted (error, what, checksum, "not in GVariant normal form"), NULL;
  return g_steal_pointer (&v);
}

/* The 32 checksum bytes of CSUM_V (an "ay" of a verified object). */
static const guint8 *
checksum_bytes (GVariant *csum_v, GError **error)
{
  if (g_variant_get_size (csum_v) == OSTREE_SHA256_DIGEST_LEN)
    return g_variant_get_data (csum_v);
  g_set_error (error, AB_IMPORT_ERROR, AB_IMPORT_ERROR_CHECKSUM,
               "Corrupted commit: it holds a checksum of %" G_GSIZE_FORMAT " bytes",
               g_variant_get_size (csum_v));
  return NULL;
}

static gboolean
dest_has (AbImportPlan *p, const guint8 *csum, const char *checksum, OstreeObjectType type,
          gboolean *out_have, GError **error)
{
  *out_have = FALSE;
  if (p->prefix_known && !p->prefix[csum[0]])
    return TRUE; /* no objects/XX directory: no such object */
  return ostree_repo_has_object (p->dest, type, checksum, out_have, p->cancellable, error);
}

/* Queues the object when the destination lacks it; SIZE: its bytes, or
 * G_MAXUINT64 when the source must be asked; ST: the loose file the walk
 * read and verified, or NULL. */
static gboolean
plan_add (AbImportPlan *p, const guint8 *csum, OstreeObjectType type, guint64 size,
          const struct stat *st, GError **error)
{
  char checksum[OSTREE_SHA256_STRING_LEN + 1];
  ostree_checksum_inplace_from_bytes (csum, checksum);
  gboolean have = FALSE;
  if (!dest_has (p, csum, checksum, type, &have, error))
    return FALSE;
  if (have)
    return TRUE;
  PlanObject o = { csum, type, st ? st->st_dev : 0, st ? st->st_ino : 0,
                   st ? (gint64) st->st_size : 0, st ? mtime_ns (st) : 0 };
  g_array_append_val (OSTREE_OBJECT_TYPE_IS_META (type) ? p->meta : p->content, o);
  /* the content objects' sizes are asked for after the walk, see sum_sizes */
  p->needed += size != G_MAXUINT64 ? size : 0;
  return TRUE;
}

/* The dirtree or dirmeta CSUM, from the cache or read, verified and queued. */
static GVariant *
want_meta (AbImportPlan *p, OstreeObjectType type, const guint8 *csum, GError **error)
{
  char checksum[OSTREE_SHA256_STRING_LEN + 1];
  ostree_checksum_inplace_from_bytes (csum, checksum);
  GHashTable *table = type == OSTREE_OBJECT_TYPE_DIR_TREE ? p->cache->trees : p->cache->metas;
  GVariant *v = g_hash_table_lookup (table, checksum);
  if (v != NULL)
    return v;
  struct stat st;
  v = read_verified_meta (p->src, type, checksum, &st, error);
  if (v == NULL)
    return NULL;
  g_hash_table_insert (table, g_strdup (checksum), v);
  return plan_add (p, csum, type, g_variant_get_size (v), st.st_ino ? &st : NULL, error) ? v
                                                                                        : NULL;
}

static gboolean
walk_files (AbImportPlan *p, GVariant *tree, GError **error)
{
  g_autoptr(GVariant) files = g_variant_get_child_value (tree, 0);
  gsize n = g_variant_n_children (files);
  p->cache->files += n;
  for (gsize i = 0; i < n; i++)
    {
      g_autoptr(GVariant) entry = g_variant_get_child_value (files, i);
      g_autoptr(GVariant) csum_v = g_variant_get_child_value (entry, 1);
      const guint8 *csum = checksum_bytes (csum_v, error);
      if (csum == NULL)
        return FALSE;
      if (!g_hash_table_add (p->seen_files, (gpointer) csum))
        continue;
      if (!plan_add (p, csum, OSTREE_OBJECT_TYPE_FILE, G_MAXUINT64, NULL, error))
        return FALSE;
    }
  return TRUE;
}

static gboolean walk_dir (AbImportPlan *p, const guint8 *tree_csum, const guint8 *meta_csum,
                          guint depth, GError **error);

static gboolean
walk_subdirs (AbImportPlan *p, GVariant *tree, guint depth, GError **error)
{
  g_autoptr(GVariant) dirs = g_variant_get_child_value (tree, 1);
  for (gsize i = 0; i < g_variant_n_children (dirs); i++)
    {
      g_autoptr(GVariant) entry = g_variant_get_child_value (dirs, i);
      g_autoptr(GVariant) t = g_variant_get_child_value (entry, 1);
      g_autoptr(GVariant) m = g_variant_get_child_value (entry, 2);
      const guint8 *tc = checksum_bytes (t, error);
      const guint8 *mc = tc != NULL ? checksum_bytes (m, error) : NULL;
      if (mc == NULL || !walk_dir (p, tc, mc, depth + 1, error))
        return FALSE;
    }
  return TRUE;
}

static gboolean
walk_dir (AbImportPlan *p, const guint8 *tree_csum, const guint8 *meta_csum, guint depth,
          GError **error)
{
  if (depth > MAX_DEPTH)
    {
      g_set_error (error, AB_IMPORT_ERROR, AB_IMPORT_ERROR_CHECKSUM,
                   "Corrupted commit: directories nested more than %d deep", MAX_DEPTH);
      return FALSE;
    }
  if (g_cancellable_set_error_if_cancelled (p->cancellable, error))
    return FALSE;
  GVariant *tree = NULL;
  return want_meta (p, OSTREE_OBJECT_TYPE_DIR_META, meta_csum, error) != NULL
         && (tree = want_meta (p, OSTREE_OBJECT_TYPE_DIR_TREE, tree_csum, error)) != NULL
         && walk_files (p, tree, error) && walk_subdirs (p, tree, depth, error);
}

typedef struct
{
  AbImportPlan *plan;
  guint first;   /* this thread's share: every STRIDE-th content object */
  guint stride;
  guint64 bytes;
} SizeShare;

static gpointer
sum_share (gpointer data)
{
  SizeShare *sh = data;
  GArray *content = sh->plan->content;
  for (guint i = sh->first; i < content->len; i += sh->stride)
    {
      const PlanObject *o = &g_array_index (content, PlanObject, i);
      char checksum[OSTREE_SHA256_STRING_LEN + 1];
      ostree_checksum_inplace_from_bytes (o->csum, checksum);
      sh->bytes += object_bytes (sh->plan->src, checksum, o->type);
    }
  return NULL;
}

/* Adds the sizes of the content objects the destination lacks (one
 * fstatat each in a bare source), on one thread per CPU. */
static void
sum_sizes (AbImportPlan *p)
{
  guint n = CLAMP (g_get_num_processors (), 1, 8);
  g_autofree SizeShare *shares = g_new0 (SizeShare, n);
  g_autofree GThread **threads = g_new0 (GThread *, n);
  for (guint i = 0; i < n; i++)
    {
      shares[i] = (SizeShare) { p, i, n, 0 };
      threads[i] = i > 0 ? g_thread_new ("ab-import-size", sum_share, &shares[i]) : NULL;
    }
  sum_share (&shares[0]);
  for (guint i = 0; i < n; i++)
    {
      if (threads[i] != NULL)
        g_thread_join (threads[i]);
      p->needed += shares[i].bytes;
    }
}

/* Which objects/XX directories DEST has (HAVE[XX]). */
static gboolean
scan_prefix_dirs (OstreeRepo *dest, gboolean have[256], GError **error)
{
  DIR *d = NULL;
  int objs = openat (ostree_repo_get_dfd (dest), "objects", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
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
  return TRUE;
}

static guint
raw_checksum_hash (gconstpointer key)
{
  guint h;
  memcpy (&h, key, sizeof h);
  return h;
}

static gboolean
raw_checksum_equal (gconstpointer a, gconstpointer b)
{
  return memcmp (a, b, OSTREE_SHA256_DIGEST_LEN) == 0;
}

static AbImportPlan *
plan_alloc (OstreeRepo *dest, OstreeRepo *src, GCancellable *cancellable)
{
  AbImportPlan *p = g_new0 (AbImportPlan, 1);
  p->dest = g_object_ref (dest);
  p->src = g_object_ref (src);
  p->cancellable = cancellable;
  p->cache = g_new0 (AbMetaCache, 1);
  p->cache->trees = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                           (GDestroyNotify) g_variant_unref);
  p->cache->metas = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                           (GDestroyNotify) g_variant_unref);
  p->seen_files = g_hash_table_new (raw_checksum_hash, raw_checksum_equal);
  p->meta = g_array_new (FALSE, FALSE, sizeof (PlanObject));
  p->content = g_array_new (FALSE, FALSE, sizeof (PlanObject));
  return p;
}

AbImportPlan *
ab_import_plan_new (OstreeRepo *dest, const char *remote, OstreeRepo *src, const char *commit,
                    GCancellable *cancellable, GError **error)
{
  g_autoptr(AbImportPlan) p = plan_alloc (dest, src, cancellable);
  if (!verify_source_commit (dest, remote, src, commit, &p->commit_v, cancellable, error))
    return NULL;
  p->cache->commit = g_strdup (commit);
  p->cache->remote = g_strdup (remote);
  p->prefix_known = ostree_repo_get_parent (dest) == NULL;
  if (p->prefix_known && !scan_prefix_dirs (dest, p->prefix, error))
    return NULL;
  g_autoptr(GVariant) t = g_variant_get_child_value (p->commit_v, 6);
  g_autoptr(GVariant) m = g_variant_get_child_value (p->commit_v, 7);
  const guint8 *tc = checksum_bytes (t, error);
  const guint8 *mc = tc != NULL ? checksum_bytes (m, error) : NULL;
  if (mc == NULL || !walk_dir (p, tc, mc, 0, error))
    return NULL;
  sum_sizes (p);
  /* metadata first: the import stops early on a bad one */
  g_array_append_vals (p->meta, p->content->data, p->content->len);
  g_clear_pointer (&p->content, g_array_unref);
  g_clear_pointer (&p->seen_files, g_hash_table_unref);
  p->needed += g_variant_get_size (p->commit_v);
  return g_steal_pointer (&p);
}

guint64
ab_import_plan_needed_bytes (AbImportPlan *plan)
{
  return plan->needed;
}

/* A metadata object the walk verified: its file is linked without being
 * read again, and the link must be the very inode the walk read (a file
 * put in its place since is refused and unlinked again). *OUT_FALLBACK:
 * the file system refused the link. */
static gboolean
link_walked_meta (ImportJob *job, const PlanObject *o, const char *checksum,
                  gboolean *out_fallback, GError **error)
{
  g_autofree char *rel = bare_object_path (checksum, o->type);
  int dest = ostree_repo_get_dfd (job->dest);
  struct stat st;
  *out_fallback = FALSE;
  if (linkat (ostree_repo_get_dfd (job->src), rel, dest, rel, 0) < 0)
    {
      if (errno == EEXIST)
        return TRUE;
      if (errno != EXDEV && errno != EPERM && errno != EMLINK)
        return ab_throw_errno_prefix (error, errno, "Linking object %s into the repo", checksum);
      return (*out_fallback = TRUE);
    }
  if (fstatat (dest, rel, &st, AT_SYMLINK_NOFOLLOW) == 0 && same_walked_file (o, &st))
    return TRUE;
  (void) unlinkat (dest, rel, 0);
  return corrupted (error, ostree_object_type_to_string (o->type), checksum,
                    "it was replaced while it was imported");
}

static gboolean
import_one (ImportJob *job, Worker *w, const PlanObject *o, GError **error)
{
  char checksum[OSTREE_SHA256_STRING_LEN + 1];
  ostree_checksum_inplace_from_bytes (o->csum, checksum);
  gboolean fallback = TRUE;
  if (job->direct && o->ino != 0 && g_atomic_int_get (&job->no_links) == 0)
    {
      if (!link_walked_meta (job, o, checksum, &fallback, error))
        return FALSE;
      if (!fallback)
        return TRUE;
    }
  if (job->direct && !direct_import (job, w, checksum, o->type, &fallback, error))
    return FALSE;
  if (!fallback)
    return TRUE;
  if (!ostree_repo_import_object_from_with_trust (job->dest, job->src, o->type, checksum, FALSE,
                                                  job->cancellable, error))
    return FALSE;
  guint64 size = 0;
  if (job->count_bytes
      && ostree_repo_query_object_storage_size (job->src, o->type, checksum, &size, NULL, NULL))
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
          || !import_one (job, &w, &g_array_index (job->objects, PlanObject, i), &e))
        {
          job_fail (job, e);
          break;
        }
      g_atomic_int_inc (&job->done);
    }
  g_mutex_lock (&job->lock);
  job->finished++;
  g_cond_signal (&job->finished_cond);
  g_mutex_unlock (&job->lock);
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
  /* progress every 50 ms; woken at once when the last worker ends */
  g_mutex_lock (&job->lock);
  while (job->finished < (gint) n_workers)
    {
      g_mutex_unlock (&job->lock);
      report (job, progress, user_data);
      g_mutex_lock (&job->lock);
      if (job->finished < (gint) n_workers)
        g_cond_wait_until (&job->finished_cond, &job->lock,
                           g_get_monotonic_time () + G_USEC_PER_SEC / 20);
    }
  g_mutex_unlock (&job->lock);
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

/* Every objects/XX directory the queued objects need, made once before
 * the workers start (so no worker tries mkdir on each object). */
static gboolean
make_prefix_dirs (AbImportPlan *p, GError **error)
{
  int repo_dfd = ostree_repo_get_dfd (p->dest);
  gboolean have[256] = { FALSE };
  if (!scan_prefix_dirs (p->dest, have, error))
    return FALSE;
  for (guint i = 0; i < p->meta->len; i++)
    {
      guint8 x = g_array_index (p->meta, PlanObject, i).csum[0];
      g_autofree char *dir = g_strdup_printf ("objects/%02x", x);
      if (!have[x] && mkdirat (repo_dfd, dir, 0777) < 0 && errno != EEXIST)
        return ab_throw_errno_prefix (error, errno, "Creating %s in the repo", dir);
      have[x] = TRUE;
    }
  return TRUE;
}

static gboolean
import_objects (AbImportPlan *p, guint n_workers, AbProgressFunc progress, gpointer user_data,
                GCancellable *cancellable, GError **error)
{
  ImportJob job = { .dest = p->dest, .src = p->src, .objects = p->meta,
                    .count_bytes = progress != NULL, .cancellable = cancellable,
                    .direct = direct_possible (p->dest, p->src) };
  if (job.direct && !make_prefix_dirs (p, error))
    return FALSE;
  g_mutex_init (&job.lock);
  g_cond_init (&job.finished_cond);
  gboolean ok = run_workers (&job, n_workers, progress, user_data, error);
  g_cond_clear (&job.finished_cond);
  g_mutex_clear (&job.lock);
  return ok;
}

gboolean
ab_import_plan_run (AbImportPlan *plan, guint n_workers, AbProgressFunc progress,
                    gpointer user_data, GCancellable *cancellable, GError **error)
{
  const char *commit = plan->cache->commit;
  if (!import_objects (plan, n_workers, progress, user_data, cancellable, error)
      || !ostree_repo_import_object_from_with_trust (plan->dest, plan->src,
                                                     OSTREE_OBJECT_TYPE_COMMIT, commit, FALSE,
                                                     cancellable, error)
      || !ostree_repo_mark_commit_partial (plan->dest, commit, FALSE, error))
    return FALSE;
  /* the walk's verified metadata, for the checkout and the second
   * signature check of the same commit */
  g_object_set_data_full (G_OBJECT (plan->dest), META_CACHE_KEY,
                          g_steal_pointer (&plan->cache), (GDestroyNotify) meta_cache_free);
  return TRUE;
}

gboolean
ab_import_commit (OstreeRepo *dest, const char *remote, OstreeRepo *src, const char *commit,
                  guint n_workers, AbProgressFunc progress, gpointer user_data,
                  GCancellable *cancellable, GError **error)
{
  g_autoptr(AbImportPlan) plan = ab_import_plan_new (dest, remote, src, commit, cancellable,
                                                     error);
  return plan != NULL
         && ab_import_plan_run (plan, n_workers, progress, user_data, cancellable, error);
}
