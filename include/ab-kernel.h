/* Kernel and initramfs of a slot: found in the tree at
 * usr/lib/modules/$kver/{vmlinuz,initramfs.img}, installed into
 * SYSROOT/boot/abdeploy/<slot>/ by building boot/abdeploy/.<slot>.new and
 * swapping it in.
 *
 * Invariants:
 * - The kernel of a tree is the vmlinuz of the highest $kver (lexical
 *   order) that has one. It is bootable only when it is a non-empty
 *   regular file reached without any symbolic link (usr, usr/lib,
 *   usr/lib/modules, $kver and vmlinuz itself); the same holds for an
 *   initramfs.img next to it. Everything is resolved with
 *   ab_fs_open_beneath(), so nothing outside the tree is ever read.
 * - ab_kernel_install() installs only a bootable kernel, as regular-file
 *   copies; a tree without one is refused and the boot directory is left as
 *   it was. */
#pragma once

#include <glib.h>
#include "ab-util.h"

#define AB_KERNEL_ERROR (ab_kernel_error_quark ())
/* The error domain of ab-kernel (the codes of the enum below). */
GQuark ab_kernel_error_quark (void);

typedef enum
{
  AB_KERNEL_ERROR_FAILED,
  AB_KERNEL_ERROR_NOT_FOUND,
  AB_KERNEL_ERROR_NOT_BOOTABLE,   /* a link, not a regular file, empty, or outside the tree */
} AbKernelError;

/* The kernel version directory name of the tree's bootable kernel, or NULL:
 * AB_KERNEL_ERROR_NOT_FOUND (none), AB_KERNEL_ERROR_NOT_BOOTABLE (the
 * kernel or its initramfs is not a non-empty regular file of the tree). */
G_GNUC_WARN_UNUSED_RESULT
char *ab_kernel_find (int tree_dfd, GError **error);
/* Builds SLOT's boot directory under BOOT_DFD from the kernel (and initramfs)
 * of the tree TREE_DFD beside the old one, then swaps it in; a failed build
 * leaves nothing and the old kernel stays. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_kernel_install (int tree_dfd, int boot_dfd, AbSlot slot, GError **error);
/* Whether BOOT_DFD/<slot>/vmlinuz is a non-empty regular file (no link):
 * what the bootloader boots. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_kernel_check_installed (int boot_dfd, AbSlot slot, GError **error);
