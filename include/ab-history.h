/* History of what happened to the sysroot (deploys, activations, verdicts,
 * rollbacks, operator marks), newest last on disk, at most
 * AB_HISTORY_MAX_EVENTS events, in SYSROOT/abdeploy/state/history.json.
 * The last rollback also lives in state/last-rollback.json.
 * Both are rewritten whole with tmp+fsync+rename. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>
#include "ab-json.h"
#include "ab-events.h"

#define AB_HISTORY_MAX_EVENTS 1000

#define AB_HISTORY_ERROR (ab_history_error_quark ())
/* The error domain of ab-history (the codes of the enum below). */
GQuark ab_history_error_quark (void);

typedef enum
{
  AB_HISTORY_ERROR_FORMAT,
} AbHistoryError;

/* Starts an event object of TYPE with "type" and "at" set. */
JsonBuilder *ab_history_event_begin (const char *type);
/* Ends the builder's object and appends it. A damaged history.json is
 * kept as history.json.damaged and a new history starts (with a warning
 * to EVENTS, the sysroot's sink: ab_format_warn()). */
/* FORMAT: the state format the sysroot writes (AbSysroot.state_format). */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_history_append (int state_dfd, gint64 format, AbEventSink *events,
                            JsonBuilder *event, GError **error);
/* Ends EVENT and writes state/NAME = TEXT and the history with EVENT
 * appended, all or nothing under a full disk or a write error (see
 * ab_fs_replace_all_at()); NAME NULL writes the history only. */
gboolean ab_history_append_with (int state_dfd, gint64 format, AbEventSink *events,
                                 JsonBuilder *event, const char *name, const char *text,
                                 GError **error) G_GNUC_WARN_UNUSED_RESULT;
/* Events, newest first; none (with a warning to EVENTS) when history.json
 * is damaged. */
G_GNUC_WARN_UNUSED_RESULT
JsonArray *ab_history_load (int state_dfd, AbEventSink *events, GError **error);

typedef struct
{
  const char *from_slot, *to_slot, *from_version, *to_version, *from_commit, *to_commit;
  const char *reason;
  const char *kind; /* "manual", "health", "fallback" */
} AbRollbackInfo;

/* Strict check of history.json and last-rollback.json: FALSE, with the
 * reason, when either is damaged (the loaders above tolerate damage; a
 * restore must not bring damage in). */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_history_check_readable (int state_dfd, GError **error);

/* Writes state/last-rollback.json and a "rollback" history event. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_history_record_rollback (int state_dfd, gint64 format, AbEventSink *events,
                                     const AbRollbackInfo *info, GError **error);
/* What ab_history_record_rollback() replaces, kept to be put back when the
 * rollback it recorded could not happen (the boot pointer could not be
 * written): a failed command then leaves the state as it was. */
typedef struct
{
  char *last, *history; /* NULL: the file did not exist */
  gsize last_len, history_len;
} AbHistoryKept;
/* Reads history.json and last-rollback.json as they are, for
 * ab_history_put_back(). */
gboolean ab_history_keep (int state_dfd, AbHistoryKept *out, GError **error) G_GNUC_WARN_UNUSED_RESULT;
/* Best effort: the files as they were (a missing one removed again). */
void ab_history_put_back (int state_dfd, const AbHistoryKept *kept);
/* Frees what kept holds and resets it; safe to call again. */
void ab_history_kept_clear (AbHistoryKept *kept);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (AbHistoryKept, ab_history_kept_clear)

/* The last rollback object, or NULL (and TRUE) when there was none or
 * last-rollback.json is damaged (then with a warning to EVENTS). */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_history_load_last_rollback (int state_dfd, AbEventSink *events, JsonNode **out,
                                        GError **error);

