/* Versions of abdeploy's on-disk formats, and the one way to refuse them.
 *
 * Four kinds carry a version:
 *   layout  SYSROOT/abdeploy/version (one line, the layout version);
 *   state   every JSON file in SYSROOT/abdeploy/state/ (member "format");
 *   config  abdeploy.conf ([abdeploy] format; a file without it is format 1,
 *           the format that had no such key);
 *   backup  archives of abdeploy backup (member "format").
 *
 * This abdeploy writes the current version of each kind and reads the
 * current and the previous one (N-1). Anything else (a newer version, an
 * unknown one, a state file without a "format" member) is refused with
 * AB_FORMAT_ERROR and a message that names both versions: it is never
 * guessed. See abdeploy-layout(7). */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

#include "ab-events.h"

#define AB_FORMAT_ERROR (ab_format_error_quark ())
/* The error domain of ab-format (the codes of the enum below). */
GQuark ab_format_error_quark (void);

typedef enum
{
  AB_FORMAT_ERROR_UNKNOWN,  /* a version this abdeploy does not read */
  AB_FORMAT_ERROR_MISSING,  /* no version where one must be */
  AB_FORMAT_ERROR_INVALID,  /* not a JSON object, not a number, ... */
} AbFormatError;

typedef enum
{
  AB_FORMAT_LAYOUT,
  AB_FORMAT_STATE,
  AB_FORMAT_CONFIG,
  AB_FORMAT_BACKUP,
} AbFormatKind;

/* Current versions, written by this abdeploy. */
#define AB_LAYOUT_VERSION 2
#define AB_STATE_FORMAT 2
#define AB_CONFIG_FORMAT 2
#define AB_BACKUP_FORMAT 2
/* The previous layout, the one a migration starts from. */
#define AB_LAYOUT_PREVIOUS 1

/* Where the migration keeps the files of layout V (relative to SYSROOT). */
#define AB_FORMAT_COPY_DIR_FMT "abdeploy/migration/layout-%d"

/* The format version abdeploy writes for KIND. */
gint64 ab_format_current (AbFormatKind kind);
/* The oldest format version of KIND that abdeploy still reads. */
gint64 ab_format_oldest (AbFormatKind kind);
/* Whether VERSION of KIND is between ab_format_oldest() and
 * ab_format_current(). */
gboolean ab_format_is_readable (AbFormatKind kind, gint64 version);

/* The layout version in SYSROOT/abdeploy/version, checked: *out_version is
 * 0 (and TRUE returned) when the file does not exist. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_format_read_layout_at (int sysroot_dfd, gint64 *out_version, GError **error);

/* The state-file format that goes with a layout version: the format every
 * state file of a sysroot of that layout is written in (AbSysroot.state_format). */
gint64 ab_format_state_for_layout (gint64 layout);

/* Refuses WHAT (a path relative to the sysroot, or a file name as the user
 * gave it) whose version FOUND (as found: "3", "abc") this abdeploy does not
 * read. The message names FOUND, this abdeploy's version and the versions
 * it reads, and what to do. */
void ab_format_set_unknown (GError **error, AbFormatKind kind, const char *what, const char *found);

/* TRUE when VERSION of KIND is readable; otherwise the refusal above. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_format_check (AbFormatKind kind, const char *what, gint64 version, GError **error);

/* The "format" member of state object O (of the file WHAT), checked: a
 * missing or non-integer member is refused, never guessed. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_format_check_state (const char *what, JsonObject *o, gint64 *out_format,
                                GError **error);

/* Reads the state file STATE_DFD/NAME (shown as abdeploy/state/NAME): *out
 * is NULL (and TRUE returned) when the file is missing; otherwise it must
 * be a JSON object of a readable format. OUT_FORMAT may be NULL. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_format_read_state_at (int state_dfd, const char *name, JsonNode **out,
                                  gint64 *out_format, GError **error);

/* Damage: a file that exists but holds nothing any abdeploy writes (not
 * JSON, not UTF-8, not an object, no "format"). Unlike a format this
 * abdeploy does not read (a newer abdeploy wrote it) or an I/O error, a
 * reader may ignore damage where that is safe (see
 * ab_format_read_state_tolerant_at()). */
gboolean ab_format_error_is_damage (const GError *error);

/* Reports a tolerated problem (a damaged state file read as missing: what
 * a command ignored and why) to EVENTS, the open sysroot's sink, as a
 * WARNING event with tolerated set (NULL: dropped). No process-wide or
 * per-thread state: each sysroot's warnings reach its own sink. */
void ab_format_warn (AbEventSink *events, const char *format, ...) G_GNUC_PRINTF (2, 3);

/* ab_format_read_state_at(), except that a damaged file is reported as a
 * warning, "abdeploy/state/NAME is damaged (WHY); CONSEQUENCE", and read
 * as missing (*out NULL, TRUE returned). A format this abdeploy does not
 * read and I/O errors are still errors. For files that only inform
 * (verdict, history, last rollback) and for commands that must work on a
 * damaged sysroot (status, rollback, mark-good, mark-bad, health-check).
 * The warning goes to EVENTS (ab_format_warn()). */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_format_read_state_tolerant_at (int state_dfd, const char *name,
                                           const char *consequence, AbEventSink *events,
                                           JsonNode **out, GError **error);

