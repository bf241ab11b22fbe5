#include "config.h"
#include "ab-crashpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if ENABLE_CRASH_POINTS
static guint crash_points_reached;

static void
trace_point (const char *name)
{
  const char *trace = g_getenv ("ABDEPLOY_CRASH_TRACE");
  if (trace == NULL || *trace == '\0')
    return;
  int fd = open (trace, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0)
    return;
  g_autofree char *line = g_strconcat (name, "\n", NULL);
  (void) !write (fd, line, strlen (line));
  close (fd);
}

static gboolean
should_crash (const char *name)
{
  const char *at = g_getenv ("ABDEPLOY_CRASH_AT");
  if (at == NULL || *at == '\0')
    return FALSE;
  char *end = NULL;
  guint64 n = g_ascii_strtoull (at, &end, 10);
  if (end != at && *end == '\0')
    return n == crash_points_reached;
  return strcmp (at, name) == 0;
}
#endif

void
ab_crash_point (const char *name)
{
#if ENABLE_CRASH_POINTS
  crash_points_reached++;
  trace_point (name);
  if (should_crash (name))
    {
      /* Mirror a power cut as closely as a process can: no cleanup, no
       * atexit handlers, no buffered output flushed. */
      raise (SIGKILL);
      _exit (137);
    }
#else
  (void) name;
#endif
}
