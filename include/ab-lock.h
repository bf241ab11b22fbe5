/* One writer per sysroot: flock(2) on SYSROOT/abdeploy/lock. The holder
 * writes its pid into the file so that a refused writer can name it.
 * Readers (status) never take the lock; a reader that needs a consistent
 * snapshot (backup) takes it shared, which keeps writers out without
 * writing anything. */
#pragma once

#include <glib.h>

#define AB_LOCK_ERROR (ab_lock_error_quark ())
/* The error domain of ab-lock (the codes of the enum below). */
GQuark ab_lock_error_quark (void);

typedef enum
{
  AB_LOCK_ERROR_FAILED,
  AB_LOCK_ERROR_HELD,
} AbLockError;

/* Returns the lock fd (>= 0); the lock lasts until it is closed. */
int ab_lock_acquire (int abdeploy_dfd, GError **error);
/* The same, waiting up to TIMEOUT_MS (polling) while another process
 * holds it: for a short read-modify-write of state by a command that does
 * not otherwise write. */
int ab_lock_acquire_wait (int abdeploy_dfd, guint timeout_ms, GError **error);
/* The same, shared: fails (AB_LOCK_ERROR_HELD) only while a writer holds
 * the lock; writes nothing into the lock file. */
int ab_lock_acquire_shared (int abdeploy_dfd, GError **error);
