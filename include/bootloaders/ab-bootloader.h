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

#define AB_BOOTLOADER_ERROR (ab_bootloader_error_quark ())
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

const char *ab_boot_state_name (AbBootState state);
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
gboolean ab_boot_pointer_from_vars (GHashTable *vars, AbBootPointer *out, GError **error);
/* The same for the variables read from a bootloader environment (grub,
 * uboot): every variable must be there (ABDEPLOY_PRIMARY may be absent when
 * PRIMARY_MAY_BE_ABSENT: U-Boot has no empty variables), and every error
 * ends with FIX, how to repair the variable. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_boot_pointer_from_env (GHashTable *vars, gboolean primary_may_be_absent,
                                   const char *fix, AbBootPointer *out, GError **error);

typedef struct _AbBootloader AbBootloader;

typedef struct
{
  const char *name;
  /* Creates the pointer storage if missing (init). */
  gboolean (*setup) (AbBootloader *self, GError **error);
  gboolean (*load) (AbBootloader *self, AbBootPointer *out, GError **error);
  gboolean (*save) (AbBootloader *self, const AbBootPointer *ptr, GError **error);
  /* Frees priv; may be NULL. */
  void (*free) (AbBootloader *self);
  /* Human-readable location of the pointer, for messages. */
  const char *location;
} AbBootloaderOps;

struct _AbBootloader
{
  const AbBootloaderOps *ops;
  int sysroot_dfd;        /* borrowed */
  const AbConfig *config; /* borrowed; NULL means all defaults */
  gpointer priv;          /* backend state, freed by ops->free */
};

extern const AbBootloaderOps ab_bootloader_file_ops;
extern const AbBootloaderOps ab_bootloader_grub_ops;
extern const AbBootloaderOps ab_bootloader_uboot_ops;
extern const AbBootloaderOps ab_bootloader_custom_ops;

/* "file", "grub", "uboot" or "custom". CONFIG may be NULL (defaults). */
AbBootloader *ab_bootloader_new (const char *name, int sysroot_dfd, const AbConfig *config,
                                 GError **error);
void ab_bootloader_free (AbBootloader *self);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AbBootloader, ab_bootloader_free)

const char *ab_bootloader_name (AbBootloader *self);
gboolean ab_bootloader_setup (AbBootloader *self, GError **error);
gboolean ab_bootloader_load (AbBootloader *self, AbBootPointer *out, GError **error);
/* Saves PTR, then reads it back: a backend that stored something else (or
 * nothing) is AB_BOOTLOADER_ERROR_READ_BACK, naming the backend, what was
 * written and what was read back. */
gboolean ab_bootloader_save (AbBootloader *self, const AbBootPointer *ptr, GError **error);
