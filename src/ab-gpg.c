#include "config.h"
#include "ab-gpg.h"
#include "ab-util.h"
#include "ab-fsutil.h"

#include <fcntl.h>
#include <gpgme.h>
#include <stdlib.h>
#include <string.h>

G_DEFINE_QUARK (ab-gpg-error-quark, ab_gpg_error)

G_DEFINE_AUTO_CLEANUP_FREE_FUNC (gpgme_ctx_t, gpgme_release, NULL)
G_DEFINE_AUTO_CLEANUP_FREE_FUNC (gpgme_data_t, gpgme_data_release, NULL)
G_DEFINE_AUTO_CLEANUP_FREE_FUNC (gpgme_key_t, gpgme_key_unref, NULL)

static void
gpgme_init_once (void)
{
  static gsize done = 0;
  if (g_once_init_enter (&done))
    {
      gpgme_check_version (NULL);
      g_once_init_leave (&done, 1);
    }
}

static gboolean
fail_gpgme (GError **error, gpgme_error_t err, const char *what)
{
  g_set_error (error, AB_GPG_ERROR, AB_GPG_ERROR_FAILED, "%s: %s", what, gpgme_strerror (err));
  return FALSE;
}

/* An OpenPGP context on HOMEDIR (NULL: GnuPG's default home), binary output. */
static gpgme_ctx_t
new_context (const char *homedir, GError **error)
{
  gpgme_init_once ();
  gpgme_ctx_t ctx = NULL;
  gpgme_error_t err = gpgme_new (&ctx);
  if (!err)
    err = gpgme_set_protocol (ctx, GPGME_PROTOCOL_OpenPGP);
  if (!err && homedir != NULL)
    err = gpgme_ctx_set_engine_info (ctx, GPGME_PROTOCOL_OpenPGP, NULL, homedir);
  if (err)
    {
      if (ctx)
        gpgme_release (ctx);
      fail_gpgme (error, err, "Setting up GnuPG (is gpg installed?)");
      return NULL;
    }
  gpgme_set_armor (ctx, 0);
  return ctx;
}

static gpgme_data_t
data_from_bytes (GBytes *bytes, GError **error)
{
  gsize len = 0;
  const char *buf = g_bytes_get_data (bytes, &len);
  gpgme_data_t d = NULL;
  /* copy = 0: BYTES outlives the data object in every caller. */
  gpgme_error_t err = gpgme_data_new_from_mem (&d, buf ? buf : "", len, 0);
  if (err)
    fail_gpgme (error, err, "Preparing data for GnuPG");
  return err ? NULL : d;
}

static GBytes *
data_to_bytes (gpgme_data_t d)
{
  size_t len = 0;
  char *buf = gpgme_data_release_and_get_mem (d, &len);
  GBytes *b = g_bytes_new (buf, len);
  gpgme_free (buf);
  return b;
}

/* ---- signing ---- */

static gpgme_key_t
secret_key (gpgme_ctx_t ctx, const char *homedir, const char *keyid, GError **error)
{
  gpgme_key_t key = NULL;
  gpgme_error_t err = gpgme_get_key (ctx, keyid, &key, 1);
  if (!err && key->can_sign && !key->revoked && !key->expired && !key->disabled)
    return key;
  const char *why = !err ? "it cannot sign (revoked, expired, disabled or not a signing key)"
                  : gpgme_err_code (err) == GPG_ERR_AMBIGUOUS_NAME ? "it matches several keys; give the full fingerprint"
                  : gpgme_err_code (err) == GPG_ERR_EOF ? "there is no such secret key"
                  : gpgme_strerror (err);
  g_set_error (error, AB_GPG_ERROR, AB_GPG_ERROR_FAILED,
               "Cannot sign with GPG key %s from GnuPG home %s: %s. Check --gpg-sign and "
               "--gpg-homedir (gpg --homedir DIR --list-secret-keys)", keyid,
               homedir ? homedir : "(default)", why);
  if (key)
    gpgme_key_unref (key);
  return NULL;
}

gboolean
ab_gpg_sign_detached (const char *homedir, const char *keyid, GBytes *data, GBytes **out_sig,
                      GError **error)
{
  g_auto(gpgme_ctx_t) ctx = new_context (homedir, error);
  if (ctx == NULL)
    return FALSE;
  g_auto(gpgme_key_t) key = secret_key (ctx, homedir, keyid, error);
  if (key == NULL)
    return FALSE;
  gpgme_error_t err = gpgme_signers_add (ctx, key);
  if (err)
    return fail_gpgme (error, err, "Selecting the signing key");
  g_auto(gpgme_data_t) in = data_from_bytes (data, error);
  if (in == NULL)
    return FALSE;
  gpgme_data_t out = NULL;
  if ((err = gpgme_data_new (&out)))
    return fail_gpgme (error, err, "Preparing the signature buffer");
  err = gpgme_op_sign (ctx, in, out, GPGME_SIG_MODE_DETACH);
  gpgme_sign_result_t res = err ? NULL : gpgme_op_sign_result (ctx);
  if (err || res == NULL || res->invalid_signers != NULL || res->signatures == NULL)
    {
      gpgme_data_release (out);
      g_autofree char *what = g_strdup_printf ("Signing with GPG key %s failed (a passphrase-"
                                               "protected key needs a running gpg-agent)", keyid);
      return fail_gpgme (error, err ? err : gpg_error (GPG_ERR_UNUSABLE_SECKEY), what);
    }
  *out_sig = data_to_bytes (out);
  return TRUE;
}

static char *
primary_fingerprint (gpgme_ctx_t ctx, const char *key_or_subkey)
{
  g_auto(gpgme_key_t) key = NULL;
  if (key_or_subkey == NULL || gpgme_get_key (ctx, key_or_subkey, &key, 0) != 0
      || key->subkeys == NULL)
    return NULL;
  return g_strdup (key->subkeys->fpr);
}

gboolean
ab_gpg_is_signed_by (const char *homedir, const char *keyid, GBytes *data, GBytes *sig,
                     gboolean *out_signed, GError **error)
{
  *out_signed = FALSE;
  g_auto(gpgme_ctx_t) ctx = new_context (homedir, error);
  if (ctx == NULL)
    return FALSE;
  g_autofree char *wanted = primary_fingerprint (ctx, keyid);
  if (wanted == NULL)
    return TRUE; /* a key that is not there signed nothing; signing says so */
  g_auto(gpgme_data_t) sig_d = data_from_bytes (sig, error);
  g_auto(gpgme_data_t) data_d = sig_d ? data_from_bytes (data, error) : NULL;
  if (data_d == NULL)
    return FALSE;
  if (gpgme_op_verify (ctx, sig_d, data_d, NULL) != 0)
    return TRUE; /* not a readable signature: not one by KEYID */
  gpgme_verify_result_t res = gpgme_op_verify_result (ctx);
  for (gpgme_signature_t s = res ? res->signatures : NULL; s && !*out_signed; s = s->next)
    {
      g_autofree char *fpr = primary_fingerprint (ctx, s->fpr);
      *out_signed = gpgme_err_code (s->status) == GPG_ERR_NO_ERROR && g_strcmp0 (fpr, wanted) == 0;
    }
  return TRUE;
}

/* ---- verification ---- */

static int
compare_names (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char **) a, *(const char **) b);
}

/* The *.gpg and *.asc files of DIR, sorted; empty when DIR is missing. */
static GPtrArray *
trusted_key_files (const char *dir)
{
  GPtrArray *files = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GDir) d = g_dir_open (dir, 0, NULL);
  const char *name;
  while (d && (name = g_dir_read_name (d)) != NULL)
    if (g_str_has_suffix (name, ".gpg") || g_str_has_suffix (name, ".asc"))
      g_ptr_array_add (files, g_build_filename (dir, name, NULL));
  g_ptr_array_sort (files, compare_names);
  return files;
}

static gboolean
no_keys (GError **error, const char *dir, const char *detail)
{
  g_set_error (error, AB_GPG_ERROR, AB_GPG_ERROR_NO_KEYS,
               "No trusted keys: %s %s, so no signature can be verified. Install the "
               "publisher's public key there (gpg --export KEYID > %s/publisher.gpg)",
               dir, detail, dir);
  return FALSE;
}

/* Imports FILE into CTX; adds the primary fingerprints it brought in. */
static gboolean
import_file (gpgme_ctx_t ctx, const char *file, GHashTable *fprs, GError **error)
{
  g_auto(gpgme_data_t) d = NULL;
  gpgme_error_t err = gpgme_data_new_from_file (&d, file, 1);
  if (!err)
    err = gpgme_op_import (ctx, d);
  if (err)
    {
      g_autofree char *what = g_strdup_printf ("Importing trusted key file %s", file);
      return fail_gpgme (error, err, what);
    }
  gpgme_import_result_t res = gpgme_op_import_result (ctx);
  for (gpgme_import_status_t s = res ? res->imports : NULL; s; s = s->next)
    if (s->fpr && gpgme_err_code (s->result) == GPG_ERR_NO_ERROR)
      g_hash_table_add (fprs, g_strdup (s->fpr));
  return TRUE;
}

/* Fills a fresh keyring with the keys of DIR; FPRS gets their fingerprints. */
static gboolean
import_trusted (gpgme_ctx_t ctx, const char *dir, GHashTable *fprs, GError **error)
{
  g_autoptr(GPtrArray) files = trusted_key_files (dir);
  if (files->len == 0)
    return no_keys (error, dir, "holds no *.gpg or *.asc file");
  for (guint i = 0; i < files->len; i++)
    if (!import_file (ctx, files->pdata[i], fprs, error))
      return FALSE;
  if (g_hash_table_size (fprs) == 0)
    return no_keys (error, dir, "has key files, but none holds an OpenPGP public key");
  return TRUE;
}

/* Stops whatever GnuPG daemons a throwaway home started, then removes it. */
void
ab_gpg_discard_home (char *dir)
{
  if (dir == NULL)
    return;
  const char *gpgconf = gpgme_get_dirinfo ("gpgconf-name");
  const char *argv[] = { gpgconf ? gpgconf : "gpgconf", "--homedir", dir, "--kill", "all", NULL };
  (void) g_spawn_sync (NULL, (char **) argv, NULL,
                       G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL | G_SPAWN_STDERR_TO_DEV_NULL,
                       NULL, NULL, NULL, NULL, NULL, NULL);
  AB_IGNORE_RESULT (ab_fs_rm_rf_at (AT_FDCWD, dir, NULL));
  g_free (dir);
}
typedef char AbThrowawayHome;
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AbThrowawayHome, ab_gpg_discard_home)

/* Importing public keys and verifying need no gpg-agent, and gpg would
 * start one anyway (for the import): "no-autostart" keeps every daemon out,
 * so none outlives the home. (gpgconf --kill only asks an agent to exit and
 * does not wait, so an agent it stops can still run after the home is
 * gone.) */
char *
ab_gpg_new_throwaway_home (GError **error)
{
  g_autoptr(AbThrowawayHome) home = g_dir_make_tmp ("abdeploy-gpg-XXXXXX", error);
  if (home == NULL)
    return NULL;
  g_autofree char *conf = g_build_filename (home, "gpg.conf", NULL);
  if (!g_file_set_contents (conf, "no-autostart\n", -1, error))
    return NULL;
  return g_steal_pointer (&home);
}

typedef enum
{
  SIG_GOOD,
  SIG_UNTRUSTED,
  SIG_BAD,
  SIG_OTHER,
} SigVerdict;

/* The primary fingerprint of the key that made SIG, if it is an imported
 * key; NULL otherwise. SIG's fingerprint may be that of a subkey. */
static char *
trusted_signer (gpgme_ctx_t ctx, gpgme_signature_t sig, GHashTable *fprs)
{
  g_autofree char *primary = primary_fingerprint (ctx, sig->fpr);
  return primary && g_hash_table_contains (fprs, primary) ? g_steal_pointer (&primary) : NULL;
}

/* Only the signature status counts: the imported keys have unknown owner
 * trust, so gpgme's summary never says VALID; trust comes from the key
 * being in the trusted directory, which trusted_signer() checks. */
static SigVerdict
judge_signature (gpgme_ctx_t ctx, gpgme_signature_t sig, GHashTable *fprs, char **out_fpr)
{
  switch (gpgme_err_code (sig->status))
    {
    case GPG_ERR_NO_ERROR:
      if (sig->wrong_key_usage)
        return SIG_UNTRUSTED;
      *out_fpr = trusted_signer (ctx, sig, fprs);
      return *out_fpr ? SIG_GOOD : SIG_UNTRUSTED;
    case GPG_ERR_BAD_SIGNATURE:
      return SIG_BAD;
    case GPG_ERR_NO_PUBKEY:
    case GPG_ERR_KEY_EXPIRED:
    case GPG_ERR_CERT_REVOKED:
      return SIG_UNTRUSTED;
    default:
      return SIG_OTHER;
    }
}

static const char *
untrusted_reason (gpgme_signature_t sig)
{
  switch (gpgme_err_code (sig->status))
    {
    case GPG_ERR_KEY_EXPIRED: return "the key has expired";
    case GPG_ERR_CERT_REVOKED: return "the key is revoked";
    case GPG_ERR_NO_ERROR:
      if (sig->wrong_key_usage)
        return "the key is not meant for signing";
      return "the key is not one of the trusted keys";
    default: return "the key is not one of the trusted keys";
    }
}

char *
ab_gpg_describe_signer (const char *fpr)
{
  if (fpr == NULL || *fpr == '\0')
    return g_strdup ("an unknown key");
  gsize len = strlen (fpr);
  return g_strdup_printf (len == 40 || len == 64 ? "fingerprint %s" : "key id %s", fpr);
}

/* The keys of FPRS (a set), sorted, joined with ", ". */
static char *
join_fingerprints (GHashTable *fprs)
{
  g_autofree const char **keys = (const char **) g_hash_table_get_keys_as_array (fprs, NULL);
  qsort (keys, g_hash_table_size (fprs), sizeof (char *), compare_names);
  return g_strjoinv (", ", (char **) keys);
}

/* FROM names where the trusted keys FPRS come from (a directory, or the
 * signer's own key). */
static gboolean
report_verdict (SigVerdict v, gpgme_signature_t sig, GHashTable *fprs, const char *from,
                GError **error)
{
  g_autofree char *who = ab_gpg_describe_signer (sig->fpr);
  g_autofree char *trusted = join_fingerprints (fprs);
  switch (v)
    {
    case SIG_BAD:
      g_set_error (error, AB_GPG_ERROR, AB_GPG_ERROR_BAD_SIGNATURE,
                   "BAD signature by %s: the signed data or its signature was altered "
                   "after signing; fetch both again from a source you trust", who);
      break;
    case SIG_UNTRUSTED:
      g_set_error (error, AB_GPG_ERROR, AB_GPG_ERROR_UNTRUSTED_KEY,
                   "Signature by an untrusted key, %s: %s (trusted: fingerprint %s, from %s). "
                   "Install the publisher's public key there, or have the data signed with a "
                   "trusted key", who, untrusted_reason (sig), trusted, from);
      break;
    default:
      g_set_error (error, AB_GPG_ERROR, AB_GPG_ERROR_FAILED,
                   "Signature by %s could not be verified: %s", who,
                   gpgme_strerror (sig->status));
      break;
    }
  return FALSE;
}

/* Accepts when some signature is good and trusted and none is bad; else
 * reports the worst problem found (bad > untrusted > other). */
static gboolean
judge_result (gpgme_ctx_t ctx, gpgme_verify_result_t res, GHashTable *fprs, const char *dir,
              char **out_fpr, GError **error)
{
  if (res == NULL || res->signatures == NULL)
    {
      g_set_error (error, AB_GPG_ERROR, AB_GPG_ERROR_NO_SIGNATURE,
                   "The signature file holds no OpenPGP signature; sign the data with "
                   "gpg --detach-sign (abdeploy publish does this)");
      return FALSE;
    }
  static const int severity[] = { [SIG_GOOD] = 0, [SIG_OTHER] = 1, [SIG_UNTRUSTED] = 2,
                                  [SIG_BAD] = 3 };
  g_autofree char *good = NULL;
  SigVerdict worst = SIG_GOOD;
  gpgme_signature_t worst_sig = NULL;
  for (gpgme_signature_t s = res->signatures; s; s = s->next)
    {
      g_autofree char *fpr = NULL;
      SigVerdict v = judge_signature (ctx, s, fprs, &fpr);
      if (v == SIG_GOOD && good == NULL)
        good = g_steal_pointer (&fpr);
      if (severity[v] > severity[worst])
        {
          worst = v;
          worst_sig = s;
        }
    }
  if (worst == SIG_BAD || good == NULL)
    return report_verdict (worst, worst_sig, fprs, dir, error);
  if (out_fpr)
    *out_fpr = g_steal_pointer (&good);
  return TRUE;
}

/* Verifies the detached signature SIG of DATA in CTX and judges it
 * against the fingerprints FPRS (WHO names them in errors). An empty
 * signature is "not signed", never an error of gpgme's. */
static gboolean
verify_detached (gpgme_ctx_t ctx, GBytes *data, GBytes *sig, GHashTable *fprs, const char *who,
                 char **out_fpr, GError **error)
{
  g_auto(gpgme_data_t) sig_d = data_from_bytes (sig, error);
  g_auto(gpgme_data_t) data_d = sig_d ? data_from_bytes (data, error) : NULL;
  if (data_d == NULL)
    return FALSE;
  gpgme_error_t err = gpgme_op_verify (ctx, sig_d, data_d, NULL);
  if (gpgme_err_code (err) == GPG_ERR_NO_DATA || g_bytes_get_size (sig) == 0)
    return judge_result (ctx, NULL, fprs, who, out_fpr, error);
  if (err)
    return fail_gpgme (error, err, "Verifying the signature");
  return judge_result (ctx, gpgme_op_verify_result (ctx), fprs, who, out_fpr, error);
}

gboolean
ab_gpg_verify_detached (const char *trusted_dir, GBytes *data, GBytes *sig,
                        char **out_fingerprint, GError **error)
{
  g_autoptr(AbThrowawayHome) home = ab_gpg_new_throwaway_home (error);
  if (home == NULL)
    return FALSE;
  g_auto(gpgme_ctx_t) ctx = new_context (home, error);
  if (ctx == NULL)
    return FALSE;
  g_autoptr(GHashTable) fprs = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  if (!import_trusted (ctx, trusted_dir, fprs, error))
    return FALSE;
  return verify_detached (ctx, data, sig, fprs, trusted_dir, out_fingerprint, error);
}

char **
ab_gpg_trusted_fingerprints (const char *trusted_dir, GError **error)
{
  g_autoptr(AbThrowawayHome) home = ab_gpg_new_throwaway_home (error);
  g_auto(gpgme_ctx_t) ctx = home ? new_context (home, error) : NULL;
  if (ctx == NULL)
    return NULL;
  g_autoptr(GHashTable) fprs = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  if (!import_trusted (ctx, trusted_dir, fprs, error))
    return NULL;
  g_autofree char *joined = join_fingerprints (fprs);
  return g_strsplit (joined, ", ", -1);
}

gboolean
ab_gpg_verify_detached_by_key (const char *homedir, const char *keyid, GBytes *data, GBytes *sig,
                               GError **error)
{
  g_auto(gpgme_ctx_t) ctx = new_context (homedir, error);
  if (ctx == NULL)
    return FALSE;
  g_autofree char *wanted = primary_fingerprint (ctx, keyid);
  g_autofree char *who = g_strdup_printf ("GPG key %s of GnuPG home %s", keyid,
                                          homedir ? homedir : "(default)");
  if (wanted == NULL)
    {
      g_set_error (error, AB_GPG_ERROR, AB_GPG_ERROR_NO_KEYS, "There is no %s", who);
      return FALSE;
    }
  g_autoptr(GHashTable) fprs = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_hash_table_add (fprs, g_steal_pointer (&wanted));
  return verify_detached (ctx, data, sig, fprs, who, NULL, error);
}
