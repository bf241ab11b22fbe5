#include "config.h"
#include "ab-backup.h"
#include "ab-content.h"
#include "ab-config.h"
#include "ab-crashpoint.h"
#include "ab-deploy.h"
#include "ab-format.h"
#include "ab-fsutil.h"
#include "ab-history.h"
#include "ab-lock.h"
#include "ab-migrate.h"
#include "ab-mount.h"
#include "ab-update.h"
#include "ab-cmdline.h"
#include "ab-kernel.h"
#include "ab-util.h"
#include "ab-verify.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <json-glib/json-glib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

G_DEFINE_QUARK (ab-backup-error-quark, ab_backup_error)

/* Trees saved whole, relative to the sysroot. */
static const char *const saved_dirs[] = { "etc/abdeploy", "abdeploy/state" };

/* The manifest entry of F: what the reader checks the member against. */
static void
add_entry (JsonBuilder *b, const AbMigrateFile *f)
{
  g_autofree char *sum = g_compute_checksum_for_bytes (G_CHECKSUM_SHA256, f->data);
  json_builder_begin_object (b);
  ab_json_add_string (b, "path", f->rel);
  if (S_ISLNK (f->mode))
    ab_json_add_string (b, "type", "symlink");
  json_builder_set_member_name (b, "mode");
  json_builder_add_int_value (b, f->mode & 07777);
  json_builder_set_member_name (b, "size");
  json_builder_add_int_value (b, (gint64) g_bytes_get_size (f->data));
  ab_json_add_string (b, "sha256", sum);
  json_builder_end_object (b);
}

/* The member of the entry CHILD of SYSROOT_DFD (ST its lstat), or NULL
 * with *error unset for what is not archived (not a file or a link). */
static AbMigrateFile *
read_member (int sysroot_dfd, const char *child, const struct stat *st, GError **error)
{
  if (S_ISREG (st->st_mode))
    {
      g_autofree char *data = NULL;
      gsize len = 0;
      if (!ab_fs_read_at (sysroot_dfd, child, &data, &len, error))
        return NULL;
      return ab_migrate_file_new (child, data, len, st->st_mode);
    }
  if (!S_ISLNK (st->st_mode))
    return NULL;
  char target[PATH_MAX];
  ssize_t n = readlinkat (sysroot_dfd, child, target, sizeof target);
  if (n < 0 || n >= (ssize_t) sizeof target)
    {
      g_set_error (error, AB_BACKUP_ERROR, AB_BACKUP_ERROR_FAILED, "Reading link %s: %s",
                   child, n < 0 ? g_strerror (errno) : "target too long");
      return NULL;
    }
  return ab_migrate_file_new (child, target, (gsize) n, st->st_mode);
}

static int
compare_names (gconstpointer a, gconstpointer b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

/* Every name in REL but the hidden ones (lock files and temporaries),
 * sorted so that archives of the same tree list members alike. */
static GPtrArray *
list_dir (int sysroot_dfd, const char *rel, GError **error)
{
  int fd = openat (sysroot_dfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 && errno != ENOENT)
    {
      g_set_error (error, AB_BACKUP_ERROR, AB_BACKUP_ERROR_FAILED, "Opening %s: %s", rel,
                   g_strerror (errno));
      return NULL;
    }
  GPtrArray *names = g_ptr_array_new_with_free_func (g_free);
  DIR *d = fd >= 0 ? fdopendir (fd) : NULL;
  struct dirent *de;
  while (d && (de = readdir (d)) != NULL)
    if (de->d_name[0] != '.')
      g_ptr_array_add (names, g_strdup (de->d_name));
  if (d)
    closedir (d);
  g_ptr_array_sort (names, compare_names);
  return names;
}

/* Adds every regular file and symbolic link below REL to FILES. A link is
 * kept as a link: trusted keys are often links into a keyring directory. */
static gboolean
add_tree (GPtrArray *files, int sysroot_dfd, const char *rel, GError **error)
{
  g_autoptr(GPtrArray) names = list_dir (sysroot_dfd, rel, error);
  if (names == NULL)
    return FALSE;
  for (guint i = 0; i < names->len; i++)
    {
      g_autofree char *child = g_build_filename (rel, names->pdata[i], NULL);
      struct stat st;
      if (fstatat (sysroot_dfd, child, &st, AT_SYMLINK_NOFOLLOW) < 0)
        continue;
      if (S_ISDIR (st.st_mode))
        {
          if (!add_tree (files, sysroot_dfd, child, error))
            return FALSE;
          continue;
        }
      AbMigrateFile *f = read_member (sysroot_dfd, child, &st, error);
      if (f == NULL && error != NULL && *error != NULL)
        return FALSE;
      if (f != NULL)
        g_ptr_array_add (files, f);
    }
  return TRUE;
}

static void
add_pointer_and_refs (JsonBuilder *b, AbSysroot *sysroot, const AbBootPointer *ptr)
{
  g_autoptr(GHashTable) vars = ab_boot_pointer_to_vars (ptr);
  json_builder_set_member_name (b, "pointer");
  json_builder_begin_object (b);
  GHashTableIter it;
  gpointer k, v;
  g_hash_table_iter_init (&it, vars);
  while (g_hash_table_iter_next (&it, &k, &v))
    ab_json_add_string (b, k, v);
  json_builder_end_object (b);
  json_builder_set_member_name (b, "refs");
  json_builder_begin_object (b);
  for (int s = 0; s < AB_N_SLOTS; s++)
    {
      g_autofree char *ref = g_strdup_printf ("abdeploy/slot/%s", ab_slot_name ((AbSlot) s));
      g_autofree char *rev = NULL;
      (void) ostree_repo_resolve_rev (sysroot->repo, ref, TRUE, &rev, NULL);
      ab_json_add_string (b, ref, rev);
    }
  json_builder_end_object (b);
}

/* The manifest: header, pointer, refs and an entry per member. */
static char *
manifest_text (AbSysroot *sysroot, const AbBootPointer *ptr, GPtrArray *files)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autofree char *now = ab_now_iso8601 ();
  json_builder_begin_object (b);
  /* The archive has the format of the files it holds: those of a layout-1
   * sysroot (not migrated yet; backup does not write to the sysroot) make
   * a format-1 archive, as abdeploy 0.1.0 wrote. */
  json_builder_set_member_name (b, "format");
  json_builder_add_int_value (b, sysroot->layout < AB_BACKUP_FORMAT ? sysroot->layout : AB_BACKUP_FORMAT);
  ab_json_add_string (b, "kind", "abdeploy-backup");
  ab_json_add_string (b, "created_at", now);
  ab_json_add_string (b, "abdeploy_version", PACKAGE_VERSION);
  ab_json_add_string (b, "os", sysroot->os);
  ab_json_add_string (b, "bootloader", ab_bootloader_name (sysroot->bootloader));
  add_pointer_and_refs (b, sysroot, ptr);
  json_builder_set_member_name (b, "files");
  json_builder_begin_array (b);
  for (guint i = 0; i < files->len; i++)
    add_entry (b, files->pdata[i]);
  json_builder_end_array (b);
  json_builder_end_object (b);
  g_autoptr(JsonNode) root = json_builder_get_root (b);
  return json_to_string (root, TRUE);
}

GBytes *
ab_backup_build (AbSysroot *sysroot, AbBackupCompression c, guint *out_files, GError **error)
{
  AbBootPointer ptr;
  /* The shared lock makes the archive one consistent snapshot: no writer
   * changes the state, the pointer or the refs while they are read. */
  ab_autofd lock = ab_lock_acquire_shared (sysroot->abdeploy_dfd, error);
  if (lock < 0 || !ab_bootloader_load (sysroot->bootloader, &ptr, error))
    return NULL;
  g_autoptr(GPtrArray) files = g_ptr_array_new_with_free_func ((GDestroyNotify) ab_migrate_file_free);
  ab_event_phase (sysroot->events, "collect");
  for (guint i = 0; i < G_N_ELEMENTS (saved_dirs); i++)
    {
      if (!add_tree (files, sysroot->dfd, saved_dirs[i], error))
        return NULL;
      ab_event_progress (sysroot->events, AB_PROGRESS_UNIT_FILES, files->len,
                         i + 1 == G_N_ELEMENTS (saved_dirs) ? files->len : AB_PROGRESS_TOTAL_UNKNOWN);
    }
  g_autofree char *manifest = manifest_text (sysroot, &ptr, files);
  *out_files = files->len;
  return ab_backup_tar_write (manifest, files, c, error);
}

/* DATA as DFD/BASE, created whole: written and synced under a temporary
 * name, then renamed (without FORCE: only if BASE still does not exist). */
static gboolean
write_new (int dfd, const char *base, GBytes *data, gboolean force, GError **error)
{
  gsize len = 0;
  const void *bytes = g_bytes_get_data (data, &len);
  if (force)
    return ab_fs_replace_at (dfd, base, bytes, len, 0600, error);
  g_autofree char *tmp = g_strdup_printf (".%s.abdeploy-new", base);
  if (!ab_fs_replace_at (dfd, tmp, bytes, len, 0600, error))
    return FALSE;
  if (renameat2 (dfd, tmp, dfd, base, RENAME_NOREPLACE) == 0)
    return ab_fs_fsync_dir_at (dfd, ".", error);
  int errsv = errno;
  (void) unlinkat (dfd, tmp, 0);
  if (errsv != EEXIST)
    return ab_throw_errno_prefix (error, errsv, "Renaming %s to %s", tmp, base);
  g_set_error (error, AB_BACKUP_ERROR, AB_BACKUP_ERROR_EXISTS,
               "%s appeared while the backup was written; it was left as it is", base);
  return FALSE;
}

gboolean
ab_backup_create (AbSysroot *sysroot, const char *output, gboolean force, guint *out_files,
                  GError **error)
{
  AbBackupCompression c;
  if (!ab_backup_compression_for_name (output, &c, error))
    return FALSE;
  if (!force && g_file_test (output, G_FILE_TEST_EXISTS | G_FILE_TEST_IS_SYMLINK))
    {
      g_set_error (error, AB_BACKUP_ERROR, AB_BACKUP_ERROR_EXISTS,
                   "%s exists; nothing was written. Pass --force to replace it, or choose "
                   "another file name", output);
      return FALSE;
    }
  g_autoptr(GBytes) archive = ab_backup_build (sysroot, c, out_files, error);
  if (archive == NULL)
    return FALSE;
  g_autofree char *dir = g_path_get_dirname (output);
  g_autofree char *base = g_path_get_basename (output);
  gint64 len = (gint64) g_bytes_get_size (archive);
  ab_event_phase (sysroot->events, "write");
  ab_event_progress (sysroot->events, AB_PROGRESS_UNIT_BYTES, 0, len);
  ab_autofd dfd = ab_fs_opendir_at (AT_FDCWD, dir, error);
  if (dfd < 0 || !write_new (dfd, base, archive, force, error))
    {
      if (!g_error_matches (*error, AB_BACKUP_ERROR, AB_BACKUP_ERROR_EXISTS))
        g_prefix_error (error, "Writing the backup to %s: ", output);
      return FALSE;
    }
  ab_event_progress (sysroot->events, AB_PROGRESS_UNIT_BYTES, (guint64) len, len);
  return TRUE;
}

/* ---- restore ---- */

#define STATE_REL "abdeploy/state"
#define STATE_STAGE ".state.restore"          /* in SYSROOT/abdeploy */
#define ETC_REL "etc/abdeploy"
#define ETC_STAGE "etc/.abdeploy.restore"
#define STATE_PREFIX STATE_REL "/"
#define ETC_PREFIX ETC_REL "/"

/* What restore needs of the sysroot. It works on a sysroot whose state is
 * wrecked: nothing is read from the state or the boot pointer. */
typedef struct
{
  int dfd;
  char *root;         /* the absolute path of dfd, resolved once by open_rescue() */
  int abdeploy_dfd;
  int slots_dfd;      /* -1 when SYSROOT/abdeploy/slots is missing */
  int boot_dfd;       /* -1 when SYSROOT/boot/abdeploy is missing */
  int lock_fd;        /* -1 when the caller holds the lock */
  gboolean record_missing_dirs;  /* slots_dfd or boot_dfd was missing */
  gint64 layout;
  OstreeRepo *repo;
  AbBootloader *bootloader;
  AbEventSink *events; /* borrowed; may be NULL */
  AbConfig *config;    /* the restored configuration, loaded once apply() put it in place */
  const char *os;      /* the archive's os name, borrowed */
} Rescue;

#define RESCUE_INIT { -1, NULL, -1, -1, -1, -1, FALSE, 0, NULL, NULL, NULL, NULL, NULL }

static void
rescue_clear (Rescue *r)
{
  int *fds[] = { &r->dfd, &r->abdeploy_dfd, &r->slots_dfd, &r->boot_dfd, &r->lock_fd };
  for (guint i = 0; i < G_N_ELEMENTS (fds); i++)
    ab_close_fdp (fds[i]);
  g_clear_object (&r->repo);
  g_clear_pointer (&r->root, g_free);
  g_clear_pointer (&r->bootloader, ab_bootloader_free);
  g_clear_pointer (&r->config, ab_config_free);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Rescue, rescue_clear)

/* The archive file, read whole once its size is known to be in bounds. */
static AbBackupArchive *
read_archive (const char *path, GBytes **out_bytes, GError **error)
{
  struct stat st;
  if (stat (path, &st) < 0)
    {
      g_set_error (error, AB_BACKUP_ERROR, AB_BACKUP_ERROR_FAILED, "Reading the backup %s: %s",
                   path, g_strerror (errno));
      return NULL;
    }
  if (!S_ISREG (st.st_mode) || st.st_size > AB_BACKUP_MAX_ARCHIVE_SIZE)
    {
      g_set_error (error, AB_BACKUP_ERROR, AB_BACKUP_ERROR_CORRUPT,
                   "The backup %s is not a regular file of at most %d MiB; nothing was changed",
                   path, AB_BACKUP_MAX_ARCHIVE_SIZE >> 20);
      return NULL;
    }
  g_autofree char *data = NULL;
  gsize len = 0;
  if (!g_file_get_contents (path, &data, &len, error))
    return NULL;
  AbBackupArchive *a = ab_backup_parse_archive ((const guint8 *) data, len, path, error);
  if (a != NULL)
    *out_bytes = g_bytes_new_take (g_steal_pointer (&data), len);
  return a;
}

static gboolean
check_commits (Rescue *r, const AbBackupArchive *a, GError **error)
{
  g_autoptr(GString) missing = g_string_new (NULL);
  for (int s = 0; s < AB_N_SLOTS; s++)
    {
      gboolean have = FALSE;
      if (a->refs[s] && (!ostree_repo_has_object (r->repo, OSTREE_OBJECT_TYPE_COMMIT, a->refs[s],
                                                  &have, NULL, NULL) || !have))
        g_string_append_printf (missing, "\n  %s (abdeploy/slot/%s)", a->refs[s],
                                ab_slot_name ((AbSlot) s));
    }
  if (missing->len == 0)
    return TRUE;
  g_autofree char *repo = g_build_filename (r->root, "ostree/repo", NULL);
  g_set_error (error, AB_BACKUP_ERROR, AB_BACKUP_ERROR_MISSING_COMMITS,
               "The backup refers to commits that are not in the repo; nothing was changed:%s\n"
               "Fetch each one first, e.g. abdeploy stage --from=URL|PATH COMMIT, or "
               "ostree --repo=%s pull REMOTE COMMIT, then restore again",
               missing->str, repo);
  return FALSE;
}

/* The marker of a checkout by restore (in abdeploy/slots): written before
 * the new tree is swapped in and removed only once the slot's kernel and
 * boot entry are installed and synced. While it exists the slot reads as
 * mismatched, so a restore run again (or the next writer completing the
 * journal) checks it out again and the pointer never marks it bootable
 * with another tree's kernel or entry. */
static char *
checkout_marker (AbSlot s)
{
  return g_strdup_printf (".%s.restoring", ab_slot_name (s));
}

/* Why slot S's tree does not hold COMMIT (a sample of its files, and its
 * kernel), or NULL when it does. */
static char *
slot_mismatch (Rescue *r, AbSlot s, const char *commit)
{
  if (r->slots_dfd < 0 || r->boot_dfd < 0)
    return g_strdup ("the sysroot has no abdeploy/slots or boot/abdeploy");
  /* ab_verify_tree() reads only the repo and the slots directory. */
  AbSysroot view = { .dfd = r->dfd, .slots_dfd = r->slots_dfd, .repo = r->repo };
  guint checked = 0;
  char *mismatch = NULL;
  g_autoptr(GError) local = NULL;
  if (!ab_verify_tree (&view, s, commit, FALSE, 0, &checked, &mismatch, &local))
    return g_strdup (local->message);
  g_autoptr(GError) no_kernel = NULL;
  if (mismatch == NULL && !ab_kernel_check_installed (r->boot_dfd, s, &no_kernel))
    mismatch = g_strdup (no_kernel->message);
  g_autofree char *marker = checkout_marker (s);
  if (mismatch == NULL && ab_fs_exists_at (r->slots_dfd, marker))
    mismatch = g_strdup ("a restore that checked it out again was interrupted before its "
                         "kernel and boot entry were installed");
  return mismatch;
}

/* A slot whose tree does not hold the commit its archived record names:
 * restored empty first, then checked out again where that is allowed. */
typedef struct
{
  AbSlot slot;
  char *commit;
  char *why;                /* what differs */
  AbMigrateFile *record;    /* the archived record, restored after a rebuild */
  AbBootState state;        /* the archived pointer entry of the slot */
  int tries;
  gboolean primary;
} Mismatch;

static void
mismatch_free (Mismatch *m)
{
  g_free (m->commit);
  g_free (m->why);
  ab_migrate_file_free (m->record);
  g_free (m);
}

static AbMigrateFile *
take_file (GPtrArray *files, const char *rel)
{
  for (guint i = 0; i < files->len; i++)
    if (g_str_equal (((AbMigrateFile *) files->pdata[i])->rel, rel))
      return g_ptr_array_steal_index (files, i);
  return NULL;
}

/* Slot S becomes empty and not bootable: its record is not restored. */
static Mismatch *
mark_empty (AbBackupArchive *a, AbSlot s, char *why)
{
  g_autofree char *rel = g_strdup_printf (STATE_PREFIX "slot-%s.json", ab_slot_name (s));
  Mismatch *m = g_new0 (Mismatch, 1);
  m->slot = s;
  m->commit = g_strdup (a->records[s]->commit);
  m->why = why;
  m->record = take_file (a->restored, rel);
  m->state = a->pointer.state[s];
  m->tries = a->pointer.tries[s];
  m->primary = a->pointer.primary == s;
  g_clear_pointer (&a->records[s], ab_slot_record_free);
  a->pointer.state[s] = AB_BOOT_STATE_NONE;
  a->pointer.tries[s] = 0;
  if (a->pointer.primary == s)
    a->pointer.primary = a->records[ab_slot_other (s)] ? ab_slot_other (s) : AB_SLOT_NONE;
  return m;
}

/* The archive holds no slot trees: a record whose slot does not hold its
 * commit is not restored with the rest (the slot reads as empty and is not
 * bootable), so no record, good or other, ever describes content the slot
 * does not have. rebuild_slots() may check the commit out again later. */
static GPtrArray *
match_slots (Rescue *r, AbBackupArchive *a)
{
  GPtrArray *out = g_ptr_array_new_with_free_func ((GDestroyNotify) mismatch_free);
  for (int s = 0; s < AB_N_SLOTS; s++)
    {
      char *why = a->records[s] ? slot_mismatch (r, (AbSlot) s, a->records[s]->commit) : NULL;
      if (why != NULL)
        g_ptr_array_add (out, mark_empty (a, (AbSlot) s, why));
    }
  return out;
}

/* Slot S's kernel and boot entry where the backend keeps its own copy
 * (systemd-boot: the ESP), as a stage installs them, with the restored
 * configuration's [boot] kernel-args; nothing for other backends. */
static gboolean
install_entry (Rescue *r, AbSlot s, const char *commit, GError **error)
{
  AbSysroot view = { .dfd = r->dfd, .slots_dfd = r->slots_dfd, .boot_dfd = r->boot_dfd,
                     .repo = r->repo, .config = r->config, .os = (char *) r->os,
                     .bootloader = r->bootloader };
  return ab_deploy_install_boot_entry (&view, s, commit, error);
}

/* Checks COMMIT out again into slot S: built beside the slot, swapped in,
 * then its kernel and boot entry installed, all synced. The slot is "none"
 * in the pointer (mark_empty()) until put_back(). */
static gboolean
checkout_slot (Rescue *r, AbSlot s, const char *commit, GError **error)
{
  const char *name = ab_slot_name (s);
  g_autofree char *tmp = g_strdup_printf (".%s.new", name);
  if (!ab_fs_rm_rf_at (r->slots_dfd, tmp, error)
      || !ab_content_checkout (r->repo, commit, r->slots_dfd, tmp, r->events, NULL, error))
    return FALSE;
  ab_crash_point ("restore:checked-out");
  g_autofree char *marker = checkout_marker (s);
  if (!ab_fs_replace_at (r->slots_dfd, marker, "", 0, 0644, error))
    return FALSE;
  if (!(ab_fs_exists_at (r->slots_dfd, name) ? ab_fs_exchange_at (r->slots_dfd, tmp, name, error)
                                             : ab_fs_rename_at (r->slots_dfd, tmp, name, error)))
    return FALSE;
  ab_crash_point ("restore:slot-swapped");
  ab_autofd tree = ab_fs_opendir_at (r->slots_dfd, name, error);
  if (tree < 0 || !ab_fs_rm_rf_at (r->slots_dfd, tmp, error)
      || !ab_fs_fsync_dir_at (r->slots_dfd, ".", error)
      || !ab_kernel_install (tree, r->boot_dfd, s, error))
    return FALSE;
  ab_crash_point ("restore:kernel-installed");
  return install_entry (r, s, commit, error) && ab_fs_syncfs (r->dfd, error)
         && ab_fs_rm_rf_at (r->slots_dfd, marker, error)
         && ab_fs_fsync_dir_at (r->slots_dfd, ".", error);
}

/* Puts M's record and pointer entry back once the slot holds its commit:
 * the record first, so the pointer never marks a slot without one. */
static gboolean
put_back (Rescue *r, const Mismatch *m, AbBootPointer *ptr, GError **error)
{
  gsize len = 0;
  const void *data = g_bytes_get_data (m->record->data, &len);
  g_autofree char *name = g_path_get_basename (m->record->rel);
  ab_autofd state_dfd = ab_fs_opendir_at (r->dfd, STATE_REL, error);
  if (state_dfd < 0 || !ab_fs_replace_at (state_dfd, name, data, len, 0644, error))
    return FALSE;
  ptr->state[m->slot] = m->state;
  ptr->tries[m->slot] = m->tries;
  if (m->primary)
    ptr->primary = m->slot;
  return ab_bootloader_save (r->bootloader, ptr, error);
}

/* Why slot M may not be checked out again (NULL: it may): never the
 * booted slot (its tree is the running system), and only a commit that a
 * key of the restored configuration signed. */
static char *
rebuild_refusal (Rescue *r, const Mismatch *m)
{
  g_autoptr(GError) local = NULL;
  AbSlot booted = ab_cmdline_booted_slot (NULL);
  if (booted == m->slot)
    return g_strdup ("it is the booted slot");
  if (r->record_missing_dirs)
    return g_strdup ("the sysroot has no abdeploy/slots or boot/abdeploy");
  if (r->config == NULL && (r->config = ab_config_load (r->dfd, NULL, &local)) == NULL)
    return g_strdup_printf ("the restored configuration does not load: %s", local->message);
  if (!ab_content_verify (r->repo, r->root, m->commit, &local))
    return g_strdup (local->message);
  return NULL;
}

/* After the rest is restored (the configuration holds the restored keys):
 * each mismatched slot is checked out again from the repo where allowed,
 * otherwise it stays empty. Each outcome is a note. */
static void
rebuild_slots (Rescue *r, const AbBackupArchive *a, GPtrArray *mismatches, GPtrArray *notes)
{
  AbBootPointer ptr = a->pointer;
  for (guint i = 0; i < mismatches->len; i++)
    {
      const Mismatch *m = mismatches->pdata[i];
      const char *name = ab_slot_name (m->slot);
      g_autoptr(GError) local = NULL;
      g_autofree char *refusal = rebuild_refusal (r, m);
      if (refusal == NULL)
        ab_event_phase (r->events, "checkout");
      if (refusal == NULL && checkout_slot (r, m->slot, m->commit, &local)
          && put_back (r, m, &ptr, &local))
        {
          g_ptr_array_add (notes, g_strdup_printf (
              "slot %s did not hold commit %s that the backup records for it (%s); it was "
              "checked out again from the repo", name, m->commit, m->why));
          continue;
        }
      g_ptr_array_add (notes, g_strdup_printf (
          "warning: slot %s does not hold commit %s that the backup records for it (%s), and it "
          "was not checked out again (%s); it is restored empty and not bootable: stage that "
          "commit into it again (abdeploy stage --from=URL|PATH %s)", name, m->commit, m->why,
          refusal ? refusal : local->message, m->commit));
    }
}

/* Writes the files under DIR_REL into the fresh directory STAGE_DFD: the
 * archive was checked, so no member is below a link or another file. */
static gboolean
stage_files (int stage_dfd, GPtrArray *files, const char *prefix, guint *count, GError **error)
{
  for (guint i = 0; i < files->len; i++)
    {
      const AbMigrateFile *f = files->pdata[i];
      if (!g_str_has_prefix (f->rel, prefix))
        continue;
      const char *rel = f->rel + strlen (prefix);
      g_autofree char *parent = g_path_get_dirname (rel);
      gsize len = 0;
      const void *bytes = g_bytes_get_data (f->data, &len);
      if (!ab_fs_mkdir_p_at (stage_dfd, parent, 0755, error))
        return FALSE;
      if (S_ISLNK (f->mode))
        {
          g_autofree char *target = g_strndup (bytes, len);
          if (symlinkat (target, stage_dfd, rel) < 0)
            {
              g_set_error (error, AB_BACKUP_ERROR, AB_BACKUP_ERROR_FAILED, "Creating link %s: %s",
                           f->rel, g_strerror (errno));
              return FALSE;
            }
        }
      else if (!ab_fs_replace_at (stage_dfd, rel, bytes, len, f->mode & 0777, error))
        return FALSE;
      (*count)++;
    }
  return TRUE;
}

/* A fresh staging tree STAGE (relative to PARENT_DFD) with the files under
 * PREFIX. */
static gboolean
stage_tree (int parent_dfd, const char *stage, GPtrArray *files, const char *prefix,
            guint *count, GError **error)
{
  if (!ab_fs_rm_rf_at (parent_dfd, stage, error))
    return FALSE;
  if (mkdirat (parent_dfd, stage, 0755) < 0)
    {
      g_set_error (error, AB_BACKUP_ERROR, AB_BACKUP_ERROR_FAILED, "Creating %s: %s", stage,
                   g_strerror (errno));
      return FALSE;
    }
  ab_autofd dfd = openat (parent_dfd, stage, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd < 0)
    {
      g_set_error (error, AB_BACKUP_ERROR, AB_BACKUP_ERROR_FAILED, "Opening %s: %s", stage,
                   g_strerror (errno));
      return FALSE;
    }
  return stage_files (dfd, files, prefix, count, error);
}

static gboolean
stage_all (Rescue *r, const AbBackupArchive *a, guint *count, GError **error)
{
  *count = 0;
  return stage_tree (r->abdeploy_dfd, STATE_STAGE, a->restored, STATE_PREFIX, count, error)
         && ab_fs_mkdir_p_at (r->dfd, "etc", 0755, error)
         && stage_tree (r->dfd, ETC_STAGE, a->restored, ETC_PREFIX, count, error)
         && ab_fs_syncfs (r->dfd, error);
}

static void
unstage_all (Rescue *r)
{
  AB_IGNORE_RESULT (ab_fs_rm_rf_at (r->abdeploy_dfd, STATE_STAGE, NULL));
  AB_IGNORE_RESULT (ab_fs_rm_rf_at (r->dfd, ETC_STAGE, NULL));
}

/* Swaps the staged tree in with one renameat2(RENAME_EXCHANGE). */
static gboolean
swap_in (Rescue *r, const char *dir_rel, const char *stage_rel, GError **error)
{
  if (!ab_fs_mkdir_p_at (r->dfd, dir_rel, 0755, error)
      || !ab_fs_exchange_at (r->dfd, stage_rel, dir_rel, error))
    return FALSE;
  ab_crash_point ("restore:swapped");
  g_autofree char *parent = g_path_get_dirname (dir_rel);
  return ab_fs_fsync_dir_at (r->dfd, parent, error) && ab_fs_rm_rf_at (r->dfd, stage_rel, error);
}

static gboolean
restore_refs (Rescue *r, const AbBackupArchive *a, GError **error)
{
  for (int s = 0; s < AB_N_SLOTS; s++)
    {
      g_autofree char *ref = g_strdup_printf ("abdeploy/slot/%s", ab_slot_name ((AbSlot) s));
      if (!ostree_repo_set_ref_immediate (r->repo, NULL, ref, a->refs[s], NULL, error))
        return FALSE;
    }
  return TRUE;
}

static int
opendir_if_exists (int dfd, const char *rel)
{
  return openat (dfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* Opens the sysroot for a restore; takes the lock unless LOCK_HELD. */
static gboolean
open_rescue (Rescue *r, const char *sysroot_path, const char *bootloader, gboolean lock_held,
             GError **error)
{
  gboolean remounted = FALSE;
  if (!ab_mount_make_sysroot_writable (sysroot_path, &remounted, error))
    return FALSE;
  if ((r->dfd = ab_fs_opendir_at (AT_FDCWD, sysroot_path, error)) < 0
      || (r->root = ab_fs_fd_realpath (r->dfd, error)) == NULL
      || (r->abdeploy_dfd = ab_fs_opendir_at (r->dfd, "abdeploy", error)) < 0)
    return FALSE;
  if (!ab_format_read_layout_at (r->dfd, &r->layout, error))
    return FALSE;
  if (r->layout == 0)
    {
      g_set_error (error, AB_BACKUP_ERROR, AB_BACKUP_ERROR_FAILED,
                   "%s is not an abdeploy sysroot (no abdeploy/version); restore needs an "
                   "initialized sysroot: run abdeploy --sysroot=%s init --os=NAME first",
                   sysroot_path, sysroot_path);
      return FALSE;
    }
  r->slots_dfd = opendir_if_exists (r->dfd, "abdeploy/slots");
  r->boot_dfd = opendir_if_exists (r->dfd, "boot/abdeploy");
  r->record_missing_dirs = r->slots_dfd < 0 || r->boot_dfd < 0;
  if ((r->repo = ab_content_open_repo (r->dfd, error)) == NULL
      || (r->bootloader = ab_bootloader_new (bootloader, r->dfd, r->root, NULL, error)) == NULL)
    return FALSE;
  if (lock_held)
    return TRUE;
  r->lock_fd = ab_lock_acquire (r->abdeploy_dfd, error);
  return r->lock_fd >= 0;
}

/* The journal of a restore: the verified archive, kept in the sysroot
 * until every part is in place. A restore that is interrupted is completed
 * from it by the next abdeploy command that writes (ab_backup_finish_pending()). */
static gboolean
keep_pending (Rescue *r, const char *path, GBytes *bytes, GError **error)
{
  g_autofree char *pending = g_build_filename (r->root, "abdeploy", AB_BACKUP_PENDING_NAME, NULL);
  if (g_strcmp0 (path, pending) == 0)
    return TRUE;
  gsize len = 0;
  const void *data = g_bytes_get_data (bytes, &len);
  if (!ab_fs_replace_at (r->abdeploy_dfd, AB_BACKUP_PENDING_NAME, data, len, 0600, error))
    return FALSE;
  ab_crash_point ("restore:pending");
  return TRUE;
}

static gboolean
drop_pending (Rescue *r, GError **error)
{
  if (unlinkat (r->abdeploy_dfd, AB_BACKUP_PENDING_NAME, 0) < 0 && errno != ENOENT)
    {
      g_set_error (error, AB_BACKUP_ERROR, AB_BACKUP_ERROR_FAILED, "Removing abdeploy/%s: %s",
                   AB_BACKUP_PENDING_NAME, g_strerror (errno));
      return FALSE;
    }
  return ab_fs_fsync_dir_at (r->abdeploy_dfd, ".", error);
}

/* The kept copy of a format-1 archive: its files as they are, and the
 * layout version they go with. */
static gboolean
keep_layout1_copy (Rescue *r, GPtrArray *files, GError **error)
{
  g_autoptr(GPtrArray) copy = g_ptr_array_new_with_free_func ((GDestroyNotify) ab_migrate_file_free);
  g_autofree char *version = g_strdup_printf ("%d\n", AB_LAYOUT_PREVIOUS);
  g_ptr_array_add (copy, ab_migrate_file_new ("abdeploy/version", version, strlen (version), 0644));
  for (guint i = 0; i < files->len; i++)
    {
      const AbMigrateFile *f = files->pdata[i];
      if (g_str_has_prefix (f->rel, STATE_PREFIX) || g_str_equal (f->rel, ETC_PREFIX "abdeploy.conf")
          || g_str_has_prefix (f->rel, ETC_PREFIX "conf.d/"))
        g_ptr_array_add (copy, ab_migrate_file_new (f->rel, g_bytes_get_data (f->data, NULL),
                                                    g_bytes_get_size (f->data), f->mode & 0777));
    }
  return ab_migrate_keep_copy (r->dfd, copy, error);
}

/* The directories every command opens, where a wrecked sysroot lost them. */
static gboolean
ensure_layout_dirs (Rescue *r, GError **error)
{
  static const char *const dirs[] = { "abdeploy/slots", "boot/abdeploy", "abdeploy/var" };
  for (guint i = 0; i < G_N_ELEMENTS (dirs); i++)
    if (!ab_fs_mkdir_p_at (r->dfd, dirs[i], 0755, error))
      return FALSE;
  return TRUE;
}

static gboolean
write_layout_version (Rescue *r, GError **error)
{
  if (r->layout == AB_LAYOUT_VERSION)
    return TRUE;
  g_autofree char *text = g_strdup_printf ("%d\n", AB_LAYOUT_VERSION);
  if (!ab_fs_replace_at (r->abdeploy_dfd, "version", text, strlen (text), 0644, error))
    return FALSE;
  r->layout = AB_LAYOUT_VERSION;
  return TRUE;
}

/* Binds the bootloader to the restored configuration once it is in place:
 * its [boot] esp-path and xbootldr-path say where the pointer, the kernels
 * and the entries live, and the one open_rescue() made knows no
 * configuration (systemd's default ESP). When the restored configuration
 * does not load, the defaults stay and rebuild_refusal() says why. */
static gboolean
use_restored_config (Rescue *r, const AbBackupArchive *a, GError **error)
{
  g_clear_pointer (&r->bootloader, ab_bootloader_free);
  g_clear_pointer (&r->config, ab_config_free);
  r->config = ab_config_load (r->dfd, NULL, NULL);
  r->bootloader = ab_bootloader_new (a->bootloader, r->dfd, r->root, r->config, error);
  return r->bootloader != NULL;
}

/* Past the journal: every part replaced, each atomically. A failure here
 * leaves the journal for the next writer. */
static gboolean
apply (Rescue *r, const AbBackupArchive *a, GError **error)
{
  if (a->format < AB_BACKUP_FORMAT && !keep_layout1_copy (r, a->files, error))
    return FALSE;
  return swap_in (r, STATE_REL, "abdeploy/" STATE_STAGE, error)
         && swap_in (r, ETC_REL, ETC_STAGE, error)
         && use_restored_config (r, a, error)
         && restore_refs (r, a, error)
         && ab_bootloader_save (r->bootloader, &a->pointer, error)
         && ensure_layout_dirs (r, error);
}

/* Restoring an older update.json must not lower the accepted manifest
 * serials (that reopens a replay window): the higher ones on disk stay.
 * Runs under the lock, before anything is written. */
static void
keep_serials (Rescue *r, GPtrArray *files)
{
  ab_autofd state_dfd = ab_fs_opendir_at (r->dfd, STATE_REL, NULL);
  for (guint i = 0; state_dfd >= 0 && i < files->len; i++)
    {
      AbMigrateFile *f = files->pdata[i];
      if (!g_str_equal (f->rel, STATE_PREFIX "update.json") || S_ISLNK (f->mode))
        continue;
      gsize len = 0;
      const char *text = g_bytes_get_data (f->data, &len);
      g_autofree char *kept = ab_update_state_keep_serials (state_dfd, text, len);
      files->pdata[i] = ab_migrate_file_new (f->rel, kept, strlen (kept), f->mode);
      ab_migrate_file_free (f);
    }
}

/* Everything up to the journal changes nothing; staging is undone when it
 * fails (no space), and the journal with it unless an earlier restore left
 * that journal. */
static gboolean
restore_archive (Rescue *r, AbBackupArchive *a, const char *path, GBytes *bytes,
                 guint *out_files, GPtrArray *notes, GError **error)
{
  ab_event_phase (r->events, "check");
  if (!check_commits (r, a, error))
    return FALSE;
  g_autoptr(GPtrArray) mismatches = match_slots (r, a);
  keep_serials (r, a->restored);
  /* A journal that was there already may stand for a restore that had
   * begun to swap parts in: it stays until a restore completes. */
  gboolean had_journal = ab_backup_is_pending (r->dfd);
  if (!ab_backup_archive_check_readable (a, path, error)
      || !keep_pending (r, path, bytes, error))
    return FALSE;
  ab_event_phase (r->events, "restore");
  ab_event_progress (r->events, AB_PROGRESS_UNIT_FILES, 0, a->restored->len);
  if (!stage_all (r, a, out_files, error))
    {
      unstage_all (r);
      if (!had_journal)
        (void) drop_pending (r, NULL);
      return FALSE;
    }
  ab_crash_point ("restore:staged");
  if (!apply (r, a, error))
    return FALSE;
  ab_event_progress (r->events, AB_PROGRESS_UNIT_FILES, a->restored->len, a->restored->len);
  rebuild_slots (r, a, mismatches, notes);
  /* The restored files are of the current layout: say so, last. */
  if (!write_layout_version (r, error) || !drop_pending (r, error))
    return FALSE;
  if (a->format < AB_BACKUP_FORMAT)
    g_ptr_array_add (notes, g_strdup_printf ("Migrated the backup from layout %d to %d; its "
                                             "layout-%d files are kept in %s",
                                             AB_LAYOUT_PREVIOUS, AB_LAYOUT_VERSION,
                                             AB_LAYOUT_PREVIOUS, AB_MIGRATE_COPY_DIR));
  return TRUE;
}

static gboolean
restore_path (const char *sysroot_path, const char *path, int lock_fd, AbEventSink *events,
              guint *out_files, GPtrArray *notes, GError **error)
{
  g_autoptr(GBytes) bytes = NULL;
  g_autoptr(AbBackupArchive) a = read_archive (path, &bytes, error);
  g_auto(Rescue) r = RESCUE_INIT;
  r.events = events;
  if (a == NULL || !open_rescue (&r, sysroot_path, a->bootloader, lock_fd >= 0, error))
    return FALSE;
  r.os = a->os;
  return restore_archive (&r, a, path, bytes, out_files, notes, error);
}

gboolean
ab_backup_restore (const char *sysroot_path, const char *path, AbEventSink *events,
                   guint *out_files, char ***out_notes, GError **error)
{
  g_autoptr(GPtrArray) notes = g_ptr_array_new_with_free_func (g_free);
  if (!restore_path (sysroot_path, path, -1, events, out_files, notes, error))
    return FALSE;
  g_ptr_array_add (notes, NULL);
  *out_notes = (char **) g_ptr_array_free (g_steal_pointer (&notes), FALSE);
  return TRUE;
}

gboolean
ab_backup_is_pending (int sysroot_dfd)
{
  return ab_fs_exists_at (sysroot_dfd, "abdeploy/" AB_BACKUP_PENDING_NAME);
}

gboolean
ab_backup_finish_pending (int sysroot_dfd, const char *sysroot_path, int lock_fd,
                          gboolean *out_finished, GError **error)
{
  *out_finished = FALSE;
  if (!ab_backup_is_pending (sysroot_dfd))
    return TRUE;
  g_autofree char *pending = g_build_filename (sysroot_path, "abdeploy", AB_BACKUP_PENDING_NAME,
                                               NULL);
  g_autoptr(GPtrArray) notes = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GError) local = NULL;
  guint n = 0;
  if (restore_path (sysroot_path, pending, lock_fd, NULL, &n, notes, &local))
    {
      *out_finished = TRUE;
      return TRUE;
    }
  if (g_error_matches (local, AB_BACKUP_ERROR, AB_BACKUP_ERROR_CORRUPT)
      || g_error_matches (local, AB_BACKUP_ERROR, AB_BACKUP_ERROR_MISSING_COMMITS)
      || local->domain == AB_FORMAT_ERROR)
    {
      g_set_error (error, AB_BACKUP_ERROR, AB_BACKUP_ERROR_PENDING,
                   "%s is the journal of an unfinished restore, and it does not verify (%s). "
                   "Restore a good backup (abdeploy restore --path=FILE), which replaces it; "
                   "or, if you know no restore started changing this sysroot, remove it",
                   pending, local->message);
      return FALSE;
    }
  g_propagate_prefixed_error (error, g_steal_pointer (&local),
                              "Completing the restore that was interrupted (%s): ", pending);
  return FALSE;
}
