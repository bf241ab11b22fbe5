/* Publisher: publish deltas. */
#include "config.h"
#include "ab-publish-private.h"
#include "ab-sha256.h"
#include "ab-util.h"
#include "ab-fsutil.h"
#include "ab-version.h"

#include <string.h>

#define MAX_FROM_LAST 100

/* ---- publish deltas ---- */

/* Where libostree stores the static delta FROM → TO, relative to the repo:
 * deltas/<2 chars>/<rest>-<to>, in its modified base64 of the checksums;
 * from nothing (FROM NULL, a full delta): deltas/<2 chars>/<rest> of TO. */
char *
ab_publish_delta_dir (const char *from, const char *to)
{
  g_autofree guchar *to_bin = ostree_checksum_to_bytes (to);
  g_autofree char *to_b64 = ostree_checksum_b64_from_bytes (to_bin);
  if (from == NULL)
    return g_strdup_printf ("deltas/%.2s/%s", to_b64, to_b64 + 2);
  g_autofree guchar *from_bin = ostree_checksum_to_bytes (from);
  g_autofree char *from_b64 = ostree_checksum_b64_from_bytes (from_bin);
  return g_strdup_printf ("deltas/%.2s/%s-%s", from_b64, from_b64 + 2, to_b64);
}

/* What DIR holds: "the delta from F to T" or "the full delta to T". */
static char *
delta_name (const char *from, const char *to)
{
  return from ? g_strdup_printf ("the delta from %s to %s", from, to)
              : g_strdup_printf ("the full delta (from nothing) to %s", to);
}

static gboolean
generate_delta (AbPublishSession *s, const char *from, const char *to, const char *dir,
                GError **error)
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
      g_autofree char *what = delta_name (from, to);
      g_prefix_error (error, "Generating %s: ", what);
      return FALSE;
    }
  if (!ab_fs_exists_at (s->dfd, superblock))
    {
      g_autofree char *what = delta_name (from, to);
      g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_FAILED,
                   "libostree did not write %s to %s", what, dir);
      return FALSE;
    }
  return TRUE;
}

/* ---- checking a delta before it is listed ----
 * Invariant: a delta is listed (and so signed) only when its superblock
 * names FROM and TO (for a full delta: no FROM), carries TO's commit object, has no fallback objects
 * (devices apply deltas offline), and every part it lists is on disk with
 * the SHA-256 the superblock records. The files listed are the superblock
 * and those parts, nothing else the directory may hold. */

/* OSTREE_STATIC_DELTA_SUPERBLOCK_FORMAT of libostree (a private header). */
#define SUPERBLOCK_TYPE "(a{sv}tayay(a{sv}aya(say)sstayay)aya(uayttay)a(yaytt))"

static gboolean
bad_delta (AbPublishSession *s, GError **error, const char *dir, const char *from, const char *to,
           const char *why)
{
  g_autofree char *what = delta_name (from, to);
  g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_REFUSED,
               "Refusing to list the delta in %s/%s: %s, so it is not %s "
               "that abdeploy publish makes. Nothing was written. Remove the directory (rm -r "
               "%s/%s) and run publish deltas again to generate it", s->p->repo, dir, why, what,
               s->p->repo, dir);
  return FALSE;
}

/* BYTES is the checksum HEX; HEX NULL: BYTES is empty (no FROM). */
static gboolean
checksum_is (GVariant *bytes, const char *hex)
{
  if (hex == NULL)
    return g_variant_n_children (bytes) == 0;
  if (g_variant_n_children (bytes) != OSTREE_SHA256_DIGEST_LEN)
    return FALSE;
  g_autofree char *h = ostree_checksum_from_bytes_v (bytes);
  return strcmp (h, hex) == 0;
}

/* Appends DIR/NAME with its size and SHA-256 to DELTA; *out_hex (optional)
 * gets the SHA-256. */
static gboolean
add_delta_file (AbPublishSession *s, AbDelta *delta, const char *dir, const char *name,
                char **out_hex, GError **error)
{
  g_autofree char *rel = g_build_filename (dir, name, NULL);
  g_autofree char *hex = NULL;
  guint64 size = 0;
  if (!ab_publish_sha256_file (s->dfd, rel, &hex, &size, error))
    return FALSE;
  g_ptr_array_add (delta->files, ab_delta_file_new (rel, size, hex));
  delta->size += size;
  if (out_hex)
    *out_hex = g_steal_pointer (&hex);
  return TRUE;
}

static GVariant *
read_superblock (AbPublishSession *s, const char *dir, GError **error)
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
  g_autofree char *sum = ab_sha256_hex (g_variant_get_data (commit),
                                        g_variant_get_size (commit));
  if (strcmp (sum, to) != 0)
    return "the commit object in its superblock is not the commit it leads to";
  if (g_variant_n_children (fallbacks) > 0)
    return "it has fallback objects, which devices cannot apply offline";
  return NULL;
}

/* The files of the delta FROM → TO in DIR, checked (see above). */
static AbDelta *
check_delta (AbPublishSession *s, const char *from, const char *to, const char *dir, GError **error)
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

/* Generates (unless present) and lists the delta FROM → TO->commit in TO;
 * FROM NULL: the full delta (issue 18), TO->full_delta. */
static gboolean
add_delta (AbPublishSession *s, AbRelease *to, const char *from, GError **error)
{
  g_autofree char *dir = ab_publish_delta_dir (from, to->commit);
  if (!generate_delta (s, from, to->commit, dir, error))
    return FALSE;
  AbDelta *delta = check_delta (s, from, to->commit, dir, error);
  if (delta == NULL)
    return FALSE;
  if (from == NULL)
    {
      ab_delta_free (to->full_delta);
      to->full_delta = delta;
      return TRUE;
    }
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
check_before_generating (AbPublishSession *s, const AbManifest *m, const AbRelease *newest,
                         GPtrArray *sources, gboolean full_delta, GError **error)
{
  if (s->p->gpg_key == NULL)
    return TRUE;
  g_autoptr(GHashTable) wanted = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  for (guint i = 0; i < sources->len; i++)
    g_hash_table_add (wanted, g_strconcat (((AbRelease *) sources->pdata[i])->commit, "-",
                                           newest->commit, NULL));
  /* libostree names a full delta by its TO alone */
  if (full_delta)
    g_hash_table_add (wanted, g_strdup (newest->commit));
  return ab_publish_check_repo_deltas_except (s, m, wanted, error);
}

AbManifest *
ab_publish_deltas (const AbPublisher *p, const char *channel, guint from_last,
                   gboolean full_delta, gboolean packs, GError **error)
{
  g_auto(AbPublishSession) s = AB_PUBLISH_SESSION_INIT;
  if (!ab_publish_check_channel (channel, error))
    return NULL;
  if (from_last > MAX_FROM_LAST)
    {
      ab_publish_usage (error, "--from-last must be from 1 to 100");
      return NULL;
    }
  if (!ab_publish_session_open_signer (&s, p, error))
    return NULL;
  g_autoptr(AbManifest) m = ab_publish_load_checked_manifest (&s, channel, FALSE, error);
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
  if (!check_before_generating (&s, m, newest, sources, full_delta, error))
    return NULL;
  ab_event_phase (p->events, "generate");
  for (guint i = 0; i < sources->len; i++)
    if (!add_delta (&s, newest, ((AbRelease *) sources->pdata[i])->commit, error))
      return NULL;
  if (full_delta && !add_delta (&s, newest, NULL, error))
    return NULL;
  ab_event_phase (p->events, "packs");
  if (packs && !ab_publish_add_packs (&s, newest, error))
    return NULL;
  ab_event_phase (p->events, "summary");
  if (!ab_publish_update_summary (&s, m, error))
    return NULL;
  ab_event_phase (p->events, "manifest");
  return ab_publish_write_manifest (&s, g_steal_pointer (&m), error);
}
