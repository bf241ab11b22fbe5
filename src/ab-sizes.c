/* The size index of a commit: the publisher's file and libostree's
 * in-commit "ostree.sizes" give the same entries (ab-sizes.h). */
#include "config.h"
#include "ab-sizes.h"

#include <string.h>
#include <gio/gio.h>

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

/* All of IN through the converter C, whose output may not pass LIMIT
 * bytes; NULL with ERROR (or, when the output would pass LIMIT, with
 * neither: the caller names that). Input after the end of C's stream is
 * an error. */
static GBytes *
convert_all (GConverter *c, GBytes *in, guint64 limit, gboolean *out_over, GError **error)
{
  gsize left = 0;
  const guint8 *src = g_bytes_get_data (in, &left);
  g_autoptr(GByteArray) out = g_byte_array_new ();
  g_autofree guint8 *buf = g_malloc (64 * 1024);
  GConverterResult r;
  *out_over = FALSE;
  do
    {
      gsize read = 0, written = 0;
      r = g_converter_convert (c, src, left, buf, 64 * 1024, G_CONVERTER_INPUT_AT_END, &read,
                               &written, error);
      if (r == G_CONVERTER_ERROR)
        return NULL;
      src += read;
      left -= read;
      if ((guint64) out->len + written > limit)
        {
          *out_over = TRUE;
          return NULL;
        }
      g_byte_array_append (out, buf, (guint) written);
    }
  while (r != G_CONVERTER_FINISHED);
  if (left != 0)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                           "data after the end of the compressed stream");
      return NULL;
    }
  return g_byte_array_free_to_bytes (g_steal_pointer (&out));
}

GBytes *
ab_sizes_compress (GBytes *raw)
{
  g_autoptr(GZlibCompressor) c = g_zlib_compressor_new (G_ZLIB_COMPRESSOR_FORMAT_GZIP, 9);
  gboolean over = FALSE;
  GBytes *out = convert_all (G_CONVERTER (c), raw, G_MAXUINT64, &over, NULL);
  g_assert (out != NULL); /* compressing memory cannot fail */
  return out;
}

/* DATA, the file, decompressed: at most AB_SIZES_MAX_BYTES, whatever the
 * file claims (a signed file is still bounded: no zip bomb fills memory). */
static GBytes *
decompress (GBytes *data, GError **error)
{
  g_autoptr(GZlibDecompressor) d = g_zlib_decompressor_new (G_ZLIB_COMPRESSOR_FORMAT_GZIP);
  g_autoptr(GError) local = NULL;
  gboolean over = FALSE;
  GBytes *raw = convert_all (G_CONVERTER (d), data, AB_SIZES_MAX_BYTES, &over, &local);
  if (raw != NULL)
    return raw;
  g_autofree char *what = over ? g_strdup ("it decompresses to more than 64 MiB")
                               : g_strdup_printf ("not gzip-compressed as abdeploy-manifest(5) "
                                                  "says (%s)", local->message);
  invalid (error, what);
  return NULL;
}

GArray *
ab_sizes_parse (GBytes *file, GError **error)
{
  if (g_bytes_get_size (file) > AB_SIZES_MAX_BYTES)
    return invalid_null (error, "larger than 64 MiB");
  g_autoptr(GBytes) data = decompress (file, error);
  if (data == NULL)
    return NULL;
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
  g_autoptr(GBytes) raw = ab_sizes_serialize_raw (entries);
  return ab_sizes_compress (raw);
}

GBytes *
ab_sizes_serialize_raw (const GArray *entries)
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
