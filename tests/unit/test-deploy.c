/* ab-deploy: the A/B invariant (issue 11, point 1), ab_deploy_check_invariant(),
 * as a decision alone on a booted slot, a pointer, records and verdict.json;
 * and stage, activate and rollback on a real sysroot, with commits
 * published and signed by abdeploy's publisher. */
#include "config.h"
#include <string.h>
#include "ab-deploy.h"
#include "cli/ab-exitcode.h"
#include "ab-history.h"
#include "ab-test-sysroot.h"

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

static void
load_view (SysrootFixture *fx, AbSlotsView *v)
{
  g_autoptr(AbSysroot) s = open_sysroot (fx);
  g_autoptr(GError) error = NULL;
  g_assert_true (ab_sysroot_load_view (s, v, &error));
  g_assert_no_error (error);
}

static AbSlot
activate (SysrootFixture *fx)
{
  g_autoptr(AbSysroot) s = open_sysroot (fx);
  g_autoptr(GError) error = NULL;
  AbSlot slot = AB_SLOT_NONE;
  g_assert_true (ab_deploy_activate (s, 0, &slot, &error));
  g_assert_no_error (error);
  return slot;
}

/* Offline: stage writes the slot that is not primary, activate makes it
 * primary on trial, rollback goes back to the other slot, changing only the
 * primary, and records why. */
static void
test_stage_activate_rollback (SysrootFixture *fx, gconstpointer data)
{
  g_autofree char *c1 = publish_image (fx, "1.0", NULL);
  g_autofree char *c2 = publish_image (fx, "2.0", NULL);
  g_assert_cmpint (stage_commit (fx, c1), ==, AB_SLOT_A);
  {
    g_auto(AbSlotsView) v = { 0 };
    load_view (fx, &v);
    g_assert_nonnull (v.rec[AB_SLOT_A]);
    g_assert_cmpstr (v.rec[AB_SLOT_A]->commit, ==, c1);
    g_assert_cmpstr (v.rec[AB_SLOT_A]->version, ==, "1.0");
    g_assert_null (v.rec[AB_SLOT_A]->activated_at);
    g_assert_null (v.rec[AB_SLOT_B]);
    g_assert_cmpint (v.ptr.primary, ==, AB_SLOT_NONE);
  }
  g_assert_cmpint (activate (fx), ==, AB_SLOT_A);
  g_assert_cmpint (stage_commit (fx, c2), ==, AB_SLOT_B);
  g_assert_cmpint (activate (fx), ==, AB_SLOT_B);
  {
    g_auto(AbSlotsView) v = { 0 };
    load_view (fx, &v);
    g_assert_cmpint (v.ptr.primary, ==, AB_SLOT_B);
    g_assert_cmpint (v.ptr.state[AB_SLOT_B], ==, AB_BOOT_STATE_TRIAL);
    g_assert_cmpint (v.ptr.tries[AB_SLOT_B], >, 0);
    g_assert_nonnull (v.rec[AB_SLOT_B]->activated_at);
  }
  g_autoptr(AbSysroot) s = open_sysroot (fx);
  g_autoptr(GError) error = NULL;
  AbSlot to = AB_SLOT_NONE;
  g_assert_true (ab_deploy_rollback (s, &to, &error));
  g_assert_no_error (error);
  g_assert_cmpint (to, ==, AB_SLOT_A);
  g_auto(AbSlotsView) v = { 0 };
  load_view (fx, &v);
  g_assert_cmpint (v.ptr.primary, ==, AB_SLOT_A);
  /* a rollback is no verdict: both slots never booted stay on trial with
   * their tries, so a second rollback returns to the start (issue 16) */
  g_assert_cmpint (v.ptr.state[AB_SLOT_A], ==, AB_BOOT_STATE_TRIAL);
  g_assert_cmpint (v.ptr.tries[AB_SLOT_A], ==, 3);
  g_assert_cmpint (v.ptr.state[AB_SLOT_B], ==, AB_BOOT_STATE_TRIAL);
  g_assert_cmpint (v.ptr.tries[AB_SLOT_B], ==, 3);
  g_autoptr(JsonNode) last = NULL;
  g_assert_true (ab_history_load_last_rollback (s->state_dfd, s->events, &last, &error));
  JsonObject *o = json_node_get_object (last);
  g_assert_cmpstr (json_object_get_string_member (o, "kind"), ==, "manual");
  g_assert_cmpstr (json_object_get_string_member (o, "from_version"), ==, "2.0");
  g_assert_cmpstr (json_object_get_string_member (o, "to_commit"), ==, c1);
}

static void
test_nothing_to_roll_back (SysrootFixture *fx, gconstpointer data)
{
  g_autoptr(AbSysroot) s = open_sysroot (fx);
  g_autoptr(GError) error = NULL;
  AbSlot to = AB_SLOT_NONE;
  g_assert_false (ab_deploy_rollback (s, &to, &error));
  g_assert_error (error, AB_DEPLOY_ERROR, AB_DEPLOY_ERROR_NOTHING_TO_DO);
}

/* Fail closed: a commit without a trusted signature is never staged, and
 * the slot stays as it was. */
static void
test_unsigned_refused (SysrootFixture *fx, gconstpointer data)
{
  g_autofree char *c1 = publish_image (fx, "1.0", NULL);
  g_assert_cmpint (stage_commit (fx, c1), ==, AB_SLOT_A);
  fx->pub.gpg_key = NULL; /* the next commit is not signed */
  g_autofree char *c2 = publish_image (fx, "2.0", NULL);
  g_autoptr(AbSysroot) s = open_sysroot (fx);
  AbStageOptions o = { .source = fx->repo, .refspec = c2 };
  g_autoptr(GError) error = NULL;
  AbSlot slot = AB_SLOT_NONE;
  g_assert_false (ab_deploy_stage (s, &o, &slot, &error));
  g_assert_nonnull (error);
  g_test_message ("refused: %s", error->message);
  g_assert_nonnull (strstr (error->message, "sign"));
  g_auto(AbSlotsView) v = { 0 };
  load_view (fx, &v);
  g_assert_cmpstr (v.rec[AB_SLOT_A]->commit, ==, c1);
  g_assert_null (v.rec[AB_SLOT_B]);
}

/* Staging what is already staged, or already the primary deployment, is
 * nothing to do (exit 5), told apart by its code: update and deploy
 * decide on it, never on the message's words. */
static void
test_already_staged_and_primary_are_typed (SysrootFixture *fx, gconstpointer data)
{
  g_autofree char *c1 = publish_image (fx, "1.0", NULL);
  g_assert_cmpint (stage_commit (fx, c1), ==, AB_SLOT_A);
  AbStageOptions o = { .source = fx->repo, .refspec = c1 };
  g_autoptr(GError) error = NULL;
  AbSlot slot = AB_SLOT_NONE;
  {
    g_autoptr(AbSysroot) s = open_sysroot (fx);
    g_assert_false (ab_deploy_stage (s, &o, &slot, &error));
    g_assert_error (error, AB_DEPLOY_ERROR, AB_DEPLOY_ERROR_ALREADY_STAGED);
    g_assert_cmpint (ab_exit_code_for_error (error), ==, 5);
    g_clear_error (&error);
  }
  g_assert_cmpint (activate (fx), ==, AB_SLOT_A);
  g_autoptr(AbSysroot) again = open_sysroot (fx);
  g_assert_false (ab_deploy_stage (again, &o, &slot, &error));
  g_assert_error (error, AB_DEPLOY_ERROR, AB_DEPLOY_ERROR_ALREADY_PRIMARY);
  g_assert_cmpint (ab_exit_code_for_error (error), ==, 5);
}

/* Issue 16: a commit made for another OS is refused (exit 3) with both
 * names, by its error code; the slots stay as they were. */
static void
test_wrong_os_refused (SysrootFixture *fx, gconstpointer data)
{
  g_autofree char *c1 = publish_image_for_os (fx, "1.0", NULL, "otheros");
  g_autoptr(AbSysroot) s = open_sysroot (fx);
  AbStageOptions o = { .source = fx->repo, .refspec = c1 };
  g_autoptr(GError) error = NULL;
  AbSlot slot = AB_SLOT_NONE;
  g_assert_false (ab_deploy_stage (s, &o, &slot, &error));
  g_assert_error (error, AB_CONTENT_ERROR, AB_CONTENT_ERROR_WRONG_OS);
  g_assert_cmpint (ab_exit_code_for_error (error), ==, 3);
  g_assert_nonnull (strstr (error->message, "\"otheros\""));
  g_assert_nonnull (strstr (error->message, "\"testos\""));
  g_auto(AbSlotsView) v = { 0 };
  load_view (fx, &v);
  g_assert_null (v.rec[AB_SLOT_A]);
  g_assert_null (v.rec[AB_SLOT_B]);
}

/* abdeploy install without --os: the new sysroot takes the commit's OS. */
static void
test_adopt_os (SysrootFixture *fx, gconstpointer data)
{
  g_autofree char *c1 = publish_image_for_os (fx, "1.0", NULL, "otheros");
  {
    g_autoptr(AbSysroot) s = open_sysroot (fx);
    AbStageOptions o = { .source = fx->repo, .refspec = c1, .adopt_os = TRUE };
    g_autoptr(GError) error = NULL;
    AbSlot slot = AB_SLOT_NONE;
    g_assert_true (ab_deploy_stage (s, &o, &slot, &error));
    g_assert_no_error (error);
    g_assert_cmpstr (s->os, ==, "otheros");
  }
  g_autoptr(AbSysroot) again = open_sysroot (fx);
  g_assert_cmpstr (again->os, ==, "otheros");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  test_key_setup ();
  TMPDIR_TEST ("/deploy/invariant-cases", test_invariant_cases);
  SYSROOT_TEST ("/deploy/stage-activate-rollback", test_stage_activate_rollback);
  SYSROOT_TEST ("/deploy/nothing-to-roll-back", test_nothing_to_roll_back);
  SYSROOT_TEST ("/deploy/unsigned-refused", test_unsigned_refused);
  SYSROOT_TEST ("/deploy/already-staged-and-primary-are-typed",
                test_already_staged_and_primary_are_typed);
  SYSROOT_TEST ("/deploy/wrong-os-refused", test_wrong_os_refused);
  SYSROOT_TEST ("/deploy/adopt-os", test_adopt_os);
  int ret = g_test_run ();
  test_key_teardown ();
  return ret;
}
