/* Publisher: publish release, promote, deprecate and refresh. */
#include "config.h"
#include "ab-publish-private.h"
#include "ab-util.h"
#include "ab-version.h"

#include <string.h>

/* ---- publish release / promote / deprecate / refresh ---- */

static char *
now_iso8601 (void)
{
  g_autoptr(GDateTime) now = g_date_time_new_now_utc ();
  return ab_publish_format_time (now);
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

/* Adds a release of TEMPLATE to M, or sets the rollout of the one M has;
 * O's security mark and notes are added to either when set, and the
 * commit's size index file, when the repo has one, is listed. */
static gboolean
put_release (AbPublishSession *s, AbManifest *m, const AbRelease *template,
             const AbPublishReleaseOptions *o, GError **error)
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
  r->rollout = o->rollout ? o->rollout : 100;
  r->security = r->security || o->security;
  if (o->notes != NULL)
    {
      ab_release_notes_free (r->notes);
      r->notes = ab_release_notes_copy (o->notes);
    }
  return ab_publish_describe_size_index (s, r->commit, &r->size_index, error);
}

AbManifest *
ab_publish_release_with (const AbPublisher *p, const char *channel, const char *version,
                         const AbPublishReleaseOptions *o, GError **error)
{
  g_auto(AbPublishSession) s = AB_PUBLISH_SESSION_INIT;
  if (!ab_publish_check_channel (channel, error) || !ab_publish_check_version (version, error)
      || !ab_publish_check_rollout (o->rollout, error)
      || !ab_publish_session_open_signer (&s, p, error)
      || !ab_publish_check_stable (&s, channel, version, error))
    return NULL;
  g_autofree char *ref = ab_publish_version_ref (version);
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
  g_autoptr(AbManifest) m = ab_publish_load_checked_manifest (&s, channel, TRUE, error);
  if (m == NULL || !ab_publish_check_same_commit (&s, version, commit, error))
    return NULL;
  g_autoptr(AbRelease) template = ab_release_new (version, commit, NULL, 100);
  if (!put_release (&s, m, template, o, error))
    return NULL;
  return ab_publish_write_manifest (&s, g_steal_pointer (&m), error);
}

AbManifest *
ab_publish_release (const AbPublisher *p, const char *channel, const char *version, guint rollout,
                    GError **error)
{
  AbPublishReleaseOptions o = { .rollout = rollout };
  return ab_publish_release_with (p, channel, version, &o, error);
}

static gboolean
check_promote_args (const char *from, const char *to, const char *version, const char *as,
                    guint rollout, GError **error)
{
  if (!ab_publish_check_channel (from, error) || !ab_publish_check_channel (to, error)
      || !ab_publish_check_version (version, error) || !ab_publish_check_version (as, error)
      || !ab_publish_check_rollout (rollout, error))
    return FALSE;
  if (strcmp (from, to) == 0)
    return ab_publish_usage (error, "--from and --to name the same channel");
  return TRUE;
}

/* The release of VERSION in FROM, which may be promoted (not deprecated). */
static AbRelease *
promotable_release (AbPublishSession *s, const char *from, const char *version, GError **error)
{
  g_autoptr(AbManifest) src = ab_publish_load_checked_manifest (s, from, FALSE, error);
  const AbRelease *r = src ? ab_publish_need_release (src, version, error) : NULL;
  if (r == NULL)
    return NULL;
  if (r->deprecated != NULL)
    {
      g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_FAILED,
                   "Version %s is deprecated in channel %s (%s); refusing to promote it",
                   version, from, r->deprecated);
      return NULL;
    }
  return ab_release_copy (r);
}

/* R (a copy of the source release) becomes release AS: the same commit,
 * promoted_from its version (or the source's own promoted_from, so that it
 * always names the commit's own version), and the ref of AS names the
 * commit, listed in the regenerated summary as publish commit lists a new
 * ref (crash before the manifest is written: the ref alone, which a
 * second run accepts, and then lists). */
static gboolean
rename_release (AbPublishSession *s, AbRelease *r, const char *as, GError **error)
{
  if (strcmp (r->version, as) == 0)
    return TRUE;
  char *own = r->promoted_from ? r->promoted_from : g_strdup (r->version);
  r->promoted_from = g_strcmp0 (own, as) == 0 ? (g_free (own), NULL) : own;
  g_free (r->version);
  r->version = g_strdup (as);
  g_autofree char *ref = ab_publish_version_ref (as);
  return ab_publish_check_same_commit (s, as, r->commit, error)
         && ostree_repo_set_ref_immediate (s->repo, NULL, ref, r->commit, NULL, error)
         && ab_publish_update_summary (s, NULL, error);
}

AbManifest *
ab_publish_promote_as (const AbPublisher *p, const char *from, const char *to,
                       const char *version, const char *as, guint rollout, GError **error)
{
  g_auto(AbPublishSession) s = AB_PUBLISH_SESSION_INIT;
  if (as == NULL)
    as = version;
  if (!check_promote_args (from, to, version, as, rollout, error)
      || !ab_publish_session_open_signer (&s, p, error)
      || !ab_publish_check_stable (&s, to, as, error))
    return NULL;
  g_autoptr(AbRelease) r = promotable_release (&s, from, version, error);
  if (r == NULL)
    return NULL;
  g_autoptr(AbManifest) dst = ab_publish_load_checked_manifest (&s, to, TRUE, error);
  if (dst == NULL || !ab_publish_need_commit_object (&s, r->commit, version, error)
      || !ab_publish_check_same_commit (&s, version, r->commit, error)
      || !rename_release (&s, r, as, error))
    return NULL;
  AbPublishReleaseOptions o = { .rollout = rollout };
  if (!put_release (&s, dst, r, &o, error))
    return NULL;
  return ab_publish_write_manifest (&s, g_steal_pointer (&dst), error);
}

AbManifest *
ab_publish_promote (const AbPublisher *p, const char *from, const char *to, const char *version,
                    guint rollout, GError **error)
{
  return ab_publish_promote_as (p, from, to, version, NULL, rollout, error);
}

AbManifest *
ab_publish_deprecate (const AbPublisher *p, const char *channel, const char *version,
                      const char *reason, GError **error)
{
  g_auto(AbPublishSession) s = AB_PUBLISH_SESSION_INIT;
  if (!ab_publish_check_channel (channel, error) || !ab_publish_check_version (version, error))
    return NULL;
  if (reason == NULL || *reason == '\0')
    {
      ab_publish_usage (error, "Say why with --reason=TEXT; devices show it");
      return NULL;
    }
  if (!ab_publish_session_open_signer (&s, p, error))
    return NULL;
  g_autoptr(AbManifest) m = ab_publish_load_checked_manifest (&s, channel, FALSE, error);
  AbRelease *r = m ? ab_publish_need_release (m, version, error) : NULL;
  if (r == NULL)
    return NULL;
  g_free (r->deprecated);
  r->deprecated = g_strdup (reason);
  return ab_publish_write_manifest (&s, g_steal_pointer (&m), error);
}

AbManifest *
ab_publish_refresh (const AbPublisher *p, const char *channel, GError **error)
{
  g_auto(AbPublishSession) s = AB_PUBLISH_SESSION_INIT;
  if (!ab_publish_check_channel (channel, error) || !ab_publish_session_open_signer (&s, p, error))
    return NULL;
  AbManifest *m = ab_publish_load_checked_manifest (&s, channel, FALSE, error);
  return m ? ab_publish_write_manifest (&s, m, error) : NULL;
}
