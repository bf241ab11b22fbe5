/* Channel manifests (abdeploy-manifest(5)).
 *
 * Invariant: ab_manifest_parse() returns a manifest only when every field
 * has the type and range the format defines; callers never re-check. A
 * format version other than AB_MANIFEST_FORMAT is refused, never guessed at.
 * Members this reader does not know are ignored: a change that an older
 * reader must not ignore needs a new format version. */
#include "config.h"
#include "ab-manifest.h"
#include "ab-util.h"
#include "ab-version.h"
#include "ab-protocol.h"
#include "ab-sizes.h"

#include <string.h>

G_DEFINE_QUARK (ab-manifest-error-quark, ab_manifest_error)

/* The header devices send and the manifests they read name one protocol. */
G_STATIC_ASSERT (AB_PROTOCOL == AB_MANIFEST_PROTOCOL);

#define MAX_CHANNEL_LEN 64
#define MAX_ROLLOUT 100

/* ---- construction and destruction ---- */

void
ab_delta_file_free (AbDeltaFile *f)
{
  if (f == NULL)
    return;
  g_free (f->path);
  g_free (f->sha256);
  g_free (f);
}

void
ab_delta_free (AbDelta *d)
{
  if (d == NULL)
    return;
  g_free (d->from);
  g_ptr_array_unref (d->files);
  g_free (d);
}

void
ab_release_notes_free (AbReleaseNotes *n)
{
  if (n == NULL)
    return;
  g_free (n->changed);
  g_free (n->action);
  g_free (n->rollback);
  g_free (n);
}

AbReleaseNotes *
ab_release_notes_copy (const AbReleaseNotes *n)
{
  if (n == NULL)
    return NULL;
  AbReleaseNotes *c = g_new0 (AbReleaseNotes, 1);
  c->changed = g_strdup (n->changed);
  c->action = g_strdup (n->action);
  c->rollback = g_strdup (n->rollback);
  return c;
}

void
ab_release_free (AbRelease *r)
{
  if (r == NULL)
    return;
  g_free (r->promoted_from);
  ab_release_notes_free (r->notes);
  g_free (r->version);
  g_free (r->commit);
  g_free (r->published_at);
  g_free (r->deprecated);
  g_ptr_array_unref (r->deltas);
  ab_delta_free (r->full_delta);
  ab_packs_free (r->packs);
  ab_delta_file_free (r->size_index);
  g_free (r);
}

void
ab_manifest_free (AbManifest *m)
{
  if (m == NULL)
    return;
  g_free (m->channel);
  g_free (m->issued_at);
  g_free (m->expires_at);
  g_ptr_array_unref (m->releases);
  g_free (m);
}

AbDeltaFile *
ab_delta_file_new (const char *path, guint64 size, const char *sha256)
{
  AbDeltaFile *f = g_new0 (AbDeltaFile, 1);
  f->path = g_strdup (path);
  f->size = size;
  f->sha256 = g_strdup (sha256);
  return f;
}

AbDelta *
ab_delta_new (const char *from)
{
  AbDelta *d = g_new0 (AbDelta, 1);
  d->from = g_strdup (from);
  d->files = g_ptr_array_new_with_free_func ((GDestroyNotify) ab_delta_file_free);
  return d;
}

AbDelta *
ab_delta_copy (const AbDelta *d)
{
  AbDelta *c = ab_delta_new (d->from);
  c->size = d->size;
  for (guint j = 0; j < d->files->len; j++)
    {
      const AbDeltaFile *f = d->files->pdata[j];
      g_ptr_array_add (c->files, ab_delta_file_new (f->path, f->size, f->sha256));
    }
  return c;
}

AbPacks *
ab_packs_new (void)
{
  AbPacks *p = g_new0 (AbPacks, 1);
  p->files = g_ptr_array_new_with_free_func ((GDestroyNotify) ab_delta_file_free);
  return p;
}

void
ab_packs_free (AbPacks *p)
{
  if (p == NULL)
    return;
  g_ptr_array_unref (p->files);
  g_free (p);
}

AbPacks *
ab_packs_copy (const AbPacks *p)
{
  if (p == NULL)
    return NULL;
  AbPacks *c = ab_packs_new ();
  c->size = p->size;
  c->unpacked = p->unpacked;
  for (guint j = 0; j < p->files->len; j++)
    {
      const AbDeltaFile *f = p->files->pdata[j];
      g_ptr_array_add (c->files, ab_delta_file_new (f->path, f->size, f->sha256));
    }
  return c;
}

char *
ab_packs_path (const char *commit, guint n)
{
  return g_strdup_printf ("abdeploy/packs/%s/%u.tar.zst", commit, n);
}

AbRelease *
ab_release_new (const char *version, const char *commit, const char *published_at,
                guint rollout)
{
  AbRelease *r = g_new0 (AbRelease, 1);
  r->version = g_strdup (version);
  r->commit = g_strdup (commit);
  r->published_at = g_strdup (published_at);
  r->rollout = rollout;
  r->deltas = g_ptr_array_new_with_free_func ((GDestroyNotify) ab_delta_free);
  return r;
}

AbManifest *
ab_manifest_new (const char *channel)
{
  AbManifest *m = g_new0 (AbManifest, 1);
  m->channel = g_strdup (channel);
  m->releases = g_ptr_array_new_with_free_func ((GDestroyNotify) ab_release_free);
  return m;
}

AbRelease *
ab_release_copy (const AbRelease *r)
{
  AbRelease *c = ab_release_new (r->version, r->commit, r->published_at, r->rollout);
  c->deprecated = g_strdup (r->deprecated);
  c->promoted_from = g_strdup (r->promoted_from);
  c->security = r->security;
  c->notes = ab_release_notes_copy (r->notes);
  for (guint i = 0; i < r->deltas->len; i++)
    g_ptr_array_add (c->deltas, ab_delta_copy (r->deltas->pdata[i]));
  c->full_delta = r->full_delta ? ab_delta_copy (r->full_delta) : NULL;
  c->packs = ab_packs_copy (r->packs);
  if (r->size_index != NULL)
    c->size_index = ab_delta_file_new (r->size_index->path, r->size_index->size,
                                       r->size_index->sha256);
  return c;
}

/* ---- queries ---- */

AbRelease *
ab_manifest_lookup (AbManifest *m, const char *version)
{
  for (guint i = 0; i < m->releases->len; i++)
    {
      AbRelease *r = m->releases->pdata[i];
      if (strcmp (r->version, version) == 0)
        return r;
    }
  return NULL;
}

const AbRelease *
ab_manifest_find (const AbManifest *m, const char *version)
{
  return ab_manifest_lookup ((AbManifest *) m, version);
}

const AbRelease *
ab_manifest_newest (const AbManifest *m)
{
  const AbRelease *best = NULL;
  for (guint i = 0; i < m->releases->len; i++)
    {
      const AbRelease *r = m->releases->pdata[i];
      if (best == NULL || ab_version_order (r->version, best->version) > 0)
        best = r;
    }
  return best;
}

const AbRelease *
ab_manifest_latest (const AbManifest *m)
{
  const AbRelease *best = NULL;
  for (guint i = 0; i < m->releases->len; i++)
    {
      const AbRelease *r = m->releases->pdata[i];
      if (r->deprecated == NULL && (best == NULL || ab_version_order (r->version, best->version) > 0))
        best = r;
    }
  return best;
}

const AbDelta *
ab_release_find_delta (const AbRelease *r, const char *from)
{
  for (guint i = 0; i < r->deltas->len; i++)
    {
      const AbDelta *d = r->deltas->pdata[i];
      if (strcmp (d->from, from) == 0)
        return d;
    }
  return NULL;
}

gboolean
ab_manifest_channel_name_is_valid (const char *channel)
{
  if (channel == NULL || !g_ascii_isalnum (channel[0]) || strlen (channel) > MAX_CHANNEL_LEN)
    return FALSE;
  for (const char *p = channel; *p; p++)
    if (!g_ascii_isalnum (*p) && *p != '.' && *p != '_' && *p != '-')
      return FALSE;
  return TRUE;
}

static GDateTime *
parse_time (const char *s)
{
  return s ? g_date_time_new_from_iso8601 (s, NULL) : NULL;
}

gboolean
ab_manifest_check_fresh (const AbManifest *m, GDateTime *now, guint64 last_serial,
                         GError **error)
{
  g_autoptr(GDateTime) expires = parse_time (m->expires_at);
  if (expires == NULL || g_date_time_compare (now, expires) >= 0)
    {
      g_set_error (error, AB_MANIFEST_ERROR, AB_MANIFEST_ERROR_EXPIRED,
                   "The manifest of channel %s expired at %s: the server offers stale "
                   "metadata (or the clock is wrong); the publisher must re-sign the channel",
                   m->channel, m->expires_at ? m->expires_at : "(unknown)");
      return FALSE;
    }
  if (m->serial < last_serial)
    {
      g_set_error (error, AB_MANIFEST_ERROR, AB_MANIFEST_ERROR_REPLAY,
                   "The manifest of channel %s has serial %" G_GUINT64_FORMAT ", lower than "
                   "serial %" G_GUINT64_FORMAT " accepted before: an old manifest is being "
                   "replayed", m->channel, m->serial, last_serial);
      return FALSE;
    }
  return TRUE;
}

/* ---- parsing ----
 * Each reader takes the JSON path of what it reads ("releases[0].commit"),
 * so that an error names the offending field. */

static gboolean
bad (GError **error, const char *path, const char *what)
{
  g_set_error (error, AB_MANIFEST_ERROR, AB_MANIFEST_ERROR_FORMAT,
               "Malformed channel manifest: %s %s", path, what);
  return FALSE;
}

static char *
member_path (const char *parent, const char *key)
{
  return *parent ? g_strdup_printf ("%s.%s", parent, key) : g_strdup (key);
}

/* A member that must be present; NULL (with error) when it is missing. */
static JsonNode *
need_member (JsonObject *o, const char *parent, const char *key, GError **error)
{
  JsonNode *n = json_object_get_member (o, key);
  if (n == NULL)
    {
      g_autofree char *path = member_path (parent, key);
      bad (error, path, "is missing");
    }
  return n;
}

static gboolean
node_is (JsonNode *n, GType type)
{
  return JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == type;
}

static gboolean
read_string (JsonObject *o, const char *parent, const char *key, char **out, GError **error)
{
  JsonNode *n = need_member (o, parent, key, error);
  if (n == NULL)
    return FALSE;
  g_autofree char *path = member_path (parent, key);
  if (!node_is (n, G_TYPE_STRING) || *json_node_get_string (n) == '\0')
    return bad (error, path, "is not a non-empty string");
  *out = g_strdup (json_node_get_string (n));
  return TRUE;
}

/* An optional string: missing or null gives NULL. */
static gboolean
read_nullable_string (JsonObject *o, const char *parent, const char *key, char **out,
                      GError **error)
{
  JsonNode *n = json_object_get_member (o, key);
  if (n == NULL || JSON_NODE_HOLDS_NULL (n))
    return TRUE;
  return read_string (o, parent, key, out, error);
}

static gboolean
read_uint (JsonObject *o, const char *parent, const char *key, guint64 *out, GError **error)
{
  JsonNode *n = need_member (o, parent, key, error);
  if (n == NULL)
    return FALSE;
  g_autofree char *path = member_path (parent, key);
  if (!node_is (n, G_TYPE_INT64) || json_node_get_int (n) < 0)
    return bad (error, path, "is not a non-negative integer");
  *out = (guint64) json_node_get_int (n);
  return TRUE;
}

static gboolean
read_time (JsonObject *o, const char *parent, const char *key, char **out, GError **error)
{
  if (!read_string (o, parent, key, out, error))
    return FALSE;
  g_autoptr(GDateTime) t = parse_time (*out);
  if (t == NULL)
    {
      g_autofree char *path = member_path (parent, key);
      return bad (error, path, "is not an ISO 8601 time with a time zone");
    }
  return TRUE;
}

static gboolean
read_commit (JsonObject *o, const char *parent, const char *key, char **out, GError **error)
{
  if (!read_string (o, parent, key, out, error))
    return FALSE;
  if (!ab_is_commit_checksum (*out))
    {
      g_autofree char *path = member_path (parent, key);
      return bad (error, path, "is not a commit checksum (64 lowercase hex digits)");
    }
  return TRUE;
}

/* An array member; a missing optional one gives NULL without error. */
static gboolean
read_array (JsonObject *o, const char *parent, const char *key, gboolean optional,
            JsonArray **out, GError **error)
{
  JsonNode *n = json_object_get_member (o, key);
  *out = NULL;
  if (n == NULL && optional)
    return TRUE;
  if (n == NULL)
    return need_member (o, parent, key, error) != NULL;
  g_autofree char *path = member_path (parent, key);
  if (!JSON_NODE_HOLDS_ARRAY (n))
    return bad (error, path, "is not an array");
  *out = json_node_get_array (n);
  return TRUE;
}

static JsonObject *
element_object (JsonArray *a, guint i, const char *path, GError **error)
{
  JsonNode *n = json_array_get_element (a, i);
  if (!JSON_NODE_HOLDS_OBJECT (n))
    {
      bad (error, path, "is not an object");
      return NULL;
    }
  return json_node_get_object (n);
}

/* Delta file paths are relative to the repo root and stay inside deltas/. */
static gboolean
delta_path_is_valid (const char *p)
{
  if (!g_str_has_prefix (p, "deltas/") || strstr (p, "//") != NULL || g_str_has_suffix (p, "/"))
    return FALSE;
  g_auto(GStrv) parts = g_strsplit (p, "/", -1);
  for (char **c = parts; *c; c++)
    if (strcmp (*c, ".") == 0 || strcmp (*c, "..") == 0)
      return FALSE;
  return TRUE;
}

static gboolean
is_sha256_hex (const char *s)
{
  /* Same shape as a commit checksum. */
  return ab_is_commit_checksum (s);
}

/* The "path", "size" and "sha256" of the file entry O at PATH; the shape
 * of the path is the caller's to check. */
static AbDeltaFile *
read_file_entry (JsonObject *o, const char *path, GError **error)
{
  g_autofree char *fpath = NULL, *sha = NULL;
  guint64 size = 0;
  if (!read_string (o, path, "path", &fpath, error) || !read_uint (o, path, "size", &size, error)
      || !read_string (o, path, "sha256", &sha, error))
    return NULL;
  if (!is_sha256_hex (sha))
    {
      g_autofree char *p_sha = member_path (path, "sha256");
      bad (error, p_sha, "is not a SHA-256 (64 lowercase hex digits)");
      return NULL;
    }
  return ab_delta_file_new (fpath, size, sha);
}

static AbDeltaFile *
parse_delta_file (JsonObject *o, const char *path, GError **error)
{
  AbDeltaFile *f = read_file_entry (o, path, error);
  if (f != NULL && !delta_path_is_valid (f->path))
    {
      g_autofree char *p_path = member_path (path, "path");
      bad (error, p_path, "is not a relative path under deltas/");
      g_clear_pointer (&f, ab_delta_file_free);
    }
  return f;
}

/* The "size" and "files" of the delta object O at PATH, into D: at least
 * one file, and "size" is their sum. */
static gboolean
parse_delta_files (JsonObject *o, const char *path, AbDelta *d, GError **error)
{
  JsonArray *files = NULL;
  if (!read_uint (o, path, "size", &d->size, error)
      || !read_array (o, path, "files", FALSE, &files, error))
    return FALSE;
  g_autofree char *p_files = member_path (path, "files");
  g_autofree char *p_size = member_path (path, "size");
  if (json_array_get_length (files) == 0)
    return bad (error, p_files, "is empty");
  guint64 sum = 0;
  for (guint i = 0; i < json_array_get_length (files); i++)
    {
      g_autofree char *fp = g_strdup_printf ("%s[%u]", p_files, i);
      JsonObject *fo = element_object (files, i, fp, error);
      AbDeltaFile *f = fo ? parse_delta_file (fo, fp, error) : NULL;
      if (f == NULL)
        return FALSE;
      g_ptr_array_add (d->files, f);
      /* A sum that wraps would let a small signed size stand for huge files. */
      if (!g_uint64_checked_add (&sum, sum, f->size))
        return bad (error, p_size, "is not the sum of the sizes of its files (they overflow 64 bits)");
    }
  if (sum != d->size)
    return bad (error, p_size, "is not the sum of the sizes of its files");
  return TRUE;
}

static AbDelta *
parse_delta (JsonObject *o, const char *path, const char *to_commit, GError **error)
{
  g_autofree char *from = NULL;
  if (!read_commit (o, path, "from", &from, error))
    return NULL;
  if (strcmp (from, to_commit) == 0)
    {
      g_autofree char *p_from = member_path (path, "from");
      bad (error, p_from, "is the release's own commit");
      return NULL;
    }
  g_autoptr(AbDelta) d = ab_delta_new (from);
  if (!parse_delta_files (o, path, d, error))
    return NULL;
  return g_steal_pointer (&d);
}

/* full_delta (issue 18): optional, null or absent gives none; else an
 * object with "size" and "files" and no "from": it starts from nothing.
 * Readers of 0.2.0 ignore the member. */
static gboolean
parse_full_delta (JsonObject *o, const char *parent, AbRelease *r, GError **error)
{
  JsonNode *n = json_object_get_member (o, "full_delta");
  if (n == NULL || JSON_NODE_HOLDS_NULL (n))
    return TRUE;
  g_autofree char *path = member_path (parent, "full_delta");
  if (!JSON_NODE_HOLDS_OBJECT (n))
    return bad (error, path, "is not an object");
  JsonObject *fo = json_node_get_object (n);
  if (json_object_has_member (fo, "from"))
    return bad (error, path, "has a \"from\" member, but a full delta starts from nothing "
                "(a delta from a commit belongs in \"deltas\")");
  g_autoptr(AbDelta) d = ab_delta_new (NULL);
  if (!parse_delta_files (fo, path, d, error))
    return FALSE;
  r->full_delta = g_steal_pointer (&d);
  return TRUE;
}

/* File I of the packs' "files" array FILES at P_FILES, into P: its path
 * must be exactly ab_packs_path (COMMIT, I). */
static gboolean
parse_pack_file (JsonArray *files, guint i, const char *p_files, const char *commit, AbPacks *p,
                 GError **error)
{
  g_autofree char *fp = g_strdup_printf ("%s[%u]", p_files, i);
  JsonObject *fo = element_object (files, i, fp, error);
  AbDeltaFile *f = fo ? read_file_entry (fo, fp, error) : NULL;
  if (f == NULL)
    return FALSE;
  g_ptr_array_add (p->files, f);
  g_autofree char *want = ab_packs_path (commit, i);
  if (strcmp (f->path, want) != 0)
    {
      g_autofree char *p_path = member_path (fp, "path");
      g_autofree char *what = g_strdup_printf ("is not \"%s\" (pack %u of the release's commit)",
                                               want, i);
      return bad (error, p_path, what);
    }
  return TRUE;
}

/* The "files" of the packs object O at PATH, into P: 1..AB_PACKS_MAX_FILES
 * entries whose sizes add up to "size". */
static gboolean
parse_pack_files (JsonObject *o, const char *path, const char *commit, AbPacks *p,
                  GError **error)
{
  JsonArray *files = NULL;
  if (!read_array (o, path, "files", FALSE, &files, error))
    return FALSE;
  g_autofree char *p_files = member_path (path, "files");
  g_autofree char *p_size = member_path (path, "size");
  guint n = json_array_get_length (files);
  if (n == 0)
    return bad (error, p_files, "is empty");
  if (n > AB_PACKS_MAX_FILES)
    return bad (error, p_files, "lists more than " G_STRINGIFY (AB_PACKS_MAX_FILES) " packs");
  guint64 sum = 0;
  for (guint i = 0; i < n; i++)
    {
      if (!parse_pack_file (files, i, p_files, commit, p, error))
        return FALSE;
      const AbDeltaFile *f = p->files->pdata[i];
      if (!g_uint64_checked_add (&sum, sum, f->size))
        return bad (error, p_size, "is not the sum of the sizes of its files (they overflow 64 bits)");
    }
  if (sum != p->size)
    return bad (error, p_size, "is not the sum of the sizes of its files");
  return TRUE;
}

/* packs (issue 18): optional, null or absent gives none; else an object
 * with "size", "unpacked" (> 0) and "files". Readers of 0.2.0 ignore it. */
static gboolean
parse_packs (JsonObject *o, const char *parent, AbRelease *r, GError **error)
{
  JsonNode *n = json_object_get_member (o, "packs");
  if (n == NULL || JSON_NODE_HOLDS_NULL (n))
    return TRUE;
  g_autofree char *path = member_path (parent, "packs");
  if (!JSON_NODE_HOLDS_OBJECT (n))
    return bad (error, path, "is not an object");
  JsonObject *po = json_node_get_object (n);
  g_autoptr(AbPacks) p = ab_packs_new ();
  if (!read_uint (po, path, "size", &p->size, error)
      || !read_uint (po, path, "unpacked", &p->unpacked, error))
    return FALSE;
  if (p->unpacked == 0)
    {
      g_autofree char *p_unpacked = member_path (path, "unpacked");
      return bad (error, p_unpacked, "is 0 (a commit has at least its commit object)");
    }
  if (!parse_pack_files (po, path, r->commit, p, error))
    return FALSE;
  r->packs = g_steal_pointer (&p);
  return TRUE;
}

static gboolean
parse_deltas (JsonObject *o, const char *path, AbRelease *r, GError **error)
{
  JsonArray *deltas = NULL;
  if (!read_array (o, path, "deltas", TRUE, &deltas, error))
    return FALSE;
  for (guint i = 0; deltas && i < json_array_get_length (deltas); i++)
    {
      g_autofree char *dp = g_strdup_printf ("%s.deltas[%u]", path, i);
      JsonObject *d_o = element_object (deltas, i, dp, error);
      AbDelta *d = d_o ? parse_delta (d_o, dp, r->commit, error) : NULL;
      if (d == NULL)
        return FALSE;
      if (ab_release_find_delta (r, d->from) != NULL)
        {
          ab_delta_free (d);
          return bad (error, dp, "repeats the \"from\" commit of an earlier delta");
        }
      g_ptr_array_add (r->deltas, d);
    }
  return TRUE;
}

/* rollout: optional (default 100), an integer 1..100. */
static gboolean
parse_rollout (JsonObject *o, const char *path, guint *out, GError **error)
{
  *out = MAX_ROLLOUT;
  if (!json_object_has_member (o, "rollout"))
    return TRUE;
  guint64 v = 0;
  if (!read_uint (o, path, "rollout", &v, error))
    return FALSE;
  if (v < 1 || v > MAX_ROLLOUT)
    {
      g_autofree char *p = member_path (path, "rollout");
      return bad (error, p, "is not a percentage from 1 to 100");
    }
  *out = (guint) v;
  return TRUE;
}

/* An optional boolean: absent gives FALSE. */
static gboolean
read_optional_bool (JsonObject *o, const char *parent, const char *key, gboolean *out,
                    GError **error)
{
  JsonNode *n = json_object_get_member (o, key);
  *out = FALSE;
  if (n == NULL)
    return TRUE;
  g_autofree char *path = member_path (parent, key);
  if (!node_is (n, G_TYPE_BOOLEAN))
    return bad (error, path, "is not true or false");
  *out = json_node_get_boolean (n);
  return TRUE;
}

/* A non-empty string of at most AB_MANIFEST_NOTE_PART_MAX bytes. */
static gboolean
read_note_part (JsonObject *o, const char *parent, const char *key, char **out, GError **error)
{
  if (!read_string (o, parent, key, out, error))
    return FALSE;
  g_autofree char *path = member_path (parent, key);
  if (strlen (*out) > AB_MANIFEST_NOTE_PART_MAX)
    return bad (error, path, "is longer than 2048 bytes");
  return TRUE;
}

/* notes: optional; null or absent gives none; else an object with the
 * three parts (members of a later protocol are ignored). */
static gboolean
parse_notes (JsonObject *o, const char *parent, AbReleaseNotes **out, GError **error)
{
  JsonNode *n = json_object_get_member (o, "notes");
  *out = NULL;
  if (n == NULL || JSON_NODE_HOLDS_NULL (n))
    return TRUE;
  g_autofree char *path = member_path (parent, "notes");
  if (!JSON_NODE_HOLDS_OBJECT (n))
    return bad (error, path, "is not an object");
  JsonObject *no = json_node_get_object (n);
  g_autoptr(AbReleaseNotes) notes = g_new0 (AbReleaseNotes, 1);
  if (!read_note_part (no, path, "changed", &notes->changed, error)
      || !read_note_part (no, path, "action", &notes->action, error)
      || !read_note_part (no, path, "rollback", &notes->rollback, error))
    return FALSE;
  *out = g_steal_pointer (&notes);
  return TRUE;
}

/* The members of issue 17 (all optional). */
static gboolean
parse_release_extras (JsonObject *o, const char *path, AbRelease *r, GError **error)
{
  if (!read_nullable_string (o, path, "promoted_from", &r->promoted_from, error)
      || !read_optional_bool (o, path, "security", &r->security, error)
      || !parse_notes (o, path, &r->notes, error))
    return FALSE;
  if (g_strcmp0 (r->promoted_from, r->version) == 0)
    {
      g_autofree char *p = member_path (path, "promoted_from");
      return bad (error, p, "is the release's own version");
    }
  return TRUE;
}

/* size_index (issue 18): optional, null or absent gives none; else
 * {"path": "abdeploy/sizes/COMMIT.sizes" of the release's own commit,
 * "size": 1..64 MiB, "sha256": 64 lower-case hex}. */
static gboolean
parse_size_index (JsonObject *o, const char *parent, AbRelease *r, GError **error)
{
  JsonNode *n = json_object_get_member (o, "size_index");
  if (n == NULL || JSON_NODE_HOLDS_NULL (n))
    return TRUE;
  g_autofree char *path = member_path (parent, "size_index");
  if (!JSON_NODE_HOLDS_OBJECT (n))
    return bad (error, path, "is not an object");
  JsonObject *io = json_node_get_object (n);
  g_autofree char *fpath = NULL, *sha = NULL, *want = ab_sizes_path (r->commit);
  guint64 size = 0;
  if (!read_string (io, path, "path", &fpath, error) || !read_uint (io, path, "size", &size, error)
      || !read_string (io, path, "sha256", &sha, error))
    return FALSE;
  g_autofree char *p_path = member_path (path, "path");
  g_autofree char *p_size = member_path (path, "size");
  g_autofree char *p_sha = member_path (path, "sha256");
  if (strcmp (fpath, want) != 0)
    return bad (error, p_path, "is not abdeploy/sizes/COMMIT.sizes of the release's commit");
  if (size == 0 || size > AB_SIZES_MAX_BYTES)
    return bad (error, p_size, "is not from 1 byte to 64 MiB");
  if (!is_sha256_hex (sha))
    return bad (error, p_sha, "is not a SHA-256 (64 lowercase hex digits)");
  r->size_index = ab_delta_file_new (fpath, size, sha);
  return TRUE;
}

static AbRelease *
parse_release (JsonObject *o, const char *path, GError **error)
{
  g_autofree char *version = NULL, *commit = NULL, *published_at = NULL, *deprecated = NULL;
  guint rollout = 0;
  if (!read_string (o, path, "version", &version, error)
      || !read_commit (o, path, "commit", &commit, error)
      || !read_time (o, path, "published_at", &published_at, error)
      || !read_nullable_string (o, path, "deprecated", &deprecated, error)
      || !parse_rollout (o, path, &rollout, error))
    return NULL;
  g_autoptr(AbRelease) r = ab_release_new (version, commit, published_at, rollout);
  r->deprecated = g_steal_pointer (&deprecated);
  if (!parse_release_extras (o, path, r, error) || !parse_deltas (o, path, r, error)
      || !parse_full_delta (o, path, r, error) || !parse_packs (o, path, r, error)
      || !parse_size_index (o, path, r, error))
    return NULL;
  return g_steal_pointer (&r);
}

static gboolean
parse_releases (JsonObject *root, AbManifest *m, GError **error)
{
  JsonArray *releases = NULL;
  if (!read_array (root, "", "releases", FALSE, &releases, error))
    return FALSE;
  for (guint i = 0; i < json_array_get_length (releases); i++)
    {
      g_autofree char *rp = g_strdup_printf ("releases[%u]", i);
      JsonObject *ro = element_object (releases, i, rp, error);
      AbRelease *r = ro ? parse_release (ro, rp, error) : NULL;
      if (r == NULL)
        return FALSE;
      /* One version, one entry: a version maps to exactly one commit. */
      if (ab_manifest_find (m, r->version) != NULL)
        {
          ab_release_free (r);
          return bad (error, rp, "repeats a version listed before");
        }
      g_ptr_array_add (m->releases, r);
    }
  return TRUE;
}

/* The format check comes first, so that a newer manifest is reported as
 * such rather than as whatever else changed in its layout. */
static gboolean
check_format (JsonObject *root, GError **error)
{
  JsonNode *n = json_object_get_member (root, "format");
  if (n == NULL || !node_is (n, G_TYPE_INT64))
    return bad (error, "format", "is missing or not an integer");
  gint64 format = json_node_get_int (n);
  if (format != AB_MANIFEST_FORMAT)
    {
      g_set_error (error, AB_MANIFEST_ERROR, AB_MANIFEST_ERROR_FORMAT,
                   "manifest format %" G_GINT64_FORMAT " is not known to this abdeploy, which "
                   "reads format %d; update abdeploy", format, AB_MANIFEST_FORMAT);
      return FALSE;
    }
  return TRUE;
}

/* protocol: optional (absent = 0, a manifest of 0.2.0), a positive
 * integer; whether this reader knows it is the caller's check. */
static gboolean
parse_protocol (JsonObject *root, AbManifest *m, GError **error)
{
  guint64 v = 0;
  m->protocol = 0;
  if (!json_object_has_member (root, "protocol"))
    return TRUE;
  if (!read_uint (root, "", "protocol", &v, error))
    return FALSE;
  if (v < 1 || v > G_MAXINT32)
    return bad (error, "protocol", "is not a positive integer");
  m->protocol = (guint) v;
  return TRUE;
}

/* A manifest that needs a protocol this abdeploy does not know is refused
 * right after the format check, before anything else of it is read (a
 * newer protocol may change what the rest means); the type of "protocol"
 * is parse_protocol()'s check. */
static gboolean
check_protocol_known (JsonObject *root, GError **error)
{
  JsonNode *n = json_object_get_member (root, "protocol");
  if (n == NULL || !node_is (n, G_TYPE_INT64) || json_node_get_int (n) <= AB_MANIFEST_PROTOCOL)
    return TRUE;
  g_set_error (error, AB_MANIFEST_ERROR, AB_MANIFEST_ERROR_PROTOCOL,
               "the manifest needs protocol %" G_GINT64_FORMAT ", this abdeploy speaks "
               "protocol %d: update abdeploy to read protocol %" G_GINT64_FORMAT
               "; nothing was changed", json_node_get_int (n), AB_MANIFEST_PROTOCOL,
               json_node_get_int (n));
  return FALSE;
}

static gboolean
parse_header (JsonObject *root, AbManifest *m, GError **error)
{
  g_free (m->channel);
  m->channel = NULL;
  if (!read_string (root, "", "channel", &m->channel, error)
      || !read_uint (root, "", "serial", &m->serial, error)
      || !read_time (root, "", "issued_at", &m->issued_at, error)
      || !read_time (root, "", "expires_at", &m->expires_at, error))
    return FALSE;
  if (!ab_manifest_channel_name_is_valid (m->channel))
    return bad (error, "channel", "is not a valid channel name ([A-Za-z0-9][A-Za-z0-9._-]*)");
  if (m->serial > AB_MANIFEST_MAX_SERIAL)
    return bad (error, "serial", "is larger than 9007199254740991 (2^53 - 1)");
  return parse_protocol (root, m, error);
}

static gboolean
bad_index (GError **error, const char *what)
{
  g_set_error (error, AB_MANIFEST_ERROR, AB_MANIFEST_ERROR_FORMAT,
               "Malformed channel index: %s", what);
  return FALSE;
}

/* Adds the names of the JSON array A to NAMES; FALSE at a bad one. */
static gboolean
index_names (JsonArray *a, GPtrArray *names, GError **error)
{
  guint n = json_array_get_length (a);
  if (n > AB_CHANNEL_INDEX_MAX_CHANNELS)
    return bad_index (error, "more than 1000 channels");
  for (guint i = 0; i < n; i++)
    {
      JsonNode *e = json_array_get_element (a, i);
      const char *name = JSON_NODE_HOLDS_VALUE (e) && json_node_get_value_type (e) == G_TYPE_STRING
                         ? json_node_get_string (e) : NULL;
      if (!ab_manifest_channel_name_is_valid (name))
        return bad_index (error, "a member of \"channels\" is not a channel name");
      g_ptr_array_add (names, g_strdup (name));
    }
  return TRUE;
}

char **
ab_channel_index_parse (const char *data, gsize len, GError **error)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  if (!json_parser_load_from_data (parser, data, (gssize) len, NULL))
    return bad_index (error, "not JSON"), NULL;
  JsonNode *root = json_parser_get_root (parser);
  JsonObject *o = root && JSON_NODE_HOLDS_OBJECT (root) ? json_node_get_object (root) : NULL;
  JsonNode *format = o ? json_object_get_member (o, "format") : NULL;
  JsonNode *list = o ? json_object_get_member (o, "channels") : NULL;
  if (format == NULL || !JSON_NODE_HOLDS_VALUE (format)
      || json_node_get_value_type (format) != G_TYPE_INT64 || json_node_get_int (format) != 1)
    return bad_index (error, "\"format\" is not 1"), NULL;
  if (list == NULL || !JSON_NODE_HOLDS_ARRAY (list))
    return bad_index (error, "\"channels\" is not an array"), NULL;
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  if (!index_names (json_node_get_array (list), names, error))
    return NULL;
  g_ptr_array_add (names, NULL);
  return (char **) g_ptr_array_free (g_steal_pointer (&names), FALSE);
}

AbManifest *
ab_manifest_parse (const char *data, gsize len, GError **error)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) local = NULL;
  if (!json_parser_load_from_data (parser, data, (gssize) len, &local))
    {
      g_set_error (error, AB_MANIFEST_ERROR, AB_MANIFEST_ERROR_FORMAT,
                   "Malformed channel manifest: not JSON: %s", local->message);
      return NULL;
    }
  JsonNode *root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    {
      bad (error, "the document", "is not a JSON object");
      return NULL;
    }
  JsonObject *o = json_node_get_object (root);
  g_autoptr(AbManifest) m = ab_manifest_new (NULL);
  if (!check_format (o, error) || !check_protocol_known (o, error) || !parse_header (o, m, error)
      || !parse_releases (o, m, error))
    return NULL;
  return g_steal_pointer (&m);
}
