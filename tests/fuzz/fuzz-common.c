#include "config.h"
#include "fuzz-common.h"
#include "ab-util.h"
#include "ab-fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void
quiet_log (const char *domain, GLogLevelFlags level, const char *message, gpointer data)
{
  /* A critical is a g_return_if_fail() that hostile input reached: a bug.
   * abort() rather than GLib's breakpoint trap, so that libFuzzer keeps
   * the input. */
  if (level & (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_ERROR))
    {
      fprintf (stderr, "%s: %s\n", domain ? domain : "?", message);
      abort ();
    }
}

void
fuzz_init (void)
{
  static gsize done = 0;
  if (!g_once_init_enter (&done))
    return;
  g_log_set_always_fatal (G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
  g_log_set_default_handler (quiet_log, NULL);
  g_once_init_leave (&done, 1);
}

static GPtrArray *scratch_dirs;

static void
remove_scratch_dirs (void)
{
  for (guint i = 0; scratch_dirs && i < scratch_dirs->len; i++)
    AB_IGNORE_RESULT (ab_fs_rm_rf_at (AT_FDCWD, scratch_dirs->pdata[i], NULL));
}

char *
fuzz_scratch_dir (int *out_dfd)
{
  /* $TMPDIR (run-fuzz.sh points it at a directory it removes: libFuzzer
   * may end without running atexit handlers), else tmpfs when there is
   * one: the targets write a file per input. */
  const char *tmpdir = g_getenv ("TMPDIR");
  const char *base = tmpdir && *tmpdir ? tmpdir
                     : g_file_test ("/dev/shm", G_FILE_TEST_IS_DIR) ? "/dev/shm" : g_get_tmp_dir ();
  char *path = g_build_filename (base, "abdeploy-fuzz-XXXXXX", NULL);
  if (g_mkdtemp (path) == NULL)
    fuzz_fail (G_STRLOC, "mkdtemp %s: %s", path, g_strerror (errno));
  if (scratch_dirs == NULL)
    {
      scratch_dirs = g_ptr_array_new ();
      atexit (remove_scratch_dirs);
    }
  g_ptr_array_add (scratch_dirs, g_strdup (path));
  if (out_dfd != NULL)
    {
      *out_dfd = open (path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (*out_dfd < 0)
        fuzz_fail (G_STRLOC, "open %s: %s", path, g_strerror (errno));
    }
  return path;
}

void
fuzz_write_at (int dfd, const char *name, const void *data, size_t size)
{
  int fd = openat (dfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    fuzz_fail (G_STRLOC, "open %s: %s", name, g_strerror (errno));
  const char *p = data;
  while (size > 0)
    {
      ssize_t n = write (fd, p, size);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        fuzz_fail (G_STRLOC, "write %s: %s", name, g_strerror (errno));
      p += n;
      size -= (size_t) n;
    }
  close (fd);
}

void
fuzz_fail (const char *where, const char *format, ...)
{
  va_list ap;
  va_start (ap, format);
  g_autofree char *msg = g_strdup_vprintf (format, ap);
  va_end (ap);
  fprintf (stderr, "fuzz invariant violated at %s: %s\n", where, msg);
  abort ();
}
