/* The one translation of libostree's untyped errors (ab-ostree-error.h). */
#include "config.h"
#include "ab-ostree-error.h"

#include <errno.h>
#include <ostree.h>
#include <string.h>

static gboolean
says (const GError *e, const char *words)
{
  return strstr (e->message, words) != NULL;
}

/* libostree's signature errors from inside a pull carry no domain of
 * their own; its verification API's errors do (OSTREE_GPG_ERROR). */
static AbOstreeFailure
signature_failure_of (const GError *e)
{
  g_autofree char *signer = ab_ostree_failure_signer (e);
  if (g_error_matches (e, OSTREE_GPG_ERROR, OSTREE_GPG_ERROR_NO_SIGNATURE)
      || says (e, "no signatures found"))
    return AB_OSTREE_FAILURE_NOT_SIGNED;
  if (g_error_matches (e, OSTREE_GPG_ERROR, OSTREE_GPG_ERROR_MISSING_KEY) || signer != NULL
      || says (e, "public key not found"))
    return AB_OSTREE_FAILURE_UNTRUSTED;
  return AB_OSTREE_FAILURE_SIGNATURE;
}

static gboolean
is_signature_error (const GError *e)
{
  return e->domain == OSTREE_GPG_ERROR || says (e, "GPG") || says (e, "signature")
         || says (e, "public key not found");
}

/* Invariant: the size caps come first, as the pull sets them (a message
 * naming EFBIG is the cap, whatever else it says); then signatures, then
 * corruption, then the device. */
AbOstreeFailure
ab_ostree_failure_of (const GError *e)
{
  if (says (e, g_strerror (EFBIG)))
    return AB_OSTREE_FAILURE_OBJECT_TOO_BIG;
  if (says (e, "exceeded maximum size"))
    return AB_OSTREE_FAILURE_METADATA_TOO_BIG;
  if (is_signature_error (e))
    return signature_failure_of (e);
  if (says (e, "Corrupted"))
    return AB_OSTREE_FAILURE_CORRUPTED;
  if (says (e, "checksum"))
    return AB_OSTREE_FAILURE_CHECKSUM;
  if (says (e, g_strerror (EIO)))
    return AB_OSTREE_FAILURE_IO;
  return AB_OSTREE_FAILURE_OTHER;
}

gboolean
ab_ostree_failure_is_signature (AbOstreeFailure failure)
{
  return failure == AB_OSTREE_FAILURE_NOT_SIGNED || failure == AB_OSTREE_FAILURE_UNTRUSTED
         || failure == AB_OSTREE_FAILURE_SIGNATURE;
}

char *
ab_ostree_failure_signer (const GError *e)
{
  static const char *const marks[] = { "key ID ", "fingerprint ", "Key: " };
  for (guint i = 0; i < G_N_ELEMENTS (marks); i++)
    {
      const char *at = strstr (e->message, marks[i]);
      if (at == NULL)
        continue;
      at += strlen (marks[i]);
      gsize n = strspn (at, "0123456789ABCDEFabcdef");
      if (n >= 8)
        return g_ascii_strup (at, (gssize) n);
    }
  return NULL;
}
