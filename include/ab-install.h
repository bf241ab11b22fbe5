/* abdeploy install: a signed commit to a first bootable disk (factory install).
 *
 * The disk (a raw image file, or a block device) gets a partition table, the
 * file systems of its bootloader's layout (bootloaders/ab-install-layout.h),
 * the bootloader, and a sysroot whose slot a holds the verified commit,
 * marked good.  Nothing is mounted and no loop device is used: the sysroot
 * is built in a staging directory, `mkfs.ext4 -d` copies it into the root
 * partition, mtools writes the FAT partitions, and sfdisk the table.
 *
 * Invariants:
 * - An image file is built as PATH.tmp and renamed to PATH (then the
 *   directory is fsync'ed) only when it is complete: PATH never names a
 *   half-built image.  An existing PATH is refused, never overwritten.
 * - On a block device the first and the last MiB are wiped first, and the
 *   partition table and the MBR boot code are written last: until then the
 *   device has no partition table, so it never looks installed.
 * - Only a commit that verifies against the given trusted keys is deployed
 *   (the stage of ab-deploy.h, fail closed).
 * - The engine prints nothing: it reports through the event sink. */
#pragma once

#include <gio/gio.h>
#include "ab-events.h"
/* The layouts' interface, and AB_INSTALL_ERROR, which the layouts report in
 * (defined there so that the layouts need not include this header). */
#include "bootloaders/ab-install-layout.h"

typedef struct
{
  const char *disk;               /* image file to create, or a block device */
  guint64 size;                   /* bytes; image files only (0: block device) */
  const char *bootloader;         /* a name of ab_install_layout_names() */
  const char *source;             /* --from: URL or path of a repo */
  const char *os;                 /* NULL: "abdeploy" */
  const char *const *trusted_keys; /* key files (.gpg or .asc); NULL-terminated */
  const char *const *kernel_args; /* extra kernel arguments; NULL-terminated */
  const char *refspec;            /* REF or COMMIT */
  AbEventSink *events;            /* borrowed; NULL drops every event */
  GCancellable *cancellable;
} AbInstallOptions;

/* What the install made, for the front end to report. */
typedef struct
{
  char *commit;
  char *version;        /* NULL when the commit has no version */
  char *root_uuid;      /* file system UUID of the ext4 root (root=UUID=...) */
  guint64 disk_bytes;   /* size of the disk */
  guint64 used_bytes;   /* bytes allocated by the image file (sparse) */
} AbInstallResult;

/* Frees what RESULT holds and resets it; safe to call again. */
void ab_install_result_clear (AbInstallResult *result);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (AbInstallResult, ab_install_result_clear)

/* Parses SIZE: a number of bytes with an optional K, M, G or T suffix
 * (powers of 1024, an optional "iB" or "B" after it). */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_install_parse_size (const char *text, guint64 *out, GError **error);

/* Installs OPTS->refspec from OPTS->source onto OPTS->disk. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_install_run (const AbInstallOptions *opts, AbInstallResult *out, GError **error);
