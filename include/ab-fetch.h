/* HTTP(S) and file:// downloads with libcurl, hardened for hostile servers.
 *
 * Invariants:
 * - No download reads more than its cap: max_bytes, or expected_size when
 *   the size is known in advance; the transfer is aborted at the first byte
 *   beyond it.
 * - A server that sends less than low_speed_bytes per second for
 *   low_speed_time_sec is cut off, and no attempt outlives deadline_us, so a
 *   download ends in bounded time.
 * - A cancelled download stops within about a second (libcurl's progress
 *   callback checks the cancellable, also while the server sends nothing).
 * - Error messages name the bound that was hit, the config key that sets
 *   it, and the URL without its user name, password and query
 *   (ab_fetch_redact_url(): the one redaction of every printed or recorded URL).
 * - 4xx answers are terminal (no retry); 5xx answers, timeouts and
 *   connection failures are retried with capped exponential backoff, at
 *   most max_attempts times.
 * - ab_fetch_to_file_at() writes NAME.part and renames it to NAME only when
 *   complete; a later call resumes NAME.part with an HTTP Range request. */
#pragma once

#include <gio/gio.h>
#include "ab-events.h"

#define AB_FETCH_ERROR (ab_fetch_error_quark ())
/* The error domain of ab-fetch (the codes of the enum below). */
GQuark ab_fetch_error_quark (void);

typedef enum
{
  AB_FETCH_ERROR_FAILED,
  AB_FETCH_ERROR_HTTP_TERMINAL, /* 4xx: do not retry */
  AB_FETCH_ERROR_TRANSIENT,     /* 5xx, timeout, connection: retried and still failing */
  AB_FETCH_ERROR_TOO_BIG,
  AB_FETCH_ERROR_TOO_SLOW,
  AB_FETCH_ERROR_CANCELLED,
  AB_FETCH_ERROR_TIMEOUT,       /* deadline_us passed */
  AB_FETCH_ERROR_NOT_FOUND,     /* HTTP 404 or 410, or no such file: not retried */
} AbFetchError;

typedef void (*AbFetchProgressFunc) (guint64 done, guint64 total, gpointer user_data);

typedef struct
{
  guint64 max_bytes;      /* 0: no cap beyond expected_size */
  guint64 expected_size;  /* 0: unknown */
  long low_speed_bytes;   /* default 1024 */
  long low_speed_time_sec; /* default 20 */
  long connect_timeout_sec; /* default 15 */
  guint max_attempts;     /* default 4 */
  guint backoff_initial_ms; /* default 500 */
  guint backoff_max_ms;   /* default 8000 */
  const char *ca_file;    /* extra CA bundle for HTTPS, or NULL */
  const char *max_bytes_key; /* config key of max_bytes, named in errors, or NULL */
  gint64 deadline_us;     /* g_get_monotonic_time() by which it must end; 0: none */
  const char *deadline_key; /* config key of the deadline, named in errors */
  AbFetchProgressFunc progress;
  gpointer progress_data;
  GCancellable *cancellable;
  AbEventSink *events;    /* where a retry is reported (a warning), or NULL */
} AbFetchOptions;

/* Fills OPTS with the defaults: low-speed limit, connect timeout, 4 attempts
 * with backoff, no byte cap, no progress, no cancellable. */
void ab_fetch_options_init (AbFetchOptions *opts);

/* URL without its password, authentication parameters and query, for messages. */
char *ab_fetch_redact_url (const char *url);

/* "http://…", "https://…", "file://…" or a local path: the URL libcurl gets. */
char *ab_fetch_url_join (const char *base, const char *path);

/* Downloads URL into memory, at most opts->max_bytes (0: no cap); *out is
 * only set on success. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_fetch_to_bytes (const char *url, const AbFetchOptions *opts, GBytes **out,
                            GError **error);
/* Downloads URL to DFD/NAME (through NAME.part, resumed by a later call), at
 * most opts->max_bytes; on error NAME is not created. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_fetch_to_file_at (const char *url, int dfd, const char *name,
                              const AbFetchOptions *opts, GError **error);
/* Whether a later retry of the same download may succeed. */
gboolean ab_fetch_error_is_retryable (const GError *error);
