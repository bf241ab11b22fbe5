/* Kernel and initramfs of a slot: found in the tree at
 * usr/lib/modules/$kver/{vmlinuz,initramfs.img}, installed into
 * SYSROOT/boot/abdeploy/<slot>/ by building boot/abdeploy/.<slot>.new and
 * swapping it in. */
#pragma once

#include <glib.h>
#include "ab-util.h"

#define AB_KERNEL_ERROR (ab_kernel_error_quark ())
GQuark ab_kernel_error_quark (void);

typedef enum
{
  AB_KERNEL_ERROR_FAILED,
  AB_KERNEL_ERROR_NOT_FOUND,
} AbKernelError;

/* The kernel version directory name, or NULL (AB_KERNEL_ERROR_NOT_FOUND). */
char *ab_kernel_find (int tree_dfd, GError **error);
gboolean ab_kernel_install (int tree_dfd, int boot_dfd, AbSlot slot, GError **error);
