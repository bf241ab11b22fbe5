#include "config.h"
#include "ab-fsutil.h"

#include <gio/gio.h>
#include "ab-util.h"
#include "ab-crashpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sendfile.h>
#include <sys/syscall.h>
#include <unistd.h>

G_DEFINE_QUARK (ab-fs-error-quark, ab_fs_error)

gboolean ab_fs_openat2_disabled = FALSE;

AbFsError
ab_fs_error_from_errno (int errsv)
{
  switch (errsv)
    {
    case ENOENT:
      return AB_FS_ERROR_NOT_FOUND;
    case ENOSPC:
    case EDQUOT:
      return AB_FS_ERROR_NO_SPACE;
    case EIO:
      return AB_FS_ERROR_IO;
    default:
      return AB_FS_ERROR_FAILED;
    }
}

gboolean
ab_fs_error_is_local_disk (const GError *error)
{
  return g_error_matches (error, AB_FS_ERROR, AB_FS_ERROR_NO_SPACE)
         || g_error_matches (error, AB_FS_ERROR, AB_FS_ERROR_IO)
         || g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE);
}

gboolean
ab_throw_errno_prefix (GError **error, int errsv, const char *format, ...)
{
  va_list args;
  va_start (args, format);
  g_autofree char *prefix = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error (error, AB_FS_ERROR, ab_fs_error_from_errno (errsv), "%s: %s", prefix,
               g_strerror (errsv));
  return FALSE;
}

static gboolean
fail_errno (GError **error, int errsv, const char *what, const char *name)
{
  return ab_throw_errno_prefix (error, errsv, "%s %s", what, name);
}

gboolean
ab_fs_write_all (int fd, const void *data, gsize len)
{
  const char *p = data;
  while (len > 0)
    {
      ssize_t n = write (fd, p, len);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return FALSE;
      p += n;
      len -= (gsize) n;
    }
  return TRUE;
}

gboolean
ab_fs_fsync_dir_at (int dfd, const char *path, GError **error)
{
  ab_autofd fd = openat (dfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return fail_errno (error, errno, "Opening directory", path);
  if (fsync (fd) < 0)
    return fail_errno (error, errno, "Syncing directory", path);
  return TRUE;
}

static gboolean replace_in_dir (int dfd, const char *name, const void *data, gsize len,
                                mode_t mode, GError **error);

gboolean
ab_fs_replace_at (int dfd, const char *path, const void *data, gsize len, mode_t mode,
                  GError **error)
{
  if (strchr (path, '/') == NULL)
    return replace_in_dir (dfd, path, data, len, mode, error);
  g_autofree char *parent = g_path_get_dirname (path);
  g_autofree char *name = g_path_get_basename (path);
  ab_autofd parent_dfd = openat (dfd, parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (parent_dfd < 0)
    return fail_errno (error, errno, "Opening directory", parent);
  return replace_in_dir (parent_dfd, name, data, len, mode, error);
}

static char *
tmp_name (const char *name)
{
  return g_strdup_printf (".%s.tmp-%d", name, (int) getpid ());
}

/* Writes and fsyncs the temporary of NAME; a failure leaves no temporary. */
static gboolean
write_tmp (int dfd, const char *name, const void *data, gsize len, mode_t mode,
           GError **error)
{
  g_autofree char *tmp = tmp_name (name);
  gboolean keep_mode = mode == AB_FS_MODE_NONE;
  ab_autofd fd = openat (dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                         keep_mode ? 0644 : mode);
  if (fd < 0)
    return fail_errno (error, errno, "Creating", tmp);
  if (!ab_fs_write_all (fd, data, len) || (!keep_mode && fchmod (fd, mode) < 0))
    {
      int errsv = errno;
      (void) unlinkat (dfd, tmp, 0);
      return fail_errno (error, errsv, "Writing", tmp);
    }
  ab_crash_point ("replace:written");
  if (fsync (fd) < 0)
    {
      int errsv = errno;
      (void) unlinkat (dfd, tmp, 0);
      return fail_errno (error, errsv, "Syncing", tmp);
    }
  ab_crash_point ("replace:synced");
  return TRUE;
}

/* Renames the written temporary of NAME over NAME. */
static gboolean
rename_tmp (int dfd, const char *name, GError **error)
{
  g_autofree char *tmp = tmp_name (name);
  if (renameat (dfd, tmp, dfd, name) < 0)
    {
      int errsv = errno;
      (void) unlinkat (dfd, tmp, 0);
      return fail_errno (error, errsv, "Renaming into place", name);
    }
  ab_crash_point ("replace:renamed");
  return TRUE;
}

static gboolean
replace_in_dir (int dfd, const char *name, const void *data, gsize len, mode_t mode,
                GError **error)
{
  return write_tmp (dfd, name, data, len, mode, error)
         && rename_tmp (dfd, name, error)
         && ab_fs_fsync_dir_at (dfd, ".", error);
}

static void
remove_tmps (int dfd, const AbFsWrite *files, guint from, guint to)
{
  for (guint j = from; j < to; j++)
    {
      g_autofree char *tmp = tmp_name (files[j].name);
      (void) unlinkat (dfd, tmp, 0);
    }
}

/* Every temporary is written and synced before the first rename: a full
 * disk or an I/O error while writing changes none of the files, and a
 * crash afterwards leaves each file old or new (renames in array order). */
gboolean
ab_fs_replace_all_at (int dfd, const AbFsWrite *files, guint n, GError **error)
{
  for (guint i = 0; i < n; i++)
    if (!write_tmp (dfd, files[i].name, files[i].data, files[i].len, files[i].mode, error))
      {
        remove_tmps (dfd, files, 0, i);
        return FALSE;
      }
  for (guint i = 0; i < n; i++)
    if (!rename_tmp (dfd, files[i].name, error))
      {
        remove_tmps (dfd, files, i + 1, n);
        return FALSE;
      }
  return ab_fs_fsync_dir_at (dfd, ".", error);
}

gboolean
ab_fs_unlink_durable_at (int dfd, const char *name, GError **error)
{
  if (unlinkat (dfd, name, 0) < 0)
    {
      if (errno == ENOENT)
        return TRUE;
      return fail_errno (error, errno, "Removing", name);
    }
  ab_crash_point ("unlink:removed");
  return ab_fs_fsync_dir_at (dfd, ".", error);
}

gboolean
ab_fs_read_fd (int fd, const char *name, char **out_data, gsize *out_len, GError **error)
{
  g_autoptr(GByteArray) buf = g_byte_array_new ();
  char chunk[8192];
  for (;;)
    {
      ssize_t n = read (fd, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return fail_errno (error, errno, "Reading", name);
      if (n == 0)
        break;
      g_byte_array_append (buf, (guint8 *) chunk, (guint) n);
    }
  if (out_len)
    *out_len = buf->len;
  g_byte_array_append (buf, (const guint8 *) "", 1);
  *out_data = (char *) g_byte_array_free (g_steal_pointer (&buf), FALSE);
  return TRUE;
}

gboolean
ab_fs_read_at (int dfd, const char *name, char **out_data, gsize *out_len, GError **error)
{
  ab_autofd fd = openat (dfd, name, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return fail_errno (error, errno, "Opening", name);
  return ab_fs_read_fd (fd, name, out_data, out_len, error);
}

gboolean
ab_fs_exists_at (int dfd, const char *name)
{
  struct stat st;
  return fstatat (dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

gboolean
ab_fs_mkdir_p_at (int dfd, const char *path, mode_t mode, GError **error)
{
  g_autofree char *copy = g_strdup (path);
  for (char *p = copy + 1; ; p++)
    {
      gboolean last = (*p == '\0');
      if (*p != '/' && !last)
        continue;
      char saved = *p;
      *p = '\0';
      if (mkdirat (dfd, copy, mode) < 0 && errno != EEXIST)
        return fail_errno (error, errno, "Creating directory", copy);
      *p = saved;
      if (last)
        break;
    }
  return TRUE;
}

int
ab_fs_opendir_at (int dfd, const char *path, GError **error)
{
  int fd = openat (dfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    fail_errno (error, errno, "Opening directory", path);
  return fd;
}

static void
clear_immutable (int fd)
{
  int flags = 0;
  if (ioctl (fd, FS_IOC_GETFLAGS, &flags) == 0 && (flags & FS_IMMUTABLE_FL))
    {
      flags &= ~FS_IMMUTABLE_FL;
      (void) ioctl (fd, FS_IOC_SETFLAGS, &flags);
    }
}

static gboolean
rm_rf_children (int dfd, GError **error)
{
  clear_immutable (dfd);
  int dup_fd = dup (dfd);
  if (dup_fd < 0)
    return fail_errno (error, errno, "Duplicating", "directory fd");
  DIR *dir = fdopendir (dup_fd);
  if (dir == NULL)
    {
      close (dup_fd);
      return fail_errno (error, errno, "Listing", "directory");
    }
  struct dirent *de;
  gboolean ok = TRUE;
  while (ok && (de = readdir (dir)) != NULL)
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      ok = ab_fs_rm_rf_at (dirfd (dir), de->d_name, error);
    }
  closedir (dir);
  return ok;
}

gboolean
ab_fs_rm_rf_at (int dfd, const char *path, GError **error)
{
  struct stat st;
  if (fstatat (dfd, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return errno == ENOENT ? TRUE : fail_errno (error, errno, "Examining", path);
  if (!S_ISDIR (st.st_mode))
    {
      if (unlinkat (dfd, path, 0) < 0 && errno != ENOENT)
        return fail_errno (error, errno, "Removing", path);
      return TRUE;
    }
  {
    ab_autofd child = openat (dfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (child < 0)
      return fail_errno (error, errno, "Opening directory", path);
    if (!rm_rf_children (child, error))
      return FALSE;
  }
  if (unlinkat (dfd, path, AT_REMOVEDIR) < 0 && errno != ENOENT)
    return fail_errno (error, errno, "Removing directory", path);
  return TRUE;
}

gboolean
ab_fs_exchange_at (int dfd, const char *a, const char *b, GError **error)
{
  if (renameat2 (dfd, a, dfd, b, RENAME_EXCHANGE) < 0)
    return fail_errno (error, errno, "Exchanging", b);
  return TRUE;
}

gboolean
ab_fs_rename_at (int dfd, const char *from, const char *to, GError **error)
{
  if (renameat (dfd, from, dfd, to) < 0)
    return fail_errno (error, errno, "Renaming", from);
  return TRUE;
}

static gboolean
copy_metadata (int fd, const struct stat *st, const char *name, GError **error)
{
  if (geteuid () == 0 && fchown (fd, st->st_uid, st->st_gid) < 0)
    return fail_errno (error, errno, "Setting owner of", name);
  if (fchmod (fd, st->st_mode & 07777) < 0)
    return fail_errno (error, errno, "Setting mode of", name);
  struct timespec times[2] = { st->st_atim, st->st_mtim };
  if (futimens (fd, times) < 0)
    return fail_errno (error, errno, "Setting times of", name);
  return TRUE;
}

/* SIZE bytes from IN to OUT (SRC names IN in errors). */
static gboolean
copy_bytes (int in, int out, off_t size, const char *src, GError **error)
{
  off_t remaining = size;
  while (remaining > 0)
    {
      ssize_t n = copy_file_range (in, NULL, out, NULL, (size_t) remaining, 0);
      if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL))
        n = sendfile (out, in, NULL, (size_t) remaining);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return fail_errno (error, errno, "Copying", src);
      if (n == 0)
        break;
      remaining -= n;
    }
  return TRUE;
}

static gboolean
copy_regular (int src_dfd, const char *src, int dst_dfd, const char *dst,
              const struct stat *st, GError **error)
{
  ab_autofd in = openat (src_dfd, src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (in < 0)
    return fail_errno (error, errno, "Opening", src);
  ab_autofd out = openat (dst_dfd, dst, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                          0600);
  if (out < 0)
    return fail_errno (error, errno, "Creating", dst);
  return copy_bytes (in, out, st->st_size, src, error) && copy_metadata (out, st, dst, error);
}

gboolean
ab_fs_copy_data_at (int src_dfd, const char *src, int dst_dfd, const char *dst, GError **error)
{
  struct stat st;
  ab_autofd in = openat (src_dfd, src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (in < 0 || fstat (in, &st) < 0)
    return fail_errno (error, errno, "Opening", src);
  if (!S_ISREG (st.st_mode))
    {
      g_set_error (error, AB_FS_ERROR, AB_FS_ERROR_NOT_REGULAR, "%s is not a regular file", src);
      return FALSE;
    }
  ab_autofd out = openat (dst_dfd, dst, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                          0644);
  if (out < 0)
    return fail_errno (error, errno, "Creating", dst);
  if (copy_bytes (in, out, st.st_size, src, error) && fsync (out) == 0)
    return TRUE;
  if (error != NULL && *error == NULL)
    fail_errno (error, errno, "Syncing", dst);
  (void) unlinkat (dst_dfd, dst, 0);
  return FALSE;
}

static gboolean
copy_symlink (int src_dfd, const char *src, int dst_dfd, const char *dst,
              const struct stat *st, GError **error)
{
  char target[PATH_MAX + 1];
  ssize_t n = readlinkat (src_dfd, src, target, PATH_MAX);
  if (n < 0)
    return fail_errno (error, errno, "Reading link", src);
  target[n] = '\0';
  if (symlinkat (target, dst_dfd, dst) < 0)
    return fail_errno (error, errno, "Creating link", dst);
  if (geteuid () == 0 && fchownat (dst_dfd, dst, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0)
    return fail_errno (error, errno, "Setting owner of", dst);
  return TRUE;
}

static gboolean
copy_dir (int src_dfd, const char *src, int dst_dfd, const char *dst, const struct stat *st,
          GError **error)
{
  if (mkdirat (dst_dfd, dst, 0700) < 0)
    return fail_errno (error, errno, "Creating directory", dst);
  ab_autofd sfd = openat (src_dfd, src, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (sfd < 0)
    return fail_errno (error, errno, "Opening directory", src);
  ab_autofd dfd = openat (dst_dfd, dst, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd < 0)
    return fail_errno (error, errno, "Opening directory", dst);
  int list_fd = dup (sfd);
  DIR *d = list_fd >= 0 ? fdopendir (list_fd) : NULL;
  if (d == NULL)
    {
      if (list_fd >= 0)
        close (list_fd);
      return fail_errno (error, errno, "Listing", src);
    }
  struct dirent *de;
  gboolean ok = TRUE;
  while (ok && (de = readdir (d)) != NULL)
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      ok = ab_fs_copy_at (sfd, de->d_name, dfd, de->d_name, error);
    }
  closedir (d);
  return ok && copy_metadata (dfd, st, dst, error);
}

gboolean
ab_fs_copy_at (int src_dfd, const char *src, int dst_dfd, const char *dst, GError **error)
{
  struct stat st;
  if (fstatat (src_dfd, src, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return fail_errno (error, errno, "Examining", src);
  if (S_ISREG (st.st_mode))
    return copy_regular (src_dfd, src, dst_dfd, dst, &st, error);
  if (S_ISLNK (st.st_mode))
    return copy_symlink (src_dfd, src, dst_dfd, dst, &st, error);
  if (S_ISDIR (st.st_mode))
    return copy_dir (src_dfd, src, dst_dfd, dst, &st, error);
  g_set_error (error, AB_FS_ERROR, AB_FS_ERROR_FAILED,
               "Cannot copy %s: only regular files, symlinks and directories are supported", src);
  return FALSE;
}

static gboolean
same_file_bytes (int a_dfd, const char *a, int b_dfd, const char *b, gboolean *out_same,
                 GError **error)
{
  ab_autofd fa = openat (a_dfd, a, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fa < 0)
    return fail_errno (error, errno, "Opening", a);
  ab_autofd fb = openat (b_dfd, b, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fb < 0)
    return fail_errno (error, errno, "Opening", b);
  char ba[16384], bb[16384];
  for (;;)
    {
      ssize_t na = read (fa, ba, sizeof ba);
      if (na < 0)
        return fail_errno (error, errno, "Reading", a);
      ssize_t got = 0;
      while (got < na)
        {
          ssize_t nb = read (fb, bb + got, (size_t) (na - got));
          if (nb < 0)
            return fail_errno (error, errno, "Reading", b);
          if (nb == 0)
            break;
          got += nb;
        }
      if (got != na || memcmp (ba, bb, (size_t) na) != 0)
        {
          *out_same = FALSE;
          return TRUE;
        }
      if (na == 0)
        {
          *out_same = TRUE;
          return TRUE;
        }
    }
}

gboolean
ab_fs_same_content_at (int a_dfd, const char *a, int b_dfd, const char *b,
                       gboolean *out_same, GError **error)
{
  struct stat sa, sb;
  if (fstatat (a_dfd, a, &sa, AT_SYMLINK_NOFOLLOW) < 0)
    return fail_errno (error, errno, "Examining", a);
  if (fstatat (b_dfd, b, &sb, AT_SYMLINK_NOFOLLOW) < 0)
    return fail_errno (error, errno, "Examining", b);
  *out_same = FALSE;
  if (sa.st_mode != sb.st_mode || sa.st_uid != sb.st_uid || sa.st_gid != sb.st_gid)
    return TRUE;
  if (S_ISDIR (sa.st_mode))
    {
      *out_same = TRUE;
      return TRUE;
    }
  if (S_ISLNK (sa.st_mode))
    {
      char ta[PATH_MAX + 1], tb[PATH_MAX + 1];
      ssize_t na = readlinkat (a_dfd, a, ta, PATH_MAX);
      ssize_t nb = readlinkat (b_dfd, b, tb, PATH_MAX);
      if (na < 0 || nb < 0)
        return fail_errno (error, errno, "Reading link", a);
      *out_same = na == nb && memcmp (ta, tb, (size_t) na) == 0;
      return TRUE;
    }
  if (!S_ISREG (sa.st_mode) || sa.st_size != sb.st_size)
    return TRUE;
  if (sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino)
    {
      *out_same = TRUE;
      return TRUE;
    }
  return same_file_bytes (a_dfd, a, b_dfd, b, out_same, error);
}

gboolean
ab_fs_syncfs (int dfd, GError **error)
{
  if (syncfs (dfd) < 0)
    return fail_errno (error, errno, "Syncing", "file system");
  return TRUE;
}

char *
ab_fs_fd_realpath (int fd, GError **error)
{
  if (fd == AT_FDCWD)
    return g_get_current_dir ();
  g_autofree char *link = g_strdup_printf ("/proc/self/fd/%d", fd);
  return g_file_read_link (link, error);
}

/* ---- resolution beneath a root ---- */

static guint64
resolve_flags (AbFsResolve how)
{
  switch (how)
    {
    case AB_FS_RESOLVE_NO_SYMLINKS:
      return RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    case AB_FS_RESOLVE_BENEATH:
      return RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    case AB_FS_RESOLVE_IN_ROOT:
    default:
      return RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    }
}

/* openat2(2); -1 with errno ENOSYS where the kernel lacks it. EAGAIN
 * (a concurrent rename while resolving) is retried a bounded number of
 * times. */
static int
open_with_openat2 (int dfd, const char *path, int flags, mode_t mode, AbFsResolve how)
{
  struct open_how oh = { 0 };
  oh.flags = (guint64) (flags | O_CLOEXEC);
  oh.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;
  oh.resolve = resolve_flags (how);
  int fd = -1;
  for (int i = 0; i < 64; i++)
    {
      fd = (int) syscall (SYS_openat2, dfd, path, &oh, sizeof oh);
      if (fd >= 0 || (errno != EINTR && errno != EAGAIN))
        break;
    }
  return fd;
}

/* errno ELOOP when DFD/NAME is a symbolic link, else KEEP. */
static int
link_or (int dfd, const char *name, int keep)
{
  struct stat st;
  if (fstatat (dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK (st.st_mode))
    return ELOOP;
  return keep;
}

/* One component opened with O_NOFOLLOW below DFD; "..": EXDEV. */
static int
open_component (int dfd, const char *name, int flags, mode_t mode)
{
  if (g_str_equal (name, ".."))
    {
      errno = EXDEV;
      return -1;
    }
  int fd = openat (dfd, name, flags | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0)
    {
      errno = link_or (dfd, name, errno);
      return -1;
    }
  struct stat st;
  if ((flags & O_PATH) && fstat (fd, &st) == 0 && S_ISLNK (st.st_mode)
      && !(flags & O_NOFOLLOW))
    {
      close (fd);
      errno = ELOOP;
      return -1;
    }
  return fd;
}

/* The fallback for kernels without openat2: every component with
 * O_NOFOLLOW; a symbolic link anywhere (except a last one opened with
 * O_PATH|O_NOFOLLOW) is ELOOP, ".." is EXDEV. */
static int
open_by_walk (int dfd, const char *path, int flags, mode_t mode)
{
  g_auto(GStrv) split = g_strsplit (path, "/", -1);
  g_autoptr(GPtrArray) parts = g_ptr_array_new ();
  for (guint i = 0; split[i]; i++)
    if (*split[i] != '\0' && !g_str_equal (split[i], "."))
      g_ptr_array_add (parts, split[i]);
  ab_autofd cur = openat (dfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
  for (guint i = 0; cur >= 0 && i + 1 < parts->len; i++)
    {
      int next = open_component (cur, parts->pdata[i], O_PATH | O_DIRECTORY, 0);
      int errsv = errno;
      close (cur);
      cur = next;
      errno = errsv;
    }
  if (cur < 0)
    return -1;
  if (parts->len == 0)
    return openat (cur, ".", flags | O_CLOEXEC, mode);
  return open_component (cur, parts->pdata[parts->len - 1], flags, mode);
}

static int
beneath_error (GError **error, int errsv, const char *path, AbFsResolve how)
{
  if (errsv == EXDEV || (errsv == ELOOP && how == AB_FS_RESOLVE_NO_SYMLINKS))
    g_set_error (error, AB_FS_ERROR, AB_FS_ERROR_ESCAPES,
                 "%s resolves through a symbolic link%s; refusing to follow it",
                 path, errsv == EXDEV ? " or \"..\" that leaves its root" : "");
  else
    fail_errno (error, errsv, "Opening", path);
  return -1;
}

int
ab_fs_open_beneath (int root_dfd, const char *path, int flags, mode_t mode, AbFsResolve how,
                    GError **error)
{
  g_return_val_if_fail (path != NULL && !g_path_is_absolute (path), -1);
  int fd = ab_fs_openat2_disabled ? -1 : open_with_openat2 (root_dfd, path, flags, mode, how);
  if (fd < 0 && (ab_fs_openat2_disabled || errno == ENOSYS))
    {
      fd = open_by_walk (root_dfd, path, flags, mode);
      if (fd < 0 && errno == ELOOP)
        errno = EXDEV;   /* the walk follows no link at all */
    }
  if (fd < 0)
    return beneath_error (error, errno, path, how);
  return fd;
}

int
ab_fs_open_parent_beneath (int root_dfd, const char *path, const char **out_name,
                           AbFsResolve how, GError **error)
{
  const char *slash = strrchr (path, '/');
  *out_name = slash ? slash + 1 : path;
  g_autofree char *parent = slash ? g_strndup (path, (gsize) (slash - path)) : g_strdup (".");
  return ab_fs_open_beneath (root_dfd, *parent ? parent : ".", O_RDONLY | O_DIRECTORY, 0, how,
                             error);
}

int
ab_fs_mkdir_p_beneath (int root_dfd, const char *path, mode_t mode, GError **error)
{
  g_auto(GStrv) parts = g_strsplit (path, "/", -1);
  ab_autofd cur = ab_fs_open_beneath (root_dfd, ".", O_RDONLY | O_DIRECTORY, 0,
                                      AB_FS_RESOLVE_NO_SYMLINKS, error);
  for (guint i = 0; cur >= 0 && parts[i]; i++)
    {
      if (*parts[i] == '\0' || g_str_equal (parts[i], "."))
        continue;
      if (mkdirat (cur, parts[i], mode) < 0 && errno != EEXIST)
        {
          fail_errno (error, errno, "Creating directory", path);
          return -1;
        }
      int next = ab_fs_open_beneath (cur, parts[i], O_RDONLY | O_DIRECTORY, 0,
                                     AB_FS_RESOLVE_NO_SYMLINKS, error);
      close (cur);
      cur = next;
    }
  return ab_steal_fd (&cur);
}

/* Why the file or directory PATH with ST may not lead to code run by this
 * process, or NULL (see ab_fs_check_code_path()). */
static char *
unsafe_reason (const char *path, const struct stat *st)
{
  const char *what = S_ISDIR (st->st_mode) ? "directory " : "";
  gboolean sticky = S_ISDIR (st->st_mode) && (st->st_mode & S_ISVTX);
  if ((st->st_mode & S_IWOTH) && !sticky)
    return g_strdup_printf ("%s%s is world-writable; run chmod o-w on it", what, path);
  if ((st->st_mode & S_IWGRP) && st->st_gid != 0 && !sticky)
    return g_strdup_printf ("%s%s is writable by group %u; run chmod g-w on it", what, path,
                            (unsigned) st->st_gid);
  if (geteuid () == 0 && st->st_uid != 0)
    return g_strdup_printf ("%s%s is owned by uid %u, not root; run chown root on it", what,
                            path, (unsigned) st->st_uid);
  return NULL;
}

/* PATH (absolute) and every directory above it, up to /. */
static gboolean
check_chain (const char *path, GError **error)
{
  g_autofree char *p = g_strdup (path);
  for (;;)
    {
      struct stat st;
      if (stat (p, &st) < 0)
        {
          int errsv = errno;
          g_set_error (error, AB_FS_ERROR, AB_FS_ERROR_UNSAFE, "cannot examine %s: %s", p,
                       g_strerror (errsv));
          return FALSE;
        }
      g_autofree char *why = unsafe_reason (p, &st);
      if (why != NULL)
        {
          g_set_error_literal (error, AB_FS_ERROR, AB_FS_ERROR_UNSAFE, why);
          return FALSE;
        }
      if (g_str_equal (p, "/") || g_str_equal (p, "."))
        return TRUE;
      char *up = g_path_get_dirname (p);
      g_free (p);
      p = up;
    }
}

gboolean
ab_fs_check_code_path (const char *path, GError **error)
{
  g_autofree char *real = realpath (path, NULL);
  if (real == NULL)
    {
      int errsv = errno;
      g_set_error (error, AB_FS_ERROR, AB_FS_ERROR_UNSAFE, "cannot examine %s: %s", path,
                   g_strerror (errsv));
      return FALSE;
    }
  if (!check_chain (real, error))
    return FALSE;
  if (g_str_equal (real, path))
    return TRUE;
  /* a link on the way: whoever may replace it decides what runs */
  g_autofree char *abs = g_canonicalize_filename (path, NULL);
  g_autofree char *dir = g_path_get_dirname (abs);
  return check_chain (dir, error);
}
