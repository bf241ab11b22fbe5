#include "config.h"
#include "ab-pack.h"
#include "ab-fsutil.h"
#include "ab-util.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

G_DEFINE_QUARK (ab-pack-error-quark, ab_pack_error)

#define OBJECT_PREFIX "objects/"
#define HEX_REST_LEN 62
#define MAX_SYMLINK_TARGET 4096
#define READ_BLOCK (128 * 1024)

/* One pack being extracted: the descriptors of objects/XX (opened when
 * first needed), the shared budget, the number of the current entry. */
typedef struct
{
  int objects_dfd;
  int prefix_dfd[256];
  const char *label;
  AbPackBudget *budget;
  GCancellable *cancellable;
  guint entry;
} Extract;

/* ---- the temporary repo ---- */

static gboolean
make_dirs (int repo_dfd, GError **error)
{
  static const char *const dirs[] = { "objects", "tmp", "extensions", "state", "refs",
                                      "refs/heads", "refs/mirrors", "refs/remotes" };
  for (gsize i = 0; i < G_N_ELEMENTS (dirs); i++)
    if (mkdirat (repo_dfd, dirs[i], 0755) < 0)
      return ab_throw_errno_prefix (error, errno, "Creating %s of the pack repo", dirs[i]);
  ab_autofd objects = ab_fs_opendir_at (repo_dfd, "objects", error);
  if (objects < 0)
    return FALSE;
  for (guint i = 0; i < 256; i++)
    {
      char name[3];
      g_snprintf (name, sizeof name, "%02x", i);
      if (mkdirat (objects, name, 0755) < 0)
        return ab_throw_errno_prefix (error, errno, "Creating objects/%s of the pack repo", name);
    }
  return TRUE;
}

/* The repo is mode 0700: until the import has verified them, the objects
 * (setuid ones too) are out of reach of other users. */
gboolean
ab_pack_prepare_repo (int dfd, const char *name, GError **error)
{
  static const char config[] = "[core]\nrepo_version=1\nmode=bare\n";
  if (!ab_fs_rm_rf_at (dfd, name, error))
    return FALSE;
  if (mkdirat (dfd, name, 0700) < 0)
    return ab_throw_errno_prefix (error, errno, "Creating the pack repo %s", name);
  ab_autofd repo = ab_fs_opendir_at (dfd, name, error);
  if (repo < 0 || !make_dirs (repo, error))
    return FALSE;
  return ab_fs_replace_at (repo, "config", config, strlen (config), 0644, error);
}

/* ---- one entry ---- */

static gboolean
refuse_entry (Extract *x, const char *name, GError **error, const char *fmt, ...)
    G_GNUC_PRINTF (4, 5);

static gboolean
refuse_entry (Extract *x, const char *name, GError **error, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *why = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  if (name != NULL)
    g_set_error (error, AB_PACK_ERROR, AB_PACK_ERROR_REFUSED,
                 "Refusing pack %s: its entry %u \"%s\" %s; nothing of the pack is used",
                 x->label, x->entry, name, why);
  else
    g_set_error (error, AB_PACK_ERROR, AB_PACK_ERROR_REFUSED,
                 "Refusing pack %s at its entry %u: it %s; nothing of the pack is used",
                 x->label, x->entry, why);
  return FALSE;
}

static gboolean
is_lower_hex (const char *s, gsize n)
{
  for (gsize i = 0; i < n; i++)
    if (!g_ascii_isxdigit (s[i]) || g_ascii_isupper (s[i]))
      return FALSE;
  return TRUE;
}

/* Whether NAME is objects/XX/REST.EXT (see ab-pack.h); *OUT_PREFIX is XX as
 * a number, *OUT_LEAF points at REST.EXT, *OUT_IS_FILE: EXT is "file". */
static gboolean
parse_object_name (const char *name, guint *out_prefix, const char **out_leaf,
                   gboolean *out_is_file)
{
  static const char *const exts[] = { "file", "commit", "commitmeta", "dirtree", "dirmeta" };
  if (name == NULL || !g_str_has_prefix (name, OBJECT_PREFIX))
    return FALSE;
  const char *p = name + strlen (OBJECT_PREFIX);
  if (!is_lower_hex (p, 2) || p[2] != '/' || !is_lower_hex (p + 3, HEX_REST_LEN)
      || p[3 + HEX_REST_LEN] != '.')
    return FALSE;
  const char *ext = p + 4 + HEX_REST_LEN;
  for (gsize i = 0; i < G_N_ELEMENTS (exts); i++)
    if (strcmp (ext, exts[i]) == 0)
      {
        *out_prefix = (guint) (g_ascii_xdigit_value (p[0]) * 16 + g_ascii_xdigit_value (p[1]));
        *out_leaf = p + 3;
        *out_is_file = i == 0;
        return TRUE;
      }
  return FALSE;
}

/* objects/XX of the repo, opened once per pack. */
static int
prefix_dir (Extract *x, guint prefix, GError **error)
{
  if (x->prefix_dfd[prefix] >= 0)
    return x->prefix_dfd[prefix];
  char name[3];
  g_snprintf (name, sizeof name, "%02x", prefix);
  int fd = openat (x->objects_dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    AB_IGNORE_RESULT (ab_throw_errno_prefix (error, errno, "Opening objects/%s of the pack repo",
                                             name));
  return x->prefix_dfd[prefix] = fd;
}

/* Counts BYTES against the budget shared by all packs. */
static gboolean
charge (Extract *x, const char *name, guint64 bytes, GError **error)
{
  guint64 limit = x->budget->limit;
  if (bytes <= limit && __atomic_add_fetch (&x->budget->used, bytes, __ATOMIC_RELAXED) <= limit)
    return TRUE;
  return refuse_entry (x, name, error, "takes the content written beyond the signed unpacked "
                       "size of the packs (%" G_GUINT64_FORMAT " bytes)", limit);
}

static gboolean
owner_of (Extract *x, struct archive_entry *e, const char *name, uid_t *uid, gid_t *gid,
          GError **error)
{
  la_int64_t u = archive_entry_uid (e), g = archive_entry_gid (e);
  /* (uid_t) -1 would leave the owner unchanged */
  if (u < 0 || g < 0 || u >= G_MAXUINT32 || g >= G_MAXUINT32)
    return refuse_entry (x, name, error, "has an invalid owner %" G_GINT64_FORMAT ":%"
                         G_GINT64_FORMAT, (gint64) u, (gint64) g);
  *uid = (uid_t) u;
  *gid = (gid_t) g;
  return TRUE;
}

static gboolean
open_failed (Extract *x, const char *name, int errsv, GError **error)
{
  if (errsv == EEXIST)
    return refuse_entry (x, name, error, "is a duplicate: an object of that name was already "
                         "extracted");
  return ab_throw_errno_prefix (error, errsv, "Pack %s: writing %s", x->label, name);
}

/* Copies the entry's data, exactly SIZE bytes, to FD. */
static gboolean
copy_data (Extract *x, struct archive *a, int fd, const char *name, guint64 size,
           GError **error)
{
  guint64 written = 0;
  for (;;)
    {
      const void *buf = NULL;
      size_t len = 0;
      la_int64_t off = 0;
      int r = archive_read_data_block (a, &buf, &len, &off);
      if (r == ARCHIVE_EOF)
        break;
      if (r != ARCHIVE_OK)
        return refuse_entry (x, name, error, "is damaged or truncated (%s)",
                             archive_error_string (a));
      if (off < 0 || (guint64) off != written || len > size - written)
        return refuse_entry (x, name, error, "is sparse or longer than its size");
      if (!ab_fs_write_all (fd, buf, len))
        return ab_throw_errno_prefix (error, errno, "Pack %s: writing %s", x->label, name);
      written += len;
    }
  if (written != size)
    return refuse_entry (x, name, error, "is shorter than its size");
  return TRUE;
}

/* The entry's xattrs on FD, or, FD -1, on the symlink LEAF of DFD
 * (there is no descriptor of a symlink to set them through: the path goes
 * through DFD's /proc/self/fd link and lsetxattr() does not follow LEAF). */
static gboolean
set_xattrs (Extract *x, struct archive_entry *e, int fd, int dfd, const char *leaf,
            GError **error)
{
  const char *xname = NULL;
  const void *value = NULL;
  size_t size = 0;
  g_autofree char *path = fd < 0 ? g_strdup_printf ("/proc/self/fd/%d/%s", dfd, leaf) : NULL;
  archive_entry_xattr_reset (e);
  while (archive_entry_xattr_next (e, &xname, &value, &size) == ARCHIVE_OK)
    if ((fd >= 0 ? fsetxattr (fd, xname, value, size, 0)
                 : lsetxattr (path, xname, value, size, 0)) < 0)
      return ab_throw_errno_prefix (error, errno, "Pack %s: setting the extended attribute "
                                    "%s of %s", x->label, xname, archive_entry_pathname (e));
  return TRUE;
}

/* A content object keeps its owner, mode (setuid too) and xattrs; a
 * metadata object is 0644, as libostree stores it. Owner first, then
 * mode, then xattrs: fchown clears the setuid bits and a file capability
 * (security.capability), which must survive as the object has them. */
static gboolean
set_attributes (Extract *x, struct archive_entry *e, int fd, const char *name,
                gboolean is_file, GError **error)
{
  uid_t uid;
  gid_t gid;
  if (!is_file)
    return fchmod (fd, 0644) == 0
           || ab_throw_errno_prefix (error, errno, "Pack %s: chmod of %s", x->label, name);
  if (!owner_of (x, e, name, &uid, &gid, error))
    return FALSE;
  if (fchown (fd, uid, gid) < 0 || fchmod (fd, archive_entry_mode (e) & 07777) < 0)
    return ab_throw_errno_prefix (error, errno, "Pack %s: setting the owner and mode of %s",
                                  x->label, name);
  return set_xattrs (x, e, fd, -1, NULL, error);
}

static gboolean
write_regular (Extract *x, struct archive *a, struct archive_entry *e, int dfd,
               const char *leaf, gboolean is_file, GError **error)
{
  const char *name = archive_entry_pathname (e);
  la_int64_t size = archive_entry_size (e);
  if (!archive_entry_size_is_set (e) || size < 0)
    return refuse_entry (x, name, error, "has no size");
  if (!charge (x, name, (guint64) size, error))
    return FALSE;
  ab_autofd fd = openat (dfd, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return open_failed (x, name, errno, error);
  return copy_data (x, a, fd, name, (guint64) size, error)
         && set_attributes (x, e, fd, name, is_file, error);
}

static gboolean
write_symlink (Extract *x, struct archive_entry *e, int dfd, const char *leaf, GError **error)
{
  const char *name = archive_entry_pathname (e);
  const char *target = archive_entry_symlink (e);
  gsize len = target ? strlen (target) : 0;
  uid_t uid;
  gid_t gid;
  if (len == 0 || len >= MAX_SYMLINK_TARGET)
    return refuse_entry (x, name, error, "is a symlink whose target is empty or %d bytes or "
                         "longer", MAX_SYMLINK_TARGET);
  if (!owner_of (x, e, name, &uid, &gid, error) || !charge (x, name, len, error))
    return FALSE;
  if (symlinkat (target, dfd, leaf) < 0)
    return open_failed (x, name, errno, error);
  if (fchownat (dfd, leaf, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
    return ab_throw_errno_prefix (error, errno, "Pack %s: setting the owner of %s", x->label,
                                  name);
  return set_xattrs (x, e, -1, dfd, leaf, error);
}

static const char *
type_name (mode_t type)
{
  switch (type)
    {
    case AE_IFDIR: return "directory";
    case AE_IFLNK: return "symlink";
    case AE_IFCHR: return "character device";
    case AE_IFBLK: return "block device";
    case AE_IFIFO: return "FIFO";
    case AE_IFSOCK: return "socket";
    default: return "entry of an unknown type";
    }
}

static gboolean
extract_entry (Extract *x, struct archive *a, struct archive_entry *e, GError **error)
{
  const char *name = archive_entry_pathname (e);
  guint prefix = 0;
  const char *leaf = NULL;
  gboolean is_file = FALSE;
  if (!parse_object_name (name, &prefix, &leaf, &is_file))
    return refuse_entry (x, name, error, "is not named objects/XX/<62 lower-case hex digits>."
                         "<file|commit|commitmeta|dirtree|dirmeta>");
  if (archive_entry_hardlink (e) != NULL)
    return refuse_entry (x, name, error, "is a hardlink");
  mode_t type = archive_entry_filetype (e);
  if (type != AE_IFREG && !(type == AE_IFLNK && is_file))
    return refuse_entry (x, name, error, "is a %s, not a regular file%s", type_name (type),
                         is_file ? " or a symlink" : "");
  if (archive_entry_sparse_count (e) > 0)
    return refuse_entry (x, name, error, "is a sparse file");
  int dfd = prefix_dir (x, prefix, error);
  if (dfd < 0)
    return FALSE;
  if (type == AE_IFLNK)
    return write_symlink (x, e, dfd, leaf, error);
  return write_regular (x, a, e, dfd, leaf, is_file, error);
}

/* ---- one pack ---- */

static gboolean
is_zstd (struct archive *a)
{
  for (int i = 0; i < archive_filter_count (a); i++)
    if (archive_filter_code (a, i) == ARCHIVE_FILTER_ZSTD)
      return TRUE;
  return FALSE;
}

static gboolean
extract_entries (Extract *x, struct archive *a, GError **error)
{
  struct archive_entry *e = NULL;
  int r;
  while ((r = archive_read_next_header (a, &e)) == ARCHIVE_OK)
    {
      if (g_cancellable_set_error_if_cancelled (x->cancellable, error)
          || !extract_entry (x, a, e, error))
        return FALSE;
      x->entry++;
    }
  if (r != ARCHIVE_EOF)
    return refuse_entry (x, NULL, error, "cannot be read: the pack is not a zstd-compressed "
                         "tar, or damaged (%s)", archive_error_string (a));
  if (!is_zstd (a))
    return refuse_entry (x, NULL, error, "ends a tar that is not zstd-compressed");
  return TRUE;
}

gboolean
ab_pack_extract_fd (int repo_dfd, int pack_fd, const char *label, AbPackBudget *budget,
                    GCancellable *cancellable, GError **error)
{
  Extract x = { .label = label, .budget = budget, .cancellable = cancellable };
  for (guint i = 0; i < G_N_ELEMENTS (x.prefix_dfd); i++)
    x.prefix_dfd[i] = -1;
  x.objects_dfd = ab_fs_opendir_at (repo_dfd, "objects", error);
  struct archive *a = archive_read_new ();
  gboolean ok = x.objects_dfd >= 0;
  if (ok && (archive_read_support_filter_zstd (a) != ARCHIVE_OK
             || archive_read_support_format_tar (a) != ARCHIVE_OK
             || archive_read_open_fd (a, pack_fd, READ_BLOCK) != ARCHIVE_OK))
    ok = refuse_entry (&x, NULL, error, "cannot be read: the pack is not a zstd-compressed "
                       "tar (%s)", archive_error_string (a));
  ok = ok && extract_entries (&x, a, error);
  archive_read_free (a);
  for (guint i = 0; i < G_N_ELEMENTS (x.prefix_dfd); i++)
    ab_close_fdp (&x.prefix_dfd[i]);
  ab_close_fdp (&x.objects_dfd);
  return ok;
}

/* ---- several packs on worker threads ---- */

typedef struct
{
  int repo_dfd;
  int packs_dfd;
  const char *const *packs;
  AbPackBudget budget;
  GCancellable *stop; /* cancelled on the first error or by the caller */
  GMutex lock;
  GError *error;      /* the first error */
} Job;

static gboolean
extract_one (Job *job, const char *pack, GError **error)
{
  ab_autofd fd = openat (job->packs_dfd, pack, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return ab_throw_errno_prefix (error, errno, "Opening pack %s", pack);
  return ab_pack_extract_fd (job->repo_dfd, fd, pack, &job->budget, job->stop, error);
}

static void
pack_worker (gpointer data, gpointer user_data)
{
  Job *job = user_data;
  const char *pack = job->packs[GPOINTER_TO_UINT (data) - 1];
  GError *local = NULL;
  if (g_cancellable_is_cancelled (job->stop))
    return;
  if (extract_one (job, pack, &local))
    return;
  g_mutex_lock (&job->lock);
  if (job->error == NULL)
    job->error = g_steal_pointer (&local);
  g_mutex_unlock (&job->lock);
  g_clear_error (&local);
  g_cancellable_cancel (job->stop);
}

static void
on_cancel (GCancellable *outer, gpointer user_data)
{
  g_cancellable_cancel (user_data);
}

static gboolean
run_pool (Job *job, guint n_packs, GError **error)
{
  guint n_threads = MIN (MIN (2, g_get_num_processors ()), n_packs);
  GThreadPool *pool = g_thread_pool_new (pack_worker, job, (gint) MAX (n_threads, 1), TRUE,
                                         error);
  if (pool == NULL)
    return FALSE;
  for (guint i = 0; i < n_packs; i++)
    if (!g_thread_pool_push (pool, GUINT_TO_POINTER (i + 1), error))
      {
        g_cancellable_cancel (job->stop);
        break;
      }
  g_thread_pool_free (pool, FALSE, TRUE);
  return error == NULL || *error == NULL;
}

gboolean
ab_pack_extract_all (int repo_dfd, int packs_dfd, const char *const *packs, guint n_packs,
                     guint64 unpacked, GCancellable *cancellable, GError **error)
{
  Job job = { .repo_dfd = repo_dfd, .packs_dfd = packs_dfd, .packs = packs,
              .budget = { .limit = unpacked }, .stop = g_cancellable_new () };
  g_mutex_init (&job.lock);
  gulong id = cancellable ? g_cancellable_connect (cancellable, G_CALLBACK (on_cancel),
                                                   job.stop, NULL)
                          : 0;
  gboolean ok = run_pool (&job, n_packs, error);
  if (cancellable)
    g_cancellable_disconnect (cancellable, id);
  if (ok && job.error != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&job.error));
      ok = FALSE;
    }
  ok = ok && !g_cancellable_set_error_if_cancelled (cancellable, error);
  g_clear_error (&job.error);
  g_mutex_clear (&job.lock);
  g_object_unref (job.stop);
  return ok;
}
