#include "config.h"
#include "ab-config.h"
#include "ab-format.h"
#include "ab-history.h"
#include "ab-migrate.h"
#include "ab-test-fixture.h"

#include <dirent.h>
#include <string.h>
#include <sys/stat.h>

/* A layout-1 sysroot as abdeploy 0.1.0 leaves it (state and config only). */
#define SLOT_A_V1 "{\n  \"format\" : 1,\n  \"commit\" : \"abc\",\n  \"version\" : \"1.0\"\n}\n"
#define SYSROOT_V1 "{\n  \"format\" : 1,\n  \"os\" : \"testos\",\n  \"bootloader\" : \"file\"\n}\n"
#define HISTORY_V1 "{\n  \"format\" : 1,\n  \"events\" : [\n    {\n      \"type\" : \"deploy\",\n" \
                   "      \"at\" : \"2026-01-01T00:00:00Z\"\n    }\n  ]\n}\n"
#define CONFIG_V1 "# device config\n[boot]\ntries=2\n"
#define DROPIN_V1 "[health]\ntimeout-sec=60\n"

static void
write_layout1 (TmpDir *t)
{
  write_file_at (t->dfd, "abdeploy/version", "1\n");
  write_file_at (t->dfd, "abdeploy/state/sysroot.json", SYSROOT_V1);
  write_file_at (t->dfd, "abdeploy/state/slot-a.json", SLOT_A_V1);
  write_file_at (t->dfd, "abdeploy/state/history.json", HISTORY_V1);
  write_file_at (t->dfd, "etc/abdeploy/abdeploy.conf", CONFIG_V1);
  write_file_at (t->dfd, "etc/abdeploy/conf.d/50-x.conf", DROPIN_V1);
}

/* path -> content of every regular file below REL. */
static void
snapshot_tree (int dfd, const char *rel, GHashTable *out)
{
  int fd = openat (dfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return;
  DIR *d = fdopendir (fd);
  g_assert_nonnull (d);
  struct dirent *de;
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  while ((de = readdir (d)) != NULL)
    if (strcmp (de->d_name, ".") != 0 && strcmp (de->d_name, "..") != 0)
      g_ptr_array_add (names, g_strdup (de->d_name));
  closedir (d);
  for (guint i = 0; i < names->len; i++)
    {
      g_autofree char *child = g_build_filename (rel, names->pdata[i], NULL);
      struct stat st;
      g_assert_cmpint (fstatat (dfd, child, &st, AT_SYMLINK_NOFOLLOW), ==, 0);
      if (S_ISDIR (st.st_mode))
        {
          g_hash_table_insert (out, g_strdup (child), g_strdup ("<dir>"));
          snapshot_tree (dfd, child, out);
        }
      else
        g_hash_table_insert (out, g_strdup (child), read_file_at (dfd, child));
    }
}

static GHashTable *
snapshot (TmpDir *t)
{
  GHashTable *h = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  snapshot_tree (t->dfd, ".", h);
  return h;
}

static void
assert_same_snapshot (GHashTable *a, GHashTable *b)
{
  GHashTableIter it;
  gpointer k, v;
  g_hash_table_iter_init (&it, a);
  while (g_hash_table_iter_next (&it, &k, &v))
    g_assert_cmpstr (g_hash_table_lookup (b, k), ==, v);
  g_assert_cmpuint (g_hash_table_size (a), ==, g_hash_table_size (b));
}

static gint64
format_of (TmpDir *t, const char *rel)
{
  g_autofree char *text = read_file_at (t->dfd, rel);
  g_autoptr(JsonParser) p = json_parser_new ();
  g_assert_true (json_parser_load_from_data (p, text, -1, NULL));
  return json_object_get_int_member (json_node_get_object (json_parser_get_root (p)), "format");
}

static gboolean
migrate (TmpDir *t, gint64 *layout, gboolean *migrated, GError **error)
{
  return ab_migrate_sysroot (t->dfd, t->path, layout, migrated, NULL, error);
}

static void
test_state_text_converts_only_the_format (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *out = NULL;
  g_assert_true (ab_migrate_state_text ("slot-a.json", "slot-a.json", SLOT_A_V1, NULL, &out, &error));
  g_assert_no_error (error);
  g_autofree char *want = g_strdup (SLOT_A_V1);
  *strstr (want, "\"format\" : 1") = '\0';
  g_autofree char *expected = g_strconcat (want, "\"format\" : 2", strstr (SLOT_A_V1, "\"format\" : 1") + 12, NULL);
  g_assert_cmpstr (out, ==, expected);
  g_clear_pointer (&out, g_free);
  /* already current: nothing to write */
  g_assert_true (ab_migrate_state_text ("slot-a.json", "slot-a.json", expected, NULL, &out, &error));
  g_assert_null (out);
}

static void
test_state_text_refuses (void)
{
  static const char *const bad[] = { "{\"commit\": \"abc\"}", "{\"format\": 3}", "[1]", "{not json" };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *out = NULL;
      g_assert_false (ab_migrate_state_text ("slot-a.json", "abdeploy/state/slot-a.json", bad[i],
                                             "why", &out, &error));
      int want = i == 0 ? AB_FORMAT_ERROR_MISSING : i == 1 ? AB_FORMAT_ERROR_UNKNOWN
                                                           : AB_FORMAT_ERROR_INVALID;
      g_assert_error (error, AB_FORMAT_ERROR, want);
      g_assert_nonnull (strstr (error->message, "abdeploy/state/slot-a.json"));
      g_assert_null (out);
    }
}

static void
test_history_gets_event (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *out = NULL;
  g_assert_true (ab_migrate_state_text ("history.json", "h", HISTORY_V1, "because", &out, &error));
  g_autoptr(JsonParser) p = json_parser_new ();
  g_assert_true (json_parser_load_from_data (p, out, -1, NULL));
  JsonObject *o = json_node_get_object (json_parser_get_root (p));
  g_assert_cmpint (json_object_get_int_member (o, "format"), ==, 2);
  JsonArray *events = json_object_get_array_member (o, "events");
  g_assert_cmpuint (json_array_get_length (events), ==, 2);
  JsonObject *e = json_array_get_object_element (events, 1);
  g_assert_cmpstr (json_object_get_string_member (e, "type"), ==, "migrate");
  g_assert_cmpstr (json_object_get_string_member (e, "reason"), ==, "because");
  g_assert_cmpint (json_object_get_int_member (e, "from_layout"), ==, 1);
  g_assert_cmpint (json_object_get_int_member (e, "to_layout"), ==, 2);
  /* a missing history is made, with the event only */
  g_clear_pointer (&out, g_free);
  g_assert_true (ab_migrate_state_text ("history.json", "h", NULL, "because", &out, &error));
  g_assert_nonnull (strstr (out, "\"migrate\""));
  /* other missing files stay missing */
  g_clear_pointer (&out, g_free);
  g_assert_true (ab_migrate_state_text ("slot-b.json", "s", NULL, "because", &out, &error));
  g_assert_null (out);
}

static void
test_history_stays_bounded (void)
{
  g_autoptr(GString) text = g_string_new ("{\"format\": 1, \"events\": [");
  for (int i = 0; i < AB_HISTORY_MAX_EVENTS; i++)
    g_string_append_printf (text, "%s{\"type\": \"deploy\", \"n\": %d}", i ? "," : "", i);
  g_string_append (text, "]}");
  g_autoptr(GError) error = NULL;
  g_autofree char *out = NULL;
  g_assert_true (ab_migrate_state_text ("history.json", "h", text->str, "r", &out, &error));
  g_autoptr(JsonParser) p = json_parser_new ();
  g_assert_true (json_parser_load_from_data (p, out, -1, NULL));
  JsonArray *events = json_object_get_array_member (json_node_get_object (json_parser_get_root (p)), "events");
  g_assert_cmpuint (json_array_get_length (events), ==, AB_HISTORY_MAX_EVENTS);
  g_assert_cmpint (json_object_get_int_member (json_array_get_object_element (events, 0), "n"), ==, 1);
}

static void
test_migrates_layout1 (TmpDir *t, gconstpointer data)
{
  write_layout1 (t);
  g_autoptr(GHashTable) before = snapshot (t);
  g_autoptr(GError) error = NULL;
  gint64 layout = 1;
  gboolean migrated = FALSE;
  g_assert_true (migrate (t, &layout, &migrated, &error));
  g_assert_no_error (error);
  g_assert_true (migrated);
  g_assert_cmpint (layout, ==, 2);
  g_autofree char *version = read_file_at (t->dfd, "abdeploy/version");
  g_assert_cmpstr (version, ==, "2\n");
  for (const char *const *n = (const char *const[]) { "sysroot.json", "slot-a.json", "history.json", NULL }; *n; n++)
    {
      g_autofree char *rel = g_strconcat ("abdeploy/state/", *n, NULL);
      g_assert_cmpint (format_of (t, rel), ==, 2);
    }
  g_autofree char *history = read_file_at (t->dfd, "abdeploy/state/history.json");
  g_assert_nonnull (strstr (history, "\"migrate\""));
  g_autofree char *conf = read_file_at (t->dfd, "etc/abdeploy/abdeploy.conf");
  g_assert_cmpstr (conf, ==, "[abdeploy]\nformat=2\n\n" CONFIG_V1);
  g_autofree char *dropin = read_file_at (t->dfd, "etc/abdeploy/conf.d/50-x.conf");
  g_assert_cmpstr (dropin, ==, DROPIN_V1);
  /* the copy: every layout-1 file, byte for byte, at its relative path */
  GHashTableIter it;
  gpointer k, v;
  g_hash_table_iter_init (&it, before);
  while (g_hash_table_iter_next (&it, &k, &v))
    {
      if (g_str_equal (v, "<dir>"))
        continue;
      g_autofree char *kept = g_build_filename (AB_MIGRATE_COPY_DIR, (const char *) k, NULL);
      g_autofree char *text = read_file_at (t->dfd, kept);
      g_assert_cmpstr (text, ==, v);
    }
  g_assert_true (ab_fs_exists_at (t->dfd, AB_MIGRATE_COPY_DIR "/README"));
  g_assert_false (ab_fs_exists_at (t->dfd, "abdeploy/migration/.layout-1.tmp"));

  /* a second run finds layout 2 and changes nothing */
  g_autoptr(GHashTable) after = snapshot (t);
  g_assert_true (migrate (t, &layout, &migrated, &error));
  g_assert_false (migrated);
  g_autoptr(GHashTable) again = snapshot (t);
  assert_same_snapshot (after, again);
}

static void
test_refusal_changes_nothing (TmpDir *t, gconstpointer data)
{
  static const char *const bad[][2] = {
    { "abdeploy/state/slot-b.json", "{\"format\": 3, \"commit\": \"x\"}" },
    { "abdeploy/state/verdict.json", "{\"verdict\": \"green\"}" },
    { "etc/abdeploy/abdeploy.conf", "[abdeploy]\nformat=3\n" },
    { "etc/abdeploy/conf.d/60-y.conf", "[abdeploy]\nformat=9\n" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(GError) error = NULL;
      g_assert_true (ab_fs_rm_rf_at (t->dfd, "abdeploy", &error));
      g_assert_true (ab_fs_rm_rf_at (t->dfd, "etc", &error));
      write_layout1 (t);
      write_file_at (t->dfd, bad[i][0], bad[i][1]);
      g_autoptr(GHashTable) before = snapshot (t);
      gint64 layout = 1;
      g_assert_false (migrate (t, &layout, NULL, &error));
      g_assert_nonnull (error);
      g_assert_nonnull (strstr (error->message, bad[i][0]));
      g_assert_cmpint (layout, ==, 1);
      g_autoptr(GHashTable) after = snapshot (t);
      assert_same_snapshot (before, after);
    }
}

static void
test_current_layout_checks_formats (TmpDir *t, gconstpointer data)
{
  write_file_at (t->dfd, "abdeploy/version", "2\n");
  write_file_at (t->dfd, "abdeploy/state/slot-a.json", "{\"format\": 2, \"commit\": \"x\"}");
  g_autoptr(GError) error = NULL;
  gint64 layout = 2;
  g_assert_true (migrate (t, &layout, NULL, &error));
  write_file_at (t->dfd, "abdeploy/state/update.json", "{\"format\": 3}");
  g_assert_false (migrate (t, &layout, NULL, &error));
  g_assert_error (error, AB_FORMAT_ERROR, AB_FORMAT_ERROR_UNKNOWN);
  g_assert_nonnull (strstr (error->message, "abdeploy/state/update.json has format 3"));
  g_clear_error (&error);
  /* a layout-2 state file without a format is never taken as 1: it is
   * damage, which the check leaves to the file's reader (a damaged file
   * must not stop a rollback); the reader refuses it */
  write_file_at (t->dfd, "abdeploy/state/update.json", "{\"last_serial\": {}}");
  g_assert_true (migrate (t, &layout, NULL, &error));
  g_assert_no_error (error);
  ab_autofd state_dfd = ab_fs_opendir_at (t->dfd, "abdeploy/state", &error);
  g_autoptr(JsonNode) node = NULL;
  g_assert_false (ab_format_read_state_at (state_dfd, "update.json", &node, NULL, &error));
  g_assert_error (error, AB_FORMAT_ERROR, AB_FORMAT_ERROR_MISSING);
  g_clear_error (&error);
  write_file_at (t->dfd, "abdeploy/state/update.json", "{\"format\": 2}");
  write_file_at (t->dfd, "abdeploy/version", "3\n");
  g_assert_false (migrate (t, &layout, NULL, &error));
  g_assert_error (error, AB_FORMAT_ERROR, AB_FORMAT_ERROR_UNKNOWN);
  g_assert_nonnull (strstr (error->message, "abdeploy/version has layout version 3"));
  g_clear_error (&error);
  /* the version on disk counts, not the caller's (another abdeploy may
   * have migrated since it was read) */
  write_file_at (t->dfd, "abdeploy/version", "2\n");
  layout = 1;
  gboolean migrated = TRUE;
  g_assert_true (migrate (t, &layout, &migrated, &error));
  g_assert_no_error (error);
  g_assert_false (migrated);
  g_assert_cmpint (layout, ==, 2);
}

/* An interrupted migration: the copy was kept and one file converted. The
 * re-run keeps that copy (the converted file is no longer layout 1). */
static void
test_resumes_interrupted (TmpDir *t, gconstpointer data)
{
  write_layout1 (t);
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) files = g_ptr_array_new_with_free_func ((GDestroyNotify) ab_migrate_file_free);
  g_ptr_array_add (files, ab_migrate_file_new ("abdeploy/state/slot-a.json", SLOT_A_V1, strlen (SLOT_A_V1), 0644));
  g_ptr_array_add (files, ab_migrate_file_new ("abdeploy/version", "1\n", 2, 0644));
  g_assert_true (ab_migrate_keep_copy (t->dfd, files, &error));
  write_file_at (t->dfd, "abdeploy/state/slot-a.json", "{\"format\": 2, \"commit\": \"abc\"}");
  write_file_at (t->dfd, "abdeploy/migration/.layout-1.tmp/junk", "x");
  g_autofree char *readme = read_file_at (t->dfd, AB_MIGRATE_COPY_DIR "/README");
  gint64 layout = 1;
  gboolean migrated = FALSE;
  g_assert_true (migrate (t, &layout, &migrated, &error));
  g_assert_no_error (error);
  g_assert_true (migrated);
  g_autofree char *kept = read_file_at (t->dfd, AB_MIGRATE_COPY_DIR "/abdeploy/state/slot-a.json");
  g_assert_cmpstr (kept, ==, SLOT_A_V1);
  g_autofree char *readme2 = read_file_at (t->dfd, AB_MIGRATE_COPY_DIR "/README");
  g_assert_cmpstr (readme, ==, readme2);
  g_assert_false (ab_fs_exists_at (t->dfd, AB_MIGRATE_COPY_DIR "/abdeploy/state/sysroot.json"));
  g_assert_false (ab_fs_exists_at (t->dfd, "abdeploy/migration/.layout-1.tmp"));
  g_assert_cmpint (format_of (t, "abdeploy/state/sysroot.json"), ==, 2);
}

/* A copy from an earlier migration, and a sysroot taken back to layout 1
 * since (nothing converted): the copy is made again from today's files. */
static void
test_replaces_stale_copy (TmpDir *t, gconstpointer data)
{
  write_layout1 (t);
  write_file_at (t->dfd, AB_MIGRATE_COPY_DIR "/abdeploy/state/slot-a.json", "stale");
  write_file_at (t->dfd, AB_MIGRATE_COPY_DIR "/abdeploy/state/slot-b.json", "stale");
  g_autoptr(GError) error = NULL;
  gint64 layout = 1;
  g_assert_true (migrate (t, &layout, NULL, &error));
  g_assert_no_error (error);
  g_autofree char *kept = read_file_at (t->dfd, AB_MIGRATE_COPY_DIR "/abdeploy/state/slot-a.json");
  g_assert_cmpstr (kept, ==, SLOT_A_V1);
  g_assert_false (ab_fs_exists_at (t->dfd, AB_MIGRATE_COPY_DIR "/abdeploy/state/slot-b.json"));
  g_assert_false (ab_fs_exists_at (t->dfd, "abdeploy/migration/.layout-1.tmp"));
}

static void
test_without_config_file (TmpDir *t, gconstpointer data)
{
  write_layout1 (t);
  g_autoptr(GError) error = NULL;
  g_assert_true (ab_fs_rm_rf_at (t->dfd, "etc", &error));
  gint64 layout = 1;
  g_assert_true (migrate (t, &layout, NULL, &error));
  g_assert_no_error (error);
  g_autofree char *conf = read_file_at (t->dfd, "etc/abdeploy/abdeploy.conf");
  g_assert_cmpstr (conf, ==, "[abdeploy]\nformat=2\n");
  g_assert_false (ab_fs_exists_at (t->dfd, AB_MIGRATE_COPY_DIR "/etc"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/migrate/state-text-converts-only-the-format", test_state_text_converts_only_the_format);
  g_test_add_func ("/migrate/state-text-refuses", test_state_text_refuses);
  g_test_add_func ("/migrate/history-gets-event", test_history_gets_event);
  g_test_add_func ("/migrate/history-stays-bounded", test_history_stays_bounded);
  TMPDIR_TEST ("/migrate/migrates-layout1", test_migrates_layout1);
  TMPDIR_TEST ("/migrate/refusal-changes-nothing", test_refusal_changes_nothing);
  TMPDIR_TEST ("/migrate/current-layout-checks-formats", test_current_layout_checks_formats);
  TMPDIR_TEST ("/migrate/resumes-interrupted", test_resumes_interrupted);
  TMPDIR_TEST ("/migrate/replaces-stale-copy", test_replaces_stale_copy);
  TMPDIR_TEST ("/migrate/without-config-file", test_without_config_file);
  return g_test_run ();
}
