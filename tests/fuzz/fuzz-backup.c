/* abdeploy backup archives, read by ab_backup_restore() into a real
 * initialized sysroot (file backend): the tar archive (plain, gzip, zstd;
 * libarchive) and the JSON archive of 0.1.0 and 0.2.0. Each input is
 * restored as it is, and once more with its checksum made right when that
 * differs (a JSON archive: the trailing "sha256" line; a tar archive: its
 * SHA256SUMS member, written again as a plain tar), so that mutated
 * archives get past the whole-archive checksum and their members are
 * parsed, checked and converted too.
 * Invariant: a restore that reports an error because of the archive has
 * changed nothing, so it leaves no restore journal behind. */
#include "config.h"
#include "fuzz-common.h"
#include "ab-backup.h"
#include "ab-fsutil.h"
#include "ab-migrate.h"
#include "ab-sysroot.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <string.h>
#include <unistd.h>

static char *sysroot_path;
static int sysroot_dfd = -1;
static int scratch_dfd = -1;
static char *archive_path;

static void
setup (void)
{
  g_autofree char *dir = fuzz_scratch_dir (&scratch_dfd);
  sysroot_path = g_build_filename (dir, "sysroot", NULL);
  archive_path = g_build_filename (dir, "archive", NULL);
  gboolean created = FALSE;
  g_autoptr(GError) error = NULL;
  if (!ab_sysroot_init (sysroot_path, NULL, "fuzz", "file", NULL, &created, &error))
    fuzz_fail (G_STRLOC, "init: %s", error->message);
  sysroot_dfd = ab_fs_opendir_at (AT_FDCWD, sysroot_path, NULL);
}

static void
restore (const void *data, size_t size)
{
  fuzz_write_at (scratch_dfd, "archive", data, size);
  guint files = 0;
  g_auto(GStrv) notes = NULL;
  g_autoptr(GError) error = NULL;
  /* The reader alone, in memory: it touches no file. */
  g_autoptr(GError) parse_error = NULL;
  g_autoptr(AbBackupArchive) parsed = ab_backup_parse_archive (data, size, NULL, &parse_error);
  fuzz_check ((parsed == NULL) == (parse_error != NULL), "parse result and error disagree");
  if (ab_backup_restore (sysroot_path, archive_path, NULL, &files, &notes, &error))
    return;
  fuzz_check (error != NULL, "refused without an error");
  if (g_error_matches (error, AB_BACKUP_ERROR, AB_BACKUP_ERROR_CORRUPT))
    fuzz_check (!ab_fs_exists_at (sysroot_dfd, "abdeploy/" AB_BACKUP_PENDING_NAME),
                "a corrupt archive left a restore journal: %s", error->message);
  /* Start the next input from a sysroot without a journal. */
  (void) unlinkat (sysroot_dfd, "abdeploy/" AB_BACKUP_PENDING_NAME, 0);
}

/* DATA with its "\nsha256 HEX" trailer recomputed, or NULL when DATA has no
 * trailer or already the right one. */
static GString *
with_checksum (const uint8_t *data, size_t size)
{
  const char *nl = size > 1 ? g_strrstr_len ((const char *) data, (gssize) size - 1, "\nsha256 ")
                            : NULL;
  if (nl == NULL)
    return NULL;
  g_autofree char *body = g_strndup ((const char *) data, (gsize) (nl - (const char *) data));
  g_autofree char *sum = g_compute_checksum_for_string (G_CHECKSUM_SHA256, body, -1);
  GString *s = g_string_new (body);
  g_string_append_printf (s, "\nsha256 %s\n", sum);
  if (s->len == size && memcmp (s->str, data, size) == 0)
    {
      g_string_free (s, TRUE);
      return NULL;
    }
  return s;
}

/* The entries of the tar archive DATA as files (regular and links; the
 * rest skipped), or NULL when libarchive cannot read it whole. */
static GPtrArray *
tar_members (const uint8_t *data, size_t size)
{
  g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func ((GDestroyNotify) ab_migrate_file_free);
  struct archive *ar = archive_read_new ();
  archive_read_support_filter_gzip (ar);
  archive_read_support_filter_zstd (ar);
  archive_read_support_format_tar (ar);
  gboolean ok = archive_read_open_memory (ar, data, size) == ARCHIVE_OK;
  struct archive_entry *e;
  while (ok && out->len <= AB_BACKUP_MAX_MEMBERS && archive_read_next_header (ar, &e) == ARCHIVE_OK)
    {
      gint64 len = archive_entry_size (e);
      const char *path = archive_entry_pathname (e);
      gboolean link = archive_entry_filetype (e) == AE_IFLNK;
      if (path == NULL || len < 0 || len > AB_BACKUP_MAX_MEMBER_SIZE
          || (!link && archive_entry_filetype (e) != AE_IFREG))
        continue;
      g_autofree char *buf = g_malloc (len + 1);
      if (!link && archive_read_data (ar, buf, len) != len)
        break;
      const char *target = link ? archive_entry_symlink (e) : NULL;
      g_ptr_array_add (out, ab_migrate_file_new (path, link ? target : buf,
                                                 link ? (target ? strlen (target) : 0) : (gsize) len,
                                                 (archive_entry_perm (e) & 0777)
                                                 | (link ? S_IFLNK : S_IFREG)));
    }
  archive_read_free (ar);
  return ok && out->len >= 2 ? g_steal_pointer (&out) : NULL;
}

/* DATA, a tar archive, written again with a SHA256SUMS that matches its
 * first member and the others; NULL when DATA is no such tar. */
static GBytes *
with_sums (const uint8_t *data, size_t size)
{
  g_autoptr(GPtrArray) members = tar_members (data, size);
  if (members == NULL)
    return NULL;
  AbMigrateFile *first = members->pdata[0];
  g_ptr_array_remove_index (members, members->len - 1);
  g_autoptr(GPtrArray) files = g_ptr_array_new ();
  for (guint i = 1; i < members->len; i++)
    g_ptr_array_add (files, members->pdata[i]);
  g_autofree char *manifest = g_strndup (g_bytes_get_data (first->data, NULL),
                                         g_bytes_get_size (first->data));
  return ab_backup_tar_write (manifest, files, AB_BACKUP_TAR, NULL);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  fuzz_init ();
  if (sysroot_path == NULL)
    setup ();
  restore (data, size);
  g_autoptr(GString) fixed = with_checksum (data, size);
  if (fixed != NULL)
    restore (fixed->str, fixed->len);
  g_autoptr(GBytes) resealed = fixed == NULL ? with_sums (data, size) : NULL;
  if (resealed != NULL)
    restore (g_bytes_get_data (resealed, NULL), g_bytes_get_size (resealed));
  return 0;
}
