/* The open sysroot (issue 12, point 3): no hidden state. The state format
 * it writes belongs to it, its identity is a directory fd plus the path as
 * given, resolved once, and an interrupted restore is completed by the
 * explicit recovery step (ab_recover()), never by ab_sysroot_lock(). */
#include "config.h"
#include <json-glib/json-glib.h>
#include <stdlib.h>
#include <string.h>
#include "ab-backup.h"
#include "ab-health.h"
#include "ab-recover.h"
#include "ab-test-fixture.h"

/* An initialized sysroot (file backend) at T/NAME, booted from slot b
 * (the kernel command line of the whole test process). */
static char *
make_sysroot (TmpDir *t, const char *name)
{
  g_autoptr(GError) error = NULL;
  char *path = g_build_filename (t->path, name, NULL);
  gboolean created = FALSE;
  g_assert_true (ab_sysroot_init (path, NULL, "testos", "file", NULL, &created, &error));
  g_assert_no_error (error);
  g_assert_true (created);
  write_file_at (t->dfd, "cmdline", "abdeploy.slot=b\n");
  g_autofree char *cmdline = g_build_filename (t->path, "cmdline", NULL);
  g_setenv ("ABDEPLOY_CMDLINE", cmdline, TRUE);
  return path;
}

static AbSysroot *
open_sysroot (const char *path)
{
  g_autoptr(GError) error = NULL;
  AbSysroot *sysroot = ab_sysroot_open (path, NULL, &error);
  g_assert_no_error (error);
  return sysroot;
}

/* Records of both slots, and a pointer with slot b (booted) on trial. */
static void
seed_slots (AbSysroot *sysroot)
{
  g_autoptr(GError) error = NULL;
  AbSlotRecord ra = { .commit = (char *) "ca", .version = (char *) "1.0" };
  AbSlotRecord rb = { .commit = (char *) "cb", .version = (char *) "2.0" };
  g_assert_true (ab_slot_record_save (sysroot->state_dfd, sysroot->state_format, AB_SLOT_A, &ra,
                                      &error));
  g_assert_true (ab_slot_record_save (sysroot->state_dfd, sysroot->state_format, AB_SLOT_B, &rb,
                                      &error));
  AbBootPointer ptr;
  ab_boot_pointer_init (&ptr);
  ptr.primary = AB_SLOT_B;
  ptr.state[AB_SLOT_A] = AB_BOOT_STATE_GOOD;
  ptr.state[AB_SLOT_B] = AB_BOOT_STATE_TRIAL;
  ptr.tries[AB_SLOT_B] = 2;
  g_assert_true (ab_bootloader_save (sysroot->bootloader, &ptr, &error));
  g_assert_no_error (error);
}

static gint64
history_format (AbSysroot *sysroot)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) root = NULL;
  g_assert_true (ab_format_read_state_at (sysroot->state_dfd, "history.json", &root, NULL, &error));
  g_assert_no_error (error);
  g_assert_nonnull (root);
  return json_object_get_int_member (json_node_get_object (root), "format");
}

/* Two sysroots open in one process: one of the current layout, one of the
 * previous layout whose migration waits (its booted slot is on trial).
 * Each writes its own state format, whichever was opened last. */
static void
test_state_format_per_sysroot (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *cur_path = make_sysroot (t, "current");
  g_autofree char *old_path = make_sysroot (t, "previous");
  g_autoptr(AbSysroot) cur = open_sysroot (cur_path);
  seed_slots (cur);
  {
    /* the previous layout: slot records of format 1 and abdeploy/version 1 */
    g_autoptr(AbSysroot) tmp = open_sysroot (old_path);
    tmp->state_format = 1;
    seed_slots (tmp);
    write_file_at (tmp->dfd, "abdeploy/version", "1\n");
  }
  g_autoptr(AbSysroot) old = open_sysroot (old_path);
  g_assert_cmpint (cur->state_format, ==, AB_STATE_FORMAT);
  g_assert_cmpint (old->state_format, ==, 1);
  AbSlot slot = AB_SLOT_NONE;
  g_assert_true (ab_health_mark (cur, "a", TRUE, &slot, &error));
  g_assert_no_error (error);
  g_assert_true (ab_health_mark (old, "a", TRUE, &slot, &error));
  g_assert_no_error (error);
  g_assert_cmpint (old->layout, ==, AB_LAYOUT_PREVIOUS); /* the migration waits */
  g_assert_cmpint (history_format (cur), ==, AB_STATE_FORMAT);
  g_assert_cmpint (history_format (old), ==, 1);
}

/* A restore journal: ab_sysroot_lock() refuses (and leaves it), the
 * recovery step refuses one that does not verify, and leaves it too. */
static void
test_lock_refuses_pending_restore (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = make_sysroot (t, "sr");
  g_autoptr(AbSysroot) sysroot = open_sysroot (path);
  write_file_at (sysroot->dfd, "abdeploy/" AB_SYSROOT_RESTORE_JOURNAL, "not an archive");
  g_assert_false (ab_sysroot_lock (sysroot, &error));
  g_assert_error (error, AB_SYSROOT_ERROR, AB_SYSROOT_ERROR_RECOVERY_NEEDED);
  g_assert_cmpint (sysroot->lock_fd, ==, -1);
  g_clear_error (&error);
  AbRecovery done = AB_RECOVERY_NONE;
  g_assert_false (ab_recover (sysroot, &done, &error));
  g_assert_error (error, AB_BACKUP_ERROR, AB_BACKUP_ERROR_PENDING);
  g_assert_cmpint (done, ==, AB_RECOVERY_NONE);
  g_autofree char *kept = read_file_at (sysroot->dfd, "abdeploy/" AB_SYSROOT_RESTORE_JOURNAL);
  g_assert_cmpstr (kept, ==, "not an archive");
}

/* Nothing interrupted: the recovery step does nothing, not even lock. */
static void
test_recover_nothing (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = make_sysroot (t, "sr");
  g_autoptr(AbSysroot) sysroot = open_sysroot (path);
  AbRecovery done = AB_RECOVERY_RESTORE_COMPLETED;
  g_assert_true (ab_recover (sysroot, &done, &error));
  g_assert_no_error (error);
  g_assert_cmpint (done, ==, AB_RECOVERY_NONE);
  g_assert_cmpint (sysroot->lock_fd, ==, -1);
  g_assert_true (ab_sysroot_lock (sysroot, &error));
  g_assert_no_error (error);
}

/* An interrupted restore (its journal holds a verified archive) is
 * completed by the recovery step, which keeps the lock for the writer. */
static void
test_recover_completes_restore (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = make_sysroot (t, "sr");
  g_autoptr(AbSysroot) sysroot = open_sysroot (path);
  g_autofree char *archive = g_build_filename (t->path, "backup.tar", NULL);
  guint files = 0;
  g_assert_true (ab_backup_create (sysroot, archive, FALSE, &files, &error));
  g_assert_no_error (error);
  g_autofree char *bytes = NULL;
  gsize len = 0;
  g_assert_true (g_file_get_contents (archive, &bytes, &len, &error));
  g_assert_true (ab_fs_replace_at (sysroot->abdeploy_dfd, AB_SYSROOT_RESTORE_JOURNAL, bytes, len,
                                   0600, &error));
  g_autoptr(AbSysroot) again = open_sysroot (path);
  g_assert_true (again->restore_pending);
  AbRecovery done = AB_RECOVERY_NONE;
  g_assert_true (ab_recover (again, &done, &error));
  g_assert_no_error (error);
  g_assert_cmpint (done, ==, AB_RECOVERY_RESTORE_COMPLETED);
  g_assert_false (again->restore_pending);
  g_assert_false (ab_fs_exists_at (again->dfd, "abdeploy/" AB_SYSROOT_RESTORE_JOURNAL));
  g_assert_cmpint (again->lock_fd, >=, 0);
  g_assert_true (ab_sysroot_lock (again, &error));
  g_assert_no_error (error);
}

/* One identity: the path as given, and the directory it named when the
 * sysroot was opened, resolved once: re-pointing a link afterwards changes
 * neither what the sysroot's fds nor what its root names. */
static void
test_identity_resolved_once (TmpDir *t, gconstpointer data)
{
  g_autofree char *path = make_sysroot (t, "real");
  g_autofree char *other = make_sysroot (t, "other");
  g_autofree char *link = g_build_filename (t->path, "link", NULL);
  g_assert_cmpint (symlink (path, link), ==, 0);
  g_autoptr(AbSysroot) sysroot = open_sysroot (link);
  g_autofree char *real = realpath (path, NULL);
  g_assert_cmpstr (sysroot->path, ==, link);
  g_assert_cmpstr (sysroot->root, ==, real);
  g_assert_cmpint (unlink (link), ==, 0);
  g_assert_cmpint (symlink (other, link), ==, 0);
  g_assert_cmpstr (sysroot->root, ==, real);
  g_autoptr(GError) error = NULL;
  gboolean changed = TRUE;
  g_assert_true (ab_sysroot_make_writable (sysroot, &changed, &error));
  g_assert_no_error (error);
  g_autofree char *fd_path = ab_fs_fd_realpath (sysroot->dfd, &error);
  g_assert_cmpstr (fd_path, ==, real);
}

static void
collect_warning (const AbEvent *ev, gpointer user_data)
{
  if (ev->kind == AB_EVENT_WARNING)
    g_ptr_array_add (user_data, g_strdup (ev->message));
}

/* What a reader reads past (a damaged slot record taken as empty) is a
 * warning of the sysroot it read, to that sysroot's sink: not to a
 * process-wide function, and not to another open sysroot's sink. */
static void
test_warnings_reach_its_sink (TmpDir *t, gconstpointer data)
{
  g_autofree char *path = make_sysroot (t, "damaged");
  g_autofree char *other_path = make_sysroot (t, "other");
  g_autoptr(AbSysroot) sysroot = open_sysroot (path);
  g_autoptr(AbSysroot) other = open_sysroot (other_path);
  seed_slots (sysroot);
  seed_slots (other);
  write_file_at (sysroot->state_dfd, "slot-a.json", "{\"format\": 2, ");
  g_autoptr(GPtrArray) mine = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GPtrArray) theirs = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(AbEventSink) sink = ab_event_sink_new (collect_warning, mine);
  g_autoptr(AbEventSink) other_sink = ab_event_sink_new (collect_warning, theirs);
  sysroot->events = sink;
  other->events = other_sink;
  sysroot->tolerate_damage = other->tolerate_damage = TRUE;
  AbSlotRecord *records[AB_N_SLOTS] = { NULL };
  AbSlotRecord *other_records[AB_N_SLOTS] = { NULL };
  g_autoptr(GError) error = NULL;
  g_assert_true (ab_sysroot_load_records (other, other_records, NULL, &error));
  g_assert_true (ab_sysroot_load_records (sysroot, records, NULL, &error));
  g_assert_no_error (error);
  g_assert_null (records[AB_SLOT_A]);
  g_assert_cmpuint (mine->len, ==, 1);
  g_assert_true (g_str_has_prefix (mine->pdata[0], "the record of slot a is damaged ("));
  g_assert_cmpuint (theirs->len, ==, 0);
  for (int s = 0; s < AB_N_SLOTS; s++)
    {
      ab_slot_record_free (records[s]);
      ab_slot_record_free (other_records[s]);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  TMPDIR_TEST ("/sysroot/state-format-per-sysroot", test_state_format_per_sysroot);
  TMPDIR_TEST ("/sysroot/lock-refuses-pending-restore", test_lock_refuses_pending_restore);
  TMPDIR_TEST ("/sysroot/recover-nothing", test_recover_nothing);
  TMPDIR_TEST ("/sysroot/recover-completes-restore", test_recover_completes_restore);
  TMPDIR_TEST ("/sysroot/identity-resolved-once", test_identity_resolved_once);
  TMPDIR_TEST ("/sysroot/warnings-reach-its-sink", test_warnings_reach_its_sink);
  return g_test_run ();
}
