/* The status model: what status prints, built from the slot records and the
 * boot pointer. Reads only; never takes the lock. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>
#include "ab-sysroot.h"

/* Slot states (AbSlotState) are derived by the engine: ab-sysroot.h. */

/* The status of the sysroot as status --json prints it. */
G_GNUC_WARN_UNUSED_RESULT
JsonNode *ab_status_to_json (AbSysroot *sysroot, GError **error);
/* The status of the sysroot as status prints it. */
G_GNUC_WARN_UNUSED_RESULT
char *ab_status_to_text (AbSysroot *sysroot, GError **error);
