/* The boot pointer: which slot boots next, and each slot's boot state.
 *
 * Invariant: every backend stores the whole AbBootPointer in ONE atomic
 * write, so the bootloader reads either the old or the new pointer. The
 * vocabulary (ABDEPLOY_PRIMARY, ABDEPLOY_{A,B}_{STATE,TRIES}) is the same for
 * all backends; see abdeploy-pointer(5). */
#pragma once

#include <glib.h>
#include "ab-util.h"
#include "ab-config.h"
#include "ab-events.h"

#define AB_BOOTLOADER_ERROR (ab_bootloader_error_quark ())
/* The error domain of ab-bootloader (the codes of the enum below). */
GQuark ab_bootloader_error_quark (void);

typedef enum
{
  AB_BOOTLOADER_ERROR_FAILED,
  AB_BOOTLOADER_ERROR_UNKNOWN_BACKEND,
  AB_BOOTLOADER_ERROR_PARSE,
  AB_BOOTLOADER_ERROR_READ_BACK, /* a save that did not store what it was given */
} AbBootloaderError;

typedef enum
{
  AB_BOOT_STATE_NONE,
  AB_BOOT_STATE_GOOD,
  AB_BOOT_STATE_TRIAL,
  AB_BOOT_STATE_BAD,
} AbBootState;

typedef struct
{
  AbSlot primary;
  AbBootState state[AB_N_SLOTS];
  int tries[AB_N_SLOTS];
} AbBootPointer;

/* The name of STATE in the pointer variables (abdeploy-pointer(5)). */
const char *ab_boot_state_name (AbBootState state);
/* The state named NAME; FALSE when NAME is none of them. */
gboolean ab_boot_state_from_name (const char *name, AbBootState *out);

/* An empty pointer: no primary, both slots "none". */
void ab_boot_pointer_init (AbBootPointer *ptr);
/* Whether the bootloader may pick this slot: good, or trial with tries left. */
gboolean ab_boot_pointer_bootable (const AbBootPointer *ptr, AbSlot slot);
/* The slot the bootloader picks next (documented rules), without the
 * decrement. AB_SLOT_NONE when there is no primary. */
AbSlot ab_boot_pointer_next_boot (const AbBootPointer *ptr);

/* "primary b, a good, b trial 3": for messages. */
char *ab_boot_pointer_describe (const AbBootPointer *ptr);

/* NAME=VALUE pairs of the pointer vocabulary, and back. */
GHashTable *ab_boot_pointer_to_vars (const AbBootPointer *ptr);
/* The boot pointer from the variables VARS (ABDEPLOY_PRIMARY, ...); fails
 * naming a missing or invalid variable. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_boot_pointer_from_vars (GHashTable *vars, AbBootPointer *out, GError **error);
/* The same for the variables read from a bootloader environment (grub,
 * uboot): every variable must be there (ABDEPLOY_PRIMARY may be absent when
 * PRIMARY_MAY_BE_ABSENT: U-Boot has no empty variables), and every error
 * ends with FIX, how to repair the variable. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_boot_pointer_from_env (GHashTable *vars, gboolean primary_may_be_absent,
                                   const char *fix, AbBootPointer *out, GError **error);

typedef struct _AbBootloader AbBootloader;

/* What a backend can do, and what it needs; the engine and the front ends
 * ask ab_bootloader_has_cap() instead of comparing backend names. */
typedef enum
{
  /* Every save is ONE atomic write that the bootloader sees whole (the
   * custom backend makes several calls, U-Boot's single-copy environment is
   * rewritten in place, systemd-boot may take two renames: see
   * abdeploy-pointer(5)). */
  AB_BOOTLOADER_CAP_ATOMIC_POINTER = 1 << 0,
  /* The backend keeps its own copy of each slot's kernel and boot entry:
   * its install_entry hook copies them (systemd-boot). Without it, the
   * bootloader boots SYSROOT/boot/abdeploy/<slot>/ itself. */
  AB_BOOTLOADER_CAP_INSTALLS_KERNELS = 1 << 1,
  /* The backend keeps its files on an EFI system partition. */
  AB_BOOTLOADER_CAP_NEEDS_ESP = 1 << 2,
  /* Trial boots are counted with systemd's boot counting (entry names
   * ending in +LEFT-DONE), so systemd-bless-boot can bless them. */
  AB_BOOTLOADER_CAP_SYSTEMD_BOOT_COUNTING = 1 << 3,
} AbBootloaderCaps;

/* What the install_entry hook gets: a slot whose tree was just checked out
 * and whose kernel is installed in SYSROOT/boot/abdeploy/<slot>/. Every
 * path is relative to BOOT_DFD and stays beneath it. */
typedef struct
{
  AbSlot slot;
  int boot_dfd;            /* SYSROOT/boot/abdeploy, borrowed */
  const char *kernel;      /* "<slot>/vmlinuz" */
  const char *initramfs;   /* "<slot>/initramfs.img", NULL when the slot has none */
  const char *kver;        /* the kernel version directory of the tree */
  const char *kernel_args; /* the whole command line, abdeploy.slot=<slot> first */
  const char *os;          /* the sysroot's os name */
  const char *version;     /* the commit's version, NULL when it has none */
} AbBootEntry;

typedef struct
{
  const char *name;
  /* One line for --help and the man pages: where the pointer lives. */
  const char *summary;
  AbBootloaderCaps caps;
  /* Creates the pointer storage if missing (init). */
  gboolean (*setup) (AbBootloader *self, GError **error);
  gboolean (*load) (AbBootloader *self, AbBootPointer *out, GError **error);
  gboolean (*save) (AbBootloader *self, const AbBootPointer *ptr, GError **error);
  /* Installs the slot's kernel and boot entry where the bootloader reads
   * them; called after the slot is staged, while its pointer state is
   * "none" (never booted). NULL when the bootloader boots
   * SYSROOT/boot/abdeploy/<slot>/ directly. Leaves the previous entry of the
   * slot in place on error. */
  gboolean (*install_entry) (AbBootloader *self, const AbBootEntry *entry, GError **error);
  /* Frees priv; may be NULL. */
  void (*free) (AbBootloader *self);
  /* Human-readable location of the pointer, for messages. */
  const char *location;
} AbBootloaderOps;

struct _AbBootloader
{
  const AbBootloaderOps *ops;
  int sysroot_dfd;        /* borrowed */
  char *sysroot_root;     /* the sysroot's absolute path, resolved once by the
                           * caller (AbSysroot.root); a backend derives every
                           * path it hands to a library or a program from it
                           * and never resolves a descriptor again; NULL only
                           * for a backend made to check a name (fd -1) */
  const AbConfig *config; /* borrowed; NULL means all defaults */
  gpointer priv;          /* backend state, freed by ops->free */
  AbEventSink *events;    /* borrowed; where a backend warns; may be NULL */
};

extern const AbBootloaderOps ab_bootloader_file_ops;
extern const AbBootloaderOps ab_bootloader_grub_ops;
extern const AbBootloaderOps ab_bootloader_uboot_ops;
extern const AbBootloaderOps ab_bootloader_custom_ops;
extern const AbBootloaderOps ab_bootloader_sdboot_ops;

/* The backend table, NULL-terminated, in the order help texts list it
 * (the default, grub, first). The only place that knows backend names. */
const AbBootloaderOps *const *ab_bootloader_backends (void);
/* The table entry named NAME, or NULL. */
const AbBootloaderOps *ab_bootloader_lookup (const char *name);
/* "grub, file, uboot or custom": every backend name, for messages. */
char *ab_bootloader_names_text (void);
#define AB_BOOTLOADER_DEFAULT "grub"

/* A backend named NAME (one of ab_bootloader_backends()), or
 * AB_BOOTLOADER_ERROR_UNKNOWN_BACKEND naming the valid ones, for the
 * sysroot directory SYSROOT_DFD whose absolute path is SYSROOT_ROOT (copied;
 * NULL only with SYSROOT_DFD -1, to check NAME). CONFIG may be NULL
 * (defaults). */
G_GNUC_WARN_UNUSED_RESULT
AbBootloader *ab_bootloader_new (const char *name, int sysroot_dfd, const char *sysroot_root,
                                 const AbConfig *config, GError **error);
/* Frees SELF and everything it owns; NULL is allowed. */
void ab_bootloader_free (AbBootloader *self);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AbBootloader, ab_bootloader_free)

/* The name of the backend (as init --bootloader takes it). */
const char *ab_bootloader_name (AbBootloader *self);
/* Whether the backend has capability CAP. */
gboolean ab_bootloader_has_cap (AbBootloader *self, AbBootloaderCaps cap);
/* Lets the backend prepare its files before the first pointer write (init);
 * on error nothing is half-written. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_bootloader_setup (AbBootloader *self, GError **error);
/* Reads the boot pointer; on error OUT is unchanged. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_bootloader_load (AbBootloader *self, AbBootPointer *out, GError **error);
/* Saves PTR, then reads it back: a backend that stored something else (or
 * nothing) is AB_BOOTLOADER_ERROR_READ_BACK, naming the backend, what was
 * written and what was read back. (Not G_GNUC_WARN_UNUSED_RESULT: an undo
 * after a failure may ignore its result.) */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_bootloader_save (AbBootloader *self, const AbBootPointer *ptr, GError **error);
/* Runs the backend's install_entry hook (nothing when it has none): the
 * errors name the backend and the slot. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_bootloader_install_entry (AbBootloader *self, const AbBootEntry *entry,
                                      GError **error);

/* For backends that keep the pointer in a file below the sysroot (file,
 * grub): the directory REL of the sysroot, opened (a new descriptor), made
 * first (0755, with its parents) when CREATE; -1 on error. */
G_GNUC_WARN_UNUSED_RESULT
int ab_bootloader_open_dir (AbBootloader *self, const char *rel, gboolean create,
                            GError **error);
/* The end of such a backend's setup: when HAVE_POINTER is FALSE, saves the
 * empty pointer (no primary, both slots none) through the backend's save;
 * TRUE otherwise (an existing pointer is kept). */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_bootloader_setup_pointer (AbBootloader *self, gboolean have_pointer,
                                      GError **error);
