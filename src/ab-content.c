#include "config.h"
#include "ab-content.h"
#include "ab-sizes.h"
#include "ab-ostree-error.h"
#include "ab-protocol.h"
#include "ab-fetch.h"
#include "ab-fsutil.h"
#include "ab-gpg.h"
#include "ab-import.h"
#include "ab-util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

G_DEFINE_QUARK (ab-content-error-quark, ab_content_error)

#define REPO_PATH "ostree/repo"

OstreeRepo *
ab_content_create_repo (int sysroot_dfd, GError **error)
{
  OstreeRepo *repo = ostree_repo_create_at (sysroot_dfd, REPO_PATH, OSTREE_REPO_MODE_BARE,
                                            NULL, NULL, error);
  if (repo == NULL)
    g_prefix_error (error, "Creating the OSTree repo " REPO_PATH ": ");
  return repo;
}

OstreeRepo *
ab_content_open_repo (int sysroot_dfd, GError **error)
{
  OstreeRepo *repo = ostree_repo_open_at (sysroot_dfd, REPO_PATH, NULL, error);
  if (repo == NULL)
    g_prefix_error (error, "Opening the OSTree repo " REPO_PATH ": ");
  return repo;
}

static int
compare_names (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char **) a, *(const char **) b);
}

/* The trusted key files, joined with ';' as libostree's gpgkeypath wants. */
static char *
trusted_keypath (const char *sysroot_root, GError **error)
{
  g_autofree char *dir_path = g_build_filename (sysroot_root, AB_TRUSTED_KEYS_DIR, NULL);
  g_autoptr(GDir) dir = g_dir_open (dir_path, 0, NULL);
  g_autoptr(GPtrArray) files = g_ptr_array_new_with_free_func (g_free);
  const char *name;
  while (dir && (name = g_dir_read_name (dir)) != NULL)
    if (g_str_has_suffix (name, ".gpg") || g_str_has_suffix (name, ".asc"))
      g_ptr_array_add (files, g_build_filename (dir_path, name, NULL));
  if (files->len == 0)
    {
      g_set_error (error, AB_CONTENT_ERROR, AB_CONTENT_ERROR_VERIFY,
                   "No trusted keys: %s holds no *.gpg or *.asc file, so no signature can be "
                   "verified. Install the publisher's public key there (gpg --export KEYID > "
                   "%s/publisher.gpg)", dir_path, dir_path);
      return NULL;
    }
  g_ptr_array_sort (files, compare_names);
  g_ptr_array_add (files, NULL);
  return g_strjoinv (";", (char **) files->pdata);
}

/* (Re)defines remote "abdeploy": URL, GPG verification on, trusted keys.
 * The repo config (which libostree rewrites world-readable) gets the URL
 * without user name, password or query: pulls pass the full URL as
 * "override-url", so credentials stay in abdeploy.conf or the command line. */
static gboolean
configure_remote (OstreeRepo *repo, const char *sysroot_root, const char *url,
                  const char *tls_ca_path, GError **error)
{
  g_autofree char *keypath = trusted_keypath (sysroot_root, error);
  if (keypath == NULL)
    return FALSE;
  g_autoptr(GVariantBuilder) b = g_variant_builder_new (G_VARIANT_TYPE ("a{sv}"));
  g_variant_builder_add (b, "{sv}", "gpg-verify", g_variant_new_string ("true"));
  g_variant_builder_add (b, "{sv}", "gpg-verify-summary", g_variant_new_string ("false"));
  g_variant_builder_add (b, "{sv}", "gpgkeypath", g_variant_new_string (keypath));
  if (tls_ca_path != NULL)
    g_variant_builder_add (b, "{sv}", "tls-ca-path", g_variant_new_string (tls_ca_path));
  g_autoptr(GVariant) options = g_variant_ref_sink (g_variant_builder_end (b));
  g_autofree char *shown = ab_fetch_redact_url (url);
  if (!ostree_repo_remote_change (repo, NULL, OSTREE_REPO_REMOTE_CHANGE_DELETE_IF_EXISTS,
                                  AB_CONTENT_REMOTE, NULL, NULL, NULL, error)
      || !ostree_repo_remote_change (repo, NULL, OSTREE_REPO_REMOTE_CHANGE_ADD, AB_CONTENT_REMOTE,
                                     shown, options, NULL, error))
    {
      g_prefix_error (error, "Configuring the pull source: ");
      return FALSE;
    }
  return TRUE;
}

static char *
source_to_url (const char *source, GError **error)
{
  if (g_str_has_prefix (source, "http://") || g_str_has_prefix (source, "https://")
      || g_str_has_prefix (source, "file://"))
    return g_strdup (source);
  if (strstr (source, "://") != NULL)
    {
      g_autofree char *shown = ab_fetch_redact_url (source);
      g_set_error (error, AB_CONTENT_ERROR, AB_CONTENT_ERROR_USAGE,
                   "Unsupported source \"%s\": use an http://, https:// or file:// URL "
                   "or the path of an OSTree repo", shown);
      return NULL;
    }
  g_autofree char *abs = realpath (source, NULL);
  g_autofree char *config = abs ? g_build_filename (abs, "config", NULL) : NULL;
  if (abs == NULL || !g_file_test (config, G_FILE_TEST_IS_REGULAR))
    {
      g_set_error (error, AB_CONTENT_ERROR, AB_CONTENT_ERROR_USAGE,
                   "Source %s is not an OSTree repository (no %s/config); give the path of "
                   "the repo on the update medium or an http(s):// URL", source, source);
      return NULL;
    }
  return g_strconcat ("file://", abs, NULL);
}

/* "the commit is not signed" or "it is signed by ..., which is not
 * trusted"; the trusted keys are added by explain_refusal(). CAUSE is a
 * signature failure of libostree's (ab-ostree-error.h). */
static void
set_verify_error (GError **error, const char *commit, const GError *cause)
{
  g_autofree char *signer = ab_ostree_failure_signer (cause);
  g_autofree char *who = ab_gpg_describe_signer (signer);
  g_autofree char *why = NULL;
  switch (ab_ostree_failure_of (cause))
    {
    case AB_OSTREE_FAILURE_NOT_SIGNED:
      why = g_strdup ("the commit is not signed");
      break;
    case AB_OSTREE_FAILURE_UNTRUSTED:
      why = g_strdup_printf ("it is signed by %s, which is not a trusted key", who);
      break;
    default:
      why = g_strdup (cause->message);
    }
  g_set_error (error, AB_CONTENT_ERROR, AB_CONTENT_ERROR_VERIFY,
               "Refusing commit %s: signature verification failed: %s", commit ? commit : "",
               why);
}

/* Completes a refusal of set_verify_error() with the trusted keys'
 * fingerprints and where they are, and the fix. */
static gboolean
explain_refusal (const char *sysroot_root, GError **error)
{
  /* Invariant: a pull's only AB_CONTENT_ERROR_VERIFY is set_verify_error()'s
   * (no trusted keys fails before the pull, in configure_remote()). */
  if (error == NULL || !g_error_matches (*error, AB_CONTENT_ERROR, AB_CONTENT_ERROR_VERIFY))
    return FALSE;
  g_autofree char *dir = g_build_filename (sysroot_root, AB_TRUSTED_KEYS_DIR, NULL);
  g_autoptr(GError) local = NULL;
  g_auto(GStrv) fprs = ab_gpg_trusted_fingerprints (dir, &local);
  g_autofree char *list = fprs ? g_strjoinv (", ", fprs) : g_strdup ("none readable");
  g_autofree char *msg = g_strdup_printf (
      "%s. Trusted keys (%s): fingerprint %s. Sign the commit with one of them (ostree commit "
      "--gpg-sign=KEYID), or install the publisher's public key there", (*error)->message,
      dir, list);
  g_free ((*error)->message);
  (*error)->message = g_steal_pointer (&msg);
  return FALSE;
}

/* Sets ERROR from the failure CAUSE of fetching REFSPEC (COMMIT once
 * resolved) from SOURCE; always returns FALSE. */
static gboolean
set_pull_error (GError **error, const char *refspec, const char *source, const char *commit,
                const GError *cause)
{
  AbOstreeFailure failure = ab_ostree_failure_of (cause);
  gboolean corrupted = failure == AB_OSTREE_FAILURE_CHECKSUM
                       || g_error_matches (cause, AB_IMPORT_ERROR, AB_IMPORT_ERROR_CHECKSUM);
  if (ab_ostree_failure_is_signature (failure))
    set_verify_error (error, commit, cause);
  else if (failure == AB_OSTREE_FAILURE_CORRUPTED)
    g_set_error (error, AB_CONTENT_ERROR, AB_CONTENT_ERROR_CORRUPTED,
                 "Pulling %s from %s failed: the source holds a corrupted object (%s). "
                 "The medium or server copy is damaged or was tampered with; nothing was "
                 "installed. Fetch a fresh copy of the update and try again",
                 refspec, source, cause->message);
  else
    g_set_error (error, AB_CONTENT_ERROR,
                 corrupted ? AB_CONTENT_ERROR_CORRUPTED : AB_CONTENT_ERROR_FAILED,
                 "Pulling %s from %s failed: %s", refspec, source, cause->message);
  return FALSE;
}

/* ---- bounds: limits, free space ---- */

void
ab_content_limits_init (AbPullLimits *limits, const AbConfig *config)
{
  g_autoptr(AbConfig) defaults = config ? NULL : ab_config_new_defaults ();
  const AbConfigUpdate *u = config ? &config->update : &defaults->update;
  memset (limits, 0, sizeof *limits);
  limits->max_object_bytes = u->max_object_bytes;
  limits->max_pull_bytes = u->max_pull_bytes;
  limits->max_pull_time_sec = u->max_pull_time_sec;
  limits->min_free_bytes = u->min_free_space;
}

static guint64
free_bytes (int dfd)
{
  struct statvfs st;
  if (fstatvfs (dfd, &st) < 0)
    return G_MAXUINT64; /* unknown: the writes themselves will tell */
  return (guint64) st.f_bavail * st.f_frsize;
}

gboolean
ab_content_check_free_space (int dfd, guint64 needed, guint64 reserve, const char *what,
                             GError **error)
{
  guint64 avail = free_bytes (dfd);
  if (avail >= reserve && avail - reserve >= needed)
    return TRUE;
  g_autofree char *n = g_format_size_full (needed, G_FORMAT_SIZE_IEC_UNITS);
  g_autofree char *a = g_format_size_full (avail, G_FORMAT_SIZE_IEC_UNITS);
  g_autofree char *r = g_format_size_full (reserve, G_FORMAT_SIZE_IEC_UNITS);
  g_set_error (error, AB_CONTENT_ERROR, AB_CONTENT_ERROR_NO_SPACE,
               "Not enough free space for %s: it needs %" G_GUINT64_FORMAT " bytes (%s) plus "
               "the reserve [update] min-free-space=%" G_GUINT64_FORMAT " (%s), but only %"
               G_GUINT64_FORMAT " bytes (%s) are available on the sysroot's file system. "
               "Nothing was changed; free some space (or lower min-free-space) and try again",
               what, needed, n, reserve, r, avail, a);
  return FALSE;
}

/* OSTREE_STATIC_DELTA_SUPERBLOCK_FORMAT of libostree (private there). */
#define SUPERBLOCK_TYPE "(a{sv}tayay(a{sv}aya(say)sstayay)aya(uayttay)a(yaytt))"

static guint64
saturating_add (guint64 a, guint64 b)
{
  return a > G_MAXUINT64 - b ? G_MAXUINT64 : a + b;
}

guint64
ab_content_delta_unpacked_bytes (GBytes *superblock)
{
  g_autoptr(GVariant) sb = g_variant_ref_sink (
      g_variant_new_from_bytes (G_VARIANT_TYPE (SUPERBLOCK_TYPE), superblock, FALSE));
  g_autoptr(GVariant) meta = g_variant_get_child_value (sb, 0);
  guint8 endian = 0;
  gboolean swap = g_variant_lookup (meta, "ostree.endianness", "y", &endian)
                  && (endian == 'B') != (G_BYTE_ORDER == G_BIG_ENDIAN);
  g_autoptr(GVariant) parts = g_variant_get_child_value (sb, 6);
  g_autoptr(GVariant) fallbacks = g_variant_get_child_value (sb, 7);
  guint64 total = 0;
  for (gsize i = 0; i < g_variant_n_children (parts); i++)
    {
      guint64 usize = 0;
      g_variant_get_child (parts, i, "(u@aytt@ay)", NULL, NULL, NULL, &usize, NULL);
      total = saturating_add (total, swap ? GUINT64_SWAP_LE_BE (usize) : usize);
    }
  for (gsize i = 0; i < g_variant_n_children (fallbacks); i++)
    {
      guint64 usize = 0;
      g_variant_get_child (fallbacks, i, "(y@aytt)", NULL, NULL, NULL, &usize);
      total = saturating_add (total, swap ? GUINT64_SWAP_LE_BE (usize) : usize);
    }
  return total;
}

/* ---- HTTP(S) pulls: libostree in a worker thread, bounded by a watcher ---- */

static guint pulls_abandoned;

guint
ab_content_pulls_abandoned (void)
{
  return g_atomic_int_get (&pulls_abandoned);
}

typedef struct
{
  gint refs;
  OstreeRepo *repo;
  GVariant *options;
  GCancellable *cancel;  /* cancelled by the watcher */
  GMutex lock;           /* guards everything below */
  GCond cond;
  gboolean done;
  gboolean ok;
  GError *error;
  guint fetched, requested;
  guint64 bytes;
} PullJob;

static void
pull_job_unref (PullJob *job)
{
  if (!g_atomic_int_dec_and_test (&job->refs))
    return;
  g_object_unref (job->repo);
  g_variant_unref (job->options);
  g_object_unref (job->cancel);
  g_clear_error (&job->error);
  g_mutex_clear (&job->lock);
  g_cond_clear (&job->cond);
  g_free (job);
}

static void
on_job_progress (OstreeAsyncProgress *progress, gpointer user_data)
{
  PullJob *job = user_data;
  guint fetched = 0, requested = 0;
  guint64 bytes = 0;
  ostree_async_progress_get (progress, "fetched", "u", &fetched, "requested", "u", &requested,
                             "bytes-transferred", "t", &bytes, NULL);
  g_mutex_lock (&job->lock);
  job->fetched = fetched;
  job->requested = requested;
  job->bytes = MAX (job->bytes, bytes);
  g_mutex_unlock (&job->lock);
}

/* The worker: libostree's pull on a main context of its own. */
static gpointer
pull_thread (gpointer data)
{
  PullJob *job = data;
  g_autoptr(GMainContext) ctx = g_main_context_new ();
  g_main_context_push_thread_default (ctx);
  GError *e = NULL;
  OstreeAsyncProgress *progress = ostree_async_progress_new_and_connect (on_job_progress, job);
  gboolean ok = ostree_repo_pull_with_options (job->repo, AB_CONTENT_REMOTE, job->options,
                                               progress, job->cancel, &e);
  ostree_async_progress_finish (progress);
  g_object_unref (progress);
  g_main_context_pop_thread_default (ctx);
  g_mutex_lock (&job->lock);
  job->done = TRUE;
  job->ok = ok;
  job->error = e;
  g_cond_broadcast (&job->cond);
  g_mutex_unlock (&job->lock);
  pull_job_unref (job);
  return NULL;
}

typedef enum
{
  BOUND_NONE,
  BOUND_CANCELLED,
  BOUND_BYTES,
  BOUND_TIME,
  BOUND_SPACE,
} Bound;

typedef struct
{
  PullJob *job;
  const AbPullLimits *limits;
  int repo_dfd;
  GCancellable *cancellable; /* the caller's */
  AbProgressFunc progress;
  gpointer progress_data;
  Bound hit;
  guint64 bytes;             /* last count seen */
  guint64 free_at_hit;
} Watch;

static Bound
bound_hit (Watch *w)
{
  if (w->cancellable && g_cancellable_is_cancelled (w->cancellable))
    return BOUND_CANCELLED;
  if (w->bytes > w->limits->max_pull_bytes)
    return BOUND_BYTES;
  if (g_get_monotonic_time () >= w->limits->deadline_us)
    return BOUND_TIME;
  w->free_at_hit = free_bytes (w->repo_dfd);
  if (w->free_at_hit < w->limits->min_free_bytes)
    return BOUND_SPACE;
  return BOUND_NONE;
}

/* Waits for the worker, checking the bounds every 100 ms; TRUE when it
 * ended, FALSE when it was abandoned. */
static gboolean
watch_pull (Watch *w)
{
  PullJob *job = w->job;
  gint64 give_up = G_MAXINT64;
  guint last_fetched = G_MAXUINT;
  g_mutex_lock (&job->lock);
  while (!job->done && g_get_monotonic_time () < give_up)
    {
      g_cond_wait_until (&job->cond, &job->lock, g_get_monotonic_time () + 100 * G_TIME_SPAN_MILLISECOND);
      guint fetched = job->fetched, requested = job->requested;
      w->bytes = job->bytes;
      g_mutex_unlock (&job->lock);
      if (w->progress && (fetched != last_fetched || w->bytes > 0))
        w->progress (fetched, requested, w->bytes, w->progress_data);
      last_fetched = fetched;
      if (w->hit == BOUND_NONE && (w->hit = bound_hit (w)) != BOUND_NONE)
        {
          g_cancellable_cancel (job->cancel);
          give_up = g_get_monotonic_time () + G_USEC_PER_SEC / 2;
        }
      g_mutex_lock (&job->lock);
    }
  gboolean done = job->done;
  guint fetched = job->fetched, requested = job->requested;
  w->bytes = job->bytes;
  g_mutex_unlock (&job->lock);
  /* the counts the pull ended with: the last wake-up may predate them */
  if (done && w->progress)
    w->progress (fetched, requested, w->bytes, w->progress_data);
  return done;
}

/* Pulls are untrusted: libostree checksums every object it stores. (Local
 * sources go through ab-import, which imports untrusted as well: a trusted
 * local import would take objects unchecked, and a tampered medium could
 * pass a validly signed commit with altered files.) */
static GVariant *
pull_options (const char *url, const char *refspec, gboolean commit_only)
{
  const char *refs[] = { refspec, NULL };
  g_autoptr(GVariantBuilder) b = g_variant_builder_new (G_VARIANT_TYPE ("a{sv}"));
  /* the full URL, credentials included, lives only in this pull's options */
  g_variant_builder_add (b, "{sv}", "override-url", g_variant_new_string (url));
  g_variant_builder_add (b, "{sv}", "refs", g_variant_new_strv (refs, -1));
  g_variant_builder_add (b, "{sv}", "gpg-verify", g_variant_new_boolean (TRUE));
  g_variant_builder_add (b, "{sv}", "gpg-verify-summary", g_variant_new_boolean (FALSE));
  OstreeRepoPullFlags flags = OSTREE_REPO_PULL_FLAGS_UNTRUSTED;
  if (commit_only)
    flags |= OSTREE_REPO_PULL_FLAGS_COMMIT_ONLY;
  g_variant_builder_add (b, "{sv}", "flags", g_variant_new_int32 (flags));
  /* the protocol header on libostree's requests too (ab-protocol.h) */
  g_variant_builder_add (b, "{sv}", "http-headers",
                         g_variant_new_parsed ("[(%s, %s)]", AB_PROTOCOL_HEADER,
                                               G_STRINGIFY (AB_PROTOCOL)));
  /* byte counts for the watcher ten times a second (libostree's default: 1 s) */
  g_variant_builder_add (b, "{sv}", "update-frequency", g_variant_new_uint32 (100));
  return g_variant_ref_sink (g_variant_builder_end (b));
}

/* libostree caches the remote's summary by name and revalidates it with
 * If-Modified-Since; a summary rewritten within the same second would then
 * resolve refs to stale commits. Each pull starts without the cache. */
static void
drop_summary_cache (OstreeRepo *repo)
{
  int dfd = ostree_repo_get_dfd (repo);
  (void) unlinkat (dfd, "tmp/cache/summaries/" AB_CONTENT_REMOTE, 0);
  (void) unlinkat (dfd, "tmp/cache/summaries/" AB_CONTENT_REMOTE ".sig", 0);
}

/* A local source: imported by ab-import, signature first, on every CPU,
 * when the objects it adds fit beside the reserve. */
static void
on_import_progress (guint64 done, guint64 total, guint64 bytes, gpointer user_data)
{
  ab_event_progress (user_data, AB_PROGRESS_UNIT_OBJECTS, done, (gint64) total);
}

/* The verified import of COMMIT from SRC (named SOURCE in errors) into
 * REPO, whose remote is configured: signature, walk, free space, then the
 * objects, each hashed before it is linked. PHASE (NULL: none) is
 * reported once the objects fit. */
static gboolean
import_verified (OstreeRepo *repo, OstreeRepo *src, const char *refspec, const char *commit,
                 const char *source, const char *phase, AbEventSink *events,
                 const AbPullLimits *limits, GCancellable *cancellable, GError **error)
{
  g_autoptr(GError) local = NULL;
  g_autoptr(AbImportPlan) plan = ab_import_plan_new (repo, AB_CONTENT_REMOTE, src, commit,
                                                     cancellable, &local);
  if (plan == NULL)
    return set_pull_error (error, refspec, source, commit, local);
  g_autofree char *what = g_strdup_printf ("importing %s from %s", refspec, source);
  if (!ab_content_check_free_space (ostree_repo_get_dfd (repo),
                                    ab_import_plan_needed_bytes (plan), limits->min_free_bytes,
                                    what, error))
    return FALSE;
  if (phase != NULL)
    ab_event_phase (events, phase);
  if (!ab_import_plan_run (plan, 0, events ? on_import_progress : NULL, events, cancellable,
                           &local))
    return set_pull_error (error, refspec, source, commit, local);
  return TRUE;
}

static gboolean
import_local (OstreeRepo *repo, const char *url, const char *source, const char *refspec,
              AbEventSink *events, const AbPullLimits *limits,
              GCancellable *cancellable, char **out_commit, GError **error)
{
  g_autoptr(GFile) dir = g_file_new_for_uri (url);
  g_autoptr(OstreeRepo) src = ostree_repo_new (dir);
  g_autofree char *commit = NULL;
  g_autoptr(GError) local = NULL;
  if (!ostree_repo_open (src, cancellable, &local)
      || !ostree_repo_resolve_rev (src, refspec, FALSE, &commit, &local))
    return set_pull_error (error, refspec, source, refspec, local);
  if (!import_verified (repo, src, refspec, commit, source, "import", events, limits,
                        cancellable, error))
    return FALSE;
  if (!ab_is_commit_checksum (refspec)
      && !ostree_repo_set_ref_immediate (repo, AB_CONTENT_REMOTE, refspec, commit, NULL, error))
    return FALSE;
  *out_commit = g_steal_pointer (&commit);
  return TRUE;
}

gboolean
ab_content_import_repo (OstreeRepo *repo, const char *sysroot_root, const char *url,
                        const char *tls_ca_path, const char *src_path, const char *commit,
                        AbEventSink *events, const AbPullLimits *limits,
                        GCancellable *cancellable, GError **error)
{
  g_autoptr(GFile) dir = g_file_new_for_path (src_path);
  g_autoptr(OstreeRepo) src = ostree_repo_new (dir);
  g_autoptr(GError) local = NULL;
  /* the remote keeps the device's update URL: SRC_PATH is only read */
  if (!configure_remote (repo, sysroot_root, url, tls_ca_path, error))
    return FALSE;
  if (!ostree_repo_open (src, cancellable, &local))
    return set_pull_error (error, commit, src_path, commit, local);
  return import_verified (repo, src, commit, commit, src_path, NULL, events, limits,
                          cancellable, error)
         || explain_refusal (sysroot_root, error);
}

/* RLIMIT_FSIZE at MAX for the whole process, SIGXFSZ ignored so that a
 * write beyond it fails with EFBIG; the previous limit goes to OLD. */
static void
limit_file_size (guint64 max, struct rlimit *old)
{
  struct sigaction ignore = { .sa_handler = SIG_IGN };
  (void) sigaction (SIGXFSZ, &ignore, NULL);
  (void) getrlimit (RLIMIT_FSIZE, old);
  struct rlimit lim = *old;
  if (lim.rlim_max == RLIM_INFINITY || max < lim.rlim_max)
    lim.rlim_cur = (rlim_t) max;
  (void) setrlimit (RLIMIT_FSIZE, &lim);
}

/* libglnx puts the objects libostree 2022.7 downloads in anonymous files in
 * $TMPDIR, else /var/tmp: keep them on the repo's file system (the tmp of
 * SYSROOT_ROOT's repo), bounded by the same free-space watch. Set before
 * an HTTP pull, while no other thread reads the environment (the pull's
 * worker starts after it). */
static void
keep_tmp_in_repo (const char *sysroot_root)
{
  g_autofree char *tmp = g_build_filename (sysroot_root, REPO_PATH, "tmp", NULL);
  g_setenv ("TMPDIR", tmp, TRUE);
}

static gboolean
set_bound_error (GError **error, const Watch *w, const char *what)
{
  const AbPullLimits *l = w->limits;
  if (w->hit == BOUND_CANCELLED)
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED, "%s: cancelled", what);
  else if (w->hit == BOUND_BYTES && l->pull_cap_signed)
    g_set_error (error, AB_CONTENT_ERROR, AB_CONTENT_ERROR_TOO_BIG,
                 "%s: the server sent more than the %" G_GUINT64_FORMAT " bytes that the "
                 "commit's signed size index allows; aborted (a hostile or broken server)",
                 what, l->max_pull_bytes);
  else if (w->hit == BOUND_BYTES)
    g_set_error (error, AB_CONTENT_ERROR, AB_CONTENT_ERROR_TOO_BIG,
                 "%s: the server sent more than [update] max-pull-bytes=%" G_GUINT64_FORMAT
                 " bytes; aborted (a hostile or broken server; raise max-pull-bytes if the "
                 "release is really that big)", what, l->max_pull_bytes);
  else if (w->hit == BOUND_TIME)
    g_set_error (error, AB_CONTENT_ERROR, AB_CONTENT_ERROR_TIMEOUT,
                 "%s: the time limit [update] max-pull-time-sec=%u ran out after %"
                 G_GUINT64_FORMAT " bytes; aborted (raise it for very slow links)", what,
                 l->max_pull_time_sec, w->bytes);
  else
    g_set_error (error, AB_CONTENT_ERROR, AB_CONTENT_ERROR_NO_SPACE,
                 "%s: the free space on the sysroot's file system fell to %" G_GUINT64_FORMAT
                 " bytes, below the reserve [update] min-free-space=%" G_GUINT64_FORMAT
                 "; aborted (free some space, or lower min-free-space)", what, w->free_at_hit,
                 l->min_free_bytes);
  return FALSE;
}

/* MESSAGE without the password and query of URL: libostree's messages name
 * the URLs it fetched as it built them from the remote's URL. */
static char *
redact_message (const char *message, const char *url)
{
  g_autoptr(GUri) uri = g_uri_parse (url, G_URI_FLAGS_HAS_PASSWORD | G_URI_FLAGS_ENCODED, NULL);
  g_autofree char *out = g_strdup (message);
  const char *secrets[] = { uri ? g_uri_get_password (uri) : NULL, uri ? g_uri_get_query (uri) : NULL };
  for (guint i = 0; i < G_N_ELEMENTS (secrets); i++)
    if (secrets[i] != NULL && *secrets[i] != '\0')
      {
        g_auto(GStrv) parts = g_strsplit (out, secrets[i], -1);
        g_free (out);
        out = g_strjoinv ("***", parts);
      }
  return g_steal_pointer (&out);
}

/* libostree's own errors that are the bounds of the pull. */
static gboolean
set_pull_failure (GError **error, const Watch *w, const char *what, const char *refspec,
                  const char *url, const char *shown, const GError *cause)
{
  AbOstreeFailure failure = ab_ostree_failure_of (cause);
  if (failure == AB_OSTREE_FAILURE_OBJECT_TOO_BIG && w->limits->object_cap_signed)
    g_set_error (error, AB_CONTENT_ERROR, AB_CONTENT_ERROR_TOO_BIG,
                 "%s: an object is larger than the %" G_GUINT64_FORMAT " bytes that the "
                 "commit's signed size index allows; aborted (a hostile or broken server)",
                 what, w->limits->max_object_bytes);
  else if (failure == AB_OSTREE_FAILURE_OBJECT_TOO_BIG)
    g_set_error (error, AB_CONTENT_ERROR, AB_CONTENT_ERROR_TOO_BIG,
                 "%s: an object is larger than [update] max-object-bytes=%" G_GUINT64_FORMAT
                 " bytes; aborted (a hostile or broken server; raise max-object-bytes if the "
                 "image really holds a file that big)", what, w->limits->max_object_bytes);
  else if (failure == AB_OSTREE_FAILURE_METADATA_TOO_BIG)
    g_set_error (error, AB_CONTENT_ERROR, AB_CONTENT_ERROR_TOO_BIG,
                 "%s: a metadata object is larger than libostree's cap of %d bytes; aborted "
                 "(a hostile or broken server)", what, OSTREE_MAX_METADATA_SIZE);
  else
    {
      g_autofree char *msg = redact_message (cause->message, url);
      g_autoptr(GError) redacted = g_error_new_literal (cause->domain, cause->code, msg);
      return set_pull_error (error, refspec, shown, refspec, redacted);
    }
  return FALSE;
}

static gboolean
pull_http (OstreeRepo *repo, const char *url, const char *refspec, gboolean commit_only,
           AbProgressFunc progress, gpointer user_data, const AbPullLimits *limits,
           GCancellable *cancellable, GError **error)
{
  drop_summary_cache (repo);
  g_autofree char *shown = ab_fetch_redact_url (url);
  g_autofree char *what = g_strdup_printf ("Pulling %s from %s", refspec, shown);
  PullJob *job = g_new0 (PullJob, 1);
  job->refs = 2; /* the worker's and ours */
  job->repo = g_object_ref (repo);
  job->options = pull_options (url, refspec, commit_only);
  job->cancel = g_cancellable_new ();
  g_mutex_init (&job->lock);
  g_cond_init (&job->cond);
  Watch w = { job, limits, ostree_repo_get_dfd (repo), cancellable, progress, user_data };
  struct rlimit old;
  limit_file_size (limits->max_object_bytes, &old);
  g_thread_unref (g_thread_new ("ab-pull", pull_thread, job));
  gboolean ended = watch_pull (&w);
  if (!ended)
    g_atomic_int_inc (&pulls_abandoned); /* the worker may still write: keep the limit */
  else
    (void) setrlimit (RLIMIT_FSIZE, &old);
  gboolean ok = ended && job->ok && w.hit == BOUND_NONE;
  if (!ok && w.hit != BOUND_NONE)
    set_bound_error (error, &w, what);
  else if (!ok)
    set_pull_failure (error, &w, what, refspec, url, shown, job->error);
  pull_job_unref (job);
  return ok;
}

static gboolean
pulled_commit (OstreeRepo *repo, const char *refspec, char **out_commit, GError **error)
{
  if (ab_is_commit_checksum (refspec))
    {
      *out_commit = g_strdup (refspec);
      return TRUE;
    }
  g_autofree char *remote_ref = g_strconcat (AB_CONTENT_REMOTE ":", refspec, NULL);
  return ab_content_resolve (repo, remote_ref, out_commit, error);
}

/* What the objects of COMMIT that REPO lacks take, by its signed size
 * index: INDEX (the publisher's file, checked against the signed
 * manifest) or else the commit's own "ostree.sizes" (older publishers).
 * FALSE when there is neither. */
static gboolean
signed_sizes (OstreeRepo *repo, const char *commit, const GArray *index, AbSizesTotals *out)
{
  g_autoptr(GVariant) v = NULL;
  g_autoptr(GArray) own = NULL;
  if (index == NULL && ostree_repo_load_variant (repo, OSTREE_OBJECT_TYPE_COMMIT, commit, &v, NULL))
    index = own = ab_sizes_from_commit (v);
  if (index == NULL)
    return FALSE;
  ab_sizes_totals (index, repo, out);
  return TRUE;
}

/* Room for the signed sizes of COMMIT beside the reserve, and caps
 * tightened to them: the pull may not receive more than the index says
 * (plus 1 MiB for the remote's config and summary), nor write a file
 * larger than its largest object (at least libostree's 10 MiB metadata
 * cap). Without an index the configured caps stay. */
static gboolean
apply_signed_sizes (OstreeRepo *repo, const char *commit, AbPullLimits *lim,
                    gint64 *out_download, GError **error)
{
  AbSizesTotals t = { 0 };
  *out_download = AB_PROGRESS_TOTAL_UNKNOWN;
  if (!signed_sizes (repo, commit, lim->size_index, &t))
    return TRUE;
  guint64 download = t.download, store = t.store, largest = t.largest;
  *out_download = (gint64) MIN (download, (guint64) G_MAXINT64);
  g_autofree char *what = g_strdup_printf ("the objects of commit %s (its signed size index)",
                                           commit);
  if (!ab_content_check_free_space (ostree_repo_get_dfd (repo), saturating_add (download, store),
                                    lim->min_free_bytes, what, error))
    return FALSE;
  guint64 pull_cap = saturating_add (download, 1024 * 1024);
  guint64 object_cap = MAX (largest, (guint64) 16 * 1024 * 1024);
  lim->pull_cap_signed = pull_cap < lim->max_pull_bytes;
  lim->object_cap_signed = object_cap < lim->max_object_bytes;
  lim->max_pull_bytes = MIN (lim->max_pull_bytes, pull_cap);
  lim->max_object_bytes = MIN (lim->max_object_bytes, object_cap);
  return TRUE;
}

/* Where the objects pass of a pull reports: bytes out of the signed
 * download size, or, without a size index, objects fetched out of those
 * requested so far. */
typedef struct
{
  AbEventSink *events;
  gint64 total; /* signed bytes to download, or AB_PROGRESS_TOTAL_UNKNOWN */
} PullReport;

static void
on_pull_progress (guint64 fetched, guint64 requested, guint64 bytes, gpointer user_data)
{
  const PullReport *r = user_data;
  if (r->total != AB_PROGRESS_TOTAL_UNKNOWN)
    ab_event_progress (r->events, AB_PROGRESS_UNIT_BYTES, bytes, r->total);
  else
    ab_event_progress (r->events, AB_PROGRESS_UNIT_OBJECTS, fetched, (gint64) requested);
}

/* The objects of COMMIT, reported to EVENTS; a complete pull ends its
 * byte count at the signed total (what libostree counts also includes the
 * metadata the index leaves out). */
static gboolean
pull_objects (OstreeRepo *repo, const char *url, const char *commit, AbEventSink *events,
              gint64 total, AbPullLimits *lim, GCancellable *cancellable, GError **error)
{
  PullReport report = { events, total };
  if (!pull_http (repo, url, commit, FALSE, events ? on_pull_progress : NULL, &report, lim,
                  cancellable, error))
    return FALSE;
  if (total != AB_PROGRESS_TOTAL_UNKNOWN)
    ab_event_progress (events, AB_PROGRESS_UNIT_BYTES, (guint64) total, total);
  return TRUE;
}

/* The commit first, then, bounded by its signed sizes, its objects. A
 * failure puts the remote ref that the first step wrote back as it was.
 * Only the second step reports progress: its counts start from zero. */
static gboolean
pull_http_in_two (OstreeRepo *repo, const char *url, const char *refspec, AbEventSink *events,
                  AbPullLimits *lim, GCancellable *cancellable, char **out_commit, GError **error)
{
  gboolean is_ref = !ab_is_commit_checksum (refspec);
  g_autofree char *remote_ref = g_strconcat (AB_CONTENT_REMOTE ":", refspec, NULL);
  g_autofree char *old = NULL;
  if (is_ref)
    (void) ostree_repo_resolve_rev (repo, remote_ref, TRUE, &old, NULL);
  g_autofree char *commit = NULL;
  gint64 total = AB_PROGRESS_TOTAL_UNKNOWN;
  if (ab_content_check_free_space (ostree_repo_get_dfd (repo), 0, lim->min_free_bytes,
                                   "the pull", error)
      && pull_http (repo, url, refspec, TRUE, NULL, NULL, lim, cancellable, error)
      && pulled_commit (repo, refspec, &commit, error)
      && apply_signed_sizes (repo, commit, lim, &total, error)
      && pull_objects (repo, url, commit, events, total, lim, cancellable, error))
    {
      *out_commit = g_steal_pointer (&commit);
      return TRUE;
    }
  if (is_ref)
    (void) ostree_repo_set_ref_immediate (repo, AB_CONTENT_REMOTE, refspec, old, NULL, NULL);
  return FALSE;
}

gboolean
ab_content_pull (OstreeRepo *repo, const char *sysroot_root, const char *source, const char *refspec,
                 AbEventSink *events, const char *tls_ca_path,
                 const AbPullLimits *limits, GCancellable *cancellable, char **out_commit,
                 GError **error)
{
  AbPullLimits lim;
  if (limits != NULL)
    lim = *limits;
  else
    ab_content_limits_init (&lim, NULL);
  if (lim.deadline_us == 0)
    lim.deadline_us = g_get_monotonic_time () + (gint64) lim.max_pull_time_sec * G_USEC_PER_SEC;
  g_autofree char *url = source_to_url (source, error);
  if (url == NULL || !configure_remote (repo, sysroot_root, url, tls_ca_path, error))
    return FALSE;
  gboolean ok;
  if (g_str_has_prefix (url, "file://"))
    ok = import_local (repo, url, source, refspec, events, &lim, cancellable, out_commit,
                       error);
  else
    {
      ab_event_phase (events, "download");
      keep_tmp_in_repo (sysroot_root);
      ok = pull_http_in_two (repo, url, refspec, events, &lim, cancellable, out_commit, error);
    }
  return ok || explain_refusal (sysroot_root, error);
}

gboolean
ab_content_resolve (OstreeRepo *repo, const char *refspec, char **out_commit, GError **error)
{
  g_autoptr(GError) local = NULL;
  if (!ostree_repo_resolve_rev (repo, refspec, FALSE, out_commit, &local))
    {
      g_set_error (error, AB_CONTENT_ERROR, AB_CONTENT_ERROR_NOT_FOUND,
                   "%s is not in the local repo; give --from=URL|PATH to pull it", refspec);
      return FALSE;
    }
  return TRUE;
}

gboolean
ab_content_verify (OstreeRepo *repo, const char *sysroot_root, const char *commit,
                   GError **error)
{
  /* A commit this process just imported had its signature checked over
   * its very bytes with the remote's keys, configured from the same
   * trusted keys moments before: no second gpg run. */
  if (ab_meta_cache_verified (ab_import_meta_cache (repo), commit, AB_CONTENT_REMOTE))
    return TRUE;
  g_autofree char *keypath = trusted_keypath (sysroot_root, error);
  if (keypath == NULL)
    return FALSE;
  /* The remote carries the current trusted key list even when nothing was
   * pulled (commit already in the repo). */
  g_autofree char *url = NULL;
  if (!ostree_repo_remote_get_url (repo, AB_CONTENT_REMOTE, &url, NULL))
    url = g_strdup ("file:///nonexistent");
  if (!configure_remote (repo, sysroot_root, url, NULL, error))
    return FALSE;
  g_autoptr(GError) local = NULL;
  g_autoptr(OstreeGpgVerifyResult) result =
      ostree_repo_verify_commit_for_remote (repo, commit, AB_CONTENT_REMOTE, NULL, &local);
  if (result == NULL || !ostree_gpg_verify_result_require_valid_signature (result, &local))
    {
      set_verify_error (error, commit, local);
      return explain_refusal (sysroot_root, error);
    }
  return TRUE;
}

char *
ab_content_commit_meta (OstreeRepo *repo, const char *commit, const char *key, GError **error)
{
  g_autoptr(GVariant) v = NULL;
  if (commit == NULL || !ostree_repo_load_variant (repo, OSTREE_OBJECT_TYPE_COMMIT, commit, &v, error))
    return NULL;
  g_autoptr(GVariant) metadata = g_variant_get_child_value (v, 0);
  char *value = NULL;
  if (!g_variant_lookup (metadata, key, "s", &value))
    return NULL;
  return value;
}

gboolean
ab_content_check_os (OstreeRepo *repo, const char *commit, const char *device_os, char **out_os,
                     GError **error)
{
  g_autoptr(GVariant) v = NULL;
  *out_os = NULL;
  if (!ostree_repo_load_variant (repo, OSTREE_OBJECT_TYPE_COMMIT, commit, &v, error))
    return FALSE;
  g_autoptr(GVariant) metadata = g_variant_get_child_value (v, 0);
  g_autoptr(GVariant) os = g_variant_lookup_value (metadata, AB_CONTENT_META_OS, NULL);
  if (os == NULL)
    return TRUE;
  if (!g_variant_is_of_type (os, G_VARIANT_TYPE_STRING))
    {
      g_set_error (error, AB_CONTENT_ERROR, AB_CONTENT_ERROR_WRONG_OS,
                   "Refusing commit %s: its " AB_CONTENT_META_OS " metadata is not a string, so "
                   "the OS it is made for is unknown (this device runs \"%s\"); publish it "
                   "again with abdeploy publish commit --os=%s", commit, device_os, device_os);
      return FALSE;
    }
  *out_os = g_variant_dup_string (os, NULL);
  if (g_str_equal (*out_os, device_os))
    return TRUE;
  g_set_error (error, AB_CONTENT_ERROR, AB_CONTENT_ERROR_WRONG_OS,
               "Refusing commit %s: it is made for OS \"%s\", and this device runs \"%s\" "
               "(abdeploy status, OS:); install a release published for \"%s\" "
               "(abdeploy publish commit --os=%s), or check the device's source URL and "
               "channel", commit, *out_os, device_os, device_os, device_os);
  return FALSE;
}

char *
ab_content_commit_version (OstreeRepo *repo, const char *commit, GError **error)
{
  return ab_content_commit_meta (repo, commit, OSTREE_COMMIT_META_KEY_VERSION, error);
}

static void
checkout_options_init (OstreeRepoCheckoutAtOptions *opts)
{
  memset (opts, 0, sizeof *opts);
  opts->mode = OSTREE_REPO_CHECKOUT_MODE_NONE;
  opts->overwrite_mode = OSTREE_REPO_CHECKOUT_OVERWRITE_NONE;
  /* Hardlinks only: a copy would silently double the disk use. */
  opts->no_copy_fallback = TRUE;
  opts->enable_fsync = FALSE; /* the caller syncs the file system once */
}

/* Directories this deep ("/usr/lib/NAME") are checked out as separate
 * units, spread over the workers, after the skeleton above them. */
#define UNIT_DEPTH 3

/* How often a checkout reports its file count (and the JSON lines or bar
 * redraws that follow) at most. */
#define CHECKOUT_REPORT_US (G_USEC_PER_SEC / 10)

typedef struct
{
  int repo_dfd;
  const char *commit;
  int dfd;
  const char *path;
  GPtrArray *units; /* "/usr/lib/NAME" paths, skipped by the skeleton */
  gboolean direct;  /* bare repo: hardlinked by direct_checkout_dir, not libostree */
  GPtrArray *unit_trees; /* direct: dirtree and dirmeta checksum of each unit */
  GPtrArray *unit_metas;
  AbMetaCache *meta_cache; /* the import's verified metadata, or NULL */
  gint next;
  GCancellable *cancellable;
  GMutex lock;
  GError *error;
  /* progress: files_done is counted by every thread (atomically), reported
   * by the calling thread only */
  AbEventSink *events;
  gint files_done;
  gint64 files_total;
  gint64 last_report_us;
  gint finished; /* workers that have ended (under LOCK; FINISHED_COND signalled) */
  GCond finished_cond;
} CheckoutJob;

static gboolean
count_dirtree_files (OstreeRepo *repo, const char *checksum, guint depth, guint64 *inout,
                     GError **error)
{
  g_autoptr(GVariant) tree = NULL;
  if (depth > 1024)
    {
      g_set_error (error, AB_CONTENT_ERROR, AB_CONTENT_ERROR_FAILED,
                   "Counting the files of a tree: directories nested too deep");
      return FALSE;
    }
  if (!ostree_repo_load_variant (repo, OSTREE_OBJECT_TYPE_DIR_TREE, checksum, &tree, error))
    return FALSE;
  g_autoptr(GVariant) files = g_variant_get_child_value (tree, 0);
  g_autoptr(GVariant) dirs = g_variant_get_child_value (tree, 1);
  *inout += g_variant_n_children (files);
  for (gsize i = 0; i < g_variant_n_children (dirs); i++)
    {
      g_autoptr(GVariant) csum = NULL;
      g_variant_get_child (dirs, i, "(&s@ay@ay)", NULL, &csum, NULL);
      g_autofree char *hex = ostree_checksum_from_bytes_v (csum);
      if (!count_dirtree_files (repo, hex, depth + 1, inout, error))
        return FALSE;
    }
  return TRUE;
}

gboolean
ab_content_count_files (OstreeRepo *repo, const char *commit, guint64 *out_files,
                        GError **error)
{
  g_autoptr(GVariant) v = NULL;
  if (ab_meta_cache_files (ab_import_meta_cache (repo), commit, out_files))
    return TRUE;
  if (!ostree_repo_load_variant (repo, OSTREE_OBJECT_TYPE_COMMIT, commit, &v, error))
    return FALSE;
  g_autoptr(GVariant) root = g_variant_get_child_value (v, 6);
  g_autofree char *hex = ostree_checksum_from_bytes_v (root);
  *out_files = 0;
  return count_dirtree_files (repo, hex, 0, out_files, error);
}

/* Reports the files checked out so far: at most every CHECKOUT_REPORT_US
 * unless FORCE. Calling thread only. */
static void
report_files (CheckoutJob *job, gboolean force)
{
  gint64 now = g_get_monotonic_time ();
  if (job->events == NULL || (!force && now - job->last_report_us < CHECKOUT_REPORT_US))
    return;
  job->last_report_us = now;
  ab_event_progress (job->events, AB_PROGRESS_UNIT_FILES,
                     (guint64) g_atomic_int_get (&job->files_done), job->files_total);
}

/* The filter of the unit checkouts: counts files, checks out everything. */
static OstreeRepoCheckoutFilterResult
count_file (OstreeRepo *repo, const char *path, struct stat *st, gpointer user_data)
{
  CheckoutJob *job = user_data;
  if (!S_ISDIR (st->st_mode))
    g_atomic_int_inc (&job->files_done);
  return OSTREE_REPO_CHECKOUT_FILTER_ALLOW;
}

static OstreeRepoCheckoutFilterResult
collect_units (OstreeRepo *repo, const char *path, struct stat *st, gpointer user_data)
{
  CheckoutJob *job = user_data;
  if (!S_ISDIR (st->st_mode))
    {
      /* the skeleton pass runs on the calling thread: it may report */
      g_atomic_int_inc (&job->files_done);
      report_files (job, FALSE);
      return OSTREE_REPO_CHECKOUT_FILTER_ALLOW;
    }
  /* Directory paths come with a trailing slash: "/usr/lib/NAME/". */
  g_autofree char *dir = g_strdup (path);
  gsize len = strlen (dir);
  while (len > 1 && dir[len - 1] == '/')
    dir[--len] = '\0';
  guint depth = 0;
  for (const char *p = dir; *p; p++)
    depth += *p == '/';
  if (depth < UNIT_DEPTH)
    return OSTREE_REPO_CHECKOUT_FILTER_ALLOW;
  g_ptr_array_add (job->units, g_steal_pointer (&dir));
  return OSTREE_REPO_CHECKOUT_FILTER_SKIP;
}

/* libostree reports a failed write as G_IO_ERROR_FAILED ("write: Input/output
 * error"): GIO has no code for EIO. libglnx's throw helpers leave errno as
 * the failed call set it, so right after libostree returned, ERRSV (errno,
 * read in the same thread) tells a failing device apart. When libostree
 * cleaned up after the failure (a static delta aborts its transaction),
 * errno is gone and its message is the only witness, read by the one
 * translation of libostree's words (ab-ostree-error.h). Either way the error becomes
 * AB_FS_ERROR_IO with the same message. */
void
ab_content_type_disk_error (GError **error, int errsv)
{
  if (error == NULL || *error == NULL || !g_error_matches (*error, G_IO_ERROR, G_IO_ERROR_FAILED))
    return;
  if (ab_fs_error_from_errno (errsv) != AB_FS_ERROR_IO
      && ab_ostree_failure_of (*error) != AB_OSTREE_FAILURE_IO)
    return;
  (*error)->domain = AB_FS_ERROR;
  (*error)->code = AB_FS_ERROR_IO;
}

/* ---- the direct checkout of a bare repo ----
 * A bare repo's file objects are the files themselves (content, owner,
 * mode, xattrs): a hardlink checkout is one linkat() per file. The tree is
 * walked from the (already verified) dirtree and dirmeta objects as
 * libostree's checkout does in OSTREE_REPO_CHECKOUT_MODE_NONE: each
 * directory is made 0700, gets its owner and xattrs, is filled, then gets
 * its mode and the OSTree timestamp (mtime 0). Names are single path
 * components, so nothing lands outside the new tree. */

static gboolean
valid_name (const char *name, GError **error)
{
  if (*name != '\0' && strchr (name, '/') == NULL && strcmp (name, ".") != 0
      && strcmp (name, "..") != 0)
    return TRUE;
  g_set_error (error, AB_CONTENT_ERROR, AB_CONTENT_ERROR_CORRUPTED,
               "The commit holds an invalid file name \"%s\"", name);
  return FALSE;
}

/* Gives the new directory FD its owner and extended attributes. */
static gboolean
apply_dirmeta_owner (int fd, GVariant *meta, guint32 *out_mode, GError **error)
{
  guint32 uid, gid, mode;
  g_autoptr(GVariant) xattrs = NULL;
  g_variant_get (meta, "(uuu@a(ayay))", &uid, &gid, &mode, &xattrs);
  *out_mode = GUINT32_FROM_BE (mode);
  if (fchown (fd, GUINT32_FROM_BE (uid), GUINT32_FROM_BE (gid)) < 0)
    return ab_throw_errno_prefix (error, errno, "Setting the owner of a directory");
  for (gsize i = 0; i < g_variant_n_children (xattrs); i++)
    {
      const char *name;
      g_autoptr(GVariant) value = NULL;
      g_variant_get_child (xattrs, i, "(^&ay@ay)", &name, &value);
      if (fsetxattr (fd, name, g_variant_get_data (value), g_variant_get_size (value), 0) < 0)
        return ab_throw_errno_prefix (error, errno, "Setting %s on a directory", name);
    }
  return TRUE;
}

/* Hardlinks the files of TREE into FD. */
static gboolean
link_files (CheckoutJob *job, GVariant *tree, int fd, gboolean report, GError **error)
{
  g_autoptr(GVariant) files = g_variant_get_child_value (tree, 0);
  for (gsize i = 0; i < g_variant_n_children (files); i++)
    {
      const char *name;
      g_autoptr(GVariant) csum = NULL;
      g_variant_get_child (files, i, "(&s@ay)", &name, &csum);
      g_autofree char *hex = ostree_checksum_from_bytes_v (csum);
      char rel[sizeof "objects/xx/" + 62 + sizeof ".file"];
      g_snprintf (rel, sizeof rel, "objects/%.2s/%s.file", hex, hex + 2);
      if (!valid_name (name, error))
        return FALSE;
      if (linkat (job->repo_dfd, rel, fd, name, 0) < 0)
        return ab_throw_errno_prefix (error, errno, "Linking %s", name);
      g_atomic_int_inc (&job->files_done);
      if (report)
        report_files (job, FALSE);
    }
  return TRUE;
}

/* A dirtree or dirmeta: as the import verified it, else from the repo. */
static gboolean
load_meta (CheckoutJob *job, OstreeRepo *repo, OstreeObjectType type, const char *checksum,
           GVariant **out, GError **error)
{
  if (job->meta_cache != NULL
      && (*out = ab_meta_cache_lookup (job->meta_cache, type, checksum)) != NULL)
    return TRUE;
  return ostree_repo_load_variant (repo, type, checksum, out, error);
}

static gboolean direct_checkout_dir (CheckoutJob *job, OstreeRepo *repo, const char *tree_hex,
                                     const char *meta_hex, int parent, const char *name,
                                     const char *path, gboolean skeleton, GError **error);

/* The subdirectories of TREE: checked out, or, at UNIT_DEPTH in the
 * skeleton pass, queued as units for the workers. */
static gboolean
checkout_subdirs (CheckoutJob *job, OstreeRepo *repo, GVariant *tree, int fd, const char *path,
                  gboolean skeleton, GError **error)
{
  g_autoptr(GVariant) dirs = g_variant_get_child_value (tree, 1);
  guint depth = 1;
  for (const char *p = path; *p; p++)
    depth += *p == '/';
  for (gsize i = 0; i < g_variant_n_children (dirs); i++)
    {
      const char *name;
      g_autoptr(GVariant) t = NULL, m = NULL;
      g_variant_get_child (dirs, i, "(&s@ay@ay)", &name, &t, &m);
      g_autofree char *sub = g_strconcat (path, "/", name, NULL);
      g_autofree char *th = ostree_checksum_from_bytes_v (t);
      g_autofree char *mh = ostree_checksum_from_bytes_v (m);
      if (!valid_name (name, error))
        return FALSE;
      if (skeleton && depth >= UNIT_DEPTH)
        {
          g_ptr_array_add (job->units, g_steal_pointer (&sub));
          g_ptr_array_add (job->unit_trees, g_steal_pointer (&th));
          g_ptr_array_add (job->unit_metas, g_steal_pointer (&mh));
          continue;
        }
      if (!direct_checkout_dir (job, repo, th, mh, fd, name, sub, skeleton, error))
        return FALSE;
    }
  return TRUE;
}

/* Makes directory NAME in PARENT from TREE_HEX/META_HEX and fills it.
 * PATH: its path in the commit ("" for the root). */
static gboolean
direct_checkout_dir (CheckoutJob *job, OstreeRepo *repo, const char *tree_hex,
                     const char *meta_hex, int parent, const char *name, const char *path,
                     gboolean skeleton, GError **error)
{
  g_autoptr(GVariant) tree = NULL, meta = NULL;
  guint32 mode = 0;
  if (g_cancellable_set_error_if_cancelled (job->cancellable, error)
      || !load_meta (job, repo, OSTREE_OBJECT_TYPE_DIR_TREE, tree_hex, &tree, error)
      || !load_meta (job, repo, OSTREE_OBJECT_TYPE_DIR_META, meta_hex, &meta, error))
    return FALSE;
  if (mkdirat (parent, name, 0700) < 0)
    return ab_throw_errno_prefix (error, errno, "Creating %s/", *path ? path : "/");
  ab_autofd fd = openat (parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return ab_throw_errno_prefix (error, errno, "Opening %s/", path);
  const struct timespec epoch[2] = { { OSTREE_TIMESTAMP, 0 }, { OSTREE_TIMESTAMP, 0 } };
  if (!apply_dirmeta_owner (fd, meta, &mode, error)
      || !link_files (job, tree, fd, skeleton, error)
      || !checkout_subdirs (job, repo, tree, fd, path, skeleton, error))
    return FALSE;
  if (fchmod (fd, mode & 07777) < 0 || futimens (fd, epoch) < 0)
    return ab_throw_errno_prefix (error, errno, "Setting the mode of %s/", path);
  return TRUE;
}

/* The root dirtree and dirmeta of COMMIT. */
static gboolean
commit_root (OstreeRepo *repo, const char *commit, char **out_tree, char **out_meta,
             GError **error)
{
  g_autoptr(GVariant) v = NULL;
  if (!ostree_repo_load_variant (repo, OSTREE_OBJECT_TYPE_COMMIT, commit, &v, error))
    return FALSE;
  g_autoptr(GVariant) t = g_variant_get_child_value (v, 6);
  g_autoptr(GVariant) m = g_variant_get_child_value (v, 7);
  *out_tree = ostree_checksum_from_bytes_v (t);
  *out_meta = ostree_checksum_from_bytes_v (m);
  return TRUE;
}

/* Files and directories below the cached dirtree CHECKSUM; 0 when a part
 * of it is not cached (the unit then just sorts last). */
static guint64
cached_tree_weight (AbMetaCache *cache, const char *checksum, guint depth)
{
  g_autoptr(GVariant) tree = ab_meta_cache_lookup (cache, OSTREE_OBJECT_TYPE_DIR_TREE, checksum);
  if (tree == NULL || depth > 1024)
    return 0;
  g_autoptr(GVariant) files = g_variant_get_child_value (tree, 0);
  g_autoptr(GVariant) dirs = g_variant_get_child_value (tree, 1);
  guint64 n = g_variant_n_children (files) + g_variant_n_children (dirs);
  for (gsize i = 0; i < g_variant_n_children (dirs); i++)
    {
      g_autoptr(GVariant) csum = NULL;
      g_variant_get_child (dirs, i, "(&s@ay@ay)", NULL, &csum, NULL);
      g_autofree char *hex = ostree_checksum_from_bytes_v (csum);
      n += cached_tree_weight (cache, hex, depth + 1);
    }
  return n;
}

typedef struct
{
  guint64 weight;
  char *unit, *tree, *meta;
} UnitOrder;

static gint
heavier_first (gconstpointer a, gconstpointer b, gpointer unused)
{
  guint64 x = ((const UnitOrder *) a)->weight, y = ((const UnitOrder *) b)->weight;
  return x < y ? 1 : x > y ? -1 : 0;
}

/* The largest units first, so that no worker starts a big one last while
 * the others run out of work (the workers take units in order). Only the
 * order changes: every unit is checked out exactly as before. */
static void
sort_units (CheckoutJob *job)
{
  guint n = job->units->len;
  if (job->meta_cache == NULL || n < 2)
    return;
  g_autofree UnitOrder *o = g_new (UnitOrder, n);
  for (guint i = 0; i < n; i++)
    o[i] = (UnitOrder) { cached_tree_weight (job->meta_cache, job->unit_trees->pdata[i], 0),
                         job->units->pdata[i], job->unit_trees->pdata[i],
                         job->unit_metas->pdata[i] };
  g_qsort_with_data (o, (gint) n, sizeof *o, heavier_first, NULL);
  for (guint i = 0; i < n; i++)
    {
      job->units->pdata[i] = o[i].unit;
      job->unit_trees->pdata[i] = o[i].tree;
      job->unit_metas->pdata[i] = o[i].meta;
    }
}

/* The skeleton pass of the direct checkout, on the calling thread. */
static gboolean
direct_checkout_skeleton (CheckoutJob *job, OstreeRepo *repo, GError **error)
{
  g_autofree char *tree = NULL, *meta = NULL;
  if (!commit_root (repo, job->commit, &tree, &meta, error)
      || !direct_checkout_dir (job, repo, tree, meta, job->dfd, job->path, "", TRUE, error))
    return FALSE;
  sort_units (job);
  return TRUE;
}

/* One unit of the direct checkout: its parent was made by the skeleton. */
static gboolean
direct_checkout_unit (CheckoutJob *job, OstreeRepo *repo, guint i, GError **error)
{
  const char *unit = job->units->pdata[i];
  g_autofree char *dest = g_strconcat (job->path, unit, NULL);
  const char *name = NULL;
  ab_autofd parent = ab_fs_open_parent_beneath (job->dfd, dest, &name,
                                                AB_FS_RESOLVE_NO_SYMLINKS, error);
  return parent >= 0
         && direct_checkout_dir (job, repo, job->unit_trees->pdata[i], job->unit_metas->pdata[i],
                                 parent, name, unit, FALSE, error);
}

static gboolean
checkout_unit (CheckoutJob *job, OstreeRepo *repo, const char *unit, GError **error)
{
  OstreeRepoCheckoutAtOptions opts;
  checkout_options_init (&opts);
  opts.subpath = unit;
  opts.filter = count_file;
  opts.filter_user_data = job;
  /* The unit's parent directories were made by the skeleton pass from the
   * same commit; they are opened beneath the new tree, following no link. */
  g_autofree char *dest = g_strconcat (job->path, unit, NULL);
  const char *name = NULL;
  ab_autofd parent = ab_fs_open_parent_beneath (job->dfd, dest, &name,
                                                AB_FS_RESOLVE_NO_SYMLINKS, error);
  if (parent < 0)
    return FALSE;
  if (ostree_repo_checkout_at (repo, &opts, parent, name, job->commit, job->cancellable, error))
    return TRUE;
  ab_content_type_disk_error (error, errno);
  return FALSE;
}

static gpointer
checkout_worker (gpointer data)
{
  CheckoutJob *job = data;
  GError *e = NULL;
  g_autoptr(OstreeRepo) repo = ostree_repo_open_at (job->repo_dfd, ".", job->cancellable, &e);
  for (guint i; repo != NULL && (i = (guint) g_atomic_int_add (&job->next, 1)) < job->units->len;)
    if (job->direct ? !direct_checkout_unit (job, repo, i, &e)
                    : !checkout_unit (job, repo, job->units->pdata[i], &e))
      break;
  if (e != NULL)
    {
      g_mutex_lock (&job->lock);
      if (job->error == NULL)
        job->error = g_steal_pointer (&e);
      g_clear_error (&e);
      /* stop the others */
      g_atomic_int_set (&job->next, (gint) job->units->len);
      g_mutex_unlock (&job->lock);
    }
  g_mutex_lock (&job->lock);
  job->finished++;
  g_cond_signal (&job->finished_cond);
  g_mutex_unlock (&job->lock);
  return NULL;
}

static gboolean
checkout_units (CheckoutJob *job, GError **error)
{
  guint n = MIN (CLAMP (g_get_num_processors (), 1, 8), job->units->len);
  g_autoptr(GPtrArray) threads = g_ptr_array_new ();
  for (guint i = 0; i < n; i++)
    g_ptr_array_add (threads, g_thread_new ("ab-checkout", checkout_worker, job));
  /* the workers only count; the calling thread reports, woken at once
   * when the last worker ends */
  g_mutex_lock (&job->lock);
  while (job->events != NULL && job->finished < (gint) n)
    {
      g_cond_wait_until (&job->finished_cond, &job->lock,
                         g_get_monotonic_time () + G_USEC_PER_SEC / 50);
      g_mutex_unlock (&job->lock);
      report_files (job, FALSE);
      g_mutex_lock (&job->lock);
    }
  g_mutex_unlock (&job->lock);
  for (guint i = 0; i < threads->len; i++)
    g_thread_join (threads->pdata[i]);
  if (job->error != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&job->error));
      return FALSE;
    }
  return TRUE;
}

/* Creating the units changed the times of their parent directories after
 * the skeleton pass had set them: set them back to the OSTree timestamp
 * (mtime 0), as a single-pass checkout leaves every directory. */
static gboolean
reset_unit_parent_times (CheckoutJob *job, GError **error)
{
  const struct timespec epoch[2] = { { OSTREE_TIMESTAMP, 0 }, { OSTREE_TIMESTAMP, 0 } };
  g_autoptr(GHashTable) done = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  for (guint i = 0; i < job->units->len; i++)
    {
      g_autofree char *dest = g_strconcat (job->path, job->units->pdata[i], NULL);
      char *parent = g_path_get_dirname (dest);
      if (!g_hash_table_add (done, parent))
        continue;
      const char *name = NULL;
      ab_autofd pfd = ab_fs_open_parent_beneath (job->dfd, parent, &name,
                                                 AB_FS_RESOLVE_NO_SYMLINKS, error);
      if (pfd < 0)
        return FALSE;
      if (utimensat (pfd, name, epoch, AT_SYMLINK_NOFOLLOW) < 0)
        return ab_throw_errno_prefix (error, errno, "Setting the time of %s", parent);
    }
  return TRUE;
}

/* The skeleton pass through libostree (a repo that is not bare). */
static gboolean
checkout_skeleton (CheckoutJob *job, OstreeRepo *repo, GError **error)
{
  OstreeRepoCheckoutAtOptions opts;
  checkout_options_init (&opts);
  opts.filter = collect_units;
  opts.filter_user_data = job;
  if (ostree_repo_checkout_at (repo, &opts, job->dfd, job->path, job->commit, job->cancellable,
                               error))
    return TRUE;
  ab_content_type_disk_error (error, errno);
  return FALSE;
}

gboolean
ab_content_checkout (OstreeRepo *repo, const char *commit, int dfd, const char *path,
                     AbEventSink *events, GCancellable *cancellable, GError **error)
{
  CheckoutJob job = { .repo_dfd = ostree_repo_get_dfd (repo), .commit = commit, .dfd = dfd,
                      .path = path, .cancellable = cancellable, .events = events,
                      .files_total = AB_PROGRESS_TOTAL_UNKNOWN };
  guint64 files = 0;
  if (events != NULL && ab_content_count_files (repo, commit, &files, NULL))
    job.files_total = (gint64) files;
  report_files (&job, TRUE);
  g_mutex_init (&job.lock);
  g_cond_init (&job.finished_cond);
  job.units = g_ptr_array_new_with_free_func (g_free);
  job.unit_trees = g_ptr_array_new_with_free_func (g_free);
  job.unit_metas = g_ptr_array_new_with_free_func (g_free);
  job.direct = ostree_repo_get_mode (repo) == OSTREE_REPO_MODE_BARE;
  job.meta_cache = ab_import_meta_cache (repo);
  gboolean ok = job.direct ? direct_checkout_skeleton (&job, repo, error)
                           : checkout_skeleton (&job, repo, error);
  ok = ok && checkout_units (&job, error) && reset_unit_parent_times (&job, error);
  g_ptr_array_unref (job.units);
  g_ptr_array_unref (job.unit_trees);
  g_ptr_array_unref (job.unit_metas);
  g_cond_clear (&job.finished_cond);
  g_mutex_clear (&job.lock);
  ab_import_drop_meta_cache (repo);
  if (!ok)
    {
      g_prefix_error (error, "Checking out %s: ", commit);
      return FALSE;
    }
  report_files (&job, TRUE);
  return TRUE;
}

gboolean
ab_content_set_ref (OstreeRepo *repo, const char *ref, const char *commit, GError **error)
{
  return ostree_repo_set_ref_immediate (repo, NULL, ref, commit, NULL, error);
}
