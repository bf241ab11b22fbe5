/* Publisher: the image layout check and conversions of publish commit. */
#include "config.h"
#include "ab-publish-private.h"
#include "ab-util.h"
#include "ab-fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

/* ---- the image layout ----
 * A device reads its image as OSTree lays one out (abdeploy-layout(7)):
 * the default configuration in usr/etc (merged into each slot's /etc), the
 * kernel in usr/lib/modules/KVER/vmlinuz with an optional initramfs.img
 * beside it (ab-kernel.c). A debootstrap or mmdebstrap rootfs has /etc and
 * boot/vmlinuz-KVER, boot/initrd.img-KVER instead.
 *
 * Invariants: the check and the conversions (--move-etc, --move-boot) work
 * on the commit's mutable tree after the tree was read, never on the
 * builder's directory, which stays as it was; they name entries of the
 * mutable tree only, so a symbolic link of the tree is an entry like any
 * other and never leads a move anywhere else. Only regular, non-empty files
 * are moved as kernels. */

#define MODULES_DIR "usr/lib/modules"
#define OS_RELEASE_MAX 65536

/* The directory NAME of DIR: *out NULL when absent; an entry that is not a
 * directory is AB_PUBLISH_ERROR_REFUSED naming SHOWN. */
static gboolean
lookup_dir (OstreeMutableTree *dir, const char *name, const char *shown,
            OstreeMutableTree **out, GError **error)
{
  g_autofree char *file = NULL;
  g_autoptr(OstreeMutableTree) sub = NULL;
  g_autoptr(GError) local = NULL;
  *out = NULL;
  if (dir == NULL)
    return TRUE;
  if (!ostree_mutable_tree_lookup (dir, name, &file, &sub, &local))
    {
      if (g_error_matches (local, G_IO_ERROR, G_IO_ERROR_NOT_FOUND))
        return TRUE;
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  if (sub == NULL)
    {
      g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_REFUSED,
                   "Refusing the tree: %s is not a directory (a symbolic link or a file); an "
                   "image must have a real directory there; nothing was committed", shown);
      return FALSE;
    }
  *out = g_steal_pointer (&sub);
  return TRUE;
}

/* The file NAME of DIR (its content checksum), or NULL when absent or a
 * directory. */
static char *
lookup_file (OstreeMutableTree *dir, const char *name)
{
  g_autofree char *file = NULL;
  g_autoptr(OstreeMutableTree) sub = NULL;
  if (dir == NULL || !ostree_mutable_tree_lookup (dir, name, &file, &sub, NULL))
    return NULL;
  return g_steal_pointer (&file);
}

/* The directory REL (slash-separated, relative) beneath ROOT, made where
 * missing with the metadata (owner, mode) of its parent. */
static OstreeMutableTree *
ensure_path (OstreeMutableTree *root, const char *rel, GError **error)
{
  g_auto(GStrv) parts = g_strsplit (rel, "/", -1);
  g_autoptr(OstreeMutableTree) dir = g_object_ref (root);
  g_autoptr(GString) shown = g_string_new (NULL);
  for (guint i = 0; parts[i]; i++)
    {
      g_string_append_printf (shown, "%s%s", i ? "/" : "", parts[i]);
      g_autoptr(OstreeMutableTree) sub = NULL;
      if (!lookup_dir (dir, parts[i], shown->str, &sub, error))
        return NULL;
      if (sub == NULL)
        {
          if (!ostree_mutable_tree_ensure_dir (dir, parts[i], &sub, error))
            return NULL;
          ostree_mutable_tree_set_metadata_checksum (sub, ostree_mutable_tree_get_metadata_checksum (dir));
        }
      g_set_object (&dir, sub);
    }
  return g_steal_pointer (&dir);
}

static gboolean
refuse (GError **error, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

static gboolean
refuse (GError **error, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_REFUSED, "Refusing the tree: %s; "
               "nothing was committed", msg);
  return FALSE;
}

/* Both directories written, compared by their dirtree and metadata. */
static gboolean
same_dir (OstreeRepo *repo, OstreeMutableTree *a, OstreeMutableTree *b, gboolean *out_same,
          GError **error)
{
  g_autoptr(GFile) fa = NULL, fb = NULL;
  if (!ostree_repo_write_mtree (repo, a, &fa, NULL, error)
      || !ostree_repo_write_mtree (repo, b, &fb, NULL, error))
    return FALSE;
  OstreeRepoFile *ra = OSTREE_REPO_FILE (fa), *rb = OSTREE_REPO_FILE (fb);
  *out_same = g_str_equal (ostree_repo_file_tree_get_contents_checksum (ra),
                           ostree_repo_file_tree_get_contents_checksum (rb))
              && g_str_equal (ostree_repo_file_tree_get_metadata_checksum (ra),
                              ostree_repo_file_tree_get_metadata_checksum (rb));
  return TRUE;
}

/* --move-etc: etc becomes usr/etc; an identical usr/etc just drops etc. */
static gboolean
move_etc (OstreeRepo *repo, OstreeMutableTree *root, OstreeMutableTree *etc, GError **error)
{
  g_autoptr(OstreeMutableTree) usr = ensure_path (root, "usr", error);
  g_autoptr(OstreeMutableTree) old = NULL;
  if (usr == NULL || !lookup_dir (usr, "etc", "usr/etc", &old, error))
    return FALSE;
  gboolean same = FALSE;
  if (old != NULL && !same_dir (repo, etc, old, &same, error))
    return FALSE;
  if (old != NULL && !same)
    return refuse (error, "--move-etc: the tree has both etc and usr/etc, and they differ; merge "
                   "what etc adds into usr/etc (or remove one of them) in the tree, then commit "
                   "again");
  if (old == NULL)
    {
      g_autoptr(GFile) written = NULL;
      g_autoptr(OstreeMutableTree) dest = NULL;
      if (!ostree_repo_write_mtree (repo, etc, &written, NULL, error)
          || !ostree_mutable_tree_ensure_dir (usr, "etc", &dest, error))
        return FALSE;
      OstreeRepoFile *rf = OSTREE_REPO_FILE (written);
      if (!ostree_mutable_tree_fill_empty_from_dirtree (
              dest, repo, ostree_repo_file_tree_get_contents_checksum (rf),
              ostree_repo_file_tree_get_metadata_checksum (rf)))
        return refuse (error, "--move-etc: usr/etc could not be filled");
    }
  return ostree_mutable_tree_remove (root, "etc", FALSE, error);
}

static gboolean
check_etc (const AbPublishLayout *l, OstreeMutableTree *root, GError **error)
{
  g_autofree char *file = lookup_file (root, "etc");
  g_autoptr(OstreeMutableTree) etc = NULL;
  if (file != NULL)
    return refuse (error, "etc at the top of the tree is a symbolic link or a file; an image "
                   "keeps its default configuration in the directory usr/etc: remove etc (or "
                   "make usr/etc the directory it stands for)");
  if (!lookup_dir (root, "etc", "etc", &etc, error))
    return FALSE;
  if (etc == NULL)
    return TRUE;
  if (!l->o->move_etc)
    return refuse (error, "the tree has a top-level etc (as debootstrap makes it); an image keeps "
                   "its default configuration in usr/etc, which the device merges into each "
                   "slot's /etc: give --move-etc to move it there in the commit (the tree is "
                   "not changed)");
  return move_etc (l->repo, root, etc, error);
}

/* What the gate recorded of the tree's file PATH ("/boot/vmlinuz-1.0"). */
static AbPublishFileKind
kind_of (const AbPublishLayout *l, const char *path)
{
  return GPOINTER_TO_INT (g_hash_table_lookup (l->kinds, path));
}

/* Moves boot/NAME to usr/lib/modules/KVER/DEST unless it is there already. */
static gboolean
move_boot_file (AbPublishLayout *l, OstreeMutableTree *root, OstreeMutableTree *boot,
                const char *name, const char *kver, const char *dest, GError **error)
{
  g_autofree char *path = g_strconcat ("/boot/", name, NULL);
  if (kind_of (l, path) != AB_PUBLISH_FILE_REGULAR)
    return refuse (error, "--move-boot: boot/%s is not a regular, non-empty file (a symbolic "
                   "link?); put the file itself there", name);
  g_autofree char *rel = g_build_filename (MODULES_DIR, kver, NULL);
  g_autoptr(OstreeMutableTree) kdir = ensure_path (root, rel, error);
  if (kdir == NULL)
    return FALSE;
  g_autofree char *checksum = lookup_file (boot, name);
  g_autofree char *there = lookup_file (kdir, dest);
  if (there != NULL && !g_str_equal (there, checksum))
    return refuse (error, "--move-boot: boot/%s and %s/%s both exist and differ; remove one of "
                   "them in the tree", name, rel, dest);
  g_autofree char *moved = g_strconcat ("/", rel, "/", dest, NULL);
  g_hash_table_insert (l->kinds, g_steal_pointer (&moved),
                       GINT_TO_POINTER (AB_PUBLISH_FILE_REGULAR));
  return ostree_mutable_tree_replace_file (kdir, dest, checksum, error)
         && ostree_mutable_tree_remove (boot, name, FALSE, error);
}

/* The KVER of a Debian kernel file name: vmlinuz-KVER (as_kernel) or
 * initrd.img-KVER, else NULL. */
static const char *
boot_kver (const char *name, gboolean *as_kernel)
{
  *as_kernel = g_str_has_prefix (name, "vmlinuz-");
  const char *kver = *as_kernel ? name + strlen ("vmlinuz-")
                     : g_str_has_prefix (name, "initrd.img-") ? name + strlen ("initrd.img-")
                     : NULL;
  return kver && *kver && !g_str_equal (kver, ".") && !g_str_equal (kver, "..") ? kver : NULL;
}

static gboolean
move_boot (AbPublishLayout *l, OstreeMutableTree *root, OstreeMutableTree *boot, GError **error)
{
  g_autofree gpointer *keys = g_hash_table_get_keys_as_array (ostree_mutable_tree_get_files (boot),
                                                              NULL);
  g_auto(GStrv) names = g_strdupv ((char **) keys); /* the moves change the table */
  for (guint i = 0; names[i]; i++)
    {
      gboolean kernel = FALSE;
      const char *kver = boot_kver (names[i], &kernel);
      if (kver != NULL
          && !move_boot_file (l, root, boot, names[i], kver,
                              kernel ? "vmlinuz" : "initramfs.img", error))
        return FALSE;
    }
  return TRUE;
}

/* The highest KVER of usr/lib/modules with a vmlinuz entry (the one a
 * device boots, ab-kernel.c), or NULL. */
static char *
highest_kver (OstreeMutableTree *modules)
{
  const char *found = NULL;
  GHashTableIter it;
  gpointer name, sub;
  if (modules == NULL)
    return NULL;
  g_hash_table_iter_init (&it, ostree_mutable_tree_get_subdirs (modules));
  while (g_hash_table_iter_next (&it, &name, &sub))
    {
      g_autofree char *k = lookup_file (sub, "vmlinuz");
      if (k != NULL && (found == NULL || strcmp (name, found) > 0))
        found = name;
    }
  return g_strdup (found);
}

/* Sets *out_kver to the kernel a device would boot; refuses one it
 * would not. */
static gboolean
find_kernel (const AbPublishLayout *l, OstreeMutableTree *root, char **out_kver, GError **error)
{
  g_autoptr(OstreeMutableTree) usr = NULL, lib = NULL, modules = NULL;
  if (!lookup_dir (root, "usr", "usr", &usr, error)
      || !lookup_dir (usr, "lib", "usr/lib", &lib, error)
      || !lookup_dir (lib, "modules", MODULES_DIR, &modules, error))
    return FALSE;
  g_autofree char *kver = highest_kver (modules);
  g_autofree char *path = kver ? g_strdup_printf ("/" MODULES_DIR "/%s/vmlinuz", kver) : NULL;
  if (kver != NULL && kind_of (l, path) != AB_PUBLISH_FILE_REGULAR)
    return refuse (error, "%s is not a regular, non-empty file (a symbolic link?), and devices "
                   "boot only such a kernel; put the kernel itself there", path + 1);
  *out_kver = g_steal_pointer (&kver);
  return TRUE;
}

static char *
boot_kernel_name (OstreeMutableTree *boot)
{
  GHashTableIter it;
  gpointer name;
  if (boot == NULL)
    return NULL;
  g_hash_table_iter_init (&it, ostree_mutable_tree_get_files (boot));
  while (g_hash_table_iter_next (&it, &name, NULL))
    if (g_str_has_prefix (name, "vmlinuz-"))
      return g_strdup (name);
  return NULL;
}

static gboolean
check_kernel (AbPublishLayout *l, OstreeMutableTree *root, GError **error)
{
  g_autoptr(OstreeMutableTree) boot = NULL;
  if (lookup_file (root, "boot") == NULL && !lookup_dir (root, "boot", "boot", &boot, error))
    return FALSE;
  if (l->o->move_boot && boot != NULL && !move_boot (l, root, boot, error))
    return FALSE;
  g_autofree char *kver = NULL;
  if (!find_kernel (l, root, &kver, error))
    return FALSE;
  if (kver != NULL || l->o->no_kernel)
    return TRUE;
  g_autofree char *in_boot = boot_kernel_name (boot);
  if (in_boot != NULL)
    return refuse (error, "the kernel is only in boot/%s (as Debian installs it), and a device "
                   "boots " MODULES_DIR "/KVER/vmlinuz (with initramfs.img beside it): give "
                   "--move-boot to move boot/vmlinuz-KVER and boot/initrd.img-KVER there in "
                   "the commit (the tree is not changed)", in_boot);
  return refuse (error, "the tree has no kernel (" MODULES_DIR "/KVER/vmlinuz), and a device "
                 "refuses to stage an image it cannot boot: add the kernel, or give --no-kernel "
                 "if this commit is not meant to be booted by abdeploy");
}

gboolean
ab_publish_layout_apply (AbPublishLayout *l, OstreeMutableTree *root, GError **error)
{
  return check_etc (l, root, error) && check_kernel (l, root, error);
}

/* ---- the OS name ---- */

gboolean
ab_publish_os_name_is_valid (const char *os)
{
  for (const char *p = os; *p; p++)
    if (!g_ascii_isalnum (*p) && strchr ("._-", *p) == NULL)
      return FALSE;
  return *os != '\0' && *os != '.' && strlen (os) <= 64;
}

/* The ID of the os-release text DATA, or NULL. */
static char *
os_release_id (const char *data)
{
  g_auto(GStrv) lines = g_strsplit (data, "\n", -1);
  for (guint i = 0; lines[i]; i++)
    {
      const char *line = g_strstrip (lines[i]);
      if (!g_str_has_prefix (line, "ID="))
        continue;
      g_autofree char *value = g_shell_unquote (line + 3, NULL);
      return value && *value ? g_steal_pointer (&value) : NULL;
    }
  return NULL;
}

/* The os-release file REL of the tree, a regular file reached without a
 * link; *out NULL when there is none. */
static gboolean
read_os_release (int tree_dfd, const char *rel, char **out, GError **error)
{
  g_autoptr(GError) local = NULL;
  *out = NULL;
  ab_autofd fd = ab_fs_open_beneath (tree_dfd, rel, O_RDONLY | O_NOFOLLOW, 0,
                                     AB_FS_RESOLVE_NO_SYMLINKS, &local);
  if (fd < 0)
    return TRUE; /* missing, or a link: not this one */
  char buf[OS_RELEASE_MAX + 1];
  gssize n = read (fd, buf, OS_RELEASE_MAX);
  if (n < 0)
    return ab_throw_errno_prefix (error, errno, "reading %s of the tree", rel);
  buf[n] = '\0';
  *out = os_release_id (buf);
  return TRUE;
}

char *
ab_publish_tree_os (int tree_dfd, const char *tree, GError **error)
{
  static const char *const candidates[] = { "usr/lib/os-release", "etc/os-release",
                                            "usr/etc/os-release" };
  for (guint i = 0; i < G_N_ELEMENTS (candidates); i++)
    {
      g_autofree char *id = NULL;
      if (!read_os_release (tree_dfd, candidates[i], &id, error))
        return NULL;
      if (id == NULL)
        continue;
      if (!ab_publish_os_name_is_valid (id))
        {
          g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_USAGE,
                       "%s/%s has ID=%s, which is not a valid OS name (letters, digits, . _ -): "
                       "give --os=NAME", tree, candidates[i], id);
          return NULL;
        }
      return g_steal_pointer (&id);
    }
  g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_USAGE,
               "%s has no os-release with an ID (usr/lib/os-release, etc/os-release): give the "
               "OS the image is for with --os=NAME (devices refuse a commit for another OS)",
               tree);
  return NULL;
}
