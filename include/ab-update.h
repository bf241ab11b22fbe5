/* The update client: signed channel manifest over libcurl, verified with
 * gpgme; TUF-style checks; the update transaction.
 *
 * Invariants:
 * - Nothing is downloaded into the repo before the manifest's signature,
 *   channel, expiry and serial were checked; a serial lower than the last
 *   one accepted is a replay and is refused.
 * - The commit installed is exactly the commit the manifest names (pulled by
 *   checksum or rebuilt from a delta whose target is that checksum), and it
 *   must itself carry a trusted signature.
 * - A version lower than the installed one is never installed without
 *   allow_downgrade. */
#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>
#include "ab-manifest.h"
#include "ab-sysroot.h"
#include "ab-transaction.h"

#define AB_UPDATE_ERROR (ab_update_error_quark ())
/* The error domain of ab-update (the codes of the enum below). */
GQuark ab_update_error_quark (void);

typedef enum
{
  AB_UPDATE_ERROR_FAILED,
  AB_UPDATE_ERROR_REFUSED,   /* verification refused it: exit 3 */
  AB_UPDATE_ERROR_NO_UPDATE, /* nothing to do: exit 5 */
  AB_UPDATE_ERROR_CONFIG,
  AB_UPDATE_ERROR_WAITING,   /* a terminally failed transaction waits for the operator */
} AbUpdateError;

typedef struct
{
  char *installed_version;
  char *installed_commit;
  char *offered_version;   /* NULL when nothing is offered */
  char *offered_commit;
  char *reason;            /* why nothing (newer) is offered, or NULL */
  char *warning;           /* deprecation or staleness warning, or NULL */
  guint64 serial;
  char *expires_at;
  char *channel;
  gboolean pin_allows_downgrade; /* the pin is below the installed version, by consent */
  AbManifest *manifest;
  /* issue 17 */
  char *signer;            /* fingerprint of the key that signed the manifest (NULL: cached) */
  char *pin;               /* the pin (update.json), or NULL */
  gboolean pin_exact;      /* a full SemVer version; otherwise it rolls (abdeploy(8), PINS) */
  char *pin_resolves_to;   /* the version the pin resolves to in this manifest, or NULL */
  char *pin_commit;        /* the digest an exact pin is bound to, or NULL */
  char *pin_signer;        /* the signer the pin is bound to, or NULL */
  char *pin_conflict;      /* why update refuses (exit 3): the channel changed what the pin
                            * is bound to; NULL when it did not */
  char *installed_deprecated; /* the publisher's reason when the installed release is deprecated */
  gboolean offered_security;  /* the offered release is marked "security" */
} AbUpdateCheck;

/* Frees C and everything it owns; NULL is allowed. */
void ab_update_check_free (AbUpdateCheck *c);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AbUpdateCheck, ab_update_check_free)

typedef struct
{
  const char *version;      /* --version, or NULL for the offered one */
  gboolean activate;
  gboolean allow_downgrade;
  GCancellable *cancellable;
} AbUpdateOptions;

/* Bucket 0..9999 of (machine id, version) for phased rollouts. */
guint ab_update_rollout_bucket (const char *machine_id, const char *version);
/* Whether a release at PERCENT is offered to MACHINE_ID (NULL: only at 100
 * %). */
gboolean ab_update_in_rollout (const char *machine_id, const char *version, guint percent);

/* Fetches and verifies the channel manifest (signature, channel, expiry,
 * serial; a new serial is recorded) and decides what is offered and why.
 * Nothing is downloaded into the repo. */
G_GNUC_WARN_UNUSED_RESULT
AbUpdateCheck *ab_update_check (AbSysroot *sysroot, GError **error);
/* C as check-update --json prints it. */
JsonNode *ab_update_check_to_json (const AbUpdateCheck *c);
/* Downloads, verifies, stages and (opts->activate) activates the release.
 * Reports to sysroot->events: "download" (bytes: a delta's files out of
 * the sizes the signed manifest lists for them; without a delta, the
 * objects as ab_content_pull() reports them), "unpack" (a delta applied),
 * then the phases of ab_deploy_stage() and "activate"; warnings (a
 * deprecated or stale release, a retried download). */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_update_run (AbSysroot *sysroot, const AbUpdateOptions *opts, GError **error);
/* Continues the recorded transaction; ABANDON marks it abandoned instead.
 * Reports a message naming the transaction, then as ab_update_run() from
 * the recorded phase on. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_update_resume (AbSysroot *sysroot, const AbUpdateOptions *opts, gboolean abandon,
                           GError **error);
/* What the boot unit abdeploy-resume.service runs: resumes the recorded
 * transaction only when an update was interrupted (killed, or failed and
 * retryable) and it has run fewer than [update] max-resume-attempts
 * times; AB_UPDATE_ERROR_NO_UPDATE when there is none (or it failed for a
 * reason that waits for the operator), AB_UPDATE_ERROR_WAITING when its
 * attempts are used up. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_update_resume_interrupted (AbSysroot *sysroot, const AbUpdateOptions *opts,
                                       GError **error);
/* VERSION NULL clears the pin. Otherwise the channel manifest is fetched
 * and verified (ab_update_check()), and the pin must resolve to a release
 * of it (abdeploy(8), PINS), unless FORCE (which also pins without the
 * manifest when it cannot be fetched or verified). The pin is bound to
 * the manifest's signer and, exact, to its release's commit; update
 * refuses when the channel later changes either. A pin resolving to a
 * lower precedence than the installed one is refused
 * (AB_UPDATE_ERROR_REFUSED) unless ALLOW_DOWNGRADE; then the pin records
 * that consent. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_update_pin (AbSysroot *sysroot, const char *version, gboolean allow_downgrade,
                        gboolean force, GError **error);
/* What the last verified manifest of the channel (the cache check-update,
 * update and pin write; no network) says about this device, as
 * ab_update_check() would decide it; NULL without error when no manifest
 * of the channel was cached yet. Serials are not checked or recorded. */
G_GNUC_WARN_UNUSED_RESULT
AbUpdateCheck *ab_update_check_cached (AbSysroot *sysroot, GError **error);
/* status --json's "pin": {"version", "exact", "resolves_to", "digest",
 * "signer", "conflict"} (null members when unknown), from update.json and
 * C (the cached check, or NULL); SYSROOT NULL: no pin. */
G_GNUC_WARN_UNUSED_RESULT
JsonNode *ab_update_pin_to_json (AbSysroot *sysroot, const AbUpdateCheck *c, GError **error);
/* TEXT, an update.json about to replace the one in STATE_DFD (restore),
 * with every accepted serial that the current file has higher: serials
 * only go up. TEXT unchanged when either file is not an update state
 * (restore works on wrecked state). */
char *ab_update_state_keep_serials (int state_dfd, const char *text, gsize len);
/* The pin, or NULL. */
G_GNUC_WARN_UNUSED_RESULT
char *ab_update_get_pin (AbSysroot *sysroot, GError **error);
