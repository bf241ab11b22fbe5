#include "config.h"
#include "ab-backup.h"
#include "ab-content.h"
#include "ab-crashpoint.h"
#include "ab-fsutil.h"
#include "ab-history.h"
#include "ab-lock.h"
#include "ab-util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <json-glib/json-glib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

G_DEFINE_QUARK (ab-backup-error-quark, ab_backup_error)

/* Trees saved whole, relative to the sysroot. */
static const char *const saved_dirs[] = { "etc/abdeploy", "abdeploy/state" };

static gboolean
corrupt (GError **error, const char *what)
{
  g_set_error (error, AB_BACKUP_ERROR, AB_BACKUP_ERROR_CORRUPT,
               "The backup is corrupt or truncated (%s); nothing was changed. "
               "Use another copy of the backup", what);
  return FALSE;
}

/* A regular file, or (SYMLINK) a symbolic link whose data is its target. */
static void
add_file (JsonBuilder *b, const char *rel, const char *data, gsize len, mode_t mode,
          gboolean symlink)
{
  g_autofree char *sum = g_compute_checksum_for_data (G_CHECKSUM_SHA256, (const guchar *) data, len);
  g_autofree char *b64 = g_base64_encode ((const guchar *) data, len);
  json_builder_begin_object (b);
  ab_json_add_string (b, "path", rel);
  if (symlink)
    ab_json_add_string (b, "type", "symlink");
  json_builder_set_member_name (b, "mode");
  json_builder_add_int_value (b, mode & 07777);
  json_builder_set_member_name (b, "size");
  json_builder_add_int_value (b, (gint64) len);
  ab_json_add_string (b, "sha256", sum);
  ab_json_add_string (b, "data", b64);
  json_builder_end_object (b);
}

/* Adds every regular file and symbolic link below REL (lock files and
 * temporaries excluded). A link is kept as a link: trusted keys are often
 * links into a keyring directory. */
static gboolean
add_tree (JsonBuilder *b, int sysroot_dfd, const char *rel, guint *count, GError **error)
{
  int fd = openat (sysroot_dfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? TRUE : (g_set_error (error, AB_BACKUP_ERROR, AB_BACKUP_ERROR_FAILED,
                                                  "Opening %s: %s", rel, g_strerror (errno)), FALSE);
  DIR *d = fdopendir (fd);
  struct dirent *de;
  gboolean ok = TRUE;
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  while (d && (de = readdir (d)) != NULL)
    if (de->d_name[0] != '.')
      g_ptr_array_add (names, g_strdup (de->d_name));
  closedir (d);
  for (guint i = 0; ok && i < names->len; i++)
    {
      g_autofree char *child = g_build_filename (rel, names->pdata[i], NULL);
      struct stat st;
      if (fstatat (sysroot_dfd, child, &st, AT_SYMLINK_NOFOLLOW) < 0)
        continue;
      if (S_ISDIR (st.st_mode))
        ok = add_tree (b, sysroot_dfd, child, count, error);
      else if (S_ISREG (st.st_mode))
        {
          g_autofree char *data = NULL;
          gsize len = 0;
          ok = ab_fs_read_at (sysroot_dfd, child, &data, &len, error);
          if (ok)
            {
              add_file (b, child, data, len, st.st_mode, FALSE);
              (*count)++;
            }
        }
      else if (S_ISLNK (st.st_mode))
        {
          char target[PATH_MAX];
          ssize_t n = readlinkat (sysroot_dfd, child, target, sizeof target);
          if (n < 0 || n >= (ssize_t) sizeof target)
            {
              g_set_error (error, AB_BACKUP_ERROR, AB_BACKUP_ERROR_FAILED, "Reading link %s: %s",
                           child, n < 0 ? g_strerror (errno) : "target too long");
              return FALSE;
            }
          add_file (b, child, target, (gsize) n, st.st_mode, TRUE);
          (*count)++;
        }
    }
  return ok;
}

static void
add_pointer_and_refs (JsonBuilder *b, AbSysroot *sysroot, const AbBootPointer *ptr)
{
  g_autoptr(GHashTable) vars = ab_boot_pointer_to_vars (ptr);
  json_builder_set_member_name (b, "pointer");
  json_builder_begin_object (b);
  GHashTableIter it;
  gpointer k, v;
  g_hash_table_iter_init (&it, vars);
  while (g_hash_table_iter_next (&it, &k, &v))
    ab_json_add_string (b, k, v);
  json_builder_end_object (b);
  json_builder_set_member_name (b, "refs");
  json_builder_begin_object (b);
  for (int s = 0; s < AB_N_SLOTS; s++)
    {
      g_autofree char *ref = g_strdup_printf ("abdeploy/slot/%s", ab_slot_name ((AbSlot) s));
      g_autofree char *rev = NULL;
      (void) ostree_repo_resolve_rev (sysroot->repo, ref, TRUE, &rev, NULL);
      ab_json_add_string (b, ref, rev);
    }
  json_builder_end_object (b);
}

gboolean
ab_backup_create (AbSysroot *sysroot, const char *output, guint *out_files, GError **error)
{
  AbBootPointer ptr;
  /* The shared lock makes the archive one consistent snapshot: no writer
   * changes the state, the pointer or the refs while they are read. */
  ab_autofd lock = ab_lock_acquire_shared (sysroot->abdeploy_dfd, error);
  if (lock < 0 || !ab_bootloader_load (sysroot->bootloader, &ptr, error))
    return FALSE;
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autofree char *now = ab_now_iso8601 ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "format");
  json_builder_add_int_value (b, AB_BACKUP_FORMAT);
  ab_json_add_string (b, "kind", "abdeploy-backup");
  ab_json_add_string (b, "created_at", now);
  ab_json_add_string (b, "abdeploy_version", PACKAGE_VERSION);
  ab_json_add_string (b, "os", sysroot->os);
  ab_json_add_string (b, "bootloader", ab_bootloader_name (sysroot->bootloader));
  add_pointer_and_refs (b, sysroot, &ptr);
  json_builder_set_member_name (b, "files");
  json_builder_begin_array (b);
  *out_files = 0;
  for (guint i = 0; i < G_N_ELEMENTS (saved_dirs); i++)
    if (!add_tree (b, sysroot->dfd, saved_dirs[i], out_files, error))
      return FALSE;
  json_builder_end_array (b);
  json_builder_end_object (b);
  g_autoptr(JsonNode) root = json_builder_get_root (b);
  g_autofree char *text = json_to_string (root, FALSE);
  g_autofree char *sum = g_compute_checksum_for_string (G_CHECKSUM_SHA256, text, -1);
  /* Last line: the checksum of everything before it, so truncation and
   * corruption anywhere are detected. */
  g_autofree char *archive = g_strdup_printf ("%s\nsha256 %s\n", text, sum);
  g_autofree char *dir = g_path_get_dirname (output);
  g_autofree char *base = g_path_get_basename (output);
  ab_autofd dfd = ab_fs_opendir_at (AT_FDCWD, dir, error);
  if (dfd < 0 || !ab_fs_replace_at (dfd, base, archive, strlen (archive), 0600, error))
    {
      g_prefix_error (error, "Writing the backup to %s: ", output);
      return FALSE;
    }
  return TRUE;
}

/* ---- restore ---- */

/* What restore needs of the sysroot. It works on a sysroot whose state is
 * wrecked: nothing is read from the state or the boot pointer. */
typedef struct
{
  int dfd;
  int abdeploy_dfd;
  int lock_fd;
  OstreeRepo *repo;
  AbBootloader *bootloader;
} Rescue;

static void
rescue_clear (Rescue *r)
{
  ab_close_fdp (&r->dfd);
  ab_close_fdp (&r->abdeploy_dfd);
  ab_close_fdp (&r->lock_fd);
  g_clear_object (&r->repo);
  g_clear_pointer (&r->bootloader, ab_bootloader_free);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Rescue, rescue_clear)

static JsonObject *
load_archive (const char *path, GError **error)
{
  g_autofree char *data = NULL;
  gsize len = 0;
  if (!g_file_get_contents (path, &data, &len, error))
    return NULL;
  char *nl = len > 1 ? g_strrstr_len (data, (gssize) len - 1, "\nsha256 ") : NULL;
  if (nl == NULL)
    return corrupt (error, "no trailing checksum line"), NULL;
  *nl = '\0';
  g_autofree char *want = g_strstrip (g_strdup (nl + strlen ("\nsha256 ")));
  g_autofree char *got = g_compute_checksum_for_string (G_CHECKSUM_SHA256, data, -1);
  if (g_strcmp0 (want, got) != 0)
    return corrupt (error, "archive checksum mismatch"), NULL;
  g_autoptr(JsonParser) parser = json_parser_new ();
  if (!json_parser_load_from_data (parser, data, -1, NULL))
    return corrupt (error, "not JSON"), NULL;
  JsonNode *root = json_parser_get_root (parser);
  JsonObject *o = root && JSON_NODE_HOLDS_OBJECT (root) ? json_node_get_object (root) : NULL;
  if (o == NULL || g_strcmp0 (json_object_get_string_member_with_default (o, "kind", ""), "abdeploy-backup") != 0)
    return corrupt (error, "not an abdeploy backup"), NULL;
  gint64 format = json_object_get_int_member_with_default (o, "format", 0);
  if (format != AB_BACKUP_FORMAT)
    {
      g_set_error (error, AB_BACKUP_ERROR, AB_BACKUP_ERROR_FAILED,
                   "Backup format %" G_GINT64_FORMAT " is not known to this abdeploy, which reads "
                   "format %d; restore it with the abdeploy that made it", format, AB_BACKUP_FORMAT);
      return NULL;
    }
  return json_object_ref (o);
}

static gboolean
check_files (JsonArray *files, GError **error)
{
  for (guint i = 0; i < json_array_get_length (files); i++)
    {
      JsonObject *f = json_array_get_object_element (files, i);
      const char *path = f ? json_object_get_string_member_with_default (f, "path", NULL) : NULL;
      const char *sum = f ? json_object_get_string_member_with_default (f, "sha256", NULL) : NULL;
      const char *b64 = f ? json_object_get_string_member_with_default (f, "data", NULL) : NULL;
      const char *type = f ? json_object_get_string_member_with_default (f, "type", "file") : NULL;
      if (path == NULL || sum == NULL || b64 == NULL || strstr (path, "..") != NULL
          || !(g_str_equal (type, "file") || g_str_equal (type, "symlink"))
          || !(g_str_has_prefix (path, "etc/abdeploy/") || g_str_has_prefix (path, "abdeploy/state/")))
        return corrupt (error, "bad file entry");
      gsize len = 0;
      g_autofree guchar *bytes = g_base64_decode (b64, &len);
      g_autofree char *got = g_compute_checksum_for_data (G_CHECKSUM_SHA256, bytes, len);
      if (g_strcmp0 (got, sum) != 0)
        return corrupt (error, path);
    }
  return TRUE;
}

static gboolean
check_commits (Rescue *sysroot, JsonObject *refs, GError **error)
{
  g_autoptr(GString) missing = g_string_new (NULL);
  g_autoptr(GList) members = json_object_get_members (refs);
  for (GList *l = members; l; l = l->next)
    {
      const char *commit = json_object_get_string_member_with_default (refs, l->data, NULL);
      gboolean have = FALSE;
      if (commit && (!ostree_repo_has_object (sysroot->repo, OSTREE_OBJECT_TYPE_COMMIT, commit,
                                              &have, NULL, NULL) || !have))
        g_string_append_printf (missing, "\n  %s (%s)", commit, (char *) l->data);
    }
  if (missing->len == 0)
    return TRUE;
  g_set_error (error, AB_BACKUP_ERROR, AB_BACKUP_ERROR_MISSING_COMMITS,
               "The backup refers to commits that are not in the repo; nothing was changed:%s\n"
               "Fetch each one first, e.g. abdeploy stage --from=URL|PATH COMMIT, or "
               "ostree --repo=SYSROOT/ostree/repo pull REMOTE COMMIT, then restore again",
               missing->str);
  return FALSE;
}

/* Writes the files under DIR_REL into a fresh staging tree TMP_REL. */
static gboolean
stage_tree (Rescue *sysroot, JsonArray *files, const char *dir_rel, const char *tmp_rel,
            guint *count, GError **error)
{
  if (!ab_fs_rm_rf_at (sysroot->dfd, tmp_rel, error)
      || !ab_fs_mkdir_p_at (sysroot->dfd, tmp_rel, 0755, error))
    return FALSE;
  g_autofree char *prefix = g_strconcat (dir_rel, "/", NULL);
  for (guint i = 0; i < json_array_get_length (files); i++)
    {
      JsonObject *f = json_array_get_object_element (files, i);
      const char *path = json_object_get_string_member (f, "path");
      if (!g_str_has_prefix (path, prefix))
        continue;
      g_autofree char *dst = g_build_filename (tmp_rel, path + strlen (prefix), NULL);
      g_autofree char *parent = g_path_get_dirname (dst);
      gsize len = 0;
      g_autofree guchar *bytes = g_base64_decode (json_object_get_string_member (f, "data"), &len);
      mode_t mode = (mode_t) json_object_get_int_member_with_default (f, "mode", 0644);
      if (!ab_fs_mkdir_p_at (sysroot->dfd, parent, 0755, error))
        return FALSE;
      if (g_str_equal (json_object_get_string_member_with_default (f, "type", "file"), "symlink"))
        {
          g_autofree char *target = g_strndup ((const char *) bytes, len);
          if (symlinkat (target, sysroot->dfd, dst) < 0)
            {
              g_set_error (error, AB_BACKUP_ERROR, AB_BACKUP_ERROR_FAILED, "Creating link %s: %s",
                           dst, g_strerror (errno));
              return FALSE;
            }
        }
      else if (!ab_fs_replace_at (sysroot->dfd, dst, bytes, len, mode, error))
        return FALSE;
      (*count)++;
    }
  return ab_fs_syncfs (sysroot->dfd, error);
}

/* Swaps the staged tree in with one renameat2(RENAME_EXCHANGE). */
static gboolean
swap_in (Rescue *sysroot, const char *dir_rel, const char *tmp_rel, GError **error)
{
  if (!ab_fs_mkdir_p_at (sysroot->dfd, dir_rel, 0755, error)
      || !ab_fs_exchange_at (sysroot->dfd, tmp_rel, dir_rel, error))
    return FALSE;
  ab_crash_point ("restore:swapped");
  g_autofree char *parent = g_path_get_dirname (dir_rel);
  return ab_fs_fsync_dir_at (sysroot->dfd, parent, error) && ab_fs_rm_rf_at (sysroot->dfd, tmp_rel, error);
}

static gboolean
restore_refs (Rescue *sysroot, JsonObject *refs, GError **error)
{
  g_autoptr(GList) members = json_object_get_members (refs);
  for (GList *l = members; l; l = l->next)
    {
      const char *commit = json_object_get_string_member_with_default (refs, l->data, NULL);
      if (!ostree_repo_set_ref_immediate (sysroot->repo, NULL, l->data, commit, NULL, error))
        return FALSE;
    }
  return TRUE;
}

static gboolean
restore_pointer (Rescue *sysroot, JsonObject *pointer, GError **error)
{
  g_autoptr(GHashTable) vars = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr(GList) members = json_object_get_members (pointer);
  for (GList *l = members; l; l = l->next)
    g_hash_table_insert (vars, l->data, (char *) json_object_get_string_member_with_default (pointer, l->data, ""));
  AbBootPointer ptr;
  if (!ab_boot_pointer_from_vars (vars, &ptr, error))
    return FALSE;
  return ab_bootloader_save (sysroot->bootloader, &ptr, error);
}

static gboolean
open_rescue (Rescue *r, const char *sysroot_path, const char *bootloader, GError **error)
{
  r->dfd = r->abdeploy_dfd = r->lock_fd = -1;
  if ((r->dfd = ab_fs_opendir_at (AT_FDCWD, sysroot_path, error)) < 0
      || (r->abdeploy_dfd = ab_fs_opendir_at (r->dfd, "abdeploy", error)) < 0)
    return FALSE;
  g_autofree char *version = NULL;
  if (!ab_fs_read_at (r->abdeploy_dfd, "version", &version, NULL, error))
    return FALSE;
  if (g_strcmp0 (g_strstrip (version), "1") != 0)
    {
      g_set_error (error, AB_BACKUP_ERROR, AB_BACKUP_ERROR_FAILED,
                   "Unknown layout version %s in abdeploy/version; this abdeploy knows 1", version);
      return FALSE;
    }
  if ((r->repo = ab_content_open_repo (r->dfd, error)) == NULL
      || (r->bootloader = ab_bootloader_new (bootloader, r->dfd, NULL, error)) == NULL)
    return FALSE;
  r->lock_fd = ab_lock_acquire (r->abdeploy_dfd, error);
  return r->lock_fd >= 0;
}

gboolean
ab_backup_restore (const char *sysroot_path, const char *path, guint *out_files,
                   GError **error)
{
  g_autoptr(JsonObject) o = load_archive (path, error);
  if (o == NULL)
    return FALSE;
  JsonArray *files = json_object_get_array_member (o, "files");
  JsonObject *refs = json_object_get_object_member (o, "refs");
  JsonObject *pointer = json_object_get_object_member (o, "pointer");
  const char *bootloader = json_object_get_string_member_with_default (o, "bootloader", NULL);
  if (files == NULL || refs == NULL || pointer == NULL || bootloader == NULL)
    return corrupt (error, "missing sections");
  g_auto(Rescue) r = { -1, -1, -1, NULL, NULL };
  if (!check_files (files, error) || !open_rescue (&r, sysroot_path, bootloader, error)
      || !check_commits (&r, refs, error))
    return FALSE;
  *out_files = 0;
  return stage_tree (&r, files, "abdeploy/state", "abdeploy/.state.restore", out_files, error)
         && stage_tree (&r, files, "etc/abdeploy", "etc/.abdeploy.restore", out_files, error)
         && swap_in (&r, "abdeploy/state", "abdeploy/.state.restore", error)
         && swap_in (&r, "etc/abdeploy", "etc/.abdeploy.restore", error)
         && restore_refs (&r, refs, error)
         && restore_pointer (&r, pointer, error);
}
