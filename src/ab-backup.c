#include "config.h"
#include "ab-backup.h"
#include "ab-content.h"
#include "ab-config.h"
#include "ab-crashpoint.h"
#include "ab-format.h"
#include "ab-fsutil.h"
#include "ab-history.h"
#include "ab-lock.h"
#include "ab-migrate.h"
#include "ab-update.h"
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
  /* The archive has the format of the files it holds: those of a layout-1
   * sysroot (not migrated yet; backup does not write to the sysroot) make
   * a format-1 archive, as abdeploy 0.1.0 wrote. */
  json_builder_set_member_name (b, "format");
  json_builder_add_int_value (b, sysroot->layout < AB_BACKUP_FORMAT ? sysroot->layout : AB_BACKUP_FORMAT);
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

#define CONFIG_REL "etc/abdeploy/abdeploy.conf"
#define STATE_PREFIX "abdeploy/state/"

/* What restore needs of the sysroot. It works on a sysroot whose state is
 * wrecked: nothing is read from the state or the boot pointer. */
typedef struct
{
  int dfd;
  int abdeploy_dfd;
  int lock_fd;
  gint64 layout;
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
load_archive (const char *path, gint64 *out_format, GBytes **out_bytes, GError **error)
{
  g_autofree char *data = NULL;
  gsize len = 0;
  if (!g_file_get_contents (path, &data, &len, error))
    return NULL;
  g_autoptr(GBytes) bytes = g_bytes_new (data, len);
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
  if (o == NULL || g_strcmp0 (ab_json_get_string (o, "kind", ""), "abdeploy-backup") != 0)
    return corrupt (error, "not an abdeploy backup"), NULL;
  gint64 format = ab_json_get_int (o, "format", 0);
  g_autofree char *what = g_strdup_printf ("The backup %s", path);
  if (!ab_format_check (AB_FORMAT_BACKUP, what, format, error))
    return NULL;
  *out_format = format;
  *out_bytes = g_steal_pointer (&bytes);
  return json_object_ref (o);
}

/* Checks every entry and decodes it; the files as the archive holds them. */
static GPtrArray *
decode_files (JsonArray *files, GError **error)
{
  g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func ((GDestroyNotify) ab_migrate_file_free);
  for (guint i = 0; i < json_array_get_length (files); i++)
    {
      JsonObject *f = ab_json_array_get_object (files, i);
      const char *path = f ? ab_json_get_string (f, "path", NULL) : NULL;
      const char *sum = f ? ab_json_get_string (f, "sha256", NULL) : NULL;
      const char *b64 = f ? ab_json_get_string (f, "data", NULL) : NULL;
      const char *type = f ? ab_json_get_string (f, "type", "file") : NULL;
      if (path == NULL || sum == NULL || b64 == NULL || strstr (path, "..") != NULL
          || !(g_str_equal (type, "file") || g_str_equal (type, "symlink"))
          || !(g_str_has_prefix (path, "etc/abdeploy/") || g_str_has_prefix (path, STATE_PREFIX)))
        return corrupt (error, "bad file entry"), NULL;
      gsize len = 0;
      g_autofree guchar *bytes = g_base64_decode (b64, &len);
      g_autofree char *got = g_compute_checksum_for_data (G_CHECKSUM_SHA256, bytes, len);
      if (g_strcmp0 (got, sum) != 0)
        return corrupt (error, path), NULL;
      guint mode = (guint) ab_json_get_int (f, "mode", 0644) & 07777;
      if (g_str_equal (type, "symlink"))
        mode |= S_IFLNK;   /* a link whose target is the data */
      g_ptr_array_add (out, ab_migrate_file_new (path, bytes, len, mode));
    }
  return g_steal_pointer (&out);
}

static gboolean
is_state_file (const char *rel)
{
  return g_str_has_prefix (rel, STATE_PREFIX)
         && g_strv_contains (ab_migrate_state_files, rel + strlen (STATE_PREFIX));
}

/* A copy of F with DATA (NUL-terminated text) as its content. */
static AbMigrateFile *
with_text (const AbMigrateFile *f, const char *text)
{
  return ab_migrate_file_new (f->rel, text, strlen (text), f->mode);
}

/* Restoring an older update.json must not lower the accepted manifest
 * serials (that reopens a replay window): the higher ones on disk stay.
 * Runs under the lock, before anything is written. */
static void
keep_serials (Rescue *r, GPtrArray *files)
{
  ab_autofd state_dfd = ab_fs_opendir_at (r->dfd, "abdeploy/state", NULL);
  for (guint i = 0; state_dfd >= 0 && i < files->len; i++)
    {
      AbMigrateFile *f = files->pdata[i];
      if (!g_str_equal (f->rel, STATE_PREFIX "update.json") || S_ISLNK (f->mode))
        continue;
      gsize len = 0;
      const char *text = g_bytes_get_data (f->data, &len);
      g_autofree char *kept = ab_update_state_keep_serials (state_dfd, text, len);
      files->pdata[i] = with_text (f, kept);
      ab_migrate_file_free (f);
    }
}

/* The files to restore, in the current format: the state files and
 * abdeploy.conf of a format-1 archive are migrated (history.json gets a
 * "migrate" event); those of a current one must have a readable format.
 * Nothing is written. */
static GPtrArray *
convert_files (GPtrArray *files, gint64 format, const char *path, GError **error)
{
  g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func ((GDestroyNotify) ab_migrate_file_free);
  g_autofree char *reason = format < AB_BACKUP_FORMAT ? ab_migrate_reason () : NULL;
  gboolean have_history = FALSE, have_config = FALSE;
  for (guint i = 0; i < files->len; i++)
    {
      const AbMigrateFile *f = files->pdata[i];
      if (S_ISLNK (f->mode))
        {
          /* a link is restored as it is */
          g_ptr_array_add (out, ab_migrate_file_new (f->rel, g_bytes_get_data (f->data, NULL),
                                                     g_bytes_get_size (f->data), f->mode));
          continue;
        }
      g_autofree char *what = g_strdup_printf ("%s in the backup %s", f->rel, path);
      gsize len = 0;
      const char *bytes = g_bytes_get_data (f->data, &len);
      g_autofree char *text = g_strndup (bytes, len);
      g_autofree char *converted = NULL;
      if (is_state_file (f->rel))
        {
          have_history |= g_str_has_suffix (f->rel, "/history.json");
          if (!ab_migrate_state_text (f->rel + strlen (STATE_PREFIX), what, text, reason,
                                      &converted, error))
            return NULL;
        }
      else if (g_str_equal (f->rel, CONFIG_REL))
        {
          have_config = TRUE;
          /* A file that does not parse is restored as it was backed up (and
           * refused by the next command, as it was then). */
          g_autoptr(GKeyFile) kf = g_key_file_new ();
          gint64 stated = 0;
          if (g_key_file_load_from_data (kf, text, len, G_KEY_FILE_NONE, NULL)
              && !ab_format_config_stated (kf, what, &stated, error))
            return NULL;
          if (reason != NULL && stated != AB_CONFIG_FORMAT)
            converted = ab_config_stamp_format (text, AB_CONFIG_FORMAT);
        }
      g_ptr_array_add (out, converted ? with_text (f, converted)
                                      : ab_migrate_file_new (f->rel, bytes, len, f->mode));
    }
  /* A migrated sysroot always has both; so does a migrated backup. */
  g_autofree char *history = NULL;
  if (reason != NULL && !have_history
      && !ab_migrate_state_text ("history.json", "history.json", NULL, reason, &history, error))
    return NULL;
  if (history != NULL)
    g_ptr_array_add (out, ab_migrate_file_new (STATE_PREFIX "history.json", history, strlen (history), 0644));
  if (reason != NULL && !have_config)
    {
      g_autofree char *conf = ab_config_stamp_format ("", AB_CONFIG_FORMAT);
      g_ptr_array_add (out, ab_migrate_file_new (CONFIG_REL, conf, strlen (conf), 0644));
    }
  return g_steal_pointer (&out);
}

static gboolean
check_commits (Rescue *sysroot, JsonObject *refs, GError **error)
{
  g_autoptr(GString) missing = g_string_new (NULL);
  g_autoptr(GList) members = json_object_get_members (refs);
  for (GList *l = members; l; l = l->next)
    {
      const char *commit = ab_json_get_string (refs, l->data, NULL);
      gboolean have = FALSE;
      /* libostree takes a checksum as one: a short one is read past its end. */
      if (commit != NULL && !ab_is_commit_checksum (commit))
        return corrupt (error, "a ref names something that is not a commit checksum");
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
stage_tree (Rescue *sysroot, GPtrArray *files, const char *dir_rel, const char *tmp_rel,
            guint *count, GError **error)
{
  if (!ab_fs_rm_rf_at (sysroot->dfd, tmp_rel, error)
      || !ab_fs_mkdir_p_at (sysroot->dfd, tmp_rel, 0755, error))
    return FALSE;
  g_autofree char *prefix = g_strconcat (dir_rel, "/", NULL);
  for (guint i = 0; i < files->len; i++)
    {
      const AbMigrateFile *f = files->pdata[i];
      if (!g_str_has_prefix (f->rel, prefix))
        continue;
      g_autofree char *dst = g_build_filename (tmp_rel, f->rel + strlen (prefix), NULL);
      g_autofree char *parent = g_path_get_dirname (dst);
      gsize len = 0;
      const void *bytes = g_bytes_get_data (f->data, &len);
      if (!ab_fs_mkdir_p_at (sysroot->dfd, parent, 0755, error))
        return FALSE;
      if (S_ISLNK (f->mode))
        {
          g_autofree char *target = g_strndup (bytes, len);
          if (symlinkat (target, sysroot->dfd, dst) < 0)
            {
              g_set_error (error, AB_BACKUP_ERROR, AB_BACKUP_ERROR_FAILED, "Creating link %s: %s",
                           dst, g_strerror (errno));
              return FALSE;
            }
        }
      else if (!ab_fs_replace_at (sysroot->dfd, dst, bytes, len, f->mode, error))
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
      const char *commit = ab_json_get_string (refs, l->data, NULL);
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
    g_hash_table_insert (vars, l->data, (char *) ab_json_get_string (pointer, l->data, ""));
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
  if (!ab_format_read_layout_at (r->dfd, &r->layout, error))
    return FALSE;
  if (r->layout == 0)
    {
      g_set_error (error, AB_BACKUP_ERROR, AB_BACKUP_ERROR_FAILED,
                   "%s is not an abdeploy sysroot (no abdeploy/version); restore needs an "
                   "initialized sysroot: run abdeploy --sysroot=%s init --os=NAME first",
                   sysroot_path, sysroot_path);
      return FALSE;
    }
  if ((r->repo = ab_content_open_repo (r->dfd, error)) == NULL
      || (r->bootloader = ab_bootloader_new (bootloader, r->dfd, NULL, error)) == NULL)
    return FALSE;
  r->lock_fd = ab_lock_acquire (r->abdeploy_dfd, error);
  return r->lock_fd >= 0;
}

/* The journal of a restore: the verified archive, kept in the sysroot
 * until every part is in place. A restore that is interrupted is completed
 * from it by the next abdeploy command (ab_backup_finish_pending()). */
static gboolean
keep_pending (Rescue *r, const char *path, GBytes *bytes, GError **error)
{
  g_autofree char *pending = ab_fs_fd_path (r->abdeploy_dfd, AB_BACKUP_PENDING_NAME, NULL);
  if (pending != NULL && g_strcmp0 (path, pending) == 0)
    return TRUE;
  gsize len = 0;
  const void *data = g_bytes_get_data (bytes, &len);
  if (!ab_fs_replace_at (r->abdeploy_dfd, AB_BACKUP_PENDING_NAME, data, len, 0600, error))
    return FALSE;
  ab_crash_point ("restore:pending");
  return TRUE;
}

static gboolean
drop_pending (Rescue *r, GError **error)
{
  if (unlinkat (r->abdeploy_dfd, AB_BACKUP_PENDING_NAME, 0) < 0 && errno != ENOENT)
    {
      g_set_error (error, AB_BACKUP_ERROR, AB_BACKUP_ERROR_FAILED, "Removing abdeploy/%s: %s",
                   AB_BACKUP_PENDING_NAME, g_strerror (errno));
      return FALSE;
    }
  return ab_fs_fsync_dir_at (r->abdeploy_dfd, ".", error);
}

/* The kept copy of a format-1 archive: its files as they are, and the
 * layout version they go with. */
static gboolean
keep_layout1_copy (Rescue *r, GPtrArray *files, GError **error)
{
  g_autoptr(GPtrArray) copy = g_ptr_array_new_with_free_func ((GDestroyNotify) ab_migrate_file_free);
  g_autofree char *version = g_strdup_printf ("%d\n", AB_LAYOUT_PREVIOUS);
  g_ptr_array_add (copy, ab_migrate_file_new ("abdeploy/version", version, strlen (version), 0644));
  for (guint i = 0; i < files->len; i++)
    {
      const AbMigrateFile *f = files->pdata[i];
      if (g_str_has_prefix (f->rel, STATE_PREFIX) || g_str_equal (f->rel, CONFIG_REL)
          || g_str_has_prefix (f->rel, "etc/abdeploy/conf.d/"))
        g_ptr_array_add (copy, ab_migrate_file_new (f->rel, g_bytes_get_data (f->data, NULL),
                                                    g_bytes_get_size (f->data), f->mode));
    }
  return ab_migrate_keep_copy (r->dfd, copy, error);
}

static gboolean
write_layout_version (Rescue *r, GError **error)
{
  g_autofree char *text = g_strdup_printf ("%d\n", AB_LAYOUT_VERSION);
  if (!ab_fs_replace_at (r->abdeploy_dfd, "version", text, strlen (text), 0644, error))
    return FALSE;
  r->layout = AB_LAYOUT_VERSION;
  return TRUE;
}

gboolean
ab_backup_restore (const char *sysroot_path, const char *path, guint *out_files,
                   GError **error)
{
  gint64 format = 0;
  g_autoptr(GBytes) bytes = NULL;
  g_autoptr(JsonObject) o = load_archive (path, &format, &bytes, error);
  if (o == NULL)
    return FALSE;
  JsonArray *files = ab_json_get_array (o, "files");
  JsonObject *refs = ab_json_get_object (o, "refs");
  JsonObject *pointer = ab_json_get_object (o, "pointer");
  const char *bootloader = ab_json_get_string (o, "bootloader", NULL);
  if (files == NULL || refs == NULL || pointer == NULL || bootloader == NULL)
    return corrupt (error, "missing sections");
  g_autoptr(GPtrArray) archived = decode_files (files, error);
  g_autoptr(GPtrArray) restored = archived ? convert_files (archived, format, path, error) : NULL;
  g_auto(Rescue) r = { -1, -1, -1, 0, NULL, NULL };
  if (restored == NULL || !open_rescue (&r, sysroot_path, bootloader, error)
      || !check_commits (&r, refs, error) || !keep_pending (&r, path, bytes, error))
    return FALSE;
  /* A format-1 archive is migrated as it is restored: first its files are
   * kept as the copy of layout 1, as a migration would keep them. */
  if (format < AB_BACKUP_FORMAT && !keep_layout1_copy (&r, archived, error))
    return FALSE;
  *out_files = 0;
  keep_serials (&r, restored);
  if (!stage_tree (&r, restored, "abdeploy/state", "abdeploy/.state.restore", out_files, error)
      || !stage_tree (&r, restored, "etc/abdeploy", "etc/.abdeploy.restore", out_files, error)
      || !swap_in (&r, "abdeploy/state", "abdeploy/.state.restore", error)
      || !swap_in (&r, "etc/abdeploy", "etc/.abdeploy.restore", error)
      || !restore_refs (&r, refs, error)
      || !restore_pointer (&r, pointer, error))
    return FALSE;
  /* The restored files are of the current layout: say so, last. */
  if ((r.layout != AB_LAYOUT_VERSION && !write_layout_version (&r, error))
      || !drop_pending (&r, error))
    return FALSE;
  if (format < AB_BACKUP_FORMAT)
    {
      g_autofree char *copy = g_build_filename (sysroot_path, AB_MIGRATE_COPY_DIR, NULL);
      g_printerr ("Migrated the backup from layout %d to %d; its layout-%d files are kept in %s\n",
                  AB_LAYOUT_PREVIOUS, AB_LAYOUT_VERSION, AB_LAYOUT_PREVIOUS, copy);
    }
  return TRUE;
}

gboolean
ab_backup_finish_pending (int sysroot_dfd, const char *sysroot_path, gboolean *out_finished,
                          GError **error)
{
  *out_finished = FALSE;
  if (!ab_fs_exists_at (sysroot_dfd, "abdeploy/" AB_BACKUP_PENDING_NAME))
    return TRUE;
  g_autofree char *pending = g_build_filename (sysroot_path, "abdeploy", AB_BACKUP_PENDING_NAME,
                                               NULL);
  guint n = 0;
  g_autoptr(GError) local = NULL;
  if (ab_backup_restore (sysroot_path, pending, &n, &local))
    {
      g_printerr ("Completed the restore that was interrupted (%u files, from %s)\n", n, pending);
      *out_finished = TRUE;
      return TRUE;
    }
  if (g_error_matches (local, AB_LOCK_ERROR, AB_LOCK_ERROR_HELD))
    {
      g_printerr ("warning: a restore is in progress; what follows may show part of it\n");
      return TRUE;
    }
  g_propagate_prefixed_error (error, g_steal_pointer (&local),
                              "Completing the restore that was interrupted (%s): ", pending);
  return FALSE;
}
