#include "config.h"
#include "ab-sysroot.h"
#include "ab-cmdline.h"
#include "ab-content.h"
#include "ab-format.h"
#include "ab-fsutil.h"
#include "ab-json.h"
#include "ab-lock.h"
#include "ab-migrate.h"
#include "ab-mount.h"

#include <errno.h>
#include <fcntl.h>
#include <json-glib/json-glib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

G_DEFINE_QUARK (ab-sysroot-error-quark, ab_sysroot_error)

static const char *const slot_state_names[] = {
  [AB_SLOT_STATE_EMPTY] = "empty", [AB_SLOT_STATE_STAGED] = "staged",
  [AB_SLOT_STATE_TRIAL] = "trial", [AB_SLOT_STATE_GOOD] = "good", [AB_SLOT_STATE_BAD] = "bad",
};

const char *
ab_slot_state_name (AbSlotState state)
{
  g_return_val_if_fail ((guint) state < G_N_ELEMENTS (slot_state_names), "empty");
  return slot_state_names[state];
}

AbSlotState
ab_slot_state_derive (const AbSlotRecord *rec, const AbBootPointer *ptr, AbSlot slot)
{
  if (rec == NULL)
    return AB_SLOT_STATE_EMPTY;
  switch (ptr->state[slot])
    {
    case AB_BOOT_STATE_TRIAL: return AB_SLOT_STATE_TRIAL;
    case AB_BOOT_STATE_GOOD: return AB_SLOT_STATE_GOOD;
    case AB_BOOT_STATE_BAD: return AB_SLOT_STATE_BAD;
    case AB_BOOT_STATE_NONE:
    default: return AB_SLOT_STATE_STAGED;
    }
}

#define VERSION_FILE "abdeploy/version"
#define SYSROOT_JSON "sysroot.json"
#define RESTORE_JOURNAL "abdeploy/" AB_SYSROOT_RESTORE_JOURNAL

static const char *const layout_dirs[] = {
  "abdeploy/slots/a", "abdeploy/slots/b", "abdeploy/var", "abdeploy/state",
  "boot/abdeploy/a", "boot/abdeploy/b", AB_TRUSTED_KEYS_DIR, "etc/abdeploy/conf.d",
};

/* 0 when the sysroot has no layout yet; -1 with error when unreadable or
 * of a layout version this abdeploy does not read. */
static gint64
read_layout_version (int dfd, GError **error)
{
  gint64 v = 0;
  return ab_format_read_layout_at (dfd, &v, error) ? v : -1;
}

static gboolean
write_sysroot_json (int state_dfd, const char *os, const char *bootloader, GError **error)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "format");
  json_builder_add_int_value (b, AB_STATE_FORMAT);
  json_builder_set_member_name (b, "os");
  json_builder_add_string_value (b, os);
  json_builder_set_member_name (b, "bootloader");
  json_builder_add_string_value (b, bootloader);
  return ab_json_write_builder_at (state_dfd, SYSROOT_JSON, b, error);
}

static gboolean
read_sysroot_json (int state_dfd, char **out_os, char **out_bootloader, GError **error)
{
  g_autoptr(JsonNode) root = NULL;
  if (!ab_format_read_state_at (state_dfd, SYSROOT_JSON, &root, NULL, error))
    return FALSE;
  JsonObject *o = root ? json_node_get_object (root) : NULL;
  const char *os = o ? ab_json_get_string (o, "os", NULL) : NULL;
  const char *bl = o ? ab_json_get_string (o, "bootloader", NULL) : NULL;
  if (os == NULL || bl == NULL)
    {
      g_set_error (error, AB_SYSROOT_ERROR, AB_SYSROOT_ERROR_FAILED,
                   "abdeploy/state/" SYSROOT_JSON " is %s; it names the os and the bootloader "
                   "backend of the sysroot: restore it from a backup (abdeploy restore)",
                   root ? "incomplete" : "missing");
      return FALSE;
    }
  *out_os = g_strdup (os);
  *out_bootloader = g_strdup (bl);
  return TRUE;
}

gboolean
ab_sysroot_set_os (AbSysroot *self, const char *os, GError **error)
{
  g_autofree char *old_os = NULL, *bootloader = NULL;
  if (!read_sysroot_json (self->state_dfd, &old_os, &bootloader, error)
      || !write_sysroot_json (self->state_dfd, os, bootloader, error))
    return FALSE;
  g_free (self->os);
  self->os = g_strdup (os);
  return TRUE;
}

/* ROOT: the absolute path of DFD. */
static gboolean
create_layout (int dfd, const char *root, const char *os, const char *bootloader,
               const AbConfig *config, AbEventSink *events, GError **error)
{
  for (guint i = 0; i < G_N_ELEMENTS (layout_dirs); i++)
    if (!ab_fs_mkdir_p_at (dfd, layout_dirs[i], 0755, error))
      return FALSE;
  g_autoptr(AbBootloader) bl = ab_bootloader_new (bootloader, dfd, root, config, error);
  if (bl != NULL)
    bl->events = events;
  if (bl == NULL || !ab_bootloader_setup (bl, error))
    return FALSE;
  if (!ab_fs_mkdir_p_at (dfd, "ostree", 0755, error))
    return FALSE;
  g_autoptr(OstreeRepo) repo = ab_content_create_repo (dfd, error);
  if (repo == NULL)
    return FALSE;
  ab_autofd state_dfd = ab_fs_opendir_at (dfd, "abdeploy/state", error);
  if (state_dfd < 0 || !write_sysroot_json (state_dfd, os, bootloader, error))
    return FALSE;
  gboolean stamped = FALSE;
  if (!ab_config_stamp_file_at (dfd, &stamped, error))
    return FALSE;
  ab_autofd ab_dfd = ab_fs_opendir_at (dfd, "abdeploy", error);
  if (ab_dfd < 0)
    return FALSE;
  /* The version file is written last: its presence means the layout is complete. */
  g_autofree char *version = g_strdup_printf ("%d\n", AB_LAYOUT_VERSION);
  return ab_fs_replace_at (ab_dfd, "version", version, strlen (version), 0644, error);
}

gboolean
ab_sysroot_init (const char *path, const char *config_path, const char *os,
                 const char *bootloader, AbEventSink *events, gboolean *out_created,
                 GError **error)
{
  *out_created = FALSE;
  if (g_mkdir_with_parents (path, 0755) < 0)
    {
      g_set_error (error, AB_SYSROOT_ERROR, AB_SYSROOT_ERROR_FAILED,
                   "Creating sysroot %s: %s", path, g_strerror (errno));
      return FALSE;
    }
  ab_autofd dfd = ab_fs_opendir_at (AT_FDCWD, path, error);
  g_autofree char *root = dfd < 0 ? NULL : ab_fs_fd_realpath (dfd, error);
  if (root == NULL)
    return FALSE;
  gint64 version = read_layout_version (dfd, error);
  if (version < 0)
    return FALSE;
  if (version > 0)
    return TRUE;
  g_autoptr(AbConfig) config = ab_config_load (dfd, config_path, error);
  if (config == NULL)
    return FALSE;
  g_autoptr(AbBootloader) check = ab_bootloader_new (bootloader, dfd, root, config, error);
  if (check == NULL)
    return FALSE;
  if (!create_layout (dfd, root, os, bootloader, config, events, error))
    return FALSE;
  *out_created = TRUE;
  return TRUE;
}

static gboolean
open_dirs (AbSysroot *self, GError **error)
{
  if ((self->abdeploy_dfd = ab_fs_opendir_at (self->dfd, "abdeploy", error)) < 0
      || (self->state_dfd = ab_fs_opendir_at (self->dfd, "abdeploy/state", error)) < 0
      || (self->slots_dfd = ab_fs_opendir_at (self->dfd, "abdeploy/slots", error)) < 0
      || (self->boot_dfd = ab_fs_opendir_at (self->dfd, "boot/abdeploy", error)) < 0)
    {
      g_prefix_error (error, "Sysroot %s is damaged: ", self->path);
      return FALSE;
    }
  return TRUE;
}

/* The handles read from the state and the configuration: what a completed
 * restore replaces. */
gboolean
ab_sysroot_reload (AbSysroot *self, GError **error)
{
  ab_close_fdp (&self->abdeploy_dfd);
  ab_close_fdp (&self->state_dfd);
  ab_close_fdp (&self->slots_dfd);
  ab_close_fdp (&self->boot_dfd);
  g_clear_pointer (&self->os, g_free);
  g_clear_pointer (&self->config, ab_config_free);
  g_clear_pointer (&self->bootloader, ab_bootloader_free);
  g_autofree char *bootloader = NULL;
  if (!open_dirs (self, error) || !read_sysroot_json (self->state_dfd, &self->os, &bootloader, error)
      || (self->config = ab_config_load (self->dfd, self->config_path, error)) == NULL)
    return FALSE;
  self->bootloader = ab_bootloader_new (bootloader, self->dfd, self->root, self->config, error);
  return self->bootloader != NULL;
}

static gboolean
open_layout (AbSysroot *self, GError **error)
{
  gint64 version = read_layout_version (self->dfd, error);
  if (version < 0)
    return FALSE;
  if (version == 0)
    {
      g_set_error (error, AB_SYSROOT_ERROR, AB_SYSROOT_ERROR_NOT_INITIALIZED,
                   "%s is not an abdeploy sysroot (no %s); run: abdeploy --sysroot=%s init --os=NAME",
                   self->path, VERSION_FILE, self->path);
      return FALSE;
    }
  self->layout = version;
  self->state_format = ab_format_state_for_layout (version);
  if (!ab_sysroot_reload (self, error))
    return FALSE;
  return (self->repo = ab_content_open_repo (self->dfd, error)) != NULL;
}

AbSysroot *
ab_sysroot_open (const char *path, const char *config_path, GError **error)
{
  g_autoptr(AbSysroot) self = g_new0 (AbSysroot, 1);
  self->dfd = self->abdeploy_dfd = self->state_dfd = self->slots_dfd = self->boot_dfd = -1;
  self->lock_fd = -1;
  self->path = g_strdup (path);
  self->config_path = g_strdup (config_path);
  if ((self->dfd = ab_fs_opendir_at (AT_FDCWD, path, error)) < 0
      || (self->root = ab_fs_fd_realpath (self->dfd, error)) == NULL)
    return NULL;
  /* An interrupted restore is noted, not completed: the recovery step of a
   * writer does that (ab_recover()). */
  self->restore_pending = ab_fs_exists_at (self->dfd, RESTORE_JOURNAL);
  if (!open_layout (self, error))
    {
      if (self->restore_pending)
        g_prefix_error (error, "A restore is pending (abdeploy/%s): complete it with abdeploy "
                        "restore --path=%s/abdeploy/%s. ", AB_SYSROOT_RESTORE_JOURNAL, path,
                        AB_SYSROOT_RESTORE_JOURNAL);
      return NULL;
    }
  g_autoptr(GError) local = NULL;
  self->booted = ab_cmdline_booted_slot (&local);
  if (local != NULL)
    {
      g_propagate_prefixed_error (error, g_steal_pointer (&local),
                                  "Reading the kernel command line: ");
      return NULL;
    }
  return g_steal_pointer (&self);
}

void
ab_sysroot_free (AbSysroot *self)
{
  if (self == NULL)
    return;
  int *fds[] = { &self->dfd, &self->abdeploy_dfd, &self->state_dfd, &self->slots_dfd,
                 &self->boot_dfd, &self->lock_fd };
  for (guint i = 0; i < G_N_ELEMENTS (fds); i++)
    ab_close_fdp (fds[i]);
  g_free (self->path);
  g_free (self->root);
  g_free (self->config_path);
  g_free (self->os);
  ab_config_free (self->config);
  g_clear_pointer (&self->bootloader, ab_bootloader_free);
  g_clear_object (&self->repo);
  g_free (self);
}

/* A sysroot of the previous layout is migrated only once the deployment
 * this abdeploy runs from is confirmed: while the booted slot is on trial
 * (or not known good), a failed boot may roll back to the other slot and
 * its previous abdeploy, which reads only the previous layout. Until then
 * writers keep that layout and write its formats. An offline sysroot (no
 * booted slot) migrates at once. */
static gboolean
migration_waits (AbSysroot *self, gboolean *out_wait, GError **error)
{
  *out_wait = FALSE;
  if (self->layout != AB_LAYOUT_PREVIOUS || self->booted == AB_SLOT_NONE)
    return TRUE;
  AbBootPointer ptr;
  if (!ab_bootloader_load (self->bootloader, &ptr, error))
    return FALSE;
  *out_wait = ptr.state[self->booted] != AB_BOOT_STATE_GOOD;
  return TRUE;
}

/* Under the lock: a restore journal means an interrupted restore, which
 * only the recovery step may complete. */
static gboolean
check_no_journal (AbSysroot *self, GError **error)
{
  self->restore_pending = ab_fs_exists_at (self->dfd, RESTORE_JOURNAL);
  if (!self->restore_pending)
    return TRUE;
  g_set_error (error, AB_SYSROOT_ERROR, AB_SYSROOT_ERROR_RECOVERY_NEEDED,
               "A restore was interrupted (%s/%s): it must be completed before anything else "
               "changes the sysroot; run the command again, or complete it with abdeploy "
               "restore --path=%s/%s", self->path, RESTORE_JOURNAL, self->path, RESTORE_JOURNAL);
  return FALSE;
}

/* Migrates a sysroot of the previous layout. A damaged state file stops
 * the migration before it writes anything; for an operation that tolerates
 * damage (a rollback...) the migration then waits, as it does while the
 * booted slot is on trial, and the operation goes on in the old layout. */
static gboolean
migrate_or_wait (AbSysroot *self, GError **error)
{
  g_autoptr(GError) local = NULL;
  if (ab_migrate_sysroot (self->dfd, self->path, &self->layout, NULL, self->events, &local))
    return TRUE;
  if (!self->tolerate_damage || !ab_format_error_is_damage (local))
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  ab_format_warn (self->events, "the migration of the sysroot to layout %d waits: %s",
                  AB_LAYOUT_VERSION, local->message);
  return ab_migrate_check_state (self->dfd, error);
}

/* Opens REL (under DFD, or the path itself when DFD is AT_FDCWD) again on
 * the same descriptor number *FD, so that every copy of the number now
 * refers to the directory through the current mount. */
static gboolean
reopen_in_place (int dfd, const char *rel, int *fd, GError **error)
{
  ab_autofd fresh = ab_fs_opendir_at (dfd, rel, error);
  if (fresh < 0)
    return FALSE;
  if (dup3 (fresh, *fd, O_CLOEXEC) < 0)
    {
      g_set_error (error, AB_SYSROOT_ERROR, AB_SYSROOT_ERROR_FAILED, "Reopening %s: %s", rel,
                   g_strerror (errno));
      return FALSE;
    }
  return TRUE;
}

gboolean
ab_sysroot_make_writable (AbSysroot *self, gboolean *out_changed, GError **error)
{
  if (!ab_mount_make_sysroot_writable (self->root, out_changed, error))
    return FALSE;
  if (!*out_changed)
    return TRUE;
  return reopen_in_place (AT_FDCWD, self->root, &self->dfd, error)
         && reopen_in_place (self->dfd, "abdeploy", &self->abdeploy_dfd, error)
         && reopen_in_place (self->dfd, "abdeploy/state", &self->state_dfd, error)
         && reopen_in_place (self->dfd, "abdeploy/slots", &self->slots_dfd, error)
         && reopen_in_place (self->dfd, "boot/abdeploy", &self->boot_dfd, error);
}

/* ab_sysroot_make_writable(), then the handles that hold descriptors of
 * their own (the bootloader, the repo) are made again: the lock is the
 * first step of a writer, before it uses them. */
static gboolean
make_writable (AbSysroot *self, GError **error)
{
  gboolean changed = FALSE;
  if (!ab_sysroot_make_writable (self, &changed, error))
    return FALSE;
  if (!changed)
    return TRUE;
  g_clear_object (&self->repo);
  return ab_sysroot_reload (self, error)
         && (self->repo = ab_content_open_repo (self->dfd, error)) != NULL;
}

gboolean
ab_sysroot_lock_for_recovery (AbSysroot *self, GError **error)
{
  if (self->lock_fd >= 0)
    return TRUE;
  if (!make_writable (self, error))
    return FALSE;
  self->lock_fd = ab_lock_acquire (self->abdeploy_dfd, error);
  return self->lock_fd >= 0;
}

void
ab_sysroot_unlock (AbSysroot *self)
{
  ab_close_fdp (&self->lock_fd);
  self->lock_fd = -1;
  self->ready = FALSE;
}

gboolean
ab_sysroot_lock (AbSysroot *self, GError **error)
{
  if (self->ready)
    return TRUE;
  if (!ab_sysroot_lock_for_recovery (self, error))
    return FALSE;
  if (!check_no_journal (self, error))
    {
      ab_sysroot_unlock (self);
      return FALSE;
    }
  /* Every writer comes here first: bring the sysroot to the current
   * layout (or leave it for later, see migration_waits()), or refuse (and
   * change nothing) when a file has a format this abdeploy does not read. */
  gboolean wait = FALSE;
  if (!ab_format_read_layout_at (self->dfd, &self->layout, error)
      || !migration_waits (self, &wait, error)
      || !(wait ? ab_migrate_check_state (self->dfd, error) : migrate_or_wait (self, error)))
    {
      ab_sysroot_unlock (self);
      return FALSE;
    }
  self->state_format = ab_format_state_for_layout (self->layout);
  /* the front end set its sink after the open: the backend warns there */
  self->bootloader->events = self->events;
  self->ready = TRUE;
  return TRUE;
}

gboolean
ab_sysroot_migrate_now (AbSysroot *self, gboolean *out_migrated, GError **error)
{
  *out_migrated = FALSE;
  gint64 before = self->layout;
  if (!ab_sysroot_lock (self, error))
    return FALSE;
  if (self->layout != before)
    {
      *out_migrated = TRUE; /* the lock did it */
      return TRUE;
    }
  if (self->layout == AB_LAYOUT_VERSION)
    return TRUE;
  /* Still at the previous layout after the lock: the migration waits for
   * the booted slot; the operator asked for it anyway. */
  if (!ab_migrate_sysroot (self->dfd, self->path, &self->layout, out_migrated, self->events,
                           error))
    return FALSE;
  self->state_format = ab_format_state_for_layout (self->layout);
  if (*out_migrated)
    ab_event_warning (self->events, "slot %s is booted but not confirmed good; if it rolls back "
                      "to an image whose abdeploy reads only layout %d, put the kept files back "
                      "first (DOWNGRADE in abdeploy-layout(7))",
                      ab_slot_name (self->booted), AB_LAYOUT_PREVIOUS);
  return TRUE;
}

/* The record of SLOT; a damaged one is read as empty (with a warning)
 * when the operation tolerates damage. */
static gboolean
load_record (AbSysroot *self, AbSlot slot, AbSlotRecord **out, gboolean *out_damaged,
             GError **error)
{
  g_autoptr(GError) local = NULL;
  *out_damaged = FALSE;
  if (ab_slot_record_load (self->state_dfd, slot, out, &local))
    return TRUE;
  if (!self->tolerate_damage
      || !(ab_format_error_is_damage (local)
           || g_error_matches (local, AB_SLOTS_ERROR, AB_SLOTS_ERROR_FORMAT)))
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  ab_format_warn (self->events, "the record of slot %s is damaged (%s); slot %s is taken as "
                  "empty. Stage an image into it again, or restore abdeploy/state/slot-%s.json "
                  "from a backup", ab_slot_name (slot), local->message, ab_slot_name (slot),
                  ab_slot_name (slot));
  *out_damaged = TRUE;
  return TRUE;
}

gboolean
ab_sysroot_load_records (AbSysroot *self, AbSlotRecord *out[AB_N_SLOTS],
                         gboolean out_damaged[AB_N_SLOTS], GError **error)
{
  out[0] = out[1] = NULL;
  for (int s = 0; s < AB_N_SLOTS; s++)
    {
      gboolean damaged = FALSE;
      if (!load_record (self, (AbSlot) s, &out[s], &damaged, error))
        {
          g_clear_pointer (&out[0], ab_slot_record_free);
          return FALSE;
        }
      if (out_damaged)
        out_damaged[s] = damaged;
    }
  return TRUE;
}

void
ab_slots_view_clear (AbSlotsView *v)
{
  for (int s = 0; s < AB_N_SLOTS; s++)
    g_clear_pointer (&v->rec[s], ab_slot_record_free);
}

gboolean
ab_sysroot_load_view (AbSysroot *self, AbSlotsView *out, GError **error)
{
  return ab_bootloader_load (self->bootloader, &out->ptr, error)
         && ab_sysroot_load_records (self, out->rec, out->damaged, error);
}

AbSlot
ab_sysroot_running_slot (AbSysroot *self, const AbBootPointer *ptr)
{
  return self->booted != AB_SLOT_NONE ? self->booted : ptr->primary;
}
