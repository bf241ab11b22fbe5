/* ab-update: phased rollout buckets (ab_update_in_rollout) over 10 000
 * synthetic machine ids, the share offered for N = 1, 10, 50 %, and how the
 * chosen devices change from one release to the next; and the update
 * decisions (ab_update_check, ab_update_pin) on a real sysroot reading a
 * channel that abdeploy's publisher signed, over file://. */
#include "config.h"
#include <string.h>
#include "ab-update.h"
#include "ab-test-sysroot.h"

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

/* ---- update decisions on a real sysroot ---- */

/* Installs VERSION's commit (staged and activated, offline) and points the
 * sysroot's [update] url at the publisher's repo, channel stable. */
static void
device_on (SysrootFixture *fx, const char *commit)
{
  stage_commit (fx, commit);
  g_autoptr(AbSysroot) s = open_sysroot (fx);
  g_autoptr(GError) error = NULL;
  AbSlot slot = AB_SLOT_NONE;
  g_assert_true (ab_deploy_activate (s, 0, &slot, &error));
  g_assert_no_error (error);
  g_autofree char *conf = g_build_filename (fx->sysroot, "etc/abdeploy/abdeploy.conf", NULL);
  g_autofree char *old = NULL;
  if (!g_file_get_contents (conf, &old, NULL, NULL))
    old = g_strdup ("");
  g_assert_null (strstr (old, "[update]"));
  g_autofree char *text = g_strdup_printf ("%s\n[update]\nurl=file://%s\nchannel=stable\n", old,
                                           fx->repo);
  g_assert_true (g_file_set_contents (conf, text, -1, NULL));
}

static AbUpdateCheck *
check (SysrootFixture *fx, GError **error)
{
  g_autoptr(AbSysroot) s = open_sysroot (fx);
  return ab_update_check (s, error);
}

static AbUpdateCheck *
check_ok (SysrootFixture *fx)
{
  g_autoptr(GError) error = NULL;
  AbUpdateCheck *c = check (fx, &error);
  g_assert_no_error (error);
  g_assert_nonnull (c);
  return c;
}

static void
publish_release (SysrootFixture *fx, const char *version, guint rollout)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(AbManifest) m = ab_publish_release (&fx->pub, "stable", version, rollout, &error);
  g_assert_no_error (error);
}

/* The newest release above the installed one is offered; a deprecated one
 * is not; a release whose rollout does not include this device is held
 * back until its rollout does. */
static void
test_check_offer (SysrootFixture *fx, gconstpointer data)
{
  g_autofree char *c1 = publish_image (fx, "1.0", NULL);
  g_autofree char *c2 = publish_image (fx, "2.0", NULL);
  g_autofree char *c3 = publish_image (fx, "3.0", NULL);
  publish_release (fx, "1.0", 0);
  device_on (fx, c1);
  g_autoptr(AbUpdateCheck) none = check_ok (fx);
  g_assert_null (none->offered_version);
  g_assert_cmpstr (none->installed_version, ==, "1.0");
  g_assert_cmpstr (none->reason, ==, "1.0 is the newest release of channel stable");

  publish_release (fx, "2.0", 0);
  g_autoptr(AbUpdateCheck) offer = check_ok (fx);
  g_assert_cmpstr (offer->offered_version, ==, "2.0");
  g_assert_cmpstr (offer->offered_commit, ==, c2);
  g_assert_cmpuint (offer->serial, ==, 2);

  g_autoptr(GError) error = NULL;
  g_autoptr(AbManifest) dep = ab_publish_deprecate (&fx->pub, "stable", "2.0", "bad", &error);
  g_assert_no_error (error);
  g_autoptr(AbUpdateCheck) deprecated = check_ok (fx);
  g_assert_null (deprecated->offered_version);

  /* a machine id whose bucket for 3.0 is at least 100: a rollout of
   * bucket / 100 percent leaves it out, one more percent takes it in */
  const char *mid = "0123456789abcdef0123456789abcdef";
  guint bucket = ab_update_rollout_bucket (mid, "3.0");
  g_assert_cmpuint (bucket, >=, 100);
  g_autofree char *machine_id = g_strdup_printf ("%s\n", mid);
  g_autofree char *path = g_build_filename (fx->sysroot, "etc/machine-id", NULL);
  g_assert_true (g_file_set_contents (path, machine_id, -1, NULL));
  publish_release (fx, "3.0", bucket / 100);
  g_autoptr(AbUpdateCheck) held = check_ok (fx);
  g_assert_null (held->offered_version);
  g_assert_nonnull (strstr (held->reason, "rolled out in phases"));
  publish_release (fx, "3.0", bucket / 100 + 1);
  g_autoptr(AbUpdateCheck) in = check_ok (fx);
  g_assert_cmpstr (in->offered_version, ==, "3.0");
  g_assert_cmpstr (in->offered_commit, ==, c3);
}

/* A pin decides the offer; a pin below the installed version is refused
 * without consent. */
static void
test_pin (SysrootFixture *fx, gconstpointer data)
{
  g_autofree char *c1 = publish_image (fx, "1.0", NULL);
  g_autofree char *c2 = publish_image (fx, "2.0", NULL);
  g_autofree char *c3 = publish_image (fx, "3.0", NULL);
  publish_release (fx, "1.0", 0);
  publish_release (fx, "2.0", 0);
  publish_release (fx, "3.0", 0);
  device_on (fx, c2);
  g_autoptr(GError) error = NULL;
  {
    g_autoptr(AbSysroot) s = open_sysroot (fx);
    g_assert_false (ab_update_pin (s, "1.0", FALSE, FALSE, &error));
    g_assert_error (error, AB_UPDATE_ERROR, AB_UPDATE_ERROR_REFUSED);
    g_assert_nonnull (strstr (error->message, "--allow-downgrade"));
    g_clear_error (&error);
    g_autofree char *pin = ab_update_get_pin (s, &error);
    g_assert_null (pin);
  }
  g_autoptr(AbUpdateCheck) newest = check_ok (fx);
  g_assert_cmpstr (newest->offered_version, ==, "3.0");
  {
    g_autoptr(AbSysroot) s = open_sysroot (fx);
    g_assert_true (ab_update_pin (s, "1.0", TRUE, FALSE, &error));
    g_assert_no_error (error);
  }
  g_autoptr(AbUpdateCheck) pinned = check_ok (fx);
  g_assert_cmpstr (pinned->offered_version, ==, "1.0");
  g_assert_cmpstr (pinned->offered_commit, ==, c1);
  g_assert_true (pinned->pin_allows_downgrade);
  g_assert_nonnull (strstr (pinned->reason, "pinned to 1.0"));
  g_assert_nonnull (strstr (pinned->warning, "downgrade"));
  {
    g_autoptr(AbSysroot) s = open_sysroot (fx);
    g_assert_true (ab_update_pin (s, NULL, FALSE, FALSE, &error));
    g_autofree char *pin = ab_update_get_pin (s, &error);
    g_assert_null (pin);
  }
  g_autoptr(AbUpdateCheck) unpinned = check_ok (fx);
  g_assert_cmpstr (unpinned->offered_commit, ==, c3);
}

/* A manifest with a lower serial than one accepted before is a replay and
 * is refused. */
static void
test_replay_refused (SysrootFixture *fx, gconstpointer data)
{
  g_autofree char *c1 = publish_image (fx, "1.0", NULL);
  publish_release (fx, "1.0", 0);
  device_on (fx, c1);
  g_autofree char *json = g_build_filename (fx->repo, "abdeploy/channels/stable.json", NULL);
  g_autofree char *sig = g_strconcat (json, ".sig", NULL);
  g_autofree char *old_json = NULL, *old_sig = NULL;
  gsize json_len = 0, sig_len = 0;
  g_assert_true (g_file_get_contents (json, &old_json, &json_len, NULL));
  g_assert_true (g_file_get_contents (sig, &old_sig, &sig_len, NULL));
  g_autoptr(GError) error = NULL;
  g_autoptr(AbManifest) m = ab_publish_refresh (&fx->pub, "stable", &error);
  g_assert_no_error (error);
  g_autoptr(AbUpdateCheck) fresh = check_ok (fx);
  g_assert_cmpuint (fresh->serial, ==, 2);
  /* a mirror serves the old, correctly signed manifest (serial 1) again */
  g_assert_cmpint (g_unlink (json), ==, 0);
  g_assert_cmpint (g_unlink (sig), ==, 0);
  g_assert_true (g_file_set_contents (json, old_json, json_len, NULL));
  g_assert_true (g_file_set_contents (sig, old_sig, sig_len, NULL));
  g_autoptr(AbUpdateCheck) replay = check (fx, &error);
  g_assert_null (replay);
  g_assert_error (error, AB_UPDATE_ERROR, AB_UPDATE_ERROR_REFUSED);
  g_assert_nonnull (strstr (error->message, "replayed"));
}

typedef struct
{
  const char *current; /* update.json on disk, or NULL */
  const char *incoming;
  const char *want;    /* member that must be in the result, or NULL: unchanged */
  const char *gone;    /* text that must not be in the result, or NULL */
} KeepCase;

static const KeepCase keep_cases[] = {
  /* serials only go up, channels the incoming file lacks are added */
  { "{\"format\":2,\"last_serial\":{\"stable\":5,\"beta\":2}}",
    "{\"format\":2,\"last_serial\":{\"stable\":3,\"edge\":1}}", "\"stable\":5", ":3" },
  { "{\"format\":2,\"last_serial\":{\"stable\":5,\"beta\":2}}",
    "{\"format\":2,\"last_serial\":{\"stable\":3,\"edge\":1}}", "\"beta\":2", NULL },
  { "{\"format\":2,\"last_serial\":{\"stable\":5}}",
    "{\"format\":2,\"last_serial\":{\"stable\":9}}", "\"stable\":9", NULL },
  /* restore works on wrecked state: anything else is taken as it is */
  { NULL, "{\"format\":2,\"last_serial\":{\"stable\":1}}", NULL, NULL },
  { "not json", "{\"format\":2,\"last_serial\":{\"stable\":1}}", NULL, NULL },
  { "{\"format\":2,\"last_serial\":{\"stable\":5}}", "not json", NULL, NULL },
};

static void
test_keep_serials (TmpDir *t, gconstpointer data)
{
  for (guint i = 0; i < G_N_ELEMENTS (keep_cases); i++)
    {
      const KeepCase *c = &keep_cases[i];
      g_test_message ("case %u", i);
      if (c->current)
        write_file_at (t->dfd, "update.json", c->current);
      else
        (void) unlinkat (t->dfd, "update.json", 0);
      g_autofree char *out = ab_update_state_keep_serials (t->dfd, c->incoming,
                                                           strlen (c->incoming));
      g_autoptr(GString) compact = g_string_new (NULL);
      for (const char *p = out; *p; p++)
        if (!g_ascii_isspace (*p))
          g_string_append_c (compact, *p);
      if (c->want == NULL)
        g_assert_cmpstr (out, ==, c->incoming);
      else if (strstr (compact->str, c->want) == NULL)
        g_error ("case %u: %s not in %s", i, c->want, compact->str);
      if (c->gone)
        g_assert_null (strstr (compact->str, c->gone));
    }
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
  test_key_setup ();
  SYSROOT_TEST ("/update/check-offer", test_check_offer);
  SYSROOT_TEST ("/update/pin", test_pin);
  SYSROOT_TEST ("/update/replay-refused", test_replay_refused);
  TMPDIR_TEST ("/update/keep-serials", test_keep_serials);
  int ret = g_test_run ();
  test_key_teardown ();
  return ret;
}
