/* Phased rollout buckets (ab_update_in_rollout): 10 000 synthetic machine
 * ids, the share offered for N = 1, 10, 50 %, and how the chosen devices
 * change from one release to the next. */
#include "config.h"
#include <string.h>
#include "ab-update.h"

#define N_DEVICES 10000

static char **
machine_ids (void)
{
  char **ids = g_new0 (char *, N_DEVICES + 1);
  for (guint i = 0; i < N_DEVICES; i++)
    {
      /* 32 hex digits, like /etc/machine-id */
      g_autofree char *seed = g_strdup_printf ("device-%u", i);
      ids[i] = g_compute_checksum_for_string (G_CHECKSUM_MD5, seed, -1);
    }
  return ids;
}

/* Which devices a release at PERCENT is offered to. */
static gboolean *
chosen (char **ids, const char *version, guint percent, guint *out_count)
{
  gboolean *in = g_new0 (gboolean, N_DEVICES);
  *out_count = 0;
  for (guint i = 0; i < N_DEVICES; i++)
    if ((in[i] = ab_update_in_rollout (ids[i], version, percent)))
      (*out_count)++;
  return in;
}

static void
test_known_buckets (void)
{
  /* SHA-256("<machine-id>:<version>"), first 8 bytes big-endian, mod 10000
   * (docs/internals.md); values computed independently with Python hashlib */
  g_assert_cmpuint (ab_update_rollout_bucket ("0123456789abcdef0123456789abcdef", "1.0"), ==, 8529);
  g_assert_cmpuint (ab_update_rollout_bucket ("0123456789abcdef0123456789abcdef", "1.1"), ==, 8898);
  g_assert_cmpuint (ab_update_rollout_bucket ("5f2b7c9e0d4a4b1c8e6f3a2d1c0b9a87", "2.0"), ==, 6765);
}

static void
test_edges (void)
{
  g_auto(GStrv) ids = machine_ids ();
  for (guint i = 0; i < 200; i++)
    {
      g_assert_cmpuint (ab_update_rollout_bucket (ids[i], "1.0"), <, 10000);
      g_assert_true (ab_update_in_rollout (ids[i], "1.0", 100));
      g_assert_false (ab_update_in_rollout (ids[i], "1.0", 0));
    }
  /* no machine id: only full releases */
  g_assert_true (ab_update_in_rollout (NULL, "1.0", 100));
  g_assert_false (ab_update_in_rollout (NULL, "1.0", 50));
}

static void
test_share (gconstpointer data)
{
  guint percent = GPOINTER_TO_UINT (data);
  g_auto(GStrv) ids = machine_ids ();
  const char *versions[] = { "1.0", "1.1", "2.0", "2.0.1" };
  for (guint v = 0; v < G_N_ELEMENTS (versions); v++)
    {
      guint n = 0;
      g_autofree gboolean *in = chosen (ids, versions[v], percent, &n);
      double share = 100.0 * n / N_DEVICES;
      if (g_test_verbose ())
        g_printerr ("%u%% of release %s: %u devices (%.2f%%)\n", percent, versions[v], n, share);
      g_assert_cmpfloat (share, >=, percent - 2.0);
      g_assert_cmpfloat (share, <=, percent + 2.0);
    }
}

/* The devices chosen for 1.0 and 1.1 at the same N are different ones: the
 * overlap is about N% of N% (independent buckets), not N%. */
static void
test_differs_between_releases (gconstpointer data)
{
  guint percent = GPOINTER_TO_UINT (data);
  g_auto(GStrv) ids = machine_ids ();
  guint n0 = 0, n1 = 0, both = 0;
  g_autofree gboolean *a = chosen (ids, "1.0", percent, &n0);
  g_autofree gboolean *b = chosen (ids, "1.1", percent, &n1);
  for (guint i = 0; i < N_DEVICES; i++)
    both += a[i] && b[i];
  double expected = N_DEVICES * (percent / 100.0) * (percent / 100.0);
  if (g_test_verbose ())
    g_printerr ("%u%%: %u and %u devices, %u in both (independent: %.0f)\n", percent, n0, n1,
                both, expected);
  g_assert_cmpuint (both, <, MIN (n0, n1));
  /* generous bounds: 1% -> about 1 device in both; 10% -> about 100; 50% -> 2500 */
  g_assert_cmpfloat (both, <=, expected * 1.5 + 5);
  g_assert_cmpfloat (both, >=, expected * 0.5 - 5);
}

/* Raising the percentage of a release only adds devices. */
static void
test_monotonic (void)
{
  g_auto(GStrv) ids = machine_ids ();
  guint n10 = 0, n50 = 0;
  g_autofree gboolean *in10 = chosen (ids, "1.0", 10, &n10);
  g_autofree gboolean *in50 = chosen (ids, "1.0", 50, &n50);
  for (guint i = 0; i < N_DEVICES; i++)
    if (in10[i])
      g_assert_true (in50[i]);
  g_assert_cmpuint (n10, <, n50);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/rollout/known-buckets", test_known_buckets);
  g_test_add_func ("/rollout/edges", test_edges);
  static const guint percents[] = { 1, 10, 50 };
  for (guint i = 0; i < G_N_ELEMENTS (percents); i++)
    {
      g_autofree char *share = g_strdup_printf ("/rollout/share/%u", percents[i]);
      g_autofree char *differs = g_strdup_printf ("/rollout/differs-between-releases/%u", percents[i]);
      g_test_add_data_func (share, GUINT_TO_POINTER (percents[i]), test_share);
      g_test_add_data_func (differs, GUINT_TO_POINTER (percents[i]), test_differs_between_releases);
    }
  g_test_add_func ("/rollout/monotonic", test_monotonic);
  return g_test_run ();
}
