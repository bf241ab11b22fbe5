#include "config.h"
#include "ab-etcmerge.h"
#include "ab-fsutil.h"
#include "ab-util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

G_DEFINE_QUARK (ab-etcmerge-error-quark, ab_etcmerge_error)

typedef struct
{
  int base_dfd;  /* old defaults (old usr/etc), -1 when absent */
  int local_dfd; /* old etc/ */
  int new_dfd;   /* the etc/ being built */
} Merge;

/* REL's directory below DFD, opened without following any link. */
static int
open_parent (int dfd, const char *rel, const char **out_name, GError **error)
{
  return ab_fs_open_parent_beneath (dfd, rel, out_name, AB_FS_RESOLVE_NO_SYMLINKS, error);
}

/* lstat of REL below DFD, no link followed on the way; FALSE when absent. */
static gboolean
stat_entry (int dfd, const char *rel, struct stat *st)
{
  const char *name = NULL;
  if (dfd < 0)
    return FALSE;
  ab_autofd parent = open_parent (dfd, rel, &name, NULL);
  return parent >= 0 && fstatat (parent, name, st, AT_SYMLINK_NOFOLLOW) == 0;
}

static gboolean
is_dir_at (int dfd, const char *rel)
{
  struct stat st;
  return stat_entry (dfd, rel, &st) && S_ISDIR (st.st_mode);
}

static gboolean
exists_at (int dfd, const char *rel)
{
  struct stat st;
  return stat_entry (dfd, rel, &st);
}

static GPtrArray *
list_dir (int dfd, const char *rel)
{
  GPtrArray *names = g_ptr_array_new_with_free_func (g_free);
  if (dfd < 0)
    return names;
  int fd = ab_fs_open_beneath (dfd, rel, O_RDONLY | O_DIRECTORY, 0, AB_FS_RESOLVE_NO_SYMLINKS,
                               NULL);
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

static char *
child_path (const char *rel, const char *name)
{
  return g_str_equal (rel, ".") ? g_strdup (name) : g_build_filename (rel, name, NULL);
}

/* A link of the new image lies on REL's way: the local change below it
 * would be written (or the deletion made) wherever the link points. */
static gboolean
conflict_or (GError **error, GError *local, const char *rel, const char *what)
{
  if (!g_error_matches (local, AB_FS_ERROR, AB_FS_ERROR_ESCAPES))
    {
      g_propagate_error (error, local);
      return FALSE;
    }
  g_set_error (error, AB_ETCMERGE_ERROR, AB_ETCMERGE_ERROR_CONFLICT,
               "the running system %s etc/%s, but in the new image a directory on that path "
               "is a symbolic link (%s); abdeploy never writes or deletes through a link of "
               "an image. Move the local change out of that directory (or undo it) and stage "
               "again, or have the image keep the directory", what, rel, local->message);
  g_error_free (local);
  return FALSE;
}

/* Puts the operator's version of REL into the new etc. */
static gboolean
take_local (Merge *m, const char *rel, GError **error)
{
  g_autofree char *parent = g_path_get_dirname (rel);
  const char *name = NULL;
  GError *local = NULL;
  ab_autofd dst = ab_fs_mkdir_p_beneath (m->new_dfd, parent, 0755, &local);
  if (dst < 0)
    return conflict_or (error, local, rel, "changed");
  ab_autofd src = open_parent (m->local_dfd, rel, &name, error);
  if (src < 0)
    return FALSE;
  return ab_fs_rm_rf_at (dst, name, error) && ab_fs_copy_at (src, name, dst, name, error);
}

static gboolean
same_entry (Merge *m, const char *rel, gboolean *out_same, GError **error)
{
  const char *name = NULL;
  ab_autofd local = open_parent (m->local_dfd, rel, &name, error);
  if (local < 0)
    return FALSE;
  ab_autofd base = open_parent (m->base_dfd, rel, &name, error);
  return base >= 0 && ab_fs_same_content_at (local, name, base, name, out_same, error);
}

/* Operator changes and additions: everything in local that differs from base. */
static gboolean
merge_changes (Merge *m, const char *rel, GError **error)
{
  g_autoptr(GPtrArray) names = list_dir (m->local_dfd, rel);
  for (guint i = 0; i < names->len; i++)
    {
      g_autofree char *child = child_path (rel, names->pdata[i]);
      gboolean same = FALSE;
      if (!exists_at (m->base_dfd, child))
        {
          if (!take_local (m, child, error))
            return FALSE;
        }
      else if (is_dir_at (m->local_dfd, child) && is_dir_at (m->base_dfd, child))
        {
          if (!merge_changes (m, child, error))
            return FALSE;
        }
      else if (!same_entry (m, child, &same, error) || (!same && !take_local (m, child, error)))
        return FALSE;
    }
  return TRUE;
}

/* Removes REL from the new etc; a missing parent leaves nothing to remove. */
static gboolean
remove_new (Merge *m, const char *rel, GError **error)
{
  const char *name = NULL;
  GError *local = NULL;
  ab_autofd parent = open_parent (m->new_dfd, rel, &name, &local);
  if (parent >= 0)
    return ab_fs_rm_rf_at (parent, name, error);
  if (g_error_matches (local, AB_FS_ERROR, AB_FS_ERROR_NOT_FOUND))
    {
      g_error_free (local);
      return TRUE;
    }
  return conflict_or (error, local, rel, "deleted");
}

/* Operator deletions: everything in base that local no longer has. */
static gboolean
merge_deletions (Merge *m, const char *rel, GError **error)
{
  g_autoptr(GPtrArray) names = list_dir (m->base_dfd, rel);
  for (guint i = 0; i < names->len; i++)
    {
      g_autofree char *child = child_path (rel, names->pdata[i]);
      if (!exists_at (m->local_dfd, child))
        {
          if (!remove_new (m, child, error))
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

/* DFD/REL as a directory fd; -1 without error when absent, -1 with error
 * when it resolves through a link or is not a directory. */
static int
open_tree_dir (int dfd, const char *rel, GError **error)
{
  g_autoptr(GError) local = NULL;
  int fd = ab_fs_open_beneath (dfd, rel, O_RDONLY | O_DIRECTORY, 0, AB_FS_RESOLVE_NO_SYMLINKS,
                               &local);
  if (fd < 0 && !g_error_matches (local, AB_FS_ERROR, AB_FS_ERROR_NOT_FOUND))
    g_set_error (error, AB_ETCMERGE_ERROR, AB_ETCMERGE_ERROR_FAILED,
                 "%s of the image is not a directory of its own: %s", rel, local->message);
  return fd;
}

/* The new etc: a copy of the new usr/etc (or empty); returns its fd. */
static int
create_defaults (int new_tree_dfd, GError **error)
{
  g_autoptr(GError) local = NULL;
  ab_autofd defaults = open_tree_dir (new_tree_dfd, "usr/etc", &local);
  if (local != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return -1;
    }
  gboolean ok = defaults >= 0 ? ab_fs_copy_at (defaults, ".", new_tree_dfd, "etc", error)
                              : mkdirat (new_tree_dfd, "etc", 0755) == 0;
  if (!ok && defaults < 0)
    g_set_error (error, AB_FS_ERROR, ab_fs_error_from_errno (errno), "Creating etc: %s",
                 g_strerror (errno));
  return ok ? open_tree_dir (new_tree_dfd, "etc", error) : -1;
}

gboolean
ab_etc_merge (int old_tree_dfd, int new_tree_dfd, GError **error)
{
  g_autoptr(GError) local = NULL;
  ab_autofd new_dfd = create_defaults (new_tree_dfd, error);
  if (new_dfd < 0)
    return FALSE;
  ab_autofd local_dfd = old_tree_dfd >= 0 ? open_tree_dir (old_tree_dfd, "etc", &local) : -1;
  ab_autofd base_dfd = local_dfd >= 0 ? open_tree_dir (old_tree_dfd, "usr/etc", &local) : -1;
  if (local != NULL)
    {
      g_propagate_prefixed_error (error, g_steal_pointer (&local), "Merging /etc: the running slot's ");
      return FALSE;
    }
  if (local_dfd < 0)
    return TRUE;   /* first deployment, or a running slot without etc */
  Merge m = { base_dfd, local_dfd, new_dfd };
  if (!merge_changes (&m, ".", error) || !merge_deletions (&m, ".", error))
    {
      g_prefix_error (error, "Merging /etc: ");
      return FALSE;
    }
  return TRUE;
}
