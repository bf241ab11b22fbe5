/* The one translation of libostree's untyped errors into typed failures.
 *
 * libostree 2022.7 reports several outcomes that abdeploy must act on only
 * as G_IO_ERROR_FAILED with words: a commit without a signature or signed
 * by an unknown key from inside a pull, a corrupted object, an object over
 * the size cap (EFBIG), a metadata object over libostree's own cap, and an
 * I/O error after its cleanup overwrote errno. This module is the only
 * place in the engine that reads an error's message; every caller decides
 * on the AbOstreeFailure it returns. Errors that carry a domain and code
 * (OSTREE_GPG_ERROR) are classified by those first. */
#pragma once

#include <glib.h>

typedef enum
{
  AB_OSTREE_FAILURE_OTHER = 0,
  AB_OSTREE_FAILURE_NOT_SIGNED,       /* the commit has no signature */
  AB_OSTREE_FAILURE_UNTRUSTED,        /* signed by a key that is not trusted */
  AB_OSTREE_FAILURE_SIGNATURE,        /* another signature problem */
  AB_OSTREE_FAILURE_CORRUPTED,        /* "Corrupted ...": the message explains it */
  AB_OSTREE_FAILURE_CHECKSUM,         /* a checksum mismatch, in other words */
  AB_OSTREE_FAILURE_OBJECT_TOO_BIG,   /* an object over the pull's size cap (EFBIG) */
  AB_OSTREE_FAILURE_METADATA_TOO_BIG, /* a metadata object over libostree's cap */
  AB_OSTREE_FAILURE_IO,               /* the device failed (EIO) */
} AbOstreeFailure;

/* What libostree's error E means (E is not NULL). Never fails. */
AbOstreeFailure ab_ostree_failure_of (const GError *e);

/* Whether FAILURE is one of the signature failures. */
gboolean ab_ostree_failure_is_signature (AbOstreeFailure failure);

/* The signer's key id or fingerprint that libostree names only in the words
 * of a signature error ("... using RSA key ID 192FA9659F7C8216"),
 * upper-case, or NULL when E names none. */
char *ab_ostree_failure_signer (const GError *e);
