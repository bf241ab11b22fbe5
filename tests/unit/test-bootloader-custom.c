/* The custom backend against a shell-script test double that keeps the
 * pointer in files under $ABDEPLOY_SYSROOT/custom-state and logs its calls. */
#include "config.h"
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "bootloaders/ab-bootloader.h"
#include "ab-config.h"
#include "ab-fsutil.h"
#include "ab-test-fixture.h"
#include "ab-test-bootloader.h"

/* Fault injection: the file "mode" holds "fail CALL", "garbage CALL",
 * "hang CALL" or "lie CALL" (succeed without doing anything). */
static const char backend_script[] =
  "#!/bin/sh\n"
  "state=\"$ABDEPLOY_SYSROOT/custom-state\"\n"
  "mkdir -p \"$state\"\n"
  "echo \"$*\" >> \"$ABDEPLOY_SYSROOT/calls.log\"\n"
  "mode=$(cat \"$ABDEPLOY_SYSROOT/mode\" 2>/dev/null)\n"
  "case \"$mode\" in\n"
  "  \"fail $1\") echo \"simulated failure of $1\" >&2; exit 3 ;;\n"
  "  \"garbage $1\") echo maybe; exit 0 ;;\n"
  "  \"hang $1\") sleep 30 & sleep 30; exit 0 ;;\n"
  "  \"lie $1\") exit 0 ;;\n"
  "esac\n"
  "case \"$1\" in\n"
  "  get-primary) cat \"$state/primary\" 2>/dev/null; exit 0 ;;\n"
  "  set-primary)\n"
  "    case \"$2\" in\n"
  "      a|b) echo \"$2\" > \"$state/primary.tmp\" && mv \"$state/primary.tmp\" \"$state/primary\" ;;\n"
  "      none) rm -f \"$state/primary\" ;;\n"
  "      *) echo \"bad slot $2\" >&2; exit 2 ;;\n"
  "    esac ;;\n"
  "  get-state) cat \"$state/$2\" 2>/dev/null || echo none ;;\n"
  "  set-state)\n"
  "    echo \"$3${4:+ $4}\" > \"$state/$2.tmp\" && mv \"$state/$2.tmp\" \"$state/$2\" ;;\n"
  "  *) echo \"unknown call $1\" >&2; exit 2 ;;\n"
  "esac\n";

/* Installs the test double at SYSROOT/NAME and a config naming it by KEY_VALUE. */
static AbConfig *
install_backend (TmpDir *t, const char *name, const char *key_value, const char *extra)
{
  write_file_at (t->dfd, name, backend_script);
  g_assert_cmpint (fchmodat (t->dfd, name, 0755, 0), ==, 0);
  g_autofree char *conf = g_strdup_printf ("[boot]\ncustom-backend=%s\n%s", key_value, extra);
  write_file_at (t->dfd, "etc/abdeploy/abdeploy.conf", conf);
  g_autoptr(GError) error = NULL;
  AbConfig *cfg = ab_config_load (t->dfd, NULL, &error);
  g_assert_no_error (error);
  return cfg;
}

static AbConfig *
install_backend_absolute (TmpDir *t, const char *extra)
{
  g_autofree char *abs = g_build_filename (t->path, "backend.sh", NULL);
  return install_backend (t, "backend.sh", abs, extra);
}

/* The set-* calls logged since the last call of this function. */
static char *
take_set_calls (TmpDir *t)
{
  g_autoptr(GString) sets = g_string_new (NULL);
  if (ab_fs_exists_at (t->dfd, "calls.log"))
    {
      g_autofree char *log = read_file_at (t->dfd, "calls.log");
      g_auto(GStrv) lines = g_strsplit (log, "\n", -1);
      for (char **l = lines; *l; l++)
        if (g_str_has_prefix (*l, "set-"))
          g_string_append_printf (sets, "%s;", *l);
      g_autoptr(GError) error = NULL;
      g_assert_true (ab_fs_unlink_durable_at (t->dfd, "calls.log", &error));
    }
  return g_string_free (g_steal_pointer (&sets), FALSE);
}

static void
test_roundtrip (TmpDir *t, gconstpointer data)
{
  g_autoptr(AbConfig) cfg = install_backend_absolute (t, "");
  g_autoptr(AbBootloader) bl = new_backend (t, "custom", cfg);
  g_autoptr(GError) error = NULL;
  g_assert_true (ab_bootloader_setup (bl, &error));
  g_assert_no_error (error);
  AbBootPointer empty;
  ab_boot_pointer_init (&empty);
  assert_load (bl, &empty);
  AbBootPointer p = pointer (AB_SLOT_B, AB_BOOT_STATE_GOOD, 0, AB_BOOT_STATE_TRIAL, 3);
  save_ok (bl, &p);
  assert_load (bl, &p);
  g_autofree char *b = read_file_at (t->dfd, "custom-state/b");
  g_assert_cmpstr (b, ==, "trial 3\n");
}

/* Only the calls that change something, the new primary's state first:
 * each save in turn, and the set-* calls it made. */
static void
test_save_order (TmpDir *t, gconstpointer data)
{
  static const struct
  {
    AbSlot primary;
    AbBootState a;
    AbBootState b;
    int b_tries;
    const char *calls;
  } saves[] = {
    { AB_SLOT_A, AB_BOOT_STATE_GOOD, AB_BOOT_STATE_NONE, 0, "set-state a good;set-primary a;" },
    /* activate b */
    { AB_SLOT_B, AB_BOOT_STATE_GOOD, AB_BOOT_STATE_TRIAL, 3, "set-state b trial 3;set-primary b;" },
    /* nothing changes */
    { AB_SLOT_B, AB_BOOT_STATE_GOOD, AB_BOOT_STATE_TRIAL, 3, "" },
    /* roll back: primary moves before b loses its state */
    { AB_SLOT_A, AB_BOOT_STATE_GOOD, AB_BOOT_STATE_BAD, 0, "set-primary a;set-state b bad;" },
    /* a rebuilt while b holds nothing: no primary, then the state */
    { AB_SLOT_NONE, AB_BOOT_STATE_NONE, AB_BOOT_STATE_BAD, 0, "set-primary none;set-state a none;" },
  };
  g_autoptr(AbConfig) cfg = install_backend_absolute (t, "");
  g_autoptr(AbBootloader) bl = new_backend (t, "custom", cfg);
  AbBootPointer p;
  for (guint i = 0; i < G_N_ELEMENTS (saves); i++)
    {
      p = pointer (saves[i].primary, saves[i].a, 0, saves[i].b, saves[i].b_tries);
      save_ok (bl, &p);
      g_autofree char *calls = take_set_calls (t);
      g_assert_cmpstr (calls, ==, saves[i].calls);
    }
  assert_load (bl, &p);
}

/* A relative path is inside the sysroot. */
static void
test_relative_path_is_in_sysroot (TmpDir *t, gconstpointer data)
{
  g_autoptr(AbConfig) cfg = install_backend (t, "usr/libexec/abd-backend",
                                             "usr/libexec/abd-backend", "");
  g_autoptr(AbBootloader) bl = new_backend (t, "custom", cfg);
  AbBootPointer p = pointer (AB_SLOT_A, AB_BOOT_STATE_TRIAL, 1, AB_BOOT_STATE_NONE, 0);
  save_ok (bl, &p);
  assert_load (bl, &p);
}

static void
test_missing_key (TmpDir *t, gconstpointer data)
{
  g_autoptr(AbBootloader) bl = new_backend (t, "custom", NULL);
  g_autoptr(GError) error = NULL;
  g_assert_false (ab_bootloader_setup (bl, &error));
  g_assert_error (error, AB_CONFIG_ERROR, AB_CONFIG_ERROR_INVALID);
  g_assert_nonnull (strstr (error->message, "[boot] custom-backend"));
}

static void
test_missing_executable (TmpDir *t, gconstpointer data)
{
  write_file_at (t->dfd, "etc/abdeploy/abdeploy.conf", "[boot]\ncustom-backend=/nonexistent/backend\n");
  g_autoptr(GError) error = NULL;
  g_autoptr(AbConfig) cfg = ab_config_load (t->dfd, NULL, &error);
  g_autoptr(AbBootloader) bl = new_backend (t, "custom", cfg);
  AbBootPointer p;
  g_assert_false (ab_bootloader_load (bl, &p, &error));
  g_assert_error (error, AB_BOOTLOADER_ERROR, AB_BOOTLOADER_ERROR_FAILED);
  g_assert_nonnull (strstr (error->message, "/nonexistent/backend get-primary"));
  g_assert_nonnull (strstr (error->message, "could not start"));
}

/* Setting up the backend must fail, without running it, with an error
 * holding NEEDLE. */
static void
assert_refused (TmpDir *t, const AbConfig *cfg, const char *needle)
{
  g_autoptr(AbBootloader) bl = new_backend (t, "custom", cfg);
  g_autoptr(GError) error = NULL;
  g_assert_false (ab_bootloader_setup (bl, &error));
  g_assert_error (error, AB_FS_ERROR, AB_FS_ERROR_UNSAFE);
  g_assert_nonnull (strstr (error->message, "custom bootloader backend"));
  if (strstr (error->message, needle) == NULL)
    g_error ("\"%s\" not in: %s", needle, error->message);
  g_assert_false (ab_fs_exists_at (t->dfd, "calls.log"));
}

/* The backend runs as root: held like a health hook (issue 11). */
static void
test_writable_executable_refused (TmpDir *t, gconstpointer data)
{
  g_autoptr(AbConfig) cfg = install_backend_absolute (t, "");
  g_assert_cmpint (fchmodat (t->dfd, "backend.sh", 0757, 0), ==, 0);
  assert_refused (t, cfg, "backend.sh is world-writable; run chmod o-w on it");
  g_assert_cmpint (fchmodat (t->dfd, "backend.sh", 0775, 0), ==, 0);
  g_assert_cmpint (fchownat (t->dfd, "backend.sh", -1, 4242, 0), ==, 0);
  assert_refused (t, cfg, "writable by group 4242; run chmod g-w on it");
  g_assert_cmpint (fchownat (t->dfd, "backend.sh", -1, 0, 0), ==, 0);
  if (geteuid () == 0)
    {
      g_assert_cmpint (fchownat (t->dfd, "backend.sh", 4242, -1, 0), ==, 0);
      assert_refused (t, cfg, "is owned by uid 4242, not root; run chown root on it");
      g_assert_cmpint (fchownat (t->dfd, "backend.sh", 0, -1, 0), ==, 0);
    }
  g_autoptr(AbBootloader) bl = new_backend (t, "custom", cfg);
  setup_ok (bl);
}

/* Every directory on the way to it as well; a sticky one (/tmp) is fine. */
static void
test_writable_directory_refused (TmpDir *t, gconstpointer data)
{
  g_autoptr(AbConfig) cfg = install_backend (t, "opt/bin/backend.sh", "opt/bin/backend.sh", "");
  g_assert_cmpint (fchmodat (t->dfd, "opt", 0777, 0), ==, 0);
  assert_refused (t, cfg, "directory ");
  assert_refused (t, cfg, "/opt is world-writable");
  g_assert_cmpint (fchmodat (t->dfd, "opt", 01777, 0), ==, 0);
  g_autoptr(AbBootloader) bl = new_backend (t, "custom", cfg);
  setup_ok (bl);
  /* a link to it from a writable directory: whoever may replace the link
   * decides what runs */
  g_assert_cmpint (fchmodat (t->dfd, "opt", 0755, 0), ==, 0);
  g_assert_true (ab_fs_unlink_durable_at (t->dfd, "calls.log", NULL));
  g_autofree char *target = g_build_filename (t->path, "opt/bin/backend.sh", NULL);
  g_assert_true (ab_fs_mkdir_p_at (t->dfd, "drop", 0777, NULL));
  g_assert_cmpint (fchmodat (t->dfd, "drop", 0777, 0), ==, 0);
  g_assert_cmpint (symlinkat (target, t->dfd, "drop/backend"), ==, 0);
  write_file_at (t->dfd, "etc/abdeploy/abdeploy.conf", "[boot]\ncustom-backend=drop/backend\n");
  g_autoptr(AbConfig) linked = ab_config_load (t->dfd, NULL, NULL);
  assert_refused (t, linked, "/drop is world-writable");
}

/* A backend whose set-* calls succeed but store nothing: the read-back
 * catches it, naming the backend, what was written and what was read. */
static void
test_save_that_stores_nothing (TmpDir *t, gconstpointer data)
{
  g_autoptr(AbConfig) cfg = install_backend_absolute (t, "");
  g_autoptr(AbBootloader) bl = new_backend (t, "custom", cfg);
  AbBootPointer good = pointer (AB_SLOT_A, AB_BOOT_STATE_GOOD, 0, AB_BOOT_STATE_NONE, 0);
  save_ok (bl, &good);
  write_file_at (t->dfd, "mode", "lie set-primary");
  AbBootPointer p = pointer (AB_SLOT_B, AB_BOOT_STATE_GOOD, 0, AB_BOOT_STATE_TRIAL, 3);
  g_autoptr(GError) error = NULL;
  g_assert_false (ab_bootloader_save (bl, &p, &error));
  g_assert_error (error, AB_BOOTLOADER_ERROR, AB_BOOTLOADER_ERROR_READ_BACK);
  const char *needles[] = { "custom backend", "wrote primary b, a good, b trial 3",
                            "read back primary a, a good, b trial 3", NULL };
  for (const char *const *n = needles; *n; n++)
    if (strstr (error->message, *n) == NULL)
      g_error ("\"%s\" not in: %s", *n, error->message);
}

/* The error names the executable, the call, the status and stderr. */
static void
test_failing_call (TmpDir *t, gconstpointer data)
{
  g_autoptr(AbConfig) cfg = install_backend_absolute (t, "");
  g_autoptr(AbBootloader) bl = new_backend (t, "custom", cfg);
  write_file_at (t->dfd, "mode", "fail set-primary\n");
  g_autoptr(GError) error = NULL;
  AbBootPointer p = pointer (AB_SLOT_B, AB_BOOT_STATE_NONE, 0, AB_BOOT_STATE_TRIAL, 2);
  g_assert_false (ab_bootloader_save (bl, &p, &error));
  g_assert_error (error, AB_BOOTLOADER_ERROR, AB_BOOTLOADER_ERROR_FAILED);
  g_autofree char *call = g_strdup_printf ("%s/backend.sh set-primary b", t->path);
  g_assert_nonnull (strstr (error->message, call));
  g_assert_nonnull (strstr (error->message, "exit status 3"));
  g_assert_nonnull (strstr (error->message, "simulated failure of set-primary"));
  /* The state was set before the failing set-primary: b is not primary. */
  g_assert_true (ab_fs_unlink_durable_at (t->dfd, "mode", &error));
  AbBootPointer now = pointer (AB_SLOT_NONE, AB_BOOT_STATE_NONE, 0, AB_BOOT_STATE_TRIAL, 2);
  assert_load (bl, &now);
}

static void
test_garbage_output (TmpDir *t, gconstpointer data)
{
  g_autoptr(AbConfig) cfg = install_backend_absolute (t, "");
  g_autoptr(AbBootloader) bl = new_backend (t, "custom", cfg);
  const char *calls[] = { "get-primary", "get-state" };
  for (guint i = 0; i < G_N_ELEMENTS (calls); i++)
    {
      g_autofree char *mode = g_strdup_printf ("garbage %s\n", calls[i]);
      write_file_at (t->dfd, "mode", mode);
      g_autoptr(GError) error = NULL;
      AbBootPointer p;
      g_assert_false (ab_bootloader_load (bl, &p, &error));
      g_assert_error (error, AB_BOOTLOADER_ERROR, AB_BOOTLOADER_ERROR_PARSE);
      g_assert_nonnull (strstr (error->message, calls[i]));
      g_assert_nonnull (strstr (error->message, "printed \"maybe\""));
    }
  /* "trial" needs its count, and counts stop at 9. */
  const char *bad_states[] = { "trial", "trial 10", "good 3", "Good" };
  g_assert_true (ab_fs_unlink_durable_at (t->dfd, "mode", NULL));
  for (guint i = 0; i < G_N_ELEMENTS (bad_states); i++)
    {
      g_autofree char *text = g_strdup_printf ("%s\n", bad_states[i]);
      write_file_at (t->dfd, "custom-state/a", text);
      g_autoptr(GError) error = NULL;
      AbBootPointer p;
      g_assert_false (ab_bootloader_load (bl, &p, &error));
      g_assert_error (error, AB_BOOTLOADER_ERROR, AB_BOOTLOADER_ERROR_PARSE);
    }
}

/* A hanging call is killed at its timeout, with what it started. */
static void
test_timeout (TmpDir *t, gconstpointer data)
{
  g_autoptr(AbConfig) cfg = install_backend_absolute (t, "custom-backend-timeout-sec=1\n");
  g_autoptr(AbBootloader) bl = new_backend (t, "custom", cfg);
  write_file_at (t->dfd, "mode", "hang get-state\n");
  g_autoptr(GError) error = NULL;
  AbBootPointer p;
  gint64 start = g_get_monotonic_time ();
  g_assert_false (ab_bootloader_load (bl, &p, &error));
  g_assert_cmpint (g_get_monotonic_time () - start, <, 10 * G_USEC_PER_SEC);
  g_assert_error (error, AB_BOOTLOADER_ERROR, AB_BOOTLOADER_ERROR_FAILED);
  g_assert_nonnull (strstr (error->message, "get-state a"));
  g_assert_nonnull (strstr (error->message, "timed out after 1 s"));
}

/* A bad timeout is refused when the configuration is read, before any call. */
static void
test_bad_timeout_value (TmpDir *t, gconstpointer data)
{
  write_file_at (t->dfd, "etc/abdeploy/abdeploy.conf",
                 "[boot]\ncustom-backend=/bin/true\ncustom-backend-timeout-sec=0\n");
  g_autoptr(GError) error = NULL;
  g_autoptr(AbConfig) cfg = ab_config_load (t->dfd, NULL, &error);
  g_assert_null (cfg);
  g_assert_error (error, AB_CONFIG_ERROR, AB_CONFIG_ERROR_INVALID);
  g_assert_nonnull (strstr (error->message, "custom-backend-timeout-sec"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  TMPDIR_TEST ("/bootloader-custom/roundtrip", test_roundtrip);
  TMPDIR_TEST ("/bootloader-custom/save-order", test_save_order);
  TMPDIR_TEST ("/bootloader-custom/relative-path", test_relative_path_is_in_sysroot);
  TMPDIR_TEST ("/bootloader-custom/missing-key", test_missing_key);
  TMPDIR_TEST ("/bootloader-custom/missing-executable", test_missing_executable);
  TMPDIR_TEST ("/bootloader-custom/failing-call", test_failing_call);
  TMPDIR_TEST ("/bootloader-custom/garbage-output", test_garbage_output);
  TMPDIR_TEST ("/bootloader-custom/timeout", test_timeout);
  TMPDIR_TEST ("/bootloader-custom/bad-timeout-value", test_bad_timeout_value);
  TMPDIR_TEST ("/bootloader-custom/writable-executable-refused", test_writable_executable_refused);
  TMPDIR_TEST ("/bootloader-custom/writable-directory-refused", test_writable_directory_refused);
  TMPDIR_TEST ("/bootloader-custom/save-that-stores-nothing", test_save_that_stores_nothing);
  return g_test_run ();
}
