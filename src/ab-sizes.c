/* The size index of a commit: the publisher's file and libostree's
 * in-commit "ostree.sizes" give the same entries (ab-sizes.h). */
#include "config.h"
#include "ab-sizes.h"

#include <string.h>

G_DEFINE_QUARK (ab-sizes-error-quark, ab_sizes_error)

char *
ab_sizes_path (const char *commit)
{
  return g_strdup_printf (AB_SIZES_DIR "/%s.sizes", commit);
}

static gboolean
invalid (GError **error, const char *what)
{
  g_set_error (error, AB_SIZES_ERROR, AB_SIZES_ERROR_INVALID, "Invalid size index: %s", what);
  return FALSE;
}

static GArray *
invalid_null (GError **error, const char *what)
{
  invalid (error, what);
  return NULL;
}

/* The object types of a commit's tree: the index lists no other. */
static gboolean
is_tree_object_type (guint8 t)
{
  return t == OSTREE_OBJECT_TYPE_FILE || t == OSTREE_OBJECT_TYPE_DIR_TREE
         || t == OSTREE_OBJECT_TYPE_DIR_META;
}

/* Entry I of the array V (type a(ayytt)) into E. */
static gboolean
read_entry (GVariant *v, gsize i, AbSizesEntry *e, GError **error)
{
  g_autoptr(GVariant) csum = NULL;
  guint8 type = 0;
  g_variant_get_child (v, i, "(@ayytt)", &csum, &type, &e->archived, &e->unpacked);
  gsize n = 0;
  const guint8 *bytes = g_variant_get_fixed_array (csum, &n, 1);
  if (n != sizeof e->checksum || !is_tree_object_type (type))
    {
      g_autofree char *what = g_strdup_printf (
          "entry %" G_GSIZE_FORMAT " %s", i,
          n != sizeof e->checksum ? "has a checksum that is not 32 bytes"
                                  : "has an object type that is not file, dirtree or dirmeta");
      return invalid (error, what);
    }
  memcpy (e->checksum, bytes, n);
  e->type = (OstreeObjectType) type;
  return TRUE;
}

GArray *
ab_sizes_parse (GBytes *data, GError **error)
{
  if (g_bytes_get_size (data) > AB_SIZES_MAX_BYTES)
    return invalid_null (error, "larger than 64 MiB");
  g_autoptr(GVariant) v = g_variant_ref_sink (
      g_variant_new_from_bytes (G_VARIANT_TYPE (AB_SIZES_GVARIANT_TYPE), data, FALSE));
  /* Normal form first: only then do the reads below see the bytes as
   * they are, never a default value GVariant substitutes. */
  if (!g_variant_is_normal_form (v))
    return invalid_null (error, "not a GVariant of type " AB_SIZES_GVARIANT_TYPE
                               " in normal form");
  gsize n = g_variant_n_children (v);
  if (n == 0)
    return invalid_null (error, "no entry");
  g_autoptr(GArray) out = g_array_sized_new (FALSE, TRUE, sizeof (AbSizesEntry), (guint) n);
  for (gsize i = 0; i < n; i++)
    {
      AbSizesEntry e = { 0 };
      if (!read_entry (v, i, &e, error))
        return NULL;
      g_array_append_val (out, e);
    }
  return g_steal_pointer (&out);
}

GBytes *
ab_sizes_serialize (const GArray *entries)
{
  g_autoptr(GVariantBuilder) b = g_variant_builder_new (G_VARIANT_TYPE (AB_SIZES_GVARIANT_TYPE));
  for (guint i = 0; i < entries->len; i++)
    {
      const AbSizesEntry *e = &g_array_index (entries, AbSizesEntry, i);
      GVariant *csum = g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, e->checksum,
                                                  sizeof e->checksum, 1);
      g_variant_builder_add (b, "(@ayytt)", csum, (guint8) e->type, e->archived, e->unpacked);
    }
  g_autoptr(GVariant) v = g_variant_ref_sink (g_variant_builder_end (b));
  g_autoptr(GVariant) normal = g_variant_get_normal_form (v);
  return g_variant_get_data_as_bytes (normal);
}

GArray *
ab_sizes_from_commit (GVariant *commit_v)
{
  g_autoptr(GPtrArray) list = NULL;
  if (!ostree_commit_get_object_sizes (commit_v, &list, NULL) || list == NULL || list->len == 0)
    return NULL;
  GArray *out = g_array_sized_new (FALSE, TRUE, sizeof (AbSizesEntry), list->len);
  for (guint i = 0; i < list->len; i++)
    {
      const OstreeCommitSizesEntry *s = list->pdata[i];
      AbSizesEntry e = { .type = s->objtype, .archived = s->archived, .unpacked = s->unpacked };
      ostree_checksum_inplace_to_bytes (s->checksum, e.checksum);
      g_array_append_val (out, e);
    }
  return out;
}

static guint64
saturating_add (guint64 a, guint64 b)
{
  return a > G_MAXUINT64 - b ? G_MAXUINT64 : a + b;
}

void
ab_sizes_totals (const GArray *entries, OstreeRepo *repo, AbSizesTotals *out)
{
  *out = (AbSizesTotals) { 0 };
  for (guint i = 0; i < entries->len; i++)
    {
      const AbSizesEntry *e = &g_array_index (entries, AbSizesEntry, i);
      char hex[OSTREE_SHA256_STRING_LEN + 1];
      gboolean have = FALSE;
      ostree_checksum_inplace_from_bytes (e->checksum, hex);
      if (repo != NULL && ostree_repo_has_object (repo, e->type, hex, &have, NULL, NULL) && have)
        continue;
      out->download = saturating_add (out->download, e->archived);
      out->store = saturating_add (out->store, e->unpacked);
      out->largest = MAX (out->largest, MAX (e->archived, e->unpacked));
      out->objects++;
    }
}
