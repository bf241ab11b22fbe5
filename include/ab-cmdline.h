/* The booted slot, from abdeploy.slot= on the kernel command line
 * (/proc/cmdline, or the file named by $ABDEPLOY_CMDLINE). */
#pragma once

#include <glib.h>
#include "ab-util.h"

/* AB_SLOT_NONE when the parameter is absent (an offline sysroot). */
AbSlot ab_cmdline_booted_slot (GError **error);
/* The value of KEY= in a command line, or NULL. */
char *ab_cmdline_get (const char *cmdline, const char *key);
