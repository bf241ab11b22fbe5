/* The delta metadata of channel manifests (releases[].deltas[]), as the
 * update client uses it: which delta starts at the running commit, the
 * file names it downloads into its cache directory and the URLs it
 * fetches. Invariants: every delta file lands directly in the cache
 * directory and under deltas/ of the server, and the signed total size is
 * the exact sum of the file sizes (no wrap-around). */
#include "config.h"
#include "fuzz-common.h"
#include "ab-fetch.h"
#include "ab-manifest.h"
#include "ab-util.h"

#include <string.h>

#define BASE_URL "https://updates.invalid/repo"

static void
check_file (const AbDeltaFile *f)
{
  g_autofree char *name = g_path_get_basename (f->path);
  fuzz_check (strchr (name, '/') == NULL && !g_str_equal (name, ".") && !g_str_equal (name, "..")
              && *name != '\0', "delta file %s would be cached as %s", f->path, name);
  g_autofree char *url = ab_fetch_url_join (BASE_URL, f->path);
  fuzz_check (g_str_has_prefix (url, BASE_URL "/deltas/"), "delta file %s fetched from %s",
              f->path, url);
  fuzz_check (ab_is_commit_checksum (f->sha256), "sha256 %s accepted", f->sha256);
}

static void
check_delta (const AbRelease *r, const AbDelta *d)
{
  fuzz_check (ab_is_commit_checksum (d->from), "from %s accepted", d->from);
  fuzz_check (!g_str_equal (d->from, r->commit), "a delta from the release's own commit");
  fuzz_check (ab_release_find_delta (r, d->from) == d, "two deltas from %s", d->from);
  fuzz_check (d->files->len > 0, "a delta without files");
  guint64 sum = 0;
  for (guint i = 0; i < d->files->len; i++)
    {
      const AbDeltaFile *f = d->files->pdata[i];
      fuzz_check (g_uint64_checked_add (&sum, sum, f->size),
                  "delta file sizes overflow: the signed size %" G_GUINT64_FORMAT
                  " does not bound the download", d->size);
      check_file (f);
    }
  fuzz_check (sum == d->size, "delta size %" G_GUINT64_FORMAT " is not the sum %" G_GUINT64_FORMAT,
              d->size, sum);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  fuzz_init ();
  g_autoptr(GError) error = NULL;
  g_autoptr(AbManifest) m = ab_manifest_parse ((const char *) data, size, &error);
  if (m == NULL)
    return 0;
  for (guint i = 0; i < m->releases->len; i++)
    {
      const AbRelease *r = m->releases->pdata[i];
      fuzz_check (ab_is_commit_checksum (r->commit), "commit %s accepted", r->commit);
      for (guint j = 0; j < r->deltas->len; j++)
        check_delta (r, r->deltas->pdata[j]);
    }
  return 0;
}
