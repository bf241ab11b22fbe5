/* abpack-list PACK: one line per entry of an image pack (a zstd pax tar,
 * abdeploy-manifest(5)), for the publisher tests, which have no zstd reader:
 *   NAME TYPE UID GID MODE SIZE SHA256 XATTRS TARGET
 * tab-separated; TYPE "file", "symlink" or "other:N"; MODE octal with the
 * file type bits; SHA256 of the content; XATTRS "name=HEX;..." or "-";
 * TARGET the symlink target in hex or "-". Exit 1 on any read error. */
#include <archive.h>
#include <archive_entry.h>
#include <glib.h>
#include <stdio.h>
#include <string.h>

static char *
hex_of (const void *data, size_t len)
{
  GString *s = g_string_new (NULL);
  for (size_t i = 0; i < len; i++)
    g_string_append_printf (s, "%02x", ((const guchar *) data)[i]);
  return g_string_free (s, FALSE);
}

static char *
xattrs_of (struct archive_entry *e)
{
  GString *s = g_string_new (NULL);
  const char *name;
  const void *value;
  size_t size;
  archive_entry_xattr_reset (e);
  while (archive_entry_xattr_next (e, &name, &value, &size) == ARCHIVE_OK)
    {
      g_autofree char *hex = hex_of (value, size);
      g_string_append_printf (s, "%s%s=%s", s->len ? ";" : "", name, hex);
    }
  if (s->len == 0)
    g_string_append (s, "-");
  return g_string_free (s, FALSE);
}

/* The SHA-256 of the entry's content; *out_len its length. */
static char *
content_sha256 (struct archive *a, gint64 *out_len)
{
  g_autoptr(GChecksum) sum = g_checksum_new (G_CHECKSUM_SHA256);
  char buf[65536];
  la_ssize_t n;
  *out_len = 0;
  while ((n = archive_read_data (a, buf, sizeof buf)) > 0)
    {
      g_checksum_update (sum, (const guchar *) buf, (gssize) n);
      *out_len += n;
    }
  return n < 0 ? NULL : g_strdup (g_checksum_get_string (sum));
}

static const char *
type_of (struct archive_entry *e, char *other, size_t len)
{
  switch (archive_entry_filetype (e))
    {
    case AE_IFREG: return archive_entry_hardlink (e) ? "hardlink" : "file";
    case AE_IFLNK: return "symlink";
    default:
      snprintf (other, len, "other:%o", (unsigned) archive_entry_filetype (e));
      return other;
    }
}

int
main (int argc, char **argv)
{
  if (argc != 2)
    return fprintf (stderr, "usage: abpack-list PACK\n"), 2;
  struct archive *a = archive_read_new ();
  archive_read_support_filter_zstd (a);
  archive_read_support_format_tar (a);
  if (archive_read_open_filename (a, argv[1], 65536) != ARCHIVE_OK)
    return fprintf (stderr, "%s: %s\n", argv[1], archive_error_string (a)), 1;
  struct archive_entry *e;
  int r;
  while ((r = archive_read_next_header (a, &e)) == ARCHIVE_OK)
    {
      char other[32];
      gint64 len = 0;
      g_autofree char *sha = content_sha256 (a, &len);
      g_autofree char *xattrs = xattrs_of (e);
      const char *target = archive_entry_symlink (e);
      g_autofree char *target_hex = target ? hex_of (target, strlen (target)) : g_strdup ("-");
      if (sha == NULL)
        return fprintf (stderr, "%s: %s\n", argv[1], archive_error_string (a)), 1;
      printf ("%s\t%s\t%ld\t%ld\t%o\t%" G_GINT64_FORMAT "\t%s\t%s\t%s\n", archive_entry_pathname (e),
              type_of (e, other, sizeof other), (long) archive_entry_uid (e),
              (long) archive_entry_gid (e), (unsigned) archive_entry_mode (e), len, sha, xattrs,
              target_hex);
    }
  if (r != ARCHIVE_EOF)
    return fprintf (stderr, "%s: %s\n", argv[1], archive_error_string (a)), 1;
  archive_read_free (a);
  return 0;
}
