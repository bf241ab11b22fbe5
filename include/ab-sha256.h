/* SHA-256 through OpenSSL's libcrypto (EVP): where abdeploy hashes content
 * itself (imported objects, delta files, archives). GLib's GChecksum is
 * about four times slower on CPUs with SHA extensions.
 *
 * Invariant: a digest is always rendered as 64 lowercase hex digits, the
 * form OSTree object names and abdeploy's manifests use. */
#pragma once

#include <glib.h>

#define AB_SHA256_HEX_LEN 64

typedef struct AbSha256 AbSha256;

/* A fresh context; never NULL (aborts when libcrypto has no SHA-256). */
AbSha256 *ab_sha256_new (void);
/* Adds LEN bytes of DATA to the message; cannot fail. */
void ab_sha256_update (AbSha256 *ctx, const void *data, gsize len);
/* Writes the digest as hex into OUT (AB_SHA256_HEX_LEN + 1 bytes) and
 * resets CTX for the next message. */
void ab_sha256_finish_hex (AbSha256 *ctx, char *out);
/* Frees CTX; NULL is allowed. */
void ab_sha256_free (AbSha256 *ctx);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AbSha256, ab_sha256_free)

/* The hex digest of DATA, newly allocated. */
char *ab_sha256_hex (const void *data, gsize len);
