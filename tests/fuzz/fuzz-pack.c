/* Image packs (ab-pack.c): arbitrary bytes as a pack, extracted into a
 * fresh temporary bare repo with a content budget. Invariants: nothing is
 * written beside the repo; every entry written is objects/XX/NAME.TYPE in
 * the repo (a regular file, or a symlink only for a .file), and the
 * content written stays within the budget. */
#include "config.h"
#include "fuzz-common.h"
#include "ab-fsutil.h"
#include "ab-pack.h"
#include "ab-util.h"

#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BUDGET (1024 * 1024)

static guint64
check_prefix_dir (int objects, const char *prefix)
{
  guint64 bytes = 0;
  ab_autofd fd = openat (objects, prefix, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  fuzz_check (fd >= 0, "objects/%s is not a directory", prefix);
  DIR *d = fdopendir (ab_steal_fd (&fd));
  for (struct dirent *e; (e = readdir (d)) != NULL;)
    {
      struct stat st;
      if (g_str_equal (e->d_name, ".") || g_str_equal (e->d_name, ".."))
        continue;
      fuzz_check (fstatat (dirfd (d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0, "stat");
      fuzz_check (strlen (e->d_name) > 63 && e->d_name[62] == '.', "objects/%s/%s written",
                  prefix, e->d_name);
      fuzz_check (S_ISREG (st.st_mode) || (S_ISLNK (st.st_mode)
                                           && g_str_equal (e->d_name + 63, "file")),
                  "objects/%s/%s is of type %o", prefix, e->d_name, st.st_mode & S_IFMT);
      bytes += (guint64) st.st_size;
    }
  closedir (d);
  return bytes;
}

static void
check_tree (int dfd)
{
  g_autoptr(GError) error = NULL;
  ab_autofd objects = ab_fs_opendir_at (dfd, "repo/objects", &error);
  fuzz_check (objects >= 0, "the objects directory is gone");
  guint64 bytes = 0;
  for (guint i = 0; i < 256; i++)
    {
      char name[3];
      g_snprintf (name, sizeof name, "%02x", i);
      bytes += check_prefix_dir (objects, name);
    }
  fuzz_check (bytes <= BUDGET, "%" G_GUINT64_FORMAT " bytes written, beyond the budget", bytes);
}

static void
check_nothing_beside (const char *scratch)
{
  g_autoptr(GDir) d = g_dir_open (scratch, 0, NULL);
  for (const char *n; (n = g_dir_read_name (d)) != NULL;)
    fuzz_check (g_str_equal (n, "repo") || g_str_equal (n, "0.tar.zst"), "%s written beside "
                "the repo", n);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  fuzz_init ();
  static char *scratch;
  static int dfd = -1;
  if (scratch == NULL)
    scratch = fuzz_scratch_dir (&dfd);
  g_autoptr(GError) error = NULL;
  fuzz_check (ab_pack_prepare_repo (dfd, "repo", &error), "prepare: %s", error->message);
  fuzz_write_at (dfd, "0.tar.zst", data, size);
  ab_autofd repo = ab_fs_opendir_at (dfd, "repo", &error);
  ab_autofd pack = openat (dfd, "0.tar.zst", O_RDONLY | O_CLOEXEC);
  fuzz_check (repo >= 0 && pack >= 0, "opening the repo and the pack");
  AbPackBudget budget = { .limit = BUDGET };
  if (!ab_pack_extract_fd (repo, pack, "0.tar.zst", &budget, NULL, &error))
    fuzz_check (error != NULL && strstr (error->message, "0.tar.zst") != NULL,
                "an error that does not name the pack: %s", error ? error->message : "none");
  check_tree (dfd);
  check_nothing_beside (scratch);
  return 0;
}
