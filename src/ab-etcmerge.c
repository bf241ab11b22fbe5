#include "config.h"
#include "ab-etcmerge.h"
#include "ab-fsutil.h"
#include "ab-util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

G_DEFINE_QUARK (ab-etcmerge-error-quark, ab_etcmerge_error)

typedef struct
{
  int base_dfd;  /* old defaults (old usr/etc), -1 when absent */
  int local_dfd; /* old etc/ */
  int new_dfd;   /* the etc/ being built */
} Merge;

static GPtrArray *
list_dir (int dfd, const char *rel)
{
  GPtrArray *names = g_ptr_array_new_with_free_func (g_free);
  if (dfd < 0)
    return names;
  int fd = openat (dfd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  DIR *d = fd >= 0 ? fdopendir (fd) : NULL;
  if (d == NULL)
    {
      if (fd >= 0)
        close (fd);
      return names;
    }
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    if (strcmp (de->d_name, ".") != 0 && strcmp (de->d_name, "..") != 0)
      g_ptr_array_add (names, g_strdup (de->d_name));
  closedir (d);
  return names;
}

static gboolean
is_dir_at (int dfd, const char *rel)
{
  struct stat st;
  return dfd >= 0 && fstatat (dfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR (st.st_mode);
}

static gboolean
exists_at (int dfd, const char *rel)
{
  return dfd >= 0 && ab_fs_exists_at (dfd, rel);
}

/* Puts the operator's version of REL into the new etc. */
static gboolean
take_local (Merge *m, const char *rel, GError **error)
{
  if (!ab_fs_rm_rf_at (m->new_dfd, rel, error))
    return FALSE;
  g_autofree char *parent = g_path_get_dirname (rel);
  if (strcmp (parent, ".") != 0 && !ab_fs_mkdir_p_at (m->new_dfd, parent, 0755, error))
    return FALSE;
  return ab_fs_copy_at (m->local_dfd, rel, m->new_dfd, rel, error);
}

/* Operator changes and additions: everything in local that differs from base. */
static gboolean
merge_changes (Merge *m, const char *rel, GError **error)
{
  g_autoptr(GPtrArray) names = list_dir (m->local_dfd, rel);
  for (guint i = 0; i < names->len; i++)
    {
      g_autofree char *child = g_build_filename (rel, names->pdata[i], NULL);
      if (!exists_at (m->base_dfd, child))
        {
          if (!take_local (m, child, error))
            return FALSE;
          continue;
        }
      if (is_dir_at (m->local_dfd, child) && is_dir_at (m->base_dfd, child))
        {
          if (!merge_changes (m, child, error))
            return FALSE;
          continue;
        }
      gboolean same = FALSE;
      if (!ab_fs_same_content_at (m->local_dfd, child, m->base_dfd, child, &same, error))
        return FALSE;
      if (!same && !take_local (m, child, error))
        return FALSE;
    }
  return TRUE;
}

/* Operator deletions: everything in base that local no longer has. */
static gboolean
merge_deletions (Merge *m, const char *rel, GError **error)
{
  g_autoptr(GPtrArray) names = list_dir (m->base_dfd, rel);
  for (guint i = 0; i < names->len; i++)
    {
      g_autofree char *child = g_build_filename (rel, names->pdata[i], NULL);
      if (!exists_at (m->local_dfd, child))
        {
          if (!ab_fs_rm_rf_at (m->new_dfd, child, error))
            return FALSE;
        }
      else if (is_dir_at (m->local_dfd, child) && is_dir_at (m->base_dfd, child))
        {
          if (!merge_deletions (m, child, error))
            return FALSE;
        }
    }
  return TRUE;
}

static gboolean
create_defaults (int new_tree_dfd, GError **error)
{
  if (is_dir_at (new_tree_dfd, "usr/etc"))
    return ab_fs_copy_at (new_tree_dfd, "usr/etc", new_tree_dfd, "etc", error);
  if (mkdirat (new_tree_dfd, "etc", 0755) < 0)
    {
      g_set_error (error, AB_ETCMERGE_ERROR, AB_ETCMERGE_ERROR_FAILED, "Creating etc: %s",
                   g_strerror (errno));
      return FALSE;
    }
  return TRUE;
}

gboolean
ab_etc_merge (int old_tree_dfd, int new_tree_dfd, GError **error)
{
  if (!create_defaults (new_tree_dfd, error))
    return FALSE;
  if (old_tree_dfd < 0 || !is_dir_at (old_tree_dfd, "etc"))
    return TRUE;
  ab_autofd new_dfd = ab_fs_opendir_at (new_tree_dfd, "etc", error);
  if (new_dfd < 0)
    return FALSE;
  ab_autofd local_dfd = ab_fs_opendir_at (old_tree_dfd, "etc", error);
  if (local_dfd < 0)
    return FALSE;
  g_autoptr(GError) ignored = NULL;
  ab_autofd base_dfd = is_dir_at (old_tree_dfd, "usr/etc")
                           ? ab_fs_opendir_at (old_tree_dfd, "usr/etc", &ignored)
                           : -1;
  Merge m = { base_dfd, local_dfd, new_dfd };
  if (!merge_changes (&m, ".", error) || !merge_deletions (&m, ".", error))
    {
      g_prefix_error (error, "Merging /etc: ");
      return FALSE;
    }
  return TRUE;
}
