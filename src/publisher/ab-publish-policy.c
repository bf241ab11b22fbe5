/* Publisher: the channel policy of a repo (REPO/abdeploy/publish.conf,
 * abdeploy-publish(8), CHANNEL POLICY): which channels hold releases only
 * and how long prune keeps the releases of each channel.
 *
 * Invariant: without a publish.conf the built-in defaults of issue 17
 * hold: "stable" holds releases only and keeps them forever; candidate and
 * rc keep 90 days, dev, edge and nightly 30 days; any other channel has no
 * retention (prune needs --keep-days or --keep-last). A publish.conf that
 * does not parse, or holds a value out of range, stops every command that
 * needs the policy: nothing is guessed. */
#include "config.h"
#include "ab-publish-private.h"
#include "ab-fsutil.h"
#include "ab-version.h"

#include <string.h>

#define POLICY_PATH "abdeploy/publish.conf"
#define GROUP_PREFIX "channel "
#define MAX_KEEP_DAYS 36600

static const struct
{
  const char *channel;
  gboolean stable;
  int keep_days; /* AB_PUBLISH_KEEP_FOREVER, 0 = none, or days */
} defaults[] = {
  { "stable", TRUE, AB_PUBLISH_KEEP_FOREVER },
  { "candidate", FALSE, 90 }, { "rc", FALSE, 90 },
  { "dev", FALSE, 30 }, { "edge", FALSE, 30 }, { "nightly", FALSE, 30 },
};

static gboolean
policy_error (AbPublishSession *s, GError **error, const char *problem)
{
  g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_USAGE,
               "%s/" POLICY_PATH ": %s; fix the file (see abdeploy-publish(8), CHANNEL POLICY)",
               s->p->repo, problem);
  return FALSE;
}

/* The keyfile of the repo, or NULL (no error) when there is none. */
static gboolean
load_keyfile (AbPublishSession *s, GKeyFile **out, GError **error)
{
  g_autoptr(GBytes) data = NULL;
  *out = NULL;
  if (!ab_publish_read_optional (s, POLICY_PATH, &data, error))
    return FALSE;
  if (data == NULL)
    return TRUE;
  g_autoptr(GKeyFile) kf = g_key_file_new ();
  g_autoptr(GError) local = NULL;
  gsize len = 0;
  const char *text = g_bytes_get_data (data, &len);
  if (!g_key_file_load_from_data (kf, text, len, G_KEY_FILE_NONE, &local))
    return policy_error (s, error, local->message);
  *out = g_steal_pointer (&kf);
  return TRUE;
}

static gboolean
read_stable (AbPublishSession *s, GKeyFile *kf, const char *group, AbPublishChannelPolicy *pol,
             GError **error)
{
  g_autoptr(GError) local = NULL;
  if (!g_key_file_has_key (kf, group, "stable", NULL))
    return TRUE;
  pol->stable = g_key_file_get_boolean (kf, group, "stable", &local);
  if (local == NULL)
    return TRUE;
  g_autofree char *problem = g_strdup_printf ("[%s] stable is not true or false", group);
  return policy_error (s, error, problem);
}

static gboolean
read_keep_days (AbPublishSession *s, GKeyFile *kf, const char *group,
                AbPublishChannelPolicy *pol, GError **error)
{
  g_autofree char *v = g_key_file_get_string (kf, group, "keep-days", NULL);
  if (v == NULL)
    return TRUE;
  g_strstrip (v);
  guint64 days = 0;
  if (strcmp (v, "forever") == 0)
    pol->keep_days = AB_PUBLISH_KEEP_FOREVER;
  else if (g_ascii_string_to_unsigned (v, 10, 1, MAX_KEEP_DAYS, &days, NULL))
    pol->keep_days = (int) days;
  else
    {
      g_autofree char *problem = g_strdup_printf ("[%s] keep-days is \"%s\", not a number of "
                                                  "days from 1 to 36600 or \"forever\"", group, v);
      return policy_error (s, error, problem);
    }
  return TRUE;
}

/* Reads GROUP of KF over OUT (the defaults). */
static gboolean
read_group (AbPublishSession *s, GKeyFile *kf, const char *group, AbPublishChannelPolicy *out,
            GError **error)
{
  gboolean had_keep = g_key_file_has_key (kf, group, "keep-days", NULL);
  if (!read_stable (s, kf, group, out, error) || !read_keep_days (s, kf, group, out, error))
    return FALSE;
  /* A channel marked stable keeps its releases forever unless it says otherwise. */
  if (out->stable && !had_keep)
    out->keep_days = AB_PUBLISH_KEEP_FOREVER;
  return TRUE;
}

/* Every group is "channel NAME" with known keys and good values, so that a
 * typo never passes unnoticed whichever channel a command touches. */
static gboolean
check_all_groups (AbPublishSession *s, GKeyFile *kf, GError **error)
{
  g_auto(GStrv) groups = g_key_file_get_groups (kf, NULL);
  for (char **g = groups; *g; g++)
    {
      g_autofree char *problem = NULL;
      if (!g_str_has_prefix (*g, GROUP_PREFIX)
          || !ab_manifest_channel_name_is_valid (*g + strlen (GROUP_PREFIX)))
        problem = g_strdup_printf ("group [%s] is not [channel NAME]", *g);
      g_auto(GStrv) keys = problem ? NULL : g_key_file_get_keys (kf, *g, NULL, NULL);
      for (char **k = keys; k && *k && !problem; k++)
        if (strcmp (*k, "stable") != 0 && strcmp (*k, "keep-days") != 0)
          problem = g_strdup_printf ("[%s] has the unknown key %s (known: stable, keep-days)",
                                     *g, *k);
      if (problem)
        return policy_error (s, error, problem);
      AbPublishChannelPolicy scratch = { FALSE, 0 };
      if (!read_group (s, kf, *g, &scratch, error))
        return FALSE;
    }
  return TRUE;
}

gboolean
ab_publish_channel_policy (AbPublishSession *s, const char *channel, AbPublishChannelPolicy *out,
                           GError **error)
{
  *out = (AbPublishChannelPolicy) { FALSE, 0 };
  for (guint i = 0; i < G_N_ELEMENTS (defaults); i++)
    if (strcmp (defaults[i].channel, channel) == 0)
      *out = (AbPublishChannelPolicy) { defaults[i].stable, defaults[i].keep_days };
  g_autoptr(GKeyFile) kf = NULL;
  if (!load_keyfile (s, &kf, error))
    return FALSE;
  if (kf == NULL)
    return TRUE;
  if (!check_all_groups (s, kf, error))
    return FALSE;
  g_autofree char *group = g_strconcat (GROUP_PREFIX, channel, NULL);
  return !g_key_file_has_group (kf, group) || read_group (s, kf, group, out, error);
}

/* A SemVer version with a pre-release part: its '-' comes before any '+'
 * (MAJOR.MINOR.PATCH holds none). */
static gboolean
is_prerelease (const char *version)
{
  const char *dash = strchr (version, '-');
  const char *plus = strchr (version, '+');
  return ab_version_is_semver (version) && dash != NULL && (plus == NULL || dash < plus);
}

gboolean
ab_publish_check_stable (AbPublishSession *s, const char *channel, const char *version,
                         GError **error)
{
  AbPublishChannelPolicy pol;
  if (!ab_publish_channel_policy (s, channel, &pol, error))
    return FALSE;
  if (!pol.stable || !is_prerelease (version))
    return TRUE;
  g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_REFUSED,
               "Channel %s is stable and holds releases only, but %s is a pre-release "
               "version; release it to a candidate channel, then promote it with "
               "--as=RELEASE (for example publish promote --from=candidate --to=%s "
               "--version=%s --as=X.Y.Z)", channel, version, channel, version);
  return FALSE;
}
