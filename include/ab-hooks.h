/* Health hooks: discovery in the booted tree and a runner with a timeout
 * per hook.
 *
 * Invariant: a hook can never block the verdict. Each hook runs in its own
 * process group; when its time is up, or when it exits, the whole group is
 * killed, so neither the hook nor anything it left behind holds the output
 * pipe open. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

#define AB_HOOKS_ERROR (ab_hooks_error_quark ())
GQuark ab_hooks_error_quark (void);

typedef enum
{
  AB_HOOKS_ERROR_FAILED,
} AbHooksError;

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
  char *output_tail;
  char *message;   /* why it was refused or timed out, else NULL */
} AbHookResult;

typedef struct
{
  guint default_timeout_sec;
  GKeyFile *keyfile;      /* [health-timeouts] NAME=SECONDS overrides; may be NULL */
  char **env;             /* environment for hooks (NULL-terminated) */
  gboolean greenboot_compat;
  gboolean echo_output;   /* print "[name] line" as it arrives */
} AbHookRunOptions;

const char *ab_hook_stage_name (AbHookStage stage);
const char *ab_hook_result_name (AbHookResultKind kind);

void ab_hook_free (AbHook *hook);
void ab_hook_result_free (AbHookResult *res);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AbHook, ab_hook_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AbHookResult, ab_hook_result_free)

/* The hooks of STAGE under ROOT (the booted tree), in lexical order of
 * their names; a file in etc replaces one of the same name in usr/lib. */
GPtrArray *ab_hooks_discover (const char *root, AbHookStage stage, gboolean greenboot_compat,
                              GError **error);
/* Runs one hook; failures of the hook are results, not errors. */
AbHookResult *ab_hooks_run_one (const AbHook *hook, AbHookStage stage,
                                const AbHookRunOptions *opts);
/* Runs all hooks of STAGE; appends results to RESULTS. Returns TRUE when
 * all passed. */
gboolean ab_hooks_run_stage (const char *root, AbHookStage stage, const AbHookRunOptions *opts,
                             GPtrArray *results, GError **error);

JsonNode *ab_hook_result_to_json (const AbHookResult *res);
