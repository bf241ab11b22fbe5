#include "config.h"
#include "ab-json.h"
#include "ab-transaction.h"
#include "ab-crashpoint.h"
#include "ab-format.h"
#include "ab-history.h"
#include "ab-util.h"

#include <json-glib/json-glib.h>

G_DEFINE_QUARK (ab-transaction-error-quark, ab_transaction_error)

#define TRANSACTION_FILE "transaction.json"

static const char *const phase_names[] = {
  "created", "downloading", "downloaded", "verified", "applying", "applied", "failed", "abandoned",
};

const char *
ab_phase_name (AbPhase phase)
{
  return phase_names[phase];
}

static gboolean
phase_from_name (const char *name, AbPhase *out)
{
  for (guint i = 0; i < G_N_ELEMENTS (phase_names); i++)
    if (g_strcmp0 (name, phase_names[i]) == 0)
      {
        *out = (AbPhase) i;
        return TRUE;
      }
  return FALSE;
}

void
ab_transaction_free (AbTransaction *t)
{
  if (t == NULL)
    return;
  g_free (t->id);
  g_free (t->channel);
  g_free (t->version);
  g_free (t->commit);
  g_free (t->from_commit);
  g_free (t->reason);
  g_free (t->created_at);
  g_free (t->updated_at);
  g_free (t);
}

AbTransaction *
ab_transaction_new (const char *channel, const char *version, const char *commit,
                    const char *from_commit)
{
  AbTransaction *t = g_new0 (AbTransaction, 1);
  t->id = g_uuid_string_random ();
  t->channel = g_strdup (channel);
  t->version = g_strdup (version);
  t->commit = g_strdup (commit);
  t->from_commit = g_strdup (from_commit);
  t->activate = TRUE;
  t->phase = AB_PHASE_CREATED;
  t->failed_in = AB_PHASE_CREATED;
  t->created_at = ab_now_iso8601 ();
  t->updated_at = g_strdup (t->created_at);
  return t;
}

static JsonNode *
to_json (const AbTransaction *t, gint64 format)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "format");
  json_builder_add_int_value (b, format);
  ab_json_add_string (b, "id", t->id);
  ab_json_add_string (b, "channel", t->channel);
  ab_json_add_string (b, "version", t->version);
  ab_json_add_string (b, "commit", t->commit);
  ab_json_add_string (b, "from_commit", t->from_commit);
  json_builder_set_member_name (b, "use_delta");
  json_builder_add_boolean_value (b, t->use_delta);
  json_builder_set_member_name (b, "activate");
  json_builder_add_boolean_value (b, t->activate);
  ab_json_add_string (b, "phase", phase_names[t->phase]);
  ab_json_add_string (b, "failed_in", t->phase == AB_PHASE_FAILED ? phase_names[t->failed_in] : NULL);
  ab_json_add_string (b, "reason", t->reason);
  json_builder_set_member_name (b, "retryable");
  json_builder_add_boolean_value (b, t->retryable);
  json_builder_set_member_name (b, "attempts");
  json_builder_add_int_value (b, t->attempts);
  ab_json_add_string (b, "created_at", t->created_at);
  ab_json_add_string (b, "updated_at", t->updated_at);
  json_builder_end_object (b);
  return json_builder_get_root (b);
}

static char *
dup_string (JsonObject *o, const char *key)
{
  return g_strdup (ab_json_get_string (o, key, NULL));
}

gboolean
ab_transaction_load (int state_dfd, AbTransaction **out, GError **error)
{
  *out = NULL;
  g_autoptr(JsonNode) root = NULL;
  if (!ab_format_read_state_at (state_dfd, TRANSACTION_FILE, &root, NULL, error))
    return FALSE;
  if (root == NULL)
    return TRUE;
  JsonObject *o = json_node_get_object (root);
  g_autoptr(AbTransaction) t = g_new0 (AbTransaction, 1);
  const char *phase = ab_json_get_string (o, "phase", "");
  if (!phase_from_name (phase, &t->phase))
    {
      g_set_error (error, AB_TRANSACTION_ERROR, AB_TRANSACTION_ERROR_FORMAT,
                   "State file abdeploy/state/" TRANSACTION_FILE " has an unknown phase \"%s\"; "
                   "restore it from a backup (abdeploy restore)", phase);
      return FALSE;
    }
  t->id = dup_string (o, "id");
  t->channel = dup_string (o, "channel");
  t->version = dup_string (o, "version");
  t->commit = dup_string (o, "commit");
  t->from_commit = dup_string (o, "from_commit");
  t->reason = dup_string (o, "reason");
  t->created_at = dup_string (o, "created_at");
  t->updated_at = dup_string (o, "updated_at");
  t->use_delta = ab_json_get_boolean (o, "use_delta", FALSE);
  t->activate = ab_json_get_boolean (o, "activate", TRUE);
  t->retryable = ab_json_get_boolean (o, "retryable", FALSE);
  t->attempts = (guint) ab_json_get_int (o, "attempts", 0);
  (void) phase_from_name (ab_json_get_string (o, "failed_in", ""), &t->failed_in);
  *out = g_steal_pointer (&t);
  return TRUE;
}

static gboolean
save (int state_dfd, gint64 format, AbTransaction *t, GError **error)
{
  g_free (t->updated_at);
  t->updated_at = ab_now_iso8601 ();
  g_autoptr(JsonNode) node = to_json (t, format);
  if (!ab_json_write_at (state_dfd, TRANSACTION_FILE, node, error))
    return FALSE;
  ab_crash_point ("transaction:saved");
  return TRUE;
}

gboolean
ab_transaction_set_phase (int state_dfd, gint64 format, AbTransaction *t, AbPhase phase,
                          GError **error)
{
  t->phase = phase;
  if (phase != AB_PHASE_FAILED)
    g_clear_pointer (&t->reason, g_free);
  return save (state_dfd, format, t, error);
}

gboolean
ab_transaction_fail (int state_dfd, gint64 format, AbTransaction *t, const char *reason,
                     gboolean retryable, GError **error)
{
  if (t->phase != AB_PHASE_FAILED)
    t->failed_in = t->phase;
  t->phase = AB_PHASE_FAILED;
  g_free (t->reason);
  t->reason = g_strdup (reason);
  t->retryable = retryable;
  return save (state_dfd, format, t, error);
}

gboolean
ab_transaction_is_open (const AbTransaction *t)
{
  return t != NULL && t->phase != AB_PHASE_APPLIED && t->phase != AB_PHASE_ABANDONED;
}
