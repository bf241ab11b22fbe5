/* ab_health_check() (issue 12): the engine decides and reports; it never
 * prints and never reboots. Its messages and warnings reach the sysroot's
 * event sink, and a reboot the verdict wants is an action in the outcome,
 * for the front end to carry out. A real sysroot (file backend), real hooks. */
#include "config.h"
#include <string.h>
#include "ab-health.h"
#include "ab-test-fixture.h"

typedef struct
{
  GPtrArray *messages;
  GPtrArray *warnings;
} Seen;

static void
collect (const AbEvent *ev, gpointer user_data)
{
  Seen *seen = user_data;
  if (ev->kind == AB_EVENT_MESSAGE)
    g_ptr_array_add (seen->messages, g_strdup (ev->message));
  else if (ev->kind == AB_EVENT_WARNING)
    g_ptr_array_add (seen->warnings, g_strdup (ev->message));
}

static gboolean
any_has (GPtrArray *lines, const char *needle)
{
  for (guint i = 0; i < lines->len; i++)
    if (strstr (lines->pdata[i], needle) != NULL)
      return TRUE;
  return FALSE;
}

/* A sysroot whose booted slot b is on trial (TRIES left) after slot a was
 * good (A_EMPTY: slot a holds nothing), with one required hook that exits
 * with HOOK_EXIT, and a reboot command that would leave a marker file. */
static AbSysroot *
make_trial (TmpDir *t, int tries, gboolean a_empty, int hook_exit, const char *on_red)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *marker = g_build_filename (t->path, "rebooted", NULL);
  g_autofree char *conf = g_strdup_printf ("[health]\nreboot-command=touch %s\non-red=%s\n", marker,
                                           on_red);
  write_file_at (t->dfd, "etc/abdeploy/abdeploy.conf", conf);
  gboolean created = FALSE;
  g_assert_true (ab_sysroot_init (t->path, NULL, "testos", "file", NULL, &created, &error));
  g_assert_no_error (error);
  g_autofree char *hook = g_strdup_printf ("#!/bin/sh\nexit %d\n", hook_exit);
  write_file_at (t->dfd, "abdeploy/slots/b/etc/abdeploy/health/required.d/10-check", hook);
  g_assert_cmpint (fchmodat (t->dfd, "abdeploy/slots/b/etc/abdeploy/health/required.d/10-check",
                             0755, 0), ==, 0);
  write_file_at (t->dfd, "cmdline", "abdeploy.slot=b\n");
  g_autofree char *cmdline = g_build_filename (t->path, "cmdline", NULL);
  g_setenv ("ABDEPLOY_CMDLINE", cmdline, TRUE);
  AbSysroot *sysroot = ab_sysroot_open (t->path, NULL, &error);
  g_assert_no_error (error);
  AbSlotRecord ra = { .commit = (char *) "ca", .version = (char *) "1.0" };
  AbSlotRecord rb = { .commit = (char *) "cb", .version = (char *) "2.0" };
  if (!a_empty)
    g_assert_true (ab_slot_record_save (sysroot->state_dfd, sysroot->state_format, AB_SLOT_A, &ra, &error));
  g_assert_true (ab_slot_record_save (sysroot->state_dfd, sysroot->state_format, AB_SLOT_B, &rb, &error));
  AbBootPointer ptr;
  ab_boot_pointer_init (&ptr);
  ptr.primary = AB_SLOT_B;
  ptr.state[AB_SLOT_A] = a_empty ? AB_BOOT_STATE_NONE : AB_BOOT_STATE_GOOD;
  ptr.state[AB_SLOT_B] = AB_BOOT_STATE_TRIAL;
  ptr.tries[AB_SLOT_B] = tries;
  g_assert_true (ab_bootloader_save (sysroot->bootloader, &ptr, &error));
  g_assert_no_error (error);
  return sysroot;
}

typedef struct
{
  AbSysroot *sysroot;
  AbEventSink *sink;
  Seen seen;
  AbHealthOutcome outcome;
} Run;

static void
run_clear (Run *r)
{
  ab_health_outcome_clear (&r->outcome);
  g_clear_pointer (&r->seen.messages, g_ptr_array_unref);
  g_clear_pointer (&r->seen.warnings, g_ptr_array_unref);
  g_clear_pointer (&r->sink, ab_event_sink_free);
  g_clear_pointer (&r->sysroot, ab_sysroot_free);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Run, run_clear)

static void
check (Run *r, AbSysroot *sysroot, gboolean no_reboot)
{
  g_autoptr(GError) error = NULL;
  r->sysroot = sysroot;
  r->seen.messages = g_ptr_array_new_with_free_func (g_free);
  r->seen.warnings = g_ptr_array_new_with_free_func (g_free);
  r->sink = ab_event_sink_new (collect, &r->seen);
  sysroot->events = r->sink;
  AbHealthOptions opts = { .no_reboot = no_reboot };
  g_assert_true (ab_health_check (sysroot, &opts, &r->outcome, &error));
  g_assert_no_error (error);
}

static void
assert_not_rebooted (TmpDir *t)
{
  g_assert_false (ab_fs_exists_at (t->dfd, "rebooted"));
}

/* Red with tries left: the verdict asks for a reboot; on a sysroot that is
 * not / it is held, and nothing was spawned. */
static void
test_red_with_tries_holds_reboot (TmpDir *t, gconstpointer data)
{
  g_auto(Run) r = { 0 };
  check (&r, make_trial (t, 2, FALSE, 1, "reboot"), FALSE);
  g_assert_false (r.outcome.green);
  g_assert_cmpint (r.outcome.verdict, ==, AB_HEALTH_VERDICT_REBOOT);
  g_assert_cmpstr (ab_health_verdict_name (r.outcome.verdict), ==, "reboot");
  g_assert_cmpint (r.outcome.action, ==, AB_HEALTH_ACTION_NONE);
  g_assert_cmpint (r.outcome.held, ==, AB_HEALTH_HOLD_NOT_LIVE);
  g_assert_null (r.outcome.reboot_command);
  assert_not_rebooted (t);
}

/* --no-reboot is the reason given even when the sysroot is not / either. */
static void
test_no_reboot_option_holds (TmpDir *t, gconstpointer data)
{
  g_auto(Run) r = { 0 };
  check (&r, make_trial (t, 2, FALSE, 1, "reboot"), TRUE);
  g_assert_cmpint (r.outcome.held, ==, AB_HEALTH_HOLD_NO_REBOOT);
  g_assert_cmpint (r.outcome.action, ==, AB_HEALTH_ACTION_NONE);
  assert_not_rebooted (t);
}

/* A red trial with no tries left rolls back: the rollback line is a
 * message of the sink (it was printed by the engine before). */
static void
test_rollback_reports_message (TmpDir *t, gconstpointer data)
{
  g_auto(Run) r = { 0 };
  check (&r, make_trial (t, 0, FALSE, 1, "reboot"), FALSE);
  g_assert_cmpint (r.outcome.verdict, ==, AB_HEALTH_VERDICT_ROLLBACK);
  g_assert_cmpint (r.outcome.held, ==, AB_HEALTH_HOLD_NOT_LIVE);
  g_assert_true (any_has (r.seen.messages, "ROLLED BACK from 2.0 to 1.0: slot b failed its health check"));
  g_assert_cmpuint (r.seen.warnings->len, ==, 0);
  g_autoptr(GError) error = NULL;
  AbBootPointer ptr;
  g_assert_true (ab_bootloader_load (r.sysroot->bootloader, &ptr, &error));
  g_assert_cmpint (ptr.primary, ==, AB_SLOT_A);
  g_assert_cmpint (ptr.state[AB_SLOT_B], ==, AB_BOOT_STATE_BAD);
  assert_not_rebooted (t);
}

/* Nothing to roll back to: a warning of the sink, no action. */
static void
test_nothing_to_roll_back_warns (TmpDir *t, gconstpointer data)
{
  g_auto(Run) r = { 0 };
  check (&r, make_trial (t, 0, TRUE, 1, "rollback"), FALSE);
  g_assert_cmpint (r.outcome.verdict, ==, AB_HEALTH_VERDICT_NONE);
  g_assert_cmpint (r.outcome.action, ==, AB_HEALTH_ACTION_NONE);
  g_assert_cmpint (r.outcome.held, ==, AB_HEALTH_HOLD_NONE);
  g_assert_true (any_has (r.seen.warnings, "slot b failed its health check, but slot a holds nothing "
                                           "bootable to roll back to"));
}

/* Green on trial: marked good, nothing to do for the front end. */
static void
test_green_marks_good (TmpDir *t, gconstpointer data)
{
  g_auto(Run) r = { 0 };
  check (&r, make_trial (t, 2, FALSE, 0, "reboot"), FALSE);
  g_assert_true (r.outcome.green);
  g_assert_cmpint (r.outcome.verdict, ==, AB_HEALTH_VERDICT_MARKED_GOOD);
  g_assert_cmpint (r.outcome.action, ==, AB_HEALTH_ACTION_NONE);
  g_assert_cmpint (r.outcome.held, ==, AB_HEALTH_HOLD_NONE);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  TMPDIR_TEST ("/health/red-with-tries-holds-reboot", test_red_with_tries_holds_reboot);
  TMPDIR_TEST ("/health/no-reboot-option-holds", test_no_reboot_option_holds);
  TMPDIR_TEST ("/health/rollback-reports-message", test_rollback_reports_message);
  TMPDIR_TEST ("/health/nothing-to-roll-back-warns", test_nothing_to_roll_back_warns);
  TMPDIR_TEST ("/health/green-marks-good", test_green_marks_good);
  return g_test_run ();
}
