#include "config.h"
#include "ab-lock.h"
#include "ab-util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

G_DEFINE_QUARK (ab-lock-error-quark, ab_lock_error)

#define LOCK_FILE "lock"

static char *
read_holder (int fd)
{
  char buf[32] = { 0 };
  ssize_t n = pread (fd, buf, sizeof buf - 1, 0);
  if (n <= 0)
    return g_strdup ("unknown");
  return g_strstrip (g_strdup (buf));
}

/* The command line of process PID, as printable text (at most 200
 * bytes), or NULL when it is gone or not readable. */
static char *
holder_command (const char *pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%s/cmdline", pid);
  g_autofree char *raw = NULL;
  gsize len = 0;
  if (!g_ascii_isdigit (pid[0]) || !g_file_get_contents (path, &raw, &len, NULL) || len == 0)
    return NULL;
  len = MIN (len, 200);
  for (gsize i = 0; i < len; i++)
    if (raw[i] == '\0')
      raw[i] = ' ';
    else if (!g_ascii_isprint (raw[i]))
      raw[i] = '?';
  return g_strstrip (g_strndup (raw, len));
}

/* Names the holder: its pid and command; the D-Bus daemon (`abdeploy
 * daemon`) by name, with how to stop its operation. */
static void
set_held_error (GError **error, const char *pid)
{
  g_autofree char *cmd = holder_command (pid);
  g_auto(GStrv) words = g_strsplit (cmd ? cmd : "", " ", -1);
  if (g_strv_contains ((const char *const *) words, "daemon"))
    g_set_error (error, AB_LOCK_ERROR, AB_LOCK_ERROR_HELD,
                 "The abdeploy daemon (pid %s: %s, bus name org.abdeploy1) holds the lock on this "
                 "sysroot for an operation; wait for it to finish (or cancel it: busctl call "
                 "org.abdeploy1 /org/abdeploy1 org.abdeploy1.Manager Cancel), then run the "
                 "command again", pid, cmd);
  else
    g_set_error (error, AB_LOCK_ERROR, AB_LOCK_ERROR_HELD,
                 "Another abdeploy (pid %s%s%s) holds the lock on this sysroot; wait for it to "
                 "finish, then run the command again", pid, cmd ? ": " : "", cmd ? cmd : "");
}

/* Takes flock OPERATION (LOCK_EX or LOCK_SH) on FD without blocking. */
static gboolean
take (int fd, int operation, GError **error)
{
  if (flock (fd, operation | LOCK_NB) == 0)
    return TRUE;
  if (errno == EWOULDBLOCK)
    {
      g_autofree char *holder = read_holder (fd);
      set_held_error (error, holder);
    }
  else
    g_set_error (error, AB_LOCK_ERROR, AB_LOCK_ERROR_FAILED, "Taking the lock: %s",
                 g_strerror (errno));
  return FALSE;
}

static gboolean
opened (int fd, GError **error)
{
  if (fd >= 0)
    return TRUE;
  g_set_error (error, AB_LOCK_ERROR, AB_LOCK_ERROR_FAILED, "Opening the lock file: %s",
               g_strerror (errno));
  return FALSE;
}

int
ab_lock_acquire (int abdeploy_dfd, GError **error)
{
  ab_autofd fd = openat (abdeploy_dfd, LOCK_FILE, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (!opened (fd, error) || !take (fd, LOCK_EX, error))
    return -1;
  g_autofree char *pid = g_strdup_printf ("%d\n", (int) getpid ());
  /* The pid is informational; the flock is the lock. */
  if (ftruncate (fd, 0) == 0)
    (void) !pwrite (fd, pid, strlen (pid), 0);
  return ab_steal_fd (&fd);
}

int
ab_lock_acquire_wait (int abdeploy_dfd, guint timeout_ms, GError **error)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
  for (;;)
    {
      g_autoptr(GError) local = NULL;
      int fd = ab_lock_acquire (abdeploy_dfd, &local);
      if (fd >= 0)
        return fd;
      if (!g_error_matches (local, AB_LOCK_ERROR, AB_LOCK_ERROR_HELD)
          || g_get_monotonic_time () >= deadline)
        {
          g_propagate_error (error, g_steal_pointer (&local));
          return -1;
        }
      g_usleep (20 * 1000);
    }
}

int
ab_lock_acquire_shared (int abdeploy_dfd, GError **error)
{
  ab_autofd fd = openat (abdeploy_dfd, LOCK_FILE, O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT)
    fd = openat (abdeploy_dfd, LOCK_FILE, O_RDONLY | O_CREAT | O_CLOEXEC, 0644);
  if (!opened (fd, error) || !take (fd, LOCK_SH, error))
    return -1;
  return ab_steal_fd (&fd);
}
