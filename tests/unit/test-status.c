#include "config.h"
#include "ab-status.h"

static void
test_derive (void)
{
  AbBootPointer p;
  ab_boot_pointer_init (&p);
  AbSlotRecord rec = { .commit = (char *) "c" };
  g_assert_cmpint (ab_slot_state_derive (NULL, &p, AB_SLOT_A), ==, AB_SLOT_STATE_EMPTY);
  g_assert_cmpint (ab_slot_state_derive (&rec, &p, AB_SLOT_A), ==, AB_SLOT_STATE_STAGED);
  p.state[AB_SLOT_A] = AB_BOOT_STATE_TRIAL;
  g_assert_cmpint (ab_slot_state_derive (&rec, &p, AB_SLOT_A), ==, AB_SLOT_STATE_TRIAL);
  p.state[AB_SLOT_A] = AB_BOOT_STATE_BAD;
  g_assert_cmpint (ab_slot_state_derive (&rec, &p, AB_SLOT_A), ==, AB_SLOT_STATE_BAD);
  /* A pointer state without a record is still an empty slot. */
  g_assert_cmpint (ab_slot_state_derive (NULL, &p, AB_SLOT_A), ==, AB_SLOT_STATE_EMPTY);
  g_assert_cmpstr (ab_slot_state_name (AB_SLOT_STATE_GOOD), ==, "good");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/status/derive", test_derive);
  return g_test_run ();
}
