/* JSON state files and builder helpers shared by every module that writes
 * state (slot records, history, verdicts, transactions, backups). */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

/* Adds KEY with VALUE, or null when VALUE is NULL. */
void ab_json_add_string (JsonBuilder *b, const char *key, const char *value);
/* Reads DFD/NAME; *out is NULL (and TRUE returned) when the file is missing. */
gboolean ab_json_read_at (int dfd, const char *name, JsonNode **out, GError **error);
/* NODE pretty-printed, with a final newline: the text of every state file. */
char *ab_json_to_text (JsonNode *node);
/* Writes NODE, pretty-printed, with ab_fs_replace_at(). */
gboolean ab_json_write_at (int dfd, const char *name, JsonNode *node, GError **error);
/* Ends B's object and writes it. */
gboolean ab_json_write_builder_at (int dfd, const char *name, JsonBuilder *b, GError **error);
