/* Shared helpers of the command-line layer (main.c and cli-*.c). */
#pragma once

#include <gio/gio.h>
#include "ab-sysroot.h"

gboolean cli_parse_command (GOptionContext *ctx, const GOptionEntry *entries, int *argc,
                            char ***argv, int *out_code);
int cli_usage_error (GOptionContext *ctx, const char *message);
int cli_fail (GError *error);
AbSysroot *cli_open_sysroot (GError **error);
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
int cli_install (int argc, char **argv);
int cli_daemon (int argc, char **argv);
