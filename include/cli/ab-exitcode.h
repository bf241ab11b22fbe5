/* Process exit codes (abdeploy(8), EXIT STATUS). */
#pragma once

#include <glib.h>

typedef enum
{
  AB_EXIT_OK = 0,
  AB_EXIT_ERROR = 1,
  AB_EXIT_USAGE = 2,
  AB_EXIT_VERIFY = 3,
  AB_EXIT_LOCKED = 4,
  AB_EXIT_NOTHING_TO_DO = 5,
  AB_EXIT_REFUSED = 6, /* refused by policy: the A/B invariant */
  AB_EXIT_RED = 7,     /* health-check ran and its verdict is red (issue 16) */
} AbExitCode;

/* The exit code of abdeploy(8) for ERROR (its domain and code). */
AbExitCode ab_exit_code_for_error (const GError *error);
