/* Publisher: the content gate of publish commit. */
#include "config.h"
#include "ab-publish-private.h"
#include "ab-util.h"

#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>

/* ---- the content gate of publish commit ----
 * Image trees are often built by an unprivileged user: the commit records
 * root (uid and gid 0) as the owner of every file, keeping modes and
 * extended attributes. A setuid, setgid or file-capability bit therefore
 * means root's privileges on every device. Invariant: such a bit reaches a
 * commit only when the tree already gave it to root (setuid and
 * capabilities: uid 0; setgid: gid 0) or the publisher allowed the file by
 * name; and every file name is valid UTF-8 without control characters, so
 * that line-based tools (and the health hooks) read it as it is. */

#define CAPABILITY_XATTR "security.capability"
#define MAX_GATE_REPORTS 50

static void
gate_report (GPtrArray *list, const char *path, const char *fmt, ...) G_GNUC_PRINTF (3, 4);

static void
gate_report (GPtrArray *list, const char *path, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *what = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_autofree char *shown = g_strescape (path, NULL);
  g_ptr_array_add (list, g_strdup_printf ("%s: %s", shown, what));
}

/* Valid UTF-8 without control characters (C0, DEL, C1). */
static gboolean
name_is_safe (const char *name)
{
  if (!g_utf8_validate (name, -1, NULL))
    return FALSE;
  for (const char *c = name; *c; c = g_utf8_next_char (c))
    if (g_unichar_iscntrl (g_utf8_get_char (c)))
      return FALSE;
  return TRUE;
}

static gboolean
has_capabilities (AbPublishGate *g, const char *path)
{
  g_autofree char *proc = g_strdup_printf ("/proc/self/fd/%d%s", g->tree_dfd, path);
  return lgetxattr (proc, CAPABILITY_XATTR, NULL, 0) >= 0;
}

static gboolean
is_allowed (AbPublishGate *g, const char *path)
{
  if (g->o->allow_privileged)
    return TRUE;
  for (const char *const *a = g->o->allow_setuid; a && *a; a++)
    if (strcmp (*a, path) == 0 || (**a != '/' && strcmp (*a, path + 1) == 0))
      return TRUE;
  return FALSE;
}

/* Which privileges the file gets in the image that it did not have in the
 * tree ("" when none); *out_bits names every privilege bit it carries. */
static void
describe_privileges (AbPublishGate *g, const char *path, GFileInfo *info, GString *gained,
                     GString *bits)
{
  guint32 mode = g_file_info_get_attribute_uint32 (info, "unix::mode");
  guint32 uid = g_file_info_get_attribute_uint32 (info, "unix::uid");
  guint32 gid = g_file_info_get_attribute_uint32 (info, "unix::gid");
  gboolean caps = has_capabilities (g, path);
  if (mode & S_ISUID)
    g_string_append (bits, bits->len ? ", setuid" : "setuid");
  if (mode & S_ISGID)
    g_string_append (bits, bits->len ? ", setgid" : "setgid");
  if (caps)
    g_string_append (bits, bits->len ? ", file capabilities" : "file capabilities");
  if (((mode & S_ISUID) || caps) && uid != 0)
    g_string_append_printf (gained, "owner uid %u", uid);
  if ((mode & S_ISGID) && gid != 0)
    g_string_append_printf (gained, "%sgroup gid %u", gained->len ? ", " : "", gid);
}

static void
gate_privileges (AbPublishGate *g, const char *path, GFileInfo *info)
{
  g_autoptr(GString) gained = g_string_new (NULL), bits = g_string_new (NULL);
  describe_privileges (g, path, info, gained, bits);
  if (bits->len == 0)
    return;
  if (gained->len == 0)
    gate_report (g->allowed, path, "%s, root's in the tree", bits->str);
  else if (is_allowed (g, path))
    gate_report (g->allowed, path, "%s, %s in the tree, root in the image: allowed by option",
                 bits->str, gained->str);
  else
    gate_report (g->refused, path, "%s, %s in the tree, root in the image", bits->str,
                 gained->str);
}

/* A path the layout check may take as a kernel: /boot/NAME or
 * /usr/lib/modules/KVER/vmlinuz. */
static gboolean
is_kernel_candidate (const char *path)
{
  if (g_str_has_prefix (path, "/boot/"))
    return strchr (path + strlen ("/boot/"), '/') == NULL;
  if (!g_str_has_prefix (path, "/usr/lib/modules/") || !g_str_has_suffix (path, "/vmlinuz"))
    return FALSE;
  const char *kver = path + strlen ("/usr/lib/modules/");
  return strchr (kver, '/') == path + strlen (path) - strlen ("/vmlinuz");
}

static void
record_kind (AbPublishGate *g, const char *path, GFileInfo *info)
{
  if (g->kinds == NULL || !is_kernel_candidate (path))
    return;
  gboolean regular = g_file_info_get_file_type (info) == G_FILE_TYPE_REGULAR
                     && g_file_info_get_size (info) > 0;
  g_hash_table_insert (g->kinds, g_strdup (path),
                       GINT_TO_POINTER (regular ? AB_PUBLISH_FILE_REGULAR : AB_PUBLISH_FILE_OTHER));
}

OstreeRepoCommitFilterResult
ab_publish_gate_filter (OstreeRepo *repo, const char *path, GFileInfo *info, gpointer user_data)
{
  AbPublishGate *g = user_data;
  if (g_file_info_get_file_type (info) != G_FILE_TYPE_DIRECTORY)
    {
      gint64 now = g_get_monotonic_time ();
      g->files++;
      if (now - g->last_us >= G_USEC_PER_SEC / 10)
        {
          g->last_us = now;
          ab_event_progress (g->events, AB_PROGRESS_UNIT_FILES, g->files, g->total);
        }
    }
  const char *name = strrchr (path, '/');
  if (name && name[1] != '\0' && !name_is_safe (name + 1))
    {
      gate_report (g->refused, path, "a file name with a control character (newline, tab, "
                   "...) or invalid UTF-8");
      return OSTREE_REPO_COMMIT_FILTER_SKIP;
    }
  if (g_file_info_get_file_type (info) == G_FILE_TYPE_REGULAR)
    gate_privileges (g, path, info);
  record_kind (g, path, info);
  g_file_info_set_attribute_uint32 (info, "unix::uid", 0);
  g_file_info_set_attribute_uint32 (info, "unix::gid", 0);
  return OSTREE_REPO_COMMIT_FILTER_ALLOW;
}

/* Fails with every refusal of the gate (up to MAX_GATE_REPORTS) listed. */
gboolean
ab_publish_gate_verdict (AbPublishGate *g, GError **error)
{
  if (g->refused->len == 0)
    return TRUE;
  g_autoptr(GString) msg = g_string_new (NULL);
  g_string_append_printf (msg, "Refusing to commit %s: %u file(s) cannot be published as they "
                          "are (the commit records root as the owner of every file):",
                          g->o->tree, g->refused->len);
  for (guint i = 0; i < g->refused->len && i < MAX_GATE_REPORTS; i++)
    g_string_append_printf (msg, "\n  %s", (const char *) g->refused->pdata[i]);
  if (g->refused->len > MAX_GATE_REPORTS)
    g_string_append_printf (msg, "\n  ... and %u more", g->refused->len - MAX_GATE_REPORTS);
  g_string_append (msg, "\nRename a file whose name is unsafe. Give a privileged file to root "
                   "in the tree (chown 0:0, then set its bits again), drop its bits (chmod u-s,g-s; "
                   "setcap -r), or allow it with --allow-setuid=PATH (every one: "
                   "--allow-privileged); nothing was committed");
  g_set_error_literal (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_REFUSED, msg->str);
  return FALSE;
}
