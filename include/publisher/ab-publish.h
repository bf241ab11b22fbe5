/* Publisher: commits image trees into an archive-mode OSTree repo and keeps
 * the signed channel manifests of that repo (abdeploy-publish(8),
 * abdeploy-manifest(5)).
 *
 * Invariants:
 * - A published version maps to one commit, forever: the version ref
 *   AB_PUBLISH_VERSION_REF_PREFIX "<version>" and every channel manifest that
 *   lists the version agree on its commit, and no operation changes it
 *   (AB_PUBLISH_ERROR_CONFLICT instead).
 * - A manifest is only ever written together with its fresh detached
 *   signature, and its serial grows by one with every rewrite (never past
 *   AB_MANIFEST_MAX_SERIAL). Nothing is written when signing fails.
 * - Nothing is signed unchecked: a manifest is rewritten only when its
 *   current signature is the publisher's, every release it lists is the
 *   commit of its version ref and signed, and every delta it lists was
 *   checked against its superblock (AB_PUBLISH_ERROR_REFUSED otherwise).
 * - The channel files switch as a whole: REPO/abdeploy/channels is a
 *   symlink to a complete generation directory, replaced by one rename.
 * - Writers of one repo are serialized by a lock (REPO/abdeploy/publish.lock). */
#pragma once

#include <glib.h>
#include "ab-manifest.h"
#include "ab-events.h"
#include "ab-content.h"

#define AB_PUBLISH_ERROR (ab_publish_error_quark ())
/* The error domain of ab-publish (the codes of the enum below). */
GQuark ab_publish_error_quark (void);

typedef enum
{
  AB_PUBLISH_ERROR_FAILED,
  AB_PUBLISH_ERROR_USAGE,     /* an option value is invalid (exit 2) */
  AB_PUBLISH_ERROR_CONFLICT,  /* a published version would change its commit */
  AB_PUBLISH_ERROR_NOT_FOUND, /* version, channel or release missing */
  AB_PUBLISH_ERROR_REFUSED,   /* content or state the publisher will not sign as it is */
} AbPublishError;

#define AB_PUBLISH_CHANNELS_DIR "abdeploy/channels"
/* The signed list of the channels, in AB_PUBLISH_CHANNELS_DIR (with ".sig"):
 * abdeploy-manifest(5), CHANNEL INDEX. */
#define AB_PUBLISH_CHANNEL_INDEX AB_CHANNEL_INDEX_NAME
#define AB_PUBLISH_VERSION_REF_PREFIX "abdeploy/release/"
/* The signed commit metadata naming the OS a commit is for (a string);
 * devices refuse a commit for another OS (ab-content.h). */
#define AB_PUBLISH_COMMIT_META_OS AB_CONTENT_META_OS
#define AB_PUBLISH_DEFAULT_EXPIRES_DAYS 30
#define AB_PUBLISH_MAX_EXPIRES_DAYS 3660

typedef struct
{
  const char *repo;        /* path of the publisher's repo */
  const char *gpg_key;     /* signing key id; mandatory for manifests */
  const char *gpg_homedir; /* GnuPG home of the key; NULL = GnuPG's default */
  guint expires_days;      /* validity of rewritten manifests; 0 = 30 days */
  const char *trusted_keys; /* directory of public keys (*.gpg, *.asc) any of which may have
                             * signed the manifests and commits checked before a manifest is
                             * signed again; NULL = only gpg_key */
  /* Where commit and deltas report (may be NULL): commit "commit" (files of
   * the tree committed out of the tree's files), "sign", "summary"; deltas
   * "generate", "summary", "manifest". */
  AbEventSink *events;
} AbPublisher;

typedef struct
{
  const char *tree;            /* directory to commit */
  const char *version;
  const char *branch;          /* extra ref moved to the commit, or NULL */
  const char *source_revision; /* recorded as "source-revision", or NULL */
  /* Image paths ("/usr/bin/x") that may be setuid, setgid or carry file
   * capabilities although root does not own them in the tree; NULL-ended. */
  const char *const *allow_setuid;
  gboolean allow_privileged; /* ... any such file */
  /* The OS the image is for, stamped as AB_PUBLISH_COMMIT_META_OS; NULL:
   * the ID of the tree's usr/lib/os-release or etc/os-release. */
  const char *os;
  gboolean move_etc;  /* a top-level etc goes to usr/etc in the commit */
  gboolean move_boot; /* boot/vmlinuz-KVER, boot/initrd.img-KVER go to
                       * usr/lib/modules/KVER/{vmlinuz,initramfs.img} */
  gboolean no_kernel; /* a tree without a kernel may be committed */
} AbPublishCommitOptions;

/* Commits OPTS->tree as OPTS->version (the repo is created, archive mode,
 * when missing). Publishing the same tree again under a published version
 * is a no-op that returns the published commit (*out_created = FALSE); a
 * different tree is AB_PUBLISH_ERROR_CONFLICT. The commit is signed when
 * P->gpg_key is set. A file that would gain root's privileges in the image
 * (setuid, setgid or file capabilities not given to root in the tree) and is
 * not allowed by OPTS, or whose name is not valid UTF-8 or holds a control
 * character, is AB_PUBLISH_ERROR_REFUSED, listing every such file. So is a
 * tree a device cannot use as it is (a top-level etc, a kernel only in
 * boot/vmlinuz-KVER, no kernel at all) unless OPTS asks to convert it (or
 * allows no kernel); conversions change the commit, never OPTS->tree.
 * *out_privileged lists every privileged file committed, one line each. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_publish_commit (const AbPublisher *p, const AbPublishCommitOptions *opts,
                            char **out_commit, gboolean *out_created, char ***out_privileged,
                            GError **error);

/* The manifest operations return the manifest as written (and signed). */

/* Adds VERSION (already committed) to CHANNEL at ROLLOUT percent (0 = 100);
 * releasing it again only sets the rollout. */
G_GNUC_WARN_UNUSED_RESULT
AbManifest *ab_publish_release (const AbPublisher *p, const char *channel, const char *version,
                                guint rollout, GError **error);
typedef struct
{
  guint rollout;                /* 0 = 100 */
  gboolean security;            /* mark the release "security": true */
  const AbReleaseNotes *notes;  /* signed into "notes" (ab_publish_read_notes()); NULL = keep */
} AbPublishReleaseOptions;

/* ab_publish_release() with the marks of issue 17: a release listed
 * already gets O's rollout, and the security mark and notes when O sets
 * them (never removed). A SemVer pre-release in a stable channel is
 * AB_PUBLISH_ERROR_REFUSED. */
G_GNUC_WARN_UNUSED_RESULT
AbManifest *ab_publish_release_with (const AbPublisher *p, const char *channel,
                                     const char *version, const AbPublishReleaseOptions *o,
                                     GError **error);
/* Reads and checks a customer note file (abdeploy-publish(8), CUSTOMER
 * NOTES); AB_PUBLISH_ERROR_USAGE naming the problem otherwise. */
G_GNUC_WARN_UNUSED_RESULT
AbReleaseNotes *ab_publish_read_notes (const char *path, GError **error);
/* ab_publish_promote() that lists the release as version AS in TO (NULL:
 * its own version): same commit, "promoted_from" = VERSION, and the ref
 * AB_PUBLISH_VERSION_REF_PREFIX AS set to that commit. AS must be new or
 * already that commit. A SemVer pre-release listed in a stable TO is
 * AB_PUBLISH_ERROR_REFUSED. */
G_GNUC_WARN_UNUSED_RESULT
AbManifest *ab_publish_promote_as (const AbPublisher *p, const char *from, const char *to,
                                   const char *version, const char *as, guint rollout,
                                   GError **error);
/* Copies the release entry of VERSION from channel FROM into channel TO
 * (same commit, same deltas; published_at = now; ROLLOUT 0 = 100). */
G_GNUC_WARN_UNUSED_RESULT
AbManifest *ab_publish_promote (const AbPublisher *p, const char *from, const char *to,
                                const char *version, guint rollout, GError **error);
/* Marks VERSION deprecated in CHANNEL with REASON (devices show it and no
 * longer install it). */
G_GNUC_WARN_UNUSED_RESULT
AbManifest *ab_publish_deprecate (const AbPublisher *p, const char *channel,
                                  const char *version, const char *reason, GError **error);
/* Static deltas to the newest release of CHANNEL from each of the FROM_LAST
 * releases below it (by version), listed in the newest release's entry;
 * with FULL_DELTA also the delta from nothing (its "full_delta", issue 18),
 * with PACKS also the image packs of its commit (its "packs", issue 18). */
G_GNUC_WARN_UNUSED_RESULT
AbManifest *ab_publish_deltas (const AbPublisher *p, const char *channel, guint from_last,
                               gboolean full_delta, gboolean packs, GError **error);
typedef struct
{
  const char *channel;
  int keep_days;     /* 0: the channel's policy (publish.conf or the built-in default) */
  guint keep_last;   /* keep at least the K newest releases; 0: no such rule */
  gboolean dry_run;  /* report what would go, change nothing */
} AbPublishPruneOptions;

typedef struct
{
  AbManifest *manifest; /* the channel as rewritten, or NULL (not rewritten) */
  GPtrArray *dropped;   /* AbRelease: releases dropped from the channel */
  GPtrArray *refs;      /* version refs deleted */
  GPtrArray *deltas;    /* static deltas deleted ("FROM-TO") */
  GPtrArray *packs;     /* commits whose image packs were deleted (issue 18) */
  guint objects;        /* objects deleted */
  guint64 bytes;        /* bytes freed: objects, deltas and packs */
} AbPublishPruneResult;

/* Frees R; NULL is allowed. */
void ab_publish_prune_result_free (AbPublishPruneResult *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AbPublishPruneResult, ab_publish_prune_result_free)

/* Drops old releases from O->channel's manifest (re-signed, serial + 1)
 * and deletes the commits, deltas and objects no channel references any
 * more (abdeploy-publish(8), prune). Never drops the newest or latest
 * release, one whose commit another channel lists, or anything of a
 * keep-forever channel (AB_PUBLISH_ERROR_REFUSED). Dropped versions stay
 * published (recorded in REPO/abdeploy/pruned-versions). */
G_GNUC_WARN_UNUSED_RESULT
AbPublishPruneResult *ab_publish_prune (const AbPublisher *p, const AbPublishPruneOptions *o,
                                        GError **error);
/* Re-signs CHANNEL unchanged but for serial, issued_at and expires_at. */
G_GNUC_WARN_UNUSED_RESULT
AbManifest *ab_publish_refresh (const AbPublisher *p, const char *channel, GError **error);
