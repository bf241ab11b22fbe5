/* Shared helpers of the command-line layer (main.c and cli-*.c). */
#pragma once

#include <gio/gio.h>
#include "ab-sysroot.h"
#include "cli-progress.h"

gboolean cli_parse_command (GOptionContext *ctx, const GOptionEntry *entries, int *argc,
                            char ***argv, int *out_code);
/* cli_parse_command() for a publish subcommand: the global options are
 * accepted but not offered (hidden from --help). */
gboolean cli_parse_publish_command (GOptionContext *ctx, const GOptionEntry *entries, int *argc,
                                    char ***argv, int *out_code);
/* Prints MESSAGE and CTX's help on stderr; returns AB_EXIT_USAGE (2). */
int cli_usage_error (GOptionContext *ctx, const char *message);
/* The usage error of an argument ARG too many; TAKES says what the command
 * takes (NULL: options only). */
int cli_extra_argument (GOptionContext *ctx, const char *arg, const char *takes);
/* cli_parse_command() for a command that takes options only: an argument
 * left over is the usage error of cli_extra_argument() (in *OUT_CODE). */
gboolean cli_parse_options_only (GOptionContext *ctx, const GOptionEntry *entries, int *argc,
                                 char ***argv, int *out_code);
/* The usage error of ARGV (ARGC words, the command first) when it does not
 * hold exactly one argument WHAT: the extra one, or the missing one. */
int cli_one_argument (GOptionContext *ctx, int argc, char **argv, const char *what);
/* The usage error of a number out of range: "OPTION=VALUE: give ACCEPTED". */
int cli_bad_number (GOptionContext *ctx, const char *option, int value, const char *accepted);
int cli_fail (GError *error);
/* Opens the sysroot of --sysroot; its events go to the text renderer
 * (messages, notes, warnings) until a command hands it its own. */
AbSysroot *cli_open_sysroot (GError **error);
/* The renderer of --progress and --progress-fd for COMMAND; NULL with
 * *OUT_CODE set to the usage error (exit 2) when a value is bad. */
CliProgress *cli_progress_start (GOptionContext *ctx, const char *command,
                                 const CliProgressOptions *o, int *out_code);
/* Ends P's output with ERROR (consumed), prints it, returns its exit code. */
int cli_progress_fail (CliProgress *p, GError *error);
/* cli_open_sysroot() for a command that writes: runs the engine's recovery
 * step (ab_recover(), which completes an interrupted restore) first. */
AbSysroot *cli_open_sysroot_to_write (GError **error);
/* The sysroot of a command with progress: cli_open_sysroot(), or
 * cli_open_sysroot_to_write() when TO_WRITE (its recovery step still
 * reports as text), then every event of the command goes to P. */
AbSysroot *cli_open_sysroot_for (CliProgress *p, gboolean to_write, GError **error);
const char *cli_sysroot_path (void);
/* --config, or NULL. */
const char *cli_config_path (void);
/* A cancellable that the first SIGINT or SIGTERM cancels (a second one ends
 * the process at once). Call before any other thread starts. */
GCancellable *cli_cancel_on_signals (void);

int cli_check_update (int argc, char **argv);
int cli_update (int argc, char **argv);
int cli_resume (int argc, char **argv);
int cli_pin (int argc, char **argv);
int cli_version (int argc, char **argv);
int cli_verify (int argc, char **argv);
int cli_backup (int argc, char **argv);
int cli_restore (int argc, char **argv);
int cli_migrate (int argc, char **argv);
int cli_publish (int argc, char **argv);
/* The publish subcommands' names, NULL-terminated (static). */
const char *const *cli_publish_subcommands (void);
/* abdeploy help publish [SUBCOMMAND]: the usage of publish or that
 * subcommand's --help on stdout; an unknown one is a usage error. */
int cli_publish_help (const char *subcommand);
int cli_install (int argc, char **argv);
int cli_daemon (int argc, char **argv);
