#include "config.h"
#include "ab-verify.h"
#include "ab-content.h"
#include "ab-format.h"
#include "ab-fsutil.h"
#include "ab-history.h"
#include "ab-json.h"
#include "ab-transaction.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#define DEFAULT_SAMPLE 256

void
ab_check_free (AbCheck *c)
{
  if (c == NULL)
    return;
  g_free (c->name);
  g_free (c->reason);
  g_free (c);
}

static void
add_check (GPtrArray *checks, const char *name, gboolean passed, const char *fmt, ...)
    G_GNUC_PRINTF (4, 5);

static void
add_check (GPtrArray *checks, const char *name, gboolean passed, const char *fmt, ...)
{
  AbCheck *c = g_new0 (AbCheck, 1);
  va_list ap;
  va_start (ap, fmt);
  c->name = g_strdup (name);
  c->passed = passed;
  c->reason = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_ptr_array_add (checks, c);
}

typedef struct
{
  char *path;     /* relative to the tree root */
  char *checksum;
} Entry;

static void
entry_free (Entry *e)
{
  g_free (e->path);
  g_free (e->checksum);
  g_free (e);
}

static gboolean
collect (GFile *dir, const char *prefix, GPtrArray *out, GError **error)
{
  g_autoptr(GFileEnumerator) en = g_file_enumerate_children (
      dir, "standard::name,standard::type", G_FILE_QUERY_INFO_NOFOLLOW_SYMLINKS, NULL, error);
  if (en == NULL)
    return FALSE;
  for (;;)
    {
      GFileInfo *info = NULL;
      GFile *child = NULL;
      if (!g_file_enumerator_iterate (en, &info, &child, NULL, error))
        return FALSE;
      if (info == NULL)
        return TRUE;
      g_autofree char *rel = prefix ? g_build_filename (prefix, g_file_info_get_name (info), NULL)
                                    : g_strdup (g_file_info_get_name (info));
      if (g_file_info_get_file_type (info) == G_FILE_TYPE_DIRECTORY)
        {
          if (!collect (child, rel, out, error))
            return FALSE;
          continue;
        }
      Entry *e = g_new0 (Entry, 1);
      e->path = g_steal_pointer (&rel);
      e->checksum = g_strdup (ostree_repo_file_get_checksum (OSTREE_REPO_FILE (child)));
      g_ptr_array_add (out, e);
    }
}

/* Files checked of N, to the sysroot's events: at most ten times a
 * second, the last count always. */
static void
report_checked (AbSysroot *sysroot, guint done, guint n, gint64 *last_us)
{
  gint64 now = g_get_monotonic_time ();
  if (done < n && now - *last_us < G_USEC_PER_SEC / 10)
    return;
  *last_us = now;
  ab_event_progress (sysroot->events, AB_PROGRESS_UNIT_FILES, done, n);
}

static void
shuffle_prefix (GPtrArray *a, guint n)
{
  for (guint i = 0; i < n && i + 1 < a->len; i++)
    {
      guint j = (guint) g_random_int_range ((gint32) i, (gint32) a->len);
      gpointer tmp = a->pdata[i];
      a->pdata[i] = a->pdata[j];
      a->pdata[j] = tmp;
    }
}

gboolean
ab_verify_tree (AbSysroot *sysroot, AbSlot slot, const char *commit, gboolean full,
                guint sample_size, guint *out_checked, char **out_first_mismatch,
                GError **error)
{
  *out_checked = 0;
  *out_first_mismatch = NULL;
  g_autoptr(GFile) root = NULL;
  if (!ostree_repo_read_commit (sysroot->repo, commit, &root, NULL, NULL, error))
    return FALSE;
  g_autoptr(GPtrArray) entries = g_ptr_array_new_with_free_func ((GDestroyNotify) entry_free);
  if (!collect (root, NULL, entries, error))
    return FALSE;
  guint n = full ? entries->len : MIN (sample_size ? sample_size : DEFAULT_SAMPLE, entries->len);
  if (!full)
    shuffle_prefix (entries, n);
  ab_autofd tree = ab_fs_opendir_at (sysroot->slots_dfd, ab_slot_name (slot), error);
  if (tree < 0)
    return FALSE;
  gint64 last_us = 0;
  for (guint i = 0; i < n; i++)
    {
      Entry *e = entries->pdata[i];
      report_checked (sysroot, i, n, &last_us);
      g_autofree char *got = NULL;
      g_autoptr(GError) local = NULL;
      (*out_checked)++;
      /* the entry's directory is opened beneath the slot: a directory of
       * the slot that became a link is a mismatch, never followed */
      const char *name = NULL;
      ab_autofd parent = ab_fs_open_parent_beneath (tree, e->path, &name,
                                                    AB_FS_RESOLVE_NO_SYMLINKS, &local);
      if (parent < 0
          || !ostree_checksum_file_at (parent, name, NULL, OSTREE_OBJECT_TYPE_FILE,
                                       OSTREE_CHECKSUM_FLAGS_NONE, &got, NULL, &local)
          || g_strcmp0 (got, e->checksum) != 0)
        {
          *out_first_mismatch = g_strdup_printf ("%s (%s)", e->path,
                                                 local ? local->message : "content, mode or owner differs from the commit");
          return TRUE;
        }
    }
  report_checked (sysroot, n, n, &last_us);
  return TRUE;
}


static void
check_booted_primary_good (AbSysroot *sysroot, const AbSlotsView *v, GPtrArray *checks)
{
  AbSlot s = sysroot->booted;
  if (s == AB_SLOT_NONE)
    {
      add_check (checks, "booted-primary-good", FALSE,
                 "no booted slot (no abdeploy.slot= on the kernel command line)");
      return;
    }
  AbSlotState st = ab_slot_state_derive (v->rec[s], &v->ptr, s);
  gboolean ok = v->ptr.primary == s && st == AB_SLOT_STATE_GOOD;
  add_check (checks, "booted-primary-good", ok, "booted slot %s is %sprimary and %s", ab_slot_name (s),
             v->ptr.primary == s ? "" : "not ", ab_slot_state_name (st));
}

static void
check_tree (AbSysroot *sysroot, const AbSlotsView *v, const AbVerifyOptions *opts, GPtrArray *checks)
{
  AbSlot s = ab_sysroot_running_slot (sysroot, &v->ptr);
  if (s == AB_SLOT_NONE || v->rec[s] == NULL)
    {
      add_check (checks, "tree-matches-commit", FALSE, "no deployed slot to check");
      return;
    }
  guint checked = 0;
  g_autofree char *mismatch = NULL;
  g_autoptr(GError) error = NULL;
  ab_event_phase (sysroot->events, "verify");
  if (!ab_verify_tree (sysroot, s, v->rec[s]->commit, opts->full, opts->sample_size, &checked,
                       &mismatch, &error))
    add_check (checks, "tree-matches-commit", FALSE, "reading commit %s: %s", v->rec[s]->commit,
               error->message);
  else if (mismatch)
    add_check (checks, "tree-matches-commit", FALSE, "slot %s differs from commit %s: %s",
               ab_slot_name (s), v->rec[s]->commit, mismatch);
  else
    add_check (checks, "tree-matches-commit", TRUE, "%u %s of slot %s match commit %.12s",
               checked, opts->full ? "files (all)" : "sampled files", ab_slot_name (s),
               v->rec[s]->commit);
}

static char *
ref_commit (AbSysroot *sysroot, AbSlot s)
{
  g_autofree char *ref = g_strdup_printf ("abdeploy/slot/%s", ab_slot_name (s));
  char *rev = NULL;
  (void) ostree_repo_resolve_rev (sysroot->repo, ref, TRUE, &rev, NULL);
  return rev;
}

static gint
cmp_names (gconstpointer a, gconstpointer b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

/* Every state file must be readable: names of the JSON files in the state
 * directory that do not parse, or are of a format this abdeploy does not
 * read, with why, appended to PROBLEMS. */
static void
check_state_files (AbSysroot *sysroot, GString *problems)
{
  int fd = dup (sysroot->state_dfd);
  DIR *d = fd >= 0 ? fdopendir (fd) : NULL;
  if (d == NULL)
    {
      g_string_append_printf (problems, "reading the state directory: %s; ", g_strerror (errno));
      if (fd >= 0)
        close (fd);
      return;
    }
  rewinddir (d);
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    if (de->d_name[0] != '.' && g_str_has_suffix (de->d_name, ".json"))
      g_ptr_array_add (names, g_strdup (de->d_name));
  closedir (d);
  g_ptr_array_sort (names, cmp_names);
  for (guint i = 0; i < names->len; i++)
    {
      if (strstr (problems->str, names->pdata[i]) != NULL)
        continue;   /* already named, e.g. a slot record that does not parse */
      g_autoptr(JsonNode) node = NULL;
      g_autoptr(GError) error = NULL;
      /* parses, is a JSON object, and has a format this abdeploy reads */
      if (!ab_format_read_state_at (sysroot->state_dfd, names->pdata[i], &node, NULL, &error))
        g_string_append_printf (problems, "%s; ", error->message);
    }
}

/* V is NULL when the boot pointer or the slot records could not be read
 * (VIEW_ERROR says why). */
static void
check_consistency (AbSysroot *sysroot, const AbSlotsView *v, const GError *view_error,
                   GPtrArray *checks)
{
  g_autoptr(GString) problems = g_string_new (NULL);
  if (v == NULL)
    g_string_append_printf (problems, "%s; ", view_error->message);
  if (v != NULL && v->ptr.primary != AB_SLOT_NONE && v->rec[v->ptr.primary] == NULL)
    g_string_append_printf (problems, "the pointer's primary slot %s is empty; ", ab_slot_name (v->ptr.primary));
  for (int s = 0; v != NULL && s < AB_N_SLOTS; s++)
    {
      g_autofree char *rev = ref_commit (sysroot, (AbSlot) s);
      const char *want = v->rec[s] ? v->rec[s]->commit : NULL;
      if (want && g_strcmp0 (rev, want) != 0)
        g_string_append_printf (problems, "ref abdeploy/slot/%s is %s, record says %s; ",
                                ab_slot_name ((AbSlot) s), rev ? rev : "missing", want);
      if (v->ptr.state[s] == AB_BOOT_STATE_TRIAL && v->ptr.primary != (AbSlot) s)
        g_string_append_printf (problems, "slot %s is in trial but not primary; ", ab_slot_name ((AbSlot) s));
      /* the bootloader would boot (or fall back to) a slot that holds nothing */
      if (v->rec[s] == NULL
          && (v->ptr.state[s] == AB_BOOT_STATE_GOOD || v->ptr.state[s] == AB_BOOT_STATE_TRIAL))
        g_string_append_printf (problems, "slot %s is empty but the pointer marks it %s; ",
                                ab_slot_name ((AbSlot) s), ab_boot_state_name (v->ptr.state[s]));
    }
  check_state_files (sysroot, problems);
  if (problems->len)
    {
      g_string_truncate (problems, problems->len - 2);   /* the last "; " */
      add_check (checks, "state-consistent", FALSE, "%s", problems->str);
    }
  else
    add_check (checks, "state-consistent", TRUE,
               "boot pointer, slot records, refs and state files parse and agree");
}

/* Green, and about the deployment in use: the verdict names the running
 * slot and (when it records one) the commit that slot holds now. V is NULL
 * when the slots could not be read. */
static void
check_health (AbSysroot *sysroot, const AbSlotsView *v, GPtrArray *checks)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) root = NULL;
  if (!ab_format_read_state_at (sysroot->state_dfd, "verdict.json", &root, NULL, &error))
    {
      add_check (checks, "health-green", FALSE, "reading the verdict: %s", error->message);
      return;
    }
  JsonObject *o = root && JSON_NODE_HOLDS_OBJECT (root) ? json_node_get_object (root) : NULL;
  const char *verdict = o ? ab_json_get_string (o, "verdict", "none") : "none";
  const char *slot = o ? ab_json_get_string (o, "slot", NULL) : NULL;
  const char *commit = o ? ab_json_get_string (o, "commit", NULL) : NULL;
  const char *at = o ? ab_json_get_string (o, "at", NULL) : NULL;
  AbSlot running = v ? ab_sysroot_running_slot (sysroot, &v->ptr) : sysroot->booted;
  const AbSlotRecord *rec = v && running != AB_SLOT_NONE ? v->rec[running] : NULL;
  g_autoptr(GString) failed = g_string_new (NULL);
  JsonArray *hooks = o && json_object_has_member (o, "failed_hooks")
                     && JSON_NODE_HOLDS_ARRAY (json_object_get_member (o, "failed_hooks"))
                         ? ab_json_get_array (o, "failed_hooks") : NULL;
  for (guint i = 0; hooks && i < json_array_get_length (hooks); i++)
    g_string_append_printf (failed, "%s%s", failed->len ? ", " : " (failed: ",
                            json_node_get_string (json_array_get_element (hooks, i)) ?: "?");
  if (failed->len)
    g_string_append_c (failed, ')');
  if (!g_str_equal (verdict, "green"))
    add_check (checks, "health-green", FALSE, "last health verdict: %s%s%s%s", verdict,
               failed->str, at ? " at " : "", at ? at : "");
  else if (running == AB_SLOT_NONE || g_strcmp0 (slot, ab_slot_name (running)) != 0)
    add_check (checks, "health-green", FALSE,
               "last health verdict is green, but for slot %s, not the running slot %s",
               slot ? slot : "(none)", running != AB_SLOT_NONE ? ab_slot_name (running) : "(none)");
  else if (commit && rec && g_strcmp0 (commit, rec->commit) != 0)
    add_check (checks, "health-green", FALSE,
               "last health verdict is green, but for commit %.12s, not %.12s that slot %s holds now",
               commit, rec->commit, slot);
  else
    add_check (checks, "health-green", TRUE, "last health verdict: green (slot %s%s%s)", slot,
               at ? ", at " : "", at ? at : "");
}

/* Whether another process holds the sysroot lock. Read-only: the lock file
 * is opened read-only and only probed with a shared lock, released at once. */
static gboolean
lock_is_held (AbSysroot *sysroot, gboolean *held, GError **error)
{
  *held = FALSE;
  ab_autofd fd = openat (sysroot->abdeploy_dfd, "lock", O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT)
    return TRUE;
  if (fd >= 0 && flock (fd, LOCK_SH | LOCK_NB) == 0)
    return TRUE;
  if (fd >= 0 && errno == EWOULDBLOCK)
    {
      *held = TRUE;
      return TRUE;
    }
  g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno), "probing abdeploy/lock: %s",
               g_strerror (errno));
  return FALSE;
}

/* A transaction is stuck when it is unfinished and nobody works on it. */
static void
check_transaction (AbSysroot *sysroot, GPtrArray *checks)
{
  g_autoptr(AbTransaction) t = NULL;
  g_autoptr(GError) error = NULL;
  if (!ab_transaction_load (sysroot->state_dfd, &t, &error))
    {
      add_check (checks, "no-stuck-transaction", FALSE, "%s", error->message);
      return;
    }
  if (!ab_transaction_is_open (t))
    {
      add_check (checks, "no-stuck-transaction", TRUE, "no unfinished update transaction");
      return;
    }
  gboolean held = FALSE;
  if (!lock_is_held (sysroot, &held, &error))
    add_check (checks, "no-stuck-transaction", FALSE,
               "update to %s is unfinished (phase %s) and whether an abdeploy works on it is "
               "unknown: %s", t->version, ab_phase_name (t->phase), error->message);
  else
    add_check (checks, "no-stuck-transaction", held,
               held ? "update to %s is in progress (phase %s)"
                    : "update to %s is unfinished (phase %s%s%s); run abdeploy resume or resume --abandon",
               t->version, ab_phase_name (t->phase), t->reason ? ": " : "", t->reason ? t->reason : "");
}

GPtrArray *
ab_verify_run (AbSysroot *sysroot, const AbVerifyOptions *opts, GError **error)
{
  g_autoptr(GPtrArray) checks = g_ptr_array_new_with_free_func ((GDestroyNotify) ab_check_free);
  g_auto(AbSlotsView) v = { 0 };
  g_autoptr(GError) local = NULL;
  if (ab_sysroot_load_view (sysroot, &v, &local))
    {
      check_booted_primary_good (sysroot, &v, checks);
      check_tree (sysroot, &v, opts, checks);
      check_consistency (sysroot, &v, NULL, checks);
      check_health (sysroot, &v, checks);
    }
  else
    {
      /* Every check is still reported; those that need the slots fail. */
      add_check (checks, "booted-primary-good", FALSE,
                 "not checked: the boot pointer or the slot records cannot be read");
      add_check (checks, "tree-matches-commit", FALSE,
                 "not checked: the boot pointer or the slot records cannot be read");
      check_consistency (sysroot, NULL, local, checks);
      check_health (sysroot, NULL, checks);
    }
  check_transaction (sysroot, checks);
  return g_steal_pointer (&checks);
}

gboolean
ab_verify_all_passed (GPtrArray *checks)
{
  for (guint i = 0; i < checks->len; i++)
    if (!((AbCheck *) checks->pdata[i])->passed)
      return FALSE;
  return TRUE;
}

JsonNode *
ab_verify_to_json (GPtrArray *checks)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "passed");
  json_builder_add_boolean_value (b, ab_verify_all_passed (checks));
  json_builder_set_member_name (b, "checks");
  json_builder_begin_array (b);
  for (guint i = 0; i < checks->len; i++)
    {
      AbCheck *c = checks->pdata[i];
      json_builder_begin_object (b);
      ab_json_add_string (b, "name", c->name);
      json_builder_set_member_name (b, "passed");
      json_builder_add_boolean_value (b, c->passed);
      ab_json_add_string (b, "reason", c->reason);
      json_builder_end_object (b);
    }
  json_builder_end_array (b);
  json_builder_end_object (b);
  return json_builder_get_root (b);
}

JsonNode *
ab_version_report (AbSysroot *sysroot, GError **error)
{
  g_auto(AbSlotsView) v = { 0 };
  if (!ab_sysroot_load_view (sysroot, &v, error))
    return NULL;
  AbSlot s = ab_sysroot_running_slot (sysroot, &v.ptr);
  const AbSlotRecord *rec = s != AB_SLOT_NONE ? v.rec[s] : NULL;
  const char *commit = rec ? rec->commit : NULL;
  g_autofree char *srcrev = ab_content_commit_meta (sysroot->repo, commit, "source-revision", NULL);
  g_autofree char *built = ab_content_commit_meta (sysroot->repo, commit, "build-time", NULL);
  /* The commit's own version; "version" is the release's (they differ
   * for a release promoted without a rebuild, issue 17). */
  g_autofree char *build_version = commit ? ab_content_commit_version (sysroot->repo, commit, NULL)
                                          : NULL;
  g_autoptr(JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  ab_json_add_string (b, "abdeploy_version", PACKAGE_VERSION);
  ab_json_add_string (b, "os", sysroot->os);
  ab_json_add_string (b, "booted_slot", ab_slot_name (sysroot->booted));
  ab_json_add_string (b, "slot", ab_slot_name (s));
  ab_json_add_string (b, "version", rec ? rec->version : NULL);
  ab_json_add_string (b, "build_version", build_version);
  ab_json_add_string (b, "commit", rec ? rec->commit : NULL);
  ab_json_add_string (b, "source_revision", srcrev);
  ab_json_add_string (b, "build_time", built);
  /* An interrupted restore: what the other members show may be part old,
   * part restored until a command that writes completes it. */
  json_builder_set_member_name (b, "restore_pending");
  json_builder_add_boolean_value (b, sysroot->restore_pending);
  json_builder_end_object (b);
  return json_builder_get_root (b);
}
