/* Import of a commit from a local OSTree repo (offline media, or a repo on
 * the same machine) into the sysroot repo, spread over worker threads.
 *
 * Invariants:
 * - Nothing is written to the destination repo before the commit's GPG
 *   signature is verified with the keys of the destination's remote
 *   REMOTE, over the very bytes whose SHA-256 is the commit id.
 * - Every object is imported untrusted: it is checksummed before it is
 *   linked or copied in, so a damaged or tampered medium is an error.
 *   Between two bare repos on one file system ab-import reads, hashes
 *   (libcrypto's SHA-256) and hardlinks each object itself; everything
 *   else goes through libostree's untrusted import.
 * - The commit object is imported last, after every object it reaches, so
 *   an interrupted import never leaves a commit with missing objects; the
 *   objects already imported stay as unreferenced, valid objects.
 * - Objects the destination already holds are not read again. */
#pragma once

#include <glib.h>
#include <ostree.h>
#include "ab-util.h"

#define AB_IMPORT_ERROR (ab_import_error_quark ())
/* The error domain of ab-import (the codes of the enum below). */
GQuark ab_import_error_quark (void);

typedef enum
{
  AB_IMPORT_ERROR_FAILED,
  AB_IMPORT_ERROR_CHECKSUM, /* the commit object does not hash to its id */
} AbImportError;

/* Imports COMMIT and every object it reaches from SRC into DEST. N_WORKERS
 * threads do the work (0: one per CPU, at most 8); PROGRESS is called on
 * the calling thread. Signature errors keep libostree's OSTREE_GPG_ERROR
 * domain. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_import_commit (OstreeRepo *dest, const char *remote, OstreeRepo *src,
                           const char *commit, guint n_workers, AbProgressFunc progress,
                           gpointer user_data, GCancellable *cancellable, GError **error);
/* Bytes that importing COMMIT from SRC would add to DEST: the unpacked size
 * of every object it reaches that DEST does not hold. Reads only. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_import_needed_bytes (OstreeRepo *dest, OstreeRepo *src, const char *commit,
                                 guint64 *out_bytes, GCancellable *cancellable, GError **error);
