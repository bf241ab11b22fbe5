/* The A/B invariant (issue 11, point 1), ab_deploy_check_invariant(): the
 * decision alone, on a booted slot, a pointer, records and verdict.json. */
#include "config.h"
#include <string.h>
#include "ab-deploy.h"
#include "cli/ab-exitcode.h"
#include "ab-test-fixture.h"

typedef struct
{
  AbSlot booted;
  AbBootState a, b;    /* pointer states; b is booted unless said otherwise */
  gboolean a_empty;    /* no record for slot a */
  const char *verdict; /* verdict.json, or NULL */
  const char *refused; /* NULL: allowed; else a part of the message */
} Case;

#define GREEN_B "{\"format\":2,\"type\":\"verdict\",\"slot\":\"b\",\"commit\":\"cb\",\"verdict\":\"green\"}"
#define GREEN_B_OTHER "{\"format\":2,\"type\":\"verdict\",\"slot\":\"b\",\"commit\":\"old\",\"verdict\":\"green\"}"
#define RED_B "{\"format\":2,\"type\":\"verdict\",\"slot\":\"b\",\"commit\":\"cb\",\"verdict\":\"red\"}"

static const Case cases[] = {
  /* offline: nothing runs that could fail its trial */
  { AB_SLOT_NONE, AB_BOOT_STATE_GOOD, AB_BOOT_STATE_TRIAL, FALSE, NULL, NULL },
  { AB_SLOT_B, AB_BOOT_STATE_GOOD, AB_BOOT_STATE_GOOD, FALSE, NULL, NULL },
  { AB_SLOT_B, AB_BOOT_STATE_GOOD, AB_BOOT_STATE_TRIAL, FALSE, NULL, "is on trial" },
  { AB_SLOT_B, AB_BOOT_STATE_GOOD, AB_BOOT_STATE_TRIAL, FALSE, GREEN_B, "is on trial" },
  { AB_SLOT_B, AB_BOOT_STATE_GOOD, AB_BOOT_STATE_BAD, FALSE, NULL, "is marked bad" },
  { AB_SLOT_B, AB_BOOT_STATE_GOOD, AB_BOOT_STATE_NONE, FALSE, NULL, "is unverified" },
  { AB_SLOT_B, AB_BOOT_STATE_GOOD, AB_BOOT_STATE_NONE, FALSE, RED_B, "is unverified" },
  { AB_SLOT_B, AB_BOOT_STATE_GOOD, AB_BOOT_STATE_NONE, FALSE, GREEN_B_OTHER, "is unverified" },
  { AB_SLOT_B, AB_BOOT_STATE_GOOD, AB_BOOT_STATE_NONE, FALSE, GREEN_B, NULL },
  /* the target is not a good slot: nothing good is lost */
  { AB_SLOT_B, AB_BOOT_STATE_BAD, AB_BOOT_STATE_TRIAL, FALSE, NULL, NULL },
  { AB_SLOT_B, AB_BOOT_STATE_NONE, AB_BOOT_STATE_TRIAL, FALSE, NULL, NULL },
  { AB_SLOT_B, AB_BOOT_STATE_TRIAL, AB_BOOT_STATE_TRIAL, FALSE, NULL, NULL },
  { AB_SLOT_B, AB_BOOT_STATE_GOOD, AB_BOOT_STATE_TRIAL, TRUE, NULL, NULL },
};

static void
run_case (TmpDir *t, const Case *c)
{
  if (c->verdict)
    write_file_at (t->dfd, "verdict.json", c->verdict);
  else
    (void) unlinkat (t->dfd, "verdict.json", 0);
  AbSysroot sysroot = { .booted = c->booted, .state_dfd = t->dfd, .dfd = -1 };
  AbSlotRecord ra = { .commit = (char *) "ca", .version = (char *) "1.0" };
  AbSlotRecord rb = { .commit = (char *) "cb", .version = (char *) "2.0" };
  AbSlotsView v = { 0 };
  ab_boot_pointer_init (&v.ptr);
  v.ptr.primary = AB_SLOT_B;
  v.ptr.state[AB_SLOT_A] = c->a;
  v.ptr.state[AB_SLOT_B] = c->b;
  v.ptr.tries[AB_SLOT_B] = c->b == AB_BOOT_STATE_TRIAL ? 2 : 0;
  v.rec[AB_SLOT_A] = c->a_empty ? NULL : &ra;
  v.rec[AB_SLOT_B] = &rb;
  g_autoptr(GError) error = NULL;
  gboolean ok = ab_deploy_check_invariant (&sysroot, &v, &error);
  if (c->refused == NULL)
    {
      g_assert_no_error (error);
      g_assert_true (ok);
      return;
    }
  g_assert_false (ok);
  g_assert_error (error, AB_DEPLOY_ERROR, AB_DEPLOY_ERROR_REFUSED);
  g_assert_cmpint (ab_exit_code_for_error (error), ==, 6);
  const char *needles[] = { c->refused, "slot a", "1.0, the last good deployment",
                            "abdeploy mark-good", "health check", NULL };
  for (const char *const *n = needles; *n; n++)
    if (strstr (error->message, *n) == NULL)
      g_error ("\"%s\" not in: %s", *n, error->message);
}

static void
test_invariant_cases (TmpDir *t, gconstpointer data)
{
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_test_message ("case %u", i);
      run_case (t, &cases[i]);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  TMPDIR_TEST ("/deploy/invariant-cases", test_invariant_cases);
  return g_test_run ();
}
