/* Health hooks: discovery in the booted tree and a runner with a timeout
 * per hook.
 *
 * Invariants:
 * - A hook can never block the verdict. Each hook runs in its own process
 *   group. Its result is decided when the hook process exits or when its
 *   deadline passes, never by the end of its output (a hook may close its
 *   output and go on; what it started may hold the output open after it
 *   exited). At the deadline the group gets SIGTERM, then SIGKILL after
 *   AB_HOOK_KILL_GRACE_MS; when the hook exits, whatever is left in its
 *   group gets SIGKILL. What escaped the group (setsid) is read for at most
 *   AB_HOOK_DRAIN_AFTER_EXIT_MS more, then its output is no longer read.
 * - Whatever a hook prints, the runner holds at most a fixed amount of it:
 *   the last AB_HOOK_OUTPUT_TAIL_MAX bytes (stored, sanitized, in
 *   verdict.json) and, when echoing, AB_HOOK_ECHO_LINE_MAX bytes of the
 *   current line. Everything else is read and discarded. */
#pragma once

#include <glib.h>
#include "ab-events.h"
#include <json-glib/json-glib.h>

#define AB_HOOKS_ERROR (ab_hooks_error_quark ())
/* The error domain of ab-hooks (the codes of the enum below). */
GQuark ab_hooks_error_quark (void);

typedef enum
{
  AB_HOOKS_ERROR_FAILED,
} AbHooksError;

/* Bytes of a hook's output kept in verdict.json ("output_tail"). */
#define AB_HOOK_OUTPUT_TAIL_MAX 4096
/* Bytes of one output line echoed as "[name] line"; the rest of a longer
 * line is counted, not shown. */
#define AB_HOOK_ECHO_LINE_MAX 4096
/* From SIGTERM to SIGKILL when a hook outlives its deadline. */
#define AB_HOOK_KILL_GRACE_MS 1000
/* How long the runner waits for a hook to be reaped after SIGKILL. */
#define AB_HOOK_REAP_MAX_MS 5000
/* How long output is still read after the hook exited. */
#define AB_HOOK_DRAIN_AFTER_EXIT_MS 500

typedef enum
{
  AB_HOOK_STAGE_REQUIRED,
  AB_HOOK_STAGE_WANTED,
  AB_HOOK_STAGE_GREEN,
  AB_HOOK_STAGE_RED,
} AbHookStage;

typedef enum
{
  AB_HOOK_PASS,
  AB_HOOK_FAIL,
  AB_HOOK_TIMEOUT,
  AB_HOOK_REFUSED,
} AbHookResultKind;

typedef struct
{
  char *name;
  char *path;       /* absolute path of the file that was chosen */
  gboolean use_bash;
} AbHook;

typedef struct
{
  char *name;
  AbHookStage stage;
  AbHookResultKind result;
  double duration_sec;
  int exit_status; /* -1 unless exited */
  int signal;      /* 0 unless killed by a signal */
  guint64 output_bytes; /* all the hook printed */
  char *output_tail;    /* its last AB_HOOK_OUTPUT_TAIL_MAX bytes at most, sanitized */
  char *message;   /* why it was refused or timed out, else NULL */
} AbHookResult;

typedef struct
{
  guint default_timeout_sec;
  GHashTable *timeouts;   /* hook name -> seconds (GUINT_TO_POINTER), [health-timeouts]; may be NULL */
  char **env;             /* environment for hooks (NULL-terminated) */
  gboolean greenboot_compat;
  char **disabled;        /* names of required and wanted hooks not to run (greenboot's
                           * DISABLED_HEALTHCHECKS); NULL: none */
  gboolean echo_output;   /* report "[name] line" as it arrives (a message) */
  AbEventSink *events;    /* where output lines (messages) and failed hooks (notes) go */
} AbHookRunOptions;

/* The shell of *.sh hooks: /bin/bash, or /bin/sh where bash is absent.
 * Tests only: point it at a missing file to run a system without bash. */
extern const char *ab_hooks_bash_path;

/* The name of STAGE ("required", "wanted", "green", "red"). */
const char *ab_hook_stage_name (AbHookStage stage);
/* The name of KIND ("pass", "fail", "timeout", "refused"). */
const char *ab_hook_result_name (AbHookResultKind kind);

/* Frees HOOK and everything it owns; NULL is allowed. */
void ab_hook_free (AbHook *hook);
/* Frees RES and everything it owns; NULL is allowed. */
void ab_hook_result_free (AbHookResult *res);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AbHook, ab_hook_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AbHookResult, ab_hook_result_free)

/* The hooks of STAGE under ROOT (the booted tree), in lexical order of
 * their names; a file in etc replaces one of the same name in usr/lib.
 * Directories and hooks are resolved inside ROOT (RESOLVE_IN_ROOT): a link
 * in the tree, absolute or not, never names a file outside it, and a
 * hook's path is the real path of the file it runs. */
G_GNUC_WARN_UNUSED_RESULT
GPtrArray *ab_hooks_discover (const char *root, AbHookStage stage, gboolean greenboot_compat,
                              GError **error);
/* Runs one hook; failures of the hook are results, not errors. */
AbHookResult *ab_hooks_run_one (const AbHook *hook, AbHookStage stage,
                                const AbHookRunOptions *opts);
/* Runs all hooks of STAGE; appends results to RESULTS. Returns TRUE when
 * all passed. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_hooks_run_stage (const char *root, AbHookStage stage, const AbHookRunOptions *opts,
                             GPtrArray *results, GError **error);

/* RES as the object verdict.json lists. */
JsonNode *ab_hook_result_to_json (const AbHookResult *res);
