#include "config.h"
#include <string.h>
#include "ab-bootloader.h"
#include "ab-test-fixture.h"

static AbBootPointer
sample_pointer (void)
{
  AbBootPointer p;
  ab_boot_pointer_init (&p);
  p.primary = AB_SLOT_B;
  p.state[AB_SLOT_A] = AB_BOOT_STATE_GOOD;
  p.state[AB_SLOT_B] = AB_BOOT_STATE_TRIAL;
  p.tries[AB_SLOT_B] = 3;
  return p;
}

static void
roundtrip (TmpDir *t, const char *backend)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(AbBootloader) bl = ab_bootloader_new (backend, t->dfd, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (ab_bootloader_setup (bl, &error));
  g_assert_no_error (error);
  AbBootPointer empty;
  g_assert_true (ab_bootloader_load (bl, &empty, &error));
  g_assert_cmpint (empty.primary, ==, AB_SLOT_NONE);
  AbBootPointer p = sample_pointer (), back;
  g_assert_true (ab_bootloader_save (bl, &p, &error));
  g_assert_true (ab_bootloader_load (bl, &back, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (&p, sizeof p, &back, sizeof back);
}

static void
test_file_roundtrip (TmpDir *t, gconstpointer data)
{
  roundtrip (t, "file");
  g_autofree char *text = read_file_at (t->dfd, "boot/abdeploy/pointer");
  g_assert_true (g_str_has_prefix (text, "ABDEPLOY_FORMAT=1\n"));
  g_assert_nonnull (strstr (text, "ABDEPLOY_B_STATE=trial\nABDEPLOY_B_TRIES=3\n"));
}

static void
test_grub_roundtrip_readable_by_grub_editenv (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_assert_true (ab_fs_mkdir_p_at (t->dfd, "boot/grub", 0755, &error));
  g_autofree char *env = g_build_filename (t->path, "boot/grub/grubenv", NULL);
  g_autofree char *create = g_strdup_printf ("grub-editenv %s set saved_entry=7", env);
  int status = 0;
  g_assert_true (g_spawn_command_line_sync (create, NULL, NULL, &status, &error));
  g_assert_cmpint (status, ==, 0);
  roundtrip (t, "grub");
  g_autofree char *list = g_strdup_printf ("grub-editenv %s list", env);
  g_autofree char *out = NULL;
  g_assert_true (g_spawn_command_line_sync (list, &out, NULL, &status, &error));
  g_assert_cmpint (status, ==, 0);
  g_assert_nonnull (strstr (out, "saved_entry=7\n"));
  g_assert_nonnull (strstr (out, "ABDEPLOY_PRIMARY=b\n"));
  g_assert_nonnull (strstr (out, "ABDEPLOY_B_TRIES=3\n"));
}

static void
test_unknown_backend (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(AbBootloader) bl = ab_bootloader_new ("lilo", t->dfd, NULL, &error);
  g_assert_null (bl);
  g_assert_error (error, AB_BOOTLOADER_ERROR, AB_BOOTLOADER_ERROR_UNKNOWN_BACKEND);
}

static void
test_file_rejects_bad_values (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(AbBootloader) bl = ab_bootloader_new ("file", t->dfd, NULL, &error);
  g_assert_true (ab_bootloader_setup (bl, &error));
  write_file_at (t->dfd, "boot/abdeploy/pointer", "ABDEPLOY_FORMAT=1\nABDEPLOY_PRIMARY=c\n");
  AbBootPointer p;
  g_assert_false (ab_bootloader_load (bl, &p, &error));
  g_assert_error (error, AB_BOOTLOADER_ERROR, AB_BOOTLOADER_ERROR_PARSE);
  g_clear_error (&error);
  write_file_at (t->dfd, "boot/abdeploy/pointer", "ABDEPLOY_FORMAT=2\n");
  g_assert_false (ab_bootloader_load (bl, &p, &error));
  g_assert_nonnull (strstr (error->message, "format 2"));
}

static void
test_next_boot_rules (void)
{
  AbBootPointer p = sample_pointer ();
  g_assert_cmpint (ab_boot_pointer_next_boot (&p), ==, AB_SLOT_B);
  p.tries[AB_SLOT_B] = 0;
  g_assert_cmpint (ab_boot_pointer_next_boot (&p), ==, AB_SLOT_A);
  p.state[AB_SLOT_A] = AB_BOOT_STATE_BAD;
  g_assert_cmpint (ab_boot_pointer_next_boot (&p), ==, AB_SLOT_B);
  p.primary = AB_SLOT_NONE;
  g_assert_cmpint (ab_boot_pointer_next_boot (&p), ==, AB_SLOT_NONE);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  TMPDIR_TEST ("/bootloader/file-roundtrip", test_file_roundtrip);
  TMPDIR_TEST ("/bootloader/grub-roundtrip", test_grub_roundtrip_readable_by_grub_editenv);
  TMPDIR_TEST ("/bootloader/unknown-backend", test_unknown_backend);
  TMPDIR_TEST ("/bootloader/file-rejects-bad-values", test_file_rejects_bad_values);
  g_test_add_func ("/bootloader/next-boot-rules", test_next_boot_rules);
  return g_test_run ();
}
