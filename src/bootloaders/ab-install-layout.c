/* The table of install layouts (one entry per --bootloader value) and the
 * helpers their hooks share. */
#include "config.h"
#include "bootloaders/ab-install-layout.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

G_DEFINE_QUARK (ab-install-error-quark, ab_install_error)

/* A new bootloader: one line here, its hooks in a file of its own. */
static const AbInstallLayout *const layouts[] = {
  &ab_install_layout_grub_bios,
  &ab_install_layout_grub_efi,
  &ab_install_layout_systemd_boot,
  &ab_install_layout_uboot,
};

const AbInstallLayout *
ab_install_layout_lookup (const char *name)
{
  for (guint i = 0; name != NULL && i < G_N_ELEMENTS (layouts); i++)
    if (strcmp (layouts[i]->name, name) == 0)
      return layouts[i];
  return NULL;
}

const char *
ab_install_layout_names (void)
{
  static char *names;
  static gsize once;
  if (g_once_init_enter (&once))
    {
      GString *s = g_string_new (NULL);
      for (guint i = 0; i < G_N_ELEMENTS (layouts); i++)
        g_string_append_printf (s, "%s%s", i ? ", " : "", layouts[i]->name);
      names = g_string_free (s, FALSE);
      g_once_init_leave (&once, 1);
    }
  return names;
}

const AbPart *
ab_install_ctx_part (const AbInstallCtx *ctx, AbPartKind kind)
{
  for (guint i = 0; i < ctx->n_parts; i++)
    if (ctx->parts[i].kind == kind)
      return &ctx->parts[i];
  return NULL;
}

static gboolean
spawn_failed (const char *program, const char *package, GError *local, GError **error)
{
  if (g_error_matches (local, G_SPAWN_ERROR, G_SPAWN_ERROR_NOENT))
    g_set_error (error, AB_INSTALL_ERROR, AB_INSTALL_ERROR_TOOL,
                 "%s is not installed; install the %s package", program, package);
  else
    g_set_error (error, AB_INSTALL_ERROR, AB_INSTALL_ERROR_TOOL, "cannot run %s: %s",
                 program, local->message);
  return FALSE;
}

gboolean
ab_install_spawn (AbInstallCtx *ctx, const char *const *argv, const char *input,
                  const char *package, GError **error)
{
  g_autoptr(GError) local = NULL;
  GSubprocessFlags flags = G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_MERGE
                           | (input ? G_SUBPROCESS_FLAGS_STDIN_PIPE : 0);
  g_autoptr(GSubprocess) proc = g_subprocess_newv (argv, flags, &local);
  if (proc == NULL)
    return spawn_failed (argv[0], package, local, error);
  g_autofree char *out = NULL;
  if (!g_subprocess_communicate_utf8 (proc, input, ctx->cancellable, &out, NULL, error))
    return FALSE;
  if (g_subprocess_get_if_exited (proc) && g_subprocess_get_exit_status (proc) == 0)
    return TRUE;
  g_set_error (error, AB_INSTALL_ERROR, AB_INSTALL_ERROR_TOOL, "%s failed (%s %d): %s", argv[0],
               g_subprocess_get_if_exited (proc) ? "exit status" : "signal",
               g_subprocess_get_if_exited (proc) ? g_subprocess_get_exit_status (proc)
                                                 : g_subprocess_get_term_sig (proc),
               g_strstrip (out ? out : g_strdup ("")));
  return FALSE;
}

gboolean
ab_install_pwrite (AbInstallCtx *ctx, const void *data, gsize len, guint64 offset, GError **error)
{
  const guint8 *p = data;
  while (len > 0)
    {
      ssize_t n = pwrite (ctx->disk_fd, p, len, (off_t) offset);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          g_set_error (error, G_IO_ERROR, g_io_error_from_errno (n < 0 ? errno : ENOSPC),
                       "cannot write the disk at offset %" G_GUINT64_FORMAT ": %s", offset,
                       g_strerror (n < 0 ? errno : ENOSPC));
          return FALSE;
        }
      p += n;
      len -= (gsize) n;
      offset += (guint64) n;
    }
  return TRUE;
}

static char *
prepare_dest (const char *root, const char *dest, GError **error)
{
  g_autofree char *path = g_build_filename (root, dest, NULL);
  g_autofree char *dir = g_path_get_dirname (path);
  if (g_mkdir_with_parents (dir, 0755) < 0)
    {
      int e = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (e), "cannot create %s: %s", dir,
                   g_strerror (e));
      return NULL;
    }
  return g_steal_pointer (&path);
}

gboolean
ab_install_copy_file (const char *src, const char *root, const char *dest, GError **error)
{
  g_autofree char *path = prepare_dest (root, dest, error);
  if (path == NULL)
    return FALSE;
  g_autoptr(GFile) from = g_file_new_for_path (src);
  g_autoptr(GFile) to = g_file_new_for_path (path);
  return g_file_copy (from, to, G_FILE_COPY_OVERWRITE | G_FILE_COPY_NOFOLLOW_SYMLINKS, NULL, NULL,
                      NULL, error);
}

gboolean
ab_install_write_file (const char *root, const char *dest, const char *text, GError **error)
{
  g_autofree char *path = prepare_dest (root, dest, error);
  return path != NULL && g_file_set_contents_full (path, text, -1, G_FILE_SET_CONTENTS_CONSISTENT,
                                                   0644, error);
}
