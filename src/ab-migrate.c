#include "config.h"
#include "ab-migrate.h"
#include "ab-config.h"
#include "ab-crashpoint.h"
#include "ab-format.h"
#include "ab-fsutil.h"
#include "ab-history.h"
#include "ab-json.h"
#include "ab-util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

G_DEFINE_QUARK (ab-migrate-error-quark, ab_migrate_error)

#define MIGRATION_DIR "abdeploy/migration"
#define COPY_TMP MIGRATION_DIR "/.layout-1.tmp"
#define VERSION_FILE "abdeploy/version"
#define CONFIG_FILE "etc/abdeploy/abdeploy.conf"
#define CONF_D "etc/abdeploy/conf.d"
#define HISTORY_FILE "history.json"

const char *const ab_migrate_state_files[] = {
  "sysroot.json", "slot-a.json", "slot-b.json", "verdict.json", "last-rollback.json",
  "update.json", "transaction.json", HISTORY_FILE, NULL,
};

static gboolean
fail (GError **error, const char *what, int errsv)
{
  return ab_throw_errno_prefix (error, errsv, "%s", what);
}

char *
ab_migrate_reason (void)
{
  return g_strdup_printf ("layout %d to %d; the layout-%d files are kept in " AB_MIGRATE_COPY_DIR,
                          AB_LAYOUT_PREVIOUS, AB_LAYOUT_VERSION, AB_LAYOUT_PREVIOUS);
}

AbMigrateFile *
ab_migrate_file_new (const char *rel, const void *data, gsize len, guint mode)
{
  AbMigrateFile *f = g_new0 (AbMigrateFile, 1);
  f->rel = g_strdup (rel);
  f->data = g_bytes_new (data, len);
  f->mode = mode;
  return f;
}

void
ab_migrate_file_free (AbMigrateFile *f)
{
  if (f == NULL)
    return;
  g_free (f->rel);
  g_bytes_unref (f->data);
  g_free (f);
}

/* ---- state files ---- */

static JsonNode *
migrate_event (const char *reason)
{
  g_autoptr(JsonBuilder) b = ab_history_event_begin ("migrate");
  json_builder_set_member_name (b, "from_layout");
  json_builder_add_int_value (b, AB_LAYOUT_PREVIOUS);
  json_builder_set_member_name (b, "to_layout");
  json_builder_add_int_value (b, AB_LAYOUT_VERSION);
  ab_json_add_string (b, "abdeploy_version", PACKAGE_VERSION);
  ab_json_add_string (b, "reason", reason);
  json_builder_end_object (b);
  return json_builder_get_root (b);
}

/* Appends EVENT, keeping at most AB_HISTORY_MAX_EVENTS events. */
static void
append_event (JsonArray *events, JsonNode *event)
{
  json_array_add_element (events, event);
  while (json_array_get_length (events) > AB_HISTORY_MAX_EVENTS)
    json_array_remove_element (events, 0);
}

gboolean
ab_migrate_state_text (const char *name, const char *what, const char *data,
                       const char *event_reason, char **out_text, GError **error)
{
  *out_text = NULL;
  gboolean history = g_str_equal (name, HISTORY_FILE);
  if (data == NULL)
    {
      if (!history || event_reason == NULL)
        return TRUE;
      g_autoptr(JsonObject) o = json_object_new ();
      json_object_set_int_member (o, "format", AB_STATE_FORMAT);
      g_autoptr(JsonArray) events = json_array_new ();
      append_event (events, migrate_event (event_reason));
      json_object_set_array_member (o, "events", g_steal_pointer (&events));
      g_autoptr(JsonNode) root = json_node_new (JSON_NODE_OBJECT);
      json_node_set_object (root, o);
      *out_text = ab_json_to_text (root);
      return TRUE;
    }
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) local = NULL;
  if (!json_parser_load_from_data (parser, data, -1, &local))
    {
      g_set_error (error, AB_FORMAT_ERROR, AB_FORMAT_ERROR_INVALID,
                   "%s is not valid JSON (%s); restore it from a backup (abdeploy restore)",
                   what, local->message);
      return FALSE;
    }
  JsonNode *root = json_parser_get_root (parser);
  JsonObject *o = root && JSON_NODE_HOLDS_OBJECT (root) ? json_node_get_object (root) : NULL;
  if (o == NULL)
    {
      g_set_error (error, AB_FORMAT_ERROR, AB_FORMAT_ERROR_INVALID,
                   "%s is not a JSON object; restore it from a backup (abdeploy restore)", what);
      return FALSE;
    }
  gint64 format = 0;
  if (!ab_format_check_state (what, o, &format, error))
    return FALSE;
  if (format == AB_STATE_FORMAT)
    return TRUE;
  json_object_set_int_member (o, "format", AB_STATE_FORMAT);
  if (history && event_reason != NULL)
    {
      JsonNode *events = json_object_get_member (o, "events");
      if (events == NULL || !JSON_NODE_HOLDS_ARRAY (events))
        {
          g_set_error (error, AB_FORMAT_ERROR, AB_FORMAT_ERROR_INVALID,
                       "%s has no \"events\" array; restore it from a backup (abdeploy restore)",
                       what);
          return FALSE;
        }
      append_event (json_node_get_array (events), migrate_event (event_reason));
    }
  *out_text = ab_json_to_text (root);
  return TRUE;
}

typedef struct
{
  const char *name;
  char *text;  /* converted text, NULL when the file is already current or missing */
} Planned;

static void
planned_free (Planned *p)
{
  g_free (p->text);
  g_free (p);
}

/* Reads and converts every state file; nothing is written. *out_started
 * tells whether some file already has the current format (a migration
 * that was interrupted after the copy was kept). */
static GPtrArray *
plan_state (int state_dfd, gboolean *out_started, GError **error)
{
  g_autoptr(GPtrArray) plan = g_ptr_array_new_with_free_func ((GDestroyNotify) planned_free);
  g_autofree char *reason = ab_migrate_reason ();
  *out_started = FALSE;
  for (const char *const *n = ab_migrate_state_files; *n; n++)
    {
      g_autofree char *what = g_strconcat ("abdeploy/state/", *n, NULL);
      g_autofree char *data = NULL;
      g_autoptr(GError) local = NULL;
      if (!ab_fs_read_at (state_dfd, *n, &data, NULL, &local)
          && !g_error_matches (local, AB_FS_ERROR, AB_FS_ERROR_NOT_FOUND))
        {
          g_propagate_error (error, g_steal_pointer (&local));
          return NULL;
        }
      Planned *p = g_new0 (Planned, 1);
      p->name = *n;
      g_ptr_array_add (plan, p);
      if (!ab_migrate_state_text (*n, what, data, reason, &p->text, error))
        return NULL;
      if (data != NULL && p->text == NULL)
        *out_started = TRUE;
    }
  return g_steal_pointer (&plan);
}

/* On a sysroot of the current layout, or of the previous one whose migration
 * waits: no state file may have a format this abdeploy does not read. A
 * damaged file (see ab_format_error_is_damage()) does not stop the writer
 * here: the command that reads it decides whether it can do without it, so
 * a damaged verdict never blocks a rollback. */
static gboolean
check_current (int sysroot_dfd, int state_dfd, GError **error)
{
  for (const char *const *n = ab_migrate_state_files; *n; n++)
    {
      g_autoptr(JsonNode) node = NULL;
      g_autoptr(GError) local = NULL;
      if (!ab_format_read_state_at (state_dfd, *n, &node, NULL, &local)
          && !ab_format_error_is_damage (local))
        {
          g_propagate_error (error, g_steal_pointer (&local));
          return FALSE;
        }
    }
  /* A restore of a layout-1 backup may have been cut off while it built
   * its copy. */
  return ab_fs_rm_rf_at (sysroot_dfd, COPY_TMP, error);
}

gboolean
ab_migrate_check_state (int sysroot_dfd, GError **error)
{
  ab_autofd state_dfd = ab_fs_opendir_at (sysroot_dfd, "abdeploy/state", error);
  return state_dfd >= 0 && check_current (sysroot_dfd, state_dfd, error);
}

/* ---- the kept copy ---- */

static gboolean
collect_file (int dfd, const char *rel, GPtrArray *files, GError **error)
{
  struct stat st;
  if (fstatat (dfd, rel, &st, 0) < 0)
    return errno == ENOENT ? TRUE : fail (error, rel, errno);
  if (!S_ISREG (st.st_mode))
    return TRUE;
  g_autofree char *data = NULL;
  gsize len = 0;
  if (!ab_fs_read_at (dfd, rel, &data, &len, error))
    return FALSE;
  g_ptr_array_add (files, ab_migrate_file_new (rel, data, len, st.st_mode & 07777));
  return TRUE;
}

/* Every regular file below REL (names starting with "." are temporaries). */
static gboolean
collect_tree (int dfd, const char *rel, GPtrArray *files, GError **error)
{
  int fd = openat (dfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? TRUE : fail (error, rel, errno);
  DIR *d = fdopendir (fd);
  if (d == NULL)
    {
      int errsv = errno;
      close (fd);
      return fail (error, rel, errsv);
    }
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    if (de->d_name[0] != '.')
      g_ptr_array_add (names, g_strdup (de->d_name));
  closedir (d);
  for (guint i = 0; i < names->len; i++)
    {
      g_autofree char *child = g_build_filename (rel, names->pdata[i], NULL);
      struct stat st;
      if (fstatat (dfd, child, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return fail (error, child, errno);
      if (S_ISDIR (st.st_mode) ? !collect_tree (dfd, child, files, error)
                               : !collect_file (dfd, child, files, error))
        return FALSE;
    }
  return TRUE;
}

static GPtrArray *
collect_layout_files (int sysroot_dfd, GError **error)
{
  g_autoptr(GPtrArray) files = g_ptr_array_new_with_free_func ((GDestroyNotify) ab_migrate_file_free);
  if (!collect_file (sysroot_dfd, VERSION_FILE, files, error)
      || !collect_tree (sysroot_dfd, "abdeploy/state", files, error)
      || !collect_file (sysroot_dfd, CONFIG_FILE, files, error)
      || !collect_tree (sysroot_dfd, CONF_D, files, error))
    return NULL;
  return g_steal_pointer (&files);
}

/* A new file, not synced: the caller syncs the file system once. */
static gboolean
write_new_at (int dfd, const char *rel, GBytes *data, guint mode, GError **error)
{
  ab_autofd fd = openat (dfd, rel, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0)
    return fail (error, rel, errno);
  gsize len = 0;
  const char *p = g_bytes_get_data (data, &len);
  if (!ab_fs_write_all (fd, p, len))
    return fail (error, rel, errno);
  if (fchmod (fd, mode) < 0)
    return fail (error, rel, errno);
  return TRUE;
}

static GBytes *
copy_readme (void)
{
  g_autofree char *now = ab_now_iso8601 ();
  g_autofree char *text = g_strdup_printf (
      "Files of an abdeploy sysroot of layout %d, kept by abdeploy %s at %s when it\n"
      "migrated the sysroot to layout %d. They sit at their paths relative to the\n"
      "sysroot: abdeploy/version, abdeploy/state/, etc/abdeploy/abdeploy.conf and\n"
      "etc/abdeploy/conf.d/. To go back to the abdeploy release that wrote them,\n"
      "follow DOWNGRADE in abdeploy-layout(7).\n",
      AB_LAYOUT_PREVIOUS, PACKAGE_VERSION, now, AB_LAYOUT_VERSION);
  gsize len = strlen (text);
  /* (not strlen (text) in the same call: the argument order is unspecified) */
  return g_bytes_new_take (g_steal_pointer (&text), len);
}

gboolean
ab_migrate_keep_copy (int sysroot_dfd, GPtrArray *files, GError **error)
{
  if (!ab_fs_mkdir_p_at (sysroot_dfd, MIGRATION_DIR, 0755, error)
      || !ab_fs_rm_rf_at (sysroot_dfd, COPY_TMP, error)
      || !ab_fs_mkdir_p_at (sysroot_dfd, COPY_TMP, 0755, error))
    return FALSE;
  for (guint i = 0; i < files->len; i++)
    {
      AbMigrateFile *f = files->pdata[i];
      g_autofree char *dst = g_build_filename (COPY_TMP, f->rel, NULL);
      g_autofree char *parent = g_path_get_dirname (dst);
      if (!ab_fs_mkdir_p_at (sysroot_dfd, parent, 0755, error)
          || !write_new_at (sysroot_dfd, dst, f->data, f->mode, error))
        return FALSE;
    }
  g_autoptr(GBytes) readme = copy_readme ();
  if (!write_new_at (sysroot_dfd, COPY_TMP "/README", readme, 0644, error)
      || !ab_fs_syncfs (sysroot_dfd, error))
    return FALSE;
  ab_crash_point ("migrate:copy-staged");
  if (ab_fs_exists_at (sysroot_dfd, AB_MIGRATE_COPY_DIR))
    {
      /* An older copy (this sysroot was migrated before, then taken back
       * to layout 1): swap the new one in, then drop the old one. */
      if (!ab_fs_exchange_at (sysroot_dfd, COPY_TMP, AB_MIGRATE_COPY_DIR, error)
          || !ab_fs_fsync_dir_at (sysroot_dfd, MIGRATION_DIR, error))
        return FALSE;
      ab_crash_point ("migrate:copy-exchanged");
      if (!ab_fs_rm_rf_at (sysroot_dfd, COPY_TMP, error))
        return FALSE;
    }
  else if (!ab_fs_rename_at (sysroot_dfd, COPY_TMP, AB_MIGRATE_COPY_DIR, error)
           || !ab_fs_fsync_dir_at (sysroot_dfd, MIGRATION_DIR, error)
           || !ab_fs_fsync_dir_at (sysroot_dfd, "abdeploy", error))
    return FALSE;
  ab_crash_point ("migrate:copy-kept");
  return TRUE;
}

/* ---- the migration ---- */

static gboolean
write_state (int state_dfd, GPtrArray *plan, GError **error)
{
  for (guint i = 0; i < plan->len; i++)
    {
      Planned *p = plan->pdata[i];
      if (p->text == NULL)
        continue;
      if (!ab_fs_replace_at (state_dfd, p->name, p->text, strlen (p->text), 0644, error))
        return FALSE;
      ab_crash_point (g_str_equal (p->name, HISTORY_FILE) ? "migrate:history" : "migrate:state");
    }
  return TRUE;
}

static gboolean
write_version (int sysroot_dfd, GError **error)
{
  g_autofree char *text = g_strdup_printf ("%d\n", AB_LAYOUT_VERSION);
  if (!ab_fs_replace_at (sysroot_dfd, VERSION_FILE, text, strlen (text), 0644, error))
    return FALSE;
  ab_crash_point ("migrate:version");
  return TRUE;
}

gboolean
ab_migrate_sysroot (int sysroot_dfd, const char *sysroot_path, gint64 *inout_layout,
                    gboolean *out_migrated, AbEventSink *events, GError **error)
{
  if (out_migrated)
    *out_migrated = FALSE;
  ab_autofd state_dfd = ab_fs_opendir_at (sysroot_dfd, "abdeploy/state", error);
  if (state_dfd < 0)
    return FALSE;
  /* Read again: another abdeploy may have migrated since the caller read
   * it, before this one got the lock. */
  if (!ab_format_read_layout_at (sysroot_dfd, inout_layout, error))
    return FALSE;
  if (*inout_layout == AB_LAYOUT_VERSION)
    return check_current (sysroot_dfd, state_dfd, error);
  if (*inout_layout != AB_LAYOUT_PREVIOUS)
    {
      g_set_error (error, AB_MIGRATE_ERROR, AB_MIGRATE_ERROR_FAILED,
                   "%s is not an abdeploy sysroot (no " VERSION_FILE ")", sysroot_path);
      return FALSE;
    }

  /* 1. Everything is read and converted before anything is written. */
  gboolean started = FALSE;
  g_autoptr(GPtrArray) plan = plan_state (state_dfd, &started, error);
  if (plan == NULL)
    return FALSE;
  g_autoptr(AbConfig) config = ab_config_load (sysroot_dfd, NULL, error);
  if (config == NULL)
    {
      g_prefix_error (error, "Migrating the sysroot to layout %d: ", AB_LAYOUT_VERSION);
      return FALSE;
    }

  /* 2. The copy of the layout-1 files. Once a file is converted, the copy
   * made before is the only record of the old files: keep it. */
  if (!started || !ab_fs_exists_at (sysroot_dfd, AB_MIGRATE_COPY_DIR))
    {
      g_autoptr(GPtrArray) files = collect_layout_files (sysroot_dfd, error);
      if (files == NULL || !ab_migrate_keep_copy (sysroot_dfd, files, error))
        return FALSE;
    }
  else if (!ab_fs_rm_rf_at (sysroot_dfd, COPY_TMP, error))
    return FALSE;

  /* 3.-5. Convert; the layout version goes last. */
  gboolean stamped = FALSE;
  if (!write_state (state_dfd, plan, error) || !ab_config_stamp_file_at (sysroot_dfd, &stamped, error))
    return FALSE;
  ab_crash_point ("migrate:config");
  if (!write_version (sysroot_dfd, error))
    return FALSE;
  *inout_layout = AB_LAYOUT_VERSION;
  if (out_migrated)
    *out_migrated = TRUE;
  g_autofree char *copy = g_build_filename (sysroot_path, AB_MIGRATE_COPY_DIR, NULL);
  ab_event_note (events, "Migrated sysroot from layout %d to %d; previous files kept in %s",
              AB_LAYOUT_PREVIOUS, AB_LAYOUT_VERSION, copy);
  return TRUE;
}
