/* The status model: what status prints, built from the slot records and the
 * boot pointer. Reads only; never takes the lock. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>
#include "ab-sysroot.h"

typedef enum
{
  AB_SLOT_STATE_EMPTY,
  AB_SLOT_STATE_STAGED,
  AB_SLOT_STATE_TRIAL,
  AB_SLOT_STATE_GOOD,
  AB_SLOT_STATE_BAD,
} AbSlotState;

const char *ab_slot_state_name (AbSlotState state);
AbSlotState ab_slot_state_derive (const AbSlotRecord *rec, const AbBootPointer *ptr,
                                  AbSlot slot);

G_GNUC_WARN_UNUSED_RESULT
JsonNode *ab_status_to_json (AbSysroot *sysroot, GError **error);
G_GNUC_WARN_UNUSED_RESULT
char *ab_status_to_text (AbSysroot *sysroot, GError **error);
