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
/* The error domain of ab-health (the codes of the enum below). */
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

/* What the verdict did to the boot pointer (verdict.json "action"). */
typedef enum
{
  AB_HEALTH_VERDICT_NONE,        /* nothing: not a trial boot, or on-red=none */
  AB_HEALTH_VERDICT_MARKED_GOOD, /* the trial slot is good now */
  AB_HEALTH_VERDICT_REBOOT,      /* red, tries left: boot the trial slot again */
  AB_HEALTH_VERDICT_ROLLBACK,    /* red: the pointer went back to the other slot */
} AbHealthVerdict;

/* "none", "marked-good", "reboot", "rollback". */
const char *ab_health_verdict_name (AbHealthVerdict verdict);

/* What the front end must do once ab_health_check() returns: the engine
 * never controls processes. */
typedef enum
{
  AB_HEALTH_ACTION_NONE,
  AB_HEALTH_ACTION_REBOOT, /* run reboot_command now */
} AbHealthAction;

/* Why a verdict that wants a reboot (reboot, rollback) does not get one. */
typedef enum
{
  AB_HEALTH_HOLD_NONE,
  AB_HEALTH_HOLD_NO_REBOOT,   /* the caller asked for no reboot (--no-reboot) */
  AB_HEALTH_HOLD_NOT_LIVE,    /* the sysroot is not the running system's root (--sysroot is not /) */
} AbHealthHold;

typedef struct
{
  gboolean green;
  AbHealthVerdict verdict;
  AbHealthAction action;
  AbHealthHold held;    /* AB_HEALTH_HOLD_NONE unless the verdict wanted a reboot that is held */
  char *reboot_command; /* AB_HEALTH_ACTION_REBOOT: [health] reboot-command, else
                         * "systemctl reboot" under systemd, else "reboot" */
  JsonNode *report;     /* the verdict as written to verdict.json */
  JsonNode *rollback;   /* the rollback this run recorded (last-rollback.json), or NULL */
} AbHealthOutcome;

/* Frees what O holds and resets it; safe to call again. */
void ab_health_outcome_clear (AbHealthOutcome *o);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (AbHealthOutcome, ab_health_outcome_clear)

/* Runs the boot-time state machine of the booted slot: fallback detection,
 * the hooks, the verdict (pointer, verdict.json, history, MOTD). Messages
 * (a rollback line) and warnings go to SYSROOT's event sink. A reboot the
 * verdict wants is returned in OUT (action, reboot_command), never done
 * here. On error the pointer and the records are those of the last
 * completed step (see the invariants above). */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_health_check (AbSysroot *sysroot, const AbHealthOptions *opts,
                          AbHealthOutcome *out, GError **error);

/* The outcome as health-check --json prints it (abdeploy-hooks(7)): the
 * verdict record without "type" and "format", then "reboot" ({wanted,
 * held, command}) and "rollback" (the one this run recorded, or null). */
JsonNode *ab_health_outcome_to_json (const AbHealthOutcome *o);

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
