/* Channel manifests (abdeploy-manifest(5)), as check-update, update and
 * publish read them: ab_manifest_parse(). Invariant: a manifest that
 * parses serializes to text that parses to the same manifest. */
#include "config.h"
#include "fuzz-common.h"
#include "ab-manifest.h"
#include "ab-util.h"
#include "publisher/ab-manifest-write.h"

#include <string.h>

static void
check_round_trip (const AbManifest *m)
{
  g_autofree char *text = ab_manifest_serialize (m);
  g_autoptr(GError) error = NULL;
  g_autoptr(AbManifest) again = ab_manifest_parse (text, strlen (text), &error);
  fuzz_check (again != NULL, "a parsed manifest does not parse back: %s", error->message);
  g_autofree char *text2 = ab_manifest_serialize (again);
  fuzz_check (g_str_equal (text, text2), "serialize(parse(serialize(m))) differs");
}

static void
check_lookups (const AbManifest *m)
{
  for (guint i = 0; i < m->releases->len; i++)
    {
      const AbRelease *r = m->releases->pdata[i];
      fuzz_check (ab_manifest_find (m, r->version) == r, "version %s listed twice", r->version);
    }
  const AbRelease *newest = ab_manifest_newest (m);
  fuzz_check ((newest == NULL) == (m->releases->len == 0), "newest of a non-empty manifest");
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  fuzz_init ();
  g_autoptr(GError) error = NULL;
  g_autoptr(AbManifest) m = ab_manifest_parse ((const char *) data, size, &error);
  if (m == NULL)
    {
      fuzz_check (error != NULL && error->message != NULL, "refused without an error");
      return 0;
    }
  fuzz_check (ab_manifest_channel_name_is_valid (m->channel), "invalid channel accepted");
  check_lookups (m);
  check_round_trip (m);
  g_autoptr(GDateTime) now = g_date_time_new_now_utc ();
  g_autoptr(GError) fresh_error = NULL;
  AB_IGNORE_RESULT (ab_manifest_check_fresh (m, now, G_MAXUINT64 / 2, &fresh_error));
  return 0;
}
