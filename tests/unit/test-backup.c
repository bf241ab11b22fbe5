/* The backup archive reader (ab_backup_parse_archive()) and the read-back
 * check (ab_backup_archive_check_readable()), on archives built in memory.
 * Each test starts from one valid archive (the fixture), changes one thing,
 * seals it again with a correct trailing checksum, and parses it: only the
 * reader's own checks stand between the archive and a restore. */
#include "config.h"
#include "ab-backup.h"
#include "ab-format.h"
#include "ab-migrate.h"

#include <json-glib/json-glib.h>
#include <string.h>
#include <sys/stat.h>

#define COMMIT_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define COMMIT_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define SYSROOT_JSON "{\"format\": 2, \"os\": \"testos\", \"bootloader\": \"file\"}\n"
#define SLOT_A_JSON "{\"format\": 2, \"commit\": \"" COMMIT_A "\", \"version\": \"1.0\"}\n"
#define HISTORY_JSON "{\"format\": 2, \"events\": []}\n"
#define CONFIG "[abdeploy]\nformat=2\n\n[boot]\ntries=2\n"
#define KEY_REL "etc/abdeploy/trusted.gpg.d/publisher.gpg"

typedef struct
{
  JsonObject *doc;   /* the archive's JSON document */
} ArchiveFixture;

static JsonObject *
file_entry (const char *rel, const void *data, gsize len, gint64 mode, const char *type)
{
  JsonObject *f = json_object_new ();
  g_autofree char *sum = g_compute_checksum_for_data (G_CHECKSUM_SHA256, data, len);
  g_autofree char *b64 = g_base64_encode (data, len);
  json_object_set_string_member (f, "path", rel);
  if (type != NULL)
    json_object_set_string_member (f, "type", type);
  json_object_set_int_member (f, "mode", mode);
  json_object_set_int_member (f, "size", (gint64) len);
  json_object_set_string_member (f, "sha256", sum);
  json_object_set_string_member (f, "data", b64);
  return f;
}

static JsonArray *
files_of (ArchiveFixture *fx)
{
  return json_object_get_array_member (fx->doc, "files");
}

static void
add_text (ArchiveFixture *fx, const char *rel, const char *text)
{
  json_array_add_object_element (files_of (fx), file_entry (rel, text, strlen (text), 0644, NULL));
}

static void
add_link (ArchiveFixture *fx, const char *rel, const char *target)
{
  json_array_add_object_element (files_of (fx),
                                 file_entry (rel, target, strlen (target), 0777, "symlink"));
}

/* Removes the member REL; TRUE when there was one. */
static gboolean
remove_member (ArchiveFixture *fx, const char *rel)
{
  JsonArray *files = files_of (fx);
  for (guint i = 0; i < json_array_get_length (files); i++)
    if (g_str_equal (json_object_get_string_member (json_array_get_object_element (files, i), "path"), rel))
      {
        json_array_remove_element (files, i);
        return TRUE;
      }
  return FALSE;
}

static JsonObject *
find_member (ArchiveFixture *fx, const char *rel)
{
  JsonArray *files = files_of (fx);
  for (guint i = 0; i < json_array_get_length (files); i++)
    {
      JsonObject *f = json_array_get_object_element (files, i);
      if (g_str_equal (json_object_get_string_member (f, "path"), rel))
        return f;
    }
  g_assert_not_reached ();
}

static void
fixture_setup (ArchiveFixture *fx, gconstpointer data)
{
  fx->doc = json_object_new ();
  json_object_set_int_member (fx->doc, "format", AB_BACKUP_FORMAT);
  json_object_set_string_member (fx->doc, "kind", "abdeploy-backup");
  json_object_set_string_member (fx->doc, "bootloader", "file");
  json_object_set_string_member (fx->doc, "os", "testos");
  JsonObject *ptr = json_object_new ();
  json_object_set_string_member (ptr, "ABDEPLOY_PRIMARY", "a");
  json_object_set_string_member (ptr, "ABDEPLOY_A_STATE", "good");
  json_object_set_string_member (ptr, "ABDEPLOY_A_TRIES", "0");
  json_object_set_string_member (ptr, "ABDEPLOY_B_STATE", "none");
  json_object_set_string_member (ptr, "ABDEPLOY_B_TRIES", "0");
  json_object_set_object_member (fx->doc, "pointer", ptr);
  JsonObject *refs = json_object_new ();
  json_object_set_string_member (refs, "abdeploy/slot/a", COMMIT_A);
  json_object_set_null_member (refs, "abdeploy/slot/b");
  json_object_set_object_member (fx->doc, "refs", refs);
  json_object_set_array_member (fx->doc, "files", json_array_new ());
  add_text (fx, "abdeploy/state/sysroot.json", SYSROOT_JSON);
  add_text (fx, "abdeploy/state/slot-a.json", SLOT_A_JSON);
  add_text (fx, "abdeploy/state/history.json", HISTORY_JSON);
  add_text (fx, "etc/abdeploy/abdeploy.conf", CONFIG);
  static const guchar key[] = { 0x99, 0x00, 0x01, 0xff, 0x0a };
  json_array_add_object_element (files_of (fx), file_entry (KEY_REL, key, sizeof key, 0644, NULL));
}

static void
fixture_teardown (ArchiveFixture *fx, gconstpointer data)
{
  json_object_unref (fx->doc);
}

#define ARCHIVE_TEST(name, func) \
  g_test_add (name, ArchiveFixture, NULL, fixture_setup, func, fixture_teardown)

/* The document with its trailing checksum line. */
static GBytes *
seal (ArchiveFixture *fx)
{
  g_autoptr(JsonNode) root = json_node_new (JSON_NODE_OBJECT);
  json_node_set_object (root, fx->doc);
  g_autofree char *body = json_to_string (root, FALSE);
  g_autofree char *sum = g_compute_checksum_for_string (G_CHECKSUM_SHA256, body, -1);
  char *text = g_strdup_printf ("%s\nsha256 %s\n", body, sum);
  return g_bytes_new_take (text, strlen (text));
}

static AbBackupArchive *
parse_bytes (GBytes *bytes, GError **error)
{
  gsize len = 0;
  const guint8 *data = g_bytes_get_data (bytes, &len);
  return ab_backup_parse_archive (data, len, "test.backup", error);
}

static AbBackupArchive *
parse (ArchiveFixture *fx, GError **error)
{
  g_autoptr(GBytes) bytes = seal (fx);
  return parse_bytes (bytes, error);
}

/* The archive is refused as corrupt, with NEEDLE in the message. */
static void
assert_refused (ArchiveFixture *fx, const char *needle)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(AbBackupArchive) a = parse (fx, &error);
  g_assert_null (a);
  g_assert_nonnull (error);
  if (!g_error_matches (error, AB_BACKUP_ERROR, AB_BACKUP_ERROR_CORRUPT))
    g_assert_cmpuint (error->domain, ==, AB_FORMAT_ERROR);
  if (strstr (error->message, needle) == NULL)
    g_error ("\"%s\" not in: %s", needle, error->message);
}

/* ---- the valid archive ---- */

static void
test_valid_archive (ArchiveFixture *fx, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(AbBackupArchive) a = parse (fx, &error);
  g_assert_no_error (error);
  g_assert_cmpint (a->format, ==, AB_BACKUP_FORMAT);
  g_assert_cmpstr (a->bootloader, ==, "file");
  g_assert_cmpstr (a->refs[AB_SLOT_A], ==, COMMIT_A);
  g_assert_null (a->refs[AB_SLOT_B]);
  g_assert_cmpint (a->pointer.primary, ==, AB_SLOT_A);
  g_assert_cmpint (a->pointer.state[AB_SLOT_A], ==, AB_BOOT_STATE_GOOD);
  g_assert_cmpstr (a->records[AB_SLOT_A]->commit, ==, COMMIT_A);
  g_assert_null (a->records[AB_SLOT_B]);
  g_assert_cmpuint (a->files->len, ==, 5);
  g_assert_cmpuint (a->restored->len, ==, 5);
  g_assert_true (ab_backup_archive_check_readable (a, "test.backup", &error));
  g_assert_no_error (error);
}

static void
test_link_to_a_keyring_is_kept (ArchiveFixture *fx, gconstpointer data)
{
  remove_member (fx, KEY_REL);
  add_link (fx, KEY_REL, "../../../usr/share/keyrings/publisher.gpg");
  add_link (fx, "etc/abdeploy/health/required.d/10-check", "../../../../usr/lib/check");
  g_autoptr(GError) error = NULL;
  g_autoptr(AbBackupArchive) a = parse (fx, &error);
  g_assert_no_error (error);
  guint links = 0;
  for (guint i = 0; i < a->files->len; i++)
    links += S_ISLNK (((AbMigrateFile *) a->files->pdata[i])->mode);
  g_assert_cmpuint (links, ==, 2);
}

/* ---- the outer layer ---- */

static void
test_trailer (ArchiveFixture *fx, gconstpointer data)
{
  g_autoptr(GBytes) good = seal (fx);
  gsize len = 0;
  const char *text = g_bytes_get_data (good, &len);
  g_autofree char *upper = g_ascii_strup (text + len - 65, 64);
  g_autofree char *with_upper = g_strdup_printf ("%.*s%s\n", (int) (len - 65), text, upper);
  g_autofree char *flipped = g_strndup (text, len);
  flipped[2] ^= 0x20;
  const struct { const char *data; gsize len; const char *needle; } cases[] = {
    { "", 0, "no trailing checksum line" },
    { text, len - 1, "no trailing checksum line" },
    { text, len / 2, "no trailing checksum line" },
    { with_upper, strlen (with_upper), "checksum mismatch" },
    { flipped, len, "checksum mismatch" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(AbBackupArchive) a = ab_backup_parse_archive ((const guint8 *) cases[i].data,
                                                              cases[i].len, NULL, &error);
      g_assert_null (a);
      g_assert_error (error, AB_BACKUP_ERROR, AB_BACKUP_ERROR_CORRUPT);
      g_assert_nonnull (strstr (error->message, cases[i].needle));
    }
}

/* Every prefix of a valid archive, and every single flipped byte of it, is
 * refused without a crash or a warning (fatal here). */
static void
test_every_cut_and_flip_is_refused (ArchiveFixture *fx, gconstpointer data)
{
  g_autoptr(GBytes) good = seal (fx);
  gsize len = 0;
  const guint8 *bytes = g_bytes_get_data (good, &len);
  g_autofree guint8 *copy = g_memdup2 (bytes, len);
  for (gsize cut = 0; cut < len; cut++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(AbBackupArchive) a = ab_backup_parse_archive (bytes, cut, NULL, &error);
      g_assert_null (a);
      g_assert_nonnull (error);
    }
  for (gsize i = 0; i < len; i++)
    {
      g_autoptr(GError) error = NULL;
      copy[i] ^= 0x01;
      g_autoptr(AbBackupArchive) a = ab_backup_parse_archive (copy, len, NULL, &error);
      copy[i] ^= 0x01;
      g_assert_null (a);
      g_assert_nonnull (error);
    }
}

/* A document nested a million levels deep is refused before json-glib,
 * whose parser recurses per level, sees it. */
static void
test_deep_nesting (ArchiveFixture *fx, gconstpointer data)
{
  const gsize depth = 1000000;
  g_autoptr(GString) text = g_string_new (NULL);
  for (gsize i = 0; i < depth; i++)
    g_string_append_c (text, '[');
  g_autofree char *sum = g_compute_checksum_for_data (G_CHECKSUM_SHA256, (guchar *) text->str, text->len);
  g_string_append_printf (text, "\nsha256 %s\n", sum);
  g_autoptr(GError) error = NULL;
  g_autoptr(AbBackupArchive) a = ab_backup_parse_archive ((guint8 *) text->str, text->len, NULL, &error);
  g_assert_null (a);
  g_assert_error (error, AB_BACKUP_ERROR, AB_BACKUP_ERROR_CORRUPT);
  g_assert_nonnull (strstr (error->message, "nested"));
}

static void
test_header (ArchiveFixture *fx, gconstpointer data)
{
  json_object_set_string_member (fx->doc, "format", "2");
  assert_refused (fx, "\"format\"");
  json_object_set_int_member (fx->doc, "format", 3);
  assert_refused (fx, "3");
  json_object_set_int_member (fx->doc, "format", 2);
  json_object_set_string_member (fx->doc, "bootloader", "lilo");
  assert_refused (fx, "bootloader");
  json_object_set_string_member (fx->doc, "bootloader", "file");
  json_object_set_array_member (fx->doc, "files", json_array_new ());
  assert_refused (fx, "sysroot.json");
  json_object_set_string_member (fx->doc, "files", "none");
  assert_refused (fx, "\"files\"");
  json_object_set_string_member (fx->doc, "kind", "tarball");
  assert_refused (fx, "not an abdeploy backup");
}

/* ---- members ---- */

static void
test_bad_paths (ArchiveFixture *fx, gconstpointer data)
{
  g_autofree char *long_name = g_strnfill (256, 'n');
  g_autofree char *long_component = g_strconcat ("etc/abdeploy/", long_name, NULL);
  g_autoptr(GString) long_path = g_string_new ("etc/abdeploy");
  while (long_path->len <= AB_BACKUP_MAX_PATH)
    g_string_append (long_path, "/dir");
  const char *const paths[] = {
    "/etc/abdeploy/abs.conf", "etc/abdeploy/../../escape", "etc/abdeploy/./x",
    "etc/abdeploy//x", "etc/abdeploy/x/", "etc/abdeploy/.hidden", "etc/abdeploy/new\nline",
    "etc/abdeploy/tab\there", "etc/abdeploy/del\x7f", "etc/abdeploy/\xff\xfe",
    "usr/bin/hello", "abdeploy/version", "etc/abdeploy", "", long_component, long_path->str,
  };
  /* a NUL inside a name, as JSON writes it */
  json_array_add_object_element (files_of (fx), file_entry ("etc/abdeploy/x", "x", 1, 0644, NULL));
  g_autoptr(GBytes) sealed = seal (fx);
  g_autofree char *text = g_strndup (g_bytes_get_data (sealed, NULL), g_bytes_get_size (sealed));
  char *at = strstr (text, "\"etc/abdeploy/x\"");
  g_autofree char *nul = g_strdup_printf ("%.*s\"etc/abdeploy/x\\u0000/../../e\"%s", (int) (at - text),
                                          text, at + strlen ("\"etc/abdeploy/x\""));
  g_autofree char *body = g_strndup (nul, strstr (nul, "\nsha256 ") - nul);
  g_autofree char *sum = g_compute_checksum_for_string (G_CHECKSUM_SHA256, body, -1);
  g_autofree char *resealed = g_strdup_printf ("%s\nsha256 %s\n", body, sum);
  g_autoptr(GError) error = NULL;
  g_assert_null (ab_backup_parse_archive ((guint8 *) resealed, strlen (resealed), NULL, &error));
  g_assert_error (error, AB_BACKUP_ERROR, AB_BACKUP_ERROR_CORRUPT);
  g_assert_nonnull (strstr (error->message, "NUL"));
  remove_member (fx, "etc/abdeploy/x");
  for (guint i = 0; i < G_N_ELEMENTS (paths); i++)
    {
      add_text (fx, paths[i], "x\n");
      assert_refused (fx, "corrupt or truncated");
      JsonArray *files = files_of (fx);
      json_array_remove_element (files, json_array_get_length (files) - 1);
    }
}

static void
test_types (ArchiveFixture *fx, gconstpointer data)
{
  const char *const types[] = { "fifo", "dir", "device", "hardlink", "" };
  for (guint i = 0; i < G_N_ELEMENTS (types); i++)
    {
      JsonObject *f = file_entry ("etc/abdeploy/conf.d/x.conf", "", 0, 0644, types[i]);
      json_array_add_object_element (files_of (fx), f);
      assert_refused (fx, "only files and links");
      remove_member (fx, "etc/abdeploy/conf.d/x.conf");
    }
  json_object_set_int_member (find_member (fx, "etc/abdeploy/abdeploy.conf"), "type", 1);
  assert_refused (fx, "lacks a path, type");
}

static void
test_links_where_files_belong (ArchiveFixture *fx, gconstpointer data)
{
  const char *const rels[] = { "abdeploy/state/slot-b.json", "etc/abdeploy/abdeploy.conf",
                               "etc/abdeploy/conf.d/50-x.conf", "etc/abdeploy/health/x" };
  for (guint i = 0; i < G_N_ELEMENTS (rels); i++)
    {
      gboolean had = remove_member (fx, rels[i]);
      add_link (fx, rels[i], "../../usr/share/x");
      assert_refused (fx, "symbolic link where a regular file is expected");
      remove_member (fx, rels[i]);
      if (had)
        add_text (fx, rels[i], CONFIG);
    }
}

static void
test_link_targets (ArchiveFixture *fx, gconstpointer data)
{
  remove_member (fx, KEY_REL);
  const char *const targets[] = { "/etc/shadow", "../../../../escape", "a/../../../../../x",
                                  "", "x\ny" };
  for (guint i = 0; i < G_N_ELEMENTS (targets); i++)
    {
      add_link (fx, KEY_REL, targets[i]);
      assert_refused (fx, KEY_REL);
      remove_member (fx, KEY_REL);
    }
}

static void
test_member_below_a_member (ArchiveFixture *fx, gconstpointer data)
{
  add_link (fx, "etc/abdeploy/trusted.gpg.d/k", "../../../usr/share");
  add_text (fx, "etc/abdeploy/trusted.gpg.d/k/evil.gpg", "x");
  assert_refused (fx, "is below member etc/abdeploy/trusted.gpg.d/k");
  remove_member (fx, "etc/abdeploy/trusted.gpg.d/k");
  add_text (fx, "etc/abdeploy/trusted.gpg.d/k", "a file, not a directory");
  assert_refused (fx, "is below member");
}

static void
test_duplicate (ArchiveFixture *fx, gconstpointer data)
{
  add_text (fx, "etc/abdeploy/abdeploy.conf", "[boot]\ntries=1\n");
  assert_refused (fx, "appears twice");
}

static void
test_manifest_mismatch (ArchiveFixture *fx, gconstpointer data)
{
  JsonObject *f = find_member (fx, "abdeploy/state/slot-a.json");
  g_autofree char *b64 = g_strdup (json_object_get_string_member (f, "data"));
  gint64 size = json_object_get_int_member (f, "size");
  json_object_set_int_member (f, "size", size + 1);
  assert_refused (fx, "not base64 of its size");
  json_object_set_int_member (f, "size", G_MAXINT64);
  assert_refused (fx, "out of range");
  json_object_set_int_member (f, "size", size);
  g_autofree char *junk = g_strconcat ("!", b64, NULL);
  json_object_set_string_member (f, "data", junk);
  assert_refused (fx, "not base64");
  g_autofree char *other = g_base64_encode ((const guchar *) "{\"format\": 2}\n", 14);
  json_object_set_string_member (f, "data", other);
  json_object_set_int_member (f, "size", 14);
  assert_refused (fx, "checksum mismatch");
  json_object_set_string_member (f, "data", b64);
  json_object_set_int_member (f, "size", size);
  json_object_set_int_member (f, "mode", 04755);
  assert_refused (fx, "out of range");
}

static void
test_member_count_cap (ArchiveFixture *fx, gconstpointer data)
{
  for (guint i = 0; i <= AB_BACKUP_MAX_MEMBERS; i++)
    {
      g_autofree char *rel = g_strdup_printf ("etc/abdeploy/trusted.gpg.d/k%u.gpg", i);
      add_text (fx, rel, "");
    }
  assert_refused (fx, "more than");
}

/* ---- content ---- */

static void
test_state_files (ArchiveFixture *fx, gconstpointer data)
{
  add_text (fx, "abdeploy/state/future.json", "{\"format\": 2}\n");
  assert_refused (fx, "future.json is not a state file this abdeploy knows");
  remove_member (fx, "abdeploy/state/future.json");
  add_text (fx, "abdeploy/state/verdict.json", "{\"format\": 3}\n");
  assert_refused (fx, "verdict.json");
  remove_member (fx, "abdeploy/state/verdict.json");
  add_text (fx, "abdeploy/state/verdict.json", "{\"format\": 2, \"verdict\":");
  assert_refused (fx, "verdict.json");
  remove_member (fx, "abdeploy/state/verdict.json");
  remove_member (fx, "abdeploy/state/sysroot.json");
  add_text (fx, "abdeploy/state/sysroot.json", "{\"format\": 2, \"os\": \"x\", \"bootloader\": \"grub\"}");
  assert_refused (fx, "bootloader other than");
}

static void
test_config_files (ArchiveFixture *fx, gconstpointer data)
{
  add_text (fx, "etc/abdeploy/conf.d/50-x.conf", "not a key file\n");
  assert_refused (fx, "conf.d/50-x.conf");
  remove_member (fx, "etc/abdeploy/conf.d/50-x.conf");
  /* no command reads it: only its syntax is checked */
  add_text (fx, "etc/abdeploy/conf.d/README", "not a key file\n");
  assert_refused (fx, "README does not parse");
  remove_member (fx, "etc/abdeploy/conf.d/README");
  remove_member (fx, "etc/abdeploy/abdeploy.conf");
  add_text (fx, "etc/abdeploy/abdeploy.conf", "[abdeploy]\nformat=7\n");
  assert_refused (fx, "7");
}

static void
test_refs_and_records (ArchiveFixture *fx, gconstpointer data)
{
  JsonObject *refs = json_object_get_object_member (fx->doc, "refs");
  json_object_set_string_member (refs, "heads/evil", COMMIT_A);
  assert_refused (fx, "heads/evil");
  json_object_remove_member (refs, "heads/evil");
  json_object_set_string_member (refs, "abdeploy/slot/b", "../../x");
  assert_refused (fx, "not a commit checksum");
  json_object_set_null_member (refs, "abdeploy/slot/b");
  json_object_set_string_member (refs, "abdeploy/slot/a", COMMIT_B);
  assert_refused (fx, "slot-a.json names commit " COMMIT_A);
  json_object_set_string_member (refs, "abdeploy/slot/a", COMMIT_A);
  remove_member (fx, "abdeploy/state/slot-a.json");
  add_text (fx, "abdeploy/state/slot-a.json", "{\"format\": 2, \"commit\": 5}");
  assert_refused (fx, "slot-a.json");
  remove_member (fx, "abdeploy/state/slot-a.json");
  assert_refused (fx, "marks slot a good or trial, but it has no record");
}

static void
test_pointer (ArchiveFixture *fx, gconstpointer data)
{
  JsonObject *ptr = json_object_get_object_member (fx->doc, "pointer");
  json_object_set_string_member (ptr, "ABDEPLOY_A_TRIES", "12");
  assert_refused (fx, "ABDEPLOY_A_TRIES");
  json_object_set_int_member (ptr, "ABDEPLOY_A_TRIES", 0);
  assert_refused (fx, "ABDEPLOY_A_TRIES");
  json_object_set_string_member (ptr, "ABDEPLOY_A_TRIES", "0");
  json_object_set_string_member (ptr, "ABDEPLOY_EXTRA", "1");
  assert_refused (fx, "ABDEPLOY_EXTRA");
}

/* A format-1 archive is converted as a migration would. */
static void
test_format_1_is_migrated (ArchiveFixture *fx, gconstpointer data)
{
  json_object_set_int_member (fx->doc, "format", 1);
  remove_member (fx, "abdeploy/state/slot-a.json");
  add_text (fx, "abdeploy/state/slot-a.json", "{\"format\": 1, \"commit\": \"" COMMIT_A "\"}");
  remove_member (fx, "abdeploy/state/history.json");
  remove_member (fx, "etc/abdeploy/abdeploy.conf");
  g_autoptr(GError) error = NULL;
  g_autoptr(AbBackupArchive) a = parse (fx, &error);
  g_assert_no_error (error);
  g_assert_cmpint (a->format, ==, 1);
  gboolean history = FALSE, config = FALSE;
  for (guint i = 0; i < a->restored->len; i++)
    {
      const AbMigrateFile *f = a->restored->pdata[i];
      g_autofree char *text = g_strndup (g_bytes_get_data (f->data, NULL), g_bytes_get_size (f->data));
      history |= g_str_equal (f->rel, "abdeploy/state/history.json") && strstr (text, "migrate");
      config |= g_str_equal (f->rel, "etc/abdeploy/abdeploy.conf") && strstr (text, "format=2");
    }
  g_assert_true (history && config);
  g_assert_true (ab_backup_archive_check_readable (a, NULL, &error));
  g_assert_no_error (error);
}

/* Each file read by every command passes the strict parser's checks of
 * one file when the archive is read, before the read-back; the message
 * names the file in the archive, the key and what is accepted. */
static void
test_config_values (ArchiveFixture *fx, gconstpointer data)
{
  static const struct { const char *rel, *text, *needle; } cases[] = {
    { "etc/abdeploy/abdeploy.conf", "[abdeploy]\nformat=2\n[update]\nmin-rate=0\n",
      "etc/abdeploy/abdeploy.conf: invalid value [update] min-rate=0: use" },
    { "etc/abdeploy/abdeploy.conf", "[update]\nbogus=1\n", "unknown key bogus in group [update]" },
    { "etc/abdeploy/conf.d/50-x.conf", "[boot]\ntries=x\n", "conf.d/50-x.conf: invalid value [boot] tries=x" },
    { "etc/abdeploy/conf.d/50-x.conf", "[nowhere]\na=1\n", "nowhere" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      gboolean had = remove_member (fx, cases[i].rel);
      add_text (fx, cases[i].rel, cases[i].text);
      assert_refused (fx, cases[i].needle);
      assert_refused (fx, "holds a configuration file that abdeploy refuses");
      remove_member (fx, cases[i].rel);
      if (had)
        add_text (fx, cases[i].rel, CONFIG);
    }
  /* a format-1 archive (no format key) as well */
  json_object_set_int_member (fx->doc, "format", 1);
  remove_member (fx, "etc/abdeploy/abdeploy.conf");
  add_text (fx, "etc/abdeploy/abdeploy.conf", "[update]\nmin-rate=0\n");
  assert_refused (fx, "[update] min-rate=0");
  /* keys valid on their own but not together are left to the read-back */
  remove_member (fx, "etc/abdeploy/abdeploy.conf");
  add_text (fx, "etc/abdeploy/abdeploy.conf", "[update]\nbackoff-max-ms=20000\n");
  add_text (fx, "etc/abdeploy/conf.d/50-x.conf", "[update]\nbackoff-initial-ms=10000\n");
  g_autoptr(GError) error = NULL;
  g_autoptr(AbBackupArchive) a = parse (fx, &error);
  g_assert_no_error (error);
  g_assert_true (ab_backup_archive_check_readable (a, NULL, &error));
  g_assert_no_error (error);
}

/* ---- the read-back check ---- */

static void
assert_unreadable (ArchiveFixture *fx, const char *needle)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(AbBackupArchive) a = parse (fx, &error);
  g_assert_no_error (error);
  g_assert_false (ab_backup_archive_check_readable (a, "test.backup", &error));
  g_assert_error (error, AB_BACKUP_ERROR, AB_BACKUP_ERROR_CORRUPT);
  if (strstr (error->message, needle) == NULL)
    g_error ("\"%s\" not in: %s", needle, error->message);
}

static void
test_read_back (ArchiveFixture *fx, gconstpointer data)
{
  add_text (fx, "abdeploy/state/transaction.json", "{\"format\": 2, \"id\": \"x\", \"phase\": \"warp\"}");
  assert_unreadable (fx, "warp");
  remove_member (fx, "abdeploy/state/transaction.json");
  remove_member (fx, "abdeploy/state/history.json");
  add_text (fx, "abdeploy/state/history.json", "{\"format\": 2}");
  assert_unreadable (fx, "events");
  remove_member (fx, "abdeploy/state/history.json");
  /* each file passes on its own (a bad value is refused by the reader,
   * test_config_values); the checks between keys are made here */
  add_text (fx, "etc/abdeploy/conf.d/50-x.conf", "[update]\nbackoff-initial-ms=10000\n");
  assert_unreadable (fx, "backoff-max-ms=8000");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  ARCHIVE_TEST ("/backup/archive/valid", test_valid_archive);
  ARCHIVE_TEST ("/backup/archive/link-to-keyring", test_link_to_a_keyring_is_kept);
  ARCHIVE_TEST ("/backup/archive/trailer", test_trailer);
  ARCHIVE_TEST ("/backup/archive/every-cut-and-flip", test_every_cut_and_flip_is_refused);
  ARCHIVE_TEST ("/backup/archive/header", test_header);
  ARCHIVE_TEST ("/backup/archive/deep-nesting", test_deep_nesting);
  ARCHIVE_TEST ("/backup/member/bad-paths", test_bad_paths);
  ARCHIVE_TEST ("/backup/member/types", test_types);
  ARCHIVE_TEST ("/backup/member/links-where-files-belong", test_links_where_files_belong);
  ARCHIVE_TEST ("/backup/member/link-targets", test_link_targets);
  ARCHIVE_TEST ("/backup/member/below-a-member", test_member_below_a_member);
  ARCHIVE_TEST ("/backup/member/duplicate", test_duplicate);
  ARCHIVE_TEST ("/backup/member/manifest-mismatch", test_manifest_mismatch);
  ARCHIVE_TEST ("/backup/member/count-cap", test_member_count_cap);
  ARCHIVE_TEST ("/backup/content/state-files", test_state_files);
  ARCHIVE_TEST ("/backup/content/config-files", test_config_files);
  ARCHIVE_TEST ("/backup/content/config-values", test_config_values);
  ARCHIVE_TEST ("/backup/content/refs-and-records", test_refs_and_records);
  ARCHIVE_TEST ("/backup/content/pointer", test_pointer);
  ARCHIVE_TEST ("/backup/content/format-1", test_format_1_is_migrated);
  ARCHIVE_TEST ("/backup/read-back", test_read_back);
  return g_test_run ();
}
