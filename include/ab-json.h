/* JSON state files and builder helpers shared by every module that writes
 * state (slot records, history, verdicts, transactions, backups). */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

/* Text from outside abdeploy (hook output, a backend's output, file names,
 * URLs, error messages) made fit for a state file: valid UTF-8 (every byte
 * that does not start a valid character becomes U+FFFD), no NUL and no
 * other control character except tab, newline and carriage return (each
 * becomes U+FFFD, as do DEL, the C1 controls and U+2028/U+2029, which some
 * JSON readers mishandle), and at most MAX_BYTES bytes (0: no limit) cut on
 * a character boundary: KEEP_END keeps the end of the text (a tail), else
 * its start. DATA may be NULL (then NULL is returned); LEN -1 means
 * NUL-terminated. */
char *ab_json_sanitize (const char *data, gssize len, gsize max_bytes, gboolean keep_end);
/* TRUE when S needs no change by ab_json_sanitize() (without a limit). */
gboolean ab_json_text_is_clean (const char *s);
/* Replaces, in place, every string value and member name under NODE that
 * is not clean by its ab_json_sanitize()d form. */
void ab_json_sanitize_node (JsonNode *node);
/* Adds KEY with VALUE (sanitized), or null when VALUE is NULL. */
void ab_json_add_string (JsonBuilder *b, const char *key, const char *value);
/* Adds KEY with the integer VALUE. */
void ab_json_add_int (JsonBuilder *b, const char *key, gint64 value);
/* Adds KEY with VALUE when KNOWN, else null (a total not known yet). */
void ab_json_add_int_or_null (JsonBuilder *b, const char *key, gboolean known, gint64 value);
/* Adds KEY with the boolean VALUE. */
void ab_json_add_boolean (JsonBuilder *b, const char *key, gboolean value);
/* Reads DFD/NAME; *out is NULL (and TRUE returned) when the file is missing. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_json_read_at (int dfd, const char *name, JsonNode **out, GError **error);
/* NODE pretty-printed, with a final newline: the text of every state file.
 * Every string in NODE is sanitized first (ab_json_sanitize_node()), so no
 * state file can hold text that a JSON reader refuses. */
char *ab_json_to_text (JsonNode *node);
/* Writes NODE, pretty-printed, with ab_fs_replace_at(). */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_json_write_at (int dfd, const char *name, JsonNode *node, GError **error);
/* Ends B's object and writes it. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_json_write_builder_at (int dfd, const char *name, JsonBuilder *b, GError **error);

/* Typed members of objects read from disk, where any member may hold any
 * type: each returns DEFAULT_VALUE (NULL for the containers) when KEY is
 * missing or holds another type (null included), and never warns. O may be
 * NULL. Numbers must be integers for ab_json_get_int(). */
const char *ab_json_get_string (JsonObject *o, const char *key, const char *default_value);
/* The integer member KEY of O, or DEFAULT_VALUE when O is NULL or KEY is
 * missing or not an integer. */
gint64 ab_json_get_int (JsonObject *o, const char *key, gint64 default_value);
/* The boolean member KEY of O, or DEFAULT_VALUE when missing or not a
 * boolean. */
gboolean ab_json_get_boolean (JsonObject *o, const char *key, gboolean default_value);
/* The array member KEY of O (borrowed), or NULL when missing or not an array. */
JsonArray *ab_json_get_array (JsonObject *o, const char *key);
/* The object member KEY of O (borrowed), or NULL when missing or not an
 * object. */
JsonObject *ab_json_get_object (JsonObject *o, const char *key);
/* Element I of A when it is an object, else NULL. */
JsonObject *ab_json_array_get_object (JsonArray *a, guint i);
/* Element I of A when it is a string, else DEFAULT_VALUE. */
const char *ab_json_array_get_string (JsonArray *a, guint i, const char *default_value);
