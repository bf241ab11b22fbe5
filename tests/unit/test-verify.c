/* ab-verify: a slot's tree against its commit (ab_verify_tree), the checks
 * of abdeploy verify (ab_verify_run) and the version report, on a real
 * sysroot with a commit published, signed and staged by abdeploy. */
#include "config.h"
#include <string.h>
#include "ab-verify.h"
#include "ab-test-sysroot.h"

static AbCheck *
find_check (GPtrArray *checks, const char *name)
{
  for (guint i = 0; i < checks->len; i++)
    if (strcmp (((AbCheck *) checks->pdata[i])->name, name) == 0)
      return checks->pdata[i];
  g_error ("no check %s", name);
}

/* Verifies the whole tree of SLOT; returns the first mismatch or NULL. */
static char *
verify_full (SysrootFixture *fx, AbSlot slot, const char *commit, guint *out_checked)
{
  g_autoptr(AbSysroot) s = open_sysroot (fx);
  g_autoptr(GError) error = NULL;
  char *mismatch = NULL;
  g_assert_true (ab_verify_tree (s, slot, commit, TRUE, 0, out_checked, &mismatch, &error));
  g_assert_no_error (error);
  return mismatch;
}

static char *
slot_file (SysrootFixture *fx, AbSlot slot, const char *rel)
{
  return g_build_filename (fx->sysroot, "abdeploy/slots", ab_slot_name (slot), rel, NULL);
}

static void
test_tree_matches (SysrootFixture *fx, gconstpointer data)
{
  g_autofree char *commit = publish_image (fx, "1.0", "usr/bin/tool");
  AbSlot slot = stage_commit (fx, commit);
  guint checked = 0;
  g_autofree char *mismatch = verify_full (fx, slot, commit, &checked);
  g_assert_null (mismatch);
  g_assert_cmpuint (checked, ==, 3); /* vmlinuz, version, tool */
}

/* A changed content, a changed mode and a missing file are each found,
 * with the path named. */
static void
test_tree_mismatch (SysrootFixture *fx, gconstpointer data)
{
  g_autofree char *commit = publish_image (fx, "1.0", "usr/bin/tool");
  AbSlot slot = stage_commit (fx, commit);
  g_autofree char *version = slot_file (fx, slot, "usr/share/version");
  g_autofree char *tool = slot_file (fx, slot, "usr/bin/tool");
  guint checked = 0;

  g_assert_true (g_file_set_contents (version, "2.0", -1, NULL));
  g_autofree char *m1 = verify_full (fx, slot, commit, &checked);
  g_assert_nonnull (m1);
  g_assert_nonnull (strstr (m1, "usr/share/version"));
  g_assert_true (g_file_set_contents (version, "1.0", -1, NULL));
  g_assert_true (g_chmod (version, 0644) == 0);

  g_assert_cmpint (g_chmod (tool, 04755), ==, 0);
  g_autofree char *m2 = verify_full (fx, slot, commit, &checked);
  g_assert_nonnull (m2);
  g_assert_nonnull (strstr (m2, "usr/bin/tool"));
  g_assert_cmpint (g_chmod (tool, 0644), ==, 0);

  g_autofree char *m3 = verify_full (fx, slot, commit, &checked);
  g_assert_null (m3);
  g_assert_cmpint (g_unlink (tool), ==, 0);
  g_autofree char *m4 = verify_full (fx, slot, commit, &checked);
  g_assert_nonnull (m4);
  g_assert_nonnull (strstr (m4, "usr/bin/tool"));
}

static void
test_tree_sample (SysrootFixture *fx, gconstpointer data)
{
  g_autofree char *commit = publish_image (fx, "1.0", "usr/bin/tool");
  AbSlot slot = stage_commit (fx, commit);
  g_autoptr(AbSysroot) s = open_sysroot (fx);
  g_autoptr(GError) error = NULL;
  g_autofree char *mismatch = NULL;
  guint checked = 0;
  g_assert_true (ab_verify_tree (s, slot, commit, FALSE, 2, &checked, &mismatch, &error));
  g_assert_no_error (error);
  g_assert_null (mismatch);
  g_assert_cmpuint (checked, ==, 2);
}

/* A fresh sysroot: every check is reported, and those that need a
 * deployment fail with the reason. */
static void
test_run_empty (SysrootFixture *fx, gconstpointer data)
{
  g_autoptr(AbSysroot) s = open_sysroot (fx);
  AbVerifyOptions o = { .full = TRUE };
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) checks = ab_verify_run (s, &o, &error);
  g_assert_no_error (error);
  const char *names[] = { "booted-primary-good", "tree-matches-commit", "state-consistent",
                          "health-green", "no-stuck-transaction" };
  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    find_check (checks, names[i]);
  g_assert_false (ab_verify_all_passed (checks));
  AbCheck *tree = find_check (checks, "tree-matches-commit");
  g_assert_false (tree->passed);
  g_assert_cmpstr (tree->reason, ==, "no deployed slot to check");
  g_assert_true (find_check (checks, "no-stuck-transaction")->passed);
  g_autoptr(JsonNode) json = ab_verify_to_json (checks);
  JsonObject *jo = json_node_get_object (json);
  g_assert_false (json_object_get_boolean_member (jo, "passed"));
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (jo, "checks")), ==,
                    checks->len);
}

/* Offline, the primary slot is the one checked; a damaged file in it
 * fails tree-matches-commit. */
static void
test_run_deployed (SysrootFixture *fx, gconstpointer data)
{
  g_autofree char *commit = publish_image (fx, "1.0", NULL);
  AbSlot slot = stage_commit (fx, commit);
  g_autoptr(GError) error = NULL;
  {
    g_autoptr(AbSysroot) s = open_sysroot (fx);
    AbSlot activated = AB_SLOT_NONE;
    g_assert_true (ab_deploy_activate (s, 0, &activated, &error));
    g_assert_no_error (error);
    g_assert_cmpint (activated, ==, slot);
  }
  g_autoptr(AbSysroot) s = open_sysroot (fx);
  AbVerifyOptions o = { .full = TRUE };
  g_autoptr(GPtrArray) checks = ab_verify_run (s, &o, &error);
  g_assert_no_error (error);
  AbCheck *tree = find_check (checks, "tree-matches-commit");
  g_assert_true (tree->passed);
  g_assert_false (find_check (checks, "booted-primary-good")->passed); /* offline */
  g_autofree char *version = slot_file (fx, slot, "usr/share/version");
  g_assert_true (g_file_set_contents (version, "tampered", -1, NULL));
  g_autoptr(GPtrArray) again = ab_verify_run (s, &o, &error);
  g_assert_false (find_check (again, "tree-matches-commit")->passed);
  g_assert_nonnull (strstr (find_check (again, "tree-matches-commit")->reason,
                            "usr/share/version"));

  g_autoptr(JsonNode) report = ab_version_report (s, &error);
  g_assert_no_error (error);
  JsonObject *r = json_node_get_object (report);
  g_assert_cmpstr (json_object_get_string_member (r, "os"), ==, "testos");
  g_assert_cmpstr (json_object_get_string_member (r, "version"), ==, "1.0");
  g_assert_cmpstr (json_object_get_string_member (r, "commit"), ==, commit);
  g_assert_cmpstr (json_object_get_string_member (r, "slot"), ==, ab_slot_name (slot));
  g_assert_nonnull (json_object_get_string_member (r, "build_time"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  test_key_setup ();
  SYSROOT_TEST ("/verify/tree-matches", test_tree_matches);
  SYSROOT_TEST ("/verify/tree-mismatch", test_tree_mismatch);
  SYSROOT_TEST ("/verify/tree-sample", test_tree_sample);
  SYSROOT_TEST ("/verify/run-empty", test_run_empty);
  SYSROOT_TEST ("/verify/run-deployed", test_run_deployed);
  int ret = g_test_run ();
  test_key_teardown ();
  return ret;
}
