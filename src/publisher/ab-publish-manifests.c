/* Publisher: reading, checking, stamping, signing and writing channel
 * manifests, and what the repo records as published. */
#include "config.h"
#include "ab-publish-private.h"
#include "ab-util.h"
#include "ab-content.h"
#include "ab-fsutil.h"
#include "ab-gpg.h"
#include "publisher/ab-manifest-write.h"

#include <string.h>

/* ---- channel manifests ---- */

char *
ab_publish_manifest_path (const char *channel, const char *suffix)
{
  return g_strconcat (AB_PUBLISH_CHANNELS_DIR "/", channel, ".json", suffix, NULL);
}

static AbManifest *
parse_manifest (AbPublishSession *s, const char *channel, const char *path, const char *data,
                gsize len, GError **error)
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
gboolean
ab_publish_read_optional (AbPublishSession *s, const char *path, GBytes **out, GError **error)
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
channel_missing (AbPublishSession *s, const char *channel, const char *path, GError **error)
{
  g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_NOT_FOUND,
               "Channel %s does not exist in %s (no %s); release a version to it first",
               channel, s->p->repo, path);
  return FALSE;
}

/* Reads CHANNEL's manifest, unchecked; a missing one is a new, empty
 * manifest when CREATE, else AB_PUBLISH_ERROR_NOT_FOUND. */
static AbManifest *
load_manifest (AbPublishSession *s, const char *channel, gboolean create, GError **error)
{
  g_autofree char *path = ab_publish_manifest_path (channel, "");
  g_autoptr(GBytes) data = NULL;
  if (!ab_publish_read_optional (s, path, &data, error))
    return NULL;
  if (data == NULL)
    return create ? ab_manifest_new (channel) : (channel_missing (s, channel, path, error), NULL);
  gsize len = 0;
  const char *text = g_bytes_get_data (data, &len);
  return parse_manifest (s, channel, path, text, len, error);
}

static gboolean
refuse_channel (AbPublishSession *s, GError **error, const char *channel, const char *problem,
                const char *fix)
{
  g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_REFUSED,
               "Refusing to sign channel %s of %s: %s. Nothing was written. %s", channel,
               s->p->repo, problem, fix);
  return FALSE;
}

#define FIX_RESTORE "Restore the channel's manifest and its .sig from the last good copy (a " \
  "backup, a mirror, or an earlier generation in REPO/abdeploy/channels.N/)"

static gboolean
check_manifest_signature (AbPublishSession *s, const char *channel, GBytes *data, GBytes *sig,
                          GError **error)
{
  g_autofree char *path = ab_publish_manifest_path (channel, "");
  g_autoptr(GError) local = NULL;
  if (sig == NULL)
    {
      g_autofree char *problem = g_strdup_printf ("%s has no signature file %s.sig", path, path);
      return refuse_channel (s, error, channel, problem, FIX_RESTORE);
    }
  if (ab_publish_signature_is_publishers (s, data, sig, &local))
    return TRUE;
  g_autofree char *problem = g_strdup_printf ("the signature of %s does not verify (%s): the "
                                              "manifest was changed after it was signed, or "
                                              "signed with another key", path, local->message);
  return refuse_channel (s, error, channel, problem,
                         FIX_RESTORE ". After a change of signing key, name the old key's "
                         "public key with --trusted-keys=DIR.");
}

/* Every release of M (as it is about to be signed) is the commit its
 * version ref names, and that commit is in the repo and signed by the
 * publisher. */
static gboolean
check_releases (AbPublishSession *s, const AbManifest *m, GError **error)
{
  for (guint i = 0; i < m->releases->len; i++)
    {
      const AbRelease *r = m->releases->pdata[i];
      g_autofree char *ref = ab_publish_version_ref (r->version), *at = NULL, *problem = NULL;
      gboolean have = FALSE, trusted = FALSE;
      if (!ostree_repo_resolve_rev (s->repo, ref, TRUE, &at, error)
          || !ostree_repo_has_object (s->repo, OSTREE_OBJECT_TYPE_COMMIT, r->commit, &have, NULL,
                                      error)
          || (have && !ab_publish_commit_is_trusted (s, r->commit, &trusted, error)))
        return FALSE;
      g_autofree char *has = have ? ab_content_commit_version (s->repo, r->commit, NULL) : NULL;
      const char *own = r->promoted_from ? r->promoted_from : r->version;
      if (at == NULL || strcmp (at, r->commit) != 0)
        problem = g_strdup_printf ("it lists version %s as commit %s, but ref %s is %s",
                                   r->version, r->commit, ref, at ? at : "missing");
      else if (has != NULL && strcmp (has, own) != 0)
        problem = g_strdup_printf ("it lists version %s%s%s as commit %s, whose own version "
                                   "is %s", r->version, r->promoted_from ? ", promoted from " : "",
                                   r->promoted_from ? r->promoted_from : "", r->commit, has);
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
 * the publisher's (ab_publish_write_manifest() then checks its releases
 * against the repo). A missing manifest is a new, empty one when CREATE. */
AbManifest *
ab_publish_load_checked_manifest (AbPublishSession *s, const char *channel, gboolean create,
                                  GError **error)
{
  g_autofree char *path = ab_publish_manifest_path (channel, "");
  g_autofree char *sig_path = ab_publish_manifest_path (channel, ".sig");
  g_autoptr(GBytes) data = NULL, sig = NULL;
  if (!ab_publish_read_optional (s, path, &data, error)
      || !ab_publish_read_optional (s, sig_path, &sig, error))
    return NULL;
  if (data == NULL)
    return create ? ab_manifest_new (channel) : (channel_missing (s, channel, path, error), NULL);
  if (!check_manifest_signature (s, channel, data, sig, error))
    return NULL;
  gsize len = 0;
  const char *text = g_bytes_get_data (data, &len);
  return parse_manifest (s, channel, path, text, len, error);
}

/* New serial and validity window; the rest of M is the caller's. The
 * serial never wraps: at AB_MANIFEST_MAX_SERIAL the channel is full. */
static gboolean
stamp_manifest (AbPublishSession *s, AbManifest *m, GError **error)
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
  m->issued_at = ab_publish_format_time (now);
  m->expires_at = ab_publish_format_time (expires);
  return TRUE;
}

/* Stamps, signs and publishes M with its signature. The signature is made
 * before anything is written, so a signing failure changes nothing; the
 * channel files switch in one rename (see "channel generations"). */
AbManifest *
ab_publish_write_manifest (AbPublishSession *s, AbManifest *m_in, GError **error)
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
  if (!ab_publish_channel_files (s, name, data, sig, error))
    {
      g_prefix_error (error, "Writing channel %s: ", m->channel);
      return NULL;
    }
  return g_steal_pointer (&m);
}

/* Every channel manifest of the repo. */
GPtrArray *
ab_publish_load_all_manifests (AbPublishSession *s, GError **error)
{
  g_autoptr(GPtrArray) all = g_ptr_array_new_with_free_func ((GDestroyNotify) ab_manifest_free);
  g_autofree char *dir_path = g_build_filename (s->p->repo, AB_PUBLISH_CHANNELS_DIR, NULL);
  g_autoptr(GDir) dir = g_dir_open (dir_path, 0, NULL);
  const char *name;
  while (dir && (name = g_dir_read_name (dir)) != NULL)
    {
      /* C.json; the index (_index.json) and dot files are no channels */
      if (!g_str_has_suffix (name, ".json") || !g_ascii_isalnum (name[0]))
        continue;
      g_autofree char *channel = g_strndup (name, strlen (name) - strlen (".json"));
      AbManifest *m = load_manifest (s, channel, FALSE, error);
      if (m == NULL)
        return NULL;
      g_ptr_array_add (all, m);
    }
  return g_steal_pointer (&all);
}

/* Whether the ref of VERSION may name a commit of version HAS (HAS !=
 * VERSION): only as an alias made by promote --as, that is when HAS has a
 * ref of its own, another one, naming the same commit. */
static gboolean
is_promotion_alias (AbPublishSession *s, const char *version, const char *has,
                    const char *commit, GError **error, gboolean *out)
{
  g_autofree char *ref = ab_publish_version_ref (version);
  g_autofree char *own_ref = ab_publish_version_ref (has);
  g_autofree char *own = NULL;
  *out = FALSE;
  if (strcmp (ref, own_ref) == 0 || !ab_publish_check_version (has, NULL))
    return TRUE;
  if (!ostree_repo_resolve_rev (s->repo, own_ref, TRUE, &own, error))
    return FALSE;
  *out = own != NULL && strcmp (own, commit) == 0;
  return TRUE;
}

/* The commit a version ref names carries that version in its metadata: a
 * version that is not SemVer can share the ref of one with build metadata
 * (1.0_1 and 1.0+1 would not, 1.0.0_1 and 1.0.0+1 would). The one
 * exception is a promotion alias (is_promotion_alias()). */
static gboolean
check_ref_version (AbPublishSession *s, const char *ref, const char *commit, const char *version,
                   GError **error)
{
  g_autoptr(GError) local = NULL;
  g_autofree char *has = ab_content_commit_version (s->repo, commit, &local);
  gboolean alias = FALSE;
  if (local != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  if (has == NULL || strcmp (has, version) == 0)
    return TRUE;
  if (!is_promotion_alias (s, version, has, commit, error, &alias))
    return FALSE;
  if (alias)
    return TRUE;
  g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_CONFLICT,
               "Ref %s names commit %s of version %s, not %s: the two versions share a ref "
               "name; pick another version", ref, commit, has, version);
  return FALSE;
}

/* A version that prune dropped from its last channel stays published: it
 * never names another commit (its own is gone from the repo). */
static gboolean
check_not_pruned (AbPublishSession *s, const char *version, GError **error)
{
  g_autoptr(GHashTable) pruned = ab_publish_load_pruned (s, error);
  const char *commit = pruned ? g_hash_table_lookup (pruned, version) : NULL;
  if (pruned == NULL)
    return FALSE;
  if (commit == NULL)
    return TRUE;
  g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_CONFLICT,
               "version %s was published as commit %s and has been pruned (publish prune, "
               "recorded in %s/abdeploy/pruned-versions); published versions never change: "
               "bump the version", version, commit, s->p->repo);
  return FALSE;
}

/* The one commit VERSION is published as (version ref and every manifest),
 * or NULL when it is not published. Disagreeing records are a ab_publish_conflict. */
gboolean
ab_publish_published_commit (AbPublishSession *s, const char *version, char **out_commit,
                             char **out_where, GError **error)
{
  g_autofree char *ref = ab_publish_version_ref (version);
  g_autofree char *found = NULL;
  if (!ostree_repo_resolve_rev (s->repo, ref, TRUE, &found, error)
      || (found && !check_ref_version (s, ref, found, version, error)))
    return FALSE;
  g_autofree char *where = g_strdup_printf ("ref %s", ref);
  g_autoptr(GPtrArray) all = ab_publish_load_all_manifests (s, error);
  if (all == NULL)
    return FALSE;
  for (guint i = 0; i < all->len; i++)
    {
      const AbManifest *m = all->pdata[i];
      const AbRelease *r = ab_manifest_find (m, version);
      if (r == NULL)
        continue;
      if (found != NULL && strcmp (found, r->commit) != 0)
        return ab_publish_conflict (error, version, found, where);
      if (found == NULL)
        {
          found = g_strdup (r->commit);
          g_free (where);
          where = g_strdup_printf ("channel %s", m->channel);
        }
    }
  if (found == NULL && !check_not_pruned (s, version, error))
    return FALSE;
  *out_commit = g_steal_pointer (&found);
  if (out_where)
    *out_where = g_steal_pointer (&where);
  return TRUE;
}

/* Fails unless VERSION is unpublished or published as COMMIT. */
gboolean
ab_publish_check_same_commit (AbPublishSession *s, const char *version, const char *commit,
                              GError **error)
{
  g_autofree char *published = NULL;
  g_autofree char *where = NULL;
  if (!ab_publish_published_commit (s, version, &published, &where, error))
    return FALSE;
  if (published != NULL && strcmp (published, commit) != 0)
    return ab_publish_conflict (error, version, published, where);
  return TRUE;
}

gboolean
ab_publish_need_commit_object (AbPublishSession *s, const char *commit, const char *version,
                               GError **error)
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

AbRelease *
ab_publish_need_release (AbManifest *m, const char *version, GError **error)
{
  AbRelease *r = ab_manifest_lookup (m, version);
  if (r == NULL)
    g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_NOT_FOUND,
                 "Version %s is not released in channel %s", version, m->channel);
  return r;
}
