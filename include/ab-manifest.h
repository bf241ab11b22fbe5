/* Channel manifests: parse, validate, serialize (abdeploy-manifest(5)). */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

#define AB_MANIFEST_ERROR (ab_manifest_error_quark ())
GQuark ab_manifest_error_quark (void);

typedef enum
{
  AB_MANIFEST_ERROR_FORMAT,   /* malformed or unknown format version */
  AB_MANIFEST_ERROR_EXPIRED,
  AB_MANIFEST_ERROR_REPLAY,   /* serial lower than the last accepted */
  AB_MANIFEST_ERROR_NOT_FOUND,
  AB_MANIFEST_ERROR_CONFLICT, /* a published version would change its commit */
} AbManifestError;

#define AB_MANIFEST_FORMAT 1

typedef struct
{
  char *path;
  guint64 size;
  char *sha256;
} AbDeltaFile;

typedef struct
{
  char *from;
  guint64 size;
  GPtrArray *files; /* AbDeltaFile */
} AbDelta;

typedef struct
{
  char *version;
  char *commit;
  char *published_at;
  char *deprecated; /* NULL unless deprecated */
  guint rollout;    /* 1..100 */
  GPtrArray *deltas; /* AbDelta */
} AbRelease;

typedef struct
{
  char *channel;
  guint64 serial;
  char *issued_at;
  char *expires_at;
  GPtrArray *releases; /* AbRelease, publication order */
} AbManifest;

void ab_manifest_free (AbManifest *m);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AbManifest, ab_manifest_free)

AbManifest *ab_manifest_new (const char *channel);
AbManifest *ab_manifest_parse (const char *data, gsize len, GError **error);
char *ab_manifest_serialize (const AbManifest *m);
/* The newest release by version (strverscmp), or NULL. */
const AbRelease *ab_manifest_newest (const AbManifest *m);
const AbRelease *ab_manifest_find (const AbManifest *m, const char *version);
void ab_release_free (AbRelease *r);
void ab_delta_free (AbDelta *d);
void ab_delta_file_free (AbDeltaFile *f);
