/* An abdeploy sysroot: the layout, its version, and handles to it. */
#pragma once

#include <glib.h>
#include <ostree.h>
#include "ab-util.h"
#include "ab-config.h"
#include "bootloaders/ab-bootloader.h"
#include "ab-slots.h"
#include "ab-format.h"
#include "ab-events.h"

#define AB_SYSROOT_ERROR (ab_sysroot_error_quark ())
/* The error domain of ab-sysroot (the codes of the enum below). */
GQuark ab_sysroot_error_quark (void);

typedef enum
{
  AB_SYSROOT_ERROR_FAILED,
  AB_SYSROOT_ERROR_NOT_INITIALIZED,
  AB_SYSROOT_ERROR_LAYOUT_VERSION,
  AB_SYSROOT_ERROR_USAGE,
  /* A restore was interrupted: the writer must run the recovery step
   * (ab_recover()) before it changes anything. */
  AB_SYSROOT_ERROR_RECOVERY_NEEDED,
} AbSysrootError;

/* The journal of an unfinished restore, in SYSROOT/abdeploy (see ab-backup.h). */
#define AB_SYSROOT_RESTORE_JOURNAL "restore.pending"

/* The state of a slot, derived from its record and the boot pointer. */
typedef enum
{
  AB_SLOT_STATE_EMPTY,
  AB_SLOT_STATE_STAGED,
  AB_SLOT_STATE_TRIAL,
  AB_SLOT_STATE_GOOD,
  AB_SLOT_STATE_BAD,
} AbSlotState;

/* "empty", "staged", "trial", "good", "bad". */
const char *ab_slot_state_name (AbSlotState state);
/* No record: empty (whatever the pointer says); else the pointer's state,
 * and a slot the pointer has no state for is staged. */
AbSlotState ab_slot_state_derive (const AbSlotRecord *rec, const AbBootPointer *ptr,
                                  AbSlot slot);

/* An open sysroot. Its identity is the directory DFD, opened once from
 * PATH as the caller gave it, and ROOT, the absolute path of that same
 * directory, resolved once when it was opened (links resolved): every
 * path handed to other programs (hooks, bootloader tools) is built from
 * ROOT, every message names PATH. */
typedef struct
{
  char *path;        /* as given (messages) */
  char *root;        /* absolute, resolved once from dfd */
  int dfd;           /* SYSROOT */
  int abdeploy_dfd;  /* SYSROOT/abdeploy */
  int state_dfd;     /* SYSROOT/abdeploy/state */
  int slots_dfd;     /* SYSROOT/abdeploy/slots */
  int boot_dfd;      /* SYSROOT/boot/abdeploy */
  int lock_fd;       /* -1 unless locked */
  gboolean ready;    /* locked and migrated (or the migration waits): ab_sysroot_lock() is done */
  gint64 layout;     /* layout version: AB_LAYOUT_VERSION, or the previous one until a writer migrates */
  /* The format of every state file written in this sysroot: the one of
   * its layout (ab_format_state_for_layout()). While the migration of a
   * previous-layout sysroot waits (see ab_sysroot_lock()), that is the
   * previous format, so the previous abdeploy, which a rollback may bring
   * back, still reads every file. Set when opened, and when migrated. */
  gint64 state_format;
  char *os;
  AbConfig *config;
  AbBootloader *bootloader;
  OstreeRepo *repo;
  AbSlot booted;
  char *config_path;        /* --config, or NULL */
  gboolean restore_pending; /* abdeploy/restore.pending exists: a restore was interrupted */
  /* Set by the operations that must work on a damaged sysroot (status,
   * rollback, mark-good, mark-bad, health-check): a damaged slot record
   * (ab_format_error_is_damage()) is reported as a warning and read as an
   * empty slot instead of failing. Every other command refuses it. */
  gboolean tolerate_damage;
  /* Where the operations on this sysroot report (borrowed; set by the front
   * end after opening; NULL drops every event). */
  AbEventSink *events;
} AbSysroot;

/* Creates the layout; on an initialized sysroot changes nothing. The
 * bootloader backend warns to EVENTS (may be NULL). */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_sysroot_init (const char *path, const char *config_path, const char *os,
                          const char *bootloader, AbEventSink *events, gboolean *out_created,
                          GError **error);
/* Opens an initialized sysroot, refusing unknown layout versions. A
 * pending restore journal is only noted (restore_pending): reading never
 * completes or refuses it; writers run the recovery step (ab_recover())
 * first, and ab_sysroot_lock() refuses them while the journal is there. */
G_GNUC_WARN_UNUSED_RESULT
AbSysroot *ab_sysroot_open (const char *path, const char *config_path, GError **error);
/* Names OS as the sysroot's OS (abdeploy/state/sysroot.json, replaced
 * atomically) and in SELF. For abdeploy install, whose new sysroot takes
 * the OS of the commit it deploys first when --os is not given. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_sysroot_set_os (AbSysroot *self, const char *os, GError **error);
/* Frees SELF and everything it owns; NULL is allowed. */
void ab_sysroot_free (AbSysroot *self);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AbSysroot, ab_sysroot_free)

/* Takes the writer lock (AB_LOCK_ERROR_HELD when another process has it),
 * then migrates a sysroot of the previous layout (ab_migrate_sysroot()),
 * unless the booted slot is not confirmed good yet: then the sysroot keeps
 * the previous layout and this process writes its formats (state_format).
 * Every command that writes calls it before it changes anything. While a
 * restore journal is there (an interrupted restore) it refuses with
 * AB_SYSROOT_ERROR_RECOVERY_NEEDED and changes nothing: the front end
 * runs the recovery step (ab_recover()) first. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_sysroot_lock (AbSysroot *self, GError **error);
/* For the recovery step only: makes the sysroot writable and takes the
 * lock, without migrating and without looking at the restore journal. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_sysroot_lock_for_recovery (AbSysroot *self, GError **error);
/* Releases the lock (a no-op when not held). */
void ab_sysroot_unlock (AbSysroot *self);
/* Reads the state and the configuration again (the OS name, the config,
 * the bootloader, the directory handles): after the recovery step replaced
 * them. The identity (dfd, path, root) stays. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_sysroot_reload (AbSysroot *self, GError **error);
/* When the sysroot is on a read-only mount (a booted slot's /sysroot),
 * remounts it read-write in a mount namespace of this process's own
 * (ab_mount_make_sysroot_writable()) and opens the sysroot's directory
 * descriptors again on the same numbers. ab_sysroot_lock() calls it first;
 * a writer that takes the lock by other means calls it itself. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_sysroot_make_writable (AbSysroot *self, gboolean *out_changed, GError **error);
/* Takes the lock and migrates a sysroot of the previous layout now, even
 * while the booted slot is on trial (abdeploy migrate). */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_sysroot_migrate_now (AbSysroot *self, gboolean *out_migrated, GError **error);

/* Records of both slots (entries NULL for empty slots; with
 * tolerate_damage, also for damaged records, flagged in OUT_DAMAGED when
 * not NULL). */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_sysroot_load_records (AbSysroot *self, AbSlotRecord *out[AB_N_SLOTS],
                                  gboolean out_damaged[AB_N_SLOTS], GError **error);

/* The boot pointer and both slot records, read together. */
typedef struct
{
  AbBootPointer ptr;
  AbSlotRecord *rec[AB_N_SLOTS];
  gboolean damaged[AB_N_SLOTS]; /* record damaged, read as empty (tolerate_damage) */
} AbSlotsView;

/* Frees what v holds and resets it; safe to call again. */
void ab_slots_view_clear (AbSlotsView *v);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (AbSlotsView, ab_slots_view_clear)

/* Reads the boot pointer and both slot records together (see AbSlotsView); on
 * error OUT holds nothing to free. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_sysroot_load_view (AbSysroot *self, AbSlotsView *out, GError **error);
/* The slot whose deployment is in use: the booted one, offline the primary
 * (AB_SLOT_NONE when neither). */
AbSlot ab_sysroot_running_slot (AbSysroot *self, const AbBootPointer *ptr);
