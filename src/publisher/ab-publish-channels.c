/* Publisher: the channel files switch as a whole (channel generations). */
#include "config.h"
#include "ab-publish-private.h"
#include "ab-util.h"
#include "ab-crashpoint.h"
#include "ab-fsutil.h"
#include "ab-gpg.h"
#include "ab-json.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

/* ---- channel generations ----
 * REPO/abdeploy/channels is a symlink to a generation directory
 * REPO/abdeploy/channels.<G>/ that holds every channel's C.json and
 * C.json.sig (the file names devices of every version read).
 * Invariant: a generation is complete (every file written and fsynced)
 * before the symlink names it and is never written again; the symlink is
 * replaced by one rename. Whatever moment a publisher is killed at, a reader
 * finds the old or the new set of channel files, each manifest with its own
 * signature. A repository of abdeploy 0.2.0, where channels is a directory,
 * is converted by its first write (the directory and the new symlink are
 * exchanged with RENAME_EXCHANGE). What a killed publisher leaves (newer
 * generations, the exchanged-out directory, the temporary symlink) is
 * removed by the next run; KEEP_GENERATIONS generations stay. */

#define CHANNELS_PARENT "abdeploy"
#define CHANNELS_NAME "channels"
#define CHANNELS_GEN_PREFIX CHANNELS_NAME "."
#define CHANNELS_TMP_LINK ".channels.new"
#define KEEP_GENERATIONS 3

typedef struct
{
  guint64 gen;    /* generation the symlink names; 0: none */
  gboolean is_dir; /* channels is a real directory (abdeploy 0.2.0) */
} Channels;

static gboolean
parse_generation (const char *name, guint64 *out)
{
  if (!g_str_has_prefix (name, CHANNELS_GEN_PREFIX))
    return FALSE;
  const char *digits = name + strlen (CHANNELS_GEN_PREFIX);
  return *digits != '0' && g_ascii_string_to_unsigned (digits, 10, 1, G_MAXUINT32, out, NULL);
}

/* What REPO/abdeploy/channels is now. */
static gboolean
channels_state (AbPublishSession *s, int parent_dfd, Channels *out, GError **error)
{
  char target[256];
  *out = (Channels) { 0, FALSE };
  ssize_t n = readlinkat (parent_dfd, CHANNELS_NAME, target, sizeof target - 1);
  if (n < 0 && (errno == ENOENT || errno == EINVAL))
    {
      out->is_dir = errno == EINVAL;
      return TRUE;
    }
  if (n >= 0)
    target[n] = '\0';
  if (n >= 0 && parse_generation (target, &out->gen))
    return TRUE;
  g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_FAILED,
               "%s/" AB_PUBLISH_CHANNELS_DIR " is a symlink to \"%s\", not to a generation "
               "directory " CHANNELS_GEN_PREFIX "N; point it at the newest generation again "
               "(ln -sfn " CHANNELS_GEN_PREFIX "N %s/" AB_PUBLISH_CHANNELS_DIR ")", s->p->repo,
               n >= 0 ? target : g_strerror (errno), s->p->repo);
  return FALSE;
}

static int
compare_u64 (gconstpointer a, gconstpointer b)
{
  guint64 x = *(const guint64 *) a, y = *(const guint64 *) b;
  return x < y ? -1 : x > y;
}

/* The generation directories present, in ascending order. */
static GArray *
list_generations (int parent_dfd)
{
  GArray *gens = g_array_new (FALSE, FALSE, sizeof (guint64));
  /* A new open, not dup(): a dup shares the offset of an earlier listing. */
  int dfd = openat (parent_dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d = dfd >= 0 ? fdopendir (dfd) : NULL;
  if (d == NULL && dfd >= 0)
    (void) close (dfd);
  for (struct dirent *e; d && (e = readdir (d)) != NULL;)
    {
      guint64 g = 0;
      if (parse_generation (e->d_name, &g))
        g_array_append_val (gens, g);
    }
  if (d)
    closedir (d);
  g_array_sort (gens, compare_u64);
  return gens;
}

/* Removes what a killed publisher left and the generations beyond the
 * KEEP_GENERATIONS newest up to the current one. */
static gboolean
clean_generations (AbPublishSession *s, int parent_dfd, const Channels *c, GError **error)
{
  if (!ab_fs_rm_rf_at (parent_dfd, CHANNELS_TMP_LINK, error))
    return FALSE;
  g_autoptr(GArray) gens = list_generations (parent_dfd);
  guint kept = 0;
  for (guint i = gens->len; i-- > 0;)
    {
      guint64 g = g_array_index (gens, guint64, i);
      gboolean keep = g == c->gen || (g < c->gen && ++kept < KEEP_GENERATIONS);
      g_autofree char *name = g_strdup_printf (CHANNELS_GEN_PREFIX "%" G_GUINT64_FORMAT, g);
      if (!keep && !ab_fs_rm_rf_at (parent_dfd, name, error))
        return FALSE;
    }
  return TRUE;
}

static gboolean
open_parent (AbPublishSession *s, int *out_dfd, GError **error)
{
  if (!ab_fs_mkdir_p_at (s->dfd, CHANNELS_PARENT, 0755, error))
    return FALSE;
  *out_dfd = ab_fs_opendir_at (s->dfd, CHANNELS_PARENT, error);
  return *out_dfd >= 0;
}

/* ---- the channel index ----
 * Every generation also holds AB_PUBLISH_CHANNEL_INDEX (the names of its
 * channels, sorted) and its detached signature, made with the key that
 * signs the manifests, so that a device that asks for a channel the repo
 * does not have can list those it has. Its name starts with '_', which no
 * channel name does, so it never collides with a channel's C.json. */

static int
compare_names (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

/* Whether NAME is a channel's manifest file (C.json) of a generation. */
static gboolean
is_manifest_name (const char *name)
{
  return g_str_has_suffix (name, ".json") && g_ascii_isalnum (name[0]);
}

/* The channel names of the current generation and NAME's, sorted. */
static GPtrArray *
channel_names (int parent_dfd, const Channels *c, const char *name)
{
  GPtrArray *names = g_ptr_array_new_with_free_func (g_free);
  g_ptr_array_add (names, g_strndup (name, strlen (name) - strlen (".json")));
  g_autofree char *dir = g_strdup (CHANNELS_NAME);
  ab_autofd dfd = c->gen || c->is_dir ? ab_fs_opendir_at (parent_dfd, dir, NULL) : -1;
  DIR *d = dfd >= 0 ? fdopendir (ab_steal_fd (&dfd)) : NULL;
  for (struct dirent *e; d && (e = readdir (d)) != NULL;)
    if (is_manifest_name (e->d_name) && strcmp (e->d_name, name) != 0)
      g_ptr_array_add (names, g_strndup (e->d_name, strlen (e->d_name) - strlen (".json")));
  if (d)
    closedir (d);
  g_ptr_array_sort (names, compare_names);
  return names;
}

/* The index of the channels NAMES: {"format":1,"channels":[...]} and its
 * signature by the publisher's key. */
static gboolean
make_index (AbPublishSession *s, GPtrArray *names, GBytes **out_text, GBytes **out_sig,
            GError **error)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "format");
  json_builder_add_int_value (b, 1);
  json_builder_set_member_name (b, "channels");
  json_builder_begin_array (b);
  for (guint i = 0; i < names->len; i++)
    json_builder_add_string_value (b, names->pdata[i]);
  json_builder_end_array (b);
  json_builder_end_object (b);
  g_autoptr(JsonNode) root = json_builder_get_root (b);
  char *text = ab_json_to_text (root);
  *out_text = g_bytes_new_take (text, strlen (text));
  return ab_gpg_sign_detached (s->p->gpg_homedir, s->p->gpg_key, *out_text, out_sig, error);
}

static gboolean
write_bytes_at (int dfd, const char *name, GBytes *bytes, GError **error)
{
  gsize len = 0;
  const void *data = g_bytes_get_data (bytes, &len);
  return ab_fs_replace_at (dfd, name, data, len, 0644, error);
}

/* Links every file of the current channels directory but SKIP, SKIP.sig
 * and the index into the new generation NEW_DFD. */
static gboolean
link_others (AbPublishSession *s, int parent_dfd, const Channels *c, int new_dfd, const char *skip,
             GError **error)
{
  if (c->gen == 0 && !c->is_dir)
    return TRUE;
  ab_autofd old_dfd = ab_fs_opendir_at (parent_dfd, CHANNELS_NAME, error);
  if (old_dfd < 0)
    return FALSE;
  g_autofree char *skip_sig = g_strconcat (skip, ".sig", NULL);
  DIR *d = fdopendir (ab_steal_fd (&old_dfd));
  gboolean ok = d != NULL;
  for (struct dirent *e; ok && (e = readdir (d)) != NULL;)
    {
      if (strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0
          || strcmp (e->d_name, skip) == 0 || strcmp (e->d_name, skip_sig) == 0
          || g_str_has_prefix (e->d_name, AB_PUBLISH_CHANNEL_INDEX))
        continue;
      ok = linkat (dirfd (d), e->d_name, new_dfd, e->d_name, 0) == 0;
    }
  int saved = errno;
  if (d)
    closedir (d);
  if (!ok)
    g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_FAILED, "Linking the channel files "
                 "of %s/" AB_PUBLISH_CHANNELS_DIR " into a new generation: %s", s->p->repo,
                 g_strerror (saved));
  return ok;
}

/* Writes generation GEN: the other channels' files as they are, NAME
 * (C.json) with its signature, and the index INDEX with its signature
 * INDEX_SIG, everything fsynced. */
static gboolean
stage_generation (AbPublishSession *s, int parent_dfd, const Channels *c, guint64 gen,
                  const char *name, GBytes *text, GBytes *sig, GBytes *index, GBytes *index_sig,
                  GError **error)
{
  g_autofree char *dir = g_strdup_printf (CHANNELS_GEN_PREFIX "%" G_GUINT64_FORMAT, gen);
  g_autofree char *sig_name = g_strconcat (name, ".sig", NULL);
  if (!ab_fs_rm_rf_at (parent_dfd, dir, error) || !ab_fs_mkdir_p_at (parent_dfd, dir, 0755, error))
    return FALSE;
  ab_autofd new_dfd = ab_fs_opendir_at (parent_dfd, dir, error);
  gsize text_len = 0, sig_len = 0;
  const void *text_data = g_bytes_get_data (text, &text_len);
  const void *sig_data = g_bytes_get_data (sig, &sig_len);
  if (new_dfd < 0 || !link_others (s, parent_dfd, c, new_dfd, name, error)
      || !ab_fs_replace_at (new_dfd, name, text_data, text_len, 0644, error))
    return FALSE;
  ab_crash_point ("publish:manifest");
  return ab_fs_replace_at (new_dfd, sig_name, sig_data, sig_len, 0644, error)
         && write_bytes_at (new_dfd, AB_PUBLISH_CHANNEL_INDEX, index, error)
         && write_bytes_at (new_dfd, AB_PUBLISH_CHANNEL_INDEX ".sig", index_sig, error)
         && ab_fs_fsync_dir_at (new_dfd, ".", error);
}

/* Points REPO/abdeploy/channels at generation GEN in one rename. */
static gboolean
switch_generation (AbPublishSession *s, int parent_dfd, const Channels *c, guint64 gen,
                   GError **error)
{
  g_autofree char *target = g_strdup_printf (CHANNELS_GEN_PREFIX "%" G_GUINT64_FORMAT, gen);
  if (symlinkat (target, parent_dfd, CHANNELS_TMP_LINK) < 0)
    {
      g_set_error (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_FAILED,
                   "Creating the channels symlink in %s/" CHANNELS_PARENT ": %s", s->p->repo,
                   g_strerror (errno));
      return FALSE;
    }
  ab_crash_point ("publish:staged");
  if (c->is_dir)
    {
      /* 0.2.0 layout: swap the directory out, then remove it. */
      if (!ab_fs_exchange_at (parent_dfd, CHANNELS_TMP_LINK, CHANNELS_NAME, error)
          || !ab_fs_fsync_dir_at (parent_dfd, ".", error))
        return FALSE;
      ab_crash_point ("publish:switched");
      return ab_fs_rm_rf_at (parent_dfd, CHANNELS_TMP_LINK, error);
    }
  if (!ab_fs_rename_at (parent_dfd, CHANNELS_TMP_LINK, CHANNELS_NAME, error)
      || !ab_fs_fsync_dir_at (parent_dfd, ".", error))
    return FALSE;
  ab_crash_point ("publish:switched");
  return TRUE;
}

/* Makes NAME (C.json) with SIG the current files of the channel, atomically. */
gboolean
ab_publish_channel_files (AbPublishSession *s, const char *name, GBytes *text, GBytes *sig,
                          GError **error)
{
  ab_autofd parent_dfd = -1;
  Channels c;
  if (!open_parent (s, &parent_dfd, error) || !channels_state (s, parent_dfd, &c, error)
      || !clean_generations (s, parent_dfd, &c, error))
    return FALSE;
  g_autoptr(GPtrArray) names = channel_names (parent_dfd, &c, name);
  g_autoptr(GBytes) index = NULL, index_sig = NULL;
  if (!make_index (s, names, &index, &index_sig, error))
    return FALSE;
  g_autoptr(GArray) gens = list_generations (parent_dfd);
  guint64 gen = MAX (c.gen, gens->len ? g_array_index (gens, guint64, gens->len - 1) : 0) + 1;
  if (gen > G_MAXUINT32)
    gen = 1; /* never reached: one generation per publish */
  return stage_generation (s, parent_dfd, &c, gen, name, text, sig, index, index_sig, error)
         && switch_generation (s, parent_dfd, &c, gen, error)
         && clean_generations (s, parent_dfd, &(Channels) { gen, FALSE }, error);
}

/* Removes what a publisher killed mid-write left behind; run by every
 * publisher command once it holds the lock. */
gboolean
ab_publish_repair_channels (AbPublishSession *s, GError **error)
{
  ab_autofd parent_dfd = -1;
  Channels c;
  if (!ab_fs_exists_at (s->dfd, CHANNELS_PARENT))
    return TRUE;
  return open_parent (s, &parent_dfd, error) && channels_state (s, parent_dfd, &c, error)
         && clean_generations (s, parent_dfd, &c, error);
}
