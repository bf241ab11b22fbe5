/* Slot records: what each slot holds. SYSROOT/abdeploy/state/slot-X.json.
 *
 * Invariant: a record exists only for a slot whose tree, kernel and ref are
 * complete and synced; it is written last when staging and removed first
 * before a slot is rebuilt. A missing record means the slot is empty. */
#pragma once

#include <glib.h>
#include "ab-util.h"

#define AB_SLOTS_ERROR (ab_slots_error_quark ())
/* The error domain of ab-slots (the codes of the enum below). */
GQuark ab_slots_error_quark (void);

typedef enum
{
  AB_SLOTS_ERROR_FAILED,
  AB_SLOTS_ERROR_FORMAT,
} AbSlotsError;

typedef struct
{
  char *commit;
  char *version;
  char *deployed_at;
  char *activated_at; /* NULL until the slot was first made primary */
  char *origin;       /* where it was pulled from, or NULL */
  char *ref;          /* the ref asked for, or NULL for a bare commit */
} AbSlotRecord;

/* Frees REC and everything it owns; NULL is allowed. */
void ab_slot_record_free (AbSlotRecord *rec);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AbSlotRecord, ab_slot_record_free)

/* REC as a state file of FORMAT (the state format the sysroot writes). */
char *ab_slot_record_to_json (const AbSlotRecord *rec, gint64 format);
/* Name of SLOT's record in the state directory: slot-X.json. */
char *ab_slot_record_file (AbSlot slot);
/* Parses the text of slot-X.json; NULL with AB_SLOTS_ERROR naming the
 * problem. */
G_GNUC_WARN_UNUSED_RESULT
AbSlotRecord *ab_slot_record_from_json (const char *json, GError **error);

/* *out is NULL (and TRUE returned) when the slot is empty. A record of a
 * format this abdeploy does not read is refused (AB_FORMAT_ERROR). */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_slot_record_load (int state_dfd, AbSlot slot, AbSlotRecord **out, GError **error);
/* Writes SLOT's record atomically (ab_fs_replace_at()). */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_slot_record_save (int state_dfd, gint64 format, AbSlot slot, const AbSlotRecord *rec,
                              GError **error);
/* Removes SLOT's record durably (missing is fine). */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_slot_record_remove (int state_dfd, AbSlot slot, GError **error);
