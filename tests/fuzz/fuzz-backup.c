/* abdeploy backup archives, read by ab_backup_restore() into a real
 * initialized sysroot (file backend). Each input is restored as it is, and
 * once more with its trailing "sha256" line recomputed when that differs,
 * so that mutated archives get past the whole-archive checksum and their
 * members are parsed, checked and converted too.
 * Invariant: a restore that reports an error because of the archive has
 * changed nothing, so it leaves no restore journal behind. */
#include "config.h"
#include "fuzz-common.h"
#include "ab-backup.h"
#include "ab-fsutil.h"
#include "ab-sysroot.h"

#include <fcntl.h>
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
  return 0;
}
