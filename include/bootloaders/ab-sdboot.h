/* The names of abdeploy's boot entries for systemd-boot (Boot Loader
 * Specification Type #1, in loader/entries/ of the ESP or of XBOOTLDR), and
 * the boot pointer they stand for. See abdeploy-pointer(5), SYSTEMD-BOOT
 * BACKEND.
 *
 *   abdeploy-G-SLOT.conf              good
 *   abdeploy-G-SLOT+LEFT[-DONE].conf  boot counting, as systemd's Automatic
 *                                     Boot Assessment defines it
 *   abdeploy-G-SLOT.staged            none: a file systemd-boot does not read
 *
 * Invariants:
 * - G, the generation (decimal, no leading zero), makes the primary: the
 *   primary is the slot whose entry has the higher G, and G 0 is never
 *   primary. systemd-boot sorts the entries whose tries are not used up
 *   first, then by file name, newest (highest number) first, so the
 *   entry it boots by default is the primary when that can boot, else the
 *   other slot when that can: the decision of every backend.
 * - Only the "+LEFT[-DONE]" part changes when systemd-boot counts a boot
 *   (+3 -> +2-1 -> +1-2 -> +0-3) or systemd-bless-boot blesses one (good:
 *   the counter goes; bad: +0-DONE, +0 when DONE is 0).
 * - LEFT 0 means "bad" for a slot that is not the primary; on the primary
 *   it means "trial, no tries left" (systemd-boot used them up; the boot
 *   in progress may be the last trial), except +0-0, which only abdeploy
 *   writes and which means "bad". */
#pragma once

#include <glib.h>
#include "ab-util.h"
#include "bootloaders/ab-bootloader.h"

#define AB_SDBOOT_PREFIX "abdeploy-"
#define AB_SDBOOT_MAX_NUMBER 999999999u

typedef struct
{
  guint gen;
  AbSlot slot;
  gboolean staged;   /* .staged: state none */
  gboolean counted;  /* +LEFT[-DONE] present */
  gboolean has_done; /* the -DONE part present */
  guint left, done;
} AbSdbootName;

/* Parses a file name of loader/entries; FALSE when it is not one of the
 * three forms above (numbers up to AB_SDBOOT_MAX_NUMBER). */
gboolean ab_sdboot_name_parse (const char *name, AbSdbootName *out);
/* N as a file name of loader/entries (the inverse of ab_sdboot_name_parse()). */
char *ab_sdboot_name_format (const AbSdbootName *n);
/* The pointer state and tries that N stands for, on the entry of the
 * primary slot (PRIMARY) or of the other one. */
void ab_sdboot_name_state (const AbSdbootName *n, gboolean primary, AbBootState *out_state,
                           int *out_tries);
/* The name (with CUR's generation) that stands for STATE and TRIES on the
 * primary's entry (PRIMARY) or the other's, starting from CUR: a counter
 * that already says so is kept; BAD keeps the tries done, as
 * systemd-bless-boot bad does. */
AbSdbootName ab_sdboot_name_for_state (const AbSdbootName *cur, AbBootState state, int tries,
                                       gboolean primary);
/* Negative when A comes before B in systemd-boot's menu order (a .staged
 * name, which it does not read, comes last). */
int ab_sdboot_name_compare (const AbSdbootName *a, const AbSdbootName *b);
