/* Operator checks after an upgrade (abdeploy verify) and the version report
 * (abdeploy version). Read-only; never takes the lock. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>
#include "ab-sysroot.h"

typedef struct
{
  char *name;
  gboolean passed;
  char *reason;
} AbCheck;

/* Frees C and everything it owns; NULL is allowed. */
void ab_check_free (AbCheck *c);

typedef struct
{
  gboolean full;        /* every file of the tree, not a sample */
  guint sample_size;    /* files checked when !full; default 256 */
} AbVerifyOptions;

/* Runs every check; returns the list (AbCheck). Fails only when the
 * sysroot cannot be read at all. Reports phase "verify" to sysroot->events
 * for the tree check, with files checked out of those it checks (all the
 * commit's regular files and symlinks with full, else the sample). */
G_GNUC_WARN_UNUSED_RESULT
GPtrArray *ab_verify_run (AbSysroot *sysroot, const AbVerifyOptions *opts, GError **error);
/* Whether every check of CHECKS passed. */
gboolean ab_verify_all_passed (GPtrArray *checks);
/* CHECKS as verify --json prints them. */
JsonNode *ab_verify_to_json (GPtrArray *checks);

/* Compares a slot's tree with its commit: regular files and symlinks of the
 * commit, every one (full) or a random sample. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_verify_tree (AbSysroot *sysroot, AbSlot slot, const char *commit, gboolean full,
                         guint sample_size, guint *out_checked, char **out_first_mismatch,
                         GError **error);

/* The versions of abdeploy and of the running (offline: primary) slot, as
 * version --json prints them. */
G_GNUC_WARN_UNUSED_RESULT
JsonNode *ab_version_report (AbSysroot *sysroot, GError **error);
