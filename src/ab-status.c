#include "config.h"
#include "ab-json.h"
#include "ab-status.h"
#include "ab-health.h"
#include "ab-history.h"
#include "ab-transaction.h"
#include "ab-fetch.h"
#include "ab-update.h"


static void
add_slot (JsonBuilder *b, AbSysroot *sysroot, const AbSlotsView *v, AbSlot slot)
{
  const AbSlotRecord *rec = v->rec[slot];
  AbSlotState state = ab_slot_state_derive (rec, &v->ptr, slot);
  json_builder_begin_object (b);
  ab_json_add_string (b, "name", ab_slot_name (slot));
  ab_json_add_string (b, "commit", rec ? rec->commit : NULL);
  ab_json_add_string (b, "version", rec ? rec->version : NULL);
  ab_json_add_string (b, "state", ab_slot_state_name (state));
  json_builder_set_member_name (b, "booted");
  json_builder_add_boolean_value (b, sysroot->booted == slot);
  json_builder_set_member_name (b, "primary");
  json_builder_add_boolean_value (b, v->ptr.primary == slot);
  json_builder_set_member_name (b, "tries_left");
  if (state == AB_SLOT_STATE_TRIAL)
    json_builder_add_int_value (b, v->ptr.tries[slot]);
  else
    json_builder_add_null_value (b);
  ab_json_add_string (b, "deployed_at", rec ? rec->deployed_at : NULL);
  json_builder_end_object (b);
}

/* What the bootloader boots next, by the documented decision
 * (ab_boot_pointer_next_boot()): the slot, how ("trial", "primary", or
 * "fallback" when the primary cannot boot and the other slot is picked),
 * and the trial tries left (-1 when the slot is not on trial). */
typedef struct
{
  AbSlot slot;
  const char *kind;
  int tries;
} NextBoot;

static NextBoot
next_boot (const AbSlotsView *v)
{
  NextBoot n = { .slot = ab_boot_pointer_next_boot (&v->ptr), .kind = NULL, .tries = -1 };
  if (n.slot == AB_SLOT_NONE)
    return n;
  gboolean trial = v->ptr.state[n.slot] == AB_BOOT_STATE_TRIAL;
  if (n.slot != v->ptr.primary)
    n.kind = "fallback";
  else
    n.kind = trial ? "trial" : "primary";
  if (trial)
    n.tries = v->ptr.tries[n.slot];
  return n;
}

static const char *
version_of (const AbSlotsView *v, AbSlot slot)
{
  const AbSlotRecord *rec = slot == AB_SLOT_NONE ? NULL : v->rec[slot];
  return rec ? rec->version : NULL;
}

/* "next_boot": {slot, version, kind, tries}, or null without a primary. */
static void
add_next_boot (JsonBuilder *b, const AbSlotsView *v)
{
  NextBoot n = next_boot (v);
  json_builder_set_member_name (b, "next_boot");
  if (n.slot == AB_SLOT_NONE)
    {
      json_builder_add_null_value (b);
      return;
    }
  json_builder_begin_object (b);
  ab_json_add_string (b, "slot", ab_slot_name (n.slot));
  ab_json_add_string (b, "version", version_of (v, n.slot));
  ab_json_add_string (b, "kind", n.kind);
  ab_json_add_int_or_null (b, "tries", n.tries >= 0, n.tries);
  json_builder_end_object (b);
}

/* "origin": where updates come from, [update] url (redacted: no
 * credentials are ever shown) and channel; url null when not configured. */
static void
add_origin (JsonBuilder *b, AbSysroot *sysroot)
{
  g_autofree char *url = sysroot->config->update.url
                             ? ab_fetch_redact_url (sysroot->config->update.url) : NULL;
  json_builder_set_member_name (b, "origin");
  json_builder_begin_object (b);
  ab_json_add_string (b, "url", url);
  ab_json_add_string (b, "channel", sysroot->config->update.channel);
  json_builder_end_object (b);
}

/* The update transaction, or NULL; a damaged journal is reported (as a
 * warning) and shown as none: status must work on a damaged sysroot. */
static gboolean
load_transaction (AbSysroot *sysroot, AbTransaction **out, GError **error)
{
  g_autoptr(GError) local = NULL;
  if (ab_transaction_load (sysroot->state_dfd, out, &local))
    return TRUE;
  if (!ab_format_error_is_damage (local)
      && !g_error_matches (local, AB_TRANSACTION_ERROR, AB_TRANSACTION_ERROR_FORMAT))
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  ab_format_warn (sysroot->events, "abdeploy/state/transaction.json is damaged (%s); no update "
                  "transaction is shown. update and resume refuse it until it is restored from a backup",
                  local->message);
  return TRUE;
}

/* "transaction": the update transaction (phase, version, reason), or null. */
static gboolean
add_transaction (JsonBuilder *b, AbSysroot *sysroot, GError **error)
{
  g_autoptr(AbTransaction) t = NULL;
  if (!load_transaction (sysroot, &t, error))
    return FALSE;
  json_builder_set_member_name (b, "transaction");
  if (t == NULL)
    {
      json_builder_add_null_value (b);
      return TRUE;
    }
  json_builder_begin_object (b);
  ab_json_add_string (b, "id", t->id);
  ab_json_add_string (b, "version", t->version);
  ab_json_add_string (b, "commit", t->commit);
  ab_json_add_string (b, "phase", ab_phase_name (t->phase));
  ab_json_add_string (b, "failed_in", t->phase == AB_PHASE_FAILED ? ab_phase_name (t->failed_in) : NULL);
  ab_json_add_string (b, "reason", t->reason);
  json_builder_set_member_name (b, "retryable");
  json_builder_add_boolean_value (b, t->retryable);
  json_builder_set_member_name (b, "attempts");
  json_builder_add_int_value (b, t->attempts);
  ab_json_add_string (b, "updated_at", t->updated_at);
  json_builder_end_object (b);
  return TRUE;
}

/* Collects what the readers report as damaged (tolerated warnings,
 * ab_format_warn()) while status runs: the sysroot's sink is this one's
 * until collector_clear(), and every event goes on to the front end's. */
typedef struct
{
  GPtrArray *found;
  AbSysroot *sysroot;
  AbEventSink *next;         /* the sysroot's sink before (may be NULL) */
  AbEventSink *own;
} Collector;

static void
collect_event (const AbEvent *ev, gpointer user_data)
{
  Collector *c = user_data;
  if (ev->kind == AB_EVENT_WARNING && ev->tolerated)
    g_ptr_array_add (c->found, g_strdup (ev->message));
  if (c->next != NULL && c->next->func != NULL)
    c->next->func (ev, c->next->user_data);
}

static void
collector_clear (Collector *c)
{
  if (c->sysroot != NULL)
    c->sysroot->events = c->next;
  g_clear_pointer (&c->own, ab_event_sink_free);
  g_clear_pointer (&c->found, g_ptr_array_unref);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Collector, collector_clear)

static void
collector_start (Collector *c, AbSysroot *sysroot)
{
  c->found = g_ptr_array_new_with_free_func (g_free);
  c->sysroot = sysroot;
  c->next = sysroot->events;
  c->own = ab_event_sink_new (collect_event, c);
  sysroot->events = c->own;
}

static gboolean
add_health_and_rollback (JsonBuilder *b, AbSysroot *sysroot, GError **error)
{
  g_autoptr(JsonNode) health = ab_health_status_json (sysroot, error);
  g_autoptr(JsonNode) last_rollback = NULL;
  if (health == NULL || !ab_history_load_last_rollback (sysroot->state_dfd, sysroot->events,
                                                        &last_rollback, error))
    return FALSE;
  json_builder_set_member_name (b, "health");
  json_builder_add_value (b, g_steal_pointer (&health));
  json_builder_set_member_name (b, "last_rollback");
  /* The state file's format is not part of what status shows: it would
   * change with every migration of the file. */
  if (last_rollback)
    {
      json_object_remove_member (json_node_get_object (last_rollback), "format");
      json_builder_add_value (b, g_steal_pointer (&last_rollback));
    }
  else
    json_builder_add_null_value (b);
  return TRUE;
}

/* The last verified manifest's view (no network), or NULL: a cache that
 * cannot be read is reported as damage and shown as none. */
static AbUpdateCheck *
cached_check (AbSysroot *sysroot)
{
  g_autoptr(GError) local = NULL;
  AbUpdateCheck *c = ab_update_check_cached (sysroot, &local);
  if (local != NULL)
    ab_format_warn (sysroot->events,
                    "the cached channel manifest cannot be used (%s); check-update fetches it "
                    "again", local->message);
  return c;
}

/* The pin as status shows it; update.json that cannot be read is reported
 * as damage and shown as no pin. */
static JsonNode *
pin_view (AbSysroot *sysroot, const AbUpdateCheck *c)
{
  g_autoptr(GError) local = NULL;
  JsonNode *pin = ab_update_pin_to_json (sysroot, c, &local);
  if (pin != NULL)
    return pin;
  ab_format_warn (sysroot->events,
                  "abdeploy/state/update.json cannot be read (%s); no pin is shown",
                  local->message);
  return ab_update_pin_to_json (NULL, NULL, NULL);
}

/* "pin" and "release" (issue 17): the pin and what it resolves to, the
 * installed release's deprecation and the offer, from the cached manifest. */
static gboolean
add_release_view (JsonBuilder *b, AbSysroot *sysroot, GError **error)
{
  g_autoptr(AbUpdateCheck) c = cached_check (sysroot);
  g_autoptr(JsonNode) pin = pin_view (sysroot, c);
  json_builder_set_member_name (b, "pin");
  json_builder_add_value (b, g_steal_pointer (&pin));
  json_builder_set_member_name (b, "release");
  if (c == NULL)
    {
      json_builder_add_null_value (b);
      return TRUE;
    }
  json_builder_begin_object (b);
  ab_json_add_string (b, "channel", c->channel);
  ab_json_add_int (b, "manifest_serial", (gint64) c->serial);
  ab_json_add_string (b, "installed_version", c->installed_version);
  ab_json_add_string (b, "installed_deprecated", c->installed_deprecated);
  ab_json_add_string (b, "offered_version", c->offered_version);
  ab_json_add_boolean (b, "offered_security", c->offered_security);
  json_builder_end_object (b);
  return TRUE;
}

JsonNode *
ab_status_to_json (AbSysroot *sysroot, GError **error)
{
  g_auto(AbSlotsView) v = { 0 };
  g_auto(Collector) damaged = { 0 };
  collector_start (&damaged, sysroot);
  sysroot->tolerate_damage = TRUE;
  if (!ab_sysroot_load_view (sysroot, &v, error))
    return NULL;
  g_autoptr(JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  ab_json_add_string (b, "booted", ab_slot_name (sysroot->booted));
  ab_json_add_string (b, "primary", ab_slot_name (v.ptr.primary));
  add_origin (b, sysroot);
  add_next_boot (b, &v);
  /* "pin" (issue 17: the pin and what it resolves to) has a function of its own. */
  json_builder_set_member_name (b, "slots");
  json_builder_begin_array (b);
  for (int s = 0; s < AB_N_SLOTS; s++)
    add_slot (b, sysroot, &v, (AbSlot) s);
  json_builder_end_array (b);
  if (!add_health_and_rollback (b, sysroot, error) || !add_transaction (b, sysroot, error)
      || !add_release_view (b, sysroot, error))
    return NULL;
  /* What status read as missing because it was damaged. */
  json_builder_set_member_name (b, "damaged_state");
  json_builder_begin_array (b);
  for (guint i = 0; i < damaged.found->len; i++)
    json_builder_add_string_value (b, damaged.found->pdata[i]);
  json_builder_end_array (b);
  /* A restore that was interrupted: what status shows may be part old,
   * part restored until the next command that writes completes it. */
  json_builder_set_member_name (b, "restore_pending");
  json_builder_add_boolean_value (b, sysroot->restore_pending);
  json_builder_end_object (b);
  return json_builder_get_root (b);
}

static const char *
or_dash (const char *s)
{
  return s ? s : "-";
}

static gboolean
append_health_text (AbSysroot *sysroot, GString *out, GError **error)
{
  g_autoptr(JsonNode) health = ab_health_status_json (sysroot, error);
  g_autoptr(JsonNode) rb = NULL;
  if (health == NULL || !ab_history_load_last_rollback (sysroot->state_dfd, sysroot->events,
                                                        &rb, error))
    return FALSE;
  JsonObject *h = json_node_get_object (health);
  const char *verdict = ab_json_get_string (h, "verdict", "none");
  g_string_append_printf (out, "Last health verdict: %s", verdict);
  JsonArray *failed = ab_json_get_array (h, "failed_hooks");
  for (guint i = 0; failed && i < json_array_get_length (failed); i++)
    g_string_append_printf (out, "%s%s", i ? ", " : " (failed: ", ab_json_array_get_string (failed, i, "?"));
  if (failed && json_array_get_length (failed) > 0)
    g_string_append_c (out, ')');
  const char *at = ab_json_get_string (h, "at", NULL);
  if (at)
    g_string_append_printf (out, " at %s", at);
  g_string_append_c (out, '\n');
  if (rb && JSON_NODE_HOLDS_OBJECT (rb))
    {
      JsonObject *r = json_node_get_object (rb);
      g_string_append_printf (out, "Last rollback: from %s (slot %s) to %s (slot %s) at %s: %s\n",
                              or_dash (ab_json_get_string (r, "from_version", NULL)),
                              or_dash (ab_json_get_string (r, "from_slot", NULL)),
                              or_dash (ab_json_get_string (r, "to_version", NULL)),
                              or_dash (ab_json_get_string (r, "to_slot", NULL)),
                              or_dash (ab_json_get_string (r, "at", NULL)),
                              or_dash (ab_json_get_string (r, "reason", NULL)));
    }
  else
    g_string_append (out, "Last rollback: none\n");
  g_autoptr(AbTransaction) t = NULL;
  if (!load_transaction (sysroot, &t, error))
    return FALSE;
  if (t != NULL)
    g_string_append_printf (out, "Update transaction: %s to %s, phase %s%s%s%s\n", t->id, t->version,
                            ab_phase_name (t->phase), t->reason ? " (" : "", t->reason ? t->reason : "",
                            t->reason ? (t->retryable ? "; retryable)" : "; waits for the operator)") : "");
  return TRUE;
}

static void
append_origin_text (AbSysroot *sysroot, GString *out)
{
  g_autofree char *url = sysroot->config->update.url
                             ? ab_fetch_redact_url (sysroot->config->update.url) : NULL;
  if (url)
    g_string_append_printf (out, "Origin: %s (channel %s)\n", url, sysroot->config->update.channel);
  else
    g_string_append_printf (out, "Origin: none ([update] url is not set; channel %s)\n",
                            sysroot->config->update.channel);
}

/* "Next boot: reboot to start 2.0 (slot b, trial, 3 tries)", or without
 * "reboot to start" when the slot booted next is the one running now (or
 * the sysroot is offline). */
static void
append_next_boot_text (AbSysroot *sysroot, const AbSlotsView *v, GString *out)
{
  NextBoot n = next_boot (v);
  if (n.slot == AB_SLOT_NONE)
    {
      g_string_append (out, "Next boot: nothing is activated (no primary slot)\n");
      return;
    }
  const char *version = version_of (v, n.slot);
  g_autofree char *tries = n.tries < 0 ? g_strdup ("")
                           : g_strdup_printf (", %d %s", n.tries, n.tries == 1 ? "try" : "tries");
  g_autofree char *why = g_str_equal (n.kind, "fallback")
      ? g_strdup_printf (": slot %s cannot boot", ab_slot_name (v->ptr.primary)) : g_strdup ("");
  gboolean restart = sysroot->booted != AB_SLOT_NONE && sysroot->booted != n.slot;
  g_string_append_printf (out, "Next boot: %s%s (slot %s, %s%s%s)\n",
                          restart ? "reboot to start " : "", version ? version : "(no version)",
                          ab_slot_name (n.slot), n.kind, tries, why);
}

/* The pin, a deprecated installed release and an offered security release
 * (issue 17), from the cached manifest. */
static gboolean
append_release_text (AbSysroot *sysroot, GString *out, GError **error)
{
  g_autoptr(AbUpdateCheck) c = cached_check (sysroot);
  g_autoptr(JsonNode) pin = pin_view (sysroot, c);
  JsonObject *p = json_node_get_object (pin);
  const char *version = ab_json_get_string (p, "version", NULL);
  if (version)
    g_string_append_printf (out, "Pin: %s (%s), resolves to %s%s%s\n", version,
                            ab_json_get_boolean (p, "exact", FALSE) ? "exact" : "rolling",
                            or_dash (ab_json_get_string (p, "resolves_to", NULL)),
                            c ? "" : " (no manifest cached: run abdeploy check-update)",
                            c && c->pin_conflict ? "; UPDATE REFUSED: the channel changed it" : "");
  else
    g_string_append (out, "Pin: none\n");
  if (c && c->installed_deprecated)
    g_string_append_printf (out, "DEPRECATED: the installed %s is deprecated by the publisher: %s\n",
                            c->installed_version, c->installed_deprecated);
  if (c && c->offered_version)
    g_string_append_printf (out, "Update offered: %s%s (manifest serial %" G_GUINT64_FORMAT ")\n",
                            c->offered_version, c->offered_security ? " SECURITY UPDATE" : "",
                            c->serial);
  return TRUE;
}

char *
ab_status_to_text (AbSysroot *sysroot, GError **error)
{
  g_auto(AbSlotsView) v = { 0 };
  sysroot->tolerate_damage = TRUE;
  if (!ab_sysroot_load_view (sysroot, &v, error))
    return NULL;
  g_autoptr(GString) out = g_string_new (NULL);
  g_string_append_printf (out, "OS: %s   bootloader: %s   booted: %s   primary: %s\n",
                          sysroot->os, ab_bootloader_name (sysroot->bootloader),
                          sysroot->booted == AB_SLOT_NONE ? "none (offline)" : ab_slot_name (sysroot->booted),
                          or_dash (ab_slot_name (v.ptr.primary)));
  append_origin_text (sysroot, out);
  append_next_boot_text (sysroot, &v, out);
  g_string_append_printf (out, "%-6s %-7s %-12s %-14s %-6s %s\n", "SLOT", "STATE", "VERSION",
                          "COMMIT", "TRIES", "DEPLOYED");
  for (int s = 0; s < AB_N_SLOTS; s++)
    {
      const AbSlotRecord *rec = v.rec[s];
      AbSlotState state = ab_slot_state_derive (rec, &v.ptr, (AbSlot) s);
      g_autofree char *mark = g_strdup_printf ("%s%s%s", ab_slot_name ((AbSlot) s),
                                               sysroot->booted == (AbSlot) s ? "*" : "",
                                               v.ptr.primary == (AbSlot) s ? ">" : "");
      g_autofree char *commit = rec ? g_strndup (rec->commit, 12) : NULL;
      g_autofree char *tries = state == AB_SLOT_STATE_TRIAL
                                   ? g_strdup_printf ("%d", v.ptr.tries[s]) : NULL;
      g_string_append_printf (out, "%-6s %-7s %-12s %-14s %-6s %s\n", mark,
                              ab_slot_state_name (state), or_dash (rec ? rec->version : NULL),
                              or_dash (commit), or_dash (tries),
                              or_dash (rec ? rec->deployed_at : NULL));
    }
  g_string_append (out, "(* booted, > primary: boots next)\n");
  if (!append_health_text (sysroot, out, error) || !append_release_text (sysroot, out, error))
    return NULL;
  if (sysroot->restore_pending)
    g_string_append_printf (out, "Restore pending: %s/abdeploy/restore.pending (a restore was "
                            "interrupted; the next command that writes completes it)\n",
                            sysroot->path);
  return g_string_free (g_steal_pointer (&out), FALSE);
}
