/* The backup archive reader: ab_backup_parse_archive() checks a whole
 * archive in memory before restore changes anything, and
 * ab_backup_archive_check_readable() reads the files back as every command
 * will. Two formats (abdeploy-backup(5)): the tar archive (plain, gzip or
 * zstd; libarchive) with the manifest abdeploy-backup.json first and
 * SHA256SUMS last; and the archive of 0.1.0 and 0.2.0, one JSON document,
 * then the line "sha256 HEX\n" where HEX is the SHA-256 of every byte
 * before that line's newline. Both share the manifest and every check of
 * a member. */
#include "config.h"
#include "ab-backup.h"
#include "ab-config.h"
#include "ab-content.h"
#include "ab-format.h"
#include "ab-fsutil.h"
#include "ab-history.h"
#include "ab-migrate.h"
#include "ab-transaction.h"
#include "ab-util.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <json-glib/json-glib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONFIG_REL "etc/abdeploy/abdeploy.conf"
#define CONF_D_PREFIX "etc/abdeploy/conf.d/"
#define ETC_PREFIX "etc/abdeploy/"
#define STATE_PREFIX "abdeploy/state/"
#define TRAILER_PREFIX "\nsha256 "
#define SHA256_HEX_LEN 64

static const char *const ref_names[AB_N_SLOTS] = { "abdeploy/slot/a", "abdeploy/slot/b" };
static const char *const record_names[AB_N_SLOTS] = { STATE_PREFIX "slot-a.json",
                                                      STATE_PREFIX "slot-b.json" };

static gboolean
corrupt (GError **error, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

/* The refusal of every check: names the problem; nothing was changed. */
static gboolean
corrupt (GError **error, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *what = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (error, AB_BACKUP_ERROR, AB_BACKUP_ERROR_CORRUPT,
               "The backup is corrupt or truncated (%s); nothing was changed. "
               "Use another copy of the backup", what);
  return FALSE;
}

void
ab_backup_archive_free (AbBackupArchive *a)
{
  if (a == NULL)
    return;
  g_free (a->bootloader);
  g_free (a->os);
  for (int s = 0; s < AB_N_SLOTS; s++)
    {
      g_free (a->refs[s]);
      g_clear_pointer (&a->records[s], ab_slot_record_free);
    }
  g_clear_pointer (&a->files, g_ptr_array_unref);
  g_clear_pointer (&a->restored, g_ptr_array_unref);
  g_free (a);
}

/* ---- typed access that never warns on a member of another type ---- */

static JsonNode *
member_of_type (JsonObject *o, const char *key, JsonNodeType type)
{
  JsonNode *n = o ? json_object_get_member (o, key) : NULL;
  return n && JSON_NODE_TYPE (n) == type ? n : NULL;
}

static const char *
string_member (JsonObject *o, const char *key)
{
  JsonNode *n = member_of_type (o, key, JSON_NODE_VALUE);
  return n && json_node_get_value_type (n) == G_TYPE_STRING ? json_node_get_string (n) : NULL;
}

static gboolean
int_member (JsonObject *o, const char *key, gint64 *out)
{
  JsonNode *n = member_of_type (o, key, JSON_NODE_VALUE);
  if (n == NULL || json_node_get_value_type (n) != G_TYPE_INT64)
    return FALSE;
  *out = json_node_get_int (n);
  return TRUE;
}

static JsonObject *
object_member (JsonObject *o, const char *key)
{
  JsonNode *n = member_of_type (o, key, JSON_NODE_OBJECT);
  return n ? json_node_get_object (n) : NULL;
}

static JsonArray *
array_member (JsonObject *o, const char *key)
{
  JsonNode *n = member_of_type (o, key, JSON_NODE_ARRAY);
  return n ? json_node_get_array (n) : NULL;
}

/* ---- the outer layer: trailer, checksum, JSON ---- */

static gboolean
is_sha256_hex (const char *s, gsize len)
{
  if (len != SHA256_HEX_LEN)
    return FALSE;
  for (gsize i = 0; i < len; i++)
    if (!g_ascii_isxdigit (s[i]) || g_ascii_isupper (s[i]))
      return FALSE;
  return TRUE;
}

/* The JSON body of DATA, once its trailer line matches its checksum:
 * exactly "\nsha256 " + 64 lowercase hex digits + "\n" at the end. */
static gboolean
check_trailer (const guint8 *data, gsize len, gsize *out_body_len, GError **error)
{
  const gsize trailer = strlen (TRAILER_PREFIX) + SHA256_HEX_LEN + 1;
  if (len > AB_BACKUP_MAX_ARCHIVE_SIZE)
    return corrupt (error, "larger than %d MiB", AB_BACKUP_MAX_ARCHIVE_SIZE >> 20);
  if (len <= trailer || data[len - 1] != '\n'
      || memcmp (data + len - trailer, TRAILER_PREFIX, strlen (TRAILER_PREFIX)) != 0)
    return corrupt (error, "no trailing checksum line");
  const char *hex = (const char *) data + len - trailer + strlen (TRAILER_PREFIX);
  gsize body_len = len - trailer;
  g_autofree char *got = g_compute_checksum_for_data (G_CHECKSUM_SHA256, data, body_len);
  if (!is_sha256_hex (hex, SHA256_HEX_LEN) || memcmp (got, hex, SHA256_HEX_LEN) != 0)
    return corrupt (error, "archive checksum mismatch");
  *out_body_len = body_len;
  return TRUE;
}

/* json-glib hands out strings as C strings: a NUL, raw or escaped, would
 * silently cut a member's path. Member data is base64 or in the tar. */
static gboolean
check_no_nul (const guint8 *data, gsize len, GError **error)
{
  if (memchr (data, '\0', len) != NULL
      || g_strstr_len ((const char *) data, (gssize) len, "\\u0000") != NULL)
    return corrupt (error, "a NUL byte in the JSON document");
  return TRUE;
}

/* An archive nests four levels deep; json-glib's parser recurses once per
 * level, so a document of a million "[" would exhaust the stack. */
#define MAX_NESTING 16

static gboolean
check_nesting (const guint8 *data, gsize len, GError **error)
{
  int depth = 0;
  gboolean in_string = FALSE;
  for (gsize i = 0; i < len; i++)
    {
      if (in_string)
        {
          if (data[i] == '\\')
            i++;
          else if (data[i] == '"')
            in_string = FALSE;
          continue;
        }
      in_string = data[i] == '"';
      depth += (data[i] == '[' || data[i] == '{') - (data[i] == ']' || data[i] == '}');
      if (depth > MAX_NESTING)
        return corrupt (error, "JSON nested more than %d levels deep", MAX_NESTING);
    }
  return TRUE;
}

static JsonParser *
parse_json (const guint8 *data, gsize len, GError **error)
{
  if (!check_nesting (data, len, error))
    return NULL;
  g_autoptr(JsonParser) parser = json_parser_new_immutable ();
  g_autoptr(GError) local = NULL;
  if (!json_parser_load_from_data (parser, (const char *) data, (gssize) len, &local))
    return corrupt (error, "not JSON: %s", local->message), NULL;
  JsonNode *root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    return corrupt (error, "not a JSON object"), NULL;
  return g_steal_pointer (&parser);
}

/* "kind", "format" and "bootloader" of the document. */
static gboolean
parse_header (AbBackupArchive *a, JsonObject *o, const char *what, GError **error)
{
  if (g_strcmp0 (string_member (o, "kind"), "abdeploy-backup") != 0)
    return corrupt (error, "not an abdeploy backup: no \"kind\": \"abdeploy-backup\"");
  if (!int_member (o, "format", &a->format))
    return corrupt (error, "\"format\" is missing or not an integer");
  if (!ab_format_check (AB_FORMAT_BACKUP, what, a->format, error))
    return FALSE;
  const char *bootloader = string_member (o, "bootloader");
  g_autoptr(AbBootloader) check = bootloader ? ab_bootloader_new (bootloader, -1, NULL, NULL, NULL) : NULL;
  if (check == NULL)
    return corrupt (error, "\"bootloader\" is missing or names no backend this abdeploy has");
  a->bootloader = g_strdup (bootloader);
  return TRUE;
}

/* ---- pointer and refs ---- */

static gboolean
parse_pointer (AbBackupArchive *a, JsonObject *pointer, GError **error)
{
  if (pointer == NULL)
    return corrupt (error, "no \"pointer\" object");
  AbBootPointer none;
  ab_boot_pointer_init (&none);
  g_autoptr(GHashTable) known = ab_boot_pointer_to_vars (&none);
  g_autoptr(GHashTable) vars = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr(GList) members = json_object_get_members (pointer);
  for (GList *l = members; l; l = l->next)
    {
      const char *value = string_member (pointer, l->data);
      if (!g_hash_table_contains (known, l->data) || value == NULL)
        return corrupt (error, "pointer variable \"%s\" is unknown or not a string",
                        (const char *) l->data);
      g_hash_table_insert (vars, l->data, (char *) value);
    }
  g_autoptr(GError) local = NULL;
  if (!ab_boot_pointer_from_vars (vars, &a->pointer, &local))
    return corrupt (error, "%s", local->message);
  return TRUE;
}

static int
ref_slot (const char *name)
{
  for (int s = 0; s < AB_N_SLOTS; s++)
    if (g_str_equal (name, ref_names[s]))
      return s;
  return -1;
}

/* Only the refs of the two slots, each a commit checksum or null. */
static gboolean
parse_refs (AbBackupArchive *a, JsonObject *refs, GError **error)
{
  if (refs == NULL)
    return corrupt (error, "no \"refs\" object");
  g_autoptr(GList) members = json_object_get_members (refs);
  for (GList *l = members; l; l = l->next)
    {
      int s = ref_slot (l->data);
      JsonNode *n = json_object_get_member (refs, l->data);
      const char *commit = string_member (refs, l->data);
      if (s < 0)
        return corrupt (error, "ref \"%s\" is not one of the slots' refs", (const char *) l->data);
      if (!JSON_NODE_HOLDS_NULL (n) && !ab_is_commit_checksum (commit))
        return corrupt (error, "ref %s is not a commit checksum", ref_names[s]);
      a->refs[s] = g_strdup (commit);
    }
  return TRUE;
}

/* ---- members ---- */

/* A relative path below the saved trees, component by component. */
static gboolean
check_member_path (const char *path, GError **error)
{
  gsize len = strlen (path);
  if (len == 0 || len > AB_BACKUP_MAX_PATH)
    return corrupt (error, "a member path is empty or longer than %d bytes", AB_BACKUP_MAX_PATH);
  if (!g_utf8_validate (path, (gssize) len, NULL))
    return corrupt (error, "a member path is not UTF-8");
  for (const char *p = path; *p; p++)
    if ((guchar) *p < 0x20 || *p == 0x7f)
      return corrupt (error, "member path %s has a control character", path);
  if (path[0] == '/')
    return corrupt (error, "member path %s is absolute", path);
  g_auto(GStrv) parts = g_strsplit (path, "/", -1);
  for (guint i = 0; parts[i]; i++)
    {
      if (parts[i][0] == '\0' || g_str_equal (parts[i], ".") || g_str_equal (parts[i], ".."))
        return corrupt (error, "member path %s has an empty, \".\" or \"..\" component", path);
      if (parts[i][0] == '.' || strlen (parts[i]) > AB_BACKUP_MAX_NAME)
        return corrupt (error, "member path %s has a hidden or too long component", path);
    }
  if (!g_str_has_prefix (path, ETC_PREFIX) && !g_str_has_prefix (path, STATE_PREFIX))
    return corrupt (error, "member %s is outside etc/abdeploy/ and abdeploy/state/", path);
  return TRUE;
}

/* Where a symbolic link may be: a trusted key or a health hook, directly
 * in its directory. */
static gboolean
link_allowed_at (const char *path)
{
  g_autofree char *dir = g_path_get_dirname (path);
  if (g_str_equal (dir, AB_TRUSTED_KEYS_DIR))
    return TRUE;
  g_autofree char *parent = g_path_get_dirname (dir);
  return g_str_equal (parent, "etc/abdeploy/health") && g_str_has_suffix (dir, ".d");
}

/* TARGET of the link at PATH stays beneath the sysroot: relative, and no
 * ".." climbs above the sysroot from the link's directory. */
static gboolean
check_link_target (const char *path, const char *data, gsize len, GError **error)
{
  if (len == 0 || len >= 4096 || memchr (data, '\0', len) || memchr (data, '\n', len))
    return corrupt (error, "link %s has an empty or malformed target", path);
  /* DATA is not NUL-terminated (a member's bytes) */
  g_autofree char *target = g_strndup (data, len);
  if (target[0] == '/')
    return corrupt (error, "link %s points to the absolute path %s, outside the sysroot", path, target);
  int depth = 0;
  for (const char *p = path; *p; p++)
    depth += *p == '/';
  g_auto(GStrv) parts = g_strsplit (target, "/", -1);
  for (guint i = 0; parts[i]; i++)
    {
      if (g_str_equal (parts[i], ".."))
        depth--;
      else if (parts[i][0] != '\0' && !g_str_equal (parts[i], "."))
        depth++;
      if (depth < 0)
        return corrupt (error, "link %s points to %s, outside the sysroot", path, target);
    }
  return TRUE;
}

/* Standard base64 (RFC 4648), strictly: g_base64_decode() skips junk. */
static guchar *
decode_base64 (const char *b64, gsize *out_len)
{
  gsize n = strlen (b64);
  if (n % 4 != 0)
    return NULL;
  for (gsize i = 0; i < n; i++)
    if (!(g_ascii_isalnum (b64[i]) || b64[i] == '+' || b64[i] == '/'
          || (b64[i] == '=' && i >= n - 2 && (i == n - 1 || b64[n - 1] == '='))))
      return NULL;
  guchar *bytes = g_base64_decode (b64, out_len);
  g_autofree char *again = g_base64_encode (bytes, *out_len);
  if (!g_str_equal (again, b64))
    g_clear_pointer (&bytes, g_free);
  return bytes;
}

typedef struct
{
  const char *path;
  const char *type;
  gint64 mode;
  gint64 size;
  const char *sha256;
  const char *data;   /* base64; NULL in the manifest of a tar archive */
} Entry;

static gboolean
read_entry (JsonNode *node, guint i, gboolean with_data, Entry *e, GError **error)
{
  JsonObject *f = JSON_NODE_HOLDS_OBJECT (node) ? json_node_get_object (node) : NULL;
  e->path = string_member (f, "path");
  e->type = f && json_object_has_member (f, "type") ? string_member (f, "type") : "file";
  e->sha256 = string_member (f, "sha256");
  e->data = with_data ? string_member (f, "data") : NULL;
  if (e->path == NULL || e->type == NULL || e->sha256 == NULL || (with_data && e->data == NULL)
      || !int_member (f, "mode", &e->mode) || !int_member (f, "size", &e->size))
    return corrupt (error, "member %u lacks a path, type, mode, size, sha256%s", i,
                    with_data ? " or data" : "");
  return TRUE;
}

/* The manifest entry E itself: a path beneath the saved trees, a type
 * allowed there, mode and size in range. *out_link: a symbolic link. */
static gboolean
check_entry (const Entry *e, gboolean *out_link, GError **error)
{
  if (!check_member_path (e->path, error))
    return FALSE;
  gboolean link = g_str_equal (e->type, "symlink");
  if (!link && !g_str_equal (e->type, "file"))
    return corrupt (error, "member %s is of type \"%s\"; only files and links are restored",
                    e->path, e->type);
  if (link && !link_allowed_at (e->path))
    return corrupt (error, "member %s is a symbolic link where a regular file is expected",
                    e->path);
  if (e->mode < 0 || e->mode > 0777 || e->size < 0 || e->size > AB_BACKUP_MAX_MEMBER_SIZE)
    return corrupt (error, "member %s has mode %" G_GINT64_FORMAT " or size %" G_GINT64_FORMAT
                    " out of range", e->path, e->mode, e->size);
  *out_link = link;
  return TRUE;
}

/* The member E with its content BYTES, once they match E's size and
 * checksum (and a link's target stays beneath the sysroot). */
static AbMigrateFile *
make_member (const Entry *e, gboolean link, const guchar *bytes, gsize len, GError **error)
{
  if ((gint64) len != e->size)
    return corrupt (error, "%s: %" G_GSIZE_FORMAT " bytes, the manifest says %" G_GINT64_FORMAT,
                    e->path, len, e->size), NULL;
  g_autofree char *got = g_compute_checksum_for_data (G_CHECKSUM_SHA256, bytes, len);
  if (!g_str_equal (got, e->sha256))
    return corrupt (error, "%s: checksum mismatch", e->path), NULL;
  if (link && !check_link_target (e->path, (const char *) bytes, len, error))
    return NULL;
  return ab_migrate_file_new (e->path, bytes, len, (guint) e->mode | (link ? S_IFLNK : S_IFREG));
}

/* One member of a JSON archive, checked against its manifest entry. */
static AbMigrateFile *
decode_member (JsonNode *node, guint i, GError **error)
{
  Entry e;
  gboolean link = FALSE;
  if (!read_entry (node, i, TRUE, &e, error) || !check_entry (&e, &link, error))
    return NULL;
  gsize len = 0;
  g_autofree guchar *bytes = decode_base64 (e.data, &len);
  if (bytes == NULL || (gint64) len != e.size)
    return corrupt (error, "%s: its data is not base64 of its size", e.path), NULL;
  return make_member (&e, link, bytes, len, error);
}

/* No two members share a path, and no member is below another one: a
 * member never resolves through a link (or a file) of the archive. */
static gboolean
check_tree_shape (GPtrArray *files, GError **error)
{
  g_autoptr(GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; i < files->len; i++)
    {
      const AbMigrateFile *f = files->pdata[i];
      if (!g_hash_table_add (seen, f->rel))
        return corrupt (error, "member %s appears twice", f->rel);
    }
  for (guint i = 0; i < files->len; i++)
    {
      const AbMigrateFile *f = files->pdata[i];
      g_autofree char *dir = g_strdup (f->rel);
      char *slash;
      while ((slash = strrchr (dir, '/')) != NULL)
        {
          *slash = '\0';
          if (g_hash_table_contains (seen, dir))
            return corrupt (error, "member %s is below member %s, which is not a directory",
                            f->rel, dir);
        }
    }
  return TRUE;
}

static GPtrArray *
decode_members (JsonArray *files, GError **error)
{
  if (files == NULL)
    return corrupt (error, "no \"files\" array"), NULL;
  guint n = json_array_get_length (files);
  if (n > AB_BACKUP_MAX_MEMBERS)
    return corrupt (error, "more than %d members", AB_BACKUP_MAX_MEMBERS), NULL;
  g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func ((GDestroyNotify) ab_migrate_file_free);
  for (guint i = 0; i < n; i++)
    {
      AbMigrateFile *f = decode_member (json_array_get_element (files, i), i, error);
      if (f == NULL)
        return NULL;
      g_ptr_array_add (out, f);
    }
  return check_tree_shape (out, error) ? g_steal_pointer (&out) : NULL;
}

/* ---- content: state files, configuration, records ---- */

static const AbMigrateFile *
find_file (GPtrArray *files, const char *rel)
{
  for (guint i = 0; i < files->len; i++)
    if (g_str_equal (((AbMigrateFile *) files->pdata[i])->rel, rel))
      return files->pdata[i];
  return NULL;
}

/* The content of F as text: no NUL byte may cut it short. */
static char *
text_of (const AbMigrateFile *f, GError **error)
{
  gsize len = 0;
  const char *bytes = g_bytes_get_data (f->data, &len);
  if (len > 0 && memchr (bytes, '\0', len) != NULL)
    return corrupt (error, "%s is text with a NUL byte", f->rel), NULL;
  return g_strndup (bytes, len);
}

/* A state file: one this abdeploy knows, of a readable format; converted
 * to the current one (*out NULL when it has it). */
static gboolean
convert_state (const AbMigrateFile *f, const char *reason, const char *what, char **out,
               GError **error)
{
  const char *name = f->rel + strlen (STATE_PREFIX);
  if (!g_strv_contains (ab_migrate_state_files, name))
    return corrupt (error, "%s is not a state file this abdeploy knows", f->rel);
  g_autofree char *text = text_of (f, error);
  return text != NULL && ab_migrate_state_text (name, what, text, reason, out, error);
}

/* A configuration file the strict parser refuses (CAUSE names the file in
 * the archive, the group, the key and what is accepted). */
static gboolean
refused_config (GError **error, const char *archive, const GError *cause)
{
  g_set_error (error, AB_BACKUP_ERROR, AB_BACKUP_ERROR_CORRUPT,
               "The backup %s holds a configuration file that abdeploy refuses (%s); nothing "
               "was changed. Every command would fail on a sysroot restored with it: restore "
               "another copy of the backup, or one taken after the file was fixed",
               archive, cause->message);
  return FALSE;
}

/* A configuration file must pass every check of ab_config_load() that it
 * can fail on its own (the checks between files are made on the files
 * read back, ab_backup_archive_check_readable()): a file that does not
 * would make every command refuse the restored sysroot. abdeploy.conf of
 * a format-1 archive gets the current format (*out), as a migration
 * writes it. */
static gboolean
convert_config (const AbMigrateFile *f, const char *reason, const char *archive,
                const char *what, char **out, GError **error)
{
  g_autofree char *text = text_of (f, error);
  g_autoptr(GError) local = NULL;
  if (text == NULL)
    return FALSE;
  /* conf.d files not named *.conf are restored, but no command reads them */
  gboolean is_main = g_str_equal (f->rel, CONFIG_REL);
  gboolean loaded = is_main || g_str_has_suffix (f->rel, ".conf");
  if (loaded && !ab_config_check_data (text, strlen (text), f->rel, &local))
    return refused_config (error, archive, local);
  gint64 stated = 0;
  if (!ab_config_stated_format (text, strlen (text), what, is_main ? &stated : NULL, &local))
    {
      if (!g_error_matches (local, AB_CONFIG_ERROR, AB_CONFIG_ERROR_SYNTAX))
        {
          g_propagate_error (error, g_steal_pointer (&local));
          return FALSE;
        }
      return corrupt (error, "%s does not parse: %s", f->rel, local->message);
    }
  if (is_main && reason != NULL && stated != AB_CONFIG_FORMAT)
    *out = ab_config_stamp_format (text, AB_CONFIG_FORMAT);
  return TRUE;
}

static gboolean
is_config (const char *rel)
{
  return g_str_equal (rel, CONFIG_REL)
         || (g_str_has_prefix (rel, CONF_D_PREFIX) && strchr (rel + strlen (CONF_D_PREFIX), '/') == NULL);
}

static gboolean
convert_one (GPtrArray *out, const AbMigrateFile *f, const char *reason, const char *archive,
             GError **error)
{
  gsize len = 0;
  const void *bytes = g_bytes_get_data (f->data, &len);
  g_autofree char *what = g_strdup_printf ("%s in the backup %s", f->rel, archive);
  g_autofree char *converted = NULL;
  if (g_str_has_prefix (f->rel, STATE_PREFIX)
      && !convert_state (f, reason, what, &converted, error))
    return FALSE;
  if (is_config (f->rel) && !convert_config (f, reason, archive, what, &converted, error))
    return FALSE;
  g_ptr_array_add (out, converted ? ab_migrate_file_new (f->rel, converted, strlen (converted), f->mode)
                                  : ab_migrate_file_new (f->rel, bytes, len, f->mode));
  return TRUE;
}

/* What restore writes, in the current formats; a format-1 archive is
 * migrated as a migration would (history.json gets a "migrate" event; a
 * migrated sysroot always has history.json and abdeploy.conf). */
static GPtrArray *
convert_files (GPtrArray *files, gint64 format, const char *archive, GError **error)
{
  g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func ((GDestroyNotify) ab_migrate_file_free);
  g_autofree char *reason = format < AB_BACKUP_FORMAT ? ab_migrate_reason () : NULL;
  for (guint i = 0; i < files->len; i++)
    if (!convert_one (out, files->pdata[i], reason, archive, error))
      return NULL;
  if (reason == NULL)
    return g_steal_pointer (&out);
  g_autofree char *history = NULL;
  if (find_file (out, STATE_PREFIX "history.json") == NULL
      && !ab_migrate_state_text ("history.json", "history.json", NULL, reason, &history, error))
    return NULL;
  if (history != NULL)
    g_ptr_array_add (out, ab_migrate_file_new (STATE_PREFIX "history.json", history, strlen (history),
                                               S_IFREG | 0644));
  if (find_file (out, CONFIG_REL) == NULL)
    {
      g_autofree char *conf = ab_config_stamp_format ("", AB_CONFIG_FORMAT);
      g_ptr_array_add (out, ab_migrate_file_new (CONFIG_REL, conf, strlen (conf), S_IFREG | 0644));
    }
  return g_steal_pointer (&out);
}

static JsonParser *
parse_state_text (const AbMigrateFile *f, GError **error)
{
  g_autofree char *text = text_of (f, error);
  g_autoptr(JsonParser) parser = json_parser_new_immutable ();
  if (text == NULL || !json_parser_load_from_data (parser, text, -1, NULL)
      || !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    return corrupt (error, "%s is not a JSON object", f->rel), NULL;
  return g_steal_pointer (&parser);
}

/* sysroot.json names the os and the backend every command opens with: it
 * must be there, and agree with the archive's backend. Sets A->os. */
static gboolean
check_sysroot_json (AbBackupArchive *a, GError **error)
{
  const AbMigrateFile *f = find_file (a->restored, STATE_PREFIX "sysroot.json");
  if (f == NULL)
    return corrupt (error, "no " STATE_PREFIX "sysroot.json; without it no command opens the sysroot");
  g_autoptr(JsonParser) parser = parse_state_text (f, error);
  JsonObject *o = parser ? json_node_get_object (json_parser_get_root (parser)) : NULL;
  if (o == NULL)
    return FALSE;
  const char *os = string_member (o, "os");
  if (os == NULL || *os == '\0' || g_strcmp0 (string_member (o, "bootloader"), a->bootloader) != 0)
    return corrupt (error, STATE_PREFIX "sysroot.json has no os, or a bootloader other than the "
                    "archive's \"%s\"", a->bootloader);
  a->os = g_strdup (os);
  return TRUE;
}

/* Each slot record describes a commit that the slot's ref pins; the
 * pointer marks no slot without a record bootable. */
static gboolean
parse_records (AbBackupArchive *a, GError **error)
{
  for (int s = 0; s < AB_N_SLOTS; s++)
    {
      const AbMigrateFile *f = find_file (a->restored, record_names[s]);
      g_autofree char *text = f ? text_of (f, error) : NULL;
      g_autoptr(GError) local = NULL;
      if (f != NULL && text == NULL)
        return FALSE;
      if (f != NULL && (a->records[s] = ab_slot_record_from_json (text, &local)) == NULL)
        return corrupt (error, "%s: %s", record_names[s], local->message);
      if (f != NULL && (!ab_is_commit_checksum (a->records[s]->commit)
                        || g_strcmp0 (a->records[s]->commit, a->refs[s]) != 0))
        return corrupt (error, "%s names commit %s, but ref %s is %s", record_names[s],
                        a->records[s]->commit, ref_names[s], a->refs[s] ? a->refs[s] : "unset");
      if (f == NULL && (a->pointer.state[s] == AB_BOOT_STATE_GOOD
                        || a->pointer.state[s] == AB_BOOT_STATE_TRIAL))
        return corrupt (error, "the boot pointer marks slot %s good or trial, but it has no record",
                        ab_slot_name ((AbSlot) s));
    }
  return TRUE;
}

/* ---- the tar archive ---- */

static gboolean
tar_failed (struct archive *ar, GError **error)
{
  const char *why = archive_error_string (ar);
  return corrupt (error, "not a readable tar archive: %s", why ? why : "unexpected end");
}

static const char *
type_name (mode_t type)
{
  switch (type)
    {
    case AE_IFDIR: return "directory";
    case AE_IFCHR: return "character device";
    case AE_IFBLK: return "block device";
    case AE_IFIFO: return "FIFO";
    case AE_IFSOCK: return "socket";
    default: return "file of unknown type";
    }
}

/* The data of the entry being read: exactly SIZE bytes, or a refusal. */
static guint8 *
read_tar_data (struct archive *ar, const char *path, gint64 size, GError **error)
{
  g_autofree guint8 *buf = g_malloc (size > 0 ? (gsize) size : 1);
  gint64 got = 0;
  while (got < size)
    {
      la_ssize_t n = archive_read_data (ar, buf + got, (size_t) (size - got));
      if (n < 0)
        return tar_failed (ar, error), NULL;
      if (n == 0)
        return corrupt (error, "member %s is truncated", path), NULL;
      got += n;
    }
  return g_steal_pointer (&buf);
}

/* The entry E as a member: only a regular file or a symbolic link, of a
 * size within *BUDGET (what the archive may still hold) and the member
 * cap, checked before any byte is read. */
static AbMigrateFile *
read_tar_member (struct archive *ar, struct archive_entry *e, gint64 *budget, GError **error)
{
  const char *path = archive_entry_pathname (e);
  if (path == NULL || *path == '\0')
    return corrupt (error, "a tar member has no path"), NULL;
  if (archive_entry_hardlink (e) != NULL)
    return corrupt (error, "member %s is a hard link to %s; only files and symbolic links are "
                    "restored", path, archive_entry_hardlink (e)), NULL;
  mode_t type = archive_entry_filetype (e);
  if (type != AE_IFREG && type != AE_IFLNK)
    return corrupt (error, "member %s is a %s; only files and symbolic links are restored",
                    path, type_name (type)), NULL;
  gint64 size = archive_entry_size (e);
  if (size < 0 || size > AB_BACKUP_MAX_MEMBER_SIZE || size > *budget
      || (type == AE_IFLNK && size != 0))
    return corrupt (error, "member %s claims %" G_GINT64_FORMAT " bytes, more than a member "
                    "(%d MiB) or the whole archive (%d MiB) may hold", path, size,
                    AB_BACKUP_MAX_MEMBER_SIZE >> 20, AB_BACKUP_MAX_ARCHIVE_SIZE >> 20), NULL;
  guint mode = (archive_entry_perm (e) & 07777) | (type == AE_IFLNK ? S_IFLNK : S_IFREG);
  if (type == AE_IFLNK)
    {
      const char *target = archive_entry_symlink (e);
      if (target == NULL)
        return corrupt (error, "link %s has no target", path), NULL;
      return ab_migrate_file_new (path, target, strlen (target), mode);
    }
  g_autofree guint8 *data = read_tar_data (ar, path, size, error);
  if (data == NULL)
    return NULL;
  *budget -= size;
  return ab_migrate_file_new (path, data, (gsize) size, mode);
}

static gboolean
read_tar_entries (struct archive *ar, GPtrArray *out, GError **error)
{
  gint64 budget = AB_BACKUP_MAX_ARCHIVE_SIZE;
  struct archive_entry *e;
  for (;;)
    {
      int r = archive_read_next_header (ar, &e);
      if (r == ARCHIVE_EOF)
        return TRUE;
      if (r != ARCHIVE_OK)
        return tar_failed (ar, error);
      if (out->len >= AB_BACKUP_MAX_MEMBERS + 2)
        return corrupt (error, "more than %d members", AB_BACKUP_MAX_MEMBERS);
      AbMigrateFile *m = read_tar_member (ar, e, &budget, error);
      if (m == NULL)
        return FALSE;
      g_ptr_array_add (out, m);
    }
}

/* Every entry of the tar archive DATA (plain, gzip or zstd), in order,
 * read in memory. */
static GPtrArray *
read_tar (const guint8 *data, gsize len, GError **error)
{
  if (len > AB_BACKUP_MAX_ARCHIVE_SIZE)
    return corrupt (error, "larger than %d MiB", AB_BACKUP_MAX_ARCHIVE_SIZE >> 20), NULL;
  g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func ((GDestroyNotify) ab_migrate_file_free);
  struct archive *ar = archive_read_new ();
  gboolean ok = archive_read_support_filter_gzip (ar) == ARCHIVE_OK
                && archive_read_support_filter_zstd (ar) == ARCHIVE_OK
                && archive_read_support_format_tar (ar) == ARCHIVE_OK;
  ok = ok ? archive_read_open_memory (ar, data, len) == ARCHIVE_OK || tar_failed (ar, error)
          : tar_failed (ar, error);
  ok = ok && read_tar_entries (ar, out, error);
  archive_read_free (ar);
  return ok ? g_steal_pointer (&out) : NULL;
}

/* The first member is the manifest, the last SHA256SUMS. */
static gboolean
check_tar_frame (GPtrArray *members, GError **error)
{
  const AbMigrateFile *first = members->len ? members->pdata[0] : NULL;
  const AbMigrateFile *last = members->len > 1 ? members->pdata[members->len - 1] : NULL;
  if (first == NULL || !g_str_equal (first->rel, AB_BACKUP_MANIFEST_NAME) || !S_ISREG (first->mode))
    return corrupt (error, "not an abdeploy backup: the tar archive does not begin with "
                    AB_BACKUP_MANIFEST_NAME);
  if (last == NULL || !g_str_equal (last->rel, AB_BACKUP_SUMS_NAME) || !S_ISREG (last->mode))
    return corrupt (error, "the archive does not end with " AB_BACKUP_SUMS_NAME
                    ": it was truncated or changed");
  return TRUE;
}

/* The members of a tar archive (MEMBERS without its first and last),
 * each exactly as the manifest entry in FILES at the same place lists it. */
static GPtrArray *
decode_tar_members (JsonArray *files, GPtrArray *members, GError **error)
{
  if (files == NULL)
    return corrupt (error, "no \"files\" array"), NULL;
  guint n = json_array_get_length (files);
  if (n != members->len - 2)
    return corrupt (error, "the manifest lists %u members, the archive holds %u", n,
                    members->len - 2), NULL;
  g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func ((GDestroyNotify) ab_migrate_file_free);
  for (guint i = 0; i < n; i++)
    {
      const AbMigrateFile *m = members->pdata[i + 1];
      Entry e;
      gboolean link = FALSE;
      if (!check_member_path (m->rel, error) || !read_entry (json_array_get_element (files, i), i,
                                                              FALSE, &e, error)
          || !check_entry (&e, &link, error))
        return NULL;
      if (!g_str_equal (m->rel, e.path) || link != S_ISLNK (m->mode) || (m->mode & 07777) != e.mode)
        return corrupt (error, "member %u of the archive is %s (mode %o), but the manifest lists "
                        "%s (mode %o)", i + 1, m->rel, m->mode & 07777, e.path, (guint) e.mode), NULL;
      gsize len = 0;
      const guchar *bytes = g_bytes_get_data (m->data, &len);
      AbMigrateFile *f = make_member (&e, link, bytes, len, error);
      if (f == NULL)
        return NULL;
      g_ptr_array_add (out, f);
    }
  return check_tree_shape (out, error) ? g_steal_pointer (&out) : NULL;
}

/* SHA256SUMS names the manifest's checksum: with it the manifest (the
 * pointer, the refs) is as checked as every member. */
static gboolean
check_sums (GPtrArray *members, GPtrArray *files, GError **error)
{
  const AbMigrateFile *manifest = members->pdata[0];
  const AbMigrateFile *sums = members->pdata[members->len - 1];
  g_autofree char *msum = g_compute_checksum_for_bytes (G_CHECKSUM_SHA256, manifest->data);
  g_autofree char *want = ab_backup_sums_text (msum, files);
  gsize len = 0;
  const char *got = g_bytes_get_data (sums->data, &len);
  if (len != strlen (want) || memcmp (got, want, len) != 0)
    return corrupt (error, AB_BACKUP_SUMS_NAME " does not match the checksums of "
                    AB_BACKUP_MANIFEST_NAME " and the members: checksum mismatch");
  return TRUE;
}

static JsonParser *
parse_manifest (GPtrArray *members, GError **error)
{
  gsize len = 0;
  const guint8 *data = g_bytes_get_data (((AbMigrateFile *) members->pdata[0])->data, &len);
  if (!check_no_nul (data, len, error))
    return NULL;
  return parse_json (data, len, error);
}

/* ---- both formats ---- */

/* The archive the manifest O describes; MEMBERS: the members of a tar
 * archive, NULL for a JSON archive (O holds the data). */
static AbBackupArchive *
parse_document (JsonObject *o, GPtrArray *members, const char *name, GError **error)
{
  g_autofree char *subject = g_strdup_printf ("The backup %s", name);
  g_autoptr(AbBackupArchive) a = g_new0 (AbBackupArchive, 1);
  JsonArray *files = array_member (o, "files");
  if (!parse_header (a, o, subject, error)
      || !parse_pointer (a, object_member (o, "pointer"), error)
      || !parse_refs (a, object_member (o, "refs"), error)
      || (a->files = members ? decode_tar_members (files, members, error)
                             : decode_members (files, error)) == NULL
      || (members && !check_sums (members, a->files, error))
      || (a->restored = convert_files (a->files, a->format, name, error)) == NULL
      || !check_sysroot_json (a, error)
      || !parse_records (a, error))
    return NULL;
  return g_steal_pointer (&a);
}

/* The archive of abdeploy 0.1.0 and 0.2.0 is one JSON document; a tar
 * archive begins with a member name, gzip's or zstd's magic number. */
static gboolean
is_json_archive (const guint8 *data, gsize len)
{
  return len > 0 && strchr ("{[ \t\r\n", data[0]) != NULL && data[0] != '\0';
}

AbBackupArchive *
ab_backup_parse_archive (const guint8 *data, gsize len, const char *what, GError **error)
{
  const char *name = what ? what : "the backup";
  g_autoptr(GPtrArray) members = NULL;
  g_autoptr(JsonParser) parser = NULL;
  gsize body_len = 0;
  if (is_json_archive (data, len))
    parser = check_trailer (data, len, &body_len, error) && check_no_nul (data, body_len, error)
             ? parse_json (data, body_len, error) : NULL;
  else if ((members = read_tar (data, len, error)) != NULL && check_tar_frame (members, error))
    parser = parse_manifest (members, error);
  if (parser == NULL)
    return NULL;
  JsonObject *o = json_node_get_object (json_parser_get_root (parser));
  return parse_document (o, members, name, error);
}

/* ---- the second check: read back as every command reads ---- */

static gboolean
scratch_failed (GError **error, const char *rel)
{
  return ab_throw_errno_prefix (error, errno, "Writing %s to a scratch directory", rel);
}

/* A scratch file is read back once and removed: no fsync, no crash point. */
static gboolean
write_scratch (int dfd, const AbMigrateFile *f, GError **error)
{
  g_autofree char *parent = g_path_get_dirname (f->rel);
  gsize len = 0;
  const char *bytes = g_bytes_get_data (f->data, &len);
  if (!ab_fs_mkdir_p_at (dfd, parent, 0700, error))
    return FALSE;
  if (S_ISLNK (f->mode))
    {
      g_autofree char *target = g_strndup (bytes, len);
      return symlinkat (target, dfd, f->rel) == 0 || scratch_failed (error, f->rel);
    }
  ab_autofd fd = openat (dfd, f->rel, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return scratch_failed (error, f->rel);
  return ab_fs_write_all (fd, bytes, len) || scratch_failed (error, f->rel);
}

/* The readers of status, rollback, update and health-check, on DFD. */
static gboolean
read_back (int dfd, GError **error)
{
  g_autoptr(AbConfig) config = ab_config_load (dfd, NULL, error);
  ab_autofd state_dfd = config ? ab_fs_opendir_at (dfd, "abdeploy/state", error) : -1;
  if (state_dfd < 0)
    return FALSE;
  for (int s = 0; s < AB_N_SLOTS; s++)
    {
      g_autoptr(AbSlotRecord) rec = NULL;
      if (!ab_slot_record_load (state_dfd, (AbSlot) s, &rec, error))
        return FALSE;
    }
  g_autoptr(AbTransaction) t = NULL;
  g_autoptr(JsonNode) verdict = NULL, update = NULL;
  /* Strict readers: the commands tolerate damage, a restore brings none in. */
  return ab_transaction_load (state_dfd, &t, error)
         && ab_history_check_readable (state_dfd, error)
         && ab_format_read_state_at (state_dfd, "verdict.json", &verdict, NULL, error)
         && ab_format_read_state_at (state_dfd, "update.json", &update, NULL, error);
}

gboolean
ab_backup_archive_check_readable (const AbBackupArchive *a, const char *what, GError **error)
{
  g_autofree char *dir = g_dir_make_tmp ("abdeploy-restore-XXXXXX", error);
  if (dir == NULL)
    return FALSE;
  ab_autofd dfd = ab_fs_opendir_at (AT_FDCWD, dir, error);
  gboolean ok = dfd >= 0 && ab_fs_mkdir_p_at (dfd, "abdeploy/state", 0700, error);
  for (guint i = 0; ok && i < a->restored->len; i++)
    ok = write_scratch (dfd, a->restored->pdata[i], error);
  g_autoptr(GError) local = NULL;
  gboolean readable = ok && read_back (dfd, &local);
  AB_IGNORE_RESULT (ab_fs_rm_rf_at (AT_FDCWD, dir, NULL));
  if (!ok)
    return FALSE;
  if (!readable)
    g_set_error (error, AB_BACKUP_ERROR, AB_BACKUP_ERROR_CORRUPT,
                 "The backup %s holds files that abdeploy could not read after a restore (%s); "
                 "nothing was changed. Use another copy of the backup",
                 what ? what : "", local->message);
  return readable;
}
