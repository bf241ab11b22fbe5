#include "config.h"
#include "ab-sha256.h"

#include <openssl/evp.h>

struct AbSha256
{
  EVP_MD_CTX *md;
};

static void
init_or_abort (AbSha256 *ctx)
{
  if (EVP_DigestInit_ex (ctx->md, EVP_sha256 (), NULL) != 1)
    g_error ("libcrypto cannot compute SHA-256");
}

AbSha256 *
ab_sha256_new (void)
{
  AbSha256 *ctx = g_new0 (AbSha256, 1);
  ctx->md = EVP_MD_CTX_new ();
  if (ctx->md == NULL)
    g_error ("libcrypto: out of memory");
  init_or_abort (ctx);
  return ctx;
}

void
ab_sha256_update (AbSha256 *ctx, const void *data, gsize len)
{
  if (len > 0 && EVP_DigestUpdate (ctx->md, data, len) != 1)
    g_error ("libcrypto: SHA-256 update failed");
}

void
ab_sha256_finish_hex (AbSha256 *ctx, char *out)
{
  static const char hex[] = "0123456789abcdef";
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_DigestFinal_ex (ctx->md, digest, &n) != 1 || n * 2 != AB_SHA256_HEX_LEN)
    g_error ("libcrypto: SHA-256 final failed");
  for (unsigned int i = 0; i < n; i++)
    {
      out[2 * i] = hex[digest[i] >> 4];
      out[2 * i + 1] = hex[digest[i] & 0xf];
    }
  out[AB_SHA256_HEX_LEN] = '\0';
  init_or_abort (ctx);
}

void
ab_sha256_free (AbSha256 *ctx)
{
  if (ctx == NULL)
    return;
  EVP_MD_CTX_free (ctx->md);
  g_free (ctx);
}

char *
ab_sha256_hex (const void *data, gsize len)
{
  g_autoptr(AbSha256) ctx = ab_sha256_new ();
  char *out = g_malloc (AB_SHA256_HEX_LEN + 1);
  ab_sha256_update (ctx, data, len);
  ab_sha256_finish_hex (ctx, out);
  return out;
}
