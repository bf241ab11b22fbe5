/* Publisher: publish prune (issue 17, abdeploy-publish(8), prune).
 *
 * Order (crash safety: a manifest never lists a pruned object):
 * 1. the dropped versions are recorded in REPO/abdeploy/pruned-versions
 *    (they stay published: their version never names another commit);
 * 2. the channel's manifest is rewritten without them (signed, serial+1);
 * 3. garbage collection, from the state on disk alone, so that a second
 *    run finishes what a killed one left: the version refs of recorded
 *    versions that no manifest lists are deleted, then the static deltas
 *    to commits nothing reaches any more, then the objects nothing
 *    reaches (ostree_repo_prune_from_reachable()), then the summary.
 * Reachable: every commit a manifest lists (without its parents), every
 * version ref that stays, and every other ref with its history (branches
 * are not rewritten). */
#include "config.h"
#include "ab-publish-private.h"
#include "ab-crashpoint.h"
#include "ab-fsutil.h"
#include "ab-version.h"
#include "ab-util.h"
#include "publisher/ab-manifest-write.h"

#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>

#define PRUNED_PATH "abdeploy/pruned-versions"

void
ab_publish_prune_result_free (AbPublishPruneResult *r)
{
  if (r == NULL)
    return;
  ab_manifest_free (r->manifest);
  g_ptr_array_unref (r->dropped);
  g_ptr_array_unref (r->refs);
  g_ptr_array_unref (r->deltas);
  g_ptr_array_unref (r->packs);
  g_free (r);
}

static AbPublishPruneResult *
result_new (void)
{
  AbPublishPruneResult *r = g_new0 (AbPublishPruneResult, 1);
  r->dropped = g_ptr_array_new_with_free_func ((GDestroyNotify) ab_release_free);
  r->refs = g_ptr_array_new_with_free_func (g_free);
  r->deltas = g_ptr_array_new_with_free_func (g_free);
  r->packs = g_ptr_array_new_with_free_func (g_free);
  return r;
}

/* ---- the record of pruned versions: "VERSION COMMIT" lines ---- */

GHashTable *
ab_publish_load_pruned (AbPublishSession *s, GError **error)
{
  g_autoptr(GHashTable) out = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_autoptr(GBytes) data = NULL;
  if (!ab_publish_read_optional (s, PRUNED_PATH, &data, error))
    return NULL;
  g_autofree char *text = data ? g_strndup (g_bytes_get_data (data, NULL), g_bytes_get_size (data))
                               : g_strdup ("");
  g_auto(GStrv) lines = g_strsplit (text, "\n", -1);
  for (char **l = lines; *l; l++)
    {
      g_auto(GStrv) f = g_strsplit (*l, " ", 3);
      if (**l == '\0')
        continue;
      if (g_strv_length (f) != 2 || !ab_is_commit_checksum (f[1]))
        {
          g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_FAILED,
                       "%s/" PRUNED_PATH ": the line \"%s\" is not \"VERSION COMMIT\"; restore "
                       "the file from a backup", s->p->repo, *l);
          return NULL;
        }
      g_hash_table_replace (out, g_strdup (f[0]), g_strdup (f[1]));
    }
  return g_steal_pointer (&out);
}

static gboolean
record_pruned (AbPublishSession *s, GHashTable *pruned, GPtrArray *dropped, GError **error)
{
  for (guint i = 0; i < dropped->len; i++)
    {
      const AbRelease *r = dropped->pdata[i];
      g_hash_table_replace (pruned, g_strdup (r->version), g_strdup (r->commit));
    }
  g_autoptr(GString) text = g_string_new (NULL);
  g_autoptr(GList) keys = g_list_sort (g_hash_table_get_keys (pruned), (GCompareFunc) strcmp);
  for (GList *k = keys; k; k = k->next)
    g_string_append_printf (text, "%s %s\n", (char *) k->data,
                            (char *) g_hash_table_lookup (pruned, k->data));
  return ab_fs_replace_at (s->dfd, PRUNED_PATH, text->str, text->len, 0644, error);
}

/* ---- which releases go ---- */

static gboolean
listed_elsewhere (GPtrArray *all, const AbManifest *m, const char *commit)
{
  for (guint i = 0; i < all->len; i++)
    {
      const AbManifest *o = all->pdata[i];
      for (guint j = 0; strcmp (o->channel, m->channel) != 0 && j < o->releases->len; j++)
        if (strcmp (((AbRelease *) o->releases->pdata[j])->commit, commit) == 0)
          return TRUE;
    }
  return FALSE;
}

static int
by_precedence_desc (gconstpointer a, gconstpointer b)
{
  const AbRelease *ra = *(AbRelease *const *) a, *rb = *(AbRelease *const *) b;
  return ab_version_order (rb->version, ra->version);
}

/* Whether R is older than DAYS days (DAYS 0: no age limit, always old). */
static gboolean
is_old (const AbRelease *r, int days, GDateTime *now)
{
  if (days <= 0)
    return TRUE;
  g_autoptr(GDateTime) at = g_date_time_new_from_iso8601 (r->published_at, NULL);
  return at != NULL && g_date_time_difference (now, at) > (GTimeSpan) days * G_TIME_SPAN_DAY;
}

/* Moves the releases of M that go into DROPPED: older than DAYS and below
 * the KEEP_LAST newest, but never the newest, the latest (what devices are
 * offered), or one whose commit another channel lists. */
static void
choose (AbManifest *m, GPtrArray *all, int days, guint keep_last, GPtrArray *dropped)
{
  g_autoptr(GDateTime) now = g_date_time_new_now_utc ();
  /* Borrowed pointers (g_ptr_array_copy() would take the free function). */
  g_autoptr(GPtrArray) order = g_ptr_array_sized_new (m->releases->len);
  for (guint i = 0; i < m->releases->len; i++)
    g_ptr_array_add (order, m->releases->pdata[i]);
  g_ptr_array_sort (order, by_precedence_desc);
  const AbRelease *newest = ab_manifest_newest (m), *latest = ab_manifest_latest (m);
  for (guint i = 0; i < order->len; i++)
    {
      AbRelease *r = order->pdata[i];
      gboolean keep = r == newest || r == latest || (keep_last > 0 && i < keep_last)
                      || !is_old (r, days, now) || listed_elsewhere (all, m, r->commit);
      if (!keep)
        g_ptr_array_add (dropped, ab_release_copy (r));
    }
  for (guint i = 0; i < dropped->len; i++)
    {
      const char *v = ((AbRelease *) dropped->pdata[i])->version;
      g_ptr_array_remove (m->releases, ab_manifest_lookup (m, v));
    }
}

/* ---- garbage collection ---- */

typedef struct
{
  AbPublishSession *s;
  GPtrArray *all;       /* every manifest, as it is (or would be) written */
  GHashTable *pruned;   /* version -> commit */
  GHashTable *listed;   /* refs of the versions some manifest lists */
  GHashTable *reachable;
  AbPublishPruneResult *res;
} Gc;

static gboolean
add_reachable (Gc *g, const char *commit, int depth, GError **error)
{
  gboolean have = FALSE;
  if (!ostree_repo_has_object (g->s->repo, OSTREE_OBJECT_TYPE_COMMIT, commit, &have, NULL, error))
    return FALSE;
  return !have || ostree_repo_traverse_commit_union (g->s->repo, commit, depth, g->reachable,
                                                     NULL, error);
}

static gboolean
is_dead_ref (Gc *g, const char *ref)
{
  if (g_hash_table_contains (g->listed, ref))
    return FALSE;
  GHashTableIter it;
  gpointer version;
  g_hash_table_iter_init (&it, g->pruned);
  while (g_hash_table_iter_next (&it, &version, NULL))
    {
      g_autofree char *vref = ab_publish_version_ref (version);
      if (strcmp (vref, ref) == 0)
        return TRUE;
    }
  return FALSE;
}

/* The reachable set, and the version refs that go into G->res->refs. */
static gboolean
mark (Gc *g, GError **error)
{
  for (guint i = 0; i < g->all->len; i++)
    {
      const AbManifest *m = g->all->pdata[i];
      for (guint j = 0; j < m->releases->len; j++)
        {
          const AbRelease *r = m->releases->pdata[j];
          g_hash_table_add (g->listed, ab_publish_version_ref (r->version));
          if (!add_reachable (g, r->commit, 0, error))
            return FALSE;
        }
    }
  g_autoptr(GHashTable) refs = NULL;
  if (!ostree_repo_list_refs (g->s->repo, NULL, &refs, NULL, error))
    return FALSE;
  GHashTableIter it;
  gpointer ref, commit;
  g_hash_table_iter_init (&it, refs);
  while (g_hash_table_iter_next (&it, &ref, &commit))
    {
      gboolean version_ref = g_str_has_prefix (ref, AB_PUBLISH_VERSION_REF_PREFIX);
      if (version_ref && is_dead_ref (g, ref))
        g_ptr_array_add (g->res->refs, g_strdup (ref));
      else if (!add_reachable (g, commit, version_ref ? 0 : -1, error))
        return FALSE;
    }
  return TRUE;
}

guint64
ab_publish_dir_file_bytes (const char *path)
{
  g_autoptr(GDir) d = g_dir_open (path, 0, NULL);
  guint64 sum = 0;
  const char *n;
  while (d && (n = g_dir_read_name (d)) != NULL)
    {
      g_autofree char *f = g_build_filename (path, n, NULL);
      GStatBuf st;
      if (g_lstat (f, &st) == 0 && S_ISREG (st.st_mode))
        sum += (guint64) st.st_size;
    }
  return sum;
}

/* The bytes of the regular files in DIR (relative to the repo). */
static guint64
dir_bytes (AbPublishSession *s, const char *dir)
{
  g_autofree char *path = g_build_filename (s->p->repo, dir, NULL);
  return ab_publish_dir_file_bytes (path);
}

/* Static deltas whose target commit nothing reaches: G->res->deltas
 * ("FROM-TO" names) and their bytes. */
static gboolean
mark_deltas (Gc *g, GPtrArray *targets, GError **error)
{
  g_autoptr(GPtrArray) names = NULL;
  if (!ostree_repo_list_static_delta_names (g->s->repo, &names, NULL, error))
    return FALSE;
  for (guint i = 0; i < names->len; i++)
    {
      /* "FROM-TO", or "TO" alone for a full delta (from nothing) */
      const char *name = names->pdata[i], *dash = strchr (name, '-');
      const char *to = dash ? dash + 1 : name;
      g_autofree char *from = dash ? g_strndup (name, dash - name) : NULL;
      if (!ab_is_commit_checksum (to) || (from != NULL && !ab_is_commit_checksum (from)))
        continue;
      g_autoptr(GVariant) key = ostree_object_name_serialize (to, OSTREE_OBJECT_TYPE_COMMIT);
      if (g_hash_table_contains (g->reachable, key))
        continue;
      g_autofree char *dir = ab_publish_delta_dir (from, to);
      g_ptr_array_add (g->res->deltas, g_strdup (name));
      g_ptr_array_add (targets, g_strdup (to));
      g->res->bytes += dir_bytes (g->s, dir);
    }
  /* the image packs of those commits too (issue 18) */
  ab_publish_packs_garbage (g->s, g->reachable, g->res->packs, &g->res->bytes);
  return TRUE;
}

/* Deletes what mark() and mark_deltas() found: refs, then deltas, then
 * objects (each step leaves a repo whose manifests are whole). */
static gboolean
sweep (Gc *g, GPtrArray *targets, gboolean dry_run, GError **error)
{
  for (guint i = 0; !dry_run && i < g->res->refs->len; i++)
    if (!ostree_repo_set_ref_immediate (g->s->repo, NULL, g->res->refs->pdata[i], NULL, NULL,
                                        error))
      return FALSE;
  ab_crash_point ("prune:refs");
  for (guint i = 0; !dry_run && i < targets->len; i++)
    if (!ostree_repo_prune_static_deltas (g->s->repo, targets->pdata[i], NULL, error))
      return FALSE;
  for (guint i = 0; !dry_run && i < g->res->packs->len; i++)
    if (!ab_publish_packs_remove (g->s, g->res->packs->pdata[i], error))
      return FALSE;
  ab_crash_point ("prune:deltas");
  OstreeRepoPruneOptions opts = { .flags = dry_run ? OSTREE_REPO_PRUNE_FLAGS_NO_PRUNE
                                                   : OSTREE_REPO_PRUNE_FLAGS_NONE,
                                  .reachable = g->reachable };
  gint total = 0, pruned = 0;
  guint64 bytes = 0;
  if (!ostree_repo_prune_from_reachable (g->s->repo, &opts, &total, &pruned, &bytes, NULL, error))
    return FALSE;
  g->res->objects = (guint) pruned;
  g->res->bytes += bytes;
  return ab_publish_prune_size_indexes (g->s, g->reachable, dry_run, &g->res->bytes, error);
}

static gboolean
collect_garbage (AbPublishSession *s, GPtrArray *all, GHashTable *pruned, gboolean dry_run,
                 AbPublishPruneResult *res, GError **error)
{
  g_autoptr(GHashTable) listed = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr(GHashTable) reachable = ostree_repo_traverse_new_reachable ();
  g_autoptr(GPtrArray) targets = g_ptr_array_new_with_free_func (g_free);
  Gc g = { s, all, pruned, listed, reachable, res };
  if (!mark (&g, error) || !mark_deltas (&g, targets, error) || !sweep (&g, targets, dry_run, error))
    return FALSE;
  return dry_run || ab_publish_update_summary (s, NULL, error);
}

/* ---- publish prune ---- */

static gboolean
check_prune_options (AbPublishSession *s, const AbPublishPruneOptions *o, int *out_days,
                     GError **error)
{
  AbPublishChannelPolicy pol;
  if (!ab_publish_channel_policy (s, o->channel, &pol, error))
    return FALSE;
  if (pol.keep_days == AB_PUBLISH_KEEP_FOREVER)
    {
      g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_REFUSED,
                   "Channel %s keeps its releases forever (%s); nothing was pruned. Deprecate "
                   "a release instead, or set [channel %s] keep-days in %s/abdeploy/publish.conf",
                   o->channel, pol.stable ? "a stable channel" : "keep-days=forever",
                   o->channel, s->p->repo);
      return FALSE;
    }
  *out_days = o->keep_days > 0 ? o->keep_days : pol.keep_days;
  if (*out_days == 0 && o->keep_last == 0)
    return ab_publish_usage (error, "Channel has no retention policy: give --keep-days=N or "
                                    "--keep-last=K (or set [channel NAME] keep-days in "
                                    "REPO/abdeploy/publish.conf)");
  return TRUE;
}

/* ALL with CHANNEL's manifest replaced by M (which it then owns). */
static void
replace_manifest (GPtrArray *all, AbManifest *m)
{
  for (guint i = 0; i < all->len; i++)
    if (strcmp (((AbManifest *) all->pdata[i])->channel, m->channel) == 0)
      {
        ab_manifest_free (all->pdata[i]);
        all->pdata[i] = m;
        return;
      }
  g_ptr_array_add (all, m);
}

static gboolean
drop_releases (AbPublishSession *s, const AbPublishPruneOptions *o, int days, GHashTable *pruned,
               GPtrArray *all, AbPublishPruneResult *res, GError **error)
{
  g_autoptr(AbManifest) m = ab_publish_load_checked_manifest (s, o->channel, FALSE, error);
  if (m == NULL)
    return FALSE;
  choose (m, all, days, o->keep_last, res->dropped);
  if (res->dropped->len == 0)
    return TRUE;
  if (o->dry_run)
    {
      replace_manifest (all, g_steal_pointer (&m));
      for (guint i = 0; i < res->dropped->len; i++)
        {
          const AbRelease *r = res->dropped->pdata[i];
          g_hash_table_replace (pruned, g_strdup (r->version), g_strdup (r->commit));
        }
      return TRUE;
    }
  if (!record_pruned (s, pruned, res->dropped, error))
    return FALSE;
  res->manifest = ab_publish_write_manifest (s, g_steal_pointer (&m), error);
  if (res->manifest == NULL)
    return FALSE;
  ab_crash_point ("prune:manifest");
  g_autofree char *text = ab_manifest_serialize (res->manifest);
  AbManifest *copy = ab_manifest_parse (text, strlen (text), error);
  if (copy == NULL)
    return FALSE;
  replace_manifest (all, copy);
  return TRUE;
}

AbPublishPruneResult *
ab_publish_prune (const AbPublisher *p, const AbPublishPruneOptions *o, GError **error)
{
  g_auto(AbPublishSession) s = AB_PUBLISH_SESSION_INIT;
  g_autoptr(AbPublishPruneResult) res = result_new ();
  int days = 0;
  if (!ab_publish_check_channel (o->channel, error)
      || !ab_publish_session_open_signer (&s, p, error)
      || !check_prune_options (&s, o, &days, error))
    return NULL;
  g_autoptr(GPtrArray) all = ab_publish_load_all_manifests (&s, error);
  g_autoptr(GHashTable) pruned = all ? ab_publish_load_pruned (&s, error) : NULL;
  if (pruned == NULL || !drop_releases (&s, o, days, pruned, all, res, error)
      || !collect_garbage (&s, all, pruned, o->dry_run, res, error))
    return NULL;
  return g_steal_pointer (&res);
}
