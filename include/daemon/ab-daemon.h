/* The D-Bus front end: `abdeploy daemon`, the service org.abdeploy1 on the
 * system bus (abdeploy-dbus(5)). It drives the same engine as the CLI, one
 * operation at a time, and renders the engine's events as the Progress
 * property and the Completed signal. */
#pragma once

#include <glib.h>

#define AB_DAEMON_BUS_NAME "org.abdeploy1"
#define AB_DAEMON_OBJECT_PATH "/org/abdeploy1"
#define AB_DAEMON_INTERFACE "org.abdeploy1.Manager"
#define AB_DAEMON_API_VERSION 1
/* Seconds without an operation or a call after which the daemon exits. */
#define AB_DAEMON_DEFAULT_IDLE_SEC 60

typedef struct
{
  const char *sysroot;    /* the sysroot, as given (--sysroot; "/" by default) */
  const char *config;     /* --config, or NULL */
  guint idle_timeout_sec; /* 0: never exit when idle */
} AbDaemonOptions;

/* Serves the bus name on the system bus (DBUS_SYSTEM_BUS_ADDRESS when set)
 * until it has been idle for idle_timeout_sec, it loses the name, or
 * SIGTERM/SIGINT (a running operation is cancelled first and completes).
 * Returns the process exit status: 0, or 1 when the bus or the name could
 * not be had (the reason on stderr). */
int ab_daemon_run (const AbDaemonOptions *opts);
