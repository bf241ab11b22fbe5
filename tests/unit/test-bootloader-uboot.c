/* The uboot backend against real file-backed U-Boot environments, checked
 * with libubootenv's own tools (fw_printenv, fw_setenv). */
#include "config.h"
#include <string.h>
#include "bootloaders/ab-bootloader.h"
#include "ab-config.h"
#include "ab-test-fixture.h"
#include "ab-test-bootloader.h"

#define ENV_SIZE 0x4000

static char *
path_in (TmpDir *t, const char *name)
{
  return g_build_filename (t->path, name, NULL);
}

/* SYSROOT/etc/fw_env.config naming one or two env files of ENV_SIZE. */
static char *
write_env_config (TmpDir *t, const char *config, gboolean redundant)
{
  g_autofree char *one = path_in (t, "uboot-env.0");
  g_autofree char *two = path_in (t, "uboot-env.1");
  g_autofree char *text = g_strdup_printf ("# device offset size\n%s 0x0000 0x%x\n%s%s%s",
                                           one, ENV_SIZE, redundant ? two : "",
                                           redundant ? " 0x0000 0x4000" : "",
                                           redundant ? "\n" : "");
  write_file_at (t->dfd, config, text);
  return path_in (t, config);
}

static void
zero_file (TmpDir *t, const char *name)
{
  g_autofree char *zeros = g_malloc0 (ENV_SIZE);
  g_autoptr(GError) error = NULL;
  g_assert_true (ab_fs_replace_at (t->dfd, name, zeros, ENV_SIZE, 0644, &error));
  g_assert_no_error (error);
}

/* Runs ARGV; returns its stdout, asserting exit status 0. */
static char *
run_tool (const char *const *argv)
{
  g_autoptr(GError) error = NULL;
  char *out = NULL;
  g_autofree char *err = NULL;
  int status = 0;
  g_assert_true (g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL,
                               &out, &err, &status, &error));
  g_assert_no_error (error);
  if (!g_spawn_check_wait_status (status, NULL))
    g_error ("%s failed: %s", argv[0], err);
  return out;
}

static char *
fw_printenv (const char *config)
{
  const char *argv[] = { "fw_printenv", "-c", config, NULL };
  return run_tool (argv);
}

/* Setup creates the missing env file; what we write fw_printenv reads. */
static void
test_roundtrip_single_copy (TmpDir *t, gconstpointer data)
{
  g_autofree char *config = write_env_config (t, "etc/fw_env.config", FALSE);
  g_autoptr(AbBootloader) bl = new_backend (t, "uboot", NULL);
  setup_ok (bl);
  g_assert_true (ab_fs_exists_at (t->dfd, "uboot-env.0"));
  AbBootPointer empty;
  ab_boot_pointer_init (&empty);
  assert_load (bl, &empty);
  AbBootPointer p = pointer (AB_SLOT_B, AB_BOOT_STATE_GOOD, 0, AB_BOOT_STATE_TRIAL, 3);
  save_ok (bl, &p);
  assert_load (bl, &p);
  g_autofree char *out = fw_printenv (config);
  g_assert_nonnull (strstr (out, "ABDEPLOY_PRIMARY=b\n"));
  g_assert_nonnull (strstr (out, "ABDEPLOY_A_STATE=good\n"));
  g_assert_nonnull (strstr (out, "ABDEPLOY_A_TRIES=0\n"));
  g_assert_nonnull (strstr (out, "ABDEPLOY_B_STATE=trial\n"));
  g_assert_nonnull (strstr (out, "ABDEPLOY_B_TRIES=3\n"));
}

/* An empty primary is no variable at all, as U-Boot has no empty ones. */
static void
test_setup_is_idempotent (TmpDir *t, gconstpointer data)
{
  g_autofree char *config = write_env_config (t, "etc/fw_env.config", FALSE);
  g_autoptr(AbBootloader) bl = new_backend (t, "uboot", NULL);
  setup_ok (bl);
  g_autofree char *out = fw_printenv (config);
  g_assert_null (strstr (out, "ABDEPLOY_PRIMARY"));
  g_assert_nonnull (strstr (out, "ABDEPLOY_A_STATE=none\n"));
  AbBootPointer p = pointer (AB_SLOT_A, AB_BOOT_STATE_GOOD, 0, AB_BOOT_STATE_NONE, 0);
  save_ok (bl, &p);
  setup_ok (bl);
  assert_load (bl, &p);
}

/* Both copies are written in turn; U-Boot's rule (valid CRC, higher flags)
 * then reads the newest one, and a torn write of the newest copy leaves
 * the previous pointer readable. */
static void
test_redundant_env_keeps_previous_copy (TmpDir *t, gconstpointer data)
{
  g_autofree char *config = write_env_config (t, "etc/fw_env.config", TRUE);
  g_autoptr(AbBootloader) bl = new_backend (t, "uboot", NULL);
  setup_ok (bl);
  AbBootPointer p1 = pointer (AB_SLOT_A, AB_BOOT_STATE_GOOD, 0, AB_BOOT_STATE_NONE, 0);
  AbBootPointer p2 = pointer (AB_SLOT_B, AB_BOOT_STATE_GOOD, 0, AB_BOOT_STATE_TRIAL, 3);
  save_ok (bl, &p1);
  save_ok (bl, &p2);
  assert_load (bl, &p2);
  g_autofree char *out = fw_printenv (config);
  g_assert_nonnull (strstr (out, "ABDEPLOY_PRIMARY=b\n"));
  /* The newer copy has the higher flags byte (offset 4, after the CRC). */
  gsize len0 = 0, len1 = 0;
  g_autofree char *c0 = NULL, *c1 = NULL;
  g_autoptr(GError) error = NULL;
  g_assert_true (ab_fs_read_at (t->dfd, "uboot-env.0", &c0, &len0, &error));
  g_assert_true (ab_fs_read_at (t->dfd, "uboot-env.1", &c1, &len1, &error));
  g_assert_cmpuint (len0, ==, ENV_SIZE);
  g_assert_cmpuint (len1, ==, ENV_SIZE);
  gboolean newest_is_0 = (guchar) c0[4] > (guchar) c1[4];
  char *newest = newest_is_0 ? c0 : c1;
  g_assert_nonnull (memmem (newest, ENV_SIZE, "ABDEPLOY_PRIMARY=b", 18));
  newest[10] ^= 0x55; /* a torn write: the CRC no longer matches */
  g_assert_true (ab_fs_replace_at (t->dfd, newest_is_0 ? "uboot-env.0" : "uboot-env.1",
                                   newest, ENV_SIZE, 0644, &error));
  assert_load (bl, &p1);
}

/* Values written by fw_setenv are read by load(); other variables survive
 * our save(); garbage is refused. */
static void
test_interop_with_fw_setenv (TmpDir *t, gconstpointer data)
{
  g_autofree char *config = write_env_config (t, "etc/fw_env.config", TRUE);
  g_autoptr(AbBootloader) bl = new_backend (t, "uboot", NULL);
  setup_ok (bl);
  const char *set[] = { "fw_setenv", "-c", config, "-s", "-", NULL };
  g_autofree char *script = path_in (t, "set.txt");
  write_file_at (t->dfd, "set.txt",
                 "ABDEPLOY_PRIMARY=a\nABDEPLOY_A_STATE=trial\nABDEPLOY_A_TRIES=2\n"
                 "ABDEPLOY_B_STATE=bad\nbootcmd=run abdeploy\n");
  set[4] = script;
  g_free (run_tool (set));
  AbBootPointer expected = pointer (AB_SLOT_A, AB_BOOT_STATE_TRIAL, 2, AB_BOOT_STATE_BAD, 0);
  assert_load (bl, &expected);
  AbBootPointer p = pointer (AB_SLOT_B, AB_BOOT_STATE_BAD, 0, AB_BOOT_STATE_GOOD, 0);
  save_ok (bl, &p);
  g_autofree char *out = fw_printenv (config);
  g_assert_nonnull (strstr (out, "bootcmd=run abdeploy\n"));
  g_assert_nonnull (strstr (out, "ABDEPLOY_PRIMARY=b\n"));
  const char *garbage[] = { "fw_setenv", "-c", config, "ABDEPLOY_B_TRIES", "x", NULL };
  g_free (run_tool (garbage));
  g_autoptr(GError) error = NULL;
  AbBootPointer back;
  g_assert_false (ab_bootloader_load (bl, &back, &error));
  g_assert_error (error, AB_BOOTLOADER_ERROR, AB_BOOTLOADER_ERROR_PARSE);
  g_assert_nonnull (strstr (error->message, "ABDEPLOY_B_TRIES=x"));
}

/* A pointer variable that fw_setenv deleted or set out of range is an
 * error naming the variable and the fw_setenv call that fixes it. */
static void
test_bad_variables_name_the_fix (TmpDir *t, gconstpointer data)
{
  g_autofree char *config = write_env_config (t, "etc/fw_env.config", TRUE);
  g_autoptr(AbBootloader) bl = new_backend (t, "uboot", NULL);
  setup_ok (bl);
  const char *weird[] = { "fw_setenv", "-c", config, "ABDEPLOY_A_STATE", "weird", NULL };
  g_free (run_tool (weird));
  g_autoptr(GError) error = NULL;
  AbBootPointer back;
  g_assert_false (ab_bootloader_load (bl, &back, &error));
  g_assert_error (error, AB_BOOTLOADER_ERROR, AB_BOOTLOADER_ERROR_PARSE);
  g_assert_nonnull (strstr (error->message, "ABDEPLOY_A_STATE=weird"));
  g_assert_nonnull (strstr (error->message, "fw_setenv -c"));
  g_clear_error (&error);
  const char *unset[] = { "fw_setenv", "-c", config, "ABDEPLOY_A_STATE", NULL };
  g_free (run_tool (unset));
  g_assert_false (ab_bootloader_load (bl, &back, &error));
  g_assert_error (error, AB_BOOTLOADER_ERROR, AB_BOOTLOADER_ERROR_PARSE);
  g_assert_nonnull (strstr (error->message, "ABDEPLOY_A_STATE is missing"));
}

/* A blank environment starts from U-Boot's default environment file. */
static void
test_blank_env_starts_from_defaults (TmpDir *t, gconstpointer data)
{
  g_autofree char *config = write_env_config (t, "etc/fw_env.config", FALSE);
  zero_file (t, "uboot-env.0");
  write_file_at (t->dfd, "etc/u-boot-initial-env", "bootcmd=run distro_bootcmd\nbootdelay=2\n");
  g_autoptr(AbBootloader) bl = new_backend (t, "uboot", NULL);
  g_autoptr(GError) error = NULL;
  AbBootPointer p;
  g_assert_false (ab_bootloader_load (bl, &p, &error));
  g_assert_error (error, AB_BOOTLOADER_ERROR, AB_BOOTLOADER_ERROR_PARSE);
  g_assert_nonnull (strstr (error->message, "no valid copy"));
  setup_ok (bl);
  g_autofree char *out = fw_printenv (config);
  g_assert_nonnull (strstr (out, "bootcmd=run distro_bootcmd\n"));
  g_assert_nonnull (strstr (out, "bootdelay=2\n"));
  g_assert_nonnull (strstr (out, "ABDEPLOY_A_STATE=none\n"));
}

/* A single copy damaged by a torn write: load() says so, save() repairs. */
static void
test_damaged_single_copy_is_rewritten (TmpDir *t, gconstpointer data)
{
  g_free (write_env_config (t, "etc/fw_env.config", FALSE));
  g_autoptr(AbBootloader) bl = new_backend (t, "uboot", NULL);
  setup_ok (bl);
  zero_file (t, "uboot-env.0");
  g_autoptr(GError) error = NULL;
  AbBootPointer p;
  g_assert_false (ab_bootloader_load (bl, &p, &error));
  g_assert_nonnull (strstr (error->message, "no valid copy"));
  AbBootPointer q = pointer (AB_SLOT_A, AB_BOOT_STATE_GOOD, 0, AB_BOOT_STATE_NONE, 0);
  save_ok (bl, &q);
  assert_load (bl, &q);
}

/* [boot] uboot-env-config: relative paths are inside the sysroot. */
static void
test_config_key (TmpDir *t, gconstpointer data)
{
  g_autofree char *config = write_env_config (t, "boot/uboot/fw_env.config", FALSE);
  write_file_at (t->dfd, "etc/abdeploy/abdeploy.conf",
                 "[boot]\nuboot-env-config=boot/uboot/fw_env.config\n");
  g_autoptr(GError) error = NULL;
  g_autoptr(AbConfig) cfg = ab_config_load (t->dfd, NULL, &error);
  g_assert_no_error (error);
  g_autoptr(AbBootloader) bl = new_backend (t, "uboot", cfg);
  setup_ok (bl);
  AbBootPointer p = pointer (AB_SLOT_B, AB_BOOT_STATE_NONE, 0, AB_BOOT_STATE_TRIAL, 1);
  save_ok (bl, &p);
  g_autofree char *out = fw_printenv (config);
  g_assert_nonnull (strstr (out, "ABDEPLOY_B_TRIES=1\n"));
}

static void
test_missing_config_names_the_key (TmpDir *t, gconstpointer data)
{
  g_autoptr(AbBootloader) bl = new_backend (t, "uboot", NULL);
  g_autoptr(GError) error = NULL;
  g_assert_false (ab_bootloader_setup (bl, &error));
  g_assert_error (error, AB_CONFIG_ERROR, AB_CONFIG_ERROR_INVALID);
  g_assert_nonnull (strstr (error->message, "uboot-env-config"));
  g_assert_nonnull (strstr (error->message, "etc/fw_env.config"));
}

/* A device under /dev is never created; libubootenv's refusal is reported. */
static void
test_missing_device_is_an_error (TmpDir *t, gconstpointer data)
{
  write_file_at (t->dfd, "etc/fw_env.config", "/dev/abdeploy-no-such-device 0x0 0x4000\n");
  g_autoptr(AbBootloader) bl = new_backend (t, "uboot", NULL);
  g_autoptr(GError) error = NULL;
  g_assert_false (ab_bootloader_setup (bl, &error));
  g_assert_error (error, AB_BOOTLOADER_ERROR, AB_BOOTLOADER_ERROR_FAILED);
  g_assert_nonnull (strstr (error->message, "Invalid U-Boot environment configuration"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  TMPDIR_TEST ("/bootloader-uboot/roundtrip-single-copy", test_roundtrip_single_copy);
  TMPDIR_TEST ("/bootloader-uboot/setup-is-idempotent", test_setup_is_idempotent);
  TMPDIR_TEST ("/bootloader-uboot/redundant-keeps-previous-copy",
               test_redundant_env_keeps_previous_copy);
  TMPDIR_TEST ("/bootloader-uboot/interop-fw-setenv", test_interop_with_fw_setenv);
  TMPDIR_TEST ("/bootloader-uboot/bad-variables-name-the-fix", test_bad_variables_name_the_fix);
  TMPDIR_TEST ("/bootloader-uboot/blank-env-starts-from-defaults",
               test_blank_env_starts_from_defaults);
  TMPDIR_TEST ("/bootloader-uboot/damaged-single-copy-rewritten",
               test_damaged_single_copy_is_rewritten);
  TMPDIR_TEST ("/bootloader-uboot/config-key", test_config_key);
  TMPDIR_TEST ("/bootloader-uboot/missing-config", test_missing_config_names_the_key);
  TMPDIR_TEST ("/bootloader-uboot/missing-device", test_missing_device_is_an_error);
  return g_test_run ();
}
