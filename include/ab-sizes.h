/* The size index of a commit (abdeploy-manifest(5), SIZE INDEX): what
 * every object of the commit takes to download and to store, which bounds
 * an object pull before its objects are fetched. Two sources give the same
 * entries: the publisher's file abdeploy/sizes/COMMIT.sizes, listed with
 * its size and SHA-256 in the signed manifest, and, in commits of older
 * publishers, the commit's own metadata "ostree.sizes" (libostree's format,
 * signed with the commit). */
#pragma once

#include <ostree.h>

#define AB_SIZES_ERROR (ab_sizes_error_quark ())
/* The error domain of ab-sizes (the codes of the enum below). */
GQuark ab_sizes_error_quark (void);

typedef enum
{
  AB_SIZES_ERROR_INVALID, /* not a size index of the format below */
} AbSizesError;

/* The file's directory beneath the publisher's repo root. */
#define AB_SIZES_DIR "abdeploy/sizes"
/* The GVariant type of the file, stored in normal form and compressed with
 * gzip (the sizes compress, the checksums do not: about 44 bytes an entry
 * instead of 73): one entry per
 * object of the commit but the commit itself: checksum (32 bytes), object
 * type (OstreeObjectType: file, dirtree or dirmeta), archived size (what a
 * download takes), unpacked size (what the object takes once stored). */
#define AB_SIZES_GVARIANT_TYPE "a(ayytt)"
/* The largest index a manifest may list, and the most it may decompress
 * to (a 100 000-object image takes about 7 MiB uncompressed). */
#define AB_SIZES_MAX_BYTES ((guint64) 64 * 1024 * 1024)

typedef struct
{
  guint8 checksum[32];
  OstreeObjectType type;
  guint64 archived;
  guint64 unpacked;
} AbSizesEntry;

/* What the objects of an index that a repo lacks take. */
typedef struct
{
  guint64 download; /* sum of their archived sizes (saturating) */
  guint64 store;    /* sum of their unpacked sizes (saturating) */
  guint64 largest;  /* the largest archived or unpacked size */
  guint objects;    /* how many the repo lacks */
} AbSizesTotals;

/* "abdeploy/sizes/COMMIT.sizes": the path of COMMIT's index, relative to
 * the repo root (and to the update URL). */
char *ab_sizes_path (const char *commit);
/* The entries (AbSizesEntry) of the file FILE, or NULL with
 * AB_SIZES_ERROR_INVALID naming the problem: not one gzip stream (or data
 * after it), larger than AB_SIZES_MAX_BYTES compressed or decompressed,
 * not of type a(ayytt) in normal form, empty, an entry whose checksum is
 * not 32 bytes or whose type is not file, dirtree or dirmeta. */
G_GNUC_WARN_UNUSED_RESULT
GArray *ab_sizes_parse (GBytes *file, GError **error);
/* ENTRIES (AbSizesEntry) as the file's bytes: normal form, gzip. */
GBytes *ab_sizes_serialize (const GArray *entries);
/* ENTRIES as the uncompressed GVariant (normal form) the file holds. */
GBytes *ab_sizes_serialize_raw (const GArray *entries);
/* RAW compressed as the file stores it (gzip, level 9). */
GBytes *ab_sizes_compress (GBytes *raw);
/* The entries of COMMIT_V's metadata "ostree.sizes" (libostree's own index,
 * commits of abdeploy before issue 18), or NULL when it has none. */
GArray *ab_sizes_from_commit (GVariant *commit_v);
/* The totals over the entries of ENTRIES whose object REPO lacks. */
void ab_sizes_totals (const GArray *entries, OstreeRepo *repo, AbSizesTotals *out);
