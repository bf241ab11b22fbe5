#include "config.h"
#include <string.h>
#include "bootloaders/ab-bootloader.h"
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
  g_autoptr(AbBootloader) bl = ab_bootloader_new (backend, t->dfd, t->path, NULL, &error);
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
  g_autoptr(AbBootloader) bl = ab_bootloader_new ("lilo", t->dfd, t->path, NULL, &error);
  g_assert_null (bl);
  g_assert_error (error, AB_BOOTLOADER_ERROR, AB_BOOTLOADER_ERROR_UNKNOWN_BACKEND);
}

/* An unknown name is refused with every valid name in the message. */
static void
test_unknown_backend_lists_names (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(AbBootloader) bl = ab_bootloader_new ("lilo", t->dfd, t->path, NULL, &error);
  g_assert_null (bl);
  g_assert_nonnull (strstr (error->message, "\"lilo\""));
  for (const AbBootloaderOps *const *b = ab_bootloader_backends (); *b != NULL; b++)
    g_assert_nonnull (strstr (error->message, (*b)->name));
}

/* The table is the one list of backends: every entry complete, every name
 * found by lookup and listed by names_text, the default in it, and the
 * capability to install kernels held exactly by backends with the hook. */
static void
test_backend_table (void)
{
  g_autofree char *names = ab_bootloader_names_text ();
  g_autoptr(GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  guint n = 0;
  for (const AbBootloaderOps *const *b = ab_bootloader_backends (); *b != NULL; b++, n++)
    {
      const AbBootloaderOps *ops = *b;
      g_assert_true (ops->name && *ops->name && ops->summary && *ops->summary && ops->location);
      g_assert_true (ops->setup && ops->load && ops->save);
      g_assert_true (g_hash_table_add (seen, (char *) ops->name));
      g_assert_true (ab_bootloader_lookup (ops->name) == ops);
      g_assert_nonnull (strstr (names, ops->name));
      g_assert_cmpint ((ops->caps & AB_BOOTLOADER_CAP_INSTALLS_KERNELS) != 0, ==,
                       ops->install_entry != NULL);
    }
  g_assert_cmpuint (n, >=, 4);
  g_assert_true (g_str_has_prefix (names, AB_BOOTLOADER_DEFAULT ", "));
  g_assert_nonnull (strstr (names, " or "));
  g_assert_nonnull (ab_bootloader_lookup (AB_BOOTLOADER_DEFAULT));
  g_assert_null (ab_bootloader_lookup ("lilo"));
  g_assert_null (ab_bootloader_lookup (NULL));
  g_assert_true (ab_bootloader_lookup ("file")->caps & AB_BOOTLOADER_CAP_ATOMIC_POINTER);
  g_assert_false (ab_bootloader_lookup ("custom")->caps & AB_BOOTLOADER_CAP_ATOMIC_POINTER);
}

static const AbBootEntry *hook_saw;

static gboolean
hook_fails (AbBootloader *self, const AbBootEntry *entry, GError **error)
{
  hook_saw = entry;
  g_set_error (error, AB_BOOTLOADER_ERROR, AB_BOOTLOADER_ERROR_FAILED, "disk full");
  return FALSE;
}

/* ab_bootloader_install_entry() runs the hook with the entry as given and
 * names the backend and the slot in its errors; without a hook (every
 * backend that boots boot/abdeploy/<slot>/ itself) it does nothing. */
static void
test_install_entry_hook (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  AbBootEntry entry = { .slot = AB_SLOT_B, .boot_dfd = t->dfd, .kernel = "b/vmlinuz",
                        .kver = "6.1.0", .kernel_args = "abdeploy.slot=b", .os = "test" };
  g_autoptr(AbBootloader) file = ab_bootloader_new ("file", t->dfd, t->path, NULL, &error);
  g_assert_false (ab_bootloader_has_cap (file, AB_BOOTLOADER_CAP_INSTALLS_KERNELS));
  g_assert_true (ab_bootloader_install_entry (file, &entry, &error));
  g_assert_no_error (error);
  AbBootloaderOps ops = *ab_bootloader_lookup ("file");
  ops.name = "test-hook";
  ops.caps |= AB_BOOTLOADER_CAP_INSTALLS_KERNELS;
  ops.install_entry = hook_fails;
  AbBootloader bl = { .ops = &ops, .sysroot_dfd = t->dfd };
  g_assert_true (ab_bootloader_has_cap (&bl, AB_BOOTLOADER_CAP_INSTALLS_KERNELS
                                             | AB_BOOTLOADER_CAP_ATOMIC_POINTER));
  g_assert_false (ab_bootloader_has_cap (&bl, AB_BOOTLOADER_CAP_NEEDS_ESP));
  g_assert_false (ab_bootloader_install_entry (&bl, &entry, &error));
  g_assert_true (hook_saw == &entry);
  g_assert_error (error, AB_BOOTLOADER_ERROR, AB_BOOTLOADER_ERROR_FAILED);
  g_assert_cmpstr (error->message, ==,
                   "Installing the boot entry of slot b (test-hook backend): disk full");
}

static void
test_file_rejects_bad_values (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(AbBootloader) bl = ab_bootloader_new ("file", t->dfd, t->path, NULL, &error);
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

/* Loading must fail with a message holding every one of NEEDLES. */
static void
assert_load_fails (AbBootloader *bl, const char *const *needles)
{
  g_autoptr(GError) error = NULL;
  AbBootPointer p;
  g_assert_false (ab_bootloader_load (bl, &p, &error));
  g_assert_error (error, AB_BOOTLOADER_ERROR, AB_BOOTLOADER_ERROR_PARSE);
  for (const char *const *n = needles; *n; n++)
    if (strstr (error->message, *n) == NULL)
      g_error ("\"%s\" not in: %s", *n, error->message);
}

#define GOOD_TAIL "ABDEPLOY_A_STATE=good\nABDEPLOY_A_TRIES=0\nABDEPLOY_B_STATE=trial\nABDEPLOY_B_TRIES=3\n"

/* A hand-edited pointer is read exactly or not at all (issue 11): an
 * unknown, repeated or missing variable was read as "no primary". */
static void
test_file_malformed_lines_are_errors (TmpDir *t, gconstpointer data)
{
  g_autoptr(AbBootloader) bl = ab_bootloader_new ("file", t->dfd, t->path, NULL, NULL);
  g_autoptr(GError) error = NULL;
  g_assert_true (ab_bootloader_setup (bl, &error));
  write_file_at (t->dfd, "boot/abdeploy/pointer",
                 "ABDEPLOY_FORMAT=1\n# slot b next\nABDEPLOY_PRIMRY=b\n" GOOD_TAIL);
  const char *typo[] = { "boot/abdeploy/pointer", "line 3", "unknown variable \"ABDEPLOY_PRIMRY\"",
                         "Fix or delete that line", NULL };
  assert_load_fails (bl, typo);
  write_file_at (t->dfd, "boot/abdeploy/pointer",
                 "ABDEPLOY_FORMAT=1\nABDEPLOY_PRIMARY =b\n" GOOD_TAIL);
  const char *spaced[] = { "line 2", "unknown variable \"ABDEPLOY_PRIMARY \"", NULL };
  assert_load_fails (bl, spaced);
  write_file_at (t->dfd, "boot/abdeploy/pointer", "ABDEPLOY_FORMAT=1\n" GOOD_TAIL);
  const char *missing[] = { "ABDEPLOY_PRIMARY is missing", "Add the line", NULL };
  assert_load_fails (bl, missing);
  write_file_at (t->dfd, "boot/abdeploy/pointer",
                 "ABDEPLOY_FORMAT=1\nABDEPLOY_PRIMARY=b\n" GOOD_TAIL "ABDEPLOY_PRIMARY=a\n");
  const char *twice[] = { "line 7", "ABDEPLOY_PRIMARY is set a second time", NULL };
  assert_load_fails (bl, twice);
  write_file_at (t->dfd, "boot/abdeploy/pointer",
                 "ABDEPLOY_FORMAT=1\nABDEPLOY_PRIMARY=b\nABDEPLOY_A_STATE=weird\n"
                 "ABDEPLOY_A_TRIES=0\nABDEPLOY_B_STATE=trial\nABDEPLOY_B_TRIES=x\n");
  const char *value[] = { "line 3", "ABDEPLOY_A_STATE=weird", NULL };
  assert_load_fails (bl, value);
  /* comments and blank lines stay allowed */
  write_file_at (t->dfd, "boot/abdeploy/pointer",
                 "# kept by hand\nABDEPLOY_FORMAT=1\n\nABDEPLOY_PRIMARY=b\n" GOOD_TAIL);
  AbBootPointer back, expected = sample_pointer ();
  g_assert_true (ab_bootloader_load (bl, &back, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (&back, sizeof back, &expected, sizeof expected);
}

static void
grub_editenv (TmpDir *t, const char *args)
{
  g_autofree char *env = g_build_filename (t->path, "boot/grub/grubenv", NULL);
  g_autofree char *cmd = g_strdup_printf ("grub-editenv %s %s", env, args);
  g_autoptr(GError) error = NULL;
  int status = 0;
  g_assert_true (g_spawn_command_line_sync (cmd, NULL, NULL, &status, &error));
  g_assert_cmpint (status, ==, 0);
}

/* The variables abdeploy owns in the GRUB env block: out of range or
 * missing is an error that says how to fix it. */
static void
test_grub_bad_variables_name_the_fix (TmpDir *t, gconstpointer data)
{
  g_autoptr(AbBootloader) bl = ab_bootloader_new ("grub", t->dfd, t->path, NULL, NULL);
  g_autoptr(GError) error = NULL;
  g_assert_true (ab_bootloader_setup (bl, &error));
  grub_editenv (t, "set ABDEPLOY_A_TRIES=x");
  const char *tries[] = { "boot/grub/grubenv", "ABDEPLOY_A_TRIES=x", "grub-editenv", NULL };
  assert_load_fails (bl, tries);
  grub_editenv (t, "set ABDEPLOY_A_TRIES=0 ABDEPLOY_B_STATE=weird");
  const char *state[] = { "ABDEPLOY_B_STATE=weird", "grub-editenv", NULL };
  assert_load_fails (bl, state);
  grub_editenv (t, "set ABDEPLOY_B_STATE=none");
  grub_editenv (t, "unset ABDEPLOY_PRIMARY");
  const char *missing[] = { "ABDEPLOY_PRIMARY is missing", "grub-editenv", NULL };
  assert_load_fails (bl, missing);
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
  TMPDIR_TEST ("/bootloader/unknown-backend-lists-names", test_unknown_backend_lists_names);
  g_test_add_func ("/bootloader/backend-table", test_backend_table);
  TMPDIR_TEST ("/bootloader/install-entry-hook", test_install_entry_hook);
  TMPDIR_TEST ("/bootloader/file-rejects-bad-values", test_file_rejects_bad_values);
  TMPDIR_TEST ("/bootloader/file-malformed-lines-are-errors", test_file_malformed_lines_are_errors);
  TMPDIR_TEST ("/bootloader/grub-bad-variables-name-the-fix", test_grub_bad_variables_name_the_fix);
  g_test_add_func ("/bootloader/next-boot-rules", test_next_boot_rules);
  return g_test_run ();
}
