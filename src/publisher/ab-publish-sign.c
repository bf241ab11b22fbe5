/* Publisher: whose signatures manifests and commits carry, and signing commits. */
#include "config.h"
#include "ab-publish-private.h"
#include "ab-util.h"
#include "ab-gpg.h"

/* The signature SIG of DATA is by the signing key (or, with
 * --trusted-keys, by one of those keys). */
gboolean
ab_publish_signature_is_publishers (AbPublishSession *s, GBytes *data, GBytes *sig, GError **error)
{
  if (s->p->trusted_keys != NULL)
    return ab_gpg_verify_detached (s->p->trusted_keys, data, sig, NULL, error);
  return ab_gpg_verify_detached_by_key (s->p->gpg_homedir, s->p->gpg_key, data, sig, error);
}

/* The commit object's bytes and its detached GPG signatures (NULL: none). */
static gboolean
commit_signatures (AbPublishSession *s, const char *commit, GBytes **out_data, GVariant **out_sigs,
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
commit_signed_by_key (AbPublishSession *s, const char *commit, gboolean *out_signed, GError **error)
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
gboolean
ab_publish_commit_is_trusted (AbPublishSession *s, const char *commit, gboolean *out_ok,
                              GError **error)
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

gboolean
ab_publish_sign_commit (AbPublishSession *s, const char *commit, GError **error)
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
