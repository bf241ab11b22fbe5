/* Install layout of the systemd-boot backend: GPT with a 512 MiB ESP (FAT)
 * and the ext4 root.
 *
 * The ESP holds systemd-boot (systemd-boot-efi's systemd-bootx64.efi) as
 * the removable-media path EFI/BOOT/BOOTX64.EFI and as
 * EFI/systemd/systemd-bootx64.efi, loader/loader.conf (timeout 0, no
 * "default": the backend's entry names decide), and what the backend
 * writes at the deploy: loader/entries/ and each slot's kernel and
 * initramfs in abdeploy/<slot>/.
 *
 * The ESP is staged as SYSROOT/efi, the backend's first ESP candidate, so
 * that init and the deploy of slot a write it as they would on a device;
 * then its contents move to the FAT partition's staging directory, and
 * SYSROOT/efi stays as an empty directory. The booted system mounts the
 * ESP at /efi of its slot (systemd's gpt-auto generator does that on a
 * systemd system booted by systemd-boot; otherwise an fstab line).
 *
 * Invariants: loader.conf never sets "default"; the kernel command line of
 * the entries comes from [boot] kernel-args, which the install writes
 * (etc/abdeploy/conf.d/50-install.conf) before init. */
#include "config.h"
#include "bootloaders/ab-install-layout.h"
#include "ab-install.h"

#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#define SDBOOT_EFI "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"
#define STAGED_ESP "efi"
#define LOADER_CONF "# Written by abdeploy install: the entry names choose the slot\n" \
                    "# (abdeploy-pointer(5)); never set \"default\" here.\n"         \
                    "timeout 0\neditor no\n"

static gboolean
prepare_sdboot (AbInstallCtx *ctx, GError **error)
{
  if (!g_file_test (SDBOOT_EFI, G_FILE_TEST_IS_REGULAR))
    {
      g_set_error (error, AB_INSTALL_ERROR, AB_INSTALL_ERROR_TOOL,
                   "%s is missing: --bootloader=systemd-boot needs it; install the "
                   "systemd-boot-efi package", SDBOOT_EFI);
      return FALSE;
    }
  g_autofree char *esp = g_build_filename (ctx->sysroot, STAGED_ESP, NULL);
  g_autofree char *entries = g_build_filename (esp, "loader/entries", NULL);
  if (g_mkdir_with_parents (entries, 0755) < 0)
    {
      int e = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (e), "cannot create %s: %s",
                   entries, g_strerror (e));
      return FALSE;
    }
  return ab_install_copy_file (SDBOOT_EFI, esp, "EFI/BOOT/BOOTX64.EFI", error)
         && ab_install_copy_file (SDBOOT_EFI, esp, "EFI/systemd/systemd-bootx64.efi", error)
         && ab_install_write_file (esp, "loader/loader.conf", LOADER_CONF, error);
}

/* SYSROOT/efi's contents become the FAT partition's; SYSROOT/efi stays,
 * empty. */
static gboolean
populate_sdboot (AbInstallCtx *ctx, GError **error)
{
  g_autofree char *esp = g_build_filename (ctx->sysroot, STAGED_ESP, NULL);
  if (rmdir (ctx->fat_dir) < 0 || rename (esp, ctx->fat_dir) < 0 || mkdir (esp, 0755) < 0)
    {
      int e = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (e),
                   "cannot move the staged ESP %s to %s: %s", esp, ctx->fat_dir, g_strerror (e));
      return FALSE;
    }
  return TRUE;
}

const AbInstallLayout ab_install_layout_systemd_boot = {
  .name = "systemd-boot",
  .backend = "systemd-boot",
  .label = "gpt",
  .parts = { { AB_PART_ESP, 512 }, { AB_PART_ROOT, 0 } },
  .n_parts = 2,
  .configure = prepare_sdboot,
  .populate = populate_sdboot,
};
