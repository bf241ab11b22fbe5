/* "custom" backend: an operator executable keeps the pointer wherever the
 * appliance's bootloader needs it.
 *
 * Configuration (abdeploy.conf, group [boot]):
 *   custom-backend              the executable (required). A relative path
 *                               is taken inside the sysroot, an absolute one
 *                               as it is.
 *   custom-backend-timeout-sec  time limit of one call, 1..3600, default 30.
 *
 * Calls (argv, no shell; stdin is /dev/null; environment plus
 * ABDEPLOY_SYSROOT, the sysroot directory):
 *   get-primary               prints a, b, or nothing (no primary)
 *   set-primary a|b|none      none: no primary
 *   get-state SLOT            prints good, bad, none, or "trial N" (N 0..9)
 *   set-state SLOT good|bad|none|trial N
 * The executable and its directories are held like health hooks
 * (ab_fs_check_code_path()): nothing but root may change them.
 * Exit status 0 means success; anything else, a signal, a timeout or
 * output outside this grammar is an error naming the executable, the call
 * and its stderr. On timeout the call's whole process group is killed.
 *
 * Invariants:
 * - Each call is atomic: that is the executable's responsibility.
 * - save() makes only the calls that change something, in this order:
 *   the state of the slot that is primary afterwards, then set-primary,
 *   then the state of the other slot. A slot therefore has its new state
 *   before it becomes primary, and a slot stops being primary before it
 *   loses its state; whatever call a crash interrupts, the pointer the
 *   bootloader reads is the old one, the new one, or a mix that boots the
 *   same slot as one of them. */
#include "config.h"
#include "bootloaders/ab-bootloader.h"
#include "ab-fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define KEY_BACKEND "custom-backend"
#define KEY_TIMEOUT "custom-backend-timeout-sec"
#define MAX_OUTPUT (64 * 1024)

/* One call's result. */
typedef struct
{
  GString *out;
  GString *err;
  int wstatus;
} CallOutput;

static void
call_output_clear (CallOutput *c)
{
  if (c->out != NULL)
    g_string_free (c->out, TRUE);
  if (c->err != NULL)
    g_string_free (c->err, TRUE);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (CallOutput, call_output_clear)

typedef struct
{
  char *path;     /* the executable */
  char *sysroot;  /* directory of the sysroot, for ABDEPLOY_SYSROOT */
  guint timeout;  /* seconds */
} Backend;

static void
backend_clear (Backend *b)
{
  g_free (b->path);
  g_free (b->sysroot);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Backend, backend_clear)

static gboolean
config_error (GError **error, const char *message)
{
  g_set_error_literal (error, AB_CONFIG_ERROR, AB_CONFIG_ERROR_INVALID, message);
  return FALSE;
}

/* The configured executable, resolved against the sysroot. */
static gboolean
backend_load (AbBootloader *self, Backend *out, GError **error)
{
  const char *path = self->config ? self->config->boot.custom_backend : NULL;
  if (path == NULL)
    return config_error (error, "The custom bootloader backend needs [boot] " KEY_BACKEND
                                "=PATH in abdeploy.conf: the executable that keeps the boot "
                                "pointer");
  /* ab-config checked the range: 1..3600 seconds */
  out->timeout = self->config->boot.custom_backend_timeout_sec;
  out->sysroot = g_strdup (self->sysroot_root);
  out->path = g_path_is_absolute (path) ? g_strdup (path)
                                        : g_build_filename (out->sysroot, path, NULL);
  /* It runs as root: held like a health hook. (A missing one fails to
   * start, with the call named.) */
  if (g_file_test (out->path, G_FILE_TEST_EXISTS) && !ab_fs_check_code_path (out->path, error))
    {
      g_prefix_error (error, "Refusing to run the custom bootloader backend ([boot] " KEY_BACKEND
                             "): ");
      return FALSE;
    }
  return TRUE;
}

static void
child_setup (gpointer data)
{
  /* Own process group: a timeout kills everything the call started. */
  setpgid (0, 0);
}

static gboolean
spawn_call (const Backend *b, char **argv, GPid *out_pid, int *out_fd, int *err_fd,
            GError **error)
{
  g_auto(GStrv) envp = g_get_environ ();
  envp = g_environ_setenv (envp, "ABDEPLOY_SYSROOT", b->sysroot, TRUE);
  return g_spawn_async_with_pipes (NULL, argv, envp,
                                   G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDIN_FROM_DEV_NULL
                                       | G_SPAWN_CLOEXEC_PIPES,
                                   child_setup, NULL, out_pid, NULL, out_fd, err_fd, error);
}

/* Appends what FD has to offer; closes it (and sets it to -1) at EOF. */
static void
drain_fd (int *fd, GString *buf)
{
  char chunk[4096];
  ssize_t n = read (*fd, chunk, sizeof chunk);
  if (n < 0 && (errno == EINTR || errno == EAGAIN))
    return;
  if (n <= 0)
    {
      close (*fd);
      *fd = -1;
      return;
    }
  if (buf->len < MAX_OUTPUT)
    g_string_append_len (buf, chunk, MIN ((gsize) n, MAX_OUTPUT - buf->len));
}

/* A descriptor that becomes readable when PID exits, or -1. */
static int
open_pidfd (GPid pid)
{
#ifdef SYS_pidfd_open
  return (int) syscall (SYS_pidfd_open, pid, 0);
#else
  return -1;
#endif
}

/* Collects stdout and stderr until the child has exited and its pipes are
 * quiet, or until DEADLINE (monotonic µs). FALSE on timeout. A pidfd wakes
 * the loop when the child exits; without one (old kernels) it polls in
 * ticks. */
static gboolean
collect (GPid pid, int fds[2], GString *bufs[2], gint64 deadline, int *wstatus)
{
  ab_autofd pidfd = open_pidfd (pid);
  gboolean exited = FALSE;
  for (;;)
    {
      if (!exited && waitpid (pid, wstatus, WNOHANG) == pid)
        exited = TRUE;
      gint64 left = deadline - g_get_monotonic_time ();
      if (left <= 0)
        return FALSE;
      struct pollfd pfd[3];
      int which[3];
      nfds_t n = 0;
      for (int i = 0; i < 2; i++)
        if (fds[i] >= 0)
          {
            which[n] = i;
            pfd[n++] = (struct pollfd) { .fd = fds[i], .events = POLLIN };
          }
      if (exited && n == 0)
        return TRUE;
      if (!exited && pidfd >= 0)
        {
          which[n] = -1;
          pfd[n++] = (struct pollfd) { .fd = pidfd, .events = POLLIN };
        }
      gint64 wait_ms = exited ? 0 : MIN (left / 1000 + 1, pidfd >= 0 ? G_MAXINT : 50);
      int ready = poll (pfd, n, (int) wait_ms);
      /* Exited and nothing left to read: whatever it left running may keep
       * a pipe open, which must not hold up the caller. */
      if (exited && ready == 0)
        return TRUE;
      for (nfds_t i = 0; i < n && ready > 0; i++)
        if (pfd[i].revents != 0 && which[i] >= 0)
          drain_fd (&fds[which[i]], bufs[which[i]]);
    }
}

static char *
describe_call (const Backend *b, char **args)
{
  g_autofree char *joined = g_strjoinv (" ", args);
  return g_strdup_printf ("%s %s", b->path, joined);
}

static gboolean
call_failed (GError **error, const Backend *b, char **args, const char *why, const char *stderr_text)
{
  g_autofree char *call = describe_call (b, args);
  g_autofree char *err = g_strstrip (g_strdup (stderr_text ? stderr_text : ""));
  g_set_error (error, AB_BOOTLOADER_ERROR, AB_BOOTLOADER_ERROR_FAILED,
               "Custom bootloader backend call \"%s\" %s%s%s", call, why,
               *err ? ": " : "", err);
  return FALSE;
}

/* Runs the executable with ARGS; its stdout in OUT on success. */
static gboolean
run_call (const Backend *b, char **args, CallOutput *out, GError **error)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_ptr_array_add (argv, b->path);
  for (char **a = args; *a; a++)
    g_ptr_array_add (argv, *a);
  g_ptr_array_add (argv, NULL);
  GPid pid = 0;
  int fds[2] = { -1, -1 };
  g_autoptr(GError) local = NULL;
  if (!spawn_call (b, (char **) argv->pdata, &pid, &fds[0], &fds[1], &local))
    return call_failed (error, b, args, "could not start", local->message);
  out->out = g_string_new (NULL);
  out->err = g_string_new (NULL);
  GString *bufs[2] = { out->out, out->err };
  gint64 deadline = g_get_monotonic_time () + (gint64) b->timeout * G_USEC_PER_SEC;
  gboolean in_time = collect (pid, fds, bufs, deadline, &out->wstatus);
  for (int i = 0; i < 2; i++)
    if (fds[i] >= 0)
      close (fds[i]);
  if (!in_time)
    {
      kill (-pid, SIGKILL);
      (void) waitpid (pid, &out->wstatus, 0);
    }
  g_spawn_close_pid (pid);
  if (!in_time)
    {
      g_autofree char *why = g_strdup_printf ("timed out after %u s ([boot] " KEY_TIMEOUT
                                              "); its process group was killed", b->timeout);
      return call_failed (error, b, args, why, out->err->str);
    }
  if (WIFSIGNALED (out->wstatus))
    {
      g_autofree char *why = g_strdup_printf ("was killed by signal %d", WTERMSIG (out->wstatus));
      return call_failed (error, b, args, why, out->err->str);
    }
  if (WEXITSTATUS (out->wstatus) != 0)
    {
      g_autofree char *why = g_strdup_printf ("failed with exit status %d", WEXITSTATUS (out->wstatus));
      return call_failed (error, b, args, why, out->err->str);
    }
  return TRUE;
}

/* Runs a call and returns its stdout, stripped of surrounding blanks. */
static char *
query (const Backend *b, char **args, GError **error)
{
  g_auto(CallOutput) out = { 0 };
  if (!run_call (b, args, &out, error))
    return NULL;
  return g_strstrip (g_strdup (out.out->str));
}

static gboolean
unparseable (GError **error, const Backend *b, char **args, const char *output, const char *expected)
{
  g_autofree char *call = describe_call (b, args);
  g_set_error (error, AB_BOOTLOADER_ERROR, AB_BOOTLOADER_ERROR_PARSE,
               "Custom bootloader backend call \"%s\" printed \"%s\"; expected %s",
               call, output, expected);
  return FALSE;
}

static gboolean
get_primary (const Backend *b, AbSlot *out, GError **error)
{
  char *args[] = { (char *) "get-primary", NULL };
  g_autofree char *text = query (b, args, error);
  if (text == NULL)
    return FALSE;
  *out = *text == '\0' ? AB_SLOT_NONE : ab_slot_from_name (text);
  if (*text != '\0' && *out == AB_SLOT_NONE)
    return unparseable (error, b, args, text, "a, b or nothing");
  return TRUE;
}

/* "good", "bad", "none" or "trial N" (N 0..9). */
static gboolean
parse_state (const char *text, AbBootState *state, int *tries)
{
  g_auto(GStrv) words = g_strsplit_set (text, " \t", -1);
  g_autoptr(GPtrArray) w = g_ptr_array_new ();
  for (char **p = words; *p; p++)
    if (**p != '\0')
      g_ptr_array_add (w, *p);
  *tries = 0;
  if (w->len == 0 || !ab_boot_state_from_name (w->pdata[0], state))
    return FALSE;
  if (*state != AB_BOOT_STATE_TRIAL)
    return w->len == 1;
  guint64 n = 0;
  if (w->len != 2 || !g_ascii_string_to_unsigned (w->pdata[1], 10, 0, 9, &n, NULL))
    return FALSE;
  *tries = (int) n;
  return TRUE;
}

static gboolean
get_state (const Backend *b, AbSlot slot, AbBootPointer *ptr, GError **error)
{
  char *args[] = { (char *) "get-state", (char *) ab_slot_name (slot), NULL };
  g_autofree char *text = query (b, args, error);
  if (text == NULL)
    return FALSE;
  if (!parse_state (text, &ptr->state[slot], &ptr->tries[slot]))
    return unparseable (error, b, args, text, "good, bad, none or \"trial N\" with N from 0 to 9");
  return TRUE;
}

static gboolean
load_pointer (const Backend *b, AbBootPointer *out, GError **error)
{
  ab_boot_pointer_init (out);
  return get_primary (b, &out->primary, error)
         && get_state (b, AB_SLOT_A, out, error)
         && get_state (b, AB_SLOT_B, out, error);
}

/* Whether SLOT's state (and tries, for a trial) differ between A and B. */
static gboolean
state_differs (const AbBootPointer *a, const AbBootPointer *b, AbSlot slot)
{
  return a->state[slot] != b->state[slot]
         || (a->state[slot] == AB_BOOT_STATE_TRIAL && a->tries[slot] != b->tries[slot]);
}

static gboolean
set_state (const Backend *b, const AbBootPointer *cur, const AbBootPointer *ptr, AbSlot slot,
           GError **error)
{
  if (!state_differs (cur, ptr, slot))
    return TRUE;
  g_autofree char *tries = g_strdup_printf ("%d", ptr->tries[slot]);
  char *args[] = { (char *) "set-state", (char *) ab_slot_name (slot),
                   (char *) ab_boot_state_name (ptr->state[slot]),
                   ptr->state[slot] == AB_BOOT_STATE_TRIAL ? tries : NULL, NULL };
  g_auto(CallOutput) out = { 0 };
  return run_call (b, args, &out, error);
}

static gboolean
set_primary (const Backend *b, const AbBootPointer *cur, const AbBootPointer *ptr, GError **error)
{
  if (cur->primary == ptr->primary)
    return TRUE;
  const char *name = ptr->primary == AB_SLOT_NONE ? "none" : ab_slot_name (ptr->primary);
  char *args[] = { (char *) "set-primary", (char *) name, NULL };
  g_auto(CallOutput) out = { 0 };
  return run_call (b, args, &out, error);
}

static gboolean
custom_load (AbBootloader *self, AbBootPointer *out, GError **error)
{
  g_auto(Backend) b = { 0 };
  return backend_load (self, &b, error) && load_pointer (&b, out, error);
}

/* The storage belongs to the executable: setup only checks that it answers. */
static gboolean
custom_setup (AbBootloader *self, GError **error)
{
  AbBootPointer ptr;
  return custom_load (self, &ptr, error);
}

static gboolean
custom_save (AbBootloader *self, const AbBootPointer *ptr, GError **error)
{
  g_auto(Backend) b = { 0 };
  AbBootPointer cur;
  if (!backend_load (self, &b, error) || !load_pointer (&b, &cur, error))
    return FALSE;
  /* Order: see the invariants at the top of this file. */
  if (ptr->primary == AB_SLOT_NONE)
    return set_primary (&b, &cur, ptr, error)
           && set_state (&b, &cur, ptr, AB_SLOT_A, error)
           && set_state (&b, &cur, ptr, AB_SLOT_B, error);
  return set_state (&b, &cur, ptr, ptr->primary, error)
         && set_primary (&b, &cur, ptr, error)
         && set_state (&b, &cur, ptr, ab_slot_other (ptr->primary), error);
}

const AbBootloaderOps ab_bootloader_custom_ops = {
  .name = "custom",
  .summary = "the operator executable [boot] custom-backend (one call per change)",
  .caps = 0,
  .setup = custom_setup,
  .load = custom_load,
  .save = custom_save,
  .location = "through the custom backend",
};
