/* Content: the libostree repo of the sysroot. Pulls (HTTP(S) URL or local
 * repo path), verifies GPG signatures against SYSROOT/etc/abdeploy/trusted.gpg.d,
 * checks commits out with hardlinks.
 *
 * Invariant: a commit that is not signed by a trusted key never leaves the
 * repo: ab_content_verify() is called on every commit before checkout, and
 * pulls run with GPG verification on, so an unverifiable commit is not even
 * written to the repo. There is no way to turn this off. */
#pragma once

#include <glib.h>
#include <ostree.h>
#include "ab-config.h"
#include "ab-events.h"
#include "ab-util.h"

#define AB_CONTENT_ERROR (ab_content_error_quark ())
/* The error domain of ab-content (the codes of the enum below). */
GQuark ab_content_error_quark (void);

typedef enum
{
  AB_CONTENT_ERROR_FAILED,
  AB_CONTENT_ERROR_VERIFY,     /* missing, bad or untrusted signature */
  AB_CONTENT_ERROR_NOT_FOUND,
  AB_CONTENT_ERROR_USAGE,
  AB_CONTENT_ERROR_TOO_BIG,    /* an object or the pull exceeded its size bound */
  AB_CONTENT_ERROR_TIMEOUT,    /* the pull exceeded its time bound */
  AB_CONTENT_ERROR_NO_SPACE,   /* not enough free space (needed + reserve) */
  AB_CONTENT_ERROR_CORRUPTED,  /* the source offered an object that does not match its checksum */
  AB_CONTENT_ERROR_WRONG_OS,   /* the commit is made for another OS (exit status 3) */
} AbContentError;

/* Bounds of one pull (abdeploy.conf(5), [update]).
 *
 * Invariants of an HTTP(S) pull (libostree in a worker thread, watched by
 * the calling thread every 100 ms):
 * - No file written while it runs grows beyond max_object_bytes
 *   (RLIMIT_FSIZE, with SIGXFSZ ignored: libostree gets EFBIG), be it the
 *   downloaded object or its unpacked form.
 * - More than max_pull_bytes received, deadline_us passed, free space on the
 *   repo's file system below min_free_bytes, or the caller's cancellable
 *   cancelled: the pull is cancelled, and abandoned 0.5 s later if libostree
 *   does not return (it does not stop a transfer in flight); the abandoned
 *   thread keeps its own references and the file size limit stays until
 *   the process exits (ab_content_pulls_abandoned()). The error names the
 *   bound, the redacted URL and the config key.
 * - The commit is pulled first (signature checked by libostree); when a
 *   signed size index is known (size_index below, or the commit's own
 *   "ostree.sizes"), the objects the repo
 *   lacks must fit in the free space beside the reserve, and the caps
 *   shrink to the indexed sizes before any other object is fetched.
 * - libostree's temporary files go to the repo's tmp directory (TMPDIR is
 *   set to it), on the sysroot's file system, never to /var/tmp. */
typedef struct
{
  guint64 max_object_bytes; /* [update] max-object-bytes */
  guint64 max_pull_bytes;   /* [update] max-pull-bytes */
  guint max_pull_time_sec;  /* [update] max-pull-time-sec */
  gint64 deadline_us;       /* monotonic end of the pull; 0: now + max_pull_time_sec */
  guint64 min_free_bytes;   /* [update] min-free-space */
  /* set by the pull: the cap was tightened to the commit's signed sizes */
  gboolean pull_cap_signed;
  gboolean object_cap_signed;
  /* the commit's size index (AbSizesEntry, ab-sizes.h) from the file the
   * signed manifest lists, checked against its SHA-256; borrowed. NULL: the
   * commit's own "ostree.sizes", if any (commits of older publishers) */
  const GArray *size_index;
} AbPullLimits;

#define AB_CONTENT_REMOTE "abdeploy"
/* The signed commit metadata (a string) naming the OS the commit is made
 * for (abdeploy-manifest(5)); written by abdeploy publish commit --os. */
#define AB_CONTENT_META_OS "abdeploy.os"
#define AB_TRUSTED_KEYS_DIR "etc/abdeploy/trusted.gpg.d"

/* The limits of CONFIG, with no deadline set yet. */
void ab_content_limits_init (AbPullLimits *limits, const AbConfig *config);
/* How many pulls were abandoned by this process (see AbPullLimits). */
guint ab_content_pulls_abandoned (void);
/* What applying the static delta whose superblock file is SUPERBLOCK
 * writes: the unpacked sizes of its parts and fallback objects (0 for data
 * that is not a superblock; the caller checked it against a signed
 * checksum). */
guint64 ab_content_delta_unpacked_bytes (GBytes *superblock);
/* Fails with AB_CONTENT_ERROR_NO_SPACE unless the file system of DFD has
 * NEEDED bytes plus RESERVE available; WHAT says what needs them. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_content_check_free_space (int dfd, guint64 needed, guint64 reserve,
                                      const char *what, GError **error);

/* Creates the sysroot's bare OSTree repo (SYSROOT/ostree/repo) and opens it. */
G_GNUC_WARN_UNUSED_RESULT
OstreeRepo *ab_content_create_repo (int sysroot_dfd, GError **error);
/* Opens the sysroot's OSTree repo; fails when it is missing. */
G_GNUC_WARN_UNUSED_RESULT
OstreeRepo *ab_content_open_repo (int sysroot_dfd, GError **error);


/* Pulls REF or COMMIT from SOURCE (URL or local path) with verification,
 * returning the commit checksum. LIMITS (NULL: the defaults) bound it; a
 * local source is first checked for free space: the unpacked size of the
 * objects it would add plus the reserve.
 * Events (EVENTS may be NULL): phase "download" for a URL, with bytes out
 * of the commit's signed size index (LIMITS->size_index, else the commit's
 * "ostree.sizes": the archived sizes of the objects the repo lacks), or, for a commit without one, objects
 * fetched out of those requested so far (the total grows while libostree
 * finds more); phase "import" for a local source, with objects out of all
 * the commit reaches. Every event reaches EVENTS on the calling thread.
 * SYSROOT_ROOT is the sysroot's absolute path (AbSysroot.root): the trusted
 * keys are its etc/abdeploy/trusted.gpg.d, an HTTP pull's temporary files
 * go to its ostree/repo/tmp ($TMPDIR is set to it). */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_content_pull (OstreeRepo *repo, const char *sysroot_root, const char *source,
                          const char *refspec, AbEventSink *events,
                          const char *tls_ca_path, const AbPullLimits *limits,
                          GCancellable *cancellable, char **out_commit, GError **error);
/* Imports COMMIT from the bare repo at SRC_PATH on this machine (the
 * temporary repo of extracted image packs, ab-pack.h) into REPO, as a pull
 * from a local source does: the remote is (re)defined for URL, the
 * device's update URL, with the trusted keys of SYSROOT_ROOT (SRC_PATH
 * never becomes the remote's URL); then the commit's signature is checked
 * over the bytes that hash to COMMIT, the objects it reaches must fit
 * beside LIMITS' reserve, and every object is hashed before it is linked
 * into REPO, the commit last (ab-import.h). Progress in objects reaches
 * the current phase of EVENTS. Errors as ab_content_pull():
 * AB_CONTENT_ERROR_VERIFY (signature), _CORRUPTED (an object that does not
 * hash to its name), _FAILED (e.g. a missing object), _NO_SPACE. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_content_import_repo (OstreeRepo *repo, const char *sysroot_root, const char *url,
                                 const char *tls_ca_path, const char *src_path,
                                 const char *commit, AbEventSink *events,
                                 const AbPullLimits *limits, GCancellable *cancellable,
                                 GError **error);
/* Resolves a ref or commit already in the repo. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_content_resolve (OstreeRepo *repo, const char *refspec, char **out_commit,
                             GError **error);
/* Fails with AB_CONTENT_ERROR_VERIFY unless a key trusted by the sysroot
 * at SYSROOT_ROOT (its absolute path) signed COMMIT. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_content_verify (OstreeRepo *repo, const char *sysroot_root, const char *commit,
                            GError **error);
/* The string metadata KEY of COMMIT, or NULL when absent. */
G_GNUC_WARN_UNUSED_RESULT
char *ab_content_commit_meta (OstreeRepo *repo, const char *commit, const char *key,
                              GError **error);
/* The OS COMMIT is made for (AB_CONTENT_META_OS) into *OUT_OS, NULL when
 * the commit carries none (abdeploy 0.2.0, ostree commit). Fails with
 * AB_CONTENT_ERROR_WRONG_OS naming both when it is not DEVICE_OS, or when
 * the value is not a string. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_content_check_os (OstreeRepo *repo, const char *commit, const char *device_os,
                              char **out_os, GError **error);
/* The "version" metadata of COMMIT, or NULL. */
G_GNUC_WARN_UNUSED_RESULT
char *ab_content_commit_version (OstreeRepo *repo, const char *commit, GError **error);
/* The number of non-directory entries (files, symlinks) of COMMIT's tree,
 * counted from its dirtree objects alone (no file object is read). */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_content_count_files (OstreeRepo *repo, const char *commit, guint64 *out_files,
                                 GError **error);
/* Checks COMMIT out into dfd/path with hardlinks into the repo. Reports
 * progress in files (out of ab_content_count_files()) in the current phase
 * of EVENTS (may be NULL), on the calling thread, at most every 100 ms and
 * once more when the checkout is complete (then done = total). */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_content_checkout (OstreeRepo *repo, const char *commit, int dfd, const char *path,
                              AbEventSink *events, GCancellable *cancellable, GError **error);
/* Points REF at COMMIT (NULL: deletes REF) at once
 * (ostree_repo_set_ref_immediate()); on error REF is unchanged. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_content_set_ref (OstreeRepo *repo, const char *ref, const char *commit,
                             GError **error);

/* Types a failed libostree call's G_IO_ERROR_FAILED as AB_FS_ERROR_IO when
 * the device failed: ERRSV (errno right after the call) is EIO, or the
 * message carries strerror(EIO) (libostree cleaned up and errno is gone).
 * Every other error is left as it is. Call it before prefixing ERROR. */
void ab_content_type_disk_error (GError **error, int errsv);
