/* Content: the libostree repo of the sysroot. Pulls (HTTP(S) URL or local
 * repo path), verifies GPG signatures against SYSROOT/etc/abdeploy/trusted.gpg.d,
 * checks commits out with hardlinks.
 *
 * Invariant: a commit that is not signed by a trusted key never leaves the
 * repo: ab_content_verify() is called on every commit before checkout, and
 * pulls run with GPG verification on, so an unverifiable commit is not even
 * written to the repo. There is no way to turn this off. */
#pragma once

#include <glib.h>
#include <ostree.h>
#include "ab-util.h"

#define AB_CONTENT_ERROR (ab_content_error_quark ())
GQuark ab_content_error_quark (void);

typedef enum
{
  AB_CONTENT_ERROR_FAILED,
  AB_CONTENT_ERROR_VERIFY,     /* missing, bad or untrusted signature */
  AB_CONTENT_ERROR_NOT_FOUND,
  AB_CONTENT_ERROR_USAGE,
} AbContentError;

#define AB_CONTENT_REMOTE "abdeploy"
#define AB_TRUSTED_KEYS_DIR "etc/abdeploy/trusted.gpg.d"

OstreeRepo *ab_content_create_repo (int sysroot_dfd, GError **error);
OstreeRepo *ab_content_open_repo (int sysroot_dfd, GError **error);


/* Pulls REF or COMMIT from SOURCE (URL or local path) with verification,
 * returning the commit checksum. */
gboolean ab_content_pull (OstreeRepo *repo, int sysroot_dfd, const char *source,
                          const char *refspec, AbProgressFunc progress, gpointer user_data,
                          const char *tls_ca_path, GCancellable *cancellable,
                          char **out_commit, GError **error);
/* Resolves a ref or commit already in the repo. */
gboolean ab_content_resolve (OstreeRepo *repo, const char *refspec, char **out_commit,
                             GError **error);
/* Fails with AB_CONTENT_ERROR_VERIFY unless a trusted key signed COMMIT. */
gboolean ab_content_verify (OstreeRepo *repo, int sysroot_dfd, const char *commit,
                            GError **error);
/* The string metadata KEY of COMMIT, or NULL when absent. */
char *ab_content_commit_meta (OstreeRepo *repo, const char *commit, const char *key,
                              GError **error);
/* The "version" metadata of COMMIT, or NULL. */
char *ab_content_commit_version (OstreeRepo *repo, const char *commit, GError **error);
/* Checks COMMIT out into dfd/path with hardlinks into the repo. */
gboolean ab_content_checkout (OstreeRepo *repo, const char *commit, int dfd, const char *path,
                              GCancellable *cancellable, GError **error);
gboolean ab_content_set_ref (OstreeRepo *repo, const char *ref, const char *commit,
                             GError **error);
