/* Writing channel manifests (abdeploy-manifest(5)): only the publisher
 * writes them; devices parse them (ab-manifest.c). */
#include "config.h"
#include "publisher/ab-manifest-write.h"
#include "ab-json.h"

/* ---- serialization: members in the order of abdeploy-manifest(5); every
 * string goes through ab_json_add_string() (sanitized: a manifest is always
 * valid JSON) ---- */

/* A "files" member: AbDeltaFile entries of a delta or of packs. */
static void
build_files (JsonBuilder *b, const GPtrArray *files)
{
  json_builder_set_member_name (b, "files");
  json_builder_begin_array (b);
  for (guint i = 0; i < files->len; i++)
    {
      const AbDeltaFile *f = files->pdata[i];
      json_builder_begin_object (b);
      ab_json_add_string (b, "path", f->path);
      ab_json_add_int (b, "size", f->size);
      ab_json_add_string (b, "sha256", f->sha256);
      json_builder_end_object (b);
    }
  json_builder_end_array (b);
}

/* A delta object; a full delta (from NULL) has no "from" member. */
static void
build_delta (JsonBuilder *b, const AbDelta *d)
{
  json_builder_begin_object (b);
  if (d->from != NULL)
    ab_json_add_string (b, "from", d->from);
  ab_json_add_int (b, "size", d->size);
  build_files (b, d->files);
  json_builder_end_object (b);
}

static void
build_packs (JsonBuilder *b, const AbPacks *p)
{
  json_builder_set_member_name (b, "packs");
  json_builder_begin_object (b);
  ab_json_add_int (b, "size", p->size);
  ab_json_add_int (b, "unpacked", p->unpacked);
  build_files (b, p->files);
  json_builder_end_object (b);
}

/* The optional members of issue 17, written only when set, so that a
 * release without them reads as it did in 0.2.0. */
static void
build_release_extras (JsonBuilder *b, const AbRelease *r)
{
  if (r->promoted_from != NULL)
    ab_json_add_string (b, "promoted_from", r->promoted_from);
  if (r->security)
    {
      json_builder_set_member_name (b, "security");
      json_builder_add_boolean_value (b, TRUE);
    }
  if (r->notes == NULL)
    return;
  json_builder_set_member_name (b, "notes");
  json_builder_begin_object (b);
  ab_json_add_string (b, "changed", r->notes->changed);
  ab_json_add_string (b, "action", r->notes->action);
  ab_json_add_string (b, "rollback", r->notes->rollback);
  json_builder_end_object (b);
}

/* Issue 18: the commit's size index file, written only when listed. */
static void
build_size_index (JsonBuilder *b, const AbRelease *r)
{
  if (r->size_index == NULL)
    return;
  json_builder_set_member_name (b, "size_index");
  json_builder_begin_object (b);
  ab_json_add_string (b, "path", r->size_index->path);
  ab_json_add_int (b, "size", r->size_index->size);
  ab_json_add_string (b, "sha256", r->size_index->sha256);
  json_builder_end_object (b);
}

static void
build_release (JsonBuilder *b, const AbRelease *r)
{
  json_builder_begin_object (b);
  ab_json_add_string (b, "version", r->version);
  ab_json_add_string (b, "commit", r->commit);
  ab_json_add_string (b, "published_at", r->published_at);
  ab_json_add_string (b, "deprecated", r->deprecated);
  ab_json_add_int (b, "rollout", r->rollout);
  build_release_extras (b, r);
  build_size_index (b, r);
  json_builder_set_member_name (b, "deltas");
  json_builder_begin_array (b);
  for (guint i = 0; i < r->deltas->len; i++)
    build_delta (b, r->deltas->pdata[i]);
  json_builder_end_array (b);
  /* Issue 18: written only when listed; 0.2.0 readers ignore it. */
  if (r->full_delta != NULL)
    {
      json_builder_set_member_name (b, "full_delta");
      build_delta (b, r->full_delta);
    }
  if (r->packs != NULL)
    build_packs (b, r->packs);
  json_builder_end_object (b);
}

char *
ab_manifest_serialize (const AbManifest *m)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  ab_json_add_int (b, "format", AB_MANIFEST_FORMAT);
  ab_json_add_int (b, "protocol", AB_MANIFEST_PROTOCOL);
  ab_json_add_string (b, "channel", m->channel);
  ab_json_add_int (b, "serial", m->serial);
  ab_json_add_string (b, "issued_at", m->issued_at);
  ab_json_add_string (b, "expires_at", m->expires_at);
  json_builder_set_member_name (b, "releases");
  json_builder_begin_array (b);
  for (guint i = 0; i < m->releases->len; i++)
    build_release (b, m->releases->pdata[i]);
  json_builder_end_array (b);
  json_builder_end_object (b);
  g_autoptr(JsonNode) root = json_builder_get_root (b);
  g_autoptr(JsonGenerator) gen = json_generator_new ();
  json_generator_set_root (gen, root);
  json_generator_set_pretty (gen, TRUE);
  g_autofree char *text = json_generator_to_data (gen, NULL);
  return g_strconcat (text, "\n", NULL);
}
