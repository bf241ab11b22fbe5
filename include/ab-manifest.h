/* Channel manifests: parse and validate (abdeploy-manifest(5)); the
 * publisher writes them (publisher/ab-manifest-write.h). */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

#define AB_MANIFEST_ERROR (ab_manifest_error_quark ())
/* The error domain of ab-manifest (the codes of the enum below). */
GQuark ab_manifest_error_quark (void);

typedef enum
{
  AB_MANIFEST_ERROR_FORMAT,   /* malformed or unknown format version */
  AB_MANIFEST_ERROR_EXPIRED,
  AB_MANIFEST_ERROR_REPLAY,   /* serial lower than the last accepted */
  AB_MANIFEST_ERROR_NOT_FOUND,
  AB_MANIFEST_ERROR_CONFLICT, /* a published version would change its commit */
  AB_MANIFEST_ERROR_PROTOCOL, /* needs a newer protocol than this abdeploy reads (exit 3) */
} AbManifestError;

#define AB_MANIFEST_FORMAT 1
/* The largest serial: 2^53 - 1, the largest integer every JSON reader holds
 * exactly. A manifest with a larger serial is malformed; the publisher
 * refuses to go beyond it (a serial never wraps). */
#define AB_MANIFEST_MAX_SERIAL G_GUINT64_CONSTANT (9007199254740991)

typedef struct
{
  char *path;
  guint64 size;
  char *sha256;
} AbDeltaFile;

typedef struct
{
  char *from;       /* NULL for a release's from-empty "full_delta" (issue 18) */
  guint64 size;
  GPtrArray *files; /* AbDeltaFile */
} AbDelta;

/* Issue 18: the image packs of a release (abdeploy-manifest(5)): zstd
 * tars of the commit's objects that a first install downloads and extracts
 * on several cores. Invariant after parsing: 1..AB_PACKS_MAX_FILES files,
 * file n at ab_packs_path (commit, n), size the sum of their sizes,
 * unpacked > 0. */
#define AB_PACKS_MAX_FILES 64
typedef struct
{
  guint64 size;     /* sum of the files' sizes: the bytes to download */
  guint64 unpacked; /* sum of the entries' content bytes: at most what extraction writes */
  GPtrArray *files; /* AbDeltaFile */
} AbPacks;

/* The protocol this abdeploy reads and its publisher writes (top-level
 * "protocol", issue 17): new optional members keep it, a change an older
 * reader must not ignore bumps it (abdeploy-manifest(5)). */
#define AB_MANIFEST_PROTOCOL 1
/* Bounds of a release's customer note: each part at most this many bytes. */
#define AB_MANIFEST_NOTE_PART_MAX 2048

/* A release's customer note (issue 17): three non-empty parts. */
typedef struct
{
  char *changed;  /* what changed */
  char *action;   /* what the customer needs to do */
  char *rollback; /* if something goes wrong: includes the one-line rollback command */
} AbReleaseNotes;

typedef struct
{
  char *version;
  char *commit;
  char *published_at;
  char *deprecated; /* NULL unless deprecated */
  guint rollout;    /* 1..100 */
  GPtrArray *deltas; /* AbDelta */
  /* Issue 17, all optional (absent in manifests of 0.2.0): */
  char *promoted_from;   /* the commit's own version when promoted under another; or NULL */
  gboolean security;     /* a security release */
  AbReleaseNotes *notes; /* NULL: none */
  /* Issue 18, optional: the static delta from nothing to COMMIT, which a
   * first install fetches in a few requests instead of one per object;
   * from is NULL. NULL: none listed. */
  AbDelta *full_delta;
  /* Issue 18, optional: the image packs of COMMIT. NULL: none listed. */
  AbPacks *packs;
  /* Issue 18, optional: the commit's size index file (ab-sizes.h), path
   * "abdeploy/sizes/COMMIT.sizes", 1 byte to 64 MiB. NULL: none listed. */
  AbDeltaFile *size_index;
} AbRelease;

typedef struct
{
  char *channel;
  guint protocol;   /* top-level "protocol"; 0 when absent (manifests of 0.2.0) */
  guint64 serial;
  char *issued_at;
  char *expires_at;
  GPtrArray *releases; /* AbRelease, publication order */
} AbManifest;

/* Frees M and everything it owns; NULL is allowed. */
void ab_manifest_free (AbManifest *m);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AbManifest, ab_manifest_free)

/* An empty manifest of CHANNEL (serial 0, no release). */
AbManifest *ab_manifest_new (const char *channel);
/* Parses and validates a manifest (see the invariant above); NULL with
 * AB_MANIFEST_ERROR_FORMAT naming the member otherwise. */
G_GNUC_WARN_UNUSED_RESULT
AbManifest *ab_manifest_parse (const char *data, gsize len, GError **error);
/* The newest release by version precedence (ab_version_order(): ties of
 * equal precedence go to the greater version string), or NULL. */
const AbRelease *ab_manifest_newest (const AbManifest *m);
/* The release of VERSION in M, or NULL. */
const AbRelease *ab_manifest_find (const AbManifest *m, const char *version);
/* Frees R and everything it owns; NULL is allowed. */
void ab_release_free (AbRelease *r);
/* Frees N and everything it owns; NULL is allowed. */
void ab_release_notes_free (AbReleaseNotes *n);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AbReleaseNotes, ab_release_notes_free)
/* A copy of N (NULL gives NULL). */
AbReleaseNotes *ab_release_notes_copy (const AbReleaseNotes *n);
/* Frees D and everything it owns; NULL is allowed. */
void ab_delta_free (AbDelta *d);
/* Frees F and everything it owns; NULL is allowed. */
void ab_delta_file_free (AbDeltaFile *f);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AbRelease, ab_release_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AbDelta, ab_delta_free)

/* Constructors: every string is copied; lists start empty. */
AbRelease *ab_release_new (const char *version, const char *commit, const char *published_at,
                           guint rollout);
/* A delta from commit FROM (NULL: from nothing, a full delta), with no file. */
AbDelta *ab_delta_new (const char *from);
/* A deep copy of D. */
AbDelta *ab_delta_copy (const AbDelta *d);
/* Packs with no file (size and unpacked 0). */
AbPacks *ab_packs_new (void);
/* A deep copy of P (NULL gives NULL). */
AbPacks *ab_packs_copy (const AbPacks *p);
/* Frees P and everything it owns; NULL is allowed. */
void ab_packs_free (AbPacks *p);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AbPacks, ab_packs_free)
/* The repo-relative path of pack N of COMMIT:
 * "abdeploy/packs/COMMIT/N.tar.zst" (the only path a manifest may list). */
char *ab_packs_path (const char *commit, guint n);
/* A delta file entry; the strings are copied. */
AbDeltaFile *ab_delta_file_new (const char *path, guint64 size, const char *sha256);
/* A deep copy. */
AbRelease *ab_release_copy (const AbRelease *r);
/* "Latest": the release of highest precedence (as ab_manifest_newest())
 * that is not deprecated, or NULL. What a device without a pin is offered
 * (before its rollout bucket is applied). */
const AbRelease *ab_manifest_latest (const AbManifest *m);
/* Like ab_manifest_find(), for callers that edit the release. */
AbRelease *ab_manifest_lookup (AbManifest *m, const char *version);
/* The delta of R that starts at commit FROM, or NULL. */
const AbDelta *ab_release_find_delta (const AbRelease *r, const char *from);

/* Channel names are file names: [A-Za-z0-9][A-Za-z0-9._-]*, at most 64 bytes. */
gboolean ab_manifest_channel_name_is_valid (const char *channel);

/* The signed channel index beside the manifests (abdeploy-manifest(5),
 * CHANNEL INDEX): {"format":1,"channels":["beta","stable"]}. Its name
 * starts with '_', which no channel name does. */
#define AB_CHANNEL_INDEX_NAME "_index.json"
#define AB_CHANNEL_INDEX_MAX_CHANNELS 1000

/* The channel names of index DATA (LEN bytes), NULL-terminated; every name
 * valid (ab_manifest_channel_name_is_valid()), at most
 * AB_CHANNEL_INDEX_MAX_CHANNELS; AB_MANIFEST_ERROR_FORMAT otherwise. */
G_GNUC_WARN_UNUSED_RESULT
char **ab_channel_index_parse (const char *data, gsize len, GError **error);

/* Freshness checks of a verified manifest at time NOW: expired →
 * AB_MANIFEST_ERROR_EXPIRED; serial lower than LAST_SERIAL (the last one
 * this device accepted for the channel) → AB_MANIFEST_ERROR_REPLAY. An equal
 * serial is accepted: it is the same manifest fetched again. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_manifest_check_fresh (const AbManifest *m, GDateTime *now, guint64 last_serial,
                                  GError **error);
