/* Internal to the daemon (src/daemon/): its state, shared by the bus
 * glue (ab-daemon.c), authorization (daemon-auth.c), the operations
 * (daemon-ops.c) and the GVariant conversions (daemon-variant.c).
 *
 * Threads: everything here is touched on the main thread only, except
 * `progress_lock` and what it guards, which the operation's worker thread
 * writes (the engine's events) and the main thread reads. */
#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>
#include "daemon/ab-daemon.h"
#include "ab-events.h"
#include "ab-sysroot.h"

typedef struct DaemonOp DaemonOp;

typedef struct
{
  char *phase;
  AbProgressUnit unit;
  guint64 done;
  gint64 total;
} DaemonProgress;

typedef struct
{
  char *sysroot;
  char *config;
  guint idle_timeout_sec;
  GMainLoop *loop;
  GMainContext *ctx;
  GDBusConnection *bus;
  GDBusNodeInfo *node;
  guint registration_id;
  guint owner_id;
  guint idle_id;
  int exit_code;
  gboolean quitting;      /* SIGTERM: quit once the operation completed */
  guint busy;             /* calls being authorized or served in a thread */
  /* properties */
  char *booted;
  char *primary;
  char *last_error;
  char *pin;
  GVariant *progress;     /* a{sv}, owned */
  DaemonOp *op;           /* the running operation, or NULL (Operation "idle") */
  /* the engine's latest progress, written by the worker */
  GMutex progress_lock;
  DaemonProgress latest;
  gboolean flush_pending;
  guint phase_gen;        /* bumped at each phase: flushes of an older one are stale */
} Daemon;

typedef void (*DaemonHandler) (Daemon *d, GDBusMethodInvocation *inv, GVariant *params);

/* ab-daemon.c */
void daemon_emit_changed (Daemon *d, const char *const *names);
void daemon_touch (Daemon *d);
void daemon_refresh (Daemon *d);
void daemon_busy_end (Daemon *d);
AbSysroot *daemon_open_sysroot (Daemon *d, GError **error);

/* daemon-auth.c: calls HANDLER once the caller of INV may do ACTION
 * (uid 0 always; others as polkit decides); replies NotAuthorized
 * otherwise. */
void daemon_authorize (Daemon *d, GDBusMethodInvocation *inv, const char *action,
                       DaemonHandler handler);

/* daemon-ops.c */
const char *daemon_op_name (const DaemonOp *op);
void daemon_start_update (Daemon *d, GDBusMethodInvocation *inv, GVariant *params);
void daemon_start_stage (Daemon *d, GDBusMethodInvocation *inv, GVariant *params);
void daemon_start_deploy (Daemon *d, GDBusMethodInvocation *inv, GVariant *params);
void daemon_start_activate (Daemon *d, GDBusMethodInvocation *inv, GVariant *params);
void daemon_start_rollback (Daemon *d, GDBusMethodInvocation *inv, GVariant *params);
void daemon_cancel (Daemon *d, GDBusMethodInvocation *inv, GVariant *params);
void daemon_mark (Daemon *d, GDBusMethodInvocation *inv, GVariant *params);
void daemon_set_pin (Daemon *d, GDBusMethodInvocation *inv, GVariant *params);
void daemon_check_update (Daemon *d, GDBusMethodInvocation *inv, GVariant *params);
void daemon_get_slots (Daemon *d, GDBusMethodInvocation *inv, GVariant *params);
void daemon_get_status (Daemon *d, GDBusMethodInvocation *inv, GVariant *params);

/* daemon-variant.c */
#define DAEMON_ERROR_NOT_AUTHORIZED "org.abdeploy1.Error.NotAuthorized"
/* The D-Bus error name of the CLI exit code CODE (1..6). */
const char *daemon_error_name (int code);
/* Replies to INV with the named error of ERROR (by its CLI exit code). */
void daemon_return_gerror (GDBusMethodInvocation *inv, const GError *error);
/* A JSON object as a{sv}: null members left out, objects a{sv}, arrays av. */
GVariant *daemon_json_to_vardict (JsonObject *o);
/* PROGRESS as the Progress property's a{sv} (phase, done, total, unit,
 * percent; total and percent absent while the total is unknown). */
GVariant *daemon_progress_to_variant (const DaemonProgress *p);
