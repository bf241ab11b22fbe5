#include "config.h"
#include "ab-hooks.h"
#include "ab-fsutil.h"
#include "ab-json.h"
#include "ab-util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

G_DEFINE_QUARK (ab-hooks-error-quark, ab_hooks_error)


static const char *const stage_names[] = { "required", "wanted", "green", "red" };
static const char *const result_names[] = { "pass", "fail", "timeout", "refused" };

const char *
ab_hook_stage_name (AbHookStage stage)
{
  return stage_names[stage];
}

const char *
ab_hook_result_name (AbHookResultKind kind)
{
  return result_names[kind];
}

void
ab_hook_free (AbHook *hook)
{
  if (hook == NULL)
    return;
  g_free (hook->name);
  g_free (hook->path);
  g_free (hook);
}

void
ab_hook_result_free (AbHookResult *res)
{
  if (res == NULL)
    return;
  g_free (res->name);
  g_free (res->output_tail);
  g_free (res->message);
  g_free (res);
}

/* Where images ship their vendor hooks, whatever abdeploy's prefix. */
#define VENDOR_HOOKS_DIR "usr/lib/abdeploy/health"

/* Directories of STAGE, lowest priority first: a later one's file
 * replaces an earlier one's of the same name. */
static GPtrArray *
stage_dirs (AbHookStage stage, gboolean greenboot_compat)
{
  GPtrArray *dirs = g_ptr_array_new_with_free_func (g_free);
  const char *name = stage_names[stage];
  gboolean check = stage == AB_HOOK_STAGE_REQUIRED || stage == AB_HOOK_STAGE_WANTED;
  if (greenboot_compat)
    g_ptr_array_add (dirs, g_strdup_printf ("usr/lib/greenboot/%s%s.d", check ? "check/" : "", name));
  g_ptr_array_add (dirs, g_strdup_printf (VENDOR_HOOKS_DIR "/%s.d", name));
  /* A build with another prefix also reads the default hooks where it
   * installed them (PREFIX/lib/abdeploy/health, config.h). */
  if (!g_str_equal (ABDEPLOY_HEALTH_HOOKS_DIR, VENDOR_HOOKS_DIR))
    g_ptr_array_add (dirs, g_strdup_printf (ABDEPLOY_HEALTH_HOOKS_DIR "/%s.d", name));
  if (greenboot_compat)
    g_ptr_array_add (dirs, g_strdup_printf ("etc/greenboot/%s%s.d", check ? "check/" : "", name));
  g_ptr_array_add (dirs, g_strdup_printf ("etc/abdeploy/health/%s.d", name));
  return dirs;
}

/* ROOT_DFD/REL (ROOT_DFD is the directory whose real path is ROOT) as the
 * booted system sees it (RESOLVE_IN_ROOT: an absolute link or ".." in the
 * tree resolves inside the tree, never on the host); the real path of what
 * it names and its stat, or NULL. Without a link on the way that path is
 * ROOT/REL; only where a link was followed inside the tree does the kernel
 * say where it led (ab_fs_fd_realpath()). */
static char *
resolve_in_root (const char *root, int root_dfd, const char *rel, struct stat *out_st)
{
  ab_autofd plain = ab_fs_open_beneath (root_dfd, rel, O_PATH, 0, AB_FS_RESOLVE_NO_SYMLINKS,
                                        NULL);
  if (plain >= 0 && fstat (plain, out_st) == 0 && !S_ISLNK (out_st->st_mode))
    return g_build_filename (root, rel, NULL);
  ab_autofd fd = ab_fs_open_beneath (root_dfd, rel, O_PATH, 0, AB_FS_RESOLVE_IN_ROOT, NULL);
  if (fd < 0 || fstat (fd, out_st) < 0)
    return NULL;
  return ab_fs_fd_realpath (fd, NULL);
}

/* The real path of the hook REL (a link in the tree is followed inside
 * it), or NULL when it is not a hook. */
static char *
candidate_path (const char *root, int root_dfd, const char *rel, const char *name,
                gboolean *out_bash)
{
  struct stat st;
  if (name[0] == '.')
    return NULL;
  g_autofree char *path = resolve_in_root (root, root_dfd, rel, &st);
  if (path == NULL || !S_ISREG (st.st_mode))
    return NULL;
  *out_bash = g_str_has_suffix (name, ".sh");
  return *out_bash || (st.st_mode & 0111) != 0 ? g_steal_pointer (&path) : NULL;
}

static int
compare_hooks (gconstpointer a, gconstpointer b)
{
  const AbHook *ha = *(AbHook **) a, *hb = *(AbHook **) b;
  return strcmp (ha->name, hb->name);
}

/* Adds the hooks of the directory REL of the tree. */
static void
discover_dir (const char *root, int root_dfd, const char *rel, GHashTable *by_name)
{
  struct stat st;
  g_autofree char *dir_path = resolve_in_root (root, root_dfd, rel, &st);
  g_autoptr(GDir) dir = dir_path && S_ISDIR (st.st_mode) ? g_dir_open (dir_path, 0, NULL) : NULL;
  const char *name;
  while (dir && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *hook_rel = g_build_filename (rel, name, NULL);
      gboolean bash = FALSE;
      g_autofree char *path = candidate_path (root, root_dfd, hook_rel, name, &bash);
      if (path == NULL)
        continue;
      AbHook *hook = g_new0 (AbHook, 1);
      hook->name = g_strdup (name);
      hook->path = g_steal_pointer (&path);
      hook->use_bash = bash;
      g_hash_table_replace (by_name, hook->name, hook);
    }
}

GPtrArray *
ab_hooks_discover (const char *root, AbHookStage stage, gboolean greenboot_compat,
                   GError **error)
{
  g_autoptr(GHashTable) by_name = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                                         (GDestroyNotify) ab_hook_free);
  g_autoptr(GPtrArray) dirs = stage_dirs (stage, greenboot_compat);
  ab_autofd root_dfd = open (root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  /* the tree's real path, resolved once: every hook path derives from it */
  g_autofree char *real_root = root_dfd >= 0 ? ab_fs_fd_realpath (root_dfd, NULL) : NULL;
  for (guint i = 0; real_root != NULL && i < dirs->len; i++)
    discover_dir (real_root, root_dfd, dirs->pdata[i], by_name);
  GPtrArray *hooks = g_ptr_array_new_with_free_func ((GDestroyNotify) ab_hook_free);
  GHashTableIter it;
  gpointer value;
  g_hash_table_iter_init (&it, by_name);
  while (g_hash_table_iter_next (&it, NULL, &value))
    {
      g_hash_table_iter_steal (&it);
      g_ptr_array_add (hooks, value);
    }
  g_ptr_array_sort (hooks, compare_hooks);
  return hooks;
}

/* NULL when the hook may run, else why not: the same rule as for the
 * custom bootloader backend (ab_fs_check_code_path()). */
static char *
refusal_reason (const AbHook *hook)
{
  g_autoptr(GError) error = NULL;
  if (ab_fs_check_code_path (hook->path, &error))
    return NULL;
  return g_strdup (error->message);
}

static guint
timeout_for (const AbHook *hook, const AbHookRunOptions *opts)
{
  gpointer sec = NULL;
  if (opts->timeouts && g_hash_table_lookup_extended (opts->timeouts, hook->name, NULL, &sec))
    return GPOINTER_TO_UINT (sec);
  return opts->default_timeout_sec;
}

static void
child_setup (gpointer data)
{
  /* Own process group: the runner kills it as a whole. */
  setpgid (0, 0);
  signal (SIGPIPE, SIG_DFL);
}

/* What is kept of a hook's output, in bounded memory whatever it prints:
 * the last AB_HOOK_OUTPUT_TAIL_MAX bytes for verdict.json and, when echoed,
 * the current line up to AB_HOOK_ECHO_LINE_MAX bytes. The rest is counted
 * and discarded while the pipe is still drained. */
typedef struct
{
  char tail[2 * AB_HOOK_OUTPUT_TAIL_MAX];
  gsize tail_len;
  guint64 total;
  GString *line;
  guint64 line_dropped; /* bytes of the current line beyond the echo limit */
  const char *name;
  gboolean echo;
  AbEventSink *events;
} Capture;

static void
tail_append (Capture *c, const char *buf, gsize n)
{
  if (n >= AB_HOOK_OUTPUT_TAIL_MAX)
    {
      memcpy (c->tail, buf + n - AB_HOOK_OUTPUT_TAIL_MAX, AB_HOOK_OUTPUT_TAIL_MAX);
      c->tail_len = AB_HOOK_OUTPUT_TAIL_MAX;
      return;
    }
  if (c->tail_len + n > sizeof c->tail)
    {
      /* Keep the last AB_HOOK_OUTPUT_TAIL_MAX - n bytes, then append. */
      gsize keep = AB_HOOK_OUTPUT_TAIL_MAX - n;
      memmove (c->tail, c->tail + c->tail_len - keep, keep);
      c->tail_len = keep;
    }
  memcpy (c->tail + c->tail_len, buf, n);
  c->tail_len += n;
}

static void
echo_line (Capture *c)
{
  g_autofree char *clean = ab_json_sanitize (c->line->str, (gssize) c->line->len, 0, FALSE);
  if (c->line_dropped > 0)
    ab_event_message (c->events, "[%s] %s [%" G_GUINT64_FORMAT " more bytes of this line not shown]", c->name,
             clean, c->line_dropped);
  else
    ab_event_message (c->events, "[%s] %s", c->name, clean);
  g_string_truncate (c->line, 0);
  c->line_dropped = 0;
}

static void
echo_append (Capture *c, const char *buf, gsize n)
{
  while (n > 0)
    {
      const char *nl = memchr (buf, '\n', n);
      gsize part = nl ? (gsize) (nl - buf) : n;
      gsize room = AB_HOOK_ECHO_LINE_MAX - MIN (c->line->len, AB_HOOK_ECHO_LINE_MAX);
      g_string_append_len (c->line, buf, (gssize) MIN (part, room));
      c->line_dropped += part - MIN (part, room);
      if (nl == NULL)
        return;
      echo_line (c);
      buf = nl + 1;
      n -= part + 1;
    }
}

static void
capture_bytes (Capture *c, const char *buf, gsize n)
{
  c->total += n;
  tail_append (c, buf, n);
  if (c->echo)
    echo_append (c, buf, n);
}

static void
capture_flush (Capture *c)
{
  if (c->echo && (c->line->len > 0 || c->line_dropped > 0))
    echo_line (c);
}

/* One running hook. Its result is decided by its own exit (or the
 * deadline), never by the end of its output: a hook may close its output
 * and go on, and what it started may hold the output open after it ended. */
typedef struct
{
  GPid pid;
  int out_fd;   /* read end of the hook's stdout and stderr; -1 after EOF */
  int pid_fd;   /* pidfd of the hook, or -1 (then its exit is polled) */
  gboolean exited;
  int wstatus;
  Capture *cap;
} Run;

static void
run_reap (Run *r)
{
  if (!r->exited && waitpid (r->pid, &r->wstatus, WNOHANG) == r->pid)
    r->exited = TRUE;
}

static void
run_read (Run *r)
{
  char buf[16384];
  ssize_t n = read (r->out_fd, buf, sizeof buf);
  if (n > 0)
    capture_bytes (r->cap, buf, (gsize) n);
  else if (n == 0 || (errno != EINTR && errno != EAGAIN))
    ab_close_fdp (&r->out_fd);
}

/* Drains the output until UNTIL (monotonic µs), or until the hook exited
 * (STOP_ON_EXIT), or until EOF once the hook has exited. */
static void
run_pump (Run *r, gint64 until, gboolean stop_on_exit)
{
  for (;;)
    {
      run_reap (r);
      gint64 now = g_get_monotonic_time ();
      if ((r->exited && (stop_on_exit || r->out_fd < 0)) || now >= until)
        return;
      struct pollfd pfd[2];
      nfds_t n = 0;
      if (r->out_fd >= 0)
        pfd[n++] = (struct pollfd) { r->out_fd, POLLIN, 0 };
      if (r->pid_fd >= 0 && !r->exited)
        pfd[n++] = (struct pollfd) { r->pid_fd, POLLIN, 0 };
      /* Without a pidfd, the exit is noticed by polling every 50 ms. */
      gint64 wait_ms = (until - now + 999) / 1000;
      if (r->pid_fd < 0 && !r->exited)
        wait_ms = MIN (wait_ms, 50);
      if (poll (pfd, n, (int) MIN (wait_ms, G_MAXINT)) > 0 && r->out_fd >= 0
          && (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)))
        run_read (r);
    }
}

/* SIG to the hook's process group, and to the hook itself in case it left
 * the group. */
static void
run_signal (Run *r, int sig)
{
  kill (-r->pid, sig);
  if (!r->exited)
    kill (r->pid, sig);
}

/* The deadline passed: SIGTERM to the group, SIGKILL after the grace
 * period, then at most AB_HOOK_REAP_MAX_MS for the hook to be reaped (a
 * process stuck in the kernel may not die at once; the runner does not
 * wait for it beyond that). */
static void
run_kill (Run *r)
{
  run_signal (r, SIGTERM);
  run_pump (r, g_get_monotonic_time () + AB_HOOK_KILL_GRACE_MS * 1000, TRUE);
  run_signal (r, SIGKILL);
  run_pump (r, g_get_monotonic_time () + AB_HOOK_REAP_MAX_MS * 1000, TRUE);
}

static void
record_status (AbHookResult *res, int wstatus)
{
  if (WIFEXITED (wstatus))
    {
      res->exit_status = WEXITSTATUS (wstatus);
      res->result = res->exit_status == 0 ? AB_HOOK_PASS : AB_HOOK_FAIL;
    }
  else if (WIFSIGNALED (wstatus))
    {
      res->signal = WTERMSIG (wstatus);
      res->result = AB_HOOK_FAIL;
    }
}

const char *ab_hooks_bash_path = "/bin/bash";

/* greenboot runs *.sh hooks with bash; a system without bash (busybox,
 * minimal images) still runs them, with /bin/sh. */
static const char *
script_shell (void)
{
  return g_file_test (ab_hooks_bash_path, G_FILE_TEST_IS_EXECUTABLE) ? ab_hooks_bash_path : "/bin/sh";
}

static gboolean
spawn_hook (const AbHook *hook, const AbHookRunOptions *opts, GPid *out_pid, int *out_fd,
            GError **error)
{
  const char *bash_argv[] = { script_shell (), hook->path, NULL };
  const char *exec_argv[] = { hook->path, NULL };
  int fds[2];
  if (pipe2 (fds, O_CLOEXEC) < 0)
    {
      g_set_error (error, AB_HOOKS_ERROR, AB_HOOKS_ERROR_FAILED, "pipe: %s", g_strerror (errno));
      return FALSE;
    }
  int source_fds[] = { fds[1], fds[1] };
  int target_fds[] = { 1, 2 };
  g_autofree char *cwd = g_path_get_dirname (hook->path);
  gboolean ok = g_spawn_async_with_pipes_and_fds (
      cwd, hook->use_bash ? bash_argv : exec_argv, (const char *const *) opts->env,
      G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDIN_FROM_DEV_NULL, child_setup, NULL, -1, -1, -1,
      source_fds, target_fds, 2, out_pid, NULL, NULL, NULL, error);
  close (fds[1]);
  if (!ok)
    {
      close (fds[0]);
      return FALSE;
    }
  *out_fd = fds[0];
  return TRUE;
}

/* Runs the spawned hook in R to its end or its deadline; TRUE when it
 * ended in time. */
static gboolean
run_to_end (Run *r, gint64 deadline)
{
  run_pump (r, deadline, TRUE);
  gboolean in_time = r->exited;
  if (!in_time)
    run_kill (r);
  /* Anything the hook left running in its group is killed with it; what
   * escaped the group gets a short drain period to let go of the pipe. */
  run_signal (r, SIGKILL);
  run_pump (r, g_get_monotonic_time () + AB_HOOK_DRAIN_AFTER_EXIT_MS * 1000, FALSE);
  return in_time;
}

static void
set_timed_out (AbHookResult *res, const Run *r, guint timeout)
{
  res->result = AB_HOOK_TIMEOUT;
  if (r->exited && WIFSIGNALED (r->wstatus))
    res->signal = WTERMSIG (r->wstatus);
  res->message = r->exited
      ? g_strdup_printf ("timed out after %u s; its process group was killed", timeout)
      : g_strdup_printf ("timed out after %u s; its process group was killed, but the hook "
                         "(pid %d) did not end within %d ms of SIGKILL", timeout, (int) r->pid,
                         AB_HOOK_REAP_MAX_MS);
}

AbHookResult *
ab_hooks_run_one (const AbHook *hook, AbHookStage stage, const AbHookRunOptions *opts)
{
  g_autoptr(AbHookResult) res = g_new0 (AbHookResult, 1);
  res->name = g_strdup (hook->name);
  res->stage = stage;
  res->exit_status = -1;
  res->result = AB_HOOK_FAIL;
  res->output_tail = g_strdup ("");
  if ((res->message = refusal_reason (hook)) != NULL)
    {
      res->result = AB_HOOK_REFUSED;
      return g_steal_pointer (&res);
    }
  guint timeout = timeout_for (hook, opts);
  gint64 start = g_get_monotonic_time ();
  g_autoptr(GError) error = NULL;
  g_autoptr(GString) line = g_string_new (NULL);
  g_autofree char *shown_name = ab_json_sanitize (hook->name, -1, 0, FALSE);
  g_autofree Capture *cap = g_new0 (Capture, 1);
  *cap = (Capture) { .line = line, .name = shown_name, .echo = opts->echo_output,
                     .events = opts->events };
  Run r = { .out_fd = -1, .pid_fd = -1, .cap = cap };
  if (!spawn_hook (hook, opts, &r.pid, &r.out_fd, &error))
    {
      res->message = g_strdup_printf ("could not run %s: %s", hook->path, error->message);
      return g_steal_pointer (&res);
    }
  r.pid_fd = (int) syscall (SYS_pidfd_open, r.pid, 0);
  gboolean in_time = run_to_end (&r, start + (gint64) timeout * G_USEC_PER_SEC);
  capture_flush (cap);
  ab_close_fdp (&r.out_fd);
  ab_close_fdp (&r.pid_fd);
  if (in_time)
    record_status (res, r.wstatus);
  else
    set_timed_out (res, &r, timeout);
  g_spawn_close_pid (r.pid);
  res->duration_sec = (g_get_monotonic_time () - start) / 1e6;
  res->output_bytes = cap->total;
  g_free (res->output_tail);
  res->output_tail = ab_json_sanitize (cap->tail, (gssize) cap->tail_len,
                                       AB_HOOK_OUTPUT_TAIL_MAX, TRUE);
  return g_steal_pointer (&res);
}

gboolean
ab_hooks_run_stage (const char *root, AbHookStage stage, const AbHookRunOptions *opts,
                    GPtrArray *results, GError **error)
{
  g_autoptr(GPtrArray) hooks = ab_hooks_discover (root, stage, opts->greenboot_compat, error);
  if (hooks == NULL)
    return FALSE;
  gboolean all_passed = TRUE;
  gboolean check = stage == AB_HOOK_STAGE_REQUIRED || stage == AB_HOOK_STAGE_WANTED;
  for (guint i = 0; i < hooks->len; i++)
    {
      const AbHook *hook = hooks->pdata[i];
      if (check && opts->disabled && g_strv_contains ((const char *const *) opts->disabled, hook->name))
        {
          ab_event_note (opts->events, "%s hook %s: disabled (DISABLED_HEALTHCHECKS in "
                         "/etc/greenboot/greenboot.conf)", stage_names[stage], hook->name);
          continue;
        }
      AbHookResult *res = ab_hooks_run_one (hooks->pdata[i], stage, opts);
      if (res->result != AB_HOOK_PASS)
        {
          all_passed = FALSE;
          g_autofree char *text = g_strdup_printf ("%s hook %s: %s%s%s", stage_names[stage],
                                                   res->name, result_names[res->result],
                                                   res->message ? ": " : "",
                                                   res->message ? res->message : "");
          g_autofree char *shown = ab_json_sanitize (text, -1, 0, FALSE);
          ab_event_note (opts->events, "%s", shown);
        }
      g_ptr_array_add (results, res);
    }
  return all_passed;
}

JsonNode *
ab_hook_result_to_json (const AbHookResult *res)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  ab_json_add_string (b, "name", res->name);
  json_builder_set_member_name (b, "stage");
  json_builder_add_string_value (b, stage_names[res->stage]);
  json_builder_set_member_name (b, "result");
  json_builder_add_string_value (b, result_names[res->result]);
  json_builder_set_member_name (b, "duration_sec");
  json_builder_add_double_value (b, res->duration_sec);
  json_builder_set_member_name (b, "exit_status");
  if (res->exit_status >= 0)
    json_builder_add_int_value (b, res->exit_status);
  else
    json_builder_add_null_value (b);
  json_builder_set_member_name (b, "signal");
  if (res->signal > 0)
    json_builder_add_int_value (b, res->signal);
  else
    json_builder_add_null_value (b);
  ab_json_add_string (b, "message", res->message);
  json_builder_set_member_name (b, "output_bytes");
  json_builder_add_int_value (b, (gint64) MIN (res->output_bytes, (guint64) G_MAXINT64));
  ab_json_add_string (b, "output_tail", res->output_tail ? res->output_tail : "");
  json_builder_end_object (b);
  return json_builder_get_root (b);
}
