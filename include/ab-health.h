/* The boot-time state machine (health-check) and operator marks.
 *
 * Invariants:
 * - A rollback is recorded (state/last-rollback.json, history) before the
 *   pointer flips, so a crash between the two still leaves the record; the
 *   next boot's fallback detection then finds the same rollback again.
 * - The booted slot is never marked bad by a green verdict, and a slot in
 *   trial becomes good only after every required hook passed. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>
#include "ab-sysroot.h"

#define AB_HEALTH_ERROR (ab_health_error_quark ())
GQuark ab_health_error_quark (void);

typedef enum
{
  AB_HEALTH_ERROR_FAILED,
  AB_HEALTH_ERROR_NOT_BOOTED,
  AB_HEALTH_ERROR_USAGE,
  AB_HEALTH_ERROR_NOTHING_TO_DO,
} AbHealthError;

typedef struct
{
  gboolean no_reboot;
} AbHealthOptions;

typedef struct
{
  gboolean green;
  char *action;      /* "marked-good", "none", "reboot", "rollback" */
  gboolean rebooting; /* the reboot command was started */
} AbHealthOutcome;

void ab_health_outcome_clear (AbHealthOutcome *o);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (AbHealthOutcome, ab_health_outcome_clear)

G_GNUC_WARN_UNUSED_RESULT
gboolean ab_health_check (AbSysroot *sysroot, const AbHealthOptions *opts,
                          AbHealthOutcome *out, GError **error);

/* WHICH: "booted", "other", "a" or "b". */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_health_mark (AbSysroot *sysroot, const char *which, gboolean good, AbSlot *out_slot,
                         GError **error);

/* Whether the booted slot has a green verdict: its pointer state is good,
 * or it is neither on trial nor bad and the last verdict recorded
 * (verdict.json) is green for this slot and its commit. *out_why (when not
 * green) names the state in words, for error messages. FALSE on an error
 * reading the verdict; an offline sysroot (no booted slot) is never asked. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_health_booted_is_green (AbSysroot *sysroot, const AbSlotsView *v, gboolean *out_green,
                                    char **out_why, GError **error);

/* The last verdict as shown by status: {verdict, failed_hooks, at}. */
G_GNUC_WARN_UNUSED_RESULT
JsonNode *ab_health_status_json (AbSysroot *sysroot, GError **error);
