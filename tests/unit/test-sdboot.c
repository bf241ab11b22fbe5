/* The entry names of the systemd-boot backend against systemd's Automatic
 * Boot Assessment (docs/AUTOMATIC_BOOT_ASSESSMENT.md of systemd): the
 * renames systemd-boot and systemd-bless-boot make are modelled here from
 * that text and from their sources (boot.c config_entry_parse_tries() and
 * config_entry_compare(), bless-boot.c make_good()/make_bad()). */
#include "config.h"
#include <string.h>
#include "bootloaders/ab-sdboot.h"

static AbSdbootName
parse (const char *name)
{
  AbSdbootName n;
  if (!ab_sdboot_name_parse (name, &n))
    g_error ("%s does not parse", name);
  return n;
}

static char *
format (const AbSdbootName *n)
{
  return ab_sdboot_name_format (n);
}

/* What systemd-boot does before it boots a counted entry: "+LEFT-DONE"
 * becomes "+(LEFT-1, not below 0)-(DONE+1)". */
static char *
sd_boot_counts (const char *name)
{
  AbSdbootName n = parse (name);
  g_assert_true (n.counted);
  n.left = n.left > 0 ? n.left - 1 : 0;
  n.done++;
  n.has_done = TRUE;
  return format (&n);
}

/* systemd-bless-boot: good drops the counter; bad is "+0-DONE", or "+0"
 * when DONE is 0. */
static char *
bless (const char *name, gboolean good)
{
  AbSdbootName n = parse (name);
  n.counted = !good;
  n.left = 0;
  n.has_done = !good && n.done > 0;
  return format (&n);
}

static void
assert_state (const char *name, gboolean primary, AbBootState state, int tries)
{
  AbSdbootName n = parse (name);
  AbBootState got;
  int got_tries;
  ab_sdboot_name_state (&n, primary, &got, &got_tries);
  if (got != state || got_tries != tries)
    g_error ("%s (%s): %s %d, expected %s %d", name, primary ? "primary" : "other",
             ab_boot_state_name (got), got_tries, ab_boot_state_name (state), tries);
}

static void
test_parse_format (void)
{
  const char *good[] = { "abdeploy-0-a.staged", "abdeploy-7-b.conf", "abdeploy-7-b+3.conf",
                         "abdeploy-12-a+2-1.conf", "abdeploy-3-b+0.conf", "abdeploy-3-b+0-0.conf",
                         "abdeploy-999999999-a+0-3.conf" };
  for (guint i = 0; i < G_N_ELEMENTS (good); i++)
    {
      AbSdbootName n = parse (good[i]);
      g_autofree char *back = format (&n);
      g_assert_cmpstr (back, ==, good[i]);
    }
  const char *bad[] = { "abdeploy-a.conf", "abdeploy-01-a.conf", "abdeploy-1-c.conf",
                        "abdeploy-1-a+.conf", "abdeploy-1-a+3-.conf", "abdeploy-1-a+3.conf.x",
                        "abdeploy-1-a.staged.conf", "abdeploy-1-a+1+2.conf", "abdeploy-1-ab.conf",
                        "abdeploy-1000000000-a.conf", "abdeploy-1-a+-1.conf", "abdeploy--1-a.conf",
                        "abdeploy-1-a.CONF", "abdeploy-1-a+3.staged", "other-1-a.conf" };
  AbSdbootName n;
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    if (ab_sdboot_name_parse (bad[i], &n))
      g_error ("%s parsed", bad[i]);
}

/* The walkthrough of the Automatic Boot Assessment text: +3 -> +2-1 ->
 * +1-2 -> +0-3, then STOP (systemd-boot counts a used-up entry no lower).
 * Each of these reads as a trial of the primary with that many tries left:
 * the boot that sees +0-3 is the last trial, not a bad slot. */
static void
test_countdown_is_a_trial (void)
{
  AbSdbootName staged = parse ("abdeploy-0-b.staged");
  AbSdbootName fresh = ab_sdboot_name_for_state (&staged, AB_BOOT_STATE_TRIAL, 3, TRUE);
  fresh.gen = 7;
  g_autofree char *name = format (&fresh);
  g_assert_cmpstr (name, ==, "abdeploy-7-b+3.conf");
  assert_state (name, TRUE, AB_BOOT_STATE_TRIAL, 3);
  const char *series[] = { "abdeploy-7-b+2-1.conf", "abdeploy-7-b+1-2.conf",
                           "abdeploy-7-b+0-3.conf", "abdeploy-7-b+0-4.conf" };
  char *cur = g_strdup (name);
  for (guint i = 0; i < G_N_ELEMENTS (series); i++)
    {
      char *next = sd_boot_counts (cur);
      g_assert_cmpstr (next, ==, series[i]);
      assert_state (next, TRUE, AB_BOOT_STATE_TRIAL, i < 2 ? 2 - (int) i : 0);
      /* once the other slot is primary (the fallback is recorded), it is bad */
      assert_state (next, FALSE, i < 2 ? AB_BOOT_STATE_TRIAL : AB_BOOT_STATE_BAD,
                    i < 2 ? 2 - (int) i : 0);
      g_free (cur);
      cur = next;
    }
  g_free (cur);
}

/* abdeploy's verdicts give exactly the names systemd-bless-boot gives, so
 * either may run first and the other finds its work done. */
static void
test_verdicts_match_bless_boot (void)
{
  const char *booted[] = { "abdeploy-7-b+2-1.conf", "abdeploy-7-b+1-2.conf",
                           "abdeploy-7-b+0-3.conf" };
  for (guint i = 0; i < G_N_ELEMENTS (booted); i++)
    {
      AbSdbootName cur = parse (booted[i]);
      AbSdbootName good = ab_sdboot_name_for_state (&cur, AB_BOOT_STATE_GOOD, 0, TRUE);
      g_autofree char *ours_good = format (&good);
      g_autofree char *theirs_good = bless (booted[i], TRUE);
      g_assert_cmpstr (ours_good, ==, theirs_good);
      g_assert_cmpstr (ours_good, ==, "abdeploy-7-b.conf");
      assert_state (ours_good, TRUE, AB_BOOT_STATE_GOOD, 0);
      /* mark-bad hands the primary over when the other slot can boot */
      AbSdbootName bad = ab_sdboot_name_for_state (&cur, AB_BOOT_STATE_BAD, 0, FALSE);
      g_autofree char *ours_bad = format (&bad);
      g_autofree char *theirs_bad = bless (booted[i], FALSE);
      g_assert_cmpstr (ours_bad, ==, theirs_bad);
      assert_state (ours_bad, FALSE, AB_BOOT_STATE_BAD, 0);
    }
  /* a never booted trial: bless-boot's "+0" */
  AbSdbootName fresh = parse ("abdeploy-7-b+3.conf");
  AbSdbootName bad = ab_sdboot_name_for_state (&fresh, AB_BOOT_STATE_BAD, 0, FALSE);
  g_autofree char *name = format (&bad);
  g_assert_cmpstr (name, ==, "abdeploy-7-b+0.conf");
  /* a bad primary (nothing else can boot) is "+0-0", which reads bad */
  AbSdbootName bad_primary = ab_sdboot_name_for_state (&fresh, AB_BOOT_STATE_BAD, 0, TRUE);
  g_autofree char *primary_name = format (&bad_primary);
  g_assert_cmpstr (primary_name, ==, "abdeploy-7-b+0-0.conf");
  assert_state (primary_name, TRUE, AB_BOOT_STATE_BAD, 0);
  /* the good name stays good; a trial with the same tries keeps its counter */
  AbSdbootName cur = parse ("abdeploy-7-b+1-2.conf");
  AbSdbootName same = ab_sdboot_name_for_state (&cur, AB_BOOT_STATE_TRIAL, 1, TRUE);
  g_autofree char *same_name = format (&same);
  g_assert_cmpstr (same_name, ==, "abdeploy-7-b+1-2.conf");
  assert_state ("abdeploy-7-b.staged", TRUE, AB_BOOT_STATE_NONE, 0);
}

/* The menu order of systemd-boot (config_entry_compare()) on abdeploy's
 * names: used-up entries last, then the higher generation first. */
static void
test_menu_order (void)
{
  const char *sorted[] = { "abdeploy-8-a.conf", "abdeploy-7-b+2-1.conf", "abdeploy-7-a.conf",
                           "abdeploy-3-b+1.conf", "abdeploy-9-b+0-3.conf", "abdeploy-2-a+0.conf",
                           "abdeploy-10-b.staged" };
  for (guint i = 0; i < G_N_ELEMENTS (sorted); i++)
    for (guint j = 0; j < G_N_ELEMENTS (sorted); j++)
      {
        AbSdbootName a = parse (sorted[i]), b = parse (sorted[j]);
        int c = ab_sdboot_name_compare (&a, &b);
        if ((i < j && c >= 0) || (i > j && c <= 0) || (i == j && c != 0))
          g_error ("%s vs %s: %d", sorted[i], sorted[j], c);
      }
  /* the same slot twice (a rename cut short): more tries left first */
  AbSdbootName x = parse ("abdeploy-7-b+3.conf"), y = parse ("abdeploy-7-b+2-1.conf");
  g_assert_cmpint (ab_sdboot_name_compare (&x, &y), <, 0);
}

/* For every pointer the engine may write, the entry systemd-boot boots by
 * default is the slot of ab_boot_pointer_next_boot() whenever a slot can
 * boot: the primary is never passed over for a slot without tries. And
 * each name reads back as the state it was written for. */
static void
test_default_entry_is_next_boot (void)
{
  const AbBootState states[] = { AB_BOOT_STATE_NONE, AB_BOOT_STATE_GOOD, AB_BOOT_STATE_TRIAL,
                                 AB_BOOT_STATE_BAD };
  for (guint sa = 0; sa < G_N_ELEMENTS (states); sa++)
    for (guint sb = 0; sb < G_N_ELEMENTS (states); sb++)
      for (int tries = 0; tries <= 2; tries++)
        for (int p = AB_SLOT_A; p <= AB_SLOT_B; p++)
          {
            AbBootPointer ptr;
            ab_boot_pointer_init (&ptr);
            ptr.primary = (AbSlot) p;
            ptr.state[AB_SLOT_A] = states[sa];
            ptr.state[AB_SLOT_B] = states[sb];
            ptr.tries[AB_SLOT_A] = states[sa] == AB_BOOT_STATE_TRIAL ? tries : 0;
            ptr.tries[AB_SLOT_B] = states[sb] == AB_BOOT_STATE_TRIAL ? tries : 0;
            /* a trial without tries on the slot that is not the primary is
             * bad to every bootloader, and reads as bad here */
            AbSlot o = ab_slot_other ((AbSlot) p);
            if (ptr.state[o] == AB_BOOT_STATE_TRIAL && ptr.tries[o] == 0)
              continue;
            AbSdbootName n[AB_N_SLOTS];
            for (int s = 0; s < AB_N_SLOTS; s++)
              {
                AbSdbootName cur = { .gen = s == p ? 5 : 4, .slot = (AbSlot) s, .staged = TRUE };
                n[s] = ab_sdboot_name_for_state (&cur, ptr.state[s], ptr.tries[s], s == p);
                AbBootState back;
                int back_tries;
                ab_sdboot_name_state (&n[s], s == p, &back, &back_tries);
                g_assert_cmpint (back, ==, ptr.state[s]);
                g_assert_cmpint (back_tries, ==, ptr.tries[s]);
              }
            AbSlot next = ab_boot_pointer_next_boot (&ptr);
            if (!ab_boot_pointer_bootable (&ptr, next))
              continue;
            AbSlot first = ab_sdboot_name_compare (&n[AB_SLOT_A], &n[AB_SLOT_B]) < 0 ? AB_SLOT_A
                                                                                     : AB_SLOT_B;
            g_assert_cmpint (first, ==, next);
          }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/sdboot/parse-format", test_parse_format);
  g_test_add_func ("/sdboot/countdown-is-a-trial", test_countdown_is_a_trial);
  g_test_add_func ("/sdboot/verdicts-match-bless-boot", test_verdicts_match_bless_boot);
  g_test_add_func ("/sdboot/menu-order", test_menu_order);
  g_test_add_func ("/sdboot/default-entry-is-next-boot", test_default_entry_is_next_boot);
  return g_test_run ();
}
