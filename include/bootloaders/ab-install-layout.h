/* Disk layouts of `abdeploy install`, one per --bootloader value.
 *
 * A layout names the boot pointer backend (sysroot.json), the partition
 * table and its partitions, and three hooks that the install calls in this
 * order:
 *
 *   0. configure (optional): before `init`; writes the configuration that
 *      the backend's init reads into the staging sysroot (the uboot
 *      backend's etc/fw_env.config).
 *   1. prepare (optional): after `init`, before the deploy; may write the
 *      backend's configuration into the staging sysroot.
 *      The install itself writes etc/abdeploy/conf.d/50-install.conf
 *      ([boot] kernel-args) before init, for the backends that write their
 *      own boot entries, into the sysroot and, after the deploy, into slot
 *      a's /etc (later stages carry it over).
 *   2. populate: after slot a is deployed and marked good; writes the
 *      bootloader's files into the staging sysroot (ctx->sysroot) and into
 *      the staging directory of the FAT partition (ctx->fat_dir), if any.
 *   3. write_boot_code (optional): after the file systems are written into
 *      the disk; writes boot code outside any file system (the BIOS boot
 *      partition).
 *   4. write_mbr (optional): after the partition table, last of all; writes
 *      the MBR boot code (its first 440 bytes only: the disk signature and
 *      the partition table stay).
 *
 * A new bootloader is one entry in the table of ab-install-layout.c plus its
 * hooks in a file of its own (ab-install-grub.c is the model).
 *
 * Invariants: hooks never print (events only), write only beneath the
 * staging directories and into the disk at the offsets of ctx->parts, and
 * report every failure as a GError that names what is missing and the fix. */
#pragma once

#include <gio/gio.h>
#include "ab-events.h"

/* The errors of abdeploy install and of its layouts. */
#define AB_INSTALL_ERROR (ab_install_error_quark ())
/* The error domain of ab-install-layout (the codes of the enum below). */
GQuark ab_install_error_quark (void);

typedef enum
{
  AB_INSTALL_ERROR_FAILED,
  AB_INSTALL_ERROR_USAGE,   /* bad options: exit status 2 */
  AB_INSTALL_ERROR_TOOL,    /* an external tool is missing or failed */
} AbInstallError;

typedef enum
{
  AB_PART_ROOT,       /* ext4: the sysroot (always the last partition) */
  AB_PART_ESP,        /* FAT: EFI system partition */
  AB_PART_FAT_BOOT,   /* FAT: boot partition read by the firmware (U-Boot) */
  AB_PART_BIOS_BOOT,  /* raw: GRUB's core.img (GPT BIOS boot partition) */
} AbPartKind;

typedef struct
{
  AbPartKind kind;
  guint64 size_mib;   /* AB_PART_ROOT: 0 = the rest of the disk */
} AbPartSpec;

#define AB_INSTALL_MAX_PARTS 4

/* A partition as placed on the disk. */
typedef struct
{
  AbPartKind kind;
  guint number;       /* 1-based, as in /dev/vdaN, (hd0,gptN) */
  guint64 offset;     /* bytes from the start of the disk */
  guint64 size;       /* bytes */
} AbPart;

typedef struct
{
  const char *bootloader;     /* --bootloader value */
  int disk_fd;                /* the disk being built (image: PATH.tmp) */
  gboolean fresh_image;       /* a new image file: every byte not written is zero */
  guint64 disk_size;          /* bytes */
  char *sysroot;              /* staging directory of the ext4 root */
  char *fat_dir;              /* staging directory of the FAT partition, or NULL */
  char *workdir;              /* scratch directory (removed at the end) */
  char *datadir;              /* abdeploy's data files ($ABDEPLOY_DATADIR) */
  char *root_uuid;            /* UUID that mkfs.ext4 gives the root */
  char *kernel_args;          /* root=UUID=... plus --kernel-arg ..., one string */
  char *serial_unit;          /* "0" for console=ttyS0, NULL: no serial console */
  char *serial_speed;         /* "115200" unless console=ttySN,SPEED says otherwise */
  AbPart parts[AB_INSTALL_MAX_PARTS];
  guint n_parts;
  AbEventSink *events;
  GCancellable *cancellable;
} AbInstallCtx;

typedef struct
{
  const char *name;           /* --bootloader value */
  const char *backend;        /* boot pointer backend (abdeploy init --bootloader) */
  const char *label;          /* sfdisk label: "gpt" or "dos" */
  AbPartSpec parts[AB_INSTALL_MAX_PARTS];
  guint n_parts;
  gboolean (*configure) (AbInstallCtx *ctx, GError **error);
  gboolean (*prepare) (AbInstallCtx *ctx, GError **error);
  gboolean (*populate) (AbInstallCtx *ctx, GError **error);
  gboolean (*write_boot_code) (AbInstallCtx *ctx, GError **error);
  gboolean (*write_mbr) (AbInstallCtx *ctx, GError **error);
} AbInstallLayout;

/* The layout of NAME, or NULL. */
const AbInstallLayout *ab_install_layout_lookup (const char *name);
/* "grub-bios, grub-efi, ..." for messages and --help. */
const char *ab_install_layout_names (void);
/* The partition of KIND, or NULL. */
const AbPart *ab_install_ctx_part (const AbInstallCtx *ctx, AbPartKind kind);

/* Helpers for the hooks (ab-install-util.c). */
/* Runs ARGV (argv[0] looked up in PATH); a missing program or a non-zero
 * exit is AB_INSTALL_ERROR_TOOL naming the program, its stderr and PACKAGE
 * (the Debian package to install). INPUT (may be NULL) goes to its stdin. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_install_spawn (AbInstallCtx *ctx, const char *const *argv, const char *input,
                           const char *package, GError **error);
/* Writes LEN bytes of DATA into the disk at OFFSET. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_install_pwrite (AbInstallCtx *ctx, const void *data, gsize len, guint64 offset,
                            GError **error);
/* Copies file SRC (absolute) to DEST beneath directory ROOT, creating the
 * parents of DEST. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_install_copy_file (const char *src, const char *root, const char *dest, GError **error);
/* Writes TEXT to DEST beneath ROOT (0644), creating the parents. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_install_write_file (const char *root, const char *dest, const char *text,
                                GError **error);

extern const AbInstallLayout ab_install_layout_grub_bios;
extern const AbInstallLayout ab_install_layout_grub_efi;
extern const AbInstallLayout ab_install_layout_uboot;
extern const AbInstallLayout ab_install_layout_systemd_boot;
