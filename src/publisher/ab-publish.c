#include "config.h"
#include "publisher/ab-publish.h"
#include "ab-content.h"
#include "ab-crashpoint.h"
#include "ab-fsutil.h"
#include "ab-gpg.h"
#include "ab-util.h"
#include "ab-version.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <ostree.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/xattr.h>

G_DEFINE_QUARK (ab-publish-error-quark, ab_publish_error)

#define LOCK_PATH "abdeploy/publish.lock"
#define MAX_VERSION_LEN 128
#define MAX_FROM_LAST 100

/* ---- argument checks ---- */

static gboolean
usage (GError **error, const char *message)
{
  g_set_error_literal (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_USAGE, message);
  return FALSE;
}

/* Versions name refs: [A-Za-z0-9][A-Za-z0-9._-]*, or a SemVer version with
 * build metadata (its '+' is the one byte a ref cannot hold). */
static gboolean
check_version (const char *version, GError **error)
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

static gboolean
check_channel (const char *channel, GError **error)
{
  if (ab_manifest_channel_name_is_valid (channel))
    return TRUE;
  g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_USAGE,
               "Invalid channel name \"%s\": use letters, digits, '.', '_' and '-', starting "
               "with a letter or digit (for example stable)", channel ? channel : "");
  return FALSE;
}

static gboolean
check_rollout (guint rollout, GError **error)
{
  if (rollout > 100)
    return usage (error, "The rollout is a percentage from 1 to 100");
  return TRUE;
}

/* The '+' of build metadata is written '_' (SemVer has no '_', so two
 * SemVer versions never share a ref; a version that is not SemVer and
 * would share one is caught by check_ref_version()). */
static char *
version_ref (const char *version)
{
  char *ref = g_strconcat (AB_PUBLISH_VERSION_REF_PREFIX, version, NULL);
  g_strdelimit (ref + strlen (AB_PUBLISH_VERSION_REF_PREFIX), "+", '_');
  return ref;
}

/* ---- session: the open repo and the publisher lock ---- */

typedef struct
{
  const AbPublisher *p;
  OstreeRepo *repo;
  int dfd;      /* the repo's directory; owned by REPO */
  int lock_fd;
} Session;

static void
session_clear (Session *s)
{
  g_clear_object (&s->repo);
  if (s->lock_fd >= 0)
    (void) close (s->lock_fd);
  s->lock_fd = -1;
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Session, session_clear)

#define SESSION_INIT { NULL, NULL, -1, -1 }

/* Waits for other publishers of the repo; the lock lasts as long as the session. */
static gboolean
session_lock (Session *s, GError **error)
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
check_archive_mode (Session *s, GError **error)
{
  if (ostree_repo_get_mode (s->repo) == OSTREE_REPO_MODE_ARCHIVE)
    return TRUE;
  g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_USAGE,
               "%s is not an archive-mode OSTree repo; publish into an archive repo (it is "
               "served as plain files), or give a new directory and abdeploy creates one",
               s->p->repo);
  return FALSE;
}

static gboolean repair_channels (Session *s, GError **error);

/* Opens P->repo (creating an archive repo when CREATE and it is missing)
 * and takes the publisher lock. */
static gboolean
session_open (Session *s, const AbPublisher *p, gboolean create, GError **error)
{
  s->p = p;
  if (p->repo == NULL || *p->repo == '\0')
    return usage (error, "Give the publisher's repo with --repo=DIR");
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
  return check_archive_mode (s, error) && session_lock (s, error) && repair_channels (s, error);
}

/* Manifest writers: a signing key is mandatory and the expiry in range. */
static gboolean
session_open_signer (Session *s, const AbPublisher *p, GError **error)
{
  if (p->gpg_key == NULL || *p->gpg_key == '\0')
    return usage (error, "Channel manifests are always signed: give --gpg-sign=KEYID "
                         "(and --gpg-homedir=DIR unless the key is in the default GnuPG home)");
  if (p->expires_days > AB_PUBLISH_MAX_EXPIRES_DAYS)
    return usage (error, "--expires-days must be from 1 to 3660");
  return session_open (s, p, FALSE, error);
}

/* ---- channel generations ----
 * REPO/abdeploy/channels is a symlink to a generation directory
 * REPO/abdeploy/channels.<G>/ that holds every channel's C.json and
 * C.json.sig (the file names devices of every version read).
 * Invariant: a generation is complete (every file written and fsynced)
 * before the symlink names it and is never written again; the symlink is
 * replaced by one rename. Whatever moment a publisher is killed at, a reader
 * finds the old or the new set of channel files, each manifest with its own
 * signature. A repository of abdeploy 0.2.0, where channels is a directory,
 * is converted by its first write (the directory and the new symlink are
 * exchanged with RENAME_EXCHANGE). What a killed publisher leaves (newer
 * generations, the exchanged-out directory, the temporary symlink) is
 * removed by the next run; KEEP_GENERATIONS generations stay. */

#define CHANNELS_PARENT "abdeploy"
#define CHANNELS_NAME "channels"
#define CHANNELS_GEN_PREFIX CHANNELS_NAME "."
#define CHANNELS_TMP_LINK ".channels.new"
#define KEEP_GENERATIONS 3

typedef struct
{
  guint64 gen;    /* generation the symlink names; 0: none */
  gboolean is_dir; /* channels is a real directory (abdeploy 0.2.0) */
} Channels;

static gboolean
parse_generation (const char *name, guint64 *out)
{
  if (!g_str_has_prefix (name, CHANNELS_GEN_PREFIX))
    return FALSE;
  const char *digits = name + strlen (CHANNELS_GEN_PREFIX);
  return *digits != '0' && g_ascii_string_to_unsigned (digits, 10, 1, G_MAXUINT32, out, NULL);
}

/* What REPO/abdeploy/channels is now. */
static gboolean
channels_state (Session *s, int parent_dfd, Channels *out, GError **error)
{
  char target[256];
  *out = (Channels) { 0, FALSE };
  ssize_t n = readlinkat (parent_dfd, CHANNELS_NAME, target, sizeof target - 1);
  if (n < 0 && (errno == ENOENT || errno == EINVAL))
    {
      out->is_dir = errno == EINVAL;
      return TRUE;
    }
  if (n >= 0)
    target[n] = '\0';
  if (n >= 0 && parse_generation (target, &out->gen))
    return TRUE;
  g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_FAILED,
               "%s/" AB_PUBLISH_CHANNELS_DIR " is a symlink to \"%s\", not to a generation "
               "directory " CHANNELS_GEN_PREFIX "N; point it at the newest generation again "
               "(ln -sfn " CHANNELS_GEN_PREFIX "N %s/" AB_PUBLISH_CHANNELS_DIR ")", s->p->repo,
               n >= 0 ? target : g_strerror (errno), s->p->repo);
  return FALSE;
}

static int
compare_u64 (gconstpointer a, gconstpointer b)
{
  guint64 x = *(const guint64 *) a, y = *(const guint64 *) b;
  return x < y ? -1 : x > y;
}

/* The generation directories present, in ascending order. */
static GArray *
list_generations (int parent_dfd)
{
  GArray *gens = g_array_new (FALSE, FALSE, sizeof (guint64));
  /* A new open, not dup(): a dup shares the offset of an earlier listing. */
  int dfd = openat (parent_dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d = dfd >= 0 ? fdopendir (dfd) : NULL;
  if (d == NULL && dfd >= 0)
    (void) close (dfd);
  for (struct dirent *e; d && (e = readdir (d)) != NULL;)
    {
      guint64 g = 0;
      if (parse_generation (e->d_name, &g))
        g_array_append_val (gens, g);
    }
  if (d)
    closedir (d);
  g_array_sort (gens, compare_u64);
  return gens;
}

/* Removes what a killed publisher left and the generations beyond the
 * KEEP_GENERATIONS newest up to the current one. */
static gboolean
clean_generations (Session *s, int parent_dfd, const Channels *c, GError **error)
{
  if (!ab_fs_rm_rf_at (parent_dfd, CHANNELS_TMP_LINK, error))
    return FALSE;
  g_autoptr(GArray) gens = list_generations (parent_dfd);
  guint kept = 0;
  for (guint i = gens->len; i-- > 0;)
    {
      guint64 g = g_array_index (gens, guint64, i);
      gboolean keep = g == c->gen || (g < c->gen && ++kept < KEEP_GENERATIONS);
      g_autofree char *name = g_strdup_printf (CHANNELS_GEN_PREFIX "%" G_GUINT64_FORMAT, g);
      if (!keep && !ab_fs_rm_rf_at (parent_dfd, name, error))
        return FALSE;
    }
  return TRUE;
}

static gboolean
open_parent (Session *s, int *out_dfd, GError **error)
{
  if (!ab_fs_mkdir_p_at (s->dfd, CHANNELS_PARENT, 0755, error))
    return FALSE;
  *out_dfd = ab_fs_opendir_at (s->dfd, CHANNELS_PARENT, error);
  return *out_dfd >= 0;
}

/* Links every file of the current channels directory but SKIP and
 * SKIP.sig into the new generation NEW_DFD. */
static gboolean
link_others (Session *s, int parent_dfd, const Channels *c, int new_dfd, const char *skip,
             GError **error)
{
  if (c->gen == 0 && !c->is_dir)
    return TRUE;
  ab_autofd old_dfd = ab_fs_opendir_at (parent_dfd, CHANNELS_NAME, error);
  if (old_dfd < 0)
    return FALSE;
  g_autofree char *skip_sig = g_strconcat (skip, ".sig", NULL);
  DIR *d = fdopendir (ab_steal_fd (&old_dfd));
  gboolean ok = d != NULL;
  for (struct dirent *e; ok && (e = readdir (d)) != NULL;)
    {
      if (strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0
          || strcmp (e->d_name, skip) == 0 || strcmp (e->d_name, skip_sig) == 0)
        continue;
      ok = linkat (dirfd (d), e->d_name, new_dfd, e->d_name, 0) == 0;
    }
  int saved = errno;
  if (d)
    closedir (d);
  if (!ok)
    g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_FAILED, "Linking the channel files "
                 "of %s/" AB_PUBLISH_CHANNELS_DIR " into a new generation: %s", s->p->repo,
                 g_strerror (saved));
  return ok;
}

/* Writes generation GEN: the other channels' files as they are, and NAME
 * (C.json) with its signature, everything fsynced. */
static gboolean
stage_generation (Session *s, int parent_dfd, const Channels *c, guint64 gen, const char *name,
                  GBytes *text, GBytes *sig, GError **error)
{
  g_autofree char *dir = g_strdup_printf (CHANNELS_GEN_PREFIX "%" G_GUINT64_FORMAT, gen);
  g_autofree char *sig_name = g_strconcat (name, ".sig", NULL);
  if (!ab_fs_rm_rf_at (parent_dfd, dir, error) || !ab_fs_mkdir_p_at (parent_dfd, dir, 0755, error))
    return FALSE;
  ab_autofd new_dfd = ab_fs_opendir_at (parent_dfd, dir, error);
  gsize text_len = 0, sig_len = 0;
  const void *text_data = g_bytes_get_data (text, &text_len);
  const void *sig_data = g_bytes_get_data (sig, &sig_len);
  if (new_dfd < 0 || !link_others (s, parent_dfd, c, new_dfd, name, error)
      || !ab_fs_replace_at (new_dfd, name, text_data, text_len, 0644, error))
    return FALSE;
  ab_crash_point ("publish:manifest");
  return ab_fs_replace_at (new_dfd, sig_name, sig_data, sig_len, 0644, error)
         && ab_fs_fsync_dir_at (new_dfd, ".", error);
}

/* Points REPO/abdeploy/channels at generation GEN in one rename. */
static gboolean
switch_generation (Session *s, int parent_dfd, const Channels *c, guint64 gen, GError **error)
{
  g_autofree char *target = g_strdup_printf (CHANNELS_GEN_PREFIX "%" G_GUINT64_FORMAT, gen);
  if (symlinkat (target, parent_dfd, CHANNELS_TMP_LINK) < 0)
    {
      g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_FAILED,
                   "Creating the channels symlink in %s/" CHANNELS_PARENT ": %s", s->p->repo,
                   g_strerror (errno));
      return FALSE;
    }
  ab_crash_point ("publish:staged");
  if (c->is_dir)
    {
      /* 0.2.0 layout: swap the directory out, then remove it. */
      if (!ab_fs_exchange_at (parent_dfd, CHANNELS_TMP_LINK, CHANNELS_NAME, error)
          || !ab_fs_fsync_dir_at (parent_dfd, ".", error))
        return FALSE;
      ab_crash_point ("publish:switched");
      return ab_fs_rm_rf_at (parent_dfd, CHANNELS_TMP_LINK, error);
    }
  if (!ab_fs_rename_at (parent_dfd, CHANNELS_TMP_LINK, CHANNELS_NAME, error)
      || !ab_fs_fsync_dir_at (parent_dfd, ".", error))
    return FALSE;
  ab_crash_point ("publish:switched");
  return TRUE;
}

/* Makes NAME (C.json) with SIG the current files of the channel, atomically. */
static gboolean
publish_channel_files (Session *s, const char *name, GBytes *text, GBytes *sig, GError **error)
{
  ab_autofd parent_dfd = -1;
  Channels c;
  if (!open_parent (s, &parent_dfd, error) || !channels_state (s, parent_dfd, &c, error)
      || !clean_generations (s, parent_dfd, &c, error))
    return FALSE;
  g_autoptr(GArray) gens = list_generations (parent_dfd);
  guint64 gen = MAX (c.gen, gens->len ? g_array_index (gens, guint64, gens->len - 1) : 0) + 1;
  if (gen > G_MAXUINT32)
    gen = 1; /* never reached: one generation per publish */
  return stage_generation (s, parent_dfd, &c, gen, name, text, sig, error)
         && switch_generation (s, parent_dfd, &c, gen, error)
         && clean_generations (s, parent_dfd, &(Channels) { gen, FALSE }, error);
}

/* Removes what a publisher killed mid-write left behind; run by every
 * publisher command once it holds the lock. */
static gboolean
repair_channels (Session *s, GError **error)
{
  ab_autofd parent_dfd = -1;
  Channels c;
  if (!ab_fs_exists_at (s->dfd, CHANNELS_PARENT))
    return TRUE;
  return open_parent (s, &parent_dfd, error) && channels_state (s, parent_dfd, &c, error)
         && clean_generations (s, parent_dfd, &c, error);
}

/* ---- channel manifests ---- */

static char *
manifest_path (const char *channel, const char *suffix)
{
  return g_strconcat (AB_PUBLISH_CHANNELS_DIR "/", channel, ".json", suffix, NULL);
}

static AbManifest *
parse_manifest (Session *s, const char *channel, const char *path, const char *data, gsize len,
                GError **error)
{
  g_autoptr(AbManifest) m = ab_manifest_parse (data, len, error);
  if (m == NULL)
    {
      g_prefix_error (error, "%s/%s: ", s->p->repo, path);
      return NULL;
    }
  if (strcmp (m->channel, channel) != 0)
    {
      g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_FAILED,
                   "%s/%s names channel \"%s\", not \"%s\"; repair or remove it",
                   s->p->repo, path, m->channel, channel);
      return NULL;
    }
  return g_steal_pointer (&m);
}

/* Reads PATH; *out NULL when it does not exist. */
static gboolean
read_optional (Session *s, const char *path, GBytes **out, GError **error)
{
  g_autofree char *data = NULL;
  gsize len = 0;
  g_autoptr(GError) local = NULL;
  *out = NULL;
  if (ab_fs_read_at (s->dfd, path, &data, &len, &local))
    {
      *out = g_bytes_new_take (g_steal_pointer (&data), len);
      return TRUE;
    }
  if (g_error_matches (local, AB_FS_ERROR, AB_FS_ERROR_NOT_FOUND))
    return TRUE;
  g_propagate_error (error, g_steal_pointer (&local));
  return FALSE;
}

static gboolean
channel_missing (Session *s, const char *channel, const char *path, GError **error)
{
  g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_NOT_FOUND,
               "Channel %s does not exist in %s (no %s); release a version to it first",
               channel, s->p->repo, path);
  return FALSE;
}

/* Reads CHANNEL's manifest, unchecked; a missing one is a new, empty
 * manifest when CREATE, else AB_PUBLISH_ERROR_NOT_FOUND. */
static AbManifest *
load_manifest (Session *s, const char *channel, gboolean create, GError **error)
{
  g_autofree char *path = manifest_path (channel, "");
  g_autoptr(GBytes) data = NULL;
  if (!read_optional (s, path, &data, error))
    return NULL;
  if (data == NULL)
    return create ? ab_manifest_new (channel) : (channel_missing (s, channel, path, error), NULL);
  gsize len = 0;
  const char *text = g_bytes_get_data (data, &len);
  return parse_manifest (s, channel, path, text, len, error);
}

static gboolean
refuse_channel (Session *s, GError **error, const char *channel, const char *problem,
                const char *fix)
{
  g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_REFUSED,
               "Refusing to sign channel %s of %s: %s. Nothing was written. %s", channel,
               s->p->repo, problem, fix);
  return FALSE;
}

#define FIX_RESTORE "Restore the channel's manifest and its .sig from the last good copy (a " \
  "backup, a mirror, or an earlier generation in REPO/abdeploy/" CHANNELS_GEN_PREFIX "N/)"

/* The signature SIG of DATA is by the signing key (or, with
 * --trusted-keys, by one of those keys). */
static gboolean
signature_is_publishers (Session *s, GBytes *data, GBytes *sig, GError **error)
{
  if (s->p->trusted_keys != NULL)
    return ab_gpg_verify_detached (s->p->trusted_keys, data, sig, NULL, error);
  return ab_gpg_verify_detached_by_key (s->p->gpg_homedir, s->p->gpg_key, data, sig, error);
}

static gboolean
check_manifest_signature (Session *s, const char *channel, GBytes *data, GBytes *sig,
                          GError **error)
{
  g_autofree char *path = manifest_path (channel, "");
  g_autoptr(GError) local = NULL;
  if (sig == NULL)
    {
      g_autofree char *problem = g_strdup_printf ("%s has no signature file %s.sig", path, path);
      return refuse_channel (s, error, channel, problem, FIX_RESTORE);
    }
  if (signature_is_publishers (s, data, sig, &local))
    return TRUE;
  g_autofree char *problem = g_strdup_printf ("the signature of %s does not verify (%s): the "
                                              "manifest was changed after it was signed, or "
                                              "signed with another key", path, local->message);
  return refuse_channel (s, error, channel, problem,
                         FIX_RESTORE ". After a change of signing key, name the old key's "
                         "public key with --trusted-keys=DIR.");
}

static gboolean commit_is_trusted (Session *s, const char *commit, gboolean *out_ok,
                                   GError **error);

/* Every release of M (as it is about to be signed) is the commit its
 * version ref names, and that commit is in the repo and signed by the
 * publisher. */
static gboolean
check_releases (Session *s, const AbManifest *m, GError **error)
{
  for (guint i = 0; i < m->releases->len; i++)
    {
      const AbRelease *r = m->releases->pdata[i];
      g_autofree char *ref = version_ref (r->version), *at = NULL, *problem = NULL;
      gboolean have = FALSE, trusted = FALSE;
      if (!ostree_repo_resolve_rev (s->repo, ref, TRUE, &at, error)
          || !ostree_repo_has_object (s->repo, OSTREE_OBJECT_TYPE_COMMIT, r->commit, &have, NULL,
                                      error)
          || (have && !commit_is_trusted (s, r->commit, &trusted, error)))
        return FALSE;
      if (at == NULL || strcmp (at, r->commit) != 0)
        problem = g_strdup_printf ("it lists version %s as commit %s, but ref %s is %s",
                                   r->version, r->commit, ref, at ? at : "missing");
      else if (!have || !trusted)
        problem = g_strdup_printf ("commit %s of version %s is %s", r->commit, r->version,
                                   have ? "not signed by the publisher's key" : "not in the repo");
      if (problem)
        return refuse_channel (s, error, m->channel, problem,
                               have && !trusted && at && strcmp (at, r->commit) == 0
                               ? "Sign the commit (publish commit --gpg-sign=KEYID with the "
                                 "same tree and version), then run this command again."
                               : FIX_RESTORE ", and the refs abdeploy/release/V from a backup; "
                                 "a published version never changes its commit (publish a new "
                                 "version instead).");
    }
  return TRUE;
}

/* CHANNEL's manifest, checked before it is signed again: its signature is
 * the publisher's (write_manifest() then checks its releases against the
 * repo). A missing manifest is a new, empty one when CREATE. */
static AbManifest *
load_checked_manifest (Session *s, const char *channel, gboolean create, GError **error)
{
  g_autofree char *path = manifest_path (channel, "");
  g_autofree char *sig_path = manifest_path (channel, ".sig");
  g_autoptr(GBytes) data = NULL, sig = NULL;
  if (!read_optional (s, path, &data, error) || !read_optional (s, sig_path, &sig, error))
    return NULL;
  if (data == NULL)
    return create ? ab_manifest_new (channel) : (channel_missing (s, channel, path, error), NULL);
  if (!check_manifest_signature (s, channel, data, sig, error))
    return NULL;
  gsize len = 0;
  const char *text = g_bytes_get_data (data, &len);
  return parse_manifest (s, channel, path, text, len, error);
}

static char *
format_time (GDateTime *t)
{
  return g_date_time_format (t, "%Y-%m-%dT%H:%M:%SZ");
}

/* New serial and validity window; the rest of M is the caller's. The
 * serial never wraps: at AB_MANIFEST_MAX_SERIAL the channel is full. */
static gboolean
stamp_manifest (Session *s, AbManifest *m, GError **error)
{
  if (m->serial >= AB_MANIFEST_MAX_SERIAL)
    {
      g_autofree char *problem = g_strdup_printf ("its serial %" G_GUINT64_FORMAT " is the "
                                                  "largest a manifest may have", m->serial);
      return refuse_channel (s, error, m->channel, problem,
                             "Publish to a new channel and move the devices to it ([update] "
                             "channel in abdeploy.conf).");
    }
  guint days = s->p->expires_days ? s->p->expires_days : AB_PUBLISH_DEFAULT_EXPIRES_DAYS;
  g_autoptr(GDateTime) now = g_date_time_new_now_utc ();
  g_autoptr(GDateTime) expires = g_date_time_add_days (now, (int) days);
  m->serial++;
  g_free (m->issued_at);
  g_free (m->expires_at);
  m->issued_at = format_time (now);
  m->expires_at = format_time (expires);
  return TRUE;
}

/* Stamps, signs and publishes M with its signature. The signature is made
 * before anything is written, so a signing failure changes nothing; the
 * channel files switch in one rename (see "channel generations"). */
static AbManifest *
write_manifest (Session *s, AbManifest *m_in, GError **error)
{
  g_autoptr(AbManifest) m = m_in;
  if (!check_releases (s, m, error) || !stamp_manifest (s, m, error))
    return NULL;
  char *text = ab_manifest_serialize (m);
  g_autoptr(GBytes) data = g_bytes_new_take (text, strlen (text));
  g_autoptr(GBytes) sig = NULL;
  if (!ab_gpg_sign_detached (s->p->gpg_homedir, s->p->gpg_key, data, &sig, error))
    return NULL;
  g_autofree char *name = g_strconcat (m->channel, ".json", NULL);
  if (!publish_channel_files (s, name, data, sig, error))
    {
      g_prefix_error (error, "Writing channel %s: ", m->channel);
      return NULL;
    }
  return g_steal_pointer (&m);
}

/* Every channel manifest of the repo. */
static GPtrArray *
load_all_manifests (Session *s, GError **error)
{
  g_autoptr(GPtrArray) all = g_ptr_array_new_with_free_func ((GDestroyNotify) ab_manifest_free);
  g_autofree char *dir_path = g_build_filename (s->p->repo, AB_PUBLISH_CHANNELS_DIR, NULL);
  g_autoptr(GDir) dir = g_dir_open (dir_path, 0, NULL);
  const char *name;
  while (dir && (name = g_dir_read_name (dir)) != NULL)
    {
      if (!g_str_has_suffix (name, ".json") || name[0] == '.')
        continue;
      g_autofree char *channel = g_strndup (name, strlen (name) - strlen (".json"));
      AbManifest *m = load_manifest (s, channel, FALSE, error);
      if (m == NULL)
        return NULL;
      g_ptr_array_add (all, m);
    }
  return g_steal_pointer (&all);
}

static gboolean
conflict (GError **error, const char *version, const char *published, const char *where)
{
  g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_CONFLICT,
               "version %s is already published as commit %s (%s); published digests never "
               "change: bump the version", version, published, where);
  return FALSE;
}

/* The commit a version ref names carries that version in its metadata: a
 * version that is not SemVer can share the ref of one with build metadata
 * (1.0_1 and 1.0+1 would not, 1.0.0_1 and 1.0.0+1 would). */
static gboolean
check_ref_version (Session *s, const char *ref, const char *commit, const char *version,
                   GError **error)
{
  g_autoptr(GError) local = NULL;
  g_autofree char *has = ab_content_commit_version (s->repo, commit, &local);
  if (local != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  if (has == NULL || strcmp (has, version) == 0)
    return TRUE;
  g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_CONFLICT,
               "Ref %s names commit %s of version %s, not %s: the two versions share a ref "
               "name; pick another version", ref, commit, has, version);
  return FALSE;
}

/* The one commit VERSION is published as (version ref and every manifest),
 * or NULL when it is not published. Disagreeing records are a conflict. */
static gboolean
published_commit (Session *s, const char *version, char **out_commit, char **out_where,
                  GError **error)
{
  g_autofree char *ref = version_ref (version);
  g_autofree char *found = NULL;
  if (!ostree_repo_resolve_rev (s->repo, ref, TRUE, &found, error)
      || (found && !check_ref_version (s, ref, found, version, error)))
    return FALSE;
  g_autofree char *where = g_strdup_printf ("ref %s", ref);
  g_autoptr(GPtrArray) all = load_all_manifests (s, error);
  if (all == NULL)
    return FALSE;
  for (guint i = 0; i < all->len; i++)
    {
      const AbManifest *m = all->pdata[i];
      const AbRelease *r = ab_manifest_find (m, version);
      if (r == NULL)
        continue;
      if (found != NULL && strcmp (found, r->commit) != 0)
        return conflict (error, version, found, where);
      if (found == NULL)
        {
          found = g_strdup (r->commit);
          g_free (where);
          where = g_strdup_printf ("channel %s", m->channel);
        }
    }
  *out_commit = g_steal_pointer (&found);
  if (out_where)
    *out_where = g_steal_pointer (&where);
  return TRUE;
}

/* Fails unless VERSION is unpublished or published as COMMIT. */
static gboolean
check_same_commit (Session *s, const char *version, const char *commit, GError **error)
{
  g_autofree char *published = NULL;
  g_autofree char *where = NULL;
  if (!published_commit (s, version, &published, &where, error))
    return FALSE;
  if (published != NULL && strcmp (published, commit) != 0)
    return conflict (error, version, published, where);
  return TRUE;
}

static gboolean
need_commit_object (Session *s, const char *commit, const char *version, GError **error)
{
  gboolean have = FALSE;
  if (!ostree_repo_has_object (s->repo, OSTREE_OBJECT_TYPE_COMMIT, commit, &have, NULL, error))
    return FALSE;
  if (!have)
    g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_NOT_FOUND,
                 "Commit %s of version %s is not in %s; the repo lost it, restore it from a "
                 "backup", commit, version, s->p->repo);
  return have;
}

static AbRelease *
need_release (AbManifest *m, const char *version, GError **error)
{
  AbRelease *r = ab_manifest_lookup (m, version);
  if (r == NULL)
    g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_NOT_FOUND,
                 "Version %s is not released in channel %s", version, m->channel);
  return r;
}

/* ---- summary ---- */

static char *delta_dir (const char *from, const char *to);
static gboolean sha256_file (int dfd, const char *path, char **out_hex, guint64 *out_size,
                             GError **error);

/* Adds "PATH SHA256" of the superblock of every delta M lists to KNOWN. */
static void
add_listed_superblocks (const AbManifest *m, GHashTable *known)
{
  for (guint j = 0; j < m->releases->len; j++)
    {
      const AbRelease *r = m->releases->pdata[j];
      for (guint k = 0; k < r->deltas->len; k++)
        {
          const AbDeltaFile *f = ((AbDelta *) r->deltas->pdata[k])->files->pdata[0];
          g_hash_table_add (known, g_strconcat (f->path, " ", f->sha256, NULL));
        }
    }
}

/* KNOWN gets the superblocks listed by every channel manifest whose
 * signature is the publisher's, and by PENDING (checked, about to be signed). */
static gboolean
collect_listed_superblocks (Session *s, const AbManifest *pending, GHashTable *known,
                            GError **error)
{
  g_autoptr(GPtrArray) all = load_all_manifests (s, error);
  for (guint i = 0; all && i < all->len; i++)
    {
      const AbManifest *m = all->pdata[i];
      g_autofree char *path = manifest_path (m->channel, "");
      g_autofree char *sig_path = manifest_path (m->channel, ".sig");
      g_autoptr(GBytes) data = NULL, sig = NULL;
      if (!read_optional (s, path, &data, error) || !read_optional (s, sig_path, &sig, error))
        return FALSE;
      if (data != NULL && sig != NULL && signature_is_publishers (s, data, sig, NULL))
        add_listed_superblocks (m, known);
    }
  if (pending)
    add_listed_superblocks (pending, known);
  return all != NULL;
}

/* Every static delta of the repo, which the summary lists, is one that a
 * signed channel manifest lists with the same superblock: the summary is
 * only signed when it names nothing unchecked. */
static gboolean
check_repo_deltas_except (Session *s, const AbManifest *pending, GHashTable *skip,
                          GError **error)
{
  g_autoptr(GHashTable) known = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr(GPtrArray) names = NULL;
  if (!collect_listed_superblocks (s, pending, known, error)
      || !ostree_repo_list_static_delta_names (s->repo, &names, NULL, error))
    return FALSE;
  for (guint i = 0; i < names->len; i++)
    {
      const char *name = names->pdata[i], *dash = strchr (name, '-');
      if (skip != NULL && g_hash_table_contains (skip, name))
        continue;
      g_autofree char *from = dash ? g_strndup (name, dash - name) : NULL;
      g_autofree char *dir = dash ? delta_dir (from, dash + 1) : NULL;
      g_autofree char *sb = dir ? g_build_filename (dir, "superblock", NULL) : NULL;
      g_autofree char *hex = NULL, *key = NULL;
      guint64 size = 0;
      gboolean ok = sb && sha256_file (s->dfd, sb, &hex, &size, NULL)
                    && g_hash_table_contains (known, key = g_strconcat (sb, " ", hex, NULL));
      if (!ok)
        {
          g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_REFUSED,
                       "Refusing to sign the summary of %s: it would list the static delta %s, "
                       "which no channel manifest signed by the publisher lists. Nothing was "
                       "signed. Remove it (ostree --repo=%s static-delta delete %s), or let "
                       "abdeploy publish deltas make it", s->p->repo, name, s->p->repo, name);
          return FALSE;
        }
    }
  return TRUE;
}

static gboolean
check_repo_deltas (Session *s, const AbManifest *pending, GError **error)
{
  return check_repo_deltas_except (s, pending, NULL, error);
}

/* The summary lists refs and deltas for plain ostree clients; it is signed
 * when a key is at hand, and then only when every delta it lists is listed
 * by a signed manifest or by PENDING (the manifest about to be signed). */
static gboolean
update_summary (Session *s, const AbManifest *pending, GError **error)
{
  if (s->p->gpg_key != NULL && !check_repo_deltas (s, pending, error))
    return FALSE;
  if (!ostree_repo_regenerate_summary (s->repo, NULL, NULL, error))
    {
      g_prefix_error (error, "Regenerating the summary: ");
      return FALSE;
    }
  if (s->p->gpg_key == NULL)
    return TRUE;
  const char *keys[] = { s->p->gpg_key, NULL };
  if (!ostree_repo_add_gpg_signature_summary (s->repo, keys, s->p->gpg_homedir, NULL, error))
    {
      g_prefix_error (error, "Signing the summary: ");
      return FALSE;
    }
  return TRUE;
}

/* ---- publish commit ---- */

/* ---- the content gate of publish commit ----
 * Image trees are often built by an unprivileged user: the commit records
 * root (uid and gid 0) as the owner of every file, keeping modes and
 * extended attributes. A setuid, setgid or file-capability bit therefore
 * means root's privileges on every device. Invariant: such a bit reaches a
 * commit only when the tree already gave it to root (setuid and
 * capabilities: uid 0; setgid: gid 0) or the publisher allowed the file by
 * name; and every file name is valid UTF-8 without control characters, so
 * that line-based tools (and the health hooks) read it as it is. */

#define CAPABILITY_XATTR "security.capability"
#define MAX_GATE_REPORTS 50

typedef struct
{
  const AbPublishCommitOptions *o;
  int tree_dfd;
  GPtrArray *refused; /* messages, one per refused file */
  GPtrArray *allowed; /* messages, one per privileged file committed */
} Gate;

static void
gate_report (GPtrArray *list, const char *path, const char *fmt, ...) G_GNUC_PRINTF (3, 4);

static void
gate_report (GPtrArray *list, const char *path, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *what = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_autofree char *shown = g_strescape (path, NULL);
  g_ptr_array_add (list, g_strdup_printf ("%s: %s", shown, what));
}

/* Valid UTF-8 without control characters (C0, DEL, C1). */
static gboolean
name_is_safe (const char *name)
{
  if (!g_utf8_validate (name, -1, NULL))
    return FALSE;
  for (const char *c = name; *c; c = g_utf8_next_char (c))
    if (g_unichar_iscntrl (g_utf8_get_char (c)))
      return FALSE;
  return TRUE;
}

static gboolean
has_capabilities (Gate *g, const char *path)
{
  g_autofree char *proc = g_strdup_printf ("/proc/self/fd/%d%s", g->tree_dfd, path);
  return lgetxattr (proc, CAPABILITY_XATTR, NULL, 0) >= 0;
}

static gboolean
is_allowed (Gate *g, const char *path)
{
  if (g->o->allow_privileged)
    return TRUE;
  for (const char *const *a = g->o->allow_setuid; a && *a; a++)
    if (strcmp (*a, path) == 0 || (**a != '/' && strcmp (*a, path + 1) == 0))
      return TRUE;
  return FALSE;
}

/* Which privileges the file gets in the image that it did not have in the
 * tree ("" when none); *out_bits names every privilege bit it carries. */
static void
describe_privileges (Gate *g, const char *path, GFileInfo *info, GString *gained,
                     GString *bits)
{
  guint32 mode = g_file_info_get_attribute_uint32 (info, "unix::mode");
  guint32 uid = g_file_info_get_attribute_uint32 (info, "unix::uid");
  guint32 gid = g_file_info_get_attribute_uint32 (info, "unix::gid");
  gboolean caps = has_capabilities (g, path);
  if (mode & S_ISUID)
    g_string_append (bits, bits->len ? ", setuid" : "setuid");
  if (mode & S_ISGID)
    g_string_append (bits, bits->len ? ", setgid" : "setgid");
  if (caps)
    g_string_append (bits, bits->len ? ", file capabilities" : "file capabilities");
  if (((mode & S_ISUID) || caps) && uid != 0)
    g_string_append_printf (gained, "owner uid %u", uid);
  if ((mode & S_ISGID) && gid != 0)
    g_string_append_printf (gained, "%sgroup gid %u", gained->len ? ", " : "", gid);
}

static void
gate_privileges (Gate *g, const char *path, GFileInfo *info)
{
  g_autoptr(GString) gained = g_string_new (NULL), bits = g_string_new (NULL);
  describe_privileges (g, path, info, gained, bits);
  if (bits->len == 0)
    return;
  if (gained->len == 0)
    gate_report (g->allowed, path, "%s, root's in the tree", bits->str);
  else if (is_allowed (g, path))
    gate_report (g->allowed, path, "%s, %s in the tree, root in the image: allowed by option",
                 bits->str, gained->str);
  else
    gate_report (g->refused, path, "%s, %s in the tree, root in the image", bits->str,
                 gained->str);
}

static OstreeRepoCommitFilterResult
gate_filter (OstreeRepo *repo, const char *path, GFileInfo *info, gpointer user_data)
{
  Gate *g = user_data;
  const char *name = strrchr (path, '/');
  if (name && name[1] != '\0' && !name_is_safe (name + 1))
    {
      gate_report (g->refused, path, "a file name with a control character (newline, tab, "
                   "...) or invalid UTF-8");
      return OSTREE_REPO_COMMIT_FILTER_SKIP;
    }
  if (g_file_info_get_file_type (info) == G_FILE_TYPE_REGULAR)
    gate_privileges (g, path, info);
  g_file_info_set_attribute_uint32 (info, "unix::uid", 0);
  g_file_info_set_attribute_uint32 (info, "unix::gid", 0);
  return OSTREE_REPO_COMMIT_FILTER_ALLOW;
}

/* Fails with every refusal of the gate (up to MAX_GATE_REPORTS) listed. */
static gboolean
gate_verdict (Gate *g, GError **error)
{
  if (g->refused->len == 0)
    return TRUE;
  g_autoptr(GString) msg = g_string_new (NULL);
  g_string_append_printf (msg, "Refusing to commit %s: %u file(s) cannot be published as they "
                          "are (the commit records root as the owner of every file):",
                          g->o->tree, g->refused->len);
  for (guint i = 0; i < g->refused->len && i < MAX_GATE_REPORTS; i++)
    g_string_append_printf (msg, "\n  %s", (const char *) g->refused->pdata[i]);
  if (g->refused->len > MAX_GATE_REPORTS)
    g_string_append_printf (msg, "\n  ... and %u more", g->refused->len - MAX_GATE_REPORTS);
  g_string_append (msg, "\nRename a file whose name is unsafe. Give a privileged file to root "
                   "in the tree (chown 0:0, then set its bits again), drop its bits (chmod u-s,g-s; "
                   "setcap -r), or allow it with --allow-setuid=PATH (every one: "
                   "--allow-privileged); nothing was committed");
  g_set_error_literal (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_REFUSED, msg->str);
  return FALSE;
}

static GFile *
write_tree (Session *s, const AbPublishCommitOptions *o, GPtrArray *allowed, GError **error)
{
  ab_autofd dfd = ab_fs_opendir_at (AT_FDCWD, o->tree, error);
  if (dfd < 0)
    return NULL;
  g_autoptr(GPtrArray) refused = g_ptr_array_new_with_free_func (g_free);
  Gate gate = { o, dfd, refused, allowed };
  g_autoptr(OstreeMutableTree) mtree = ostree_mutable_tree_new ();
  /* GENERATE_SIZES: the commit carries a signed index of every object's
   * size ("ostree.sizes"), which bounds what a device's pull may fetch. */
  g_autoptr(OstreeRepoCommitModifier) modifier =
      ostree_repo_commit_modifier_new (OSTREE_REPO_COMMIT_MODIFIER_FLAGS_GENERATE_SIZES,
                                       gate_filter, &gate, NULL);
  GFile *root = NULL;
  if (!ostree_repo_write_dfd_to_mtree (s->repo, dfd, ".", mtree, modifier, NULL, error))
    {
      g_prefix_error (error, "Committing %s: ", o->tree);
      return NULL;
    }
  if (!gate_verdict (&gate, error))
    return NULL;
  if (!ostree_repo_write_mtree (s->repo, mtree, &root, NULL, error))
    {
      g_prefix_error (error, "Committing %s: ", o->tree);
      return NULL;
    }
  return root;
}

static gboolean
same_tree (Session *s, GFile *root, const char *commit, gboolean *out_same, GError **error)
{
  g_autoptr(GFile) old_root = NULL;
  if (!ostree_repo_read_commit (s->repo, commit, &old_root, NULL, NULL, error))
    return FALSE;
  OstreeRepoFile *a = OSTREE_REPO_FILE (root), *b = OSTREE_REPO_FILE (old_root);
  if (!ostree_repo_file_ensure_resolved (b, error))
    return FALSE;
  *out_same = strcmp (ostree_repo_file_tree_get_contents_checksum (a),
                      ostree_repo_file_tree_get_contents_checksum (b)) == 0
              && strcmp (ostree_repo_file_tree_get_metadata_checksum (a),
                         ostree_repo_file_tree_get_metadata_checksum (b)) == 0;
  return TRUE;
}

static GVariant *
commit_metadata (const AbPublishCommitOptions *o, GDateTime *now)
{
  g_autofree char *build_time = format_time (now);
  g_autoptr(GVariantDict) d = g_variant_dict_new (NULL);
  g_variant_dict_insert (d, OSTREE_COMMIT_META_KEY_VERSION, "s", o->version);
  g_variant_dict_insert (d, "build-time", "s", build_time);
  if (o->source_revision)
    g_variant_dict_insert (d, "source-revision", "s", o->source_revision);
  return g_variant_ref_sink (g_variant_dict_end (d));
}

/* Inside a transaction: writes the tree and, unless VERSION is already
 * PUBLISHED (as recorded in WHERE), a commit of it. A published version
 * must have the same tree. */
static gboolean
write_commit_txn (Session *s, const AbPublishCommitOptions *o, const char *published,
                  const char *where, GPtrArray *allowed, char **out_commit, GError **error)
{
  g_autoptr(GFile) root = write_tree (s, o, allowed, error);
  if (root == NULL)
    return FALSE;
  if (published != NULL)
    {
      gboolean same = FALSE;
      if (!same_tree (s, root, published, &same, error))
        return FALSE;
      g_autofree char *why = g_strdup_printf ("%s; the tree differs", where);
      if (!same)
        return conflict (error, o->version, published, why);
      *out_commit = g_strdup (published);
      return TRUE;
    }
  g_autofree char *parent = NULL;
  if (o->branch && !ostree_repo_resolve_rev (s->repo, o->branch, TRUE, &parent, error))
    return FALSE;
  g_autoptr(GDateTime) now = g_date_time_new_now_utc ();
  g_autoptr(GVariant) meta = commit_metadata (o, now);
  g_autofree char *subject = g_strdup_printf ("Version %s", o->version);
  return ostree_repo_write_commit_with_time (s->repo, parent, subject, NULL, meta,
                                             OSTREE_REPO_FILE (root),
                                             (guint64) g_date_time_to_unix (now), out_commit,
                                             NULL, error);
}

/* A new commit is kept (transaction committed); re-publishing the same
 * tree stores nothing new, so its transaction is dropped. */
static gboolean
write_commit (Session *s, const AbPublishCommitOptions *o, const char *published,
              const char *where, GPtrArray *allowed, char **out_commit, GError **error)
{
  if (!ostree_repo_prepare_transaction (s->repo, NULL, NULL, error))
    return FALSE;
  if (!write_commit_txn (s, o, published, where, allowed, out_commit, error))
    {
      (void) ostree_repo_abort_transaction (s->repo, NULL, NULL);
      return FALSE;
    }
  if (published != NULL)
    return ostree_repo_abort_transaction (s->repo, NULL, error);
  return ostree_repo_commit_transaction (s->repo, NULL, NULL, error);
}

/* The commit object's bytes and its detached GPG signatures (NULL: none). */
static gboolean
commit_signatures (Session *s, const char *commit, GBytes **out_data, GVariant **out_sigs,
                   GError **error)
{
  g_autoptr(GVariant) object = NULL, detached = NULL;
  if (!ostree_repo_load_variant (s->repo, OSTREE_OBJECT_TYPE_COMMIT, commit, &object, error)
      || !ostree_repo_read_commit_detached_metadata (s->repo, commit, &detached, NULL, error))
    return FALSE;
  *out_sigs = detached ? g_variant_lookup_value (detached, "ostree.gpgsigs",
                                                 G_VARIANT_TYPE ("aay"))
                       : NULL;
  *out_data = g_variant_get_data_as_bytes (object);
  return TRUE;
}

/* Whether one of the commit's signatures is by the publisher's key.
 * (libostree's own duplicate check cannot read a keybox GnuPG home.) */
static gboolean
commit_signed_by_key (Session *s, const char *commit, gboolean *out_signed, GError **error)
{
  *out_signed = FALSE;
  g_autoptr(GVariant) sigs = NULL;
  g_autoptr(GBytes) data = NULL;
  if (!commit_signatures (s, commit, &data, &sigs, error))
    return FALSE;
  for (gsize i = 0; sigs && i < g_variant_n_children (sigs) && !*out_signed; i++)
    {
      g_autoptr(GVariant) v = g_variant_get_child_value (sigs, i);
      g_autoptr(GBytes) sig = g_variant_get_data_as_bytes (v);
      if (!ab_gpg_is_signed_by (s->p->gpg_homedir, s->p->gpg_key, data, sig, out_signed, error))
        return FALSE;
    }
  return TRUE;
}

/* Whether the commit carries a good signature by the signing key or, with
 * --trusted-keys, by one of those keys. */
static gboolean
commit_is_trusted (Session *s, const char *commit, gboolean *out_ok, GError **error)
{
  if (s->p->trusted_keys == NULL)
    return commit_signed_by_key (s, commit, out_ok, error);
  *out_ok = FALSE;
  g_autoptr(GVariant) sigs = NULL;
  g_autoptr(GBytes) data = NULL;
  if (!commit_signatures (s, commit, &data, &sigs, error))
    return FALSE;
  for (gsize i = 0; sigs && i < g_variant_n_children (sigs) && !*out_ok; i++)
    {
      g_autoptr(GVariant) v = g_variant_get_child_value (sigs, i);
      g_autoptr(GBytes) sig = g_variant_get_data_as_bytes (v);
      *out_ok = ab_gpg_verify_detached (s->p->trusted_keys, data, sig, NULL, NULL);
    }
  return TRUE;
}

static gboolean
sign_commit (Session *s, const char *commit, GError **error)
{
  gboolean signed_before = FALSE;
  g_autoptr(GError) local = NULL;
  if (s->p->gpg_key == NULL)
    return TRUE;
  if (!commit_signed_by_key (s, commit, &signed_before, error))
    return FALSE;
  if (signed_before
      || ostree_repo_sign_commit (s->repo, commit, s->p->gpg_key, s->p->gpg_homedir, NULL, &local)
      || g_error_matches (local, G_IO_ERROR, G_IO_ERROR_EXISTS))
    return TRUE;
  g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_FAILED,
               "Signing commit %s with GPG key %s failed: %s. Check --gpg-sign and "
               "--gpg-homedir; nothing was published", commit, s->p->gpg_key, local->message);
  return FALSE;
}

static gboolean
check_commit_options (const AbPublishCommitOptions *o, GError **error)
{
  if (o->tree == NULL || !g_file_test (o->tree, G_FILE_TEST_IS_DIR))
    return usage (error, "Give the image tree to commit with --tree=DIR (a directory)");
  if (!check_version (o->version, error))
    return FALSE;
  g_autoptr(GError) local = NULL;
  if (o->branch && !ostree_validate_rev (o->branch, &local))
    {
      g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_USAGE, "Invalid --branch: %s",
                   local->message);
      return FALSE;
    }
  return TRUE;
}

gboolean
ab_publish_commit (const AbPublisher *p, const AbPublishCommitOptions *o, char **out_commit,
                   gboolean *out_created, char ***out_privileged, GError **error)
{
  g_auto(Session) s = SESSION_INIT;
  if (!check_commit_options (o, error) || !session_open (&s, p, TRUE, error))
    return FALSE;
  g_autofree char *published = NULL, *where = NULL, *commit = NULL;
  g_autoptr(GPtrArray) allowed = g_ptr_array_new_with_free_func (g_free);
  if ((p->gpg_key && !check_repo_deltas (&s, NULL, error))
      || !published_commit (&s, o->version, &published, &where, error)
      || !write_commit (&s, o, published, where, allowed, &commit, error)
      || !sign_commit (&s, commit, error))
    return FALSE;
  /* Refs last: a version is published once its commit is complete and signed. */
  g_autofree char *ref = version_ref (o->version);
  if (!ostree_repo_set_ref_immediate (s.repo, NULL, ref, commit, NULL, error)
      || (o->branch && !ostree_repo_set_ref_immediate (s.repo, NULL, o->branch, commit, NULL, error))
      || !update_summary (&s, NULL, error))
    return FALSE;
  *out_created = published == NULL;
  *out_commit = g_steal_pointer (&commit);
  g_ptr_array_add (allowed, NULL);
  *out_privileged = (char **) g_ptr_array_steal (allowed, NULL);
  return TRUE;
}

/* ---- publish release / promote / deprecate / refresh ---- */

static char *
now_iso8601 (void)
{
  g_autoptr(GDateTime) now = g_date_time_new_now_utc ();
  return format_time (now);
}

/* A channel holds one release per precedence: versions that differ only in
 * build metadata (1.2.0+b1, 1.2.0+b2) would leave devices unable to tell
 * which is newer, so the second one is refused. */
static gboolean
check_precedence_free (const AbManifest *m, const char *version, GError **error)
{
  for (guint i = 0; i < m->releases->len; i++)
    {
      const AbRelease *r = m->releases->pdata[i];
      if (strcmp (r->version, version) != 0 && ab_version_compare (r->version, version) == 0)
        {
          g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_CONFLICT,
                       "Channel %s already has version %s, equal in precedence to %s (they "
                       "differ only in build metadata or leading zeros), so devices could not "
                       "tell which is newer; release a higher version instead", m->channel,
                       r->version, version);
          return FALSE;
        }
    }
  return TRUE;
}

/* Adds a release of COMMIT to M, or sets the rollout of the one M has. */
static gboolean
put_release (AbManifest *m, const AbRelease *template, guint rollout, GError **error)
{
  AbRelease *r = ab_manifest_lookup (m, template->version);
  if (r == NULL && !check_precedence_free (m, template->version, error))
    return FALSE;
  if (r == NULL)
    {
      r = ab_release_copy (template);
      g_free (r->published_at);
      r->published_at = now_iso8601 ();
      g_ptr_array_add (m->releases, r);
    }
  r->rollout = rollout ? rollout : 100;
  return TRUE;
}

AbManifest *
ab_publish_release (const AbPublisher *p, const char *channel, const char *version,
                    guint rollout, GError **error)
{
  g_auto(Session) s = SESSION_INIT;
  if (!check_channel (channel, error) || !check_version (version, error)
      || !check_rollout (rollout, error) || !session_open_signer (&s, p, error))
    return NULL;
  g_autofree char *ref = version_ref (version);
  g_autofree char *commit = NULL;
  if (!ostree_repo_resolve_rev (s.repo, ref, TRUE, &commit, error))
    return NULL;
  if (commit == NULL)
    {
      g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_NOT_FOUND,
                   "Version %s is not committed in %s (no ref %s); run abdeploy publish "
                   "commit --version=%s first", version, p->repo, ref, version);
      return NULL;
    }
  g_autoptr(AbManifest) m = load_checked_manifest (&s, channel, TRUE, error);
  if (m == NULL || !check_same_commit (&s, version, commit, error))
    return NULL;
  g_autoptr(AbRelease) template = ab_release_new (version, commit, NULL, 100);
  if (!put_release (m, template, rollout, error))
    return NULL;
  return write_manifest (&s, g_steal_pointer (&m), error);
}

AbManifest *
ab_publish_promote (const AbPublisher *p, const char *from, const char *to,
                    const char *version, guint rollout, GError **error)
{
  g_auto(Session) s = SESSION_INIT;
  if (!check_channel (from, error) || !check_channel (to, error)
      || !check_version (version, error) || !check_rollout (rollout, error))
    return NULL;
  if (strcmp (from, to) == 0)
    {
      usage (error, "--from and --to name the same channel");
      return NULL;
    }
  if (!session_open_signer (&s, p, error))
    return NULL;
  g_autoptr(AbManifest) src = load_checked_manifest (&s, from, FALSE, error);
  const AbRelease *r = src ? need_release (src, version, error) : NULL;
  if (r == NULL)
    return NULL;
  if (r->deprecated != NULL)
    {
      g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_FAILED,
                   "Version %s is deprecated in channel %s (%s); refusing to promote it",
                   version, from, r->deprecated);
      return NULL;
    }
  g_autoptr(AbManifest) dst = load_checked_manifest (&s, to, TRUE, error);
  if (dst == NULL || !need_commit_object (&s, r->commit, version, error)
      || !check_same_commit (&s, version, r->commit, error))
    return NULL;
  if (!put_release (dst, r, rollout, error))
    return NULL;
  return write_manifest (&s, g_steal_pointer (&dst), error);
}

AbManifest *
ab_publish_deprecate (const AbPublisher *p, const char *channel, const char *version,
                      const char *reason, GError **error)
{
  g_auto(Session) s = SESSION_INIT;
  if (!check_channel (channel, error) || !check_version (version, error))
    return NULL;
  if (reason == NULL || *reason == '\0')
    {
      usage (error, "Say why with --reason=TEXT; devices show it");
      return NULL;
    }
  if (!session_open_signer (&s, p, error))
    return NULL;
  g_autoptr(AbManifest) m = load_checked_manifest (&s, channel, FALSE, error);
  AbRelease *r = m ? need_release (m, version, error) : NULL;
  if (r == NULL)
    return NULL;
  g_free (r->deprecated);
  r->deprecated = g_strdup (reason);
  return write_manifest (&s, g_steal_pointer (&m), error);
}

AbManifest *
ab_publish_refresh (const AbPublisher *p, const char *channel, GError **error)
{
  g_auto(Session) s = SESSION_INIT;
  if (!check_channel (channel, error) || !session_open_signer (&s, p, error))
    return NULL;
  AbManifest *m = load_checked_manifest (&s, channel, FALSE, error);
  return m ? write_manifest (&s, m, error) : NULL;
}

/* ---- publish deltas ---- */

/* Where libostree stores the static delta FROM → TO, relative to the repo:
 * deltas/<2 chars>/<rest>-<to>, in its modified base64 of the checksums. */
static char *
delta_dir (const char *from, const char *to)
{
  g_autofree guchar *from_bin = ostree_checksum_to_bytes (from);
  g_autofree guchar *to_bin = ostree_checksum_to_bytes (to);
  g_autofree char *from_b64 = ostree_checksum_b64_from_bytes (from_bin);
  g_autofree char *to_b64 = ostree_checksum_b64_from_bytes (to_bin);
  return g_strdup_printf ("deltas/%.2s/%s-%s", from_b64, from_b64 + 2, to_b64);
}

static gboolean
generate_delta (Session *s, const char *from, const char *to, const char *dir, GError **error)
{
  g_autofree char *superblock = g_build_filename (dir, "superblock", NULL);
  if (ab_fs_exists_at (s->dfd, superblock)) /* libostree writes it last */
    return TRUE;
  g_autoptr(GVariantBuilder) b = g_variant_builder_new (G_VARIANT_TYPE ("a{sv}"));
  /* No fallback objects: devices apply deltas offline, which needs every
   * object inside the delta. */
  g_variant_builder_add (b, "{sv}", "min-fallback-size", g_variant_new_uint32 (0));
  g_autoptr(GVariant) params = g_variant_ref_sink (g_variant_builder_end (b));
  if (!ostree_repo_static_delta_generate (s->repo, OSTREE_STATIC_DELTA_GENERATE_OPT_MAJOR, from,
                                          to, NULL, params, NULL, error))
    {
      g_prefix_error (error, "Generating the static delta %s-%s: ", from, to);
      return FALSE;
    }
  if (!ab_fs_exists_at (s->dfd, superblock))
    {
      g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_FAILED,
                   "libostree did not write the delta %s-%s to %s", from, to, dir);
      return FALSE;
    }
  return TRUE;
}

static gboolean
sha256_file (int dfd, const char *path, char **out_hex, guint64 *out_size, GError **error)
{
  ab_autofd fd = openat (dfd, path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    {
      g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_FAILED, "Opening %s: %s", path,
                   g_strerror (errno));
      return FALSE;
    }
  g_autoptr(GChecksum) sum = g_checksum_new (G_CHECKSUM_SHA256);
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
      g_checksum_update (sum, (const guchar *) buf, n);
      size += (guint64) n;
    }
  *out_hex = g_strdup (g_checksum_get_string (sum));
  *out_size = size;
  return TRUE;
}

/* ---- checking a delta before it is listed ----
 * Invariant: a delta is listed (and so signed) only when its superblock
 * names FROM and TO, carries TO's commit object, has no fallback objects
 * (devices apply deltas offline), and every part it lists is on disk with
 * the SHA-256 the superblock records. The files listed are the superblock
 * and those parts, nothing else the directory may hold. */

/* OSTREE_STATIC_DELTA_SUPERBLOCK_FORMAT of libostree (a private header). */
#define SUPERBLOCK_TYPE "(a{sv}tayay(a{sv}aya(say)sstayay)aya(uayttay)a(yaytt))"

static gboolean
bad_delta (Session *s, GError **error, const char *dir, const char *from, const char *to,
           const char *why)
{
  g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_REFUSED,
               "Refusing to list the delta in %s/%s: %s, so it is not the delta from %s to %s "
               "that abdeploy publish makes. Nothing was written. Remove the directory (rm -r "
               "%s/%s) and run publish deltas again to generate it", s->p->repo, dir, why, from,
               to, s->p->repo, dir);
  return FALSE;
}

static gboolean
checksum_is (GVariant *bytes, const char *hex)
{
  if (g_variant_n_children (bytes) != OSTREE_SHA256_DIGEST_LEN)
    return FALSE;
  g_autofree char *h = ostree_checksum_from_bytes_v (bytes);
  return strcmp (h, hex) == 0;
}

/* Appends DIR/NAME with its size and SHA-256 to DELTA; *out_hex (optional)
 * gets the SHA-256. */
static gboolean
add_delta_file (Session *s, AbDelta *delta, const char *dir, const char *name, char **out_hex,
                GError **error)
{
  g_autofree char *rel = g_build_filename (dir, name, NULL);
  g_autofree char *hex = NULL;
  guint64 size = 0;
  if (!sha256_file (s->dfd, rel, &hex, &size, error))
    return FALSE;
  g_ptr_array_add (delta->files, ab_delta_file_new (rel, size, hex));
  delta->size += size;
  if (out_hex)
    *out_hex = g_steal_pointer (&hex);
  return TRUE;
}

static GVariant *
read_superblock (Session *s, const char *dir, GError **error)
{
  g_autofree char *path = g_build_filename (dir, "superblock", NULL);
  g_autofree char *data = NULL;
  gsize len = 0;
  if (!ab_fs_read_at (s->dfd, path, &data, &len, error))
    return NULL;
  g_autoptr(GBytes) bytes = g_bytes_new_take (g_steal_pointer (&data), len);
  GVariant *sb = g_variant_new_from_bytes (G_VARIANT_TYPE (SUPERBLOCK_TYPE), bytes, FALSE);
  return g_variant_ref_sink (sb);
}

/* What is wrong with superblock SB for FROM → TO, or NULL. */
static const char *
superblock_problem (GVariant *sb, const char *from, const char *to)
{
  if (!g_variant_is_normal_form (sb))
    return "its superblock is not a libostree static delta superblock";
  g_autoptr(GVariant) v_from = g_variant_get_child_value (sb, 2);
  g_autoptr(GVariant) v_to = g_variant_get_child_value (sb, 3);
  g_autoptr(GVariant) commit = g_variant_get_child_value (sb, 4);
  g_autoptr(GVariant) fallbacks = g_variant_get_child_value (sb, 7);
  if (!checksum_is (v_from, from) || !checksum_is (v_to, to))
    return "its superblock names another pair of commits";
  g_autofree char *sum = g_compute_checksum_for_data (G_CHECKSUM_SHA256,
                                                      g_variant_get_data (commit),
                                                      g_variant_get_size (commit));
  if (strcmp (sum, to) != 0)
    return "the commit object in its superblock is not the commit it leads to";
  if (g_variant_n_children (fallbacks) > 0)
    return "it has fallback objects, which devices cannot apply offline";
  return NULL;
}

/* The files of the delta FROM → TO in DIR, checked (see above). */
static AbDelta *
check_delta (Session *s, const char *from, const char *to, const char *dir, GError **error)
{
  g_autoptr(GVariant) sb = read_superblock (s, dir, error);
  if (sb == NULL)
    return NULL;
  const char *problem = superblock_problem (sb, from, to);
  if (problem)
    return bad_delta (s, error, dir, from, to, problem), NULL;
  g_autoptr(AbDelta) delta = ab_delta_new (from);
  g_autoptr(GVariant) parts = g_variant_get_child_value (sb, 6);
  if (!add_delta_file (s, delta, dir, "superblock", NULL, error))
    return NULL;
  for (gsize i = 0; i < g_variant_n_children (parts); i++)
    {
      g_autoptr(GVariant) part = g_variant_get_child_value (parts, i);
      g_autoptr(GVariant) csum = g_variant_get_child_value (part, 1);
      g_autofree char *name = g_strdup_printf ("%" G_GSIZE_FORMAT, i), *hex = NULL;
      if (!add_delta_file (s, delta, dir, name, &hex, error))
        return NULL;
      if (!checksum_is (csum, hex))
        {
          g_autofree char *why = g_strdup_printf ("part %s does not have the SHA-256 its "
                                                  "superblock records", name);
          return bad_delta (s, error, dir, from, to, why), NULL;
        }
    }
  return g_steal_pointer (&delta);
}

static int
compare_versions_desc (gconstpointer pa, gconstpointer pb)
{
  const AbRelease *a = *(const AbRelease **) pa, *b = *(const AbRelease **) pb;
  return ab_version_order (b->version, a->version);
}

/* Up to N releases of M below NEWEST by version (deprecated ones included:
 * devices on them need an update most), skipping NEWEST's own commit. */
static GPtrArray *
delta_sources (AbManifest *m, const AbRelease *newest, guint n)
{
  g_autoptr(GPtrArray) sorted = g_ptr_array_new ();
  for (guint i = 0; i < m->releases->len; i++)
    g_ptr_array_add (sorted, m->releases->pdata[i]);
  g_ptr_array_sort (sorted, compare_versions_desc);
  GPtrArray *out = g_ptr_array_new ();
  for (guint i = 0; i < sorted->len && out->len < n; i++)
    {
      const AbRelease *r = sorted->pdata[i];
      if (r != newest && strcmp (r->commit, newest->commit) != 0)
        g_ptr_array_add (out, (gpointer) r);
    }
  return out;
}

/* Generates (unless present) and lists the delta FROM → TO->commit in TO. */
static gboolean
add_delta (Session *s, AbRelease *to, const char *from, GError **error)
{
  g_autofree char *dir = delta_dir (from, to->commit);
  if (!generate_delta (s, from, to->commit, dir, error))
    return FALSE;
  AbDelta *delta = check_delta (s, from, to->commit, dir, error);
  if (delta == NULL)
    return FALSE;
  for (guint i = 0; i < to->deltas->len; i++)
    if (strcmp (((AbDelta *) to->deltas->pdata[i])->from, from) == 0)
      {
        ab_delta_free (g_ptr_array_steal_index (to->deltas, i));
        g_ptr_array_insert (to->deltas, (int) i, delta);
        return TRUE;
      }
  g_ptr_array_add (to->deltas, delta);
  return TRUE;
}

/* A delta in the repo that no signed manifest lists (and that this run
 * will not check and list itself) makes the summary unsignable: refused
 * before anything is generated, so a refused run leaves no new delta
 * behind that would block every later publish. */
static gboolean
check_before_generating (Session *s, const AbManifest *m, const AbRelease *newest,
                         GPtrArray *sources, GError **error)
{
  if (s->p->gpg_key == NULL)
    return TRUE;
  g_autoptr(GHashTable) wanted = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  for (guint i = 0; i < sources->len; i++)
    g_hash_table_add (wanted, g_strconcat (((AbRelease *) sources->pdata[i])->commit, "-",
                                           newest->commit, NULL));
  return check_repo_deltas_except (s, m, wanted, error);
}

AbManifest *
ab_publish_deltas (const AbPublisher *p, const char *channel, guint from_last, GError **error)
{
  g_auto(Session) s = SESSION_INIT;
  if (!check_channel (channel, error))
    return NULL;
  if (from_last > MAX_FROM_LAST)
    {
      usage (error, "--from-last must be from 1 to 100");
      return NULL;
    }
  if (!session_open_signer (&s, p, error))
    return NULL;
  g_autoptr(AbManifest) m = load_checked_manifest (&s, channel, FALSE, error);
  if (m == NULL)
    return NULL;
  AbRelease *newest = (AbRelease *) ab_manifest_newest (m);
  if (newest == NULL)
    {
      g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_NOT_FOUND,
                   "Channel %s has no release to make deltas for", channel);
      return NULL;
    }
  g_autoptr(GPtrArray) sources = delta_sources (m, newest, from_last ? from_last : 1);
  if (!check_before_generating (&s, m, newest, sources, error))
    return NULL;
  for (guint i = 0; i < sources->len; i++)
    if (!add_delta (&s, newest, ((AbRelease *) sources->pdata[i])->commit, error))
      return NULL;
  if (!update_summary (&s, m, error))
    return NULL;
  return write_manifest (&s, g_steal_pointer (&m), error);
}
