/* The systemd-boot backend on a scratch sysroot whose ESP is a directory
 * (SYSROOT/efi, with an EFI/ directory as a mounted ESP has). */
#include "config.h"
#include <string.h>
#include <unistd.h>
#include "ab-config.h"
#include "ab-test-bootloader.h"

#define ENTRIES "efi/loader/entries/"

static int
by_name (gconstpointer a, gconstpointer b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

/* The names in efi/loader/entries, sorted, joined with blanks. */
static char *
entry_names (TmpDir *t)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = g_build_filename (t->path, ENTRIES, NULL);
  g_autoptr(GDir) dir = g_dir_open (path, 0, &error);
  g_assert_no_error (error);
  g_autoptr(GPtrArray) names = g_ptr_array_new ();
  for (const char *n; (n = g_dir_read_name (dir)) != NULL;)
    g_ptr_array_add (names, (char *) n);
  g_ptr_array_sort (names, by_name);
  g_ptr_array_add (names, NULL);
  return g_strjoinv (" ", (char **) names->pdata);
}

static void
assert_entries (TmpDir *t, const char *expected)
{
  g_autofree char *names = entry_names (t);
  g_assert_cmpstr (names, ==, expected);
}

static AbBootloader *
sdboot (TmpDir *t)
{
  g_autoptr(GError) error = NULL;
  g_assert_true (ab_fs_mkdir_p_at (t->dfd, "efi/EFI", 0755, &error));
  AbBootloader *bl = new_backend (t, "systemd-boot", NULL);
  g_assert_true (ab_bootloader_setup (bl, &error));
  g_assert_no_error (error);
  return bl;
}

static void
expect (AbBootloader *bl, AbBootPointer ptr)
{
  assert_load (bl, &ptr);
}

static void
save (AbBootloader *bl, AbBootPointer ptr)
{
  g_autoptr(GError) error = NULL;
  g_assert_true (ab_bootloader_save (bl, &ptr, &error));
  g_assert_no_error (error);
  assert_load (bl, &ptr);
}

/* What the engine does when it stages SLOT: the kernel is in
 * boot/abdeploy/<slot>/, then the hook runs. */
static void
stage (TmpDir *t, AbBootloader *bl, AbSlot slot, const char *args)
{
  g_autoptr(GError) error = NULL;
  const char *name = ab_slot_name (slot);
  g_autofree char *kernel = g_strdup_printf ("%s/vmlinuz", name);
  g_autofree char *initramfs = g_strdup_printf ("%s/initramfs.img", name);
  g_autofree char *kpath = g_strdup_printf ("boot/abdeploy/%s", kernel);
  g_autofree char *ipath = g_strdup_printf ("boot/abdeploy/%s", initramfs);
  g_autofree char *kdata = g_strdup_printf ("KERNEL %s", name);
  write_file_at (t->dfd, kpath, kdata);
  write_file_at (t->dfd, ipath, "INITRD");
  ab_autofd boot = ab_fs_opendir_at (t->dfd, "boot/abdeploy", &error);
  AbBootEntry entry = { .slot = slot, .boot_dfd = boot, .kernel = kernel,
                        .initramfs = initramfs, .kver = "6.1.0", .kernel_args = args,
                        .os = "testos", .version = "2.0" };
  g_assert_true (ab_bootloader_install_entry (bl, &entry, &error));
  g_assert_no_error (error);
}

static void
test_setup_needs_an_esp (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(AbBootloader) bl = new_backend (t, "systemd-boot", NULL);
  g_assert_false (ab_bootloader_setup (bl, &error));
  g_assert_nonnull (strstr (error->message, "No EFI system partition"));
  g_assert_nonnull (strstr (error->message, "[boot] esp-path"));
  /* the real directories, not the literal SYSROOT (issue 16) */
  g_autofree char *efi = g_strconcat (t->path, "/boot/efi", NULL);
  g_assert_nonnull (strstr (error->message, efi));
  g_assert_null (strstr (error->message, "SYSROOT"));
  g_clear_error (&error);
  /* systemd's order: efi before boot/efi */
  g_assert_true (ab_fs_mkdir_p_at (t->dfd, "boot/efi/EFI", 0755, &error));
  g_assert_true (ab_fs_mkdir_p_at (t->dfd, "efi/loader", 0755, &error));
  g_assert_true (ab_bootloader_setup (bl, &error));
  g_assert_true (ab_fs_exists_at (t->dfd, "efi/loader/entries"));
  g_assert_true (ab_fs_exists_at (t->dfd, "efi/abdeploy"));
  g_assert_false (ab_fs_exists_at (t->dfd, "boot/efi/loader"));
  AbBootPointer empty;
  ab_boot_pointer_init (&empty);
  assert_load (bl, &empty);
}

static void
test_configured_paths (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(AbConfig) cfg = ab_config_new_defaults ();
  cfg->boot.esp_path = g_strdup ("esp");
  g_assert_true (ab_fs_mkdir_p_at (t->dfd, "esp", 0755, &error));
  g_autoptr(AbBootloader) bl = new_backend (t, "systemd-boot", cfg);
  g_assert_true (ab_bootloader_setup (bl, &error));
  g_assert_true (ab_fs_exists_at (t->dfd, "esp/loader/entries"));
  /* XBOOTLDR takes the entries and the kernels */
  cfg->boot.xbootldr_path = g_build_filename (t->path, "xbl", NULL);
  g_assert_true (ab_fs_mkdir_p_at (t->dfd, "xbl", 0755, &error));
  g_assert_true (ab_bootloader_setup (bl, &error));
  stage (t, bl, AB_SLOT_A, "abdeploy.slot=a");
  g_assert_true (ab_fs_exists_at (t->dfd, "xbl/loader/entries/abdeploy-0-a.staged"));
  g_assert_true (ab_fs_exists_at (t->dfd, "xbl/abdeploy/a/vmlinuz"));
  g_assert_no_error (error);
}

/* install_entry copies the kernel and writes the entry as .staged, which
 * systemd-boot does not read; activation is one rename. */
static void
test_stage_then_activate (TmpDir *t, gconstpointer data)
{
  g_autoptr(AbBootloader) bl = sdboot (t);
  stage (t, bl, AB_SLOT_A, "abdeploy.slot=a root=LABEL=r rw");
  assert_entries (t, "abdeploy-0-a.staged");
  g_autofree char *kernel = read_file_at (t->dfd, "efi/abdeploy/a/vmlinuz");
  g_assert_cmpstr (kernel, ==, "KERNEL a");
  g_autofree char *initrd = read_file_at (t->dfd, "efi/abdeploy/a/initramfs.img");
  g_assert_cmpstr (initrd, ==, "INITRD");
  g_autofree char *text = read_file_at (t->dfd, ENTRIES "abdeploy-0-a.staged");
  const char *lines[] = { "\ntitle testos 2.0 (slot a)\n", "\nsort-key abdeploy\n",
                          "\nlinux /abdeploy/a/vmlinuz\n", "\ninitrd /abdeploy/a/initramfs.img\n",
                          "\noptions abdeploy.slot=a root=LABEL=r rw\n" };
  for (guint i = 0; i < G_N_ELEMENTS (lines); i++)
    g_assert_nonnull (strstr (text, lines[i]));
  g_assert_null (strstr (text, "\nversion"));
  expect (bl, pointer (AB_SLOT_NONE, AB_BOOT_STATE_NONE, 0, AB_BOOT_STATE_NONE, 0));
  save (bl, pointer (AB_SLOT_A, AB_BOOT_STATE_TRIAL, 3, AB_BOOT_STATE_NONE, 0));
  assert_entries (t, "abdeploy-1-a+3.conf");
  save (bl, pointer (AB_SLOT_A, AB_BOOT_STATE_GOOD, 0, AB_BOOT_STATE_NONE, 0));
  assert_entries (t, "abdeploy-1-a.conf");
  stage (t, bl, AB_SLOT_B, "abdeploy.slot=b");
  assert_entries (t, "abdeploy-0-b.staged abdeploy-1-a.conf");
  save (bl, pointer (AB_SLOT_B, AB_BOOT_STATE_GOOD, 0, AB_BOOT_STATE_TRIAL, 3));
  assert_entries (t, "abdeploy-1-a.conf abdeploy-2-b+3.conf");
}

/* Slot a good, then b staged and activated with 3 tries, and booted
 * once: systemd-boot renamed its entry +3 -> +2-1. */
static void
b_booted_once_on_trial (TmpDir *t, AbBootloader *bl)
{
  g_autoptr(GError) error = NULL;
  stage (t, bl, AB_SLOT_A, "abdeploy.slot=a");
  save (bl, pointer (AB_SLOT_A, AB_BOOT_STATE_GOOD, 0, AB_BOOT_STATE_NONE, 0));
  stage (t, bl, AB_SLOT_B, "abdeploy.slot=b");
  save (bl, pointer (AB_SLOT_B, AB_BOOT_STATE_GOOD, 0, AB_BOOT_STATE_TRIAL, 3));
  g_assert_true (ab_fs_rename_at (t->dfd, ENTRIES "abdeploy-2-b+3.conf",
                                  ENTRIES "abdeploy-2-b+2-1.conf", &error));
  g_assert_no_error (error);
}

/* systemd-boot counts; abdeploy reads the count; a rollback makes the slot
 * rolled back to the newest generation and the trial bad. */
static void
test_counting_and_rollback (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(AbBootloader) bl = sdboot (t);
  b_booted_once_on_trial (t, bl);
  expect (bl, pointer (AB_SLOT_B, AB_BOOT_STATE_GOOD, 0,
                                             AB_BOOT_STATE_TRIAL, 2));
  save (bl, pointer (AB_SLOT_A, AB_BOOT_STATE_GOOD, 0, AB_BOOT_STATE_BAD, 0));
  assert_entries (t, "abdeploy-2-b+0-1.conf abdeploy-3-a.conf");
  /* the tries used up on the primary: a trial with none left */
  save (bl, pointer (AB_SLOT_B, AB_BOOT_STATE_GOOD, 0, AB_BOOT_STATE_TRIAL, 1));
  assert_entries (t, "abdeploy-3-a.conf abdeploy-4-b+1.conf");
  g_assert_true (ab_fs_rename_at (t->dfd, ENTRIES "abdeploy-4-b+1.conf",
                                  ENTRIES "abdeploy-4-b+0-1.conf", &error));
  expect (bl, pointer (AB_SLOT_B, AB_BOOT_STATE_GOOD, 0,
                                             AB_BOOT_STATE_TRIAL, 0));
  /* the health check records the fallback: only a's generation changes */
  save (bl, pointer (AB_SLOT_A, AB_BOOT_STATE_GOOD, 0, AB_BOOT_STATE_BAD, 0));
  assert_entries (t, "abdeploy-4-b+0-1.conf abdeploy-5-a.conf");
  /* the slot made unbootable for a new stage */
  save (bl, pointer (AB_SLOT_A, AB_BOOT_STATE_GOOD, 0, AB_BOOT_STATE_NONE, 0));
  assert_entries (t, "abdeploy-4-b.staged abdeploy-5-a.conf");
}

/* An efivarfs file LoaderBootCountPath-... in T's efivars/ naming ENTRY. */
static void
set_boot_count_path (TmpDir *t, const char *entry)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_build_filename (t->path, "efivars", NULL);
  g_autofree char *value = g_strconcat ("\\loader\\entries\\", entry, NULL);
  g_autoptr(GByteArray) data = g_byte_array_new ();
  guint8 attrs[4] = { 6, 0, 0, 0 };
  g_byte_array_append (data, attrs, 4);
  for (const char *c = value; ; c++)
    {
      guint8 u[2] = { (guint8) *c, 0 };   /* ASCII: UTF-16LE is the byte and a 0 */
      g_byte_array_append (data, u, 2);
      if (*c == '\0')
        break;
    }
  g_assert_true (ab_fs_mkdir_p_at (t->dfd, "efivars", 0755, &error));
  g_autofree char *path = g_build_filename (
      dir, "LoaderBootCountPath-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f", NULL);
  g_assert_true (g_file_set_contents (path, (char *) data->data, data->len, &error));
  g_setenv ("ABDEPLOY_EFIVARS_DIR", dir, TRUE);
}

/* systemd-bless-boot bad during a trial boot renames the booted entry
 * +2-1 -> +0-1. By the name alone that is the last trial of the primary;
 * with systemd-boot's LoaderBootCountPath (the name it booted, +2-1) it
 * is what systemd-bless-boot status says: bad, and the other slot boots
 * next. */
static void
test_blessed_bad_this_boot (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(AbBootloader) bl = sdboot (t);
  b_booted_once_on_trial (t, bl);
  set_boot_count_path (t, "abdeploy-2-b+2-1.conf");
  expect (bl, pointer (AB_SLOT_B, AB_BOOT_STATE_GOOD, 0, AB_BOOT_STATE_TRIAL, 2));
  g_assert_true (ab_fs_rename_at (t->dfd, ENTRIES "abdeploy-2-b+2-1.conf",
                                  ENTRIES "abdeploy-2-b+0-1.conf", &error));
  expect (bl, pointer (AB_SLOT_A, AB_BOOT_STATE_GOOD, 0, AB_BOOT_STATE_BAD, 0));
  /* another boot's name (another generation) says nothing about this one */
  set_boot_count_path (t, "abdeploy-1-b+2-1.conf");
  expect (bl, pointer (AB_SLOT_B, AB_BOOT_STATE_GOOD, 0, AB_BOOT_STATE_TRIAL, 0));
  /* the last try in progress: the name systemd-boot booted is still there */
  set_boot_count_path (t, "abdeploy-2-b+0-1.conf");
  expect (bl, pointer (AB_SLOT_B, AB_BOOT_STATE_GOOD, 0, AB_BOOT_STATE_TRIAL, 0));
  g_unsetenv ("ABDEPLOY_EFIVARS_DIR");
  expect (bl, pointer (AB_SLOT_B, AB_BOOT_STATE_GOOD, 0, AB_BOOT_STATE_TRIAL, 0));
  /* the health check of the boot after: a hands over as before */
  save (bl, pointer (AB_SLOT_A, AB_BOOT_STATE_GOOD, 0, AB_BOOT_STATE_BAD, 0));
  assert_entries (t, "abdeploy-2-b+0-1.conf abdeploy-3-a.conf");
}

/* A rename cut short (FAT) leaves two names of one slot: the one
 * systemd-boot would boot counts, and the next save removes the other. */
static void
test_duplicates (TmpDir *t, gconstpointer data)
{
  g_autoptr(AbBootloader) bl = sdboot (t);
  stage (t, bl, AB_SLOT_A, "abdeploy.slot=a");
  save (bl, pointer (AB_SLOT_A, AB_BOOT_STATE_TRIAL, 3, AB_BOOT_STATE_NONE, 0));
  write_file_at (t->dfd, ENTRIES "abdeploy-1-a+2-1.conf", "title x\n");
  write_file_at (t->dfd, ENTRIES "abdeploy-0-a.staged", "title x\n");
  expect (bl, pointer (AB_SLOT_A, AB_BOOT_STATE_TRIAL, 3,
                                             AB_BOOT_STATE_NONE, 0));
  save (bl, pointer (AB_SLOT_A, AB_BOOT_STATE_GOOD, 0, AB_BOOT_STATE_NONE, 0));
  assert_entries (t, "abdeploy-1-a.conf");
}

static void
test_refusals (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(AbBootloader) bl = sdboot (t);
  AbBootPointer p = pointer (AB_SLOT_A, AB_BOOT_STATE_GOOD, 0, AB_BOOT_STATE_NONE, 0);
  g_assert_false (ab_bootloader_save (bl, &p, &error));
  g_assert_nonnull (strstr (error->message, "Slot a has no boot entry"));
  g_clear_error (&error);
  stage (t, bl, AB_SLOT_A, "abdeploy.slot=a");
  save (bl, p);
  /* the kernel of a slot systemd-boot may boot is never replaced */
  ab_autofd boot = ab_fs_opendir_at (t->dfd, "boot/abdeploy", &error);
  AbBootEntry entry = { .slot = AB_SLOT_A, .boot_dfd = boot, .kernel = "a/vmlinuz",
                        .kver = "6.1.0", .kernel_args = "abdeploy.slot=a", .os = "t" };
  g_assert_false (ab_bootloader_install_entry (bl, &entry, &error));
  g_assert_nonnull (strstr (error->message, "must be unbootable"));
  g_clear_error (&error);
  write_file_at (t->dfd, ENTRIES "abdeploy-x.conf", "title x\n");
  AbBootPointer back;
  g_assert_false (ab_bootloader_load (bl, &back, &error));
  g_assert_nonnull (strstr (error->message, "abdeploy-x.conf is not a name abdeploy writes"));
  g_clear_error (&error);
  g_assert_true (ab_fs_unlink_durable_at (t->dfd, ENTRIES "abdeploy-x.conf", &error));
  write_file_at (t->dfd, "efi/loader/loader.conf", "timeout 0\n  default abdeploy-*\n");
  g_assert_false (ab_bootloader_load (bl, &back, &error));
  g_assert_nonnull (strstr (error->message, "sets \"default abdeploy-*\""));
  g_clear_error (&error);
  write_file_at (t->dfd, "efi/loader/loader.conf", "timeout 0\ndefault-not\n#default x\n");
  assert_load (bl, &p);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  TMPDIR_TEST ("/bootloader-sdboot/setup-needs-an-esp", test_setup_needs_an_esp);
  TMPDIR_TEST ("/bootloader-sdboot/configured-paths", test_configured_paths);
  TMPDIR_TEST ("/bootloader-sdboot/stage-then-activate", test_stage_then_activate);
  TMPDIR_TEST ("/bootloader-sdboot/counting-and-rollback", test_counting_and_rollback);
  TMPDIR_TEST ("/bootloader-sdboot/duplicates", test_duplicates);
  TMPDIR_TEST ("/bootloader-sdboot/blessed-bad-this-boot", test_blessed_bad_this_boot);
  TMPDIR_TEST ("/bootloader-sdboot/refusals", test_refusals);
  return g_test_run ();
}
