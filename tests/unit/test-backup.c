/* The backup archive reader (ab_backup_parse_archive()) and the read-back
 * check (ab_backup_archive_check_readable()), on archives built in memory.
 * Each test starts from one valid archive (the fixture), changes one thing,
 * seals it again with a correct trailing checksum, and parses it: only the
 * reader's own checks stand between the archive and a restore. */
#include "config.h"
#include "ab-backup.h"
#include "ab-format.h"
#include "ab-migrate.h"

#include <archive.h>
#include <archive_entry.h>
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
    { "", 0, "not a readable tar archive" },
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

/* ---- the tar archive ---- */

/* The fixture's manifest: the document without the members' data. */
static char *
manifest_of (ArchiveFixture *fx)
{
  g_autoptr(JsonNode) root = json_node_new (JSON_NODE_OBJECT);
  json_node_take_object (root, json_object_new ());
  JsonObject *m = json_node_get_object (root);
  g_autoptr(GList) keys = json_object_get_members (fx->doc);
  for (GList *l = keys; l; l = l->next)
    if (!g_str_equal (l->data, "files"))
      json_object_set_member (m, l->data, json_node_copy (json_object_get_member (fx->doc, l->data)));
  JsonArray *files = json_array_new ();
  for (guint i = 0; i < json_array_get_length (files_of (fx)); i++)
    {
      JsonObject *f = json_array_get_object_element (files_of (fx), i);
      JsonObject *e = json_object_new ();
      g_autoptr(GList) members = json_object_get_members (f);
      for (GList *l = members; l; l = l->next)
        if (!g_str_equal (l->data, "data"))
          json_object_set_member (e, l->data, json_node_copy (json_object_get_member (f, l->data)));
      json_array_add_object_element (files, e);
    }
  json_object_set_array_member (m, "files", files);
  return json_to_string (root, TRUE);
}

/* The fixture's members as files (links: data is the target). */
static GPtrArray *
members_of (ArchiveFixture *fx)
{
  GPtrArray *out = g_ptr_array_new_with_free_func ((GDestroyNotify) ab_migrate_file_free);
  for (guint i = 0; i < json_array_get_length (files_of (fx)); i++)
    {
      JsonObject *f = json_array_get_object_element (files_of (fx), i);
      gsize len = 0;
      g_autofree guchar *data = g_base64_decode (json_object_get_string_member (f, "data"), &len);
      gboolean link = json_object_has_member (f, "type");
      guint mode = (guint) json_object_get_int_member (f, "mode") | (link ? S_IFLNK : S_IFREG);
      g_ptr_array_add (out, ab_migrate_file_new (json_object_get_string_member (f, "path"), data,
                                                 len, mode));
    }
  return out;
}

static GBytes *
seal_tar (ArchiveFixture *fx, AbBackupCompression c)
{
  g_autofree char *manifest = manifest_of (fx);
  g_autoptr(GPtrArray) files = members_of (fx);
  g_autoptr(GError) error = NULL;
  GBytes *bytes = ab_backup_tar_write (manifest, files, c, &error);
  g_assert_no_error (error);
  return bytes;
}

static void
test_tar_valid (ArchiveFixture *fx, gconstpointer data)
{
  for (AbBackupCompression c = AB_BACKUP_TAR; c <= AB_BACKUP_TAR_ZST; c++)
    {
      g_autoptr(GBytes) bytes = seal_tar (fx, c);
      g_autoptr(GError) error = NULL;
      g_autoptr(AbBackupArchive) a = parse_bytes (bytes, &error);
      g_assert_no_error (error);
      g_assert_cmpstr (a->refs[AB_SLOT_A], ==, COMMIT_A);
      g_assert_cmpint (a->pointer.state[AB_SLOT_A], ==, AB_BOOT_STATE_GOOD);
      g_assert_cmpuint (a->files->len, ==, 5);
      g_assert_true (ab_backup_archive_check_readable (a, "test.backup", &error));
    }
}

/* A tar archive written entry by entry: the fixture's manifest, its
 * members, HOSTILE (an entry the manifest does not list, or NULL), then
 * SHA256SUMS that is right for the fixture's members. */
typedef void (*EntryFunc) (struct archive_entry *e, const char **out_data, gsize *out_len);

static void
raw_member (struct archive *ar, const char *path, const void *data, gsize len, guint mode)
{
  struct archive_entry *e = archive_entry_new ();
  archive_entry_set_pathname (e, path);
  archive_entry_set_filetype (e, S_ISLNK (mode) ? AE_IFLNK : AE_IFREG);
  archive_entry_set_perm (e, mode & 0777);
  if (S_ISLNK (mode))
    {
      g_autofree char *t = g_strndup (data, len);
      archive_entry_set_symlink (e, t);
      len = 0;
    }
  archive_entry_set_size (e, (la_int64_t) len);
  g_assert_cmpint (archive_write_header (ar, e), ==, ARCHIVE_OK);
  if (len > 0)
    g_assert_cmpint (archive_write_data (ar, data, len), ==, (la_ssize_t) len);
  archive_entry_free (e);
}

static la_ssize_t
append_cb (struct archive *ar, void *buf, const void *data, size_t len)
{
  g_byte_array_append (buf, data, (guint) len);
  return (la_ssize_t) len;
}

static GBytes *
seal_tar_with (ArchiveFixture *fx, EntryFunc hostile)
{
  g_autofree char *manifest = manifest_of (fx);
  g_autoptr(GPtrArray) files = members_of (fx);
  g_autoptr(GByteArray) buf = g_byte_array_new ();
  struct archive *ar = archive_write_new ();
  g_assert_cmpint (archive_write_set_format_pax_restricted (ar), ==, ARCHIVE_OK);
  g_assert_cmpint (archive_write_open (ar, buf, NULL, append_cb, NULL), ==, ARCHIVE_OK);
  raw_member (ar, AB_BACKUP_MANIFEST_NAME, manifest, strlen (manifest), S_IFREG | 0644);
  for (guint i = 0; i < files->len; i++)
    {
      AbMigrateFile *f = files->pdata[i];
      raw_member (ar, f->rel, g_bytes_get_data (f->data, NULL), g_bytes_get_size (f->data), f->mode);
    }
  if (hostile != NULL)
    {
      struct archive_entry *e = archive_entry_new ();
      const char *data = NULL;
      gsize len = 0;
      hostile (e, &data, &len);
      g_assert_cmpint (archive_write_header (ar, e), ==, ARCHIVE_OK);
      if (len > 0)
        g_assert_cmpint (archive_write_data (ar, data, len), ==, (la_ssize_t) len);
      archive_entry_free (e);
    }
  g_autofree char *msum = g_compute_checksum_for_string (G_CHECKSUM_SHA256, manifest, -1);
  g_autofree char *sums = ab_backup_sums_text (msum, files);
  raw_member (ar, AB_BACKUP_SUMS_NAME, sums, strlen (sums), S_IFREG | 0644);
  g_assert_cmpint (archive_write_close (ar), ==, ARCHIVE_OK);
  archive_write_free (ar);
  return g_byte_array_free_to_bytes (g_steal_pointer (&buf));
}

static void
assert_tar_refused (GBytes *bytes, const char *needle)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(AbBackupArchive) a = parse_bytes (bytes, &error);
  g_assert_null (a);
  g_assert_error (error, AB_BACKUP_ERROR, AB_BACKUP_ERROR_CORRUPT);
  if (strstr (error->message, needle) == NULL)
    g_error ("\"%s\" not in: %s", needle, error->message);
}

static void
hardlink_out (struct archive_entry *e, const char **d, gsize *l)
{
  archive_entry_set_pathname (e, "etc/abdeploy/trusted.gpg.d/shadow.gpg");
  archive_entry_set_filetype (e, AE_IFREG);
  archive_entry_set_perm (e, 0644);
  archive_entry_set_hardlink (e, "../../../etc/shadow");
}

static void
chardev (struct archive_entry *e, const char **d, gsize *l)
{
  archive_entry_set_pathname (e, "etc/abdeploy/null");
  archive_entry_set_filetype (e, AE_IFCHR);
  archive_entry_set_perm (e, 0666);
  archive_entry_set_rdevmajor (e, 1);
  archive_entry_set_rdevminor (e, 3);
}

static void
blockdev (struct archive_entry *e, const char **d, gsize *l)
{
  chardev (e, d, l);
  archive_entry_set_filetype (e, AE_IFBLK);
}

static void
fifo (struct archive_entry *e, const char **d, gsize *l)
{
  chardev (e, d, l);
  archive_entry_set_filetype (e, AE_IFIFO);
}

static void
directory (struct archive_entry *e, const char **d, gsize *l)
{
  archive_entry_set_pathname (e, "etc/abdeploy/conf.d");
  archive_entry_set_filetype (e, AE_IFDIR);
  archive_entry_set_perm (e, 0755);
}

static void
extra_file (struct archive_entry *e, const char **d, gsize *l)
{
  archive_entry_set_pathname (e, "etc/abdeploy/conf.d/50-extra.conf");
  archive_entry_set_filetype (e, AE_IFREG);
  archive_entry_set_perm (e, 0644);
  archive_entry_set_size (e, 3);
  *d = "x=1";
  *l = 3;
}

static void
test_tar_entry_types (ArchiveFixture *fx, gconstpointer data)
{
  static const struct { EntryFunc f; const char *needle; } cases[] = {
    { hardlink_out, "is a hard link to ../../../etc/shadow" },
    { chardev, "etc/abdeploy/null is a character device" },
    { blockdev, "is a block device" },
    { fifo, "is a FIFO" },
    { directory, "etc/abdeploy/conf.d/ is a directory" },
    { extra_file, "the manifest lists 5 members, the archive holds 6" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GBytes) bytes = seal_tar_with (fx, cases[i].f);
      assert_tar_refused (bytes, cases[i].needle);
    }
}

/* Paths the manifest lists too, so that only the path checks refuse them. */
static void
test_tar_hostile_paths (ArchiveFixture *fx, gconstpointer data)
{
  static const struct { const char *path; const char *needle; } cases[] = {
    { "../escape", "\"..\" component" },
    { "etc/abdeploy/../../escape", "\"..\" component" },
    { "/etc/abdeploy/abs.conf", "is absolute" },
    { "usr/bin/x", "outside etc/abdeploy/" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      add_text (fx, cases[i].path, "x\n");
      g_autoptr(GBytes) bytes = seal_tar_with (fx, NULL);
      assert_tar_refused (bytes, cases[i].needle);
      g_assert_true (remove_member (fx, cases[i].path));
    }
  /* a link, then a file through it */
  add_link (fx, "etc/abdeploy/trusted.gpg.d/k", "../../..");
  add_text (fx, "etc/abdeploy/trusted.gpg.d/k/usr/evil.gpg", "x\n");
  g_autoptr(GBytes) through = seal_tar_with (fx, NULL);
  assert_tar_refused (through, "is below member etc/abdeploy/trusted.gpg.d/k");
  remove_member (fx, "etc/abdeploy/trusted.gpg.d/k/usr/evil.gpg");
  /* a link out of the sysroot */
  remove_member (fx, "etc/abdeploy/trusted.gpg.d/k");
  add_link (fx, "etc/abdeploy/trusted.gpg.d/k", "../../../../etc/shadow");
  g_autoptr(GBytes) out = seal_tar_with (fx, NULL);
  assert_tar_refused (out, "outside the sysroot");
  remove_member (fx, "etc/abdeploy/trusted.gpg.d/k");
  /* the same member twice */
  add_text (fx, "etc/abdeploy/abdeploy.conf", CONFIG);
  g_autoptr(GBytes) twice = seal_tar_with (fx, NULL);
  assert_tar_refused (twice, "appears twice");
}

/* The header of member PATH in the uncompressed tar DATA claims SIZE
 * (octal, 11 digits) bytes; its header checksum is made right again. */
static GBytes *
claim_size (GBytes *bytes, const char *path, const char *octal_size)
{
  gsize len = 0;
  const void *orig = g_bytes_get_data (bytes, &len);
  guint8 *data = g_memdup2 (orig, len);
  gsize at = 0;
  while (at + 512 <= len && strcmp ((char *) data + at, path) != 0)
    at += 512;
  g_assert_cmpuint (at + 512, <=, len);
  memcpy (data + at + 124, octal_size, 11);
  memset (data + at + 148, ' ', 8);
  guint sum = 0;
  for (guint i = 0; i < 512; i++)
    sum += data[at + i];
  g_snprintf ((char *) data + at + 148, 8, "%06o", sum);
  return g_bytes_new_take (data, len);
}

static void
test_tar_huge_sizes (ArchiveFixture *fx, gconstpointer data)
{
  g_autoptr(GBytes) bytes = seal_tar_with (fx, NULL);
  /* 8 GiB - 1 and 17 MiB: above the member cap, refused before a byte is read */
  g_autoptr(GBytes) huge = claim_size (bytes, KEY_REL, "77777777777");
  assert_tar_refused (huge, "claims 8589934591 bytes");
  g_autoptr(GBytes) big = claim_size (bytes, KEY_REL, "00104000000");
  assert_tar_refused (big, "more than a member (16 MiB)");
  /* larger than the data that follows: the archive is truncated */
  g_autoptr(GBytes) more = claim_size (bytes, KEY_REL, "00000100000");
  g_autoptr(GError) error = NULL;
  g_autoptr(AbBackupArchive) a = parse_bytes (more, &error);
  g_assert_null (a);
  g_assert_error (error, AB_BACKUP_ERROR, AB_BACKUP_ERROR_CORRUPT);
}

/* The same content as the fixture: what a flipped byte that libarchive
 * does not see (padding) may give, and nothing else. */
static gboolean
same_as_fixture (AbBackupArchive *a, AbBackupArchive *good)
{
  if (a->files->len != good->files->len)
    return FALSE;
  for (guint i = 0; i < a->files->len; i++)
    {
      AbMigrateFile *x = a->files->pdata[i], *y = good->files->pdata[i];
      if (!g_str_equal (x->rel, y->rel) || x->mode != y->mode || !g_bytes_equal (x->data, y->data))
        return FALSE;
    }
  return a->pointer.primary == good->pointer.primary
         && g_strcmp0 (a->refs[AB_SLOT_A], good->refs[AB_SLOT_A]) == 0;
}

static void
test_tar_every_cut_and_flip (ArchiveFixture *fx, gconstpointer data)
{
  for (AbBackupCompression c = AB_BACKUP_TAR; c <= AB_BACKUP_TAR_ZST; c++)
    {
      g_autoptr(GBytes) bytes = seal_tar (fx, c);
      gsize len = 0;
      const guint8 *d = g_bytes_get_data (bytes, &len);
      g_autoptr(AbBackupArchive) good = ab_backup_parse_archive (d, len, NULL, NULL);
      g_assert_nonnull (good);
      /* every cut before the two end-of-archive blocks loses content */
      gsize end = c == AB_BACKUP_TAR ? len - 1024 : len;
      for (gsize cut = 0; cut < end; cut += c == AB_BACKUP_TAR ? 61 : 7)
        {
          g_autoptr(GError) error = NULL;
          g_autoptr(AbBackupArchive) a = ab_backup_parse_archive (d, cut, NULL, &error);
          if (a != NULL)
            g_error ("a cut at %" G_GSIZE_FORMAT " of %" G_GSIZE_FORMAT " was accepted", cut, len);
          g_assert_error (error, AB_BACKUP_ERROR, AB_BACKUP_ERROR_CORRUPT);
        }
      g_autofree guint8 *copy = g_memdup2 (d, len);
      for (gsize i = 0; i < len; i += 3)
        {
          copy[i] ^= 0x20;
          g_autoptr(AbBackupArchive) a = ab_backup_parse_archive (copy, len, NULL, NULL);
          if (a != NULL && !same_as_fixture (a, good))
            g_error ("a flip at %" G_GSIZE_FORMAT " changed what is restored", i);
          copy[i] ^= 0x20;
        }
    }
}

static void
test_tar_checksums (ArchiveFixture *fx, gconstpointer data)
{
  /* a member's data that is not what the manifest says */
  JsonObject *conf = find_member (fx, "etc/abdeploy/abdeploy.conf");
  g_autofree char *b64 = g_base64_encode ((const guchar *) "[boot]\ntries=3\n", 15);
  json_object_set_string_member (conf, "data", b64);
  json_object_set_int_member (conf, "size", 15);
  g_autoptr(GBytes) bytes = seal_tar_with (fx, NULL);
  assert_tar_refused (bytes, "etc/abdeploy/abdeploy.conf: checksum mismatch");
}

/* A manifest changed after SHA256SUMS was made (the boot pointer): every
 * member still matches it, only SHA256SUMS tells. */
static void
test_tar_manifest_changed (ArchiveFixture *fx, gconstpointer data)
{
  g_autoptr(GBytes) bytes = seal_tar (fx, AB_BACKUP_TAR);
  gsize len = 0;
  const void *orig = g_bytes_get_data (bytes, &len);
  guint8 *d = g_memdup2 (orig, len);
  guint8 *at = memmem (d, len, "\"good\"", 6);
  g_assert_nonnull (at);
  memcpy (at, "\"bad\" ", 6);
  g_autoptr(GBytes) changed = g_bytes_new_take (d, len);
  assert_tar_refused (changed, "SHA256SUMS does not match");
}

static void
test_tar_frame (ArchiveFixture *fx, gconstpointer data)
{
  g_autoptr(GByteArray) buf = g_byte_array_new ();
  struct archive *ar = archive_write_new ();
  g_assert_cmpint (archive_write_set_format_pax_restricted (ar), ==, ARCHIVE_OK);
  g_assert_cmpint (archive_write_open (ar, buf, NULL, append_cb, NULL), ==, ARCHIVE_OK);
  raw_member (ar, "etc/abdeploy/abdeploy.conf", CONFIG, strlen (CONFIG), S_IFREG | 0644);
  g_assert_cmpint (archive_write_close (ar), ==, ARCHIVE_OK);
  archive_write_free (ar);
  g_autoptr(GBytes) other = g_byte_array_free_to_bytes (g_steal_pointer (&buf));
  assert_tar_refused (other, "does not begin with abdeploy-backup.json");
  g_autoptr(GBytes) junk = g_bytes_new_static ("PK\003\004 not a tar", 15);
  assert_tar_refused (junk, "not a readable tar archive");
}

/* The archive of abdeploy 0.2.0 (one JSON document, made by its writer) is
 * still read. */
static void
test_020_fixture (void)
{
  g_autofree char *path = g_test_build_filename (G_TEST_DIST, "fixtures", "backup-0.2.0",
                                                 "layout-2-slots.abbak", NULL);
  g_autofree char *text = NULL;
  gsize len = 0;
  g_autoptr(GError) error = NULL;
  g_assert_true (g_file_get_contents (path, &text, &len, &error));
  g_autoptr(AbBackupArchive) a = ab_backup_parse_archive ((guint8 *) text, len, path, &error);
  g_assert_no_error (error);
  g_assert_cmpint (a->format, ==, 2);
  g_assert_cmpstr (a->bootloader, ==, "grub");
  g_assert_nonnull (a->records[AB_SLOT_A]);
  g_assert_nonnull (a->records[AB_SLOT_B]);
  g_assert_cmpint (a->pointer.primary, ==, AB_SLOT_A);
  g_assert_true (ab_backup_archive_check_readable (a, path, &error));
  g_assert_no_error (error);
}

static void
test_compression_for_name (void)
{
  AbBackupCompression c;
  g_assert_true (ab_backup_compression_for_name ("x.tar", &c, NULL) && c == AB_BACKUP_TAR);
  g_assert_true (ab_backup_compression_for_name ("/a/b.tar.gz", &c, NULL) && c == AB_BACKUP_TAR_GZ);
  g_assert_true (ab_backup_compression_for_name ("b.tar.zst", &c, NULL) && c == AB_BACKUP_TAR_ZST);
  const char *bad[] = { "b", "b.json", "b.tgz", "b.tar.xz", ".tar", "b.tar.gz.part" };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(GError) error = NULL;
      g_assert_false (ab_backup_compression_for_name (bad[i], &c, &error));
      g_assert_error (error, AB_BACKUP_ERROR, AB_BACKUP_ERROR_USAGE);
      g_assert_nonnull (strstr (error->message, ".tar, .tar.gz or .tar.zst"));
    }
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
  ARCHIVE_TEST ("/backup/tar/valid", test_tar_valid);
  ARCHIVE_TEST ("/backup/tar/entry-types", test_tar_entry_types);
  ARCHIVE_TEST ("/backup/tar/hostile-paths", test_tar_hostile_paths);
  ARCHIVE_TEST ("/backup/tar/huge-sizes", test_tar_huge_sizes);
  ARCHIVE_TEST ("/backup/tar/every-cut-and-flip", test_tar_every_cut_and_flip);
  ARCHIVE_TEST ("/backup/tar/checksums", test_tar_checksums);
  ARCHIVE_TEST ("/backup/tar/manifest-changed", test_tar_manifest_changed);
  ARCHIVE_TEST ("/backup/tar/frame", test_tar_frame);
  g_test_add_func ("/backup/format-0.2.0-fixture", test_020_fixture);
  g_test_add_func ("/backup/compression-for-name", test_compression_for_name);
  return g_test_run ();
}
