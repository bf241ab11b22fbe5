/* The hook runner (ab-hooks): a hook is held to its deadline whatever its
 * output does, and its output costs bounded memory and is stored as valid
 * UTF-8; discovery (order, /etc over /usr/lib, greenboot directories, links
 * resolved inside the tree) and a stage run with pass, fail and refusal.
 * Real hooks (shell scripts) in a scratch directory. */
#include "config.h"
#include "ab-hooks.h"
#include "ab-test-fixture.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/stat.h>

static AbHookResult *
run_hook (TmpDir *t, const char *name, const char *script, guint timeout_sec)
{
  g_autofree char *text = g_strconcat ("#!/bin/sh\n", script, "\n", NULL);
  write_file_at (t->dfd, name, text);
  g_assert_cmpint (fchmodat (t->dfd, name, 0755, 0), ==, 0);
  g_autofree char *path = g_build_filename (t->path, name, NULL);
  AbHook hook = { .name = (char *) name, .path = path };
  g_auto(GStrv) env = g_get_environ ();
  AbHookRunOptions opts = { .default_timeout_sec = timeout_sec, .env = env };
  return ab_hooks_run_one (&hook, AB_HOOK_STAGE_REQUIRED, &opts);
}

/* The pid the hook wrote to NAME is gone (bounded wait). */
static void
assert_gone (TmpDir *t, const char *name)
{
  g_autofree char *text = read_file_at (t->dfd, name);
  int pid = atoi (text);
  g_assert_cmpint (pid, >, 1);
  for (int i = 0; i < 100 && kill (pid, 0) == 0; i++)
    g_usleep (50000);
  g_assert_cmpint (kill (pid, 0), <, 0);
}

static void
test_closed_output_held_to_deadline (TmpDir *t, gconstpointer data)
{
  /* The old runner took EOF for the end of the hook and waited forever
   * (the meson test timeout bounds this test). */
  g_autoptr(AbHookResult) res = run_hook (t, "closes", "echo $$ > pid\necho bye\n"
                                          "exec >&- 2>&-\nexec sleep 1000", 1);
  g_assert_cmpint (res->result, ==, AB_HOOK_TIMEOUT);
  g_assert_cmpint (res->signal, ==, SIGTERM);
  g_assert_cmpstr (res->output_tail, ==, "bye\n");
  g_assert_nonnull (strstr (res->message, "timed out after 1 s"));
  assert_gone (t, "pid");
}

static void
test_exit_decides_not_eof (TmpDir *t, gconstpointer data)
{
  /* A child in its own session holds the output forever; the hook's own
   * exit status decides, within the drain period after its exit. */
  g_autoptr(AbHookResult) res = run_hook (t, "escapes", "setsid sleep 1000 &\necho $! > pid\n"
                                          "echo done\nexit 4", 60);
  g_assert_cmpint (res->result, ==, AB_HOOK_FAIL);
  g_assert_cmpint (res->exit_status, ==, 4);
  g_assert_cmpstr (res->output_tail, ==, "done\n");
  g_assert_cmpfloat (res->duration_sec, <, 30);
  g_autofree char *text = read_file_at (t->dfd, "pid");
  kill (atoi (text), SIGKILL);
}

static void
test_output_bounded (TmpDir *t, gconstpointer data)
{
  /* 256 MiB without a newline: the old runner's echo line alone would
   * hold all of it (echo is off here, so this checks the stored tail). */
  struct rusage before, after;
  getrusage (RUSAGE_SELF, &before);
  g_autoptr(AbHookResult) res = run_hook (t, "floods", "head -c 256M /dev/zero | tr '\\0' y", 600);
  getrusage (RUSAGE_SELF, &after);
  g_assert_cmpint (res->result, ==, AB_HOOK_PASS);
  g_assert_cmpuint (res->output_bytes, ==, 256u << 20);
  g_assert_cmpuint (strlen (res->output_tail), ==, AB_HOOK_OUTPUT_TAIL_MAX);
  g_assert_cmpint (strspn (res->output_tail, "y"), ==, AB_HOOK_OUTPUT_TAIL_MAX);
  g_assert_cmpint (after.ru_maxrss - before.ru_maxrss, <, 16 * 1024);
}

static void
test_output_sanitized (TmpDir *t, gconstpointer data)
{
  /* 2049 two-byte characters and a final byte: the 4096-byte tail starts
   * inside a character; then invalid bytes, NUL and a cut character. */
  g_autoptr(AbHookResult) res = run_hook (t, "bad-bytes",
      "i=0; while [ $i -lt 2049 ]; do printf '\\303\\251'; i=$((i+1)); done\n"
      "printf 'x\\377\\000\\033\\342\\202'", 60);
  g_assert_cmpint (res->result, ==, AB_HOOK_PASS);
  g_assert_true (g_utf8_validate (res->output_tail, -1, NULL));
  g_assert_cmpuint (strlen (res->output_tail), <=, AB_HOOK_OUTPUT_TAIL_MAX);
  g_assert_true (g_str_has_suffix (res->output_tail,
                                   "x\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"));
  g_assert_true (g_str_has_prefix (res->output_tail, "\xc3\xa9"));
  g_autoptr(JsonNode) node = ab_hook_result_to_json (res);
  g_autofree char *text = json_to_string (node, FALSE);
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) error = NULL;
  g_assert_true (json_parser_load_from_data (parser, text, -1, &error));
  g_assert_no_error (error);
}

/* Writes an executable hook at REL of the tree T (exit status STATUS). */
static void
put_hook (TmpDir *t, const char *rel, int status, mode_t mode)
{
  g_autofree char *text = g_strdup_printf ("#!/bin/sh\nexit %d\n", status);
  write_file_at (t->dfd, rel, text);
  g_assert_cmpint (fchmodat (t->dfd, rel, mode, 0), ==, 0);
}

static GPtrArray *
discover (TmpDir *t, AbHookStage stage, gboolean greenboot)
{
  g_autoptr(GError) error = NULL;
  GPtrArray *hooks = ab_hooks_discover (t->path, stage, greenboot, &error);
  g_assert_no_error (error);
  g_assert_nonnull (hooks);
  return hooks;
}

static const char *
hook_path_in_tree (TmpDir *t, const AbHook *h)
{
  g_assert_true (g_str_has_prefix (h->path, t->path));
  return h->path + strlen (t->path);
}

/* Lexical order by name; /etc replaces /usr/lib; .sh files run with bash
 * even when not executable; hidden, non-executable and non-regular
 * entries are no hooks; greenboot directories only in compatibility mode. */
static void
test_discover (TmpDir *t, gconstpointer data)
{
  put_hook (t, "usr/lib/abdeploy/health/required.d/20-net", 0, 0755);
  put_hook (t, "usr/lib/abdeploy/health/required.d/10-disk", 0, 0755);
  put_hook (t, "etc/abdeploy/health/required.d/20-net", 0, 0755);
  put_hook (t, "etc/abdeploy/health/required.d/30-app.sh", 0, 0644);
  put_hook (t, "etc/abdeploy/health/required.d/40-notexec", 0, 0644);
  put_hook (t, "etc/abdeploy/health/required.d/.hidden", 0, 0755);
  g_assert_true (ab_fs_mkdir_p_at (t->dfd, "etc/abdeploy/health/required.d/50-dir", 0755, NULL));
  put_hook (t, "usr/lib/greenboot/check/required.d/05-gb", 0, 0755);
  put_hook (t, "etc/abdeploy/health/wanted.d/10-w", 0, 0755);

  g_autoptr(GPtrArray) hooks = discover (t, AB_HOOK_STAGE_REQUIRED, FALSE);
  g_assert_cmpuint (hooks->len, ==, 3);
  const AbHook *h0 = hooks->pdata[0], *h1 = hooks->pdata[1], *h2 = hooks->pdata[2];
  g_assert_cmpstr (h0->name, ==, "10-disk");
  g_assert_cmpstr (hook_path_in_tree (t, h0), ==, "/usr/lib/abdeploy/health/required.d/10-disk");
  g_assert_cmpstr (h1->name, ==, "20-net");
  g_assert_cmpstr (hook_path_in_tree (t, h1), ==, "/etc/abdeploy/health/required.d/20-net");
  g_assert_cmpstr (h2->name, ==, "30-app.sh");
  g_assert_true (h2->use_bash);
  g_assert_false (h0->use_bash);

  g_autoptr(GPtrArray) compat = discover (t, AB_HOOK_STAGE_REQUIRED, TRUE);
  g_assert_cmpuint (compat->len, ==, 4);
  g_assert_cmpstr (((AbHook *) compat->pdata[0])->name, ==, "05-gb");
  g_autoptr(GPtrArray) wanted = discover (t, AB_HOOK_STAGE_WANTED, FALSE);
  g_assert_cmpuint (wanted->len, ==, 1);
}

/* A link in the tree, absolute or with "..", names a file of the tree,
 * never one of the host. */
static void
test_discover_links_stay_in_tree (TmpDir *t, gconstpointer data)
{
  put_hook (t, "usr/libexec/real-check", 0, 0755);
  g_assert_true (ab_fs_mkdir_p_at (t->dfd, "etc/abdeploy/health/required.d", 0755, NULL));
  g_assert_cmpint (symlinkat ("/usr/libexec/real-check", t->dfd,
                              "etc/abdeploy/health/required.d/10-abs"), ==, 0);
  g_assert_cmpint (symlinkat ("../../../../../../../../usr/libexec/real-check", t->dfd,
                              "etc/abdeploy/health/required.d/20-up"), ==, 0);
  /* on the host this exists; in the tree it does not */
  g_assert_cmpint (symlinkat ("/bin/true", t->dfd, "etc/abdeploy/health/required.d/30-host"),
                   ==, 0);
  g_autoptr(GPtrArray) hooks = discover (t, AB_HOOK_STAGE_REQUIRED, FALSE);
  g_assert_cmpuint (hooks->len, ==, 2);
  for (guint i = 0; i < hooks->len; i++)
    g_assert_cmpstr (hook_path_in_tree (t, hooks->pdata[i]), ==, "/usr/libexec/real-check");
}

/* A stage run reports every hook: one that fails makes the stage fail,
 * and the others still run. */
static void
test_run_stage (TmpDir *t, gconstpointer data)
{
  put_hook (t, "etc/abdeploy/health/required.d/10-ok", 0, 0755);
  put_hook (t, "etc/abdeploy/health/required.d/20-fails", 3, 0755);
  put_hook (t, "etc/abdeploy/health/required.d/30-ok", 0, 0755);
  g_auto(GStrv) env = g_get_environ ();
  AbHookRunOptions opts = { .default_timeout_sec = 30, .env = env };
  g_autoptr(GPtrArray) results = g_ptr_array_new_with_free_func ((GDestroyNotify) ab_hook_result_free);
  g_autoptr(GError) error = NULL;
  gboolean passed = ab_hooks_run_stage (t->path, AB_HOOK_STAGE_REQUIRED, &opts, results, &error);
  g_assert_no_error (error);
  g_assert_false (passed);
  g_assert_cmpuint (results->len, ==, 3);
  AbHookResult *fail = results->pdata[1];
  g_assert_cmpstr (fail->name, ==, "20-fails");
  g_assert_cmpint (fail->result, ==, AB_HOOK_FAIL);
  g_assert_cmpint (fail->exit_status, ==, 3);
  g_assert_cmpint (((AbHookResult *) results->pdata[2])->result, ==, AB_HOOK_PASS);
  g_autoptr(JsonNode) json = ab_hook_result_to_json (fail);
  JsonObject *o = json_node_get_object (json);
  g_assert_cmpstr (json_object_get_string_member (o, "result"), ==,
                   ab_hook_result_name (AB_HOOK_FAIL));

  g_ptr_array_set_size (results, 0);
  g_assert_cmpint (fchmodat (t->dfd, "etc/abdeploy/health/required.d/20-fails", 0, 0), ==, 0);
  put_hook (t, "etc/abdeploy/health/required.d/20-fails", 0, 0755);
  g_assert_true (ab_hooks_run_stage (t->path, AB_HOOK_STAGE_REQUIRED, &opts, results, &error));
  g_assert_cmpuint (results->len, ==, 3);
}

/* greenboot's DISABLED_HEALTHCHECKS: a required or wanted hook of that
 * name does not run (and so cannot fail the boot); green and red hooks of
 * the same name still do. */
static void
test_disabled_hooks (TmpDir *t, gconstpointer data)
{
  put_hook (t, "etc/greenboot/check/required.d/10-fails.sh", 1, 0644);
  put_hook (t, "etc/abdeploy/health/required.d/20-ok", 0, 0755);
  put_hook (t, "etc/abdeploy/health/green.d/10-fails.sh", 0, 0644);
  g_auto(GStrv) env = g_get_environ ();
  char *disabled[] = { "10-fails.sh", NULL };
  AbHookRunOptions opts = { .default_timeout_sec = 30, .env = env, .greenboot_compat = TRUE,
                            .disabled = disabled };
  g_autoptr(GPtrArray) results = g_ptr_array_new_with_free_func ((GDestroyNotify) ab_hook_result_free);
  g_autoptr(GError) error = NULL;
  g_assert_true (ab_hooks_run_stage (t->path, AB_HOOK_STAGE_REQUIRED, &opts, results, &error));
  g_assert_cmpuint (results->len, ==, 1);
  g_assert_cmpstr (((AbHookResult *) results->pdata[0])->name, ==, "20-ok");
  g_ptr_array_set_size (results, 0);
  g_assert_true (ab_hooks_run_stage (t->path, AB_HOOK_STAGE_GREEN, &opts, results, &error));
  g_assert_cmpuint (results->len, ==, 1);
}

/* A *.sh hook runs with /bin/sh where there is no bash (0.2.0 failed to
 * start it). */
static void
test_sh_hook_without_bash (TmpDir *t, gconstpointer data)
{
  write_file_at (t->dfd, "etc/abdeploy/health/required.d/10-check.sh",
                 "[ -z \"$BASH_VERSION\" ] || exit 7\nexit 0\n");
  g_auto(GStrv) env = g_get_environ ();
  AbHookRunOptions opts = { .default_timeout_sec = 30, .env = env };
  g_autoptr(GPtrArray) results = g_ptr_array_new_with_free_func ((GDestroyNotify) ab_hook_result_free);
  g_autoptr(GError) error = NULL;
  const char *saved = ab_hooks_bash_path;
  ab_hooks_bash_path = "/nonexistent/bash";
  gboolean passed = ab_hooks_run_stage (t->path, AB_HOOK_STAGE_REQUIRED, &opts, results, &error);
  ab_hooks_bash_path = saved;
  g_assert_no_error (error);
  g_assert_cmpuint (results->len, ==, 1);
  AbHookResult *r = results->pdata[0];
  g_assert_cmpint (r->result, ==, AB_HOOK_PASS);
  g_assert_true (passed);
}

/* A vendor hook in the build's PREFIX/lib/abdeploy/health and one in
 * /usr/lib/abdeploy/health are both found. With the prefix /usr/local the
 * default hooks were installed where discovery never looked (issue 16). */
static void
test_discover_prefix_dir (TmpDir *t, gconstpointer data)
{
  put_hook (t, ABDEPLOY_HEALTH_HOOKS_DIR "/required.d/10-prefix", 0, 0755);
  put_hook (t, "usr/lib/abdeploy/health/required.d/20-usr", 0, 0755);
  g_autoptr(GPtrArray) hooks = discover (t, AB_HOOK_STAGE_REQUIRED, FALSE);
  g_assert_cmpuint (hooks->len, ==, 2);
  g_assert_cmpstr (((AbHook *) hooks->pdata[0])->name, ==, "10-prefix");
  g_assert_cmpstr (((AbHook *) hooks->pdata[1])->name, ==, "20-usr");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  TMPDIR_TEST ("/hooks/closed-output-held-to-deadline", test_closed_output_held_to_deadline);
  TMPDIR_TEST ("/hooks/exit-decides-not-eof", test_exit_decides_not_eof);
  TMPDIR_TEST ("/hooks/output-bounded", test_output_bounded);
  TMPDIR_TEST ("/hooks/output-sanitized", test_output_sanitized);
  TMPDIR_TEST ("/hooks/discover", test_discover);
  TMPDIR_TEST ("/hooks/discover-links-stay-in-tree", test_discover_links_stay_in_tree);
  TMPDIR_TEST ("/hooks/run-stage", test_run_stage);
  TMPDIR_TEST ("/hooks/discover-prefix-dir", test_discover_prefix_dir);
  TMPDIR_TEST ("/hooks/disabled", test_disabled_hooks);
  TMPDIR_TEST ("/hooks/sh-without-bash", test_sh_hook_without_bash);
  return g_test_run ();
}
