/* The hook runner (ab-hooks): a hook is held to its deadline whatever its
 * output does, and its output costs bounded memory and is stored as valid
 * UTF-8. Real hooks (shell scripts) in a scratch directory. */
#include "config.h"
#include "ab-hooks.h"
#include "ab-test-fixture.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

static AbHookResult *
run_hook (TmpDir *t, const char *name, const char *script, guint timeout_sec)
{
  g_autofree char *text = g_strconcat ("#!/bin/sh\n", script, "\n", NULL);
  write_file_at (t->dfd, name, text);
  g_assert_cmpint (fchmodat (t->dfd, name, 0755, 0), ==, 0);
  g_autofree char *path = g_build_filename (t->path, name, NULL);
  AbHook hook = { (char *) name, path, FALSE };
  g_auto(GStrv) env = g_get_environ ();
  AbHookRunOptions opts = { timeout_sec, NULL, env, FALSE, FALSE };
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

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  TMPDIR_TEST ("/hooks/closed-output-held-to-deadline", test_closed_output_held_to_deadline);
  TMPDIR_TEST ("/hooks/exit-decides-not-eof", test_exit_decides_not_eof);
  TMPDIR_TEST ("/hooks/output-bounded", test_output_bounded);
  TMPDIR_TEST ("/hooks/output-sanitized", test_output_sanitized);
  return g_test_run ();
}
