#include "config.h"
#include "ab-fetch.h"
#include "ab-fsutil.h"
#include "ab-protocol.h"
#include "ab-util.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

G_DEFINE_QUARK (ab-fetch-error-quark, ab_fetch_error)

typedef struct curl_slist AbCurlHeaders;
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AbCurlHeaders, curl_slist_free_all)

void
ab_fetch_options_init (AbFetchOptions *opts)
{
  memset (opts, 0, sizeof *opts);
  opts->low_speed_bytes = 1024;
  opts->low_speed_time_sec = 20;
  opts->connect_timeout_sec = 15;
  opts->max_attempts = 4;
  opts->backoff_initial_ms = 500;
  opts->backoff_max_ms = 8000;
}

char *
ab_fetch_redact_url (const char *url)
{
  g_autoptr(GUri) uri = g_uri_parse (url, G_URI_FLAGS_HAS_PASSWORD | G_URI_FLAGS_HAS_AUTH_PARAMS,
                                     NULL);
  if (uri == NULL)
    return g_strdup (url);
  /* the user name too: a token is often given as the user name alone */
  return g_uri_to_string_partial (uri, G_URI_HIDE_USERINFO | G_URI_HIDE_AUTH_PARAMS
                                       | G_URI_HIDE_QUERY);
}

char *
ab_fetch_url_join (const char *base, const char *path)
{
  g_autofree char *url = NULL;
  if (strstr (base, "://") == NULL)
    {
      g_autofree char *abs = g_canonicalize_filename (base, NULL);
      url = g_strconcat ("file://", abs, NULL);
    }
  else
    url = g_strdup (base);
  gboolean slash = g_str_has_suffix (url, "/");
  while (*path == '/')
    path++;
  return g_strconcat (url, slash ? "" : "/", path, NULL);
}

typedef struct
{
  const AbFetchOptions *opts;
  int fd;              /* file sink, or -1 */
  GByteArray *buf;     /* memory sink, or NULL */
  guint64 offset;      /* bytes present before this transfer (resume) */
  guint64 received;    /* bytes of this transfer */
  guint64 cap;         /* 0: none */
  gboolean too_big;
  gboolean write_failed;
  gboolean restart;    /* the next attempt starts over: the server ignored the range */
} Sink;

static size_t
on_data (char *ptr, size_t size, size_t nmemb, void *user_data)
{
  Sink *s = user_data;
  size_t n = size * nmemb;
  if (s->cap > 0 && s->offset + s->received + n > s->cap)
    {
      s->too_big = TRUE;
      return 0;
    }
  if (s->buf)
    g_byte_array_append (s->buf, (guint8 *) ptr, (guint) n);
  else
    {
      for (size_t done = 0; done < n;)
        {
          ssize_t w = write (s->fd, ptr + done, n - done);
          if (w < 0 && errno == EINTR)
            continue;
          if (w <= 0)
            {
              s->write_failed = TRUE;
              return 0;
            }
          done += (size_t) w;
        }
    }
  s->received += n;
  return n;
}

static int
on_progress (void *user_data, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
             curl_off_t ulnow)
{
  Sink *s = user_data;
  if (s->opts->cancellable && g_cancellable_is_cancelled (s->opts->cancellable))
    return 1;
  if (s->opts->progress)
    s->opts->progress (s->offset + (guint64) dlnow,
                       s->opts->expected_size ? s->opts->expected_size : s->offset + (guint64) dltotal,
                       s->opts->progress_data);
  return 0;
}

static guint64
cap_of (const AbFetchOptions *opts)
{
  if (opts->expected_size > 0 && (opts->max_bytes == 0 || opts->expected_size < opts->max_bytes))
    return opts->expected_size;
  return opts->max_bytes;
}

/* Milliseconds left before OPTS's deadline (at least 1), or 0: no deadline. */
static long
ms_left (const AbFetchOptions *opts)
{
  if (opts->deadline_us == 0)
    return 0;
  return (long) MAX ((opts->deadline_us - g_get_monotonic_time ()) / 1000, 1);
}

static gboolean
deadline_passed (const AbFetchOptions *opts)
{
  return opts->deadline_us != 0 && g_get_monotonic_time () >= opts->deadline_us;
}

/* HEADERS (the protocol header) must outlive the handle. */
static CURL *
make_handle (const char *url, const AbFetchOptions *opts, Sink *sink, char *errbuf,
             AbCurlHeaders *headers)
{
  CURL *h = curl_easy_init ();
  curl_easy_setopt (h, CURLOPT_URL, url);
  curl_easy_setopt (h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt (h, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt (h, CURLOPT_WRITEDATA, sink);
  curl_easy_setopt (h, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt (h, CURLOPT_XFERINFODATA, sink);
  curl_easy_setopt (h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt (h, CURLOPT_ERRORBUFFER, errbuf);
  /* The body of an HTTP error is not the file: without this, a 404 page
   * would be written into NAME.part and a later resume would append to it. */
  curl_easy_setopt (h, CURLOPT_FAILONERROR, 1L);
  curl_easy_setopt (h, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt (h, CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt (h, CURLOPT_PROTOCOLS_STR, "http,https,file");
  curl_easy_setopt (h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt (h, CURLOPT_CONNECTTIMEOUT, opts->connect_timeout_sec);
  curl_easy_setopt (h, CURLOPT_LOW_SPEED_LIMIT, opts->low_speed_bytes);
  curl_easy_setopt (h, CURLOPT_LOW_SPEED_TIME, opts->low_speed_time_sec);
  curl_easy_setopt (h, CURLOPT_TIMEOUT_MS, ms_left (opts));
  curl_easy_setopt (h, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt (h, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt (h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt (h, CURLOPT_USERAGENT, "abdeploy/" PACKAGE_VERSION);
  if (opts->ca_file)
    curl_easy_setopt (h, CURLOPT_CAINFO, opts->ca_file);
  guint64 cap = cap_of (opts);
  if (cap > 0)
    curl_easy_setopt (h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) cap);
  if (sink->offset > 0)
    curl_easy_setopt (h, CURLOPT_RESUME_FROM_LARGE, (curl_off_t) sink->offset);
  return h;
}

typedef enum
{
  ATTEMPT_OK,
  ATTEMPT_RETRY,
  ATTEMPT_FAIL,
  ATTEMPT_RESTART, /* server ignored the Range request */
} Attempt;

static void
set_too_big (GError **error, const Sink *sink, const char *url)
{
  const AbFetchOptions *o = sink->opts;
  gboolean signed_size = o->expected_size > 0 && cap_of (o) == o->expected_size;
  g_autofree char *key = o->max_bytes_key && !signed_size
                             ? g_strdup_printf ("; raise %s if the file is really that big",
                                                o->max_bytes_key) : NULL;
  g_set_error (error, AB_FETCH_ERROR, AB_FETCH_ERROR_TOO_BIG,
               "%s sent more than the %" G_GUINT64_FORMAT " bytes allowed%s; aborted "
               "(a hostile or broken server)%s", url, cap_of (o),
               signed_size ? " (its size in the signed manifest)" : "", key ? key : "");
}

static void
set_timeout (GError **error, const AbFetchOptions *o, const char *url)
{
  g_set_error (error, AB_FETCH_ERROR, AB_FETCH_ERROR_TIMEOUT,
               "Fetching %s: the time limit %s ran out; aborted (raise it for very slow links)",
               url, o->deadline_key ? o->deadline_key : "of the download");
}

/* A transfer that got no HTTP answer: a missing file (file://), a URL or
 * TLS setup that no retry mends, or a transient network error. */
static Attempt
classify_transport (CURLcode rc, const char *url, const char *errbuf, GError **error)
{
  const char *why = errbuf[0] ? errbuf : curl_easy_strerror (rc);
  if (rc == CURLE_FILE_COULDNT_READ_FILE || rc == CURLE_REMOTE_FILE_NOT_FOUND)
    {
      g_set_error (error, AB_FETCH_ERROR, AB_FETCH_ERROR_NOT_FOUND, "Fetching %s: %s", url, why);
      return ATTEMPT_FAIL;
    }
  if (rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_URL_MALFORMAT
      || rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE)
    {
      g_set_error (error, AB_FETCH_ERROR, AB_FETCH_ERROR_HTTP_TERMINAL, "Fetching %s: %s", url, why);
      return ATTEMPT_FAIL;
    }
  g_set_error (error, AB_FETCH_ERROR, AB_FETCH_ERROR_TRANSIENT, "Fetching %s: %s", url, why);
  return ATTEMPT_RETRY;
}

static Attempt
classify (CURL *h, CURLcode rc, Sink *sink, const char *url, const char *errbuf, GError **error)
{
  long status = 0;
  curl_easy_getinfo (h, CURLINFO_RESPONSE_CODE, &status);
  /* CURLOPT_FAILONERROR: an HTTP status >= 400 ends the transfer this way */
  gboolean answered = rc == CURLE_OK || rc == CURLE_HTTP_RETURNED_ERROR;
  if (sink->too_big || rc == CURLE_FILESIZE_EXCEEDED)
    {
      set_too_big (error, sink, url);
      return ATTEMPT_FAIL;
    }
  if (rc == CURLE_ABORTED_BY_CALLBACK)
    {
      g_set_error (error, AB_FETCH_ERROR, AB_FETCH_ERROR_CANCELLED, "Download of %s cancelled", url);
      return ATTEMPT_FAIL;
    }
  if (rc == CURLE_OPERATION_TIMEDOUT && deadline_passed (sink->opts))
    {
      set_timeout (error, sink->opts, url);
      return ATTEMPT_FAIL;
    }
  if (rc == CURLE_OPERATION_TIMEDOUT)
    {
      g_set_error (error, AB_FETCH_ERROR, AB_FETCH_ERROR_TOO_SLOW,
                   "%s sent less than %ld bytes/s for %ld s; cut off (try again later)", url,
                   sink->opts->low_speed_bytes, sink->opts->low_speed_time_sec);
      return ATTEMPT_RETRY;
    }
  /* libcurl refuses a 200 answer to a Range request with CURLE_RANGE_ERROR */
  if (sink->offset > 0 && (rc == CURLE_RANGE_ERROR || (rc == CURLE_OK && status == 200)))
    return ATTEMPT_RESTART;
  if (rc == CURLE_OK && (status == 0 || (status >= 200 && status < 300)))
    return ATTEMPT_OK;
  if (answered && (status == 404 || status == 410))
    {
      g_set_error (error, AB_FETCH_ERROR, AB_FETCH_ERROR_NOT_FOUND,
                   "%s answered HTTP %ld; not retrying (check the URL)", url, status);
      return ATTEMPT_FAIL;
    }
  if (answered && status >= 400 && status < 500)
    {
      g_set_error (error, AB_FETCH_ERROR, AB_FETCH_ERROR_HTTP_TERMINAL,
                   "%s answered HTTP %ld; not retrying (check the URL and the server's access rules)",
                   url, status);
      return ATTEMPT_FAIL;
    }
  if (answered)
    {
      g_set_error (error, AB_FETCH_ERROR, AB_FETCH_ERROR_TRANSIENT, "%s answered HTTP %ld", url,
                   status);
      return ATTEMPT_RETRY;
    }
  return classify_transport (rc, url, errbuf, error);
}

static gboolean
sleep_backoff (const AbFetchOptions *opts, guint attempt)
{
  guint64 ms = opts->backoff_initial_ms;
  for (guint i = 1; i < attempt && ms < opts->backoff_max_ms; i++)
    ms *= 2;
  ms = MIN (ms, opts->backoff_max_ms);
  g_debug ("retrying in %" G_GUINT64_FORMAT " ms", ms);
  for (guint64 waited = 0; waited < ms; waited += 50)
    {
      if ((opts->cancellable && g_cancellable_is_cancelled (opts->cancellable))
          || deadline_passed (opts))
        return FALSE;
      g_usleep (50 * 1000);
    }
  return TRUE;
}

/* Runs attempts until success, a terminal failure or max_attempts. */
static gboolean
run_transfer (const char *url, const AbFetchOptions *opts, Sink *sink,
              gboolean (*rewind) (Sink *), GError **error)
{
  static gsize curl_ready = 0;
  if (g_once_init_enter (&curl_ready))
    g_once_init_leave (&curl_ready, curl_global_init (CURL_GLOBAL_DEFAULT) == CURLE_OK ? 1 : 2);
  guint attempts = MAX (opts->max_attempts, 1);
  g_autofree char *shown = ab_fetch_redact_url (url);
  g_autoptr(AbCurlHeaders) headers = curl_slist_append (NULL, AB_PROTOCOL_HEADER_LINE);
  for (guint attempt = 1;; attempt++)
    {
      char errbuf[CURL_ERROR_SIZE] = { 0 };
      /* a failed attempt may have got every byte before it failed */
      if (sink->fd >= 0 && opts->expected_size > 0 && sink->offset >= opts->expected_size)
        return TRUE;
      if (deadline_passed (opts))
        {
          set_timeout (error, opts, shown);
          return FALSE;
        }
      sink->received = 0;
      sink->too_big = FALSE;
      CURL *h = make_handle (url, opts, sink, errbuf, headers);
      CURLcode rc = curl_easy_perform (h);
      g_autoptr(GError) local = NULL;
      Attempt a = classify (h, rc, sink, shown, errbuf, &local);
      curl_easy_cleanup (h);
      if (a == ATTEMPT_OK)
        return TRUE;
      if (a == ATTEMPT_RESTART)
        {
          sink->offset = 0;
          sink->restart = TRUE;
          if (!rewind (sink))
            {
              g_set_error (error, AB_FETCH_ERROR, AB_FETCH_ERROR_FAILED, "Restarting %s failed", shown);
              return FALSE;
            }
          continue;
        }
      if (a == ATTEMPT_FAIL || attempt >= attempts || !rewind (sink) || !sleep_backoff (opts, attempt))
        {
          if (a != ATTEMPT_FAIL && opts->cancellable && g_cancellable_is_cancelled (opts->cancellable))
            g_set_error (error, AB_FETCH_ERROR, AB_FETCH_ERROR_CANCELLED,
                         "Download of %s cancelled", shown);
          else if (a != ATTEMPT_FAIL && deadline_passed (opts))
            set_timeout (error, opts, shown);
          else
            g_propagate_error (error, g_steal_pointer (&local));
          return FALSE;
        }
      ab_event_warning (opts->events, "%s; retrying (%u of %u)", local->message, attempt + 1,
                        attempts);
    }
}

static gboolean
rewind_memory (Sink *s)
{
  g_byte_array_set_size (s->buf, 0);
  return TRUE;
}

gboolean
ab_fetch_to_bytes (const char *url, const AbFetchOptions *opts, GBytes **out, GError **error)
{
  g_autoptr(GByteArray) buf = g_byte_array_new ();
  Sink sink = { opts, -1, buf, 0, 0, cap_of (opts), FALSE, FALSE };
  if (!run_transfer (url, opts, &sink, rewind_memory, error))
    return FALSE;
  *out = g_byte_array_free_to_bytes (g_steal_pointer (&buf));
  return TRUE;
}

/* A resumed transfer appends; a failed one keeps what it got, so that the
 * next attempt (or the next call) resumes from there, unless the server
 * ignored the range: then it starts over. */
static gboolean
rewind_file (Sink *s)
{
  struct stat st;
  if (s->restart)
    {
      s->restart = FALSE;
      s->offset = 0;
      return ftruncate (s->fd, 0) == 0 && lseek (s->fd, 0, SEEK_SET) == 0;
    }
  if (fstat (s->fd, &st) < 0)
    return FALSE;
  s->offset = (guint64) st.st_size;
  return TRUE;
}

gboolean
ab_fetch_to_file_at (const char *url, int dfd, const char *name, const AbFetchOptions *opts,
                     GError **error)
{
  g_autofree char *part = g_strconcat (name, ".part", NULL);
  ab_autofd fd = openat (dfd, part, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  struct stat st;
  if (fd < 0 || fstat (fd, &st) < 0)
    {
      g_set_error (error, AB_FETCH_ERROR, AB_FETCH_ERROR_FAILED, "Opening %s: %s", part,
                   g_strerror (errno));
      return FALSE;
    }
  guint64 have = (guint64) st.st_size;
  if (opts->expected_size > 0 && have > opts->expected_size)
    {
      if (ftruncate (fd, 0) < 0)
        return FALSE;
      have = 0;
    }
  if (opts->expected_size == 0 || have < opts->expected_size)
    {
      Sink sink = { opts, fd, NULL, have, 0, cap_of (opts), FALSE, FALSE };
      if (!run_transfer (url, opts, &sink, rewind_file, error))
        return FALSE;
    }
  if (fsync (fd) < 0 || renameat (dfd, part, dfd, name) < 0)
    {
      g_set_error (error, AB_FETCH_ERROR, AB_FETCH_ERROR_FAILED, "Completing %s: %s", name,
                   g_strerror (errno));
      return FALSE;
    }
  return ab_fs_fsync_dir_at (dfd, ".", error);
}

gboolean
ab_fetch_error_is_retryable (const GError *error)
{
  return error != NULL && error->domain == AB_FETCH_ERROR
         && (error->code == AB_FETCH_ERROR_TRANSIENT || error->code == AB_FETCH_ERROR_TOO_SLOW
             || error->code == AB_FETCH_ERROR_CANCELLED || error->code == AB_FETCH_ERROR_TIMEOUT);
}
