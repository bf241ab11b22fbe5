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
/* The import in two steps, for a caller that checks the free space in
 * between. ab_import_plan_new() checks the commit's checksum and signature
 * (as above), then walks the commit once: every dirtree and dirmeta object
 * is read, hashed to its name and kept (nothing is written to DEST). */
typedef struct AbImportPlan AbImportPlan;
/* The plan of importing COMMIT from SRC into DEST, or NULL with ERROR set
 * (a bad signature, a damaged or missing object); DEST is left as it was
 * either way. */
G_GNUC_WARN_UNUSED_RESULT
AbImportPlan *ab_import_plan_new (OstreeRepo *dest, const char *remote, OstreeRepo *src,
                                  const char *commit, GCancellable *cancellable, GError **error);
/* Bytes the import would add to DEST: the unpacked size of every object
 * the commit reaches that DEST does not hold. */
guint64 ab_import_plan_needed_bytes (AbImportPlan *plan);
/* Imports the planned objects, then the commit (as ab_import_commit()).
 * On success the walk's verified metadata stays on DEST, see below. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_import_plan_run (AbImportPlan *plan, guint n_workers, AbProgressFunc progress,
                             gpointer user_data, GCancellable *cancellable, GError **error);
/* Frees PLAN (and its cache, unless ab_import_plan_run() handed it on). */
void ab_import_plan_free (AbImportPlan *plan);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AbImportPlan, ab_import_plan_free)

/* The dirtree and dirmeta objects of the last commit imported into a repo,
 * each hashed to its name by the import: content-addressed, so a cached
 * object is the object of that name for any commit. Attached to the
 * destination repo by ab_import_plan_run(); lookups may run on several
 * threads at once (nothing changes the cache until it is dropped). */
typedef struct AbMetaCache AbMetaCache;
/* The cache REPO carries, or NULL (borrowed). */
AbMetaCache *ab_import_meta_cache (OstreeRepo *repo);
/* Frees the cache REPO carries, if any (the checkout does, once done). */
void ab_import_drop_meta_cache (OstreeRepo *repo);
/* A new reference to the cached TYPE object CHECKSUM, or NULL. */
GVariant *ab_meta_cache_lookup (AbMetaCache *cache, OstreeObjectType type, const char *checksum);
/* The non-directory entries of COMMIT's tree, when the cache is COMMIT's. */
gboolean ab_meta_cache_files (AbMetaCache *cache, const char *commit, guint64 *out_files);
/* Whether the import checked COMMIT's signature with the keys of REMOTE. */
gboolean ab_meta_cache_verified (AbMetaCache *cache, const char *commit, const char *remote);
