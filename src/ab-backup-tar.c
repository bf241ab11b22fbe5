/* The tar archive that backup writes (libarchive): abdeploy-backup.json
 * first, the members at their paths below the sysroot, SHA256SUMS last.
 * The reader is ab_backup_parse_archive() (ab-backup-archive.c). */
#include "config.h"
#include "ab-backup.h"
#include "ab-migrate.h"

#include <archive.h>
#include <archive_entry.h>
#include <string.h>
#include <sys/stat.h>

static const struct
{
  const char *suffix;
  AbBackupCompression c;
} suffixes[] = {
  { ".tar", AB_BACKUP_TAR },
  { ".tar.gz", AB_BACKUP_TAR_GZ },
  { ".tar.zst", AB_BACKUP_TAR_ZST },
};

gboolean
ab_backup_compression_for_name (const char *name, AbBackupCompression *out, GError **error)
{
  for (guint i = 0; i < G_N_ELEMENTS (suffixes); i++)
    if (g_str_has_suffix (name, suffixes[i].suffix) && strlen (name) > strlen (suffixes[i].suffix))
      {
        *out = suffixes[i].c;
        return TRUE;
      }
  g_set_error (error, AB_BACKUP_ERROR, AB_BACKUP_ERROR_USAGE,
               "%s does not end in %s: the suffix chooses the archive's compression; name the "
               "output e.g. backup.tar.zst, or use --output=- for a tar archive on standard output",
               name, AB_BACKUP_SUFFIXES);
  return FALSE;
}

/* One line as sha256sum writes it: a name with a backslash is escaped, and
 * the line then starts with a backslash. */
static void
append_sum (GString *out, const char *sum, const char *name)
{
  if (strchr (name, '\\') == NULL)
    {
      g_string_append_printf (out, "%s  %s\n", sum, name);
      return;
    }
  g_autoptr(GString) escaped = g_string_new (name);
  g_string_replace (escaped, "\\", "\\\\", 0);
  g_string_append_printf (out, "\\%s  %s\n", sum, escaped->str);
}

char *
ab_backup_sums_text (const char *manifest_sha256, GPtrArray *files)
{
  GString *out = g_string_new (NULL);
  append_sum (out, manifest_sha256, AB_BACKUP_MANIFEST_NAME);
  for (guint i = 0; i < files->len; i++)
    {
      const AbMigrateFile *f = files->pdata[i];
      if (S_ISLNK (f->mode))
        continue;
      g_autofree char *sum = g_compute_checksum_for_bytes (G_CHECKSUM_SHA256, f->data);
      append_sum (out, sum, f->rel);
    }
  return g_string_free (out, FALSE);
}

static la_ssize_t
append_cb (struct archive *ar, void *buf, const void *data, size_t len)
{
  g_byte_array_append (buf, data, (guint) len);
  return (la_ssize_t) len;
}

static gboolean
write_failed (struct archive *ar, const char *what, GError **error)
{
  g_set_error (error, AB_BACKUP_ERROR, AB_BACKUP_ERROR_FAILED, "Writing the backup archive (%s): %s",
               what, archive_error_string (ar) ? archive_error_string (ar) : "unknown error");
  return FALSE;
}

/* One member: a regular file with DATA, or (LINK) a symbolic link to it. */
static gboolean
write_member (struct archive *ar, const char *path, GBytes *data, guint mode, gboolean link,
              GError **error)
{
  g_autoptr(GDateTime) now = g_date_time_new_now_utc ();
  struct archive_entry *e = archive_entry_new ();
  gsize len = 0;
  const char *bytes = g_bytes_get_data (data, &len);
  archive_entry_set_pathname (e, path);
  archive_entry_set_filetype (e, link ? AE_IFLNK : AE_IFREG);
  archive_entry_set_perm (e, mode & 0777);
  archive_entry_set_mtime (e, g_date_time_to_unix (now), 0);
  g_autofree char *target = link ? g_strndup (bytes, len) : NULL;
  if (link)
    archive_entry_set_symlink (e, target);
  archive_entry_set_size (e, link ? 0 : (la_int64_t) len);
  gboolean ok = archive_write_header (ar, e) == ARCHIVE_OK
                && (link || len == 0 || archive_write_data (ar, bytes, len) == (la_ssize_t) len);
  archive_entry_free (e);
  return ok || write_failed (ar, path, error);
}

static gboolean
add_filter (struct archive *ar, AbBackupCompression c, GError **error)
{
  int r = ARCHIVE_OK;
  if (c == AB_BACKUP_TAR_GZ)
    r = archive_write_add_filter_gzip (ar);
  else if (c == AB_BACKUP_TAR_ZST)
    r = archive_write_add_filter_zstd (ar);
  return r == ARCHIVE_OK || write_failed (ar, "compression", error);
}

static gboolean
write_all_members (struct archive *ar, const char *manifest, GPtrArray *files, GError **error)
{
  g_autoptr(GBytes) mbytes = g_bytes_new (manifest, strlen (manifest));
  if (!write_member (ar, AB_BACKUP_MANIFEST_NAME, mbytes, 0644, FALSE, error))
    return FALSE;
  for (guint i = 0; i < files->len; i++)
    {
      const AbMigrateFile *f = files->pdata[i];
      if (!write_member (ar, f->rel, f->data, f->mode, S_ISLNK (f->mode), error))
        return FALSE;
    }
  g_autofree char *msum = g_compute_checksum_for_string (G_CHECKSUM_SHA256, manifest, -1);
  g_autofree char *sums = ab_backup_sums_text (msum, files);
  g_autoptr(GBytes) sbytes = g_bytes_new (sums, strlen (sums));
  return write_member (ar, AB_BACKUP_SUMS_NAME, sbytes, 0644, FALSE, error);
}

GBytes *
ab_backup_tar_write (const char *manifest, GPtrArray *files, AbBackupCompression c,
                     GError **error)
{
  g_autoptr(GByteArray) buf = g_byte_array_new ();
  struct archive *ar = archive_write_new ();
  /* pax: paths of any length, read by every tar */
  gboolean ok = archive_write_set_format_pax_restricted (ar) == ARCHIVE_OK
                && archive_write_set_bytes_in_last_block (ar, 1) == ARCHIVE_OK
                && add_filter (ar, c, error)
                && (archive_write_open (ar, buf, NULL, append_cb, NULL) == ARCHIVE_OK
                    || write_failed (ar, "open", error))
                && write_all_members (ar, manifest, files, error)
                && (archive_write_close (ar) == ARCHIVE_OK || write_failed (ar, "close", error));
  archive_write_free (ar);
  if (!ok)
    {
      if (error != NULL && *error == NULL)
        g_set_error (error, AB_BACKUP_ERROR, AB_BACKUP_ERROR_FAILED, "Writing the backup archive failed");
      return NULL;
    }
  return g_byte_array_free_to_bytes (g_steal_pointer (&buf));
}
