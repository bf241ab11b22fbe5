/* main() for the fuzz targets when they are not built with libFuzzer (any
 * compiler other than clang): runs LLVMFuzzerTestOneInput() once on every
 * file named, and on every file in every directory named, so a gcc build
 * still checks each seed corpus. A crash or a violated invariant aborts. */
#include "fuzz-common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
replay_file (const char *path, guint *count)
{
  g_autofree char *data = NULL;
  gsize len = 0;
  g_autoptr(GError) error = NULL;
  if (!g_file_get_contents (path, &data, &len, &error))
    {
      fprintf (stderr, "replay: %s\n", error->message);
      exit (2);
    }
  /* A copy of exactly LEN bytes, so that reading past the input is caught;
   * never NULL, as with libFuzzer. */
  g_autofree guint8 *copy = g_malloc (MAX (len, 1));
  memcpy (copy, data, len);
  (void) LLVMFuzzerTestOneInput (copy, len);
  (*count)++;
}

static gint
compare_paths (gconstpointer a, gconstpointer b)
{
  return g_strcmp0 (*(char *const *) a, *(char *const *) b);
}

static void
replay_dir (const char *path, guint *count)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GDir) dir = g_dir_open (path, 0, &error);
  if (dir == NULL)
    {
      fprintf (stderr, "replay: %s\n", error->message);
      exit (2);
    }
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  for (const char *n; (n = g_dir_read_name (dir)) != NULL;)
    g_ptr_array_add (names, g_build_filename (path, n, NULL));
  g_ptr_array_sort (names, compare_paths);
  for (guint i = 0; i < names->len; i++)
    replay_file (names->pdata[i], count);
}

int
main (int argc, char **argv)
{
  guint count = 0;
  for (int i = 1; i < argc; i++)
    {
      if (argv[i][0] == '-')
        continue;   /* libFuzzer flags: meaningless here */
      if (g_file_test (argv[i], G_FILE_TEST_IS_DIR))
        replay_dir (argv[i], &count);
      else
        replay_file (argv[i], &count);
    }
  if (count == 0)
    {
      fprintf (stderr, "replay: no input\n");
      return 2;
    }
  printf ("replay: %u inputs, no crash\n", count);
  return 0;
}
