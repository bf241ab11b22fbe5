/* Boot pointers and backend calls for the bootloader unit tests, each
 * asserting success. */
#pragma once

#include <glib.h>
#include "bootloaders/ab-bootloader.h"
#include "ab-test-fixture.h"

static inline AbBootPointer
pointer (AbSlot primary, AbBootState a, int a_tries, AbBootState b, int b_tries)
{
  AbBootPointer p;
  ab_boot_pointer_init (&p);
  p.primary = primary;
  p.state[AB_SLOT_A] = a;
  p.tries[AB_SLOT_A] = a_tries;
  p.state[AB_SLOT_B] = b;
  p.tries[AB_SLOT_B] = b_tries;
  return p;
}

static inline AbBootloader *
new_backend (TmpDir *t, const char *name, const AbConfig *cfg)
{
  g_autoptr(GError) error = NULL;
  AbBootloader *bl = ab_bootloader_new (name, t->dfd, t->path, cfg, &error);
  g_assert_no_error (error);
  return bl;
}

static inline void
assert_load (AbBootloader *bl, const AbBootPointer *expected)
{
  g_autoptr(GError) error = NULL;
  AbBootPointer back;
  g_assert_true (ab_bootloader_load (bl, &back, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (expected, sizeof *expected, &back, sizeof back);
}

static inline void
setup_ok (AbBootloader *bl)
{
  g_autoptr(GError) error = NULL;
  g_assert_true (ab_bootloader_setup (bl, &error));
  g_assert_no_error (error);
}

static inline void
save_ok (AbBootloader *bl, const AbBootPointer *p)
{
  g_autoptr(GError) error = NULL;
  g_assert_true (ab_bootloader_save (bl, p, &error));
  g_assert_no_error (error);
}
