/* Publisher: the image packs of a release (issue 18, abdeploy-manifest(5),
 * "Pack members").
 *
 * Invariants:
 * - a release lists packs only when every pack is in place (written to a
 *   temporary name, synced, renamed, directory synced) and has the size and
 *   SHA-256 that the listing gives;
 * - every object reachable from the commit, the commit itself and its
 *   detached metadata are in exactly one pack; pack 0 starts with the
 *   commit, its detached metadata, then the dirtrees and dirmetas;
 * - the objects are read through libostree, never from the repo's files. */
#include "config.h"
#include "ab-publish-private.h"
#include "ab-fsutil.h"
#include "ab-util.h"

#include <glib/gstdio.h>
#include <sys/stat.h>
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#define PACKS_DIR "abdeploy/packs"
/* The unpacked bytes a pack aims at; a commit gets
 * clamp (ceil (unpacked / this), 2, AB_PACKS_MAX_FILES) packs. */
#define PACK_TARGET_BYTES (32 * 1024 * 1024)
#define PACK_MIN 2
#define ZSTD_LEVEL "10"
#define COPY_CHUNK (256 * 1024)

/* One entry of a pack. DATA holds a metadata object's bytes; a content
 * object is streamed from the repo when written. */
typedef struct
{
  OstreeObjectType type;
  char *checksum;
  guint64 size; /* content bytes: file size, symlink target length, metadata size */
  GBytes *data; /* metadata only */
} PackObject;

/* NULL is allowed: arrays whose objects were moved into a pack hold NULLs. */
static void
pack_object_free (PackObject *o)
{
  if (o == NULL)
    return;
  g_free (o->checksum);
  g_clear_pointer (&o->data, g_bytes_unref);
  g_free (o);
}

static PackObject *
pack_object_new (OstreeObjectType type, const char *checksum, guint64 size, GBytes *data)
{
  PackObject *o = g_new0 (PackObject, 1);
  o->type = type;
  o->checksum = g_strdup (checksum);
  o->size = size;
  o->data = data ? g_bytes_ref (data) : NULL;
  return o;
}

/* The entry name: objects/XX/YYYY....EXT, as in a bare repo. */
static char *
pack_object_name (const PackObject *o)
{
  return g_strdup_printf ("objects/%.2s/%s.%s", o->checksum, o->checksum + 2,
                          ostree_object_type_to_string (o->type));
}

/* ---- what goes into the packs ---- */

static PackObject *
load_metadata (AbPublishSession *s, OstreeObjectType type, const char *checksum,
               GError **error)
{
  g_autoptr(GVariant) v = NULL;
  if (!ostree_repo_load_variant (s->repo, type, checksum, &v, error))
    return NULL;
  g_autoptr(GBytes) data = g_variant_get_data_as_bytes (v);
  return pack_object_new (type, checksum, g_bytes_get_size (data), data);
}

/* A content object's entry, sized from its header alone. */
static PackObject *
size_content (AbPublishSession *s, const char *checksum, GError **error)
{
  g_autoptr(GFileInfo) info = NULL;
  if (!ostree_repo_load_file (s->repo, checksum, NULL, &info, NULL, NULL, error))
    return NULL;
  guint64 size = g_file_info_get_file_type (info) == G_FILE_TYPE_SYMBOLIC_LINK
                   ? strlen (g_file_info_get_symlink_target (info))
                   : (guint64) g_file_info_get_size (info);
  return pack_object_new (OSTREE_OBJECT_TYPE_FILE, checksum, size, NULL);
}

/* Dirtrees before dirmetas, then by checksum: a stable order. */
static int
compare_meta (gconstpointer pa, gconstpointer pb)
{
  const PackObject *a = *(const PackObject **) pa, *b = *(const PackObject **) pb;
  if (a->type != b->type)
    return a->type == OSTREE_OBJECT_TYPE_DIR_TREE ? -1 : 1;
  return strcmp (a->checksum, b->checksum);
}

/* Largest first, then by checksum. */
static int
compare_files (gconstpointer pa, gconstpointer pb)
{
  const PackObject *a = *(const PackObject **) pa, *b = *(const PackObject **) pb;
  if (a->size != b->size)
    return a->size > b->size ? -1 : 1;
  return strcmp (a->checksum, b->checksum);
}

/* The objects reachable from COMMIT but the commit itself: dirtrees and
 * dirmetas into META, content objects into FILES. */
static gboolean
collect_reachable (AbPublishSession *s, const char *commit, GPtrArray *meta, GPtrArray *files,
                   GError **error)
{
  g_autoptr(GHashTable) reachable = NULL;
  if (!ostree_repo_traverse_commit (s->repo, commit, 0, &reachable, NULL, error))
    return FALSE;
  GHashTableIter it;
  gpointer key;
  g_hash_table_iter_init (&it, reachable);
  while (g_hash_table_iter_next (&it, &key, NULL))
    {
      const char *checksum;
      OstreeObjectType type;
      ostree_object_name_deserialize (key, &checksum, &type);
      if (type == OSTREE_OBJECT_TYPE_COMMIT)
        continue;
      PackObject *o = type == OSTREE_OBJECT_TYPE_FILE ? size_content (s, checksum, error)
                                                      : load_metadata (s, type, checksum, error);
      if (o == NULL)
        return FALSE;
      g_ptr_array_add (type == OSTREE_OBJECT_TYPE_FILE ? files : meta, o);
    }
  g_ptr_array_sort (meta, compare_meta);
  g_ptr_array_sort (files, compare_files);
  return TRUE;
}

/* The head of pack 0: the commit, its detached metadata (when it has any),
 * then META. */
static gboolean
pack0_head (AbPublishSession *s, const char *commit, GPtrArray *meta, GPtrArray *out,
            GError **error)
{
  PackObject *c = load_metadata (s, OSTREE_OBJECT_TYPE_COMMIT, commit, error);
  if (c == NULL)
    return FALSE;
  g_ptr_array_add (out, c);
  g_autoptr(GVariant) detached = NULL;
  if (!ostree_repo_read_commit_detached_metadata (s->repo, commit, &detached, NULL, error))
    return FALSE;
  if (detached != NULL)
    {
      g_autoptr(GBytes) data = g_variant_get_data_as_bytes (detached);
      g_ptr_array_add (out, pack_object_new (OSTREE_OBJECT_TYPE_COMMIT_META, commit,
                                             g_bytes_get_size (data), data));
    }
  for (guint i = 0; i < meta->len; i++)
    g_ptr_array_add (out, g_steal_pointer (&meta->pdata[i]));
  return TRUE;
}

/* ---- balancing ---- */

typedef struct
{
  GPtrArray *objects; /* PackObject, in write order */
  guint64 bytes;      /* their content bytes */
} PackPlan;

static void
pack_plan_free (PackPlan *p)
{
  g_ptr_array_unref (p->objects);
  g_free (p);
}

/* How many packs for UNPACKED bytes and N_FILES content objects: pack 0
 * holds the metadata, every other pack gets at least one content object. */
static guint
pack_count (guint64 unpacked, guint n_files)
{
  guint64 n = (unpacked + PACK_TARGET_BYTES - 1) / PACK_TARGET_BYTES;
  n = CLAMP (n, PACK_MIN, AB_PACKS_MAX_FILES);
  return (guint) MIN (n, (guint64) n_files + 1);
}

/* The pack with the fewest bytes so far (ties: fewest objects, then the
 * lowest index). */
static PackPlan *
lightest (GPtrArray *plans)
{
  PackPlan *best = plans->pdata[0];
  for (guint i = 1; i < plans->len; i++)
    {
      PackPlan *p = plans->pdata[i];
      if (p->bytes < best->bytes
          || (p->bytes == best->bytes && p->objects->len < best->objects->len))
        best = p;
    }
  return best;
}

static PackPlan *
plan_new (void)
{
  PackPlan *p = g_new0 (PackPlan, 1);
  p->objects = g_ptr_array_new_with_free_func ((GDestroyNotify) pack_object_free);
  return p;
}

/* HEAD into pack 0, then FILES (largest first) each to the lightest pack. */
static GPtrArray *
plan_packs (GPtrArray *head, GPtrArray *files)
{
  guint64 unpacked = 0;
  for (guint i = 0; i < head->len; i++)
    unpacked += ((PackObject *) head->pdata[i])->size;
  for (guint i = 0; i < files->len; i++)
    unpacked += ((PackObject *) files->pdata[i])->size;
  GPtrArray *plans = g_ptr_array_new_with_free_func ((GDestroyNotify) pack_plan_free);
  for (guint n = pack_count (unpacked, files->len); plans->len < n;)
    g_ptr_array_add (plans, plan_new ());
  PackPlan *first = plans->pdata[0];
  for (guint i = 0; i < head->len; i++)
    {
      first->bytes += ((PackObject *) head->pdata[i])->size;
      g_ptr_array_add (first->objects, g_steal_pointer (&head->pdata[i]));
    }
  for (guint i = 0; i < files->len; i++)
    {
      PackPlan *p = lightest (plans);
      p->bytes += ((PackObject *) files->pdata[i])->size;
      g_ptr_array_add (p->objects, g_steal_pointer (&files->pdata[i]));
    }
  return plans;
}

/* ---- writing one pack ---- */

static gboolean
archive_fail (struct archive *a, const char *what, const char *pack, GError **error)
{
  g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_FAILED, "Writing pack %s: %s: %s", pack,
               what, archive_error_string (a) ? archive_error_string (a) : "unknown error");
  return FALSE;
}

/* Writes ENTRY's header and LEN bytes of DATA. */
static gboolean
write_bytes_entry (struct archive *a, struct archive_entry *e, GBytes *data, const char *pack,
                   GError **error)
{
  gsize len = 0;
  const void *buf = g_bytes_get_data (data, &len);
  if (archive_write_header (a, e) != ARCHIVE_OK)
    return archive_fail (a, archive_entry_pathname (e), pack, error);
  if (len > 0 && archive_write_data (a, buf, len) != (la_ssize_t) len)
    return archive_fail (a, archive_entry_pathname (e), pack, error);
  return TRUE;
}

/* A metadata object: a regular file, 0:0, 0644, its bytes as stored. */
static gboolean
write_metadata (struct archive *a, struct archive_entry *e, const PackObject *o,
                const char *pack, GError **error)
{
  archive_entry_set_filetype (e, AE_IFREG);
  archive_entry_set_perm (e, 0644);
  archive_entry_set_size (e, (la_int64_t) o->size);
  return write_bytes_entry (a, e, o->data, pack, error);
}

/* The object's xattrs (a(ayay)) as pax SCHILY.xattr.* of E. */
static void
add_xattrs (struct archive_entry *e, GVariant *xattrs)
{
  for (gsize i = 0; xattrs != NULL && i < g_variant_n_children (xattrs); i++)
    {
      const char *name;
      g_autoptr(GVariant) value = NULL;
      g_variant_get_child (xattrs, i, "(^&ay@ay)", &name, &value);
      archive_entry_xattr_add_entry (e, name, g_variant_get_data (value),
                                     g_variant_get_size (value));
    }
}

/* Copies IN to A, exactly SIZE bytes. */
static gboolean
copy_content (struct archive *a, GInputStream *in, guint64 size, const char *entry,
              const char *pack, GError **error)
{
  g_autofree char *buf = g_malloc (COPY_CHUNK);
  guint64 done = 0;
  while (done < size)
    {
      gsize n = 0;
      if (!g_input_stream_read_all (in, buf, MIN (COPY_CHUNK, size - done), &n, NULL, error))
        return FALSE;
      if (n == 0)
        return g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_FAILED,
                            "Writing pack %s: object %s is shorter than its header says", pack,
                            entry), FALSE;
      if (archive_write_data (a, buf, n) != (la_ssize_t) n)
        return archive_fail (a, entry, pack, error);
      done += n;
    }
  return TRUE;
}

/* A content object: a regular file or a symlink with its owner, mode and
 * xattrs; a regular file's content streamed from the repo. */
static gboolean
write_content (AbPublishSession *s, struct archive *a, struct archive_entry *e,
               const PackObject *o, const char *pack, GError **error)
{
  g_autoptr(GInputStream) in = NULL;
  g_autoptr(GFileInfo) info = NULL;
  g_autoptr(GVariant) xattrs = NULL;
  if (!ostree_repo_load_file (s->repo, o->checksum, &in, &info, &xattrs, NULL, error))
    return FALSE;
  guint32 mode = g_file_info_get_attribute_uint32 (info, "unix::mode");
  archive_entry_set_uid (e, g_file_info_get_attribute_uint32 (info, "unix::uid"));
  archive_entry_set_gid (e, g_file_info_get_attribute_uint32 (info, "unix::gid"));
  add_xattrs (e, xattrs);
  if (g_file_info_get_file_type (info) == G_FILE_TYPE_SYMBOLIC_LINK)
    {
      archive_entry_set_filetype (e, AE_IFLNK);
      archive_entry_set_perm (e, mode & 07777);
      archive_entry_set_symlink (e, g_file_info_get_symlink_target (info));
      if (archive_write_header (a, e) != ARCHIVE_OK)
        return archive_fail (a, archive_entry_pathname (e), pack, error);
      return TRUE;
    }
  archive_entry_set_mode (e, mode);
  archive_entry_set_size (e, (la_int64_t) o->size);
  if (archive_write_header (a, e) != ARCHIVE_OK)
    return archive_fail (a, archive_entry_pathname (e), pack, error);
  return copy_content (a, in, o->size, archive_entry_pathname (e), pack, error);
}

static gboolean
write_object (AbPublishSession *s, struct archive *a, const PackObject *o, const char *pack,
              GError **error)
{
  g_autofree char *name = pack_object_name (o);
  struct archive_entry *e = archive_entry_new ();
  archive_entry_set_pathname (e, name);
  archive_entry_set_mtime (e, 0, 0);
  gboolean ok = o->type == OSTREE_OBJECT_TYPE_FILE ? write_content (s, a, e, o, pack, error)
                                                   : write_metadata (a, e, o, pack, error);
  archive_entry_free (e);
  return ok;
}

/* A pax writer with zstd at ZSTD_LEVEL onto FD. */
static struct archive *
open_writer (int fd, const char *pack, GError **error)
{
  struct archive *a = archive_write_new ();
  /* xattrs as SCHILY.xattr.* only: libarchive would also write each one
   * as LIBARCHIVE.xattr.*, which its reader then reports twice */
  if (archive_write_set_format_pax_restricted (a) != ARCHIVE_OK
      || archive_write_set_format_option (a, "pax", "xattrheader", "SCHILY") != ARCHIVE_OK
      || archive_write_add_filter_zstd (a) != ARCHIVE_OK
      || archive_write_set_filter_option (a, "zstd", "compression-level", ZSTD_LEVEL) != ARCHIVE_OK
      || archive_write_set_bytes_in_last_block (a, 1) != ARCHIVE_OK
      || archive_write_open_fd (a, fd) != ARCHIVE_OK)
    {
      archive_fail (a, "setting up the zstd pax writer", pack, error);
      archive_write_free (a);
      return NULL;
    }
  return a;
}

/* PLAN's objects as a zstd pax tar into FD, synced. */
static gboolean
write_pack_fd (AbPublishSession *s, int fd, const PackPlan *plan, const char *pack,
               GError **error)
{
  struct archive *a = open_writer (fd, pack, error);
  if (a == NULL)
    return FALSE;
  gboolean ok = TRUE;
  for (guint i = 0; ok && i < plan->objects->len; i++)
    ok = write_object (s, a, plan->objects->pdata[i], pack, error);
  if (ok && archive_write_close (a) != ARCHIVE_OK)
    ok = archive_fail (a, "finishing it", pack, error);
  archive_write_free (a);
  if (ok && fsync (fd) < 0)
    ok = ab_throw_errno_prefix (error, errno, "Writing pack %s: fsync", pack);
  return ok;
}

/* Pack N of PLAN as DFD/N.tar.zst: temporary name, fsync, rename, fsync
 * of the directory. On error no temporary is left. */
static gboolean
write_pack (AbPublishSession *s, int dfd, const char *commit, guint n, const PackPlan *plan,
            GError **error)
{
  g_autofree char *name = g_strdup_printf ("%u.tar.zst", n);
  g_autofree char *tmp = g_strdup_printf (".%u.tar.zst.tmp", n);
  g_autofree char *pack = ab_packs_path (commit, n);
  ab_autofd fd = openat (dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0)
    return ab_throw_errno_prefix (error, errno, "Writing pack %s", pack);
  if (!write_pack_fd (s, fd, plan, pack, error) || !ab_fs_rename_at (dfd, tmp, name, error))
    {
      (void) unlinkat (dfd, tmp, 0);
      return FALSE;
    }
  return ab_fs_fsync_dir_at (dfd, ".", error);
}

/* ---- listing ---- */

/* The listing of the packs of COMMIT that are in place: N files. */
static AbPacks *
list_packs (AbPublishSession *s, const char *commit, GPtrArray *plans, GError **error)
{
  g_autoptr(AbPacks) packs = ab_packs_new ();
  for (guint n = 0; n < plans->len; n++)
    {
      g_autofree char *path = ab_packs_path (commit, n), *hex = NULL;
      guint64 size = 0;
      if (!ab_publish_sha256_file (s->dfd, path, &hex, &size, error))
        return NULL;
      g_ptr_array_add (packs->files, ab_delta_file_new (path, size, hex));
      packs->size += size;
      packs->unpacked += ((PackPlan *) plans->pdata[n])->bytes;
    }
  return g_steal_pointer (&packs);
}

/* The packs R lists are all on disk with their listed size and SHA-256. */
static gboolean
listed_packs_in_place (AbPublishSession *s, const AbRelease *r)
{
  for (guint n = 0; r->packs != NULL && n < r->packs->files->len; n++)
    {
      const AbDeltaFile *f = r->packs->files->pdata[n];
      g_autofree char *hex = NULL;
      guint64 size = 0;
      if (!ab_publish_sha256_file (s->dfd, f->path, &hex, &size, NULL) || size != f->size
          || strcmp (hex, f->sha256) != 0)
        return FALSE;
    }
  return r->packs != NULL;
}

/* Every pack of PLANS written into PACKS_DIR/COMMIT/. */
static gboolean
write_packs (AbPublishSession *s, const char *commit, GPtrArray *plans, GError **error)
{
  g_autofree char *dir = g_build_filename (PACKS_DIR, commit, NULL);
  ab_autofd dfd = ab_fs_mkdir_p_beneath (s->dfd, dir, 0755, error);
  if (dfd < 0 || !ab_fs_fsync_dir_at (s->dfd, PACKS_DIR, error))
    return FALSE;
  for (guint n = 0; n < plans->len; n++)
    if (!write_pack (s, dfd, commit, n, plans->pdata[n], error))
      return FALSE;
  return TRUE;
}

gboolean
ab_publish_add_packs (AbPublishSession *s, AbRelease *r, GError **error)
{
  if (listed_packs_in_place (s, r))
    return TRUE;
  g_autoptr(GPtrArray) meta = g_ptr_array_new_with_free_func ((GDestroyNotify) pack_object_free);
  g_autoptr(GPtrArray) files = g_ptr_array_new_with_free_func ((GDestroyNotify) pack_object_free);
  g_autoptr(GPtrArray) head = g_ptr_array_new_with_free_func ((GDestroyNotify) pack_object_free);
  if (!collect_reachable (s, r->commit, meta, files, error)
      || !pack0_head (s, r->commit, meta, head, error))
    {
      g_prefix_error (error, "Packing the objects of %s (%s): ", r->version, r->commit);
      return FALSE;
    }
  g_autoptr(GPtrArray) plans = plan_packs (head, files);
  if (!write_packs (s, r->commit, plans, error))
    return FALSE;
  AbPacks *packs = list_packs (s, r->commit, plans, error);
  if (packs == NULL)
    return FALSE;
  ab_packs_free (r->packs);
  r->packs = packs;
  return TRUE;
}

/* ---- prune ---- */

void
ab_publish_packs_garbage (AbPublishSession *s, GHashTable *reachable, GPtrArray *out_commits,
                          guint64 *bytes)
{
  g_autofree char *top = g_build_filename (s->p->repo, PACKS_DIR, NULL);
  g_autoptr(GDir) d = g_dir_open (top, 0, NULL); /* none yet: nothing to prune */
  const char *commit;
  while (d && (commit = g_dir_read_name (d)) != NULL)
    {
      if (!ab_is_commit_checksum (commit))
        continue;
      g_autoptr(GVariant) key = ostree_object_name_serialize (commit, OSTREE_OBJECT_TYPE_COMMIT);
      if (g_hash_table_contains (reachable, key))
        continue;
      g_ptr_array_add (out_commits, g_strdup (commit));
      g_autofree char *dir = g_build_filename (top, commit, NULL);
      *bytes += ab_publish_dir_file_bytes (dir);
    }
}

gboolean
ab_publish_packs_remove (AbPublishSession *s, const char *commit, GError **error)
{
  g_autofree char *dir = g_build_filename (PACKS_DIR, commit, NULL);
  return ab_fs_rm_rf_at (s->dfd, dir, error) && ab_fs_fsync_dir_at (s->dfd, PACKS_DIR, error);
}
