#include "config.h"
#include "ab-hooks.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

G_DEFINE_QUARK (ab-hooks-error-quark, ab_hooks_error)

#define TAIL_MAX 4096
#define KILL_GRACE_MS 1000
#define DRAIN_AFTER_EXIT_US (G_USEC_PER_SEC / 2)

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
  g_ptr_array_add (dirs, g_strdup_printf ("usr/lib/abdeploy/health/%s.d", name));
  if (greenboot_compat)
    g_ptr_array_add (dirs, g_strdup_printf ("etc/greenboot/%s%s.d", check ? "check/" : "", name));
  g_ptr_array_add (dirs, g_strdup_printf ("etc/abdeploy/health/%s.d", name));
  return dirs;
}

static gboolean
is_candidate (const char *path, const char *name, gboolean *out_bash)
{
  struct stat st;
  if (name[0] == '.' || lstat (path, &st) < 0)
    return FALSE;
  if (S_ISLNK (st.st_mode) && stat (path, &st) < 0)
    return FALSE;
  if (!S_ISREG (st.st_mode))
    return FALSE;
  *out_bash = g_str_has_suffix (name, ".sh");
  return *out_bash || (st.st_mode & 0111) != 0;
}

static int
compare_hooks (gconstpointer a, gconstpointer b)
{
  const AbHook *ha = *(AbHook **) a, *hb = *(AbHook **) b;
  return strcmp (ha->name, hb->name);
}

GPtrArray *
ab_hooks_discover (const char *root, AbHookStage stage, gboolean greenboot_compat,
                   GError **error)
{
  g_autoptr(GHashTable) by_name = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                                         (GDestroyNotify) ab_hook_free);
  g_autoptr(GPtrArray) dirs = stage_dirs (stage, greenboot_compat);
  for (guint i = 0; i < dirs->len; i++)
    {
      g_autofree char *dir_path = g_build_filename (root, dirs->pdata[i], NULL);
      g_autoptr(GDir) dir = g_dir_open (dir_path, 0, NULL);
      const char *name;
      while (dir && (name = g_dir_read_name (dir)) != NULL)
        {
          g_autofree char *path = g_build_filename (dir_path, name, NULL);
          gboolean bash = FALSE;
          if (!is_candidate (path, name, &bash))
            continue;
          AbHook *hook = g_new0 (AbHook, 1);
          hook->name = g_strdup (name);
          hook->path = g_steal_pointer (&path);
          hook->use_bash = bash;
          g_hash_table_replace (by_name, hook->name, hook);
        }
    }
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

/* NULL when the hook may run, else why not. */
static char *
refusal_reason (const AbHook *hook)
{
  struct stat st;
  if (stat (hook->path, &st) < 0)
    return g_strdup_printf ("cannot examine %s: %s", hook->path, g_strerror (errno));
  if (st.st_mode & S_IWOTH)
    return g_strdup_printf ("%s is world-writable; run chmod o-w on it", hook->path);
  if (geteuid () == 0 && st.st_uid != 0)
    return g_strdup_printf ("%s is owned by uid %u, not root; run chown root on it",
                            hook->path, (unsigned) st.st_uid);
  return NULL;
}

static guint
timeout_for (const AbHook *hook, const AbHookRunOptions *opts)
{
  if (opts->keyfile && g_key_file_has_key (opts->keyfile, "health-timeouts", hook->name, NULL))
    {
      g_autofree char *v = g_key_file_get_value (opts->keyfile, "health-timeouts", hook->name, NULL);
      guint64 n = 0;
      if (g_ascii_string_to_unsigned (g_strstrip (v), 10, 1, 86400, &n, NULL))
        return (guint) n;
      g_printerr ("warning: ignoring [health-timeouts] %s=%s: use seconds from 1 to 86400\n",
                  hook->name, v);
    }
  return opts->default_timeout_sec;
}

static void
child_setup (gpointer data)
{
  /* Own process group: the runner kills it as a whole. */
  setpgid (0, 0);
  signal (SIGPIPE, SIG_DFL);
}

typedef struct
{
  GString *tail;
  GString *line;
  const char *name;
  gboolean echo;
} Capture;

static void
capture_bytes (Capture *c, const char *buf, gsize n)
{
  g_string_append_len (c->tail, buf, (gssize) n);
  if (c->tail->len > TAIL_MAX)
    g_string_erase (c->tail, 0, (gssize) (c->tail->len - TAIL_MAX));
  if (!c->echo)
    return;
  for (gsize i = 0; i < n; i++)
    {
      if (buf[i] != '\n')
        {
          g_string_append_c (c->line, buf[i]);
          continue;
        }
      g_print ("[%s] %s\n", c->name, c->line->str);
      g_string_truncate (c->line, 0);
    }
}

static void
capture_flush (Capture *c)
{
  if (c->echo && c->line->len > 0)
    g_print ("[%s] %s\n", c->name, c->line->str);
  g_string_truncate (c->line, 0);
}

/* Reads until EOF or DEADLINE (monotonic µs); FALSE on timeout. */
static gboolean
pump_output (int fd, Capture *c, gint64 deadline, GPid pid, int *out_wstatus, gboolean *out_exited)
{
  char buf[4096];
  for (;;)
    {
      if (!*out_exited && waitpid (pid, out_wstatus, WNOHANG) == pid)
        {
          *out_exited = TRUE;
          /* Anything the hook left running is killed with it; what escaped
           * the group gets one drain period to let go of the pipe. */
          kill (-pid, SIGKILL);
          deadline = MIN (deadline, g_get_monotonic_time () + DRAIN_AFTER_EXIT_US);
        }
      gint64 now = g_get_monotonic_time ();
      if (now >= deadline)
        return *out_exited;
      int wait_ms = (int) MIN ((deadline - now) / 1000 + 1, *out_exited ? 50 : 100);
      struct pollfd pfd = { fd, POLLIN, 0 };
      int r = poll (&pfd, 1, wait_ms);
      if (r < 0 && errno != EINTR)
        return TRUE;
      if (r <= 0)
        continue;
      ssize_t n = read (fd, buf, sizeof buf);
      if (n < 0 && (errno == EINTR || errno == EAGAIN))
        continue;
      if (n <= 0)
        return TRUE;
      capture_bytes (c, buf, (gsize) n);
    }
}

static void
kill_group (GPid pid, int *wstatus, gboolean *exited)
{
  kill (-pid, SIGTERM);
  gint64 until = g_get_monotonic_time () + KILL_GRACE_MS * 1000;
  while (!*exited && g_get_monotonic_time () < until)
    {
      if (waitpid (pid, wstatus, WNOHANG) == pid)
        *exited = TRUE;
      else
        g_usleep (10000);
    }
  kill (-pid, SIGKILL);
  if (!*exited && waitpid (pid, wstatus, 0) == pid)
    *exited = TRUE;
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

static gboolean
spawn_hook (const AbHook *hook, const AbHookRunOptions *opts, GPid *out_pid, int *out_fd,
            GError **error)
{
  const char *bash_argv[] = { "/bin/bash", hook->path, NULL };
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

AbHookResult *
ab_hooks_run_one (const AbHook *hook, AbHookStage stage, const AbHookRunOptions *opts)
{
  g_autoptr(AbHookResult) res = g_new0 (AbHookResult, 1);
  res->name = g_strdup (hook->name);
  res->stage = stage;
  res->exit_status = -1;
  res->result = AB_HOOK_FAIL;
  if ((res->message = refusal_reason (hook)) != NULL)
    {
      res->result = AB_HOOK_REFUSED;
      res->output_tail = g_strdup ("");
      return g_steal_pointer (&res);
    }
  guint timeout = timeout_for (hook, opts);
  gint64 start = g_get_monotonic_time ();
  GPid pid = 0;
  int fd = -1;
  g_autoptr(GError) error = NULL;
  if (!spawn_hook (hook, opts, &pid, &fd, &error))
    {
      res->message = g_strdup_printf ("could not run %s: %s", hook->path, error->message);
      res->output_tail = g_strdup ("");
      return g_steal_pointer (&res);
    }
  g_autoptr(GString) tail = g_string_new (NULL);
  g_autoptr(GString) line = g_string_new (NULL);
  Capture cap = { tail, line, hook->name, opts->echo_output };
  int wstatus = 0;
  gboolean exited = FALSE;
  gboolean in_time = pump_output (fd, &cap, start + (gint64) timeout * G_USEC_PER_SEC, pid,
                                  &wstatus, &exited);
  close (fd);
  capture_flush (&cap);
  if (!in_time)
    {
      kill_group (pid, &wstatus, &exited);
      res->result = AB_HOOK_TIMEOUT;
      res->message = g_strdup_printf ("timed out after %u s; its process group was killed", timeout);
      if (exited && WIFSIGNALED (wstatus))
        res->signal = WTERMSIG (wstatus);
    }
  else
    {
      if (!exited)
        (void) waitpid (pid, &wstatus, 0);
      kill (-pid, SIGKILL);
      record_status (res, wstatus);
    }
  g_spawn_close_pid (pid);
  res->duration_sec = (g_get_monotonic_time () - start) / 1e6;
  res->output_tail = g_string_free (g_steal_pointer (&tail), FALSE);
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
  for (guint i = 0; i < hooks->len; i++)
    {
      AbHookResult *res = ab_hooks_run_one (hooks->pdata[i], stage, opts);
      if (res->result != AB_HOOK_PASS)
        {
          all_passed = FALSE;
          g_printerr ("%s hook %s: %s%s%s\n", stage_names[stage], res->name,
                      result_names[res->result], res->message ? ": " : "",
                      res->message ? res->message : "");
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
  json_builder_set_member_name (b, "name");
  json_builder_add_string_value (b, res->name);
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
  json_builder_set_member_name (b, "message");
  if (res->message)
    json_builder_add_string_value (b, res->message);
  else
    json_builder_add_null_value (b);
  json_builder_set_member_name (b, "output_tail");
  json_builder_add_string_value (b, res->output_tail ? res->output_tail : "");
  json_builder_end_object (b);
  return json_builder_get_root (b);
}
