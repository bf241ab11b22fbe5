#include "config.h"
#include "ab-content.h"
#include "ab-fsutil.h"
#include "ab-import.h"
#include "ab-util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
trusted_keypath (int sysroot_dfd, GError **error)
{
  g_autofree char *dir_path = ab_fs_fd_path (sysroot_dfd, AB_TRUSTED_KEYS_DIR, NULL);
  g_autoptr(GDir) dir = dir_path ? g_dir_open (dir_path, 0, NULL) : NULL;
  g_autoptr(GPtrArray) files = g_ptr_array_new_with_free_func (g_free);
  const char *name;
  while (dir && (name = g_dir_read_name (dir)) != NULL)
    if (g_str_has_suffix (name, ".gpg") || g_str_has_suffix (name, ".asc"))
      g_ptr_array_add (files, g_build_filename (dir_path, name, NULL));
  if (files->len == 0)
    {
      g_set_error (error, AB_CONTENT_ERROR, AB_CONTENT_ERROR_VERIFY,
                   "No trusted keys: SYSROOT/" AB_TRUSTED_KEYS_DIR " holds no *.gpg or *.asc "
                   "file, so no signature can be verified. Install the publisher's public key "
                   "there (gpg --export KEYID > " AB_TRUSTED_KEYS_DIR "/publisher.gpg)");
      return NULL;
    }
  g_ptr_array_sort (files, compare_names);
  g_ptr_array_add (files, NULL);
  return g_strjoinv (";", (char **) files->pdata);
}

/* (Re)defines remote "abdeploy": URL, GPG verification on, trusted keys. */
static gboolean
configure_remote (OstreeRepo *repo, int sysroot_dfd, const char *url, const char *tls_ca_path,
                  GError **error)
{
  g_autofree char *keypath = trusted_keypath (sysroot_dfd, error);
  if (keypath == NULL)
    return FALSE;
  g_autoptr(GVariantBuilder) b = g_variant_builder_new (G_VARIANT_TYPE ("a{sv}"));
  g_variant_builder_add (b, "{sv}", "gpg-verify", g_variant_new_string ("true"));
  g_variant_builder_add (b, "{sv}", "gpg-verify-summary", g_variant_new_string ("false"));
  g_variant_builder_add (b, "{sv}", "gpgkeypath", g_variant_new_string (keypath));
  if (tls_ca_path != NULL)
    g_variant_builder_add (b, "{sv}", "tls-ca-path", g_variant_new_string (tls_ca_path));
  g_autoptr(GVariant) options = g_variant_ref_sink (g_variant_builder_end (b));
  if (!ostree_repo_remote_change (repo, NULL, OSTREE_REPO_REMOTE_CHANGE_DELETE_IF_EXISTS,
                                  AB_CONTENT_REMOTE, NULL, NULL, NULL, error)
      || !ostree_repo_remote_change (repo, NULL, OSTREE_REPO_REMOTE_CHANGE_ADD, AB_CONTENT_REMOTE,
                                     url, options, NULL, error))
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
      g_set_error (error, AB_CONTENT_ERROR, AB_CONTENT_ERROR_USAGE,
                   "Unsupported source \"%s\": use an http://, https:// or file:// URL "
                   "or the path of an OSTree repo", source);
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

/* libostree reports signature problems from inside a pull as plain
 * errors; classify them so the caller can exit 3, and drop its hint to
 * disable verification, which abdeploy does not offer. */
static gboolean
is_signature_error (const GError *e)
{
  if (e->domain == OSTREE_GPG_ERROR)
    return TRUE;
  return strstr (e->message, "GPG") != NULL || strstr (e->message, "signature") != NULL
         || strstr (e->message, "public key not found") != NULL;
}

static void
set_verify_error (GError **error, const char *commit, const GError *cause)
{
  const char *why = cause->message;
  if (strstr (why, "no signatures found") != NULL || g_error_matches (cause, OSTREE_GPG_ERROR, OSTREE_GPG_ERROR_NO_SIGNATURE))
    why = "the commit is not signed";
  else if (strstr (why, "public key not found") != NULL
           || g_error_matches (cause, OSTREE_GPG_ERROR, OSTREE_GPG_ERROR_MISSING_KEY))
    why = "it is signed by a key that is not trusted (not in SYSROOT/" AB_TRUSTED_KEYS_DIR ")";
  g_set_error (error, AB_CONTENT_ERROR, AB_CONTENT_ERROR_VERIFY,
               "Refusing commit %s: signature verification failed: %s. Sign the commit with a "
               "key whose public part is in SYSROOT/" AB_TRUSTED_KEYS_DIR
               " (ostree commit --gpg-sign=KEYID), or install the publisher's public key there",
               commit ? commit : "", why);
}

/* Sets ERROR from the failure CAUSE of fetching REFSPEC (COMMIT once
 * resolved) from SOURCE; always returns FALSE. */
static gboolean
set_pull_error (GError **error, const char *refspec, const char *source, const char *commit,
                const GError *cause)
{
  if (is_signature_error (cause))
    set_verify_error (error, commit, cause);
  else if (strstr (cause->message, "Corrupted") != NULL)
    g_set_error (error, AB_CONTENT_ERROR, AB_CONTENT_ERROR_FAILED,
                 "Pulling %s from %s failed: the source holds a corrupted object (%s). "
                 "The medium or server copy is damaged or was tampered with; nothing was "
                 "installed. Fetch a fresh copy of the update and try again",
                 refspec, source, cause->message);
  else
    g_set_error (error, AB_CONTENT_ERROR, AB_CONTENT_ERROR_FAILED,
                 "Pulling %s from %s failed: %s", refspec, source, cause->message);
  return FALSE;
}

typedef struct
{
  AbProgressFunc func;
  gpointer data;
} ProgressRelay;

static void
on_pull_progress (OstreeAsyncProgress *progress, gpointer user_data)
{
  ProgressRelay *relay = user_data;
  guint fetched = 0, requested = 0;
  guint64 bytes = 0;
  ostree_async_progress_get (progress, "fetched", "u", &fetched, "requested", "u", &requested,
                             "bytes-transferred", "t", &bytes, NULL);
  relay->func (fetched, requested, bytes, relay->data);
}

/* Pulls are untrusted: libostree checksums every object it stores. (Local
 * sources go through ab-import, which imports untrusted as well: a trusted
 * local import would take objects unchecked, and a tampered medium could
 * pass a validly signed commit with altered files.) */
static GVariant *
pull_options (const char *refspec)
{
  const char *refs[] = { refspec, NULL };
  g_autoptr(GVariantBuilder) b = g_variant_builder_new (G_VARIANT_TYPE ("a{sv}"));
  g_variant_builder_add (b, "{sv}", "refs", g_variant_new_strv (refs, -1));
  g_variant_builder_add (b, "{sv}", "gpg-verify", g_variant_new_boolean (TRUE));
  g_variant_builder_add (b, "{sv}", "gpg-verify-summary", g_variant_new_boolean (FALSE));
  g_variant_builder_add (b, "{sv}", "flags", g_variant_new_int32 (OSTREE_REPO_PULL_FLAGS_UNTRUSTED));
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

/* A local source: imported by ab-import, signature first, on every CPU. */
static gboolean
import_local (OstreeRepo *repo, const char *url, const char *source, const char *refspec,
              AbProgressFunc progress, gpointer user_data, GCancellable *cancellable,
              char **out_commit, GError **error)
{
  g_autoptr(GFile) dir = g_file_new_for_uri (url);
  g_autoptr(OstreeRepo) src = ostree_repo_new (dir);
  g_autofree char *commit = NULL;
  g_autoptr(GError) local = NULL;
  if (!ostree_repo_open (src, cancellable, &local)
      || !ostree_repo_resolve_rev (src, refspec, FALSE, &commit, &local))
    return set_pull_error (error, refspec, source, refspec, local);
  if (!ab_import_commit (repo, AB_CONTENT_REMOTE, src, commit, 0, progress, user_data,
                         cancellable, &local))
    return set_pull_error (error, refspec, source, commit, local);
  if (!ab_is_commit_checksum (refspec)
      && !ostree_repo_set_ref_immediate (repo, AB_CONTENT_REMOTE, refspec, commit, NULL, error))
    return FALSE;
  *out_commit = g_steal_pointer (&commit);
  return TRUE;
}

gboolean
ab_content_pull (OstreeRepo *repo, int sysroot_dfd, const char *source, const char *refspec,
                 AbProgressFunc progress, gpointer user_data, const char *tls_ca_path,
                 GCancellable *cancellable, char **out_commit, GError **error)
{
  g_autofree char *url = source_to_url (source, error);
  if (url == NULL || !configure_remote (repo, sysroot_dfd, url, tls_ca_path, error))
    return FALSE;
  if (g_str_has_prefix (url, "file://"))
    return import_local (repo, url, source, refspec, progress, user_data,
                         cancellable, out_commit, error);
  drop_summary_cache (repo);
  g_autoptr(GVariant) options = pull_options (refspec);
  ProgressRelay relay = { progress, user_data };
  g_autoptr(OstreeAsyncProgress) async_progress = NULL;
  if (progress != NULL)
    async_progress = ostree_async_progress_new_and_connect (on_pull_progress, &relay);
  g_autoptr(GError) local = NULL;
  gboolean ok = ostree_repo_pull_with_options (repo, AB_CONTENT_REMOTE, options, async_progress,
                                               cancellable, &local);
  if (async_progress != NULL)
    ostree_async_progress_finish (async_progress);
  if (!ok)
    return set_pull_error (error, refspec, source, refspec, local);
  if (ab_is_commit_checksum (refspec))
    {
      *out_commit = g_strdup (refspec);
      return TRUE;
    }
  g_autofree char *remote_ref = g_strconcat (AB_CONTENT_REMOTE ":", refspec, NULL);
  return ab_content_resolve (repo, remote_ref, out_commit, error);
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
ab_content_verify (OstreeRepo *repo, int sysroot_dfd, const char *commit, GError **error)
{
  g_autofree char *keypath = trusted_keypath (sysroot_dfd, error);
  if (keypath == NULL)
    return FALSE;
  /* The remote carries the current trusted key list even when nothing was
   * pulled (commit already in the repo). */
  g_autofree char *url = NULL;
  if (!ostree_repo_remote_get_url (repo, AB_CONTENT_REMOTE, &url, NULL))
    url = g_strdup ("file:///nonexistent");
  if (!configure_remote (repo, sysroot_dfd, url, NULL, error))
    return FALSE;
  g_autoptr(GError) local = NULL;
  g_autoptr(OstreeGpgVerifyResult) result =
      ostree_repo_verify_commit_for_remote (repo, commit, AB_CONTENT_REMOTE, NULL, &local);
  if (result == NULL || !ostree_gpg_verify_result_require_valid_signature (result, &local))
    {
      set_verify_error (error, commit, local);
      return FALSE;
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

typedef struct
{
  int repo_dfd;
  const char *commit;
  int dfd;
  const char *path;
  GPtrArray *units; /* "/usr/lib/NAME" paths, skipped by the skeleton */
  gint next;
  GCancellable *cancellable;
  GMutex lock;
  GError *error;
} CheckoutJob;

static OstreeRepoCheckoutFilterResult
collect_units (OstreeRepo *repo, const char *path, struct stat *st, gpointer user_data)
{
  CheckoutJob *job = user_data;
  if (!S_ISDIR (st->st_mode))
    return OSTREE_REPO_CHECKOUT_FILTER_ALLOW;
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

static gboolean
checkout_unit (CheckoutJob *job, OstreeRepo *repo, const char *unit, GError **error)
{
  OstreeRepoCheckoutAtOptions opts;
  checkout_options_init (&opts);
  opts.subpath = unit;
  g_autofree char *dest = g_strconcat (job->path, unit, NULL);
  return ostree_repo_checkout_at (repo, &opts, job->dfd, dest, job->commit, job->cancellable,
                                  error);
}

static gpointer
checkout_worker (gpointer data)
{
  CheckoutJob *job = data;
  GError *e = NULL;
  g_autoptr(OstreeRepo) repo = ostree_repo_open_at (job->repo_dfd, ".", job->cancellable, &e);
  for (guint i; repo != NULL && (i = (guint) g_atomic_int_add (&job->next, 1)) < job->units->len;)
    if (!checkout_unit (job, repo, job->units->pdata[i], &e))
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
  return NULL;
}

static gboolean
checkout_units (CheckoutJob *job, GError **error)
{
  guint n = MIN (CLAMP (g_get_num_processors (), 1, 8), job->units->len);
  g_autoptr(GPtrArray) threads = g_ptr_array_new ();
  for (guint i = 0; i < n; i++)
    g_ptr_array_add (threads, g_thread_new ("ab-checkout", checkout_worker, job));
  for (guint i = 0; i < threads->len; i++)
    g_thread_join (threads->pdata[i]);
  if (job->error != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&job->error));
      return FALSE;
    }
  return TRUE;
}

gboolean
ab_content_checkout (OstreeRepo *repo, const char *commit, int dfd, const char *path,
                     GCancellable *cancellable, GError **error)
{
  CheckoutJob job = { .repo_dfd = ostree_repo_get_dfd (repo), .commit = commit, .dfd = dfd,
                      .path = path, .cancellable = cancellable };
  g_mutex_init (&job.lock);
  job.units = g_ptr_array_new_with_free_func (g_free);
  OstreeRepoCheckoutAtOptions opts;
  checkout_options_init (&opts);
  opts.filter = collect_units;
  opts.filter_user_data = &job;
  gboolean ok = ostree_repo_checkout_at (repo, &opts, dfd, path, commit, cancellable, error)
                && checkout_units (&job, error);
  g_ptr_array_unref (job.units);
  g_mutex_clear (&job.lock);
  if (!ok)
    g_prefix_error (error, "Checking out %s: ", commit);
  return ok;
}

gboolean
ab_content_set_ref (OstreeRepo *repo, const char *ref, const char *commit, GError **error)
{
  return ostree_repo_set_ref_immediate (repo, NULL, ref, commit, NULL, error);
}
