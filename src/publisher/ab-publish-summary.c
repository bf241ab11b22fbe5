/* Publisher: the repo summary, signed only when every delta it lists is checked. */
#include "config.h"
#include "ab-publish-private.h"
#include "ab-util.h"

#include <string.h>

/* ---- summary ---- */

static void
add_superblock (const AbDelta *d, GHashTable *known)
{
  const AbDeltaFile *f = d->files->pdata[0];
  g_hash_table_add (known, g_strconcat (f->path, " ", f->sha256, NULL));
}

/* Adds "PATH SHA256" of the superblock of every delta M lists (full deltas
 * included) to KNOWN. */
static void
add_listed_superblocks (const AbManifest *m, GHashTable *known)
{
  for (guint j = 0; j < m->releases->len; j++)
    {
      const AbRelease *r = m->releases->pdata[j];
      for (guint k = 0; k < r->deltas->len; k++)
        add_superblock (r->deltas->pdata[k], known);
      if (r->full_delta != NULL)
        add_superblock (r->full_delta, known);
    }
}

/* KNOWN gets the superblocks listed by every channel manifest whose
 * signature is the publisher's, and by PENDING (checked, about to be signed). */
static gboolean
collect_listed_superblocks (AbPublishSession *s, const AbManifest *pending, GHashTable *known,
                            GError **error)
{
  g_autoptr(GPtrArray) all = ab_publish_load_all_manifests (s, error);
  for (guint i = 0; all && i < all->len; i++)
    {
      const AbManifest *m = all->pdata[i];
      g_autofree char *path = ab_publish_manifest_path (m->channel, "");
      g_autofree char *sig_path = ab_publish_manifest_path (m->channel, ".sig");
      g_autoptr(GBytes) data = NULL, sig = NULL;
      if (!ab_publish_read_optional (s, path, &data, error)
          || !ab_publish_read_optional (s, sig_path, &sig, error))
        return FALSE;
      if (data != NULL && sig != NULL && ab_publish_signature_is_publishers (s, data, sig, NULL))
        add_listed_superblocks (m, known);
    }
  if (pending)
    add_listed_superblocks (pending, known);
  return all != NULL;
}

/* Every static delta of the repo, which the summary lists, is one that a
 * signed channel manifest lists with the same superblock: the summary is
 * only signed when it names nothing unchecked. */
gboolean
ab_publish_check_repo_deltas_except (AbPublishSession *s, const AbManifest *pending,
                                     GHashTable *skip, GError **error)
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
      /* "FROM-TO", or "TO" alone for a full delta (from nothing) */
      g_autofree char *from = dash ? g_strndup (name, dash - name) : NULL;
      const char *to = dash ? dash + 1 : name;
      gboolean named = ab_is_commit_checksum (to) && (!from || ab_is_commit_checksum (from));
      g_autofree char *dir = named ? ab_publish_delta_dir (from, to) : NULL;
      g_autofree char *sb = dir ? g_build_filename (dir, "superblock", NULL) : NULL;
      g_autofree char *hex = NULL, *key = NULL;
      guint64 size = 0;
      gboolean ok = sb && ab_publish_sha256_file (s->dfd, sb, &hex, &size, NULL)
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

gboolean
ab_publish_check_repo_deltas (AbPublishSession *s, const AbManifest *pending, GError **error)
{
  return ab_publish_check_repo_deltas_except (s, pending, NULL, error);
}

/* The summary lists refs and deltas for plain ostree clients; it is signed
 * when a key is at hand, and then only when every delta it lists is listed
 * by a signed manifest or by PENDING (the manifest about to be signed). */
gboolean
ab_publish_update_summary (AbPublishSession *s, const AbManifest *pending, GError **error)
{
  if (s->p->gpg_key != NULL && !ab_publish_check_repo_deltas (s, pending, error))
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
