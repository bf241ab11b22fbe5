#include "config.h"
#include "ab-version.h"

/* Each list is strictly ascending in precedence. */
static void
assert_ascending (const char *const *list)
{
  for (guint i = 0; list[i]; i++)
    for (guint j = 0; list[j]; j++)
      {
        int want = i < j ? -1 : (i > j ? 1 : 0);
        int got = ab_version_compare (list[i], list[j]);
        if ((got > 0) - (got < 0) != want)
          g_error ("compare (%s, %s) = %d, expected %d", list[i], list[j], got, want);
      }
}

static void
test_spec_chain (void)
{
  /* semver.org, item 11.4 */
  static const char *const chain[] = {
    "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
    "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", NULL
  };
  assert_ascending (chain);
  static const char *const core[] = { "1.0.0", "2.0.0", "2.1.0", "2.1.1", "2.10.0", "10.0.0", NULL };
  assert_ascending (core);
}

static void
test_release_above_its_rc (void)
{
  /* The defect of issue 10: 2.0.0-rc.1 was taken as newer than 2.0.0. */
  g_assert_cmpint (ab_version_compare ("2.0.0-rc.1", "2.0.0"), <, 0);
  g_assert_cmpint (ab_version_compare ("2.0.0", "2.0.0-rc.1"), >, 0);
  g_assert_cmpint (ab_version_compare ("2.0.0-rc.1", "1.9.9"), >, 0);
}

static void
test_numeric_identifiers (void)
{
  static const char *const pre[] = {
    "1.0.0-2", "1.0.0-10", "1.0.0-10.a", "1.0.0-10.a.0", "1.0.0-10.b", "1.0.0-11",
    "1.0.0--", "1.0.0-A", "1.0.0-Z", "1.0.0-a", "1.0.0-a-b", "1.0.0-rc.9", "1.0.0-rc.10", NULL
  };
  assert_ascending (pre);
}

static void
test_build_metadata_ignored (void)
{
  g_assert_true (ab_version_is_semver ("1.0.0+build.5"));
  g_assert_true (ab_version_is_semver ("1.0.0-rc.1+001.x-y"));
  g_assert_cmpint (ab_version_compare ("1.0.0+a", "1.0.0+b"), ==, 0);
  g_assert_cmpint (ab_version_compare ("1.0.0+a", "1.0.0"), ==, 0);
  g_assert_cmpint (ab_version_compare ("1.0.0-rc.1+z", "1.0.0"), <, 0);
  /* the total order breaks the tie by the bytes, and only then */
  g_assert_cmpint (ab_version_order ("1.0.0+a", "1.0.0+b"), <, 0);
  g_assert_cmpint (ab_version_order ("1.0.0+b", "1.0.0+a"), >, 0);
  g_assert_cmpint (ab_version_order ("1.0.0+a", "1.0.0+a"), ==, 0);
  g_assert_cmpint (ab_version_order ("1.0.1+a", "1.0.0+b"), >, 0);
}

static void
test_not_semver (void)
{
  static const char *const bad[] = {
    "", "1", "1.0", "1.0.0.0", "v1.0.0", "01.0.0", "1.00.0", "1.0.01", "1.0.0-", "1.0.0+",
    "1.0.0-01", "1.0.0-rc.01", "1.0.0-rc..1", "1.0.0-.rc", "1.0.0-rc.", "1.0.0+a..b",
    "1.0.0+", "1.0.0+a+b", "1.0.0-r_c", "1.0.0 ", " 1.0.0", "1..0", "1.0.-0", "-1.0.0",
    "1.0.0-rc+", "1.0", "a.b.c", "1.0.0_1", NULL
  };
  for (guint i = 0; bad[i]; i++)
    if (ab_version_is_semver (bad[i]))
      g_error ("\"%s\" taken as SemVer", bad[i]);
  static const char *const good[] = {
    "0.0.0", "1.0.0-0", "1.0.0-0a", "1.0.0-00a", "1.0.0+007", "1.0.0-x-y-z.--", NULL
  };
  for (guint i = 0; good[i]; i++)
    if (!ab_version_is_semver (good[i]))
      g_error ("\"%s\" not taken as SemVer", good[i]);
}

static void
test_huge_numbers (void)
{
  /* Past 64 bits: compared as digit strings, never converted. */
  static const char *const big[] = {
    "18446744073709551615.0.0", "18446744073709551616.0.0",
    "99999999999999999999999999999999.0.0-rc.99999999999999999999999",
    "99999999999999999999999999999999.0.0-rc.100000000000000000000000",
    "99999999999999999999999999999999.0.0", "100000000000000000000000000000000.0.0", NULL
  };
  assert_ascending (big);
  guint64 majors = 1, minors = 1;
  g_assert_false (ab_version_gap ("1.0.0", "18446744073709551616.0.0", &majors, &minors));
  g_assert_cmpuint (majors, ==, 0);
  g_assert_cmpuint (minors, ==, 0);
}

static void
test_fallback_order (void)
{
  static const char *const list[] = {
    "", "1", "1.2", "1.2.3.4", "1.2.10.0", "1.10", "2", "2-rc", "2.", "2.0", "10", "a", "r9",
    "r10", "release", NULL
  };
  assert_ascending (list);
  /* leading zeros are the same number: equal precedence, ordered by bytes */
  g_assert_cmpint (ab_version_compare ("1.01", "1.1"), ==, 0);
  g_assert_cmpint (ab_version_order ("1.01", "1.1"), <, 0);
  g_assert_cmpint (ab_version_compare ("1.0000000000000000000000000000001", "1.1"), ==, 0);
}

static void
test_semver_above_others (void)
{
  static const char *const mixed[] = { "2024.10", "v9.9.9", "0.0.0-0", "0.0.1", "1.0.0", NULL };
  assert_ascending (mixed);
  g_assert_cmpint (ab_version_compare (NULL, ""), <, 0);
  g_assert_cmpint (ab_version_compare (NULL, NULL), ==, 0);
  g_assert_cmpint (ab_version_order (NULL, "1.0.0"), <, 0);
}

/* A comparison that sorts must be transitive: every triple of a mixed set. */
static void
test_transitive (void)
{
  static const char *const set[] = {
    "1.0.0", "1.0.0-", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0.5", "1.0.0+b", "1.0", "1.0.1",
    "1.0.0-rc", "1.0.0-rc.1", "01.0.0", "1.0.0_5", "1.0.0-1", "r1", "", "1", NULL
  };
  guint n = g_strv_length ((char **) set);
  for (guint i = 0; i < n; i++)
    for (guint j = 0; j < n; j++)
      for (guint k = 0; k < n; k++)
        if (ab_version_compare (set[i], set[j]) <= 0 && ab_version_compare (set[j], set[k]) <= 0)
          if (ab_version_compare (set[i], set[k]) > 0)
            g_error ("not transitive: %s <= %s <= %s but %s > %s", set[i], set[j], set[k],
                     set[i], set[k]);
}

static void
test_gap (void)
{
  guint64 majors = 9, minors = 9;
  g_assert_true (ab_version_gap ("1.2.0", "1.5.0", &majors, &minors));
  g_assert_cmpuint (majors, ==, 0);
  g_assert_cmpuint (minors, ==, 3);
  g_assert_true (ab_version_gap ("1.9.0", "3.0.0-rc.1", &majors, &minors));
  g_assert_cmpuint (majors, ==, 2);
  g_assert_cmpuint (minors, ==, 0);
  g_assert_true (ab_version_gap ("1.0", "1.4", &majors, &minors));
  g_assert_cmpuint (minors, ==, 4);
  g_assert_true (ab_version_gap ("1.5.0", "1.2.0", &majors, &minors));
  g_assert_cmpuint (minors, ==, 0);
  g_assert_false (ab_version_gap ("2.0.0", "1.0.0", &majors, &minors));
  g_assert_false (ab_version_gap ("1.0", "1.5.0", &majors, &minors));
  g_assert_false (ab_version_gap ("release", "1.5.0", &majors, &minors));
  g_assert_false (ab_version_gap ("v1.0", "v1.5", &majors, &minors));
  g_assert_false (ab_version_gap (NULL, "1.5.0", &majors, &minors));
}

/* Pins (abdeploy(8), PINS): exact SemVer pins, rolling prefixes, and
 * pre-releases only for a pin that names one. */
static void
test_pins (void)
{
  g_assert_true (ab_version_pin_is_exact ("1.4.2"));
  g_assert_true (ab_version_pin_is_exact ("2.1.0-rc.2"));
  g_assert_false (ab_version_pin_is_exact ("1.4"));
  g_assert_false (ab_version_pin_is_exact ("1"));
  /* exact */
  g_assert_true (ab_version_follows_pin ("1.4.2", "1.4.2"));
  g_assert_false (ab_version_follows_pin ("1.4.3", "1.4.2"));
  g_assert_false (ab_version_follows_pin ("1.4.2.1", "1.4.2"));
  /* rolling */
  g_assert_true (ab_version_follows_pin ("1.4.3", "1.4"));
  g_assert_true (ab_version_follows_pin ("1.4.30", "1.4"));
  g_assert_false (ab_version_follows_pin ("1.40.0", "1.4"));
  g_assert_false (ab_version_follows_pin ("1.5.0", "1.4"));
  g_assert_true (ab_version_follows_pin ("1.9.0", "1"));
  g_assert_false (ab_version_follows_pin ("10.0.0", "1"));
  g_assert_true (ab_version_follows_pin ("1.4.3+build.7", "1.4"));
  /* natural order: every pin is a prefix */
  g_assert_true (ab_version_follows_pin ("1.0", "1.0"));
  g_assert_true (ab_version_follows_pin ("1.0.7", "1.0"));
  g_assert_false (ab_version_follows_pin ("1.1", "1.0"));
  g_assert_true (ab_version_follows_pin ("2026.12.1", "2026.12"));
  /* pre-releases */
  g_assert_false (ab_version_follows_pin ("1.4.3-rc.1", "1.4"));
  g_assert_false (ab_version_follows_pin ("1.4.3rc1", "1.4"));
  g_assert_false (ab_version_follows_pin ("1.4.3~rc1", "1"));
  g_assert_true (ab_version_follows_pin ("1.5-rc.2", "1.5-rc"));
  g_assert_true (ab_version_follows_pin ("2.1.0-rc.2", "2.1.0-rc.2"));
  g_assert_true (ab_version_is_prerelease ("2.1.0-rc.2"));
  g_assert_true (ab_version_is_prerelease ("1.4-beta"));
  g_assert_true (ab_version_is_prerelease ("1.4rc1"));
  g_assert_false (ab_version_is_prerelease ("1.4"));
  g_assert_false (ab_version_is_prerelease ("1.4+b"));
  g_assert_false (ab_version_is_prerelease ("nightly-2026"));
  g_assert_false (ab_version_follows_pin (NULL, "1"));
  g_assert_false (ab_version_follows_pin ("1", NULL));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/version/spec-chain", test_spec_chain);
  g_test_add_func ("/version/release-above-its-rc", test_release_above_its_rc);
  g_test_add_func ("/version/numeric-identifiers", test_numeric_identifiers);
  g_test_add_func ("/version/build-metadata-ignored", test_build_metadata_ignored);
  g_test_add_func ("/version/not-semver", test_not_semver);
  g_test_add_func ("/version/huge-numbers", test_huge_numbers);
  g_test_add_func ("/version/fallback-order", test_fallback_order);
  g_test_add_func ("/version/semver-above-others", test_semver_above_others);
  g_test_add_func ("/version/transitive", test_transitive);
  g_test_add_func ("/version/gap", test_gap);
  g_test_add_func ("/version/pins", test_pins);
  return g_test_run ();
}
