/* Detached OpenPGP signatures with gpgme: the publisher signs channel
 * manifests, devices verify them against a directory of trusted keys.
 *
 * Invariant: ab_gpg_verify_detached() succeeds only for a cryptographically
 * good signature made by one of the keys found in the trusted directory. It
 * never consults the caller's GnuPG home, keyservers or the web of trust:
 * every call builds a throwaway keyring from the trusted directory alone and
 * removes it (and any agent started for it) before returning. */
#pragma once

#include <glib.h>

#define AB_GPG_ERROR (ab_gpg_error_quark ())
/* The error domain of ab-gpg (the codes of the enum below). */
GQuark ab_gpg_error_quark (void);

typedef enum
{
  AB_GPG_ERROR_FAILED,
  AB_GPG_ERROR_NO_KEYS,       /* the trusted directory holds no usable public key */
  AB_GPG_ERROR_NO_SIGNATURE,  /* the signature data holds no OpenPGP signature */
  AB_GPG_ERROR_BAD_SIGNATURE, /* the data or the signature was altered */
  AB_GPG_ERROR_UNTRUSTED_KEY, /* good or not, made by a key that is not trusted */
} AbGpgError;

/* Signs DATA with secret key KEYID of the GnuPG home HOMEDIR (NULL: the
 * default, $GNUPGHOME or ~/.gnupg); *out_sig is a binary detached signature
 * that `gpg --verify SIG DATA` accepts. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_gpg_sign_detached (const char *homedir, const char *keyid, GBytes *data,
                               GBytes **out_sig, GError **error);

/* Whether SIG, a detached signature of DATA, holds a good signature by the
 * key KEYID of GnuPG home HOMEDIR (NULL: the default), so that a signer
 * can avoid signing the same data twice. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_gpg_is_signed_by (const char *homedir, const char *keyid, GBytes *data, GBytes *sig,
                              gboolean *out_signed, GError **error);

/* Verifies the detached signature SIG of DATA against the public keys in
 * TRUSTED_DIR (every *.gpg, binary, and *.asc, armored, file). On success
 * *out_fingerprint (optional) is the primary-key fingerprint of the signer. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_gpg_verify_detached (const char *trusted_dir, GBytes *data, GBytes *sig,
                                 char **out_fingerprint, GError **error);

/* The primary-key fingerprints of the public keys in TRUSTED_DIR (every
 * *.gpg and *.asc file), sorted, NULL-terminated: what an error names as the
 * trusted keys. Fails like ab_gpg_verify_detached() when there are none. */
G_GNUC_WARN_UNUSED_RESULT
char **ab_gpg_trusted_fingerprints (const char *trusted_dir, GError **error);

/* "fingerprint F" when FPR is a full (40 or 64 hex) fingerprint, "key id K"
 * when it is a shorter key id, "an unknown key" when NULL. */
char *ab_gpg_describe_signer (const char *fpr);

/* A fresh GnuPG home in TMPDIR (abdeploy-gpg-XXXXXX), as every verification
 * makes one: its gpg.conf says no-autostart, so no gpg-agent or other
 * daemon is ever started for it. ab_gpg_discard_home() stops whatever runs
 * on it anyway and removes it. */
G_GNUC_WARN_UNUSED_RESULT
char *ab_gpg_new_throwaway_home (GError **error);
/* Stops the agent of the throwaway GnuPG home HOME, removes it and frees
 * HOME. */
void ab_gpg_discard_home (char *home);

/* Like ab_gpg_verify_detached(), but the one trusted key is KEYID of the
 * GnuPG home HOMEDIR (NULL: the default): the publisher checks that a
 * manifest it is about to rewrite is still the one it signed. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_gpg_verify_detached_by_key (const char *homedir, const char *keyid, GBytes *data,
                                        GBytes *sig, GError **error);
