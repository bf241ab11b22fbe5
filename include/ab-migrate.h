/* Migration of a sysroot from the previous layout (1) to the current one
 * (2), in place.
 *
 * ab_migrate_sysroot() runs in every command that writes, right after it
 * took the sysroot lock (ab_sysroot_lock()); read-only commands never call
 * it and read a layout-1 sysroot as it is. On a sysroot of the current
 * layout it only checks that every state file has a readable format, so
 * that a refused file stops the command before it changes anything. On a
 * layout-1 sysroot it
 *   1. reads and converts every state file and the configuration in memory:
 *      any refusal (an unknown format, a file without one) changes nothing;
 *   2. keeps a copy of the layout-1 files (abdeploy/version, abdeploy/state/,
 *      etc/abdeploy/abdeploy.conf, etc/abdeploy/conf.d/) under
 *      abdeploy/migration/layout-1/ at the same relative paths, built in
 *      abdeploy/migration/.layout-1.tmp/, synced, then renamed into place;
 *   3. rewrites each state file with format 2, history.json last with a
 *      "migrate" event;
 *   4. writes [abdeploy] format=2 into etc/abdeploy/abdeploy.conf;
 *   5. writes abdeploy/version = 2, last.
 * Every write is tmp + fsync + rename + fsync of the directory. A crash at
 * any point leaves either a layout-1 sysroot, which the next writer
 * migrates (files already at format 2 are left as they are, and a complete
 * copy is kept once some file is converted), or a complete layout-2 one.
 * Each step has a crash point (migrate:*). */
#pragma once

#include <glib.h>
#include "ab-events.h"

#define AB_MIGRATE_ERROR (ab_migrate_error_quark ())
/* The error domain of ab-migrate (the codes of the enum below). */
GQuark ab_migrate_error_quark (void);

typedef enum
{
  AB_MIGRATE_ERROR_FAILED,
} AbMigrateError;

/* Checks, without changing anything, that every state file of the sysroot
 * has a format this abdeploy reads (a writer on a sysroot whose migration
 * waits). */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_migrate_check_state (int sysroot_dfd, GError **error);

/* The copy of the layout-1 files, relative to the sysroot. */
#define AB_MIGRATE_COPY_DIR "abdeploy/migration/layout-1"

/* The JSON state files of layout 1, in the order a migration converts
 * them (history.json last). NULL-terminated. */
extern const char *const ab_migrate_state_files[];

/* Brings the sysroot open at SYSROOT_DFD (shown as SYSROOT_PATH) from
 * layout *INOUT_LAYOUT to the current one; *INOUT_LAYOUT is updated.
 * OUT_MIGRATED (may be NULL) tells whether it migrated. Reports one note
 * to EVENTS (may be NULL) when it did. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_migrate_sysroot (int sysroot_dfd, const char *sysroot_path, gint64 *inout_layout,
                             gboolean *out_migrated, AbEventSink *events, GError **error);

/* Converts the text of state file NAME (shown as WHAT in errors) to the
 * current format: *out_text is NULL when it already has it. DATA NULL
 * stands for a missing file: only history.json is then made (empty but
 * for the event). With EVENT_REASON set, a history.json converted from the
 * previous format gets a "migrate" event with that reason. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_migrate_state_text (const char *name, const char *what, const char *data,
                                const char *event_reason, char **out_text, GError **error);

/* A file of a kept copy. */
typedef struct
{
  char *rel;     /* relative to the sysroot, e.g. "abdeploy/state/slot-a.json" */
  GBytes *data;
  guint mode;
} AbMigrateFile;

/* A file of a migration: REL, a copy of DATA and MODE. */
AbMigrateFile *ab_migrate_file_new (const char *rel, const void *data, gsize len, guint mode);
/* Frees F and everything it owns; NULL is allowed. */
void ab_migrate_file_free (AbMigrateFile *f);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AbMigrateFile, ab_migrate_file_free)

/* Installs FILES as the kept copy of layout 1 (AB_MIGRATE_COPY_DIR),
 * replacing an older copy: built in a temporary directory, synced, then
 * renamed (or exchanged) into place. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_migrate_keep_copy (int sysroot_dfd, GPtrArray *files, GError **error);

/* The history event text of a migration, for messages and the event. */
char *ab_migrate_reason (void);
