#include "config.h"
#include "ab-mount.h"
#include "ab-fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

G_DEFINE_QUARK (ab-mount-error-quark, ab_mount_error)

/* Deepest a path may be: bounds the walk up to its mount root. */
#define MAX_DEPTH 256

static gboolean
fail (GError **error, const char *what, const char *path)
{
  return ab_throw_errno_prefix (error, errno, "%s %s", what, path);
}

/* The mount point (the root of the mount) that holds the existing PATH. */
static char *
mount_root_of (const char *path, GError **error)
{
  g_autofree char *dir = realpath (path, NULL);
  if (dir == NULL)
    return fail (error, "Resolving", path), NULL;
  for (int i = 0; i < MAX_DEPTH; i++)
    {
      struct statx stx;
      if (statx (AT_FDCWD, dir, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &stx) < 0)
        return fail (error, "Examining", dir), NULL;
      if (!(stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT))
        {
          g_set_error (error, AB_MOUNT_ERROR, AB_MOUNT_ERROR_FAILED,
                       "Finding the mount point of %s: the kernel does not report mount roots "
                       "(statx STATX_ATTR_MOUNT_ROOT, Linux 5.8)", path);
          return NULL;
        }
      if ((stx.stx_attributes & STATX_ATTR_MOUNT_ROOT) || g_strcmp0 (dir, "/") == 0)
        return g_steal_pointer (&dir);
      char *parent = g_path_get_dirname (dir);
      g_free (dir);
      dir = parent;
    }
  g_set_error (error, AB_MOUNT_ERROR, AB_MOUNT_ERROR_FAILED, "%s is nested too deep", path);
  return NULL;
}

/* The per-mount flags of a bind remount, as statvfs reports them, without
 * MS_RDONLY: a bind remount sets all of them at once. */
static unsigned long
kept_flags (unsigned long f_flag)
{
  static const struct { unsigned long st, ms; } map[] = {
    { ST_NOSUID, MS_NOSUID }, { ST_NODEV, MS_NODEV }, { ST_NOEXEC, MS_NOEXEC },
    { ST_NOATIME, MS_NOATIME }, { ST_NODIRATIME, MS_NODIRATIME }, { ST_RELATIME, MS_RELATIME },
  };
  unsigned long ms = 0;
  for (guint i = 0; i < G_N_ELEMENTS (map); i++)
    if (f_flag & map[i].st)
      ms |= map[i].ms;
  return ms;
}

/* Enters a private mount namespace once per process (the first time). */
static gboolean
enter_namespace (gboolean *entered, GError **error)
{
  if (*entered)
    return TRUE;
  if (unshare (CLONE_NEWNS) < 0)
    return fail (error, "Entering a mount namespace of its own to write to", "the sysroot");
  /* Private: nothing done here reaches the namespace abdeploy came from. */
  if (mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
    return fail (error, "Making mount propagation private under", "/");
  *entered = TRUE;
  return TRUE;
}

static gboolean
remount_rw (const char *mountpoint, unsigned long f_flag, GError **error)
{
  if (mount (NULL, mountpoint, NULL, MS_REMOUNT | MS_BIND | kept_flags (f_flag), NULL) < 0)
    return fail (error, "Remounting read-write (in private)", mountpoint);
  struct statvfs after;
  if (statvfs (mountpoint, &after) < 0)
    return fail (error, "Examining", mountpoint);
  if (after.f_flag & ST_RDONLY)
    {
      g_set_error (error, AB_MOUNT_ERROR, AB_MOUNT_ERROR_SUPERBLOCK_RO,
                   "The file system mounted on %s is read-only as a whole, not only this "
                   "mount: abdeploy writes through a read-write file system under a read-only "
                   "bind mount; remount the file system read-write (mount -o remount,rw) and "
                   "keep only the bind mount read-only", mountpoint);
      return FALSE;
    }
  return TRUE;
}

gboolean
ab_mount_make_writable (const char *root, const char *const *subpaths, gboolean *out_changed,
                        GError **error)
{
  static gboolean entered = FALSE;
  g_autoptr(GHashTable) done = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  *out_changed = FALSE;
  for (guint i = 0; subpaths[i] != NULL; i++)
    {
      g_autofree char *path = g_build_filename (root, subpaths[i], NULL);
      struct statvfs vfs;
      if (statvfs (path, &vfs) < 0)
        {
          if (errno == ENOENT)
            continue;
          return fail (error, "Examining", path);
        }
      if (!(vfs.f_flag & ST_RDONLY))
        continue;
      g_autofree char *mp = mount_root_of (path, error);
      if (mp == NULL)
        return FALSE;
      if (g_hash_table_contains (done, mp))
        continue;
      if (!enter_namespace (&entered, error) || !remount_rw (mp, vfs.f_flag, error))
        return FALSE;
      g_hash_table_add (done, g_steal_pointer (&mp));
      *out_changed = TRUE;
    }
  return TRUE;
}

gboolean
ab_mount_make_sysroot_writable (const char *path, gboolean *out_changed, GError **error)
{
  static const char *const written[] = { "abdeploy", "ostree", "boot", NULL };
  return ab_mount_make_writable (path, written, out_changed, error);
}
