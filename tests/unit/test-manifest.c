#include "config.h"
#include <string.h>
#include "ab-manifest.h"
#include "publisher/ab-manifest-write.h"

#define C1 "1111111111111111111111111111111111111111111111111111111111111111"
#define C2 "2222222222222222222222222222222222222222222222222222222222222222"
#define SHA_UPPER "ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB"
#define SHA "abababababababababababababababababababababababababababababababab"

/* The example of docs/internals.md, with real-looking checksums. */
static const char *example =
  "{\"format\":1,\"channel\":\"stable\",\"serial\":7,"
  "\"issued_at\":\"2026-11-20T23:00:00Z\",\"expires_at\":\"2026-12-20T23:00:00Z\","
  "\"releases\":[{\"version\":\"1.2.0\",\"commit\":\"" C2 "\","
  "\"published_at\":\"2026-11-20T22:00:00Z\",\"deprecated\":null,\"rollout\":100,"
  "\"deltas\":[{\"from\":\"" C1 "\",\"size\":12345,\"files\":["
  "{\"path\":\"deltas/ab/cdef-x/superblock\",\"size\":345,\"sha256\":\"" SHA "\"},"
  "{\"path\":\"deltas/ab/cdef-x/0\",\"size\":12000,\"sha256\":\"" SHA "\"}]}]}]}";

static AbManifest *
parse_ok (const char *text)
{
  g_autoptr(GError) error = NULL;
  AbManifest *m = ab_manifest_parse (text, strlen (text), &error);
  g_assert_no_error (error);
  g_assert_nonnull (m);
  return m;
}

/* Parses EXAMPLE with FROM replaced by TO; expects a FORMAT error whose
 * message contains NEEDLE. */
static void
assert_refused (const char *from, const char *to, const char *needle)
{
  g_assert_nonnull (strstr (example, from));
  g_autoptr(GString) s = g_string_new (example);
  g_string_replace (s, from, to, 1);
  g_autoptr(GError) error = NULL;
  g_autoptr(AbManifest) m = ab_manifest_parse (s->str, s->len, &error);
  g_assert_null (m);
  g_assert_error (error, AB_MANIFEST_ERROR, AB_MANIFEST_ERROR_FORMAT);
  if (strstr (error->message, needle) == NULL)
    g_error ("message \"%s\" lacks \"%s\"", error->message, needle);
}

static void
test_parse_example (void)
{
  g_autoptr(AbManifest) m = parse_ok (example);
  g_assert_cmpstr (m->channel, ==, "stable");
  g_assert_cmpuint (m->serial, ==, 7);
  g_assert_cmpstr (m->expires_at, ==, "2026-12-20T23:00:00Z");
  g_assert_cmpuint (m->releases->len, ==, 1);
  const AbRelease *r = ab_manifest_find (m, "1.2.0");
  g_assert_nonnull (r);
  g_assert_cmpstr (r->commit, ==, C2);
  g_assert_null (r->deprecated);
  g_assert_cmpuint (r->rollout, ==, 100);
  const AbDelta *d = ab_release_find_delta (r, C1);
  g_assert_nonnull (d);
  g_assert_cmpuint (d->size, ==, 12345);
  g_assert_cmpuint (d->files->len, ==, 2);
  g_assert_cmpstr (((AbDeltaFile *) d->files->pdata[0])->path, ==, "deltas/ab/cdef-x/superblock");
  g_assert_null (ab_manifest_find (m, "1.2"));
}

static void
test_roundtrip (void)
{
  g_autoptr(AbManifest) m = ab_manifest_new ("candidate");
  m->serial = 3;
  m->issued_at = g_strdup ("2026-01-01T00:00:00Z");
  m->expires_at = g_strdup ("2026-02-01T00:00:00Z");
  AbRelease *r = ab_release_new ("1.0", C1, "2026-01-01T00:00:00Z", 25);
  r->deprecated = g_strdup ("broken \"wifi\"");
  g_ptr_array_add (m->releases, r);
  AbRelease *r2 = ab_release_new ("2.0", C2, "2026-01-02T00:00:00Z", 100);
  AbDelta *d = ab_delta_new (C1);
  g_ptr_array_add (d->files, ab_delta_file_new ("deltas/x/y/superblock", 10, SHA));
  d->size = 10;
  g_ptr_array_add (r2->deltas, d);
  g_ptr_array_add (m->releases, r2);

  g_autofree char *text = ab_manifest_serialize (m);
  g_autoptr(AbManifest) back = parse_ok (text);
  g_autofree char *again = ab_manifest_serialize (back);
  g_assert_cmpstr (text, ==, again);
  g_assert_cmpstr (ab_manifest_find (back, "1.0")->deprecated, ==, "broken \"wifi\"");
  g_assert_cmpuint (ab_manifest_find (back, "1.0")->rollout, ==, 25);
  /* Members come in the documented order. */
  g_assert_true (strstr (text, "\"format\"") < strstr (text, "\"channel\""));
  g_assert_true (strstr (text, "\"serial\"") < strstr (text, "\"releases\""));

  g_autoptr(AbRelease) copy = ab_release_copy (r2);
  g_assert_cmpstr (copy->commit, ==, C2);
  g_assert_cmpuint (copy->deltas->len, ==, 1);
  g_assert_true (copy->deltas->pdata[0] != r2->deltas->pdata[0]);
}

static void
test_unknown_format (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GString) s = g_string_new (example);
  g_string_replace (s, "\"format\":1", "\"format\":2", 1);
  g_autoptr(AbManifest) m = ab_manifest_parse (s->str, s->len, &error);
  g_assert_null (m);
  g_assert_error (error, AB_MANIFEST_ERROR, AB_MANIFEST_ERROR_FORMAT);
  g_assert_cmpstr (error->message, ==,
                   "manifest format 2 is not known to this abdeploy, which reads format 1; "
                   "update abdeploy");
}

static void
test_format_checked_first (void)
{
  /* A newer format that also changed other fields is reported as a newer
   * format, not as whatever else is different. */
  const char *text = "{\"format\":3,\"channels\":[]}";
  g_autoptr(GError) error = NULL;
  g_autoptr(AbManifest) m = ab_manifest_parse (text, strlen (text), &error);
  g_assert_error (error, AB_MANIFEST_ERROR, AB_MANIFEST_ERROR_FORMAT);
  g_assert_nonnull (strstr (error->message, "format 3 is not known"));
}

static void
test_malformed (void)
{
  assert_refused ("\"format\":1", "\"format\":\"1\"", "format");
  assert_refused ("\"format\":1,", "", "format");
  assert_refused ("\"serial\":7", "\"serial\":\"7\"", "serial is not a non-negative integer");
  assert_refused ("\"serial\":7", "\"serial\":-1", "serial");
  assert_refused ("\"serial\":7", "\"serial\":7.5", "serial");
  assert_refused ("\"channel\":\"stable\"", "\"channel\":\"../x\"", "channel");
  assert_refused ("\"channel\":\"stable\"", "\"channel\":7", "channel");
  assert_refused ("\"expires_at\":\"2026-12-20T23:00:00Z\"", "\"expires_at\":\"next week\"",
                  "expires_at is not an ISO 8601 time");
  assert_refused ("\"issued_at\":\"2026-11-20T23:00:00Z\",", "", "issued_at is missing");
  assert_refused ("\"commit\":\"" C2 "\"", "\"commit\":\"" "ABCD" "\"", "releases[0].commit");
  g_autofree char *upper = g_strnfill (64, 'A');
  g_autofree char *bad_commit = g_strdup_printf ("\"commit\":\"%s\"", upper);
  assert_refused ("\"commit\":\"" C2 "\"", bad_commit, "releases[0].commit");
  assert_refused ("\"rollout\":100", "\"rollout\":0", "releases[0].rollout is not a percentage");
  assert_refused ("\"rollout\":100", "\"rollout\":101", "rollout");
  assert_refused ("\"rollout\":100", "\"rollout\":\"100\"", "rollout");
  assert_refused ("\"deprecated\":null", "\"deprecated\":true", "releases[0].deprecated");
  assert_refused ("\"releases\":[", "\"releases\":7,\"x\":[", "releases is not an array");
  assert_refused ("\"size\":12345", "\"size\":12346", "is not the sum of the sizes");
  assert_refused ("deltas/ab/cdef-x/0", "deltas/../../etc/passwd", "releases[0].deltas[0].files[1].path");
  assert_refused ("deltas/ab/cdef-x/0", "/etc/passwd", "path");
  assert_refused ("\"from\":\"" C1 "\"", "\"from\":\"" C2 "\"", "own commit");
  assert_refused ("\"sha256\":\"" SHA "\"", "\"sha256\":\"abc\"", "sha256");
  assert_refused ("\"version\":\"1.2.0\"", "\"version\":\"\"", "releases[0].version");
  assert_refused ("{\"format\"", "[{\"format\"", "not JSON");
}

/* File sizes whose sum wraps around 64 bits must not pass as a small
 * signed total (found by tests/fuzz/fuzz-delta). */
static void
test_delta_size_overflow (void)
{
  g_autoptr(GString) s = g_string_new (example);
  g_string_replace (s, "\"size\":12345", "\"size\":0", 1);
  g_string_replace (s, "\"size\":345", "\"size\":9223372036854775807", 1);
  g_string_replace (s, "\"size\":12000,\"sha256\":\"" SHA "\"}",
                    "\"size\":9223372036854775807,\"sha256\":\"" SHA "\"},"
                    "{\"path\":\"deltas/ab/cdef-x/1\",\"size\":2,\"sha256\":\"" SHA "\"}", 1);
  g_autoptr(GError) error = NULL;
  g_autoptr(AbManifest) m = ab_manifest_parse (s->str, s->len, &error);
  g_assert_null (m);
  g_assert_error (error, AB_MANIFEST_ERROR, AB_MANIFEST_ERROR_FORMAT);
  g_assert_nonnull (strstr (error->message, "releases[0].deltas[0].size"));
  g_assert_nonnull (strstr (error->message, "overflow"));
}

/* The serial is a bounded integer (issue 11): 2^53 - 1 at most, and a
 * number too large for an integer is not read as some other value. */
static void
test_serial_bounds (void)
{
  g_autoptr(GString) s = g_string_new (example);
  g_string_replace (s, "\"serial\":7", "\"serial\":9007199254740991", 1);
  g_autoptr(AbManifest) m = parse_ok (s->str);
  g_assert_cmpuint (m->serial, ==, AB_MANIFEST_MAX_SERIAL);
  assert_refused ("\"serial\":7", "\"serial\":9007199254740992", "serial is larger than");
  assert_refused ("\"serial\":7", "\"serial\":9223372036854775807", "serial");
  assert_refused ("\"serial\":7", "\"serial\":18446744073709551616", "serial");
  assert_refused ("\"serial\":7", "\"serial\":99999999999999999999999", "serial");
  assert_refused ("\"serial\":7", "\"serial\":1e3", "serial");
}

static void
test_not_an_object (void)
{
  const char *texts[] = { "[]", "17", "", "{", "null" };
  for (guint i = 0; i < G_N_ELEMENTS (texts); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(AbManifest) m = ab_manifest_parse (texts[i], strlen (texts[i]), &error);
      g_assert_null (m);
      g_assert_error (error, AB_MANIFEST_ERROR, AB_MANIFEST_ERROR_FORMAT);
    }
}

static void
test_duplicate_version (void)
{
  const char *text =
    "{\"format\":1,\"channel\":\"dev\",\"serial\":1,\"issued_at\":\"2026-01-01T00:00:00Z\","
    "\"expires_at\":\"2026-02-01T00:00:00Z\",\"releases\":["
    "{\"version\":\"1.0\",\"commit\":\"" C1 "\",\"published_at\":\"2026-01-01T00:00:00Z\"},"
    "{\"version\":\"1.0\",\"commit\":\"" C2 "\",\"published_at\":\"2026-01-01T00:00:00Z\"}]}";
  g_autoptr(GError) error = NULL;
  g_autoptr(AbManifest) m = ab_manifest_parse (text, strlen (text), &error);
  g_assert_error (error, AB_MANIFEST_ERROR, AB_MANIFEST_ERROR_FORMAT);
  g_assert_nonnull (strstr (error->message, "releases[1] repeats a version"));
}

static void
test_optional_members (void)
{
  /* deprecated, rollout and deltas may be absent; unknown members are ignored. */
  const char *text =
    "{\"format\":1,\"channel\":\"dev\",\"serial\":0,\"issued_at\":\"2026-01-01T00:00:00+01:00\","
    "\"expires_at\":\"2026-02-01T00:00:00Z\",\"future\":{\"x\":1},\"releases\":["
    "{\"version\":\"1.0\",\"commit\":\"" C1 "\",\"published_at\":\"2026-01-01T00:00:00Z\","
    "\"remark\":\"hi\"}]}";
  g_autoptr(AbManifest) m = parse_ok (text);
  const AbRelease *r = ab_manifest_find (m, "1.0");
  g_assert_cmpuint (r->rollout, ==, 100);
  g_assert_null (r->deprecated);
  g_assert_cmpuint (r->deltas->len, ==, 0);
}

/* Issue 17: the members added after 0.2.0 (top-level protocol; per release
 * promoted_from, security, notes) are optional, so the parser of 0.2.0,
 * which ignores members it does not know, reads such a manifest (N-1). */
static const char *issue17_example =
  "{\"format\":1,\"protocol\":1,\"channel\":\"stable\",\"serial\":9,"
  "\"issued_at\":\"2026-11-20T23:00:00Z\",\"expires_at\":\"2026-12-20T23:00:00Z\","
  "\"releases\":[{\"version\":\"2.1.0\",\"commit\":\"" C2 "\","
  "\"published_at\":\"2026-11-20T22:00:00Z\",\"deprecated\":null,\"rollout\":100,"
  "\"promoted_from\":\"2.1.0-rc.2\",\"security\":true,"
  "\"notes\":{\"changed\":\"Fixes the TLS stack.\",\"action\":\"Nothing.\","
  "\"rollback\":\"abdeploy rollback\"},\"deltas\":[]},"
  "{\"version\":\"2.0.0\",\"commit\":\"" C1 "\","
  "\"published_at\":\"2026-11-19T22:00:00Z\",\"deprecated\":null,\"rollout\":100,"
  "\"deltas\":[]}]}";

static void
test_issue17_members (void)
{
  g_autoptr(AbManifest) m = parse_ok (issue17_example);
  g_assert_cmpuint (m->releases->len, ==, 2);
  const AbRelease *r = ab_manifest_find (m, "2.1.0");
  g_assert_nonnull (r);
  g_assert_cmpstr (r->commit, ==, C2);
  g_assert_cmpstr (ab_manifest_newest (m)->version, ==, "2.1.0");
  /* This reader keeps them. */
  g_assert_cmpuint (m->protocol, ==, 1);
  g_assert_cmpstr (r->promoted_from, ==, "2.1.0-rc.2");
  g_assert_true (r->security);
  g_assert_cmpstr (r->notes->changed, ==, "Fixes the TLS stack.");
  g_assert_cmpstr (r->notes->action, ==, "Nothing.");
  g_assert_cmpstr (r->notes->rollback, ==, "abdeploy rollback");
  const AbRelease *old = ab_manifest_find (m, "2.0.0");
  g_assert_null (old->promoted_from);
  g_assert_false (old->security);
  g_assert_null (old->notes);
  /* Written back the same, with "protocol" on top and the optional
   * members only where they are set. */
  g_autofree char *text = ab_manifest_serialize (m);
  g_autoptr(AbManifest) back = parse_ok (text);
  g_autofree char *again = ab_manifest_serialize (back);
  g_assert_cmpstr (text, ==, again);
  g_assert_nonnull (strstr (text, "\"protocol\" : 1"));
  g_autoptr(GString) occ = g_string_new (text);
  g_assert_cmpuint (g_string_replace (occ, "\"security\"", "", 0), ==, 1);
  g_assert_cmpuint (g_string_replace (occ, "\"promoted_from\"", "", 0), ==, 1);
  g_assert_cmpuint (g_string_replace (occ, "\"notes\"", "", 0), ==, 1);
  g_autoptr(AbManifest) empty = ab_manifest_new ("dev");
  empty->issued_at = g_strdup ("2026-01-01T00:00:00Z");
  empty->expires_at = g_strdup ("2026-02-01T00:00:00Z");
  g_autofree char *bare = ab_manifest_serialize (empty);
  g_autoptr(AbManifest) bare_back = parse_ok (bare);
  g_assert_cmpuint (bare_back->protocol, ==, AB_MANIFEST_PROTOCOL);
  g_autoptr(AbRelease) copy = ab_release_copy (r);
  g_assert_cmpstr (copy->notes->rollback, ==, "abdeploy rollback");
  g_assert_true (copy->notes != r->notes);
  g_assert_cmpstr (copy->promoted_from, ==, "2.1.0-rc.2");
  g_assert_true (copy->security);
}

/* Parses ISSUE17_EXAMPLE with FROM replaced by TO; expects NEEDLE in the
 * error (or success when NEEDLE is NULL). */
static void
issue17_variant (const char *from, const char *to, const char *needle)
{
  g_autoptr(GString) s = g_string_new (issue17_example);
  g_assert_cmpuint (g_string_replace (s, from, to, 1), ==, 1);
  g_autoptr(GError) error = NULL;
  g_autoptr(AbManifest) m = ab_manifest_parse (s->str, s->len, &error);
  if (needle == NULL)
    {
      g_assert_no_error (error);
      return;
    }
  g_assert_null (m);
  g_assert_error (error, AB_MANIFEST_ERROR, AB_MANIFEST_ERROR_FORMAT);
  if (strstr (error->message, needle) == NULL)
    g_error ("message \"%s\" lacks \"%s\"", error->message, needle);
}

static void
test_issue17_malformed (void)
{
  issue17_variant ("\"protocol\":1", "\"protocol\":\"1\"", "protocol is not a non-negative");
  issue17_variant ("\"protocol\":1", "\"protocol\":0", "protocol is not a positive");
  issue17_variant ("\"security\":true", "\"security\":1", "releases[0].security is not true");
  issue17_variant ("\"security\":true", "\"security\":false", NULL);
  issue17_variant ("\"promoted_from\":\"2.1.0-rc.2\"", "\"promoted_from\":\"2.1.0\"",
                   "releases[0].promoted_from is the release's own version");
  issue17_variant ("\"promoted_from\":\"2.1.0-rc.2\"", "\"promoted_from\":null", NULL);
  issue17_variant ("\"promoted_from\":\"2.1.0-rc.2\"", "\"promoted_from\":7",
                   "releases[0].promoted_from is not a non-empty string");
  issue17_variant ("\"action\":\"Nothing.\",", "", "releases[0].notes.action is missing");
  issue17_variant ("\"notes\":{", "\"notes\":\"see the web\",\"x\":{",
                   "releases[0].notes is not an object");
  g_autofree char *big = g_strdup_printf ("\"changed\":\"%0*d\"", AB_MANIFEST_NOTE_PART_MAX + 1, 0);
  issue17_variant ("\"changed\":\"Fixes the TLS stack.\"", big,
                   "releases[0].notes.changed is longer than 2048 bytes");
}

/* A manifest that needs a newer protocol is refused as such, whatever else
 * it holds (here: no header, releases not an array); a bad type is
 * malformed (issue 17). */
static void
test_protocol (void)
{
  g_autoptr(GError) error = NULL;
  const char *text = "{\"format\":1,\"protocol\":2,\"channel\":\"stable\",\"releases\":7}";
  g_autoptr(AbManifest) m = ab_manifest_parse (text, strlen (text), &error);
  g_assert_null (m);
  g_assert_error (error, AB_MANIFEST_ERROR, AB_MANIFEST_ERROR_PROTOCOL);
  g_assert_nonnull (strstr (error->message, "update abdeploy to read protocol 2"));
  assert_refused ("\"format\":1,", "\"format\":1,\"protocol\":\"2\",", "protocol");
  assert_refused ("\"format\":1,", "\"format\":1,\"protocol\":0,", "protocol");
}

static void
test_latest (void)
{
  g_autoptr(AbManifest) m = ab_manifest_new ("stable");
  g_assert_null (ab_manifest_latest (m));
  const char *versions[] = { "1.9.0", "2.0.0", "1.10.0" };
  for (guint i = 0; i < G_N_ELEMENTS (versions); i++)
    g_ptr_array_add (m->releases, ab_release_new (versions[i], C1, "2026-01-01T00:00:00Z", 100));
  g_assert_cmpstr (ab_manifest_latest (m)->version, ==, "2.0.0");
  ab_manifest_lookup (m, "2.0.0")->deprecated = g_strdup ("bricks the wifi");
  g_assert_cmpstr (ab_manifest_latest (m)->version, ==, "1.10.0");
  g_assert_cmpstr (ab_manifest_newest (m)->version, ==, "2.0.0");
}

static void
test_newest (void)
{
  g_autoptr(AbManifest) m = ab_manifest_new ("dev");
  g_assert_null (ab_manifest_newest (m));
  const char *versions[] = { "1.9", "1.10", "1.2", "1.10-rc1", "0.99" };
  for (guint i = 0; i < G_N_ELEMENTS (versions); i++)
    g_ptr_array_add (m->releases, ab_release_new (versions[i], C1, "2026-01-01T00:00:00Z", 100));
  g_assert_cmpstr (ab_manifest_newest (m)->version, ==, "1.10-rc1");
  g_ptr_array_remove_index (m->releases, 3);
  g_assert_cmpstr (ab_manifest_newest (m)->version, ==, "1.10");
  ab_manifest_lookup (m, "1.2")->rollout = 5;
  g_assert_cmpuint (ab_manifest_find (m, "1.2")->rollout, ==, 5);
}

static void
test_check_fresh (void)
{
  g_autoptr(AbManifest) m = parse_ok (example);
  g_autoptr(GDateTime) before = g_date_time_new_from_iso8601 ("2026-12-01T00:00:00Z", NULL);
  g_autoptr(GDateTime) after = g_date_time_new_from_iso8601 ("2026-12-21T00:00:00Z", NULL);
  g_autoptr(GError) error = NULL;
  g_assert_true (ab_manifest_check_fresh (m, before, 7, &error));
  g_assert_true (ab_manifest_check_fresh (m, before, 0, &error));
  g_assert_no_error (error);
  g_assert_false (ab_manifest_check_fresh (m, before, 8, &error));
  g_assert_error (error, AB_MANIFEST_ERROR, AB_MANIFEST_ERROR_REPLAY);
  g_clear_error (&error);
  g_assert_false (ab_manifest_check_fresh (m, after, 0, &error));
  g_assert_error (error, AB_MANIFEST_ERROR, AB_MANIFEST_ERROR_EXPIRED);
}

static void
test_channel_names (void)
{
  g_assert_true (ab_manifest_channel_name_is_valid ("stable"));
  g_assert_true (ab_manifest_channel_name_is_valid ("x86_64-beta.2"));
  g_assert_false (ab_manifest_channel_name_is_valid (""));
  g_assert_false (ab_manifest_channel_name_is_valid (".hidden"));
  g_assert_false (ab_manifest_channel_name_is_valid ("a/b"));
  g_assert_false (ab_manifest_channel_name_is_valid ("a b"));
  g_assert_false (ab_manifest_channel_name_is_valid (NULL));
}

/* Issue 18: the optional "full_delta" (a delta without "from"). */
static void
test_full_delta (void)
{
  const char *fd = ",\"full_delta\":{\"size\":7,\"files\":[{\"path\":\"deltas/Ab/cd/superblock\","
                   "\"size\":7,\"sha256\":\"" SHA "\"}]}}]}";
  g_autoptr(GString) s = g_string_new (example);
  g_string_truncate (s, s->len - 3); /* "}]}" */
  g_string_append (s, fd);
  g_autoptr(AbManifest) m = parse_ok (s->str);
  const AbRelease *r = ab_manifest_find (m, "1.2.0");
  g_assert_nonnull (r->full_delta);
  g_assert_null (r->full_delta->from);
  g_assert_cmpuint (r->full_delta->size, ==, 7);
  g_assert_cmpuint (r->full_delta->files->len, ==, 1);
  /* written back the same, without "from"; copied deeply */
  g_autofree char *text = ab_manifest_serialize (m);
  g_autoptr(AbManifest) back = parse_ok (text);
  g_autofree char *again = ab_manifest_serialize (back);
  g_assert_cmpstr (text, ==, again);
  g_autoptr(AbRelease) copy = ab_release_copy (r);
  g_assert_true (copy->full_delta != r->full_delta);
  g_assert_cmpuint (copy->full_delta->size, ==, 7);
  /* absent when not set */
  g_autoptr(AbManifest) plain = parse_ok (example);
  g_assert_null (ab_manifest_find (plain, "1.2.0")->full_delta);
  g_autofree char *plain_text = ab_manifest_serialize (plain);
  g_assert_null (strstr (plain_text, "full_delta"));
  /* malformed: a "from", a wrong size, no file, not an object */
  const char *bad[][2] = {
    { "\"full_delta\":{\"size\"", "\"full_delta\":{\"from\":\"" C1 "\",\"size\"" },
    { "\"full_delta\":{\"size\":7", "\"full_delta\":{\"size\":8" },
    { "deltas/Ab/cd/superblock", "../superblock" },
    { "\"full_delta\":{\"size\":7,", "\"full_delta\":7,\"x\":{" },
  };
  const char *needle[] = { "full_delta has a \"from\"", "full_delta.size",
                           "full_delta.files[0].path", "full_delta is not an object" };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(GString) b = g_string_new (s->str);
      g_string_replace (b, bad[i][0], bad[i][1], 1);
      g_autoptr(GError) error = NULL;
      g_autoptr(AbManifest) no = ab_manifest_parse (b->str, b->len, &error);
      g_assert_null (no);
      if (strstr (error->message, needle[i]) == NULL)
        g_error ("message \"%s\" lacks \"%s\"", error->message, needle[i]);
    }
}

/* Issue 18: the optional "packs" of a release. */
#define PACK0 "abdeploy/packs/" C2 "/0.tar.zst"
#define PACK1 "abdeploy/packs/" C2 "/1.tar.zst"

/* EXAMPLE with "packs" (two files of 3 and 4 bytes) added to its release. */
static GString *
example_with_packs (void)
{
  const char *packs = ",\"packs\":{\"size\":7,\"unpacked\":100,\"files\":["
                      "{\"path\":\"" PACK0 "\",\"size\":3,\"sha256\":\"" SHA "\"},"
                      "{\"path\":\"" PACK1 "\",\"size\":4,\"sha256\":\"" SHA "\"}]}}]}";
  GString *s = g_string_new (example);
  g_string_truncate (s, s->len - 3); /* "}]}" */
  g_string_append (s, packs);
  return s;
}

static void
test_packs (void)
{
  g_autoptr(GString) s = example_with_packs ();
  g_autoptr(AbManifest) m = parse_ok (s->str);
  const AbRelease *r = ab_manifest_find (m, "1.2.0");
  g_assert_nonnull (r->packs);
  g_assert_cmpuint (r->packs->size, ==, 7);
  g_assert_cmpuint (r->packs->unpacked, ==, 100);
  g_assert_cmpuint (r->packs->files->len, ==, 2);
  g_assert_cmpstr (((AbDeltaFile *) r->packs->files->pdata[1])->path, ==, PACK1);
  g_autofree char *p1 = ab_packs_path (C2, 1);
  g_assert_cmpstr (p1, ==, PACK1);
  /* written back the same; copied deeply */
  g_autofree char *text = ab_manifest_serialize (m);
  g_assert_nonnull (strstr (text, "\"unpacked\""));
  g_autoptr(AbManifest) back = parse_ok (text);
  g_autofree char *again = ab_manifest_serialize (back);
  g_assert_cmpstr (text, ==, again);
  g_autoptr(AbRelease) copy = ab_release_copy (r);
  g_assert_true (copy->packs != r->packs && copy->packs->files != r->packs->files);
  g_assert_cmpuint (copy->packs->unpacked, ==, 100);
  g_assert_cmpuint (copy->packs->files->len, ==, 2);
  /* absent or null: none, and none written */
  g_autoptr(AbManifest) plain = parse_ok (example);
  g_assert_null (ab_manifest_find (plain, "1.2.0")->packs);
  g_autofree char *plain_text = ab_manifest_serialize (plain);
  g_assert_null (strstr (plain_text, "packs"));
  g_string_replace (s, "\"packs\":{", "\"packs\":null,\"x\":{", 1);
  g_autoptr(AbManifest) null_packs = parse_ok (s->str);
  g_assert_null (ab_manifest_find (null_packs, "1.2.0")->packs);
}

/* Each malformed "packs" is refused with an error naming the member. */
static void
test_packs_malformed (void)
{
  const char *bad[][3] = {
    { "\"packs\":{\"size\":7,", "\"packs\":7,\"x\":{\"size\":7,", "releases[0].packs is not an object" },
    { "\"size\":7,\"unpacked\"", "\"size\":8,\"unpacked\"", "releases[0].packs.size is not the sum" },
    { "\"unpacked\":100", "\"unpacked\":0", "releases[0].packs.unpacked is 0" },
    { "\"unpacked\":100,", "", "releases[0].packs.unpacked is missing" },
    { "\"size\":7,\"unpacked\"", "\"unpacked\"", "releases[0].packs.size is missing" },
    { "\"unpacked\":100", "\"unpacked\":-1", "releases[0].packs.unpacked is not a non-negative" },
    /* paths: another commit, a wrong index, a traversal, another suffix */
    { PACK1, "abdeploy/packs/" C1 "/1.tar.zst", "releases[0].packs.files[1].path is not" },
    { PACK1, "abdeploy/packs/" C2 "/2.tar.zst", "releases[0].packs.files[1].path is not" },
    { PACK0, "abdeploy/packs/" C2 "/../0.tar.zst", "releases[0].packs.files[0].path is not" },
    { PACK0, "abdeploy/packs/" C2 "/0.tar", "releases[0].packs.files[0].path is not" },
    { PACK0, "abdeploy/packs/" C2 "/00.tar.zst", "releases[0].packs.files[0].path is not" },
    { "\"size\":4,\"sha256\":\"" SHA, "\"size\":4,\"sha256\":\"AB", "releases[0].packs.files[1].sha256" },
    { "\"size\":4,", "\"size\":\"4\",", "releases[0].packs.files[1].size" },
    { "100,\"files\":[{", "100,\"files\":[],\"x\":[{", "releases[0].packs.files is empty" },
    { "100,\"files\":[{", "100,\"files\":[7,{", "releases[0].packs.files[0] is not an object" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(GString) b = example_with_packs ();
      g_assert_nonnull (strstr (b->str, bad[i][0]));
      g_string_replace (b, bad[i][0], bad[i][1], 1);
      g_autoptr(GError) error = NULL;
      g_autoptr(AbManifest) no = ab_manifest_parse (b->str, b->len, &error);
      g_assert_null (no);
      g_assert_error (error, AB_MANIFEST_ERROR, AB_MANIFEST_ERROR_FORMAT);
      if (strstr (error->message, bad[i][2]) == NULL)
        g_error ("case %u: message \"%s\" lacks \"%s\"", i, error->message, bad[i][2]);
    }
}

/* 64 packs are the most; 65 are refused. */
static void
test_packs_count (void)
{
  for (guint n = AB_PACKS_MAX_FILES; n <= AB_PACKS_MAX_FILES + 1; n++)
    {
      g_autoptr(GString) s = g_string_new (example);
      g_string_truncate (s, s->len - 3);
      g_string_append_printf (s, ",\"packs\":{\"size\":%u,\"unpacked\":1,\"files\":[", n);
      for (guint i = 0; i < n; i++)
        {
          g_autofree char *p = ab_packs_path (C2, i);
          g_string_append_printf (s, "%s{\"path\":\"%s\",\"size\":1,\"sha256\":\"" SHA "\"}",
                                  i ? "," : "", p);
        }
      g_string_append (s, "]}}]}");
      g_autoptr(GError) error = NULL;
      g_autoptr(AbManifest) m = ab_manifest_parse (s->str, s->len, &error);
      if (n == AB_PACKS_MAX_FILES)
        g_assert_no_error (error);
      else
        g_assert_error (error, AB_MANIFEST_ERROR, AB_MANIFEST_ERROR_FORMAT);
      if (n > AB_PACKS_MAX_FILES)
        g_assert_nonnull (strstr (error->message, "releases[0].packs.files lists more than 64"));
    }
}

/* Issue 18: the optional "size_index" of a release: the commit's own
 * index file, 1 byte to 64 MiB, a SHA-256; anything else is refused
 * naming the member. */
static void
test_size_index (void)
{
  const char *si = ",\"size_index\":{\"path\":\"abdeploy/sizes/" C2 ".sizes\",\"size\":4400,"
                   "\"sha256\":\"" SHA "\"}}]}";
  g_autoptr(GString) s = g_string_new (example);
  g_string_truncate (s, s->len - 3); /* "}]}" */
  g_string_append (s, si);
  g_autoptr(AbManifest) m = parse_ok (s->str);
  const AbRelease *r = ab_manifest_find (m, "1.2.0");
  g_assert_nonnull (r->size_index);
  g_assert_cmpstr (r->size_index->path, ==, "abdeploy/sizes/" C2 ".sizes");
  g_assert_cmpuint (r->size_index->size, ==, 4400);
  g_assert_cmpstr (r->size_index->sha256, ==, SHA);
  g_autofree char *text = ab_manifest_serialize (m);
  g_assert_nonnull (strstr (text, "\"size_index\""));
  g_autoptr(AbManifest) back = parse_ok (text);
  g_autofree char *again = ab_manifest_serialize (back);
  g_assert_cmpstr (text, ==, again);
  g_autoptr(AbRelease) copy = ab_release_copy (r);
  g_assert_true (copy->size_index != r->size_index);
  g_assert_cmpstr (copy->size_index->sha256, ==, SHA);
  g_autoptr(AbManifest) plain = parse_ok (example);
  g_assert_null (ab_manifest_find (plain, "1.2.0")->size_index);
  g_autofree char *plain_text = ab_manifest_serialize (plain);
  g_assert_null (strstr (plain_text, "size_index"));
  const char *bad[][2] = {
    { "sizes/" C2, "sizes/" C1 },                 /* another commit's index */
    { "abdeploy/sizes/", "abdeploy/../sizes/" },
    { ".sizes\"", ".sizes.x\"" },
    { "\"size\":4400", "\"size\":0" },
    { "\"size\":4400", "\"size\":67108865" },
    { "\"size\":4400", "\"size\":-1" },
    { "\"sha256\":\"" SHA "\"}}", "\"sha256\":\"" SHA_UPPER "\"}}" },
    { "\"sha256\":\"" SHA "\"}}", "\"sha256\":\"abab\"}}" },
    { ",\"size\":4400,", "," },
    { "\"size_index\":{", "\"size_index\":[],\"x\":{" },
  };
  const char *needle[] = { "size_index.path", "size_index.path", "size_index.path",
                           "size_index.size", "size_index.size", "size_index.size",
                           "size_index.sha256", "size_index.sha256", "size_index.size is missing",
                           "size_index is not an object" };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(GString) b = g_string_new (s->str);
      g_assert_nonnull (strstr (b->str, bad[i][0]));
      g_string_replace (b, bad[i][0], bad[i][1], 1);
      g_autoptr(GError) error = NULL;
      g_autoptr(AbManifest) no = ab_manifest_parse (b->str, b->len, &error);
      g_assert_null (no);
      if (strstr (error->message, needle[i]) == NULL)
        g_error ("case %u: message \"%s\" lacks \"%s\"", i, error->message, needle[i]);
    }
  /* exactly 64 MiB is allowed */
  g_autoptr(GString) big = g_string_new (s->str);
  g_string_replace (big, "\"size\":4400", "\"size\":67108864", 1);
  g_autoptr(AbManifest) ok = parse_ok (big->str);
  g_assert_cmpuint (ab_manifest_find (ok, "1.2.0")->size_index->size, ==, 67108864);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/manifest/parse-example", test_parse_example);
  g_test_add_func ("/manifest/roundtrip", test_roundtrip);
  g_test_add_func ("/manifest/unknown-format", test_unknown_format);
  g_test_add_func ("/manifest/format-checked-first", test_format_checked_first);
  g_test_add_func ("/manifest/malformed", test_malformed);
  g_test_add_func ("/manifest/not-an-object", test_not_an_object);
  g_test_add_func ("/manifest/delta-size-overflow", test_delta_size_overflow);
  g_test_add_func ("/manifest/serial-bounds", test_serial_bounds);
  g_test_add_func ("/manifest/duplicate-version", test_duplicate_version);
  g_test_add_func ("/manifest/optional-members", test_optional_members);
  g_test_add_func ("/manifest/newest", test_newest);
  g_test_add_func ("/manifest/issue17-members", test_issue17_members);
  g_test_add_func ("/manifest/issue17-malformed", test_issue17_malformed);
  g_test_add_func ("/manifest/latest", test_latest);
  g_test_add_func ("/manifest/protocol", test_protocol);
  g_test_add_func ("/manifest/check-fresh", test_check_fresh);
  g_test_add_func ("/manifest/channel-names", test_channel_names);
  g_test_add_func ("/manifest/full-delta", test_full_delta);
  g_test_add_func ("/manifest/packs", test_packs);
  g_test_add_func ("/manifest/packs-malformed", test_packs_malformed);
  g_test_add_func ("/manifest/packs-count", test_packs_count);
  g_test_add_func ("/manifest/size-index", test_size_index);
  return g_test_run ();
}
