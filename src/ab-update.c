#include "config.h"
#include "ab-json.h"
#include "ab-sha256.h"
#include "ab-update.h"
#include "ab-content.h"
#include "ab-crashpoint.h"
#include "ab-deploy.h"
#include "ab-fetch.h"
#include "ab-format.h"
#include "ab-fsutil.h"
#include "ab-gpg.h"
#include "ab-history.h"
#include "ab-lock.h"
#include "ab-pack.h"
#include "ab-sizes.h"
#include "ab-version.h"

#include <fcntl.h>
#include <stdio.h>
#include <errno.h>
#include <string.h>

G_DEFINE_QUARK (ab-update-error-quark, ab_update_error)

#define UPDATE_STATE_FILE "update.json"
#define CACHE_DIR "abdeploy/cache"
/* The last verified and accepted manifest of the channel, in CACHE_DIR:
 * written after its signature, channel, expiry and serial were checked;
 * read by status (issue 17) and the completion of versions without
 * network, trusted like the state files. */
#define CACHE_MANIFEST "manifest.json"
#define SIG_MAX_BYTES (64 * 1024)
/* How long check-update waits for another writer before it records a serial */
#define STATE_LOCK_WAIT_MS 5000

void
ab_update_check_free (AbUpdateCheck *c)
{
  if (c == NULL)
    return;
  g_free (c->installed_version);
  g_free (c->installed_commit);
  g_free (c->offered_version);
  g_free (c->offered_commit);
  g_free (c->reason);
  g_free (c->warning);
  g_free (c->expires_at);
  g_free (c->channel);
  g_free (c->signer);
  g_free (c->pin);
  g_free (c->pin_resolves_to);
  g_free (c->pin_commit);
  g_free (c->pin_signer);
  g_free (c->pin_conflict);
  g_free (c->installed_deprecated);
  g_clear_pointer (&c->manifest, ab_manifest_free);
  g_free (c);
}

guint
ab_update_rollout_bucket (const char *machine_id, const char *version)
{
  g_autofree char *key = g_strconcat (machine_id, ":", version, NULL);
  g_autoptr(GChecksum) sum = g_checksum_new (G_CHECKSUM_SHA256);
  g_checksum_update (sum, (const guchar *) key, (gssize) strlen (key));
  guint8 digest[32];
  gsize len = sizeof digest;
  g_checksum_get_digest (sum, digest, &len);
  guint64 v = 0;
  for (int i = 0; i < 8; i++)
    v = (v << 8) | digest[i];
  return (guint) (v % 10000);
}

gboolean
ab_update_in_rollout (const char *machine_id, const char *version, guint percent)
{
  if (percent >= 100)
    return TRUE;
  if (machine_id == NULL)
    return FALSE;
  return ab_update_rollout_bucket (machine_id, version) < percent * 100;
}

/* ---- persistent update state: last accepted serial per channel, pin ---- */

static gboolean
load_state (AbSysroot *sysroot, JsonObject **out, GError **error)
{
  g_autoptr(JsonNode) root = NULL;
  if (!ab_format_read_state_at (sysroot->state_dfd, UPDATE_STATE_FILE, &root, NULL, error))
    return FALSE;
  if (root == NULL)
    {
      *out = json_object_new ();
      json_object_set_int_member (*out, "format", sysroot->state_format);
      json_object_set_object_member (*out, "last_serial", json_object_new ());
      json_object_set_null_member (*out, "pin");
      return TRUE;
    }
  JsonObject *o = json_node_get_object (root);
  if (!json_object_has_member (o, "last_serial"))
    json_object_set_object_member (o, "last_serial", json_object_new ());
  JsonNode *serials = json_object_get_member (o, "last_serial");
  if (!JSON_NODE_HOLDS_OBJECT (serials))
    {
      g_set_error (error, AB_UPDATE_ERROR, AB_UPDATE_ERROR_FAILED,
                   "State file abdeploy/state/" UPDATE_STATE_FILE ": \"last_serial\" is not an "
                   "object; restore it from a backup (abdeploy restore)");
      return FALSE;
    }
  *out = json_object_ref (o);
  return TRUE;
}

/* Raises every serial of WANT to that of HAVE where HAVE's is higher;
 * FALSE when none was. */
static gboolean
raise_serials (JsonObject *want, JsonObject *have)
{
  gboolean raised = FALSE;
  g_autoptr(GList) channels = json_object_get_members (have);
  for (GList *l = channels; l != NULL; l = l->next)
    {
      gint64 had = ab_json_get_int (have, l->data, 0);
      if (had > ab_json_get_int (want, l->data, 0))
        {
          json_object_set_int_member (want, l->data, had);
          raised = TRUE;
        }
    }
  return raised;
}

/* Serials only go up: a channel's serial on disk that is higher than the
 * one in STATE (read earlier) is kept. */
static gboolean
keep_higher_serials (AbSysroot *sysroot, JsonObject *state, GError **error)
{
  g_autoptr(JsonObject) disk = NULL;
  if (!load_state (sysroot, &disk, error))
    return FALSE;
  (void) raise_serials (ab_json_get_object (state, "last_serial"),
                        ab_json_get_object (disk, "last_serial"));
  return TRUE;
}

/* The "last_serial" object of the JSON object ROOT, or NULL. */
static JsonObject *
serials_of (JsonNode *root)
{
  JsonNode *n = root && JSON_NODE_HOLDS_OBJECT (root)
                ? json_object_get_member (json_node_get_object (root), "last_serial") : NULL;
  return n && JSON_NODE_HOLDS_OBJECT (n) ? json_node_get_object (n) : NULL;
}

char *
ab_update_state_keep_serials (int state_dfd, const char *text, gsize len)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(JsonNode) current = NULL;
  if (!json_parser_load_from_data (parser, text, (gssize) len, NULL)
      || serials_of (json_parser_get_root (parser)) == NULL
      || !ab_json_read_at (state_dfd, UPDATE_STATE_FILE, &current, NULL)
      || serials_of (current) == NULL
      || !raise_serials (serials_of (json_parser_get_root (parser)), serials_of (current)))
    return g_strndup (text, len);
  return ab_json_to_text (json_parser_get_root (parser));
}

/* Every write of update.json happens under the sysroot lock, read again
 * under it (the caller loads STATE after taking the lock), and never
 * lowers a serial. Written in the state format of the sysroot's layout:
 * check-update takes the lock without migrating a layout-1 sysroot. */
static gboolean
save_state (AbSysroot *sysroot, JsonObject *state, GError **error)
{
  if (!keep_higher_serials (sysroot, state, error))
    return FALSE;
  json_object_set_int_member (state, "format", sysroot->state_format);
  g_autoptr(JsonNode) node = json_node_new (JSON_NODE_OBJECT);
  json_node_set_object (node, state);
  return ab_json_write_at (sysroot->state_dfd, UPDATE_STATE_FILE, node, error);
}

char *
ab_update_get_pin (AbSysroot *sysroot, GError **error)
{
  g_autoptr(JsonObject) state = NULL;
  if (!load_state (sysroot, &state, error))
    return NULL;
  return g_strdup (ab_json_get_string (state, "pin", NULL));
}

static gboolean installed (AbSysroot *sysroot, char **out_version, char **out_commit,
                           char **out_next, GError **error);
static const AbRelease *resolve_pin (AbSysroot *sysroot, const AbManifest *m, const char *pin);
static void set_offer (AbUpdateCheck *c, const AbRelease *r);

static gboolean
refuse_downgrade (GError **error, const char *what, const char *from, const char *to)
{
  g_set_error (error, AB_UPDATE_ERROR, AB_UPDATE_ERROR_REFUSED,
               "Refusing to %s %s: it is lower than the installed %s (a downgrade); pass "
               "--allow-downgrade if you mean it", what, to, from);
  return FALSE;
}

static void
set_string_or_null (JsonObject *o, const char *key, const char *value)
{
  if (value)
    json_object_set_string_member (o, key, value);
  else
    json_object_set_null_member (o, key);
}

/* A pin that resolves below the running version is a downgrade: refused
 * unless ALLOW_DOWNGRADE, which the pin keeps ("pin_allows_downgrade") as
 * the operator's consent for update to install it. C (the verified
 * manifest, or NULL with --force) gives what the pin resolves to and binds. */
static gboolean
record_pin (AbSysroot *sysroot, JsonObject *state, const char *version, const AbUpdateCheck *c,
            gboolean allow_downgrade, GError **error)
{
  g_autofree char *running = NULL, *commit = NULL;
  if (version && !installed (sysroot, &running, &commit, NULL, error))
    return FALSE;
  const AbRelease *r = c && version ? resolve_pin (sysroot, c->manifest, version) : NULL;
  const char *target = r ? r->version : version;
  gboolean downgrade = version && ab_version_compare (target, running) < 0;
  if (downgrade && !allow_downgrade)
    return refuse_downgrade (error, "pin", running, target);
  const char *digest = r && ab_version_pin_is_exact (version) ? r->commit : NULL;
  const char *signer = c && version ? c->signer : NULL;
  set_string_or_null (state, "pin", version);
  set_string_or_null (state, "pin_commit", digest);
  set_string_or_null (state, "pin_signer", signer);
  json_object_set_boolean_member (state, "pin_allows_downgrade", downgrade);
  if (!save_state (sysroot, state, error))
    return FALSE;
  g_autoptr(JsonBuilder) ev = ab_history_event_begin (version ? "pin" : "unpin");
  ab_json_add_string (ev, "version", version);
  ab_json_add_string (ev, "resolves_to", r ? r->version : NULL);
  ab_json_add_string (ev, "commit", digest);
  ab_json_add_string (ev, "signer", signer);
  if (downgrade)
    {
      json_builder_set_member_name (ev, "allow_downgrade");
      json_builder_add_boolean_value (ev, TRUE);
    }
  return ab_history_append (sysroot->state_dfd, sysroot->state_format, sysroot->events, ev, error);
}

/* The releases of M, for the message of a pin that matches none. */
static char *
release_list (const AbManifest *m)
{
  g_autoptr(GString) s = g_string_new (NULL);
  for (guint i = 0; i < m->releases->len; i++)
    g_string_append_printf (s, "%s%s", i ? ", " : "",
                            ((const AbRelease *) m->releases->pdata[i])->version);
  return g_string_free (g_steal_pointer (&s), FALSE);
}

/* The verified manifest a pin needs, or (FORCE) NULL without error when it
 * cannot be had. */
static AbUpdateCheck *
check_for_pin (AbSysroot *sysroot, const char *version, gboolean force, GError **error)
{
  g_autoptr(GError) local = NULL;
  g_autoptr(AbUpdateCheck) c = ab_update_check (sysroot, &local);
  if (c == NULL && force)
    return NULL;
  if (c == NULL)
    {
      g_set_error (error, local->domain, local->code, "Cannot check the pin %s against the "
                   "channel manifest: %s. pin needs the verified manifest to bind the pin; "
                   "pass --force to pin without it (nothing is bound then)", version,
                   local->message);
      return NULL;
    }
  if (resolve_pin (sysroot, c->manifest, version) != NULL || force)
    return g_steal_pointer (&c);
  g_autofree char *list = release_list (c->manifest);
  g_set_error (error, AB_UPDATE_ERROR, AB_UPDATE_ERROR_FAILED,
               "No release of channel %s follows the pin %s (the channel lists: %s%s); check "
               "the version, or pass --force to pin it anyway", c->channel, version,
               *list ? list : "nothing",
               sysroot->config->update.security_only ? "; [update] security-only=true is set"
                                                      : "");
  return NULL;
}

gboolean
ab_update_pin (AbSysroot *sysroot, const char *version, gboolean allow_downgrade,
               gboolean force, GError **error)
{
  g_autoptr(JsonObject) state = NULL;
  g_autoptr(AbUpdateCheck) c = NULL;
  g_autoptr(GError) local = NULL;
  if (!ab_sysroot_lock (sysroot, error))
    return FALSE;
  if (version && *version == '\0')
    {
      g_set_error (error, AB_UPDATE_ERROR, AB_UPDATE_ERROR_FAILED,
                   "An empty pin; give a version, or --clear");
      return FALSE;
    }
  if (version)
    {
      c = check_for_pin (sysroot, version, force, &local);
      if (local != NULL)
        {
          g_propagate_error (error, g_steal_pointer (&local));
          return FALSE;
        }
    }
  /* read after the check, which may have recorded a new serial */
  return load_state (sysroot, &state, error)
         && record_pin (sysroot, state, version, c, allow_downgrade, error);
}

/* ---- manifest retrieval and checks ---- */

static void
fetch_options (AbSysroot *sysroot, AbFetchOptions *opts, guint64 max_bytes)
{
  const AbConfigUpdate *u = &sysroot->config->update;
  ab_fetch_options_init (opts);
  opts->max_bytes = max_bytes;
  /* ab-config guarantees min_rate >= 1 and min_rate_time_sec >= 1: the
   * slow-server cut-off is never off */
  opts->low_speed_bytes = (long) u->min_rate;
  opts->low_speed_time_sec = (long) u->min_rate_time_sec;
  opts->max_attempts = u->max_attempts;
  opts->backoff_initial_ms = u->backoff_initial_ms;
  opts->backoff_max_ms = u->backoff_max_ms;
  opts->events = sysroot->events;
  /* CA bundle for an https:// url whose certificate is not from a system CA;
   * interned, as the options outlive this call */
  if (u->ca_file != NULL)
    opts->ca_file = g_intern_string (u->ca_file);
}

static guint64
manifest_max_bytes (AbSysroot *sysroot)
{
  return sysroot->config->update.manifest_max_bytes;
}

static const char *
update_url (AbSysroot *sysroot, GError **error)
{
  if (sysroot->config->update.url != NULL)
    return sysroot->config->update.url;
  g_autofree char *conf = g_build_filename (sysroot->path, "etc/abdeploy/abdeploy.conf", NULL);
  g_set_error (error, AB_UPDATE_ERROR, AB_UPDATE_ERROR_CONFIG,
               "No update server configured: set [update] url= in %s (an https:// URL or "
               "the path of offline media)", conf);
  return NULL;
}

static char *
trusted_dir (AbSysroot *sysroot)
{
  return g_build_filename (sysroot->path, AB_TRUSTED_KEYS_DIR, NULL);
}

static gboolean
refuse (GError **error, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

static gboolean
refuse (GError **error, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error_literal (error, AB_UPDATE_ERROR, AB_UPDATE_ERROR_REFUSED, msg);
  return FALSE;
}

/* The channels of BASE's signed index, or NULL when it is missing, not
 * signed by a trusted key or malformed (then nothing is listed). */
static char **
published_channels (AbSysroot *sysroot, const char *base)
{
  g_autofree char *url = ab_fetch_url_join (base, "abdeploy/channels/" AB_CHANNEL_INDEX_NAME);
  g_autofree char *sig_url = g_strconcat (url, ".sig", NULL);
  AbFetchOptions opts;
  fetch_options (sysroot, &opts, SIG_MAX_BYTES);
  opts.max_attempts = 1;
  g_autoptr(GBytes) data = NULL, sig = NULL;
  g_autofree char *dir = trusted_dir (sysroot);
  g_autoptr(GError) local = NULL;
  if (!ab_fetch_to_bytes (url, &opts, &data, &local) || !ab_fetch_to_bytes (sig_url, &opts, &sig, &local)
      || !ab_gpg_verify_detached (dir, data, sig, NULL, &local))
    {
      g_debug ("channel index of %s ignored: %s", base, local->message);
      return NULL;
    }
  gsize len = 0;
  const char *text = g_bytes_get_data (data, &len);
  char **names = ab_channel_index_parse (text, len, &local);
  if (names == NULL)
    g_debug ("channel index of %s ignored: %s", base, local->message);
  return names;
}

/* "No channel C at URL", with the channels the repo's signed index lists.
 * When the index lists C itself, the channel exists and the server fails
 * to serve its manifest: NOT_FOUND (the fetch's own error) stands, with
 * that said. */
static gboolean
no_such_channel (AbSysroot *sysroot, const char *base, const char *channel, GError *not_found,
                 GError **error)
{
  g_auto(GStrv) names = published_channels (sysroot, base);
  g_autofree char *shown = ab_fetch_redact_url (base);
  g_autofree char *conf = g_build_filename (sysroot->path, "etc/abdeploy/abdeploy.conf", NULL);
  g_autofree char *list = names && names[0] ? g_strjoinv (", ", names) : NULL;
  if (names != NULL && g_strv_contains ((const char *const *) names, channel))
    {
      g_propagate_prefixed_error (error, g_error_copy (not_found),
                                  "The signed channel index of %s lists channel %s, but ", shown,
                                  channel);
      return FALSE;
    }
  if (list != NULL)
    g_set_error (error, AB_UPDATE_ERROR, AB_UPDATE_ERROR_CONFIG,
                 "No channel %s at %s; it publishes %s. Set [update] channel= in %s to one of "
                 "them", channel, shown, list, conf);
  else
    g_set_error (error, AB_UPDATE_ERROR, AB_UPDATE_ERROR_CONFIG,
                 "No channel %s at %s. Check [update] channel= and url= in %s", channel, shown,
                 conf);
  return FALSE;
}

static gboolean
fetch_signed_manifest (AbSysroot *sysroot, const char *channel, GBytes **out_data,
                       char **out_signer, GError **error)
{
  const char *base = update_url (sysroot, error);
  if (base == NULL)
    return FALSE;
  g_autofree char *rel = g_strdup_printf ("abdeploy/channels/%s.json", channel);
  g_autofree char *url = ab_fetch_url_join (base, rel);
  g_autofree char *sig_url = g_strconcat (url, ".sig", NULL);
  AbFetchOptions opts;
  fetch_options (sysroot, &opts, manifest_max_bytes (sysroot));
  g_autoptr(GBytes) data = NULL, sig = NULL;
  g_autoptr(GError) local = NULL;
  if (!ab_fetch_to_bytes (url, &opts, &data, &local)
      && g_error_matches (local, AB_FETCH_ERROR, AB_FETCH_ERROR_NOT_FOUND))
    return no_such_channel (sysroot, base, channel, local, error);
  if (local != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  opts.max_bytes = SIG_MAX_BYTES;
  if (!ab_fetch_to_bytes (sig_url, &opts, &sig, error))
    return FALSE;
  g_autofree char *dir = trusted_dir (sysroot);
  g_autofree char *fpr = NULL;
  if (!ab_gpg_verify_detached (dir, data, sig, &fpr, &local))
    return refuse (error, "Refusing the %s channel manifest: %s", channel, local->message);
  *out_data = g_steal_pointer (&data);
  *out_signer = g_steal_pointer (&fpr);
  return TRUE;
}

static gboolean
check_freshness (const AbManifest *m, const char *channel, GError **error)
{
  if (g_strcmp0 (m->channel, channel) != 0)
    return refuse (error, "Refusing the manifest: it is for channel \"%s\", this device follows "
                   "\"%s\" (a mirror mixing channels)", m->channel, channel);
  g_autoptr(GDateTime) expires = g_date_time_new_from_iso8601 (m->expires_at, NULL);
  g_autoptr(GDateTime) now = g_date_time_new_now_utc ();
  if (expires == NULL || g_date_time_compare (now, expires) > 0)
    return refuse (error, "Refusing the %s manifest: it expired at %s (a stale or frozen mirror); "
                   "the publisher must re-sign it", channel, m->expires_at);
  return TRUE;
}

/* The serial of M against the one STATE says was accepted: lower is a
 * replay (refused); sets *OUT_NEW when it is higher. */
static gboolean
check_serial (const AbManifest *m, JsonObject *state, gboolean *out_new, GError **error)
{
  JsonObject *serials = ab_json_get_object (state, "last_serial");
  gint64 last = ab_json_get_int (serials, m->channel, 0);
  if ((gint64) m->serial < last)
    return refuse (error, "Refusing the %s manifest: its serial %" G_GUINT64_FORMAT " is lower than "
                   "the %" G_GINT64_FORMAT " already accepted (a replayed old manifest)",
                   m->channel, m->serial, last);
  *out_new = (gint64) m->serial > last;
  return TRUE;
}

/* Checks M's serial against update.json and records it when it is new,
 * into *OUT_STATE (the state the decisions that follow use, the pin).
 * The write is a read-modify-write under the lock: taken here (waiting up
 * to STATE_LOCK_WAIT_MS, without migrating) unless this process holds it,
 * with the state read again under it, so that a pin or a higher serial
 * written meanwhile (check-update reads before its download) is kept. */
/* Keeps the verified manifest TEXT as CACHE_MANIFEST, for what must not
 * use the network (the shell completion of versions); a failure to write
 * this copy is a warning, never a failed check. */
static void
cache_manifest (AbSysroot *sysroot, GBytes *text)
{
  g_autoptr(GError) local = NULL;
  gsize len = 0;
  const void *data = g_bytes_get_data (text, &len);
  ab_autofd dfd = ab_fs_mkdir_p_at (sysroot->dfd, CACHE_DIR, 0755, &local)
                  ? ab_fs_opendir_at (sysroot->dfd, CACHE_DIR, &local) : -1;
  if (dfd < 0 || !ab_fs_replace_at (dfd, CACHE_MANIFEST, data, len, 0644, &local))
    ab_event_warning (sysroot->events, "could not keep a copy of the manifest in %s/%s: %s",
                      sysroot->path, CACHE_DIR, local->message);
}

/* Whether the copy holds TEXT already. */
static gboolean
cache_is_current (AbSysroot *sysroot, GBytes *text)
{
  g_autofree char *cached = g_build_filename (CACHE_DIR, CACHE_MANIFEST, NULL);
  g_autofree char *have = NULL;
  gsize len = 0;
  if (!ab_fs_read_at (sysroot->dfd, cached, &have, &len, NULL))
    return FALSE;
  g_autoptr(GBytes) bytes = g_bytes_new_take (g_steal_pointer (&have), len);
  return g_bytes_equal (bytes, text);
}

/* The copy for a device that has none yet, or one of another manifest (the
 * channel changed to one whose serial is not new): only when the lock is
 * free at once, so that a check never waits for it. */
static void
cache_if_missing (AbSysroot *sysroot, GBytes *text)
{
  gboolean remounted = FALSE;
  g_autoptr(GError) local = NULL;
  if (cache_is_current (sysroot, text))
    return;
  if (sysroot->lock_fd >= 0)
    {
      cache_manifest (sysroot, text);
      return;
    }
  if (!ab_sysroot_make_writable (sysroot, &remounted, &local))
    return;
  ab_autofd lock = ab_lock_acquire_wait (sysroot->abdeploy_dfd, 0, &local);
  if (lock >= 0)
    cache_manifest (sysroot, text);
}

static gboolean
accept_manifest (AbSysroot *sysroot, const AbManifest *m, GBytes *text, JsonObject **out_state,
                 GError **error)
{
  gboolean is_new = FALSE;
  if (!load_state (sysroot, out_state, error) || !check_serial (m, *out_state, &is_new, error))
    return FALSE;
  if (!is_new)
    {
      cache_if_missing (sysroot, text);
      return TRUE;
    }
  gboolean remounted = FALSE;
  if (sysroot->lock_fd < 0 && !ab_sysroot_make_writable (sysroot, &remounted, error))
    return FALSE;
  ab_autofd lock = sysroot->lock_fd >= 0 ? -1
                   : ab_lock_acquire_wait (sysroot->abdeploy_dfd, STATE_LOCK_WAIT_MS, error);
  if (sysroot->lock_fd < 0 && lock < 0)
    return FALSE;
  g_clear_pointer (out_state, json_object_unref);
  if (!load_state (sysroot, out_state, error) || !check_serial (m, *out_state, &is_new, error))
    return FALSE;
  cache_manifest (sysroot, text);
  JsonObject *serials = ab_json_get_object (*out_state, "last_serial");
  json_object_set_int_member (serials, m->channel, (gint64) m->serial);
  return !is_new || save_state (sysroot, *out_state, error);
}

/* ---- what is installed, what is offered ---- */

/* The running (or, offline, primary) slot's version and commit; and, when
 * another slot boots next (an update installed and activated, waiting for
 * the reboot), that slot's commit in OUT_NEXT (NULL otherwise). */
static gboolean
installed (AbSysroot *sysroot, char **out_version, char **out_commit, char **out_next,
           GError **error)
{
  g_auto(AbSlotsView) v = { 0 };
  if (!ab_sysroot_load_view (sysroot, &v, error))
    return FALSE;
  AbSlot s = ab_sysroot_running_slot (sysroot, &v.ptr);
  if (s != AB_SLOT_NONE && v.rec[s] != NULL)
    {
      *out_version = g_strdup (v.rec[s]->version);
      *out_commit = g_strdup (v.rec[s]->commit);
    }
  AbSlot next = ab_boot_pointer_next_boot (&v.ptr);
  if (out_next && next != AB_SLOT_NONE && next != s && v.rec[next] != NULL)
    *out_next = g_strdup (v.rec[next]->commit);
  return TRUE;
}

static char *
boots_next_reason (const AbRelease *r)
{
  return g_strdup_printf ("%s is already installed and boots next; reboot to use it", r->version);
}

static char *
machine_id (AbSysroot *sysroot)
{
  g_autofree char *data = NULL;
  if (!ab_fs_read_at (sysroot->dfd, "etc/machine-id", &data, NULL, NULL))
    return NULL;
  g_strstrip (data);
  return *data ? g_steal_pointer (&data) : NULL;
}

/* The newest release this device may install (by precedence, ties broken
 * by the version string): not deprecated, marked "security" when [update]
 * security-only is set, following PIN when one rolls (NULL: any),
 * inside its rollout bucket. */
static const AbRelease *
pick_offer (AbSysroot *sysroot, const AbManifest *m, const char *pin, char **out_reason)
{
  g_autofree char *mid = machine_id (sysroot);
  const AbRelease *best = NULL;
  gboolean held_back = FALSE;
  for (guint i = 0; i < m->releases->len; i++)
    {
      const AbRelease *r = m->releases->pdata[i];
      if (r->deprecated != NULL || (sysroot->config->update.security_only && !r->security)
          || (pin != NULL && !ab_version_follows_pin (r->version, pin)))
        continue;
      if (!ab_update_in_rollout (mid, r->version, r->rollout))
        {
          held_back = TRUE;
          continue;
        }
      if (best == NULL || ab_version_order (r->version, best->version) > 0)
        best = r;
    }
  if (held_back && out_reason)
    *out_reason = g_strdup ("a newer release is being rolled out in phases and does not include this device yet");
  return best;
}

/* The release PIN resolves to in M (abdeploy(8), PINS): an exact pin its
 * own version, whatever its state; a rolling pin the newest release
 * pick_offer() would offer among those that follow it. */
static const AbRelease *
resolve_pin (AbSysroot *sysroot, const AbManifest *m, const char *pin)
{
  if (ab_version_pin_is_exact (pin))
    return ab_manifest_find (m, pin);
  return pick_offer (sysroot, m, pin, NULL);
}

static char *
pin_downgrade_warning (const AbUpdateCheck *c, const char *version)
{
  return g_strdup_printf ("the pinned version %s is lower than the installed %s: update installs "
                          "it as a downgrade%s", version, c->installed_version,
                          c->pin_allows_downgrade ? " (pin --allow-downgrade allowed it)"
                                                  : " only with --allow-downgrade");
}

/* What a pin offers: what it resolves to, unless that is installed or
 * boots next already. */
static void
decide_pinned_offer (AbSysroot *sysroot, AbUpdateCheck *c, const char *next_commit)
{
  const AbManifest *m = c->manifest;
  const AbRelease *r = resolve_pin (sysroot, m, c->pin);
  const AbRelease *newest = ab_manifest_newest (m);
  c->pin_resolves_to = r ? g_strdup (r->version) : NULL;
  set_offer (c, r && g_strcmp0 (r->version, c->installed_version) != 0
                && g_strcmp0 (r->commit, next_commit) != 0 ? r : NULL);
  gboolean behind = newest && r && ab_version_compare (newest->version, r->version) > 0;
  g_autofree char *resolved = r && !c->pin_exact
                                  ? g_strdup_printf (", which resolves to %s", r->version) : NULL;
  c->reason = g_strdup_printf ("pinned to %s%s (abdeploy pin --clear releases it)%s%s", c->pin,
                               resolved ? resolved : "", behind ? "; newest is " : "",
                               behind ? newest->version : "");
  if (r == NULL)
    c->warning = g_strdup_printf ("no release of channel %s follows the pin %s", c->channel, c->pin);
  else if (c->offered_version && ab_version_compare (r->version, c->installed_version) < 0)
    c->warning = pin_downgrade_warning (c, r->version);
}

static void
set_offer (AbUpdateCheck *c, const AbRelease *r)
{
  g_free (c->offered_version);
  g_free (c->offered_commit);
  c->offered_version = r ? g_strdup (r->version) : NULL;
  c->offered_commit = r ? g_strdup (r->commit) : NULL;
}

static void
decide_offer (AbSysroot *sysroot, AbUpdateCheck *c, const char *next_commit)
{
  const AbManifest *m = c->manifest;
  if (c->pin != NULL)
    {
      decide_pinned_offer (sysroot, c, next_commit);
      return;
    }
  g_autofree char *held = NULL;
  const AbRelease *best = pick_offer (sysroot, m, NULL, &held);
  if (best && ab_version_compare (best->version, c->installed_version) > 0
      && g_strcmp0 (best->commit, c->installed_commit) != 0)
    {
      if (g_strcmp0 (best->commit, next_commit) == 0)
        {
          c->reason = boots_next_reason (best);
          return;
        }
      set_offer (c, best);
      return;
    }
  c->reason = held ? g_steal_pointer (&held)
                   : g_strdup_printf ("%s is the newest release of channel %s%s",
                                      c->installed_version ? c->installed_version : "nothing", c->channel,
                                      sysroot->config->update.security_only
                                      ? " that [update] security-only=true takes" : "");
}

/* The pin's binding (abdeploy(8), PINS): the signer it was bound to must
 * still sign the channel (unknown for a cached manifest: not checked), and
 * an exact pin's version must still name the bound commit. Otherwise
 * nothing is offered and update refuses. */
static void
check_pin_binding (AbUpdateCheck *c)
{
  const AbRelease *r = c->pin_exact ? ab_manifest_find (c->manifest, c->pin) : NULL;
  if (c->pin_signer && c->signer && g_ascii_strcasecmp (c->pin_signer, c->signer) != 0)
    c->pin_conflict = g_strdup_printf (
        "the pin %s is bound to signer %s, but channel %s is now signed by %s; if the key change "
        "is expected, pin again (abdeploy pin %s) to bind the new signer, or abdeploy pin --clear",
        c->pin, c->pin_signer, c->channel, c->signer, c->pin);
  else if (r && c->pin_commit && g_strcmp0 (r->commit, c->pin_commit) != 0)
    c->pin_conflict = g_strdup_printf (
        "the pin %s is bound to commit %s, but channel %s now maps %s to commit %s (a version "
        "must never change its commit); if the publisher confirms the new commit, pin again "
        "(abdeploy pin %s) to bind it, or abdeploy pin --clear",
        c->pin, c->pin_commit, c->channel, c->pin, r->commit, c->pin);
  if (c->pin_conflict == NULL)
    return;
  set_offer (c, NULL);
  g_free (c->reason);
  c->reason = g_strdup (c->pin_conflict);
}

/* The installed release's deprecation and the offered one's security mark. */
static void
note_release_marks (AbUpdateCheck *c)
{
  const AbRelease *mine = c->installed_version ? ab_manifest_find (c->manifest, c->installed_version)
                                               : NULL;
  const AbRelease *offered = c->offered_version ? ab_manifest_find (c->manifest, c->offered_version)
                                                : NULL;
  c->installed_deprecated = mine ? g_strdup (mine->deprecated) : NULL;
  c->offered_security = offered && offered->security;
  if (c->installed_deprecated && c->warning == NULL)
    c->warning = g_strdup_printf ("the installed version %s is deprecated: %s", mine->version,
                                  mine->deprecated);
}

/* The pin and its binding from update.json STATE into C. */
static void
load_pin (AbUpdateCheck *c, JsonObject *state)
{
  c->pin = g_strdup (ab_json_get_string (state, "pin", NULL));
  c->pin_exact = c->pin && ab_version_pin_is_exact (c->pin);
  c->pin_commit = g_strdup (ab_json_get_string (state, "pin_commit", NULL));
  c->pin_signer = g_strdup (ab_json_get_string (state, "pin_signer", NULL));
  c->pin_allows_downgrade = ab_json_get_boolean (state, "pin_allows_downgrade", FALSE);
}

static AbManifest *
parse_manifest (const char *channel, GBytes *data, GError **error)
{
  gsize len = 0;
  const char *text = g_bytes_get_data (data, &len);
  AbManifest *m = ab_manifest_parse (text, len, error);
  if (m == NULL)
    g_prefix_error (error, "Channel %s manifest: ", channel);
  return m;
}

/* C, whose manifest is checked, against what is installed, the pin (in
 * STATE) and the channel's releases: what is offered and why. */
static gboolean
evaluate (AbSysroot *sysroot, AbUpdateCheck *c, JsonObject *state, GError **error)
{
  g_autofree char *next_commit = NULL;
  if (!installed (sysroot, &c->installed_version, &c->installed_commit, &next_commit, error))
    return FALSE;
  if (c->installed_version == NULL && c->installed_commit != NULL)
    for (guint i = 0; i < c->manifest->releases->len; i++)
      {
        const AbRelease *r = c->manifest->releases->pdata[i];
        if (g_strcmp0 (r->commit, c->installed_commit) == 0)
          c->installed_version = g_strdup (r->version);
      }
  c->serial = c->manifest->serial;
  c->expires_at = g_strdup (c->manifest->expires_at);
  load_pin (c, state);
  decide_offer (sysroot, c, next_commit);
  if (c->pin)
    check_pin_binding (c);
  note_release_marks (c);
  return TRUE;
}

AbUpdateCheck *
ab_update_check (AbSysroot *sysroot, GError **error)
{
  g_autoptr(AbUpdateCheck) c = g_new0 (AbUpdateCheck, 1);
  c->channel = g_strdup (sysroot->config->update.channel);
  g_autoptr(JsonObject) state = NULL;
  g_autoptr(GBytes) data = NULL;
  if (!fetch_signed_manifest (sysroot, c->channel, &data, &c->signer, error))
    return NULL;
  c->manifest = parse_manifest (c->channel, data, error);
  if (c->manifest == NULL
      || !check_freshness (c->manifest, c->channel, error)
      || !accept_manifest (sysroot, c->manifest, data, &state, error)
      || !evaluate (sysroot, c, state, error))
    return NULL;
  return g_steal_pointer (&c);
}

AbUpdateCheck *
ab_update_check_cached (AbSysroot *sysroot, GError **error)
{
  g_autoptr(AbUpdateCheck) c = g_new0 (AbUpdateCheck, 1);
  c->channel = g_strdup (sysroot->config->update.channel);
  g_autofree char *rel = g_build_filename (CACHE_DIR, CACHE_MANIFEST, NULL);
  g_autofree char *text = NULL;
  gsize len = 0;
  if (!ab_fs_exists_at (sysroot->dfd, rel))
    return NULL;
  if (!ab_fs_read_at (sysroot->dfd, rel, &text, &len, error))
    return NULL;
  g_autoptr(GBytes) data = g_bytes_new_take (g_steal_pointer (&text), len);
  g_autoptr(JsonObject) state = NULL;
  c->manifest = parse_manifest (c->channel, data, error);
  if (c->manifest == NULL)
    return NULL;
  /* the copy of another channel's manifest (the channel changed since) */
  if (g_strcmp0 (c->manifest->channel, c->channel) != 0)
    return NULL;
  if (!load_state (sysroot, &state, error) || !evaluate (sysroot, c, state, error))
    return NULL;
  return g_steal_pointer (&c);
}

static void
add_notes (JsonBuilder *b, const AbReleaseNotes *n)
{
  json_builder_set_member_name (b, "notes");
  if (n == NULL)
    {
      json_builder_add_null_value (b);
      return;
    }
  json_builder_begin_object (b);
  ab_json_add_string (b, "changed", n->changed);
  ab_json_add_string (b, "action", n->action);
  ab_json_add_string (b, "rollback", n->rollback);
  json_builder_end_object (b);
}

static void
add_pin (JsonBuilder *b, const char *pin, const AbUpdateCheck *c, JsonObject *state)
{
  json_builder_begin_object (b);
  ab_json_add_string (b, "version", pin);
  json_builder_set_member_name (b, "exact");
  if (pin)
    json_builder_add_boolean_value (b, ab_version_pin_is_exact (pin));
  else
    json_builder_add_null_value (b);
  ab_json_add_string (b, "resolves_to", pin && c ? c->pin_resolves_to : NULL);
  ab_json_add_string (b, "digest", pin ? ab_json_get_string (state, "pin_commit", NULL) : NULL);
  ab_json_add_string (b, "signer", pin ? ab_json_get_string (state, "pin_signer", NULL) : NULL);
  ab_json_add_string (b, "conflict", pin && c ? c->pin_conflict : NULL);
  json_builder_end_object (b);
}

/* The members of issue 17: signer, security mark, notes, deprecation, pin. */
static void
add_check_extras (JsonBuilder *b, const AbUpdateCheck *c)
{
  const AbRelease *offered = c->offered_version ? ab_manifest_find (c->manifest, c->offered_version)
                                                : NULL;
  ab_json_add_string (b, "signer", c->signer);
  json_builder_set_member_name (b, "offered_security");
  json_builder_add_boolean_value (b, c->offered_security);
  ab_json_add_string (b, "offered_promoted_from", offered ? offered->promoted_from : NULL);
  add_notes (b, offered ? offered->notes : NULL);
  ab_json_add_string (b, "installed_deprecated", c->installed_deprecated);
  g_autoptr(JsonObject) state = json_object_new ();
  if (c->pin_commit)
    json_object_set_string_member (state, "pin_commit", c->pin_commit);
  if (c->pin_signer)
    json_object_set_string_member (state, "pin_signer", c->pin_signer);
  json_builder_set_member_name (b, "pin");
  add_pin (b, c->pin, c, state);
}

JsonNode *
ab_update_pin_to_json (AbSysroot *sysroot, const AbUpdateCheck *c, GError **error)
{
  g_autoptr(JsonObject) state = NULL;
  if (sysroot == NULL)
    state = json_object_new ();
  else if (!load_state (sysroot, &state, error))
    return NULL;
  g_autoptr(JsonBuilder) b = json_builder_new ();
  add_pin (b, ab_json_get_string (state, "pin", NULL), c, state);
  return json_builder_get_root (b);
}

JsonNode *
ab_update_check_to_json (const AbUpdateCheck *c)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  ab_json_add_string (b, "channel", c->channel);
  json_builder_set_member_name (b, "serial");
  json_builder_add_int_value (b, (gint64) c->serial);
  ab_json_add_string (b, "expires_at", c->expires_at);
  ab_json_add_string (b, "installed_version", c->installed_version);
  ab_json_add_string (b, "installed_commit", c->installed_commit);
  ab_json_add_string (b, "offered_version", c->offered_version);
  ab_json_add_string (b, "offered_commit", c->offered_commit);
  json_builder_set_member_name (b, "update_available");
  json_builder_add_boolean_value (b, c->offered_version != NULL);
  ab_json_add_string (b, "reason", c->offered_version ? NULL : c->reason);
  ab_json_add_string (b, "warning", c->warning);
  add_check_extras (b, c);
  json_builder_end_object (b);
  return json_builder_get_root (b);
}

/* ---- the transaction ---- */

typedef struct
{
  AbSysroot *sysroot;
  const AbUpdateOptions *opts;
  AbTransaction *t;
  const AbRelease *release;
  const AbManifest *manifest;
  gint64 deadline_us; /* end of the download phase: [update] max-pull-time-sec */
  /* progress of a delta download: the signed sizes of its files, those of
   * the files before the one being fetched, and the last report */
  gint64 delta_total;
  guint64 delta_base;
  guint64 delta_last;
  gint64 delta_last_us;
} Run;

static gboolean
enter_phase (Run *r, AbPhase phase, GError **error)
{
  return ab_transaction_set_phase (r->sysroot->state_dfd, r->sysroot->state_format, r->t, phase,
                                   error);
}

/* Bytes of the delta downloaded: at most ten reports a second, the count
 * at the end of each file always, never the same count twice. */
static void
report_delta (Run *r, guint64 done, gboolean force)
{
  gint64 now = g_get_monotonic_time ();
  if (done == r->delta_last || (!force && now - r->delta_last_us < G_USEC_PER_SEC / 10))
    return;
  r->delta_last = done;
  r->delta_last_us = now;
  ab_event_progress (r->sysroot->events, AB_PROGRESS_UNIT_BYTES, done, r->delta_total);
}

static const AbDelta *
find_delta (const AbRelease *rel, const char *from_commit)
{
  for (guint i = 0; from_commit && rel->deltas && i < rel->deltas->len; i++)
    {
      const AbDelta *d = rel->deltas->pdata[i];
      if (g_strcmp0 (d->from, from_commit) == 0)
        return d;
    }
  return NULL;
}

static gboolean
file_sha256_matches (int dfd, const char *name, const char *expected, GError **error)
{
  g_autofree char *data = NULL;
  gsize len = 0;
  if (!ab_fs_read_at (dfd, name, &data, &len, error))
    return FALSE;
  g_autofree char *got = ab_sha256_hex (data, len);
  if (g_strcmp0 (got, expected) == 0)
    return TRUE;
  (void) unlinkat (dfd, name, 0);
  return refuse (error, "Delta file %s does not match the manifest (sha256 %s, expected %s)",
                 name, got, expected);
}

static void
on_fetch_progress (guint64 done, guint64 total, gpointer user_data)
{
  Run *r = user_data;
  report_delta (r, r->delta_base + done, FALSE);
}

static char *
cache_name (const char *commit)
{
  return g_strdup_printf ("delta-%s", commit);
}

static gboolean
fetch_delta_file (Run *r, const AbDeltaFile *f, int cache_dfd, const char *name, GError **error)
{
  if (ab_fs_exists_at (cache_dfd, name) && file_sha256_matches (cache_dfd, name, f->sha256, NULL))
    return TRUE;
  g_autofree char *url = ab_fetch_url_join (r->sysroot->config->update.url, f->path);
  AbFetchOptions fo;
  fetch_options (r->sysroot, &fo, 0);
  fo.expected_size = f->size;
  fo.deadline_us = r->deadline_us;
  fo.deadline_key = "[update] max-pull-time-sec";
  fo.progress = on_fetch_progress;
  fo.progress_data = r;
  fo.cancellable = r->opts->cancellable;
  if (!ab_fetch_to_file_at (url, cache_dfd, name, &fo, error)
      || !file_sha256_matches (cache_dfd, name, f->sha256, error))
    return FALSE;
  ab_crash_point ("update:delta-file");
  return TRUE;
}

/* The sizes the signed manifest lists for the files of delta D. */
static gint64
delta_files_size (const AbDelta *d)
{
  guint64 total = 0;
  for (guint i = 0; i < d->files->len; i++)
    total += ((const AbDeltaFile *) d->files->pdata[i])->size;
  return (gint64) MIN (total, (guint64) G_MAXINT64);
}

/* OSTREE_STATIC_DELTA_SUPERBLOCK_FORMAT of libostree (private there):
 * children 2 and 3 are the FROM and TO checksums, FROM empty for a delta
 * from nothing. */
#define SUPERBLOCK_TYPE "(a{sv}tayay(a{sv}aya(say)sstayay)aya(uayttay)a(yaytt))"

/* Child I of SB as a hex checksum; NULL when it is not 32 bytes (empty). */
static char *
superblock_checksum (GVariant *sb, gsize i)
{
  g_autoptr(GVariant) v = g_variant_get_child_value (sb, i);
  if (g_variant_n_children (v) != OSTREE_SHA256_DIGEST_LEN)
    return NULL;
  return ostree_checksum_from_bytes_v (v);
}

/* Invariant: a delta is applied only when its superblock (whose SHA-256
 * matched the signed manifest) leads to the manifest's commit, from D's
 * FROM, or from nothing for a full delta. Anything else is a publisher
 * mistake, refused before libostree writes an object. */
static gboolean
check_superblock_names (Run *r, const AbDelta *d, GBytes *bytes, GError **error)
{
  g_autoptr(GVariant) sb = g_variant_ref_sink (
      g_variant_new_from_bytes (G_VARIANT_TYPE (SUPERBLOCK_TYPE), bytes, FALSE));
  g_autofree char *from = superblock_checksum (sb, 2), *to = superblock_checksum (sb, 3);
  if (g_strcmp0 (from, d->from) == 0 && g_strcmp0 (to, r->t->commit) == 0)
    return TRUE;
  return refuse (error, "The %s that the manifest lists for release %s leads from %s to %s, "
                 "not from %s to its commit %s: the publisher listed another delta; nothing "
                 "was applied", d->from ? "delta" : "full delta", r->release->version,
                 from ? from : "nothing", to ? to : "nothing", d->from ? d->from : "nothing",
                 r->t->commit);
}

/* Once the superblock (checked against the signed manifest) is here, it
 * must name the right commits, and its unpacked sizes say what applying the
 * delta writes: that, plus the files after file NEXT, must fit beside the
 * reserve. */
static gboolean
check_superblock (Run *r, const AbDelta *d, guint next, int cache_dfd, GError **error)
{
  g_autofree char *data = NULL;
  gsize len = 0;
  if (!ab_fs_read_at (cache_dfd, "superblock", &data, &len, error))
    return FALSE;
  g_autoptr(GBytes) sb = g_bytes_new_take (g_steal_pointer (&data), len);
  if (!check_superblock_names (r, d, sb, error))
    return FALSE;
  guint64 needed = ab_content_delta_unpacked_bytes (sb);
  for (guint j = next; j < d->files->len; j++)
    needed += ((const AbDeltaFile *) d->files->pdata[j])->size;
  return ab_content_check_free_space (r->sysroot->dfd, needed,
                                      r->sysroot->config->update.min_free_space,
                                      "the rest of the update's delta and its unpacked objects",
                                      error);
}

/* Runs once file I (named NAME in the cache) of a list is in. */
typedef gboolean (*FileFetched) (Run *r, const char *name, guint i, int cache_dfd,
                                 gconstpointer data, GError **error);

/* FILES (AbDeltaFile: a delta's or the packs') into CACHE_DFD in order,
 * each checked against its signed size and SHA-256, the bytes reported out
 * of TOTAL; AFTER (or NULL) runs once each file is in. */
static gboolean
fetch_files (Run *r, GPtrArray *files, gint64 total, int cache_dfd, FileFetched after,
             gconstpointer data, GError **error)
{
  r->delta_total = total;
  r->delta_base = 0;
  r->delta_last = G_MAXUINT64;
  report_delta (r, 0, TRUE);
  for (guint i = 0; i < files->len; i++)
    {
      const AbDeltaFile *f = files->pdata[i];
      g_autofree char *name = g_path_get_basename (f->path);
      if (!fetch_delta_file (r, f, cache_dfd, name, error)
          || (after != NULL && !after (r, name, i, cache_dfd, data, error)))
        return FALSE;
      r->delta_base += f->size;
      report_delta (r, r->delta_base, TRUE);
    }
  return TRUE;
}

/* A delta's superblock is checked as soon as it is in, before its parts. */
static gboolean
superblock_fetched (Run *r, const char *name, guint i, int cache_dfd, gconstpointer delta,
                    GError **error)
{
  return !g_str_equal (name, "superblock") || check_superblock (r, delta, i + 1, cache_dfd, error);
}

static gboolean
download_delta (Run *r, const AbDelta *d, int cache_dfd, GError **error)
{
  return fetch_files (r, d->files, delta_files_size (d), cache_dfd, superblock_fetched, d, error);
}

/* CACHE_REL: the delta's directory, relative to the sysroot. */
static gboolean
apply_delta (Run *r, const char *cache_rel, GError **error)
{
  g_autofree char *path = g_build_filename (r->sysroot->root, cache_rel, NULL);
  g_autoptr(GFile) dir = g_file_new_for_path (path);
  /* libostree 2022.7 writes the commit object before the parts' objects
   * and marks nothing: until the last part is in, the commit is marked
   * partial, so that a kill, a full disk or an I/O error never leaves a
   * commit that looks complete without its objects (the re-run applies
   * the delta again). */
  if (!ostree_repo_mark_commit_partial (r->sysroot->repo, r->t->commit, TRUE, error))
    return FALSE;
  if (!ostree_repo_static_delta_execute_offline (r->sysroot->repo, dir, FALSE,
                                                 r->opts->cancellable, error))
    {
      ab_content_type_disk_error (error, errno);
      g_prefix_error (error, "Applying the static delta: ");
      return FALSE;
    }
  return ostree_repo_mark_commit_partial (r->sysroot->repo, r->t->commit, FALSE, error);
}

static gboolean
download_with_delta (Run *r, const AbDelta *d, GError **error)
{
  if (!ab_fs_mkdir_p_at (r->sysroot->dfd, CACHE_DIR, 0755, error))
    return FALSE;
  g_autofree char *name = cache_name (r->t->commit);
  g_autofree char *rel = g_build_filename (CACHE_DIR, name, NULL);
  if (!ab_fs_mkdir_p_at (r->sysroot->dfd, rel, 0755, error))
    return FALSE;
  ab_event_phase (r->sysroot->events, "download");
  ab_autofd cache_dfd = ab_fs_opendir_at (r->sysroot->dfd, rel, error);
  if (cache_dfd < 0 || !download_delta (r, d, cache_dfd, error))
    return FALSE;
  if (!enter_phase (r, AB_PHASE_DOWNLOADED, error))
    return FALSE;
  ab_event_phase (r->sysroot->events, "unpack");
  if (!apply_delta (r, rel, error))
    return FALSE;
  return ab_fs_rm_rf_at (r->sysroot->dfd, rel, error);
}

/* *OUT: the entries of the size index file the release lists (issue 18),
 * fetched within its signed size and checked against its SHA-256 before
 * it is parsed; NULL when none is listed or the server lacks it (a
 * warning: the configured caps stay). A mismatch or an index that does
 * not parse is refused. */
static gboolean
fetch_size_index (Run *r, GArray **out, GError **error)
{
  const AbDeltaFile *f = r->release ? r->release->size_index : NULL;
  *out = NULL;
  if (f == NULL)
    return TRUE;
  g_autofree char *url = ab_fetch_url_join (r->sysroot->config->update.url, f->path);
  AbFetchOptions fo;
  fetch_options (r->sysroot, &fo, f->size);
  fo.expected_size = f->size;
  fo.deadline_us = r->deadline_us;
  fo.deadline_key = "[update] max-pull-time-sec";
  fo.cancellable = r->opts->cancellable;
  g_autoptr(GBytes) data = NULL;
  g_autoptr(GError) local = NULL;
  if (!ab_fetch_to_bytes (url, &fo, &data, &local)
      && g_error_matches (local, AB_FETCH_ERROR, AB_FETCH_ERROR_NOT_FOUND))
    {
      ab_event_warning (r->sysroot->events, "The server has no size index of %s (%s); the "
                        "download is bounded by the configured caps only",
                        r->release->version, local->message);
      return TRUE;
    }
  if (local != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  gsize len = 0;
  const char *bytes = g_bytes_get_data (data, &len);
  g_autofree char *got = ab_sha256_hex (bytes, len);
  if (len != f->size || g_strcmp0 (got, f->sha256) != 0)
    return refuse (error, "Size index %s does not match the manifest (%" G_GSIZE_FORMAT
                   " bytes, sha256 %s; expected %" G_GUINT64_FORMAT " bytes, sha256 %s)",
                   f->path, len, got, f->size, f->sha256);
  *out = ab_sizes_parse (data, &local);
  if (*out == NULL)
    return refuse (error, "Size index %s, signed by the manifest: %s", f->path, local->message);
  return TRUE;
}

/* libostree checks every object against its checksum; a mismatch means the
 * server offered other content under the manifest's commit. */
static gboolean
download_objects (Run *r, GError **error)
{
  g_autoptr(GError) local = NULL;
  g_autofree char *pulled = NULL;
  const char *ca = r->sysroot->config->update.ca_file;
  g_autoptr(GArray) index = NULL;
  if (!fetch_size_index (r, &index, error))
    return FALSE;
  AbPullLimits limits;
  ab_content_limits_init (&limits, r->sysroot->config);
  limits.deadline_us = r->deadline_us;
  limits.size_index = index;
  if (ab_content_pull (r->sysroot->repo, r->sysroot->root, r->sysroot->config->update.url,
                       r->t->commit, r->sysroot->events, ca, &limits, r->opts->cancellable,
                       &pulled, &local))
    return enter_phase (r, AB_PHASE_DOWNLOADED, error);
  if (g_error_matches (local, AB_CONTENT_ERROR, AB_CONTENT_ERROR_CORRUPTED))
    return refuse (error, "The server sent content that is not commit %s named by the manifest: %s",
                   r->t->commit, local->message);
  g_propagate_error (error, g_steal_pointer (&local));
  return FALSE;
}

/* *OUT: whether the repo holds a complete commit, whose objects an object
 * pull would reuse. A commit that a killed or failed run left marked
 * partial does not count. */
static gboolean
repo_has_complete_commit (OstreeRepo *repo, gboolean *out, GError **error)
{
  g_autoptr(GHashTable) commits = NULL;
  *out = FALSE;
  if (!ostree_repo_list_commit_objects_starting_with (repo, "", &commits, NULL, error))
    return FALSE;
  GHashTableIter it;
  gpointer key = NULL;
  g_hash_table_iter_init (&it, commits);
  while (!*out && g_hash_table_iter_next (&it, &key, NULL))
    {
      const char *csum = NULL;
      OstreeObjectType type;
      OstreeRepoCommitState state = 0;
      ostree_object_name_deserialize (key, &csum, &type);
      if (!ostree_repo_load_commit (repo, csum, NULL, &state, error))
        return FALSE;
      *out = (state & OSTREE_REPO_COMMIT_STATE_PARTIAL) == 0;
    }
  return TRUE;
}

/* ---- image packs (issue 18; ab-pack.h) ---- */

static char *
packs_cache_rel (const char *commit)
{
  return g_strdup_printf ("%s/packs-%s", CACHE_DIR, commit);
}

/* The temporary repo, in the repo's tmp directory: on the repo's file
 * system, so that the import hardlinks the verified objects. */
static char *
packs_repo_name (const char *commit)
{
  return g_strdup_printf ("abdeploy-packs-%s", commit);
}

/* What the rest of the packs' download and their extraction write: the
 * signed unpacked size plus every pack not yet complete in the cache. */
static guint64
packs_still_needed (const AbPacks *p, int cache_dfd)
{
  guint64 needed = p->unpacked;
  for (guint i = 0; i < p->files->len; i++)
    {
      const AbDeltaFile *f = p->files->pdata[i];
      g_autofree char *name = g_path_get_basename (f->path);
      struct stat st;
      if (fstatat (cache_dfd, name, &st, 0) != 0 || (guint64) st.st_size != f->size)
        needed += f->size;
    }
  return needed;
}

static gboolean
download_packs (Run *r, const AbPacks *p, int cache_dfd, GError **error)
{
  if (!ab_content_check_free_space (r->sysroot->dfd, packs_still_needed (p, cache_dfd),
                                    r->sysroot->config->update.min_free_space,
                                    "the update's packs and their unpacked objects", error))
    return FALSE;
  return fetch_files (r, p->files, (gint64) MIN (p->size, (guint64) G_MAXINT64), cache_dfd, NULL,
                      NULL, error);
}

/* Extraction refused a pack (ab-pack.h), or the import refused what it
 * found (a bad signature, an object that does not hash to its name, a
 * missing one): the publisher's packs are not the signed commit. Anything
 * else (a full disk, an I/O error, a cancellation) says nothing about
 * them and stands. Takes CAUSE. */
static gboolean
refuse_packs (Run *r, GError *cause, GError **error)
{
  g_autoptr(GError) owned = cause;
  gboolean refused = g_error_matches (cause, AB_PACK_ERROR, AB_PACK_ERROR_REFUSED)
                     || g_error_matches (cause, AB_CONTENT_ERROR, AB_CONTENT_ERROR_VERIFY)
                     || g_error_matches (cause, AB_CONTENT_ERROR, AB_CONTENT_ERROR_CORRUPTED)
                     || g_error_matches (cause, AB_CONTENT_ERROR, AB_CONTENT_ERROR_FAILED);
  if (!refused)
    {
      g_propagate_error (error, g_steal_pointer (&owned));
      return FALSE;
    }
  return refuse (error, "The packs of release %s are not its signed commit %s: %s; nothing "
                 "was staged", r->release->version, r->t->commit, cause->message);
}

static gboolean
extract_packs (Run *r, const AbPacks *p, int cache_dfd, int repo_dfd, GError **error)
{
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < p->files->len; i++)
    g_ptr_array_add (names, g_path_get_basename (((const AbDeltaFile *) p->files->pdata[i])->path));
  GError *local = NULL;
  if (ab_pack_extract_all (repo_dfd, cache_dfd, (const char *const *) names->pdata, names->len,
                           p->unpacked, r->opts->cancellable, &local))
    return TRUE;
  return refuse_packs (r, local, error);
}

static gboolean
import_packs (Run *r, const char *tmp_path, GError **error)
{
  const AbConfigUpdate *u = &r->sysroot->config->update;
  AbPullLimits limits;
  GError *local = NULL;
  ab_content_limits_init (&limits, r->sysroot->config);
  if (ab_content_import_repo (r->sysroot->repo, r->sysroot->root, u->url, u->ca_file, tmp_path,
                              r->t->commit, r->sysroot->events, &limits, r->opts->cancellable,
                              &local))
    return TRUE;
  return refuse_packs (r, local, error);
}

/* Extracts the packs in the cache into a fresh temporary repo, imports
 * the commit from there (verified), then removes the temporary repo. */
static gboolean
unpack_packs (Run *r, const AbPacks *p, int cache_dfd, GError **error)
{
  int tmp_dfd = ostree_repo_get_dfd (r->sysroot->repo);
  g_autofree char *name = packs_repo_name (r->t->commit);
  g_autofree char *rel = g_build_filename ("tmp", name, NULL);
  if (!ab_pack_prepare_repo (tmp_dfd, rel, error))
    return FALSE;
  ab_autofd repo_dfd = ab_fs_opendir_at (tmp_dfd, rel, error);
  if (repo_dfd < 0 || !extract_packs (r, p, cache_dfd, repo_dfd, error))
    return FALSE;
  ab_crash_point ("update:packs-extracted");
  g_autofree char *repo_path = g_file_get_path (ostree_repo_get_path (r->sysroot->repo));
  g_autofree char *tmp_path = g_build_filename (repo_path, rel, NULL);
  if (!import_packs (r, tmp_path, error))
    return FALSE;
  return ab_fs_rm_rf_at (tmp_dfd, rel, error);
}

/* The temporary repo of a failed run: its objects are unverified, gone at
 * once (the next run makes it afresh anyway). */
static void
drop_packs_repo (Run *r)
{
  g_autofree char *name = packs_repo_name (r->t->commit);
  g_autofree char *rel = g_build_filename ("tmp", name, NULL);
  AB_IGNORE_RESULT (ab_fs_rm_rf_at (ostree_repo_get_dfd (r->sysroot->repo), rel, NULL));
}

static gboolean
download_with_packs (Run *r, const AbPacks *p, GError **error)
{
  g_autofree char *rel = packs_cache_rel (r->t->commit);
  if (!ab_fs_mkdir_p_at (r->sysroot->dfd, rel, 0755, error))
    return FALSE;
  ab_event_phase (r->sysroot->events, "download");
  ab_autofd cache_dfd = ab_fs_opendir_at (r->sysroot->dfd, rel, error);
  if (cache_dfd < 0 || !download_packs (r, p, cache_dfd, error)
      || !enter_phase (r, AB_PHASE_DOWNLOADED, error))
    return FALSE;
  ab_event_phase (r->sysroot->events, "unpack");
  if (!unpack_packs (r, p, cache_dfd, error))
    {
      drop_packs_repo (r);
      return FALSE;
    }
  return ab_fs_rm_rf_at (r->sysroot->dfd, rel, error);
}

/* Packs the server does not have (HTTP 404 or 410: a mirror that leaves
 * out abdeploy/packs/) are no reason to fail: libostree's object pull gets
 * the same commit. Any other failure stands. Takes CAUSE. */
static gboolean
packs_fall_back (Run *r, GError *cause, GError **error)
{
  if (!g_error_matches (cause, AB_FETCH_ERROR, AB_FETCH_ERROR_NOT_FOUND))
    {
      g_propagate_error (error, cause);
      return FALSE;
    }
  ab_event_warning (r->sysroot->events, "The server has no packs of %s (%s); fetching its "
                    "objects one by one instead", r->release->version, cause->message);
  g_error_free (cause);
  g_autofree char *rel = packs_cache_rel (r->t->commit);
  if (!ab_fs_rm_rf_at (r->sysroot->dfd, rel, error))
    return FALSE;
  r->t->use_delta = FALSE;
  return download_objects (r, error);
}

/* What a download fetches for release REL on a device that runs commit FROM
 * (NULL: none): *OUT the delta, or *OUT_PACKS the image packs, or neither
 * for libostree's object pull. The delta from FROM when REL lists one.
 * Otherwise, when the repo holds no complete commit (a first install, or
 * one that a kill interrupted): nothing there for an object pull to reuse,
 * so a few requests instead of one per object: the packs (issue 18: zstd,
 * extracted on every core, then abdeploy's verified import) when REL lists
 * them, else its full delta. A device with a complete commit but no delta
 * from it pulls objects: it fetches only what changed. */
static gboolean
pick_delta (AbSysroot *sysroot, const AbRelease *rel, const char *from, const AbDelta **out,
            const AbPacks **out_packs, GError **error)
{
  gboolean have = FALSE;
  *out = find_delta (rel, from);
  *out_packs = NULL;
  if (*out != NULL || (rel->full_delta == NULL && rel->packs == NULL))
    return TRUE;
  if (!repo_has_complete_commit (sysroot->repo, &have, error))
    return FALSE;
  if (!have && rel->packs != NULL)
    *out_packs = rel->packs;
  else if (!have)
    *out = rel->full_delta;
  return TRUE;
}

/* A full delta the server does not have (HTTP 404 or 410: a mirror that
 * leaves out deltas/) is no reason to fail: libostree's object pull gets
 * the same commit, object by object. Any other failure stands. Takes
 * CAUSE, the failure of delta D's download. Nothing was applied yet: a
 * fetch fails before libostree reads any file. */
static gboolean
fall_back_to_objects (Run *r, const AbDelta *d, GError *cause, GError **error)
{
  if (d != r->release->full_delta || !g_error_matches (cause, AB_FETCH_ERROR,
                                                        AB_FETCH_ERROR_NOT_FOUND))
    {
      g_propagate_error (error, cause);
      return FALSE;
    }
  ab_event_warning (r->sysroot->events, "The server has no full delta of %s (%s); fetching "
                    "its objects one by one instead", r->release->version, cause->message);
  g_error_free (cause);
  g_autofree char *name = cache_name (r->t->commit);
  g_autofree char *rel = g_build_filename (CACHE_DIR, name, NULL);
  if (!ab_fs_rm_rf_at (r->sysroot->dfd, rel, error))
    return FALSE;
  r->t->use_delta = FALSE;
  return download_objects (r, error);
}

static gboolean
do_download (Run *r, GError **error)
{
  if (!enter_phase (r, AB_PHASE_DOWNLOADING, error))
    return FALSE;
  r->deadline_us = g_get_monotonic_time ()
                   + (gint64) r->sysroot->config->update.max_pull_time_sec * G_USEC_PER_SEC;
  const AbDelta *d = NULL;
  const AbPacks *p = NULL;
  GError *local = NULL;
  if (!pick_delta (r->sysroot, r->release, r->t->from_commit, &d, &p, error))
    return FALSE;
  /* use_delta: a delta, the full delta or the packs (transaction.json) */
  r->t->use_delta = d != NULL || p != NULL;
  if (p != NULL)
    return download_with_packs (r, p, &local) || packs_fall_back (r, local, error);
  if (d == NULL)
    return download_objects (r, error);
  if (download_with_delta (r, d, &local))
    return TRUE;
  return fall_back_to_objects (r, d, local, error);
}

/* Whether release REL may name a commit whose own (signed) "version"
 * metadata is COMMIT_VERSION: the same string, or, for a release promoted
 * without a rebuild (issue 17), exactly the version it was promoted from. */
static gboolean
release_may_name (const AbRelease *rel, const char *commit_version)
{
  if (commit_version == NULL)
    return FALSE;
  return strcmp (rel->version, commit_version) == 0
         || g_strcmp0 (rel->promoted_from, commit_version) == 0;
}

/* After the signature: the manifest's release version and the commit's own
 * version metadata agree. A mislabelled release (a publisher mistake, or a
 * validly signed manifest that names another version's commit) is refused. */
static gboolean
check_commit_version (Run *r, GError **error)
{
  g_autoptr(GError) local = NULL;
  g_autofree char *has = ab_content_commit_version (r->sysroot->repo, r->t->commit, &local);
  if (local != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  if (release_may_name (r->release, has))
    return TRUE;
  if (has == NULL)
    return refuse (error, "Refusing release %s: its commit %s carries no version metadata, so "
                   "nothing confirms that it is %s; the publisher must commit it with "
                   "abdeploy publish commit --version", r->release->version, r->t->commit,
                   r->release->version);
  if (r->release->promoted_from != NULL)
    return refuse (error, "Refusing release %s, promoted from %s: its commit %s is version %s "
                   "by its own metadata, neither of the two; the manifest and the commit "
                   "disagree (a mislabelled release); the publisher must promote the commit "
                   "of %s", r->release->version, r->release->promoted_from, r->t->commit, has,
                   r->release->promoted_from);
  return refuse (error, "Refusing release %s: its commit %s is version %s by its own metadata; "
                 "the manifest and the commit disagree (a mislabelled release); the publisher "
                 "must release the commit under its own version", r->release->version,
                 r->t->commit, has);
}

static gboolean
do_verify (Run *r, GError **error)
{
  g_autoptr(GError) local = NULL;
  gboolean have = FALSE;
  if (!ostree_repo_has_object (r->sysroot->repo, OSTREE_OBJECT_TYPE_COMMIT, r->t->commit, &have,
                               NULL, &local))
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  if (!have)
    return refuse (error, "After the download the repo has no commit %s, the one the manifest "
                   "names (the delta or server delivered another commit)", r->t->commit);
  if (!ab_content_verify (r->sysroot->repo, r->sysroot->root, r->t->commit, &local))
    {
      /* A delta writes the commit before anyone could check its signature:
       * take the unverified commit out again. Its other objects stay
       * unreferenced until an ostree prune. */
      (void) ostree_repo_delete_object (r->sysroot->repo, OSTREE_OBJECT_TYPE_COMMIT, r->t->commit,
                                        NULL, NULL);
      return refuse (error, "%s", local->message);
    }
  if (!check_commit_version (r, error))
    return FALSE;
  ab_crash_point ("update:verified");
  return enter_phase (r, AB_PHASE_VERIFIED, error);
}

/* A resumed transaction finds the work of the run that was killed: the
 * commit already staged (activate it), or already activated, the primary
 * deployment (*OUT_PRIMARY: nothing left but recording the phase). */
static gboolean
already_applied (const GError *stage_error, gboolean *out_primary)
{
  *out_primary = g_error_matches (stage_error, AB_DEPLOY_ERROR, AB_DEPLOY_ERROR_ALREADY_PRIMARY);
  return *out_primary
         || g_error_matches (stage_error, AB_DEPLOY_ERROR, AB_DEPLOY_ERROR_ALREADY_STAGED);
}

static gboolean
do_apply (Run *r, GError **error)
{
  if (!enter_phase (r, AB_PHASE_APPLYING, error))
    return FALSE;
  AbStageOptions so = { .refspec = r->t->commit, .local_only = TRUE,
                        .cancellable = r->opts->cancellable, .version = r->t->version };
  AbSlot slot = AB_SLOT_NONE;
  g_autoptr(GError) local = NULL;
  gboolean primary = FALSE;
  if (!ab_deploy_stage (r->sysroot, &so, &slot, &local)
      && !already_applied (local, &primary))
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  if (g_cancellable_set_error_if_cancelled (r->opts->cancellable, error))
    return FALSE;
  if (r->t->activate && !primary && !ab_deploy_activate (r->sysroot, 0, &slot, error))
    return FALSE;
  return enter_phase (r, AB_PHASE_APPLIED, error);
}

/* A full disk or an I/O error of the device says nothing about the
 * release: once the operator frees space or the disk recovers, the next
 * update retries. */
static gboolean
is_local_disk_error (const GError *cause)
{
  return ab_fs_error_is_local_disk (cause)
         || g_error_matches (cause, AB_CONTENT_ERROR, AB_CONTENT_ERROR_NO_SPACE);
}

static gboolean
classify_and_record (Run *r, GError *cause, GError **error)
{
  gboolean retryable = ab_fetch_error_is_retryable (cause)
                       || is_local_disk_error (cause)
                       || g_error_matches (cause, G_IO_ERROR, G_IO_ERROR_CANCELLED)
                       || g_error_matches (cause, AB_CONTENT_ERROR, AB_CONTENT_ERROR_FAILED)
                       || g_error_matches (cause, AB_CONTENT_ERROR, AB_CONTENT_ERROR_TIMEOUT);
  g_autoptr(GError) local = NULL;
  if (!ab_transaction_fail (r->sysroot->state_dfd, r->sysroot->state_format, r->t, cause->message,
                            retryable, &local))
    ab_event_warning (r->sysroot->events, "recording the failed transaction: %s", local->message);
  g_autoptr(JsonBuilder) ev = ab_history_event_begin ("update-failed");
  ab_json_add_string (ev, "version", r->t->version);
  ab_json_add_string (ev, "reason", cause->message);
  AB_IGNORE_RESULT (ab_history_append (r->sysroot->state_dfd, r->sysroot->state_format,
                                       r->sysroot->events, ev, NULL));
  g_propagate_error (error, cause);
  return FALSE;
}

/* Runs the transaction from its recorded phase to the end. */
static gboolean
drive (Run *r, GError **error)
{
  GError *local = NULL;
  AbPhase from = r->t->phase == AB_PHASE_FAILED ? r->t->failed_in : r->t->phase;
  r->t->attempts++;
  gboolean ok = TRUE;
  if (from <= AB_PHASE_DOWNLOADED)
    ok = do_download (r, &local);
  if (ok && from <= AB_PHASE_VERIFIED)
    ok = do_verify (r, &local);
  if (ok)
    ok = do_apply (r, &local);
  if (!ok)
    return classify_and_record (r, local, error);
  g_autoptr(JsonBuilder) ev = ab_history_event_begin ("update");
  ab_json_add_string (ev, "version", r->t->version);
  ab_json_add_string (ev, "commit", r->t->commit);
  ab_json_add_string (ev, "channel", r->t->channel);
  return ab_history_append (r->sysroot->state_dfd, r->sysroot->state_format, r->sysroot->events,
                            ev, error);
}

/* How far VERSION is behind NEWEST, by SemVer (or the leading N.M of
 * versions that are not SemVer): NULL unless a major version or more than
 * two minor versions. */
static char *
staleness (const char *version, const char *newest)
{
  guint64 majors = 0, minors = 0;
  if (ab_version_compare (newest, version) <= 0
      || !ab_version_gap (version, newest, &majors, &minors))
    return NULL;
  if (majors > 0)
    return g_strdup_printf ("installing %s, %" G_GUINT64_FORMAT " major version%s behind the "
                            "channel's newest %s", version, majors, majors == 1 ? "" : "s", newest);
  if (minors > 2)
    return g_strdup_printf ("installing %s, more than two minor versions (%" G_GUINT64_FORMAT
                            ") behind the channel's newest %s", version, minors, newest);
  return NULL;
}

/* A warning event, also recorded in history. */
static void
warn_and_record (Run *r, const char *msg)
{
  ab_event_warning (r->sysroot->events, "%s", msg);
  g_autoptr(JsonBuilder) ev = ab_history_event_begin ("warning");
  ab_json_add_string (ev, "version", r->t->version);
  ab_json_add_string (ev, "reason", msg);
  AB_IGNORE_RESULT (ab_history_append (r->sysroot->state_dfd, r->sysroot->state_format,
                                       r->sysroot->events, ev, NULL));
}

static void
warn_if_stale (Run *r)
{
  const AbRelease *newest = ab_manifest_newest (r->manifest);
  g_autofree char *msg = newest ? staleness (r->t->version, newest->version) : NULL;
  if (msg != NULL)
    warn_and_record (r, msg);
}

/* Installing a deprecated release (update --version=V, an exact pin) is
 * allowed; the publisher's reason is shown and kept in history. */
static void
warn_if_deprecated (Run *r)
{
  if (r->release->deprecated == NULL)
    return;
  g_autofree char *msg = g_strdup_printf ("installing %s, which the publisher deprecated: %s",
                                          r->release->version, r->release->deprecated);
  warn_and_record (r, msg);
}

static const AbRelease *
choose_release (const AbUpdateCheck *c, const AbUpdateOptions *opts, GError **error)
{
  if (opts->version == NULL)
    {
      if (c->offered_version == NULL)
        {
          g_set_error (error, AB_UPDATE_ERROR, AB_UPDATE_ERROR_NO_UPDATE,
                       "No update: %s", c->reason ? c->reason : "nothing newer is offered");
          return NULL;
        }
      const AbRelease *offered = ab_manifest_find (c->manifest, c->offered_version);
      /* only a pin offers a lower version; its consent is the pin's */
      if (ab_version_compare (offered->version, c->installed_version) < 0
          && !opts->allow_downgrade && !c->pin_allows_downgrade)
        {
          refuse_downgrade (error, "install the pinned", c->installed_version, offered->version);
          return NULL;
        }
      return offered;
    }
  const AbRelease *rel = ab_manifest_find (c->manifest, opts->version);
  if (rel == NULL)
    g_set_error (error, AB_UPDATE_ERROR, AB_UPDATE_ERROR_FAILED,
                 "Version %s is not in channel %s; abdeploy check-update lists what is offered",
                 opts->version, c->channel);
  else if (g_strcmp0 (rel->commit, c->installed_commit) == 0)
    {
      g_set_error (error, AB_UPDATE_ERROR, AB_UPDATE_ERROR_NO_UPDATE,
                   "Nothing to do: %s is already installed", rel->version);
      return NULL;
    }
  else if (ab_version_compare (rel->version, c->installed_version) < 0 && !opts->allow_downgrade)
    {
      refuse_downgrade (error, "install", c->installed_version, rel->version);
      return NULL;
    }
  return rel;
}

static gboolean
check_waiting (AbSysroot *sysroot, AbTransaction **out_open, GError **error)
{
  if (!ab_transaction_load (sysroot->state_dfd, out_open, error))
    return FALSE;
  AbTransaction *t = *out_open;
  if (t && t->phase == AB_PHASE_FAILED && !t->retryable)
    {
      g_set_error (error, AB_UPDATE_ERROR, AB_UPDATE_ERROR_WAITING,
                   "The update to %s failed and waits for the operator (%s). Run abdeploy resume "
                   "to retry it, or abdeploy resume --abandon to drop it", t->version, t->reason);
      return FALSE;
    }
  return TRUE;
}

/* Before a transaction starts: the signed size of the delta the update
 * will fetch (pick_delta(); none: objects, size unknown until pulled) must
 * be within [update] max-pull-bytes and fit in the free space beside the
 * reserve. Nothing is changed when not. */
static gboolean
check_room (AbSysroot *sysroot, const AbRelease *rel, const char *from, GError **error)
{
  const AbConfigUpdate *cfg = &sysroot->config->update;
  const AbDelta *d = NULL;
  const AbPacks *p = NULL;
  if (!pick_delta (sysroot, rel, from, &d, &p, error))
    return FALSE;
  guint64 size = p ? p->size : d ? d->size : 0;
  if (size > cfg->max_pull_bytes)
    {
      g_set_error (error, AB_CONTENT_ERROR, AB_CONTENT_ERROR_TOO_BIG,
                   "The %s of this update %s %" G_GUINT64_FORMAT " bytes (signed manifest), "
                   "more than [update] max-pull-bytes=%" G_GUINT64_FORMAT "; nothing was "
                   "downloaded (raise max-pull-bytes if the release is really that big)",
                   p ? "packs" : "delta", p ? "are" : "is", size, cfg->max_pull_bytes);
      return FALSE;
    }
  /* the delta's files, and at least as much again for the objects it
   * unpacks into the repo; the packs' files and their signed unpacked size */
  return ab_content_check_free_space (sysroot->dfd, p ? p->size + p->unpacked : 2 * size,
                                      cfg->min_free_space, "the update's download", error);
}

static guint
max_resume_attempts (AbSysroot *sysroot)
{
  return sysroot->config->update.max_resume_attempts;
}

static gboolean
run_transaction (AbSysroot *sysroot, const AbUpdateOptions *opts, AbUpdateCheck *c,
                 AbTransaction *t, GError **error)
{
  const AbRelease *rel = ab_manifest_find (c->manifest, t->version);
  if (rel == NULL || g_strcmp0 (rel->commit, t->commit) != 0)
    return refuse (error, "The channel no longer offers %s as commit %s; abandon this "
                   "transaction (abdeploy resume --abandon)", t->version, t->commit);
  Run r = { sysroot, opts, t, rel, c->manifest };
  warn_if_stale (&r);
  warn_if_deprecated (&r);
  return drive (&r, error);
}

gboolean
ab_update_run (AbSysroot *sysroot, const AbUpdateOptions *opts, GError **error)
{
  g_autoptr(AbTransaction) open = NULL;
  if (!ab_sysroot_lock (sysroot, error) || !check_waiting (sysroot, &open, error))
    return FALSE;
  if (ab_transaction_is_open (open) && opts->version == NULL)
    {
      if (open->attempts >= max_resume_attempts (sysroot))
        {
          g_set_error (error, AB_UPDATE_ERROR, AB_UPDATE_ERROR_WAITING,
                       "The update to %s failed %u times (%s); it waits for the operator: "
                       "abdeploy resume", open->version, open->attempts, open->reason);
          return FALSE;
        }
      return ab_update_resume (sysroot, opts, FALSE, error);
    }
  g_autoptr(AbUpdateCheck) c = ab_update_check (sysroot, error);
  if (c == NULL)
    return FALSE;
  if (c->pin_conflict)
    return refuse (error, "Refusing to update: %s", c->pin_conflict);
  if (c->warning)
    ab_event_warning (sysroot->events, "%s", c->warning);
  const AbRelease *rel = choose_release (c, opts, error);
  if (rel == NULL)
    return FALSE;
  g_autofree char *inst_version = NULL, *inst_commit = NULL, *next_commit = NULL;
  if (!installed (sysroot, &inst_version, &inst_commit, &next_commit, error))
    return FALSE;
  if (g_strcmp0 (rel->commit, next_commit) == 0)
    {
      g_autofree char *why = boots_next_reason (rel);
      g_set_error (error, AB_UPDATE_ERROR, AB_UPDATE_ERROR_NO_UPDATE, "Nothing to do: %s", why);
      return FALSE;
    }
  /* the A/B invariant before anything is downloaded or recorded */
  if (!ab_deploy_check_may_stage (sysroot, error)
      || !check_room (sysroot, rel, c->installed_commit, error))
    return FALSE;
  g_autoptr(AbTransaction) t = ab_transaction_new (c->channel, rel->version, rel->commit,
                                                   c->installed_commit);
  t->activate = opts->activate;
  if (!ab_transaction_set_phase (sysroot->state_dfd, sysroot->state_format, t, AB_PHASE_CREATED, error))
    return FALSE;
  return run_transaction (sysroot, opts, c, t, error);
}

gboolean
ab_update_resume_interrupted (AbSysroot *sysroot, const AbUpdateOptions *opts, GError **error)
{
  g_autoptr(AbTransaction) t = NULL;
  if (!ab_sysroot_lock (sysroot, error) || !ab_transaction_load (sysroot->state_dfd, &t, error))
    return FALSE;
  if (!ab_transaction_is_open (t))
    {
      g_set_error (error, AB_UPDATE_ERROR, AB_UPDATE_ERROR_NO_UPDATE,
                   "Nothing to resume: no interrupted update");
      return FALSE;
    }
  if (t->phase == AB_PHASE_FAILED && !t->retryable)
    {
      g_set_error (error, AB_UPDATE_ERROR, AB_UPDATE_ERROR_NO_UPDATE,
                   "Nothing to resume now: the update to %s failed and waits for the operator "
                   "(%s); abdeploy resume retries it, abdeploy resume --abandon drops it",
                   t->version, t->reason);
      return FALSE;
    }
  if (t->attempts >= max_resume_attempts (sysroot))
    {
      g_set_error (error, AB_UPDATE_ERROR, AB_UPDATE_ERROR_WAITING,
                   "The update to %s was tried %u times ([update] max-resume-attempts=%u); it "
                   "waits for the operator: abdeploy resume retries it, abdeploy resume "
                   "--abandon drops it", t->version, t->attempts, max_resume_attempts (sysroot));
      return FALSE;
    }
  return ab_update_resume (sysroot, opts, FALSE, error);
}

/* The downloaded delta parts of an abandoned transaction: nothing resumes
 * them any more. Removed after the phase is recorded, so a crash in
 * between leaves only files that the next update reuses or replaces. */
static gboolean
drop_delta_cache (AbSysroot *sysroot, const char *commit, GError **error)
{
  g_autofree char *name = cache_name (commit);
  g_autofree char *rel = g_build_filename (CACHE_DIR, name, NULL);
  return ab_fs_rm_rf_at (sysroot->dfd, rel, error);
}

gboolean
ab_update_resume (AbSysroot *sysroot, const AbUpdateOptions *opts, gboolean abandon,
                  GError **error)
{
  g_autoptr(AbTransaction) t = NULL;
  if (!ab_sysroot_lock (sysroot, error) || !ab_transaction_load (sysroot->state_dfd, &t, error))
    return FALSE;
  if (!ab_transaction_is_open (t))
    {
      g_set_error (error, AB_UPDATE_ERROR, AB_UPDATE_ERROR_NO_UPDATE,
                   "Nothing to resume: no unfinished update transaction");
      return FALSE;
    }
  if (abandon)
    return ab_transaction_set_phase (sysroot->state_dfd, sysroot->state_format, t, AB_PHASE_ABANDONED, error)
           && drop_delta_cache (sysroot, t->commit, error);
  /* the A/B invariant: the transaction stays as it is, to resume later */
  if (!ab_deploy_check_may_stage (sysroot, error))
    return FALSE;
  g_autoptr(AbUpdateCheck) c = ab_update_check (sysroot, error);
  if (c == NULL)
    return FALSE;
  ab_event_message (sysroot->events, "Resuming the update to %s from phase %s", t->version,
                    ab_phase_name (t->phase == AB_PHASE_FAILED ? t->failed_in : t->phase));
  return run_transaction (sysroot, opts, c, t, error);
}
