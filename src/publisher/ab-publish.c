/* Publisher, common parts: the error domain, argument checks, the session
 * (open repo and publisher lock) and small helpers shared by the commands. */
#include "config.h"
#include "ab-publish-private.h"
#include "ab-sha256.h"
#include "ab-util.h"
#include "ab-fsutil.h"
#include "ab-version.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>

#define LOCK_PATH "abdeploy/publish.lock"
#define MAX_VERSION_LEN 128

G_DEFINE_QUARK (ab-publish-error-quark, ab_publish_error)

/* ---- argument checks ---- */

gboolean
ab_publish_usage (GError **error, const char *message)
{
  g_set_error_literal (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_USAGE, message);
  return FALSE;
}

/* Versions name refs: [A-Za-z0-9][A-Za-z0-9._-]*, or a SemVer version with
 * build metadata (its '+' is the one byte a ref cannot hold). */
gboolean
ab_publish_check_version (const char *version, GError **error)
{
  gboolean ok = version != NULL && g_ascii_isalnum (version[0])
                && strlen (version) <= MAX_VERSION_LEN;
  for (const char *c = version; ok && *c; c++)
    ok = g_ascii_isalnum (*c) || *c == '.' || *c == '_' || *c == '-' || *c == '+';
  if (ok && strchr (version, '+') != NULL && !ab_version_is_semver (version))
    {
      g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_USAGE,
                   "Invalid version \"%s\": '+' starts SemVer build metadata, so the version "
                   "must be SemVer 2.0.0 (for example 1.2.0+build.7)", version);
      return FALSE;
    }
  if (!ok)
    {
      g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_USAGE,
                   "Invalid version \"%s\": use letters, digits, '.', '_' and '-', starting "
                   "with a letter or digit, and '+' only before SemVer build metadata "
                   "(for example 1.2.0 or 1.2.0+build.7)", version ? version : "");
      return FALSE;
    }
  return TRUE;
}

gboolean
ab_publish_check_channel (const char *channel, GError **error)
{
  if (ab_manifest_channel_name_is_valid (channel))
    return TRUE;
  g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_USAGE,
               "Invalid channel name \"%s\": use letters, digits, '.', '_' and '-', starting "
               "with a letter or digit (for example stable)", channel ? channel : "");
  return FALSE;
}

gboolean
ab_publish_check_rollout (guint rollout, GError **error)
{
  if (rollout > 100)
    return ab_publish_usage (error, "The rollout is a percentage from 1 to 100");
  return TRUE;
}

/* The '+' of build metadata is written '_' (SemVer has no '_', so two
 * SemVer versions never share a ref; a version that is not SemVer and
 * would share one is caught by check_ref_version()). */
char *
ab_publish_version_ref (const char *version)
{
  char *ref = g_strconcat (AB_PUBLISH_VERSION_REF_PREFIX, version, NULL);
  g_strdelimit (ref + strlen (AB_PUBLISH_VERSION_REF_PREFIX), "+", '_');
  return ref;
}

/* ---- session: the open repo and the publisher lock ---- */

void
ab_publish_session_clear (AbPublishSession *s)
{
  g_clear_object (&s->repo);
  if (s->lock_fd >= 0)
    (void) close (s->lock_fd);
  s->lock_fd = -1;
}

/* Waits for other publishers of the repo; the lock lasts as long as the session. */
static gboolean
session_lock (AbPublishSession *s, GError **error)
{
  if (!ab_fs_mkdir_p_at (s->dfd, "abdeploy", 0755, error))
    return FALSE;
  s->lock_fd = openat (s->dfd, LOCK_PATH, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  gboolean locked = s->lock_fd >= 0;
  while (locked && flock (s->lock_fd, LOCK_EX) < 0)
    locked = errno == EINTR;
  if (!locked)
    g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_FAILED,
                 "Locking %s/" LOCK_PATH ": %s", s->p->repo, g_strerror (errno));
  return locked;
}

static gboolean
check_archive_mode (AbPublishSession *s, GError **error)
{
  if (ostree_repo_get_mode (s->repo) == OSTREE_REPO_MODE_ARCHIVE)
    return TRUE;
  g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_USAGE,
               "%s is not an archive-mode OSTree repo; publish into an archive repo (it is "
               "served as plain files), or give a new directory and abdeploy creates one",
               s->p->repo);
  return FALSE;
}

/* Opens P->repo (creating an archive repo when CREATE and it is missing)
 * and takes the publisher lock. */
gboolean
ab_publish_session_open (AbPublishSession *s, const AbPublisher *p, gboolean create, GError **error)
{
  s->p = p;
  if (p->repo == NULL || *p->repo == '\0')
    return ab_publish_usage (error, "Give the publisher's repo with --repo=DIR");
  g_autofree char *config = g_build_filename (p->repo, "config", NULL);
  gboolean exists = g_file_test (config, G_FILE_TEST_IS_REGULAR);
  if (!exists && !create)
    {
      g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_NOT_FOUND,
                   "%s is not an OSTree repo; create it with abdeploy publish commit "
                   "--repo=%s ...", p->repo, p->repo);
      return FALSE;
    }
  if (exists)
    s->repo = ostree_repo_open_at (AT_FDCWD, p->repo, NULL, error);
  else
    s->repo = ostree_repo_create_at (AT_FDCWD, p->repo, OSTREE_REPO_MODE_ARCHIVE, NULL, NULL,
                                     error);
  if (s->repo == NULL)
    {
      g_prefix_error (error, "%s the repo %s: ", exists ? "Opening" : "Creating", p->repo);
      return FALSE;
    }
  s->dfd = ostree_repo_get_dfd (s->repo);
  return check_archive_mode (s, error) && session_lock (s, error)
         && ab_publish_repair_channels (s, error);
}

/* Manifest writers: a signing key is mandatory and the expiry in range. */
gboolean
ab_publish_session_open_signer (AbPublishSession *s, const AbPublisher *p, GError **error)
{
  if (p->gpg_key == NULL || *p->gpg_key == '\0')
    return ab_publish_usage (error, "Channel manifests are always signed: give "
                                    "--gpg-sign=KEYID (and --gpg-homedir=DIR unless the key "
                                    "is in the default GnuPG home)");
  if (p->expires_days > AB_PUBLISH_MAX_EXPIRES_DAYS)
    return ab_publish_usage (error, "--expires-days must be from 1 to 3660");
  return ab_publish_session_open (s, p, FALSE, error);
}

char *
ab_publish_format_time (GDateTime *t)
{
  return g_date_time_format (t, "%Y-%m-%dT%H:%M:%SZ");
}

gboolean
ab_publish_conflict (GError **error, const char *version, const char *published, const char *where)
{
  g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_CONFLICT,
               "version %s is already published as commit %s (%s); published digests never "
               "change: bump the version", version, published, where);
  return FALSE;
}

gboolean
ab_publish_sha256_file (int dfd, const char *path, char **out_hex, guint64 *out_size,
                        GError **error)
{
  ab_autofd fd = openat (dfd, path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    {
      g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_FAILED, "Opening %s: %s", path,
                   g_strerror (errno));
      return FALSE;
    }
  g_autoptr(AbSha256) sum = ab_sha256_new ();
  guint64 size = 0;
  char buf[65536];
  ssize_t n;
  while ((n = read (fd, buf, sizeof buf)) != 0)
    {
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_FAILED, "Reading %s: %s", path,
                       g_strerror (errno));
          return FALSE;
        }
      ab_sha256_update (sum, buf, (gsize) n);
      size += (guint64) n;
    }
  *out_hex = g_malloc (AB_SHA256_HEX_LEN + 1);
  ab_sha256_finish_hex (sum, *out_hex);
  *out_size = size;
  return TRUE;
}
