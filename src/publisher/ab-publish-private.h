/* Publisher internals shared by the files of src/publisher/ (not an API).
 *
 * Every command runs in one session: the publisher's repo, open, and the
 * publisher lock held until the session is cleared. The functions here keep
 * the invariants of publisher/ab-publish.h; on error they leave the repo and
 * the channel files as they were (what a function writes is named in its
 * comment). */
#pragma once

#include <ostree.h>
#include "publisher/ab-publish.h"
#include "ab-manifest.h"

/* ---- session (ab-publish.c) ---- */

typedef struct
{
  const AbPublisher *p;
  OstreeRepo *repo;
  int dfd;      /* the repo's directory; owned by REPO */
  int lock_fd;
} AbPublishSession;

#define AB_PUBLISH_SESSION_INIT { NULL, NULL, -1, -1 }

/* Closes the repo and releases the lock; S may be cleared twice. */
void ab_publish_session_clear (AbPublishSession *s);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (AbPublishSession, ab_publish_session_clear)

/* Opens P->repo (creating an archive repo when CREATE and it is missing),
 * takes the publisher lock and removes what a killed publisher left of the
 * channel files. On error S holds what was opened; clear it. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_publish_session_open (AbPublishSession *s, const AbPublisher *p, gboolean create,
                                  GError **error);
/* ab_publish_session_open() of an existing repo, for manifest writers: a
 * signing key is mandatory and the expiry in range. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_publish_session_open_signer (AbPublishSession *s, const AbPublisher *p,
                                         GError **error);

/* ---- argument checks and helpers (ab-publish.c) ---- */

/* Sets AB_PUBLISH_ERROR_USAGE with MESSAGE; returns FALSE. */
gboolean ab_publish_usage (GError **error, const char *message);
/* Versions name refs: [A-Za-z0-9][A-Za-z0-9._-]*, or a SemVer version with
 * build metadata; AB_PUBLISH_ERROR_USAGE otherwise. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_publish_check_version (const char *version, GError **error);
/* A valid channel name (ab_manifest_channel_name_is_valid()), else
 * AB_PUBLISH_ERROR_USAGE. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_publish_check_channel (const char *channel, GError **error);
/* A rollout of 0..100 (0 = 100), else AB_PUBLISH_ERROR_USAGE. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_publish_check_rollout (guint rollout, GError **error);
/* The ref that pins VERSION to its commit (AB_PUBLISH_VERSION_REF_PREFIX). */
char *ab_publish_version_ref (const char *version);
/* T as the manifests write times: 2026-01-31T12:00:00Z. */
char *ab_publish_format_time (GDateTime *t);
/* Sets AB_PUBLISH_ERROR_CONFLICT: VERSION is already PUBLISHED (as recorded
 * in WHERE); returns FALSE. */
gboolean ab_publish_conflict (GError **error, const char *version, const char *published,
                              const char *where);
/* SHA-256 (lower-case hex) and size of the file PATH beneath DFD. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_publish_sha256_file (int dfd, const char *path, char **out_hex, guint64 *out_size,
                                 GError **error);

/* ---- channel generations (ab-publish-channels.c) ---- */

/* Makes NAME (C.json) with SIG the current files of the channel: a new
 * generation with every other channel's files, switched to in one rename.
 * On error the old generation stays current. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_publish_channel_files (AbPublishSession *s, const char *name, GBytes *text,
                                   GBytes *sig, GError **error);
/* Removes what a publisher killed mid-write left behind. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_publish_repair_channels (AbPublishSession *s, GError **error);

/* ---- channel manifests (ab-publish-manifests.c) ---- */

/* AB_PUBLISH_CHANNELS_DIR "/CHANNEL.json" SUFFIX, relative to the repo. */
char *ab_publish_manifest_path (const char *channel, const char *suffix);
/* Reads PATH beneath the repo; *out NULL when it does not exist. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_publish_read_optional (AbPublishSession *s, const char *path, GBytes **out,
                                   GError **error);
/* CHANNEL's manifest, checked before it is signed again: its signature is
 * the publisher's. A missing manifest is a new, empty one when CREATE,
 * else AB_PUBLISH_ERROR_NOT_FOUND. */
G_GNUC_WARN_UNUSED_RESULT
AbManifest *ab_publish_load_checked_manifest (AbPublishSession *s, const char *channel,
                                              gboolean create, GError **error);
/* Checks M's releases, stamps (serial, validity), signs and publishes it;
 * takes M. The signature is made before anything is written: on error the
 * channel files are unchanged. Returns M as written. */
G_GNUC_WARN_UNUSED_RESULT
AbManifest *ab_publish_write_manifest (AbPublishSession *s, AbManifest *m, GError **error);
/* Every channel manifest of the repo, unchecked. */
G_GNUC_WARN_UNUSED_RESULT
GPtrArray *ab_publish_load_all_manifests (AbPublishSession *s, GError **error);
/* The one commit VERSION is published as (version ref and every manifest),
 * or NULL when it is not published. Disagreeing records are a conflict. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_publish_published_commit (AbPublishSession *s, const char *version,
                                      char **out_commit, char **out_where, GError **error);
/* Fails unless VERSION is unpublished or published as COMMIT. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_publish_check_same_commit (AbPublishSession *s, const char *version,
                                       const char *commit, GError **error);
/* COMMIT (of VERSION) is in the repo, else AB_PUBLISH_ERROR_NOT_FOUND. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_publish_need_commit_object (AbPublishSession *s, const char *commit,
                                        const char *version, GError **error);
/* VERSION's release in M, else NULL and AB_PUBLISH_ERROR_NOT_FOUND. */
G_GNUC_WARN_UNUSED_RESULT
AbRelease *ab_publish_need_release (AbManifest *m, const char *version, GError **error);

/* ---- signatures (ab-publish-sign.c) ---- */

/* The signature SIG of DATA is by the signing key (or, with trusted_keys,
 * by one of those keys). */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_publish_signature_is_publishers (AbPublishSession *s, GBytes *data, GBytes *sig,
                                             GError **error);
/* *out_ok: COMMIT carries a good signature by the signing key or, with
 * trusted_keys, by one of those keys. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_publish_commit_is_trusted (AbPublishSession *s, const char *commit,
                                       gboolean *out_ok, GError **error);
/* Signs COMMIT with the signing key unless it already carries its
 * signature (no key: nothing to do). */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_publish_sign_commit (AbPublishSession *s, const char *commit, GError **error);

/* ---- summary (ab-publish-summary.c) ---- */

/* Every static delta of the repo but those named in SKIP is listed, with
 * the same superblock, by a channel manifest signed by the publisher or by
 * PENDING; AB_PUBLISH_ERROR_REFUSED otherwise. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_publish_check_repo_deltas_except (AbPublishSession *s, const AbManifest *pending,
                                              GHashTable *skip, GError **error);
/* ab_publish_check_repo_deltas_except() with nothing skipped. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_publish_check_repo_deltas (AbPublishSession *s, const AbManifest *pending,
                                       GError **error);
/* Regenerates the summary, signed when a key is at hand (and then only
 * when every delta it lists is checked, see above). */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_publish_update_summary (AbPublishSession *s, const AbManifest *pending,
                                    GError **error);

/* ---- the content gate of publish commit (ab-publish-gate.c) ---- */

typedef struct
{
  const AbPublishCommitOptions *o;
  int tree_dfd;
  GPtrArray *refused; /* messages, one per refused file */
  GPtrArray *allowed; /* messages, one per privileged file committed */
  AbEventSink *events; /* progress: files seen out of total, at most every 100 ms */
  guint64 files;
  gint64 total;
  gint64 last_us;
  /* image path ("/boot/vmlinuz-1.0") -> AbPublishFileKind, for the files
   * the layout check may take as kernels: boot/NAME and
   * usr/lib/modules/KVER/vmlinuz */
  GHashTable *kinds;
} AbPublishGate;

/* The commit filter: records refused and privileged files in the gate
 * (USER_DATA) and makes root the owner of every file. */
OstreeRepoCommitFilterResult ab_publish_gate_filter (OstreeRepo *repo, const char *path,
                                                     GFileInfo *info, gpointer user_data);
/* Fails (AB_PUBLISH_ERROR_REFUSED) with every refusal of the gate listed. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_publish_gate_verdict (AbPublishGate *g, GError **error);

/* ---- the image layout (ab-publish-layout.c) ---- */

typedef enum
{
  AB_PUBLISH_FILE_ABSENT = 0,
  AB_PUBLISH_FILE_REGULAR,   /* a regular file, not empty */
  AB_PUBLISH_FILE_OTHER,     /* a symbolic link, an empty file, ... */
} AbPublishFileKind;

typedef struct
{
  const AbPublishCommitOptions *o;
  OstreeRepo *repo;   /* in a transaction */
  GHashTable *kinds;  /* the gate's (AbPublishGate) */
} AbPublishLayout;

/* Checks the layout of ROOT, the commit's tree as read, and applies the
 * conversions of L->o (--move-etc, --move-boot) to ROOT alone (see the
 * invariants in ab-publish-layout.c); AB_PUBLISH_ERROR_REFUSED names what
 * is wrong and the option or change that fixes it. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_publish_layout_apply (AbPublishLayout *l, OstreeMutableTree *root, GError **error);
/* Letters, digits, '.', '_', '-'; not empty, no leading '.', at most 64. */
gboolean ab_publish_os_name_is_valid (const char *os);
/* The ID of the tree's usr/lib/os-release, else etc/os-release (regular
 * files reached without a link); AB_PUBLISH_ERROR_USAGE naming --os when
 * there is none or it is not a valid OS name. TREE names the tree. */
G_GNUC_WARN_UNUSED_RESULT
char *ab_publish_tree_os (int tree_dfd, const char *tree, GError **error);

/* ---- image packs (ab-publish-packs.c, issue 18) ---- */

/* Writes the packs of R's commit into REPO/abdeploy/packs/COMMIT/ (each
 * synced and renamed into place) and sets R->packs to their listing.
 * When the packs R already lists are on disk with their listed sizes and
 * SHA-256, they are kept as they are. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_publish_add_packs (AbPublishSession *s, AbRelease *r, GError **error);
/* The commits under REPO/abdeploy/packs/ whose commit object REACHABLE
 * (an ostree reachable set) lacks, into OUT_COMMITS; their bytes are added
 * to *BYTES. */
void ab_publish_packs_garbage (AbPublishSession *s, GHashTable *reachable, GPtrArray *out_commits,
                               guint64 *bytes);
/* Removes the packs of COMMIT (a missing directory is fine), durably. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_publish_packs_remove (AbPublishSession *s, const char *commit, GError **error);

/* ---- deltas (ab-publish-deltas.c) ---- */

/* Where libostree stores the static delta FROM → TO, relative to the repo. */
char *ab_publish_delta_dir (const char *from, const char *to);

/* ---- channel policy (ab-publish-policy.c) ---- */

#define AB_PUBLISH_KEEP_FOREVER (-1)

typedef struct
{
  gboolean stable; /* holds releases only: no SemVer pre-release */
  int keep_days;   /* prune's default: AB_PUBLISH_KEEP_FOREVER, 0 = none, or days */
} AbPublishChannelPolicy;

/* CHANNEL's policy: the built-in defaults, then REPO/abdeploy/publish.conf
 * (AB_PUBLISH_ERROR_USAGE when that file is malformed). */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_publish_channel_policy (AbPublishSession *s, const char *channel,
                                    AbPublishChannelPolicy *out, GError **error);
/* Refuses (AB_PUBLISH_ERROR_REFUSED) a SemVer pre-release VERSION in a
 * stable CHANNEL. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_publish_check_stable (AbPublishSession *s, const char *channel, const char *version,
                                  GError **error);

/* ---- prune (ab-publish-prune.c) ---- */

/* REPO/abdeploy/pruned-versions: version -> commit of every version that
 * prune dropped from its last channel (they stay published). */
G_GNUC_WARN_UNUSED_RESULT
GHashTable *ab_publish_load_pruned (AbPublishSession *s, GError **error);

/* ---- size index files (ab-publish-sizes.c, issue 18) ---- */

/* Writes abdeploy/sizes/COMMIT.sizes (ab-sizes.h: every object COMMIT
 * reaches but itself, with its archived and unpacked size) unless it
 * exists: tmp, fsync, rename, fsync of the directory. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_publish_write_size_index (AbPublishSession *s, const char *commit, GError **error);
/* *OUT (freed first): the manifest's description of COMMIT's index file
 * (path, size, SHA-256), or NULL when the commit has none (published
 * before issue 18). */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_publish_describe_size_index (AbPublishSession *s, const char *commit,
                                         AbDeltaFile **out, GError **error);
/* Removes the index files of commits not in REACHABLE (serialized commit
 * names), adding their bytes to *OUT_BYTES; DRY_RUN: only counts. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_publish_prune_size_indexes (AbPublishSession *s, GHashTable *reachable,
                                        gboolean dry_run, guint64 *out_bytes, GError **error);

/* The bytes of the regular files directly in the directory PATH (0 when
 * it is missing): what removing a delta's or a release's packs frees. */
guint64 ab_publish_dir_file_bytes (const char *path);
