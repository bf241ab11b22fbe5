/* ab-sizes: the size index file (a(ayytt) in normal form) and the
 * in-commit "ostree.sizes" of older publishers give the same entries. */
#include "config.h"
#include <string.h>
#include <glib/gstdio.h>
#include "ab-sizes.h"
#include "ab-test-fixture.h"

static AbSizesEntry
entry (guint8 fill, OstreeObjectType type, guint64 archived, guint64 unpacked)
{
  AbSizesEntry e = { .type = type, .archived = archived, .unpacked = unpacked };
  memset (e.checksum, fill, sizeof e.checksum);
  return e;
}

static GArray *
three_entries (void)
{
  GArray *a = g_array_new (FALSE, TRUE, sizeof (AbSizesEntry));
  AbSizesEntry e[] = { entry (1, OSTREE_OBJECT_TYPE_FILE, 100, 300),
                       entry (2, OSTREE_OBJECT_TYPE_DIR_TREE, 50, 50),
                       entry (3, OSTREE_OBJECT_TYPE_DIR_META, 20, 20) };
  g_array_append_vals (a, e, G_N_ELEMENTS (e));
  return a;
}

static void
assert_invalid (GBytes *data, const char *needle)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GArray) no = ab_sizes_parse (data, &error);
  g_assert_null (no);
  g_assert_error (error, AB_SIZES_ERROR, AB_SIZES_ERROR_INVALID);
  if (strstr (error->message, needle) == NULL)
    g_error ("message \"%s\" lacks \"%s\"", error->message, needle);
}

static void
test_roundtrip (void)
{
  g_autoptr(GArray) in = three_entries ();
  g_autoptr(GBytes) data = ab_sizes_serialize (in);
  g_autoptr(GError) error = NULL;
  g_autoptr(GArray) out = ab_sizes_parse (data, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (out->len, ==, 3);
  g_assert_cmpmem (out->data, 3 * sizeof (AbSizesEntry), in->data, 3 * sizeof (AbSizesEntry));
  g_autofree char *path = ab_sizes_path ("ab" "cd");
  g_assert_cmpstr (path, ==, "abdeploy/sizes/abcd.sizes");
}

/* Bytes of the a(ayytt) text form TEXT, as written (maybe not normal). */
static GBytes *
bytes_of (const char *text)
{
  g_autoptr(GVariant) v = g_variant_ref_sink (g_variant_parse (G_VARIANT_TYPE ("a(ayytt)"), text,
                                                               NULL, NULL, NULL));
  g_assert_nonnull (v);
  g_autoptr(GBytes) raw = g_variant_get_data_as_bytes (v);
  return ab_sizes_compress (raw);
}

static void
test_refused (void)
{
  g_autoptr(GBytes) nothing = g_bytes_new_static ("", 0);
  g_autoptr(GBytes) empty = ab_sizes_compress (nothing);
  assert_invalid (empty, "no entry");
  g_autoptr(GBytes) short_csum = bytes_of ("[([byte 1, 2], byte 1, uint64 5, uint64 5)]");
  assert_invalid (short_csum, "entry 0 has a checksum that is not 32 bytes");
  g_autoptr(GArray) a = three_entries ();
  g_array_index (a, AbSizesEntry, 2).type = OSTREE_OBJECT_TYPE_COMMIT;
  g_autoptr(GBytes) commit_type = ab_sizes_serialize (a);
  assert_invalid (commit_type, "entry 2 has an object type that is not file");
  g_array_index (a, AbSizesEntry, 2).type = 200;
  g_autoptr(GBytes) unknown_type = ab_sizes_serialize (a);
  assert_invalid (unknown_type, "entry 2 has an object type");
  /* not normal form: the framing offset of the last element points past
   * the end of the data (GVariant would read a default value) */
  g_array_index (a, AbSizesEntry, 2).type = OSTREE_OBJECT_TYPE_FILE;
  g_autoptr(GBytes) good = ab_sizes_serialize_raw (a);
  gsize len = 0;
  const void *good_data = g_bytes_get_data (good, &len);
  g_autofree guint8 *raw = g_memdup2 (good_data, len);
  raw[len - 1] = 0xff;
  g_autoptr(GBytes) broken_raw = g_bytes_new (raw, len);
  g_autoptr(GBytes) broken = ab_sizes_compress (broken_raw);
  assert_invalid (broken, "normal form");
  g_autoptr(GBytes) truncated_raw = g_bytes_new (raw, len - 5);
  g_autoptr(GBytes) truncated = ab_sizes_compress (truncated_raw);
  assert_invalid (truncated, "normal form");
}

/* The file is one gzip stream: the raw GVariant, a cut stream, data after
 * the stream and a stream that decompresses past 64 MiB are refused. */
static void
test_compression_refused (void)
{
  g_autoptr(GArray) a = three_entries ();
  g_autoptr(GBytes) raw = ab_sizes_serialize_raw (a);
  assert_invalid (raw, "not gzip-compressed");
  g_autoptr(GBytes) file = ab_sizes_serialize (a);
  g_assert_cmpuint (g_bytes_get_size (file), <, g_bytes_get_size (raw));
  g_autoptr(GBytes) cut = g_bytes_new_from_bytes (file, 0, g_bytes_get_size (file) - 4);
  assert_invalid (cut, "not gzip-compressed");
  g_autoptr(GByteArray) twice = g_byte_array_new ();
  g_byte_array_append (twice, g_bytes_get_data (file, NULL), (guint) g_bytes_get_size (file));
  g_byte_array_append (twice, g_bytes_get_data (file, NULL), (guint) g_bytes_get_size (file));
  g_autoptr(GBytes) two_streams = g_byte_array_free_to_bytes (g_steal_pointer (&twice));
  assert_invalid (two_streams, "data after the end");
  gsize big = AB_SIZES_MAX_BYTES + 1;
  g_autofree guint8 *zeros = g_malloc0 (big);
  g_autoptr(GBytes) zeros_b = g_bytes_new_static (zeros, big);
  g_autoptr(GBytes) bomb = ab_sizes_compress (zeros_b);
  g_assert_cmpuint (g_bytes_get_size (bomb), <, 1024 * 1024);
  assert_invalid (bomb, "decompresses to more than 64 MiB");
}

/* libostree's in-commit index entry: checksum, varint archived, varint
 * unpacked, object type. */
static GVariant *
ostree_sizes_entry (guint8 fill, guint8 archived, guint8 unpacked, guint8 type)
{
  guint8 b[35];
  memset (b, fill, 32);
  b[32] = archived;
  b[33] = unpacked;
  b[34] = type;
  return g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, b, sizeof b, 1);
}

static void
test_from_commit (void)
{
  g_autoptr(GVariantBuilder) sizes = g_variant_builder_new (G_VARIANT_TYPE ("aay"));
  g_variant_builder_add_value (sizes, ostree_sizes_entry (1, 100, 120, OSTREE_OBJECT_TYPE_FILE));
  g_variant_builder_add_value (sizes, ostree_sizes_entry (2, 50, 50, OSTREE_OBJECT_TYPE_DIR_TREE));
  g_autoptr(GVariantDict) meta = g_variant_dict_new (NULL);
  g_variant_dict_insert_value (meta, "ostree.sizes", g_variant_builder_end (sizes));
  guint8 zero[32] = { 0 };
  GVariant *csum = g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, zero, 32, 1);
  g_autoptr(GVariant) commit = g_variant_ref_sink (g_variant_new (
      "(@a{sv}@ay@a(say)sst@ay@ay)", g_variant_dict_end (meta),
      g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, NULL, 0, 1),
      g_variant_new_array (G_VARIANT_TYPE ("(say)"), NULL, 0), "s", "", (guint64) 0, csum,
      g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, zero, 32, 1)));
  g_autoptr(GArray) a = ab_sizes_from_commit (commit);
  g_assert_nonnull (a);
  g_assert_cmpuint (a->len, ==, 2);
  AbSizesEntry want = entry (1, OSTREE_OBJECT_TYPE_FILE, 100, 120);
  g_assert_cmpmem (&g_array_index (a, AbSizesEntry, 0), sizeof want, &want, sizeof want);
  AbSizesTotals t;
  ab_sizes_totals (a, NULL, &t);
  g_assert_cmpuint (t.download, ==, 150);
  g_assert_cmpuint (t.store, ==, 170);
  g_assert_cmpuint (t.largest, ==, 120);
  g_assert_cmpuint (t.objects, ==, 2);
  /* the same entries from the file give the same totals */
  g_autoptr(GBytes) data = ab_sizes_serialize (a);
  g_autoptr(GArray) b = ab_sizes_parse (data, NULL);
  AbSizesTotals u;
  ab_sizes_totals (b, NULL, &u);
  g_assert_cmpmem (&t, sizeof t, &u, sizeof u);
}

/* Only the objects the repo lacks count; sums saturate. */
static void
test_totals (TmpDir *tmp, gconstpointer data)
{
  g_autoptr(GFile) path = g_file_new_for_path (tmp->path);
  g_autoptr(OstreeRepo) repo = ostree_repo_new (path);
  g_assert_true (ostree_repo_create (repo, OSTREE_REPO_MODE_BARE_USER_ONLY, NULL, NULL));
  g_autoptr(GVariant) dirmeta = g_variant_ref_sink (
      g_variant_new ("(uuu@a(ayay))", 0, 0, GUINT32_TO_BE (040755),
                     g_variant_new_array (G_VARIANT_TYPE ("(ayay)"), NULL, 0)));
  g_autofree guchar *csum = NULL;
  g_assert_true (ostree_repo_write_metadata (repo, OSTREE_OBJECT_TYPE_DIR_META, NULL, dirmeta,
                                             &csum, NULL, NULL));
  g_autoptr(GArray) a = three_entries ();
  memcpy (g_array_index (a, AbSizesEntry, 2).checksum, csum, 32);
  g_array_index (a, AbSizesEntry, 0).archived = G_MAXUINT64;
  AbSizesTotals t;
  ab_sizes_totals (a, repo, &t);
  g_assert_cmpuint (t.objects, ==, 2);
  g_assert_cmpuint (t.download, ==, G_MAXUINT64);
  g_assert_cmpuint (t.store, ==, 350);
  g_assert_cmpuint (t.largest, ==, G_MAXUINT64);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/sizes/roundtrip", test_roundtrip);
  g_test_add_func ("/sizes/refused", test_refused);
  g_test_add_func ("/sizes/compression-refused", test_compression_refused);
  g_test_add_func ("/sizes/from-commit", test_from_commit);
  TMPDIR_TEST ("/sizes/totals", test_totals);
  return g_test_run ();
}
