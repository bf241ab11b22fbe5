/* Install layout of the uboot backend (--bootloader=uboot): an MBR disk with
 * a bootable FAT boot partition, then the ext4 root.
 *
 * The FAT partition is the sysroot's /boot (the device mounts it on
 * /sysroot/boot): boot.scr, which U-Boot's distro boot finds at its root,
 * the kernels of both slots (abdeploy/{a,b}/), and the U-Boot environment
 * in two files, uboot.env and uboot-redund.env (the redundant layout of
 * U-Boot and libubootenv), which boot.scr imports and stores itself (so
 * that a U-Boot without a writable environment of its own works too).
 *
 * boot.scr is a script image (mkimage) of the board's settings, as hush
 * variables, followed by the shipped data/uboot/abdeploy.cmd. The boot
 * command follows the kernel's format: zboot for an x86 bzImage, booti for
 * an arm64 Image, bootz for an arm zImage.
 *
 * Invariants: the environment files are created and written only through
 * the uboot backend (libubootenv), at the staging paths that
 * etc/fw_env.config names during the install; the image's own
 * etc/fw_env.config names them as the device sees them (/boot/...). */
#include "config.h"
#include "bootloaders/ab-install-layout.h"
#include "ab-install.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define ENV_SIZE 0x4000
#define ENV_FILE "uboot.env"
#define ENV_FILE_REDUND "uboot-redund.env"
#define BOOT_SCRIPT "boot.scr"
#define FW_ENV_CONFIG "etc/fw_env.config"
#define ENV_DEFAULTS "etc/u-boot-initial-env"
#define FAT_LABEL "ABDEPLOY"
#define BOOT_MOUNTPOINT "/sysroot/boot"

/* fw_env.config naming both copies in directory DIR. */
static char *
fw_env_config_text (const char *dir)
{
  return g_strdup_printf ("# The U-Boot environment of abdeploy install --bootloader=uboot: two\n"
                          "# copies (redundant layout) on the FAT boot partition.\n"
                          "%s/" ENV_FILE " 0x0 0x%x\n%s/" ENV_FILE_REDUND " 0x0 0x%x\n",
                          dir, ENV_SIZE, dir, ENV_SIZE);
}

/* Before init: init and every later write reach the environment files in
 * the FAT staging directory. No default environment is needed: boot.scr
 * imports the files over U-Boot's built-in one, which stays in force. */
static gboolean
configure_uboot (AbInstallCtx *ctx, GError **error)
{
  g_autofree char *config = fw_env_config_text (ctx->fat_dir);
  return ab_install_write_file (ctx->sysroot, FW_ENV_CONFIG, config, error)
         && ab_install_write_file (ctx->sysroot, ENV_DEFAULTS,
                                   "# Empty on purpose: boot.scr imports the environment files over\n"
                                   "# U-Boot's built-in environment, which stays in force.\n",
                                   error);
}

/* The boot command for the kernel file PATH, from its header. */
static const char *
boot_command_for (const char *path, GError **error)
{
  g_autofree char *data = NULL;
  gsize len = 0;
  if (!g_file_get_contents (path, &data, &len, error))
    return NULL;
  if (len > 0x206 && memcmp (data + 0x202, "HdrS", 4) == 0)
    return "zboot";
  if (len > 0x3c && memcmp (data + 0x38, "ARM\x64", 4) == 0)
    return "booti";
  if (len > 0x28 && (guint8) data[0x24] == 0x18 && (guint8) data[0x25] == 0x28
      && (guint8) data[0x26] == 0x6f && (guint8) data[0x27] == 0x01)
    return "bootz";
  g_set_error (error, AB_INSTALL_ERROR, AB_INSTALL_ERROR_FAILED,
               "%s is neither an x86 bzImage, an arm64 Image nor an arm zImage; U-Boot cannot "
               "boot it with zboot, booti or bootz", path);
  return NULL;
}

/* The board's settings in front of abdeploy.cmd (see its header). */
static char *
boot_cmd_text (AbInstallCtx *ctx, const char *boot, GError **error)
{
  g_autofree char *script_path = g_build_filename (ctx->datadir, "uboot", "abdeploy.cmd", NULL);
  g_autofree char *script = NULL;
  if (!g_file_get_contents (script_path, &script, NULL, error))
    return NULL;
  return g_strdup_printf ("# boot.scr written by abdeploy install --bootloader=uboot: the board's\n"
                          "# settings (hush variables, not stored), then abdeploy.cmd.\n"
                          "abdeploy_boot=%s\n"
                          "abdeploy_bootdir=/abdeploy\n"
                          "abdeploy_envfile=/" ENV_FILE "\n"
                          "abdeploy_envfile_redund=/" ENV_FILE_REDUND "\n"
                          "abdeploy_envsize=0x%x\n"
                          "abdeploy_kargs=\"%s\"\n%s",
                          boot, ENV_SIZE, ctx->kernel_args, script);
}

static gboolean
write_boot_script (AbInstallCtx *ctx, GError **error)
{
  g_autofree char *kernel = g_build_filename (ctx->fat_dir, "abdeploy", "a", "vmlinuz", NULL);
  const char *boot = boot_command_for (kernel, error);
  g_autofree char *text = boot ? boot_cmd_text (ctx, boot, error) : NULL;
  if (text == NULL || !ab_install_write_file (ctx->workdir, "boot.cmd", text, error))
    return FALSE;
  g_autofree char *cmd = g_build_filename (ctx->workdir, "boot.cmd", NULL);
  g_autofree char *scr = g_build_filename (ctx->fat_dir, BOOT_SCRIPT, NULL);
  /* The architecture field is a label: `source` does not check it. */
  const char *argv[] = { "mkimage", "-A", "arm", "-T", "script", "-C", "none", "-n", "boot",
                         "-d", cmd, scr, NULL };
  return ab_install_spawn (ctx, argv, NULL, "u-boot-tools", error);
}

/* The kernels deployed into the sysroot's boot/abdeploy move to the FAT
 * partition, which is /boot on the device; boot/ stays as its mount point. */
static gboolean
move_kernels (AbInstallCtx *ctx, GError **error)
{
  g_autofree char *from = g_build_filename (ctx->sysroot, "boot", "abdeploy", NULL);
  g_autofree char *to = g_build_filename (ctx->fat_dir, "abdeploy", NULL);
  if (rename (from, to) == 0)
    return TRUE;
  int e = errno;
  g_set_error (error, G_IO_ERROR, g_io_error_from_errno (e), "cannot move %s to %s: %s", from,
               to, g_strerror (e));
  return FALSE;
}

/* The device's fw_env.config: the sysroot's, and slot a's /etc (where
 * abdeploy reads it on the device) unless the image ships one. */
static gboolean
write_device_config (AbInstallCtx *ctx, GError **error)
{
  g_autofree char *config = fw_env_config_text ("/boot");
  g_autofree char *slot_etc = g_build_filename (ctx->sysroot, "abdeploy", "slots", "a", NULL);
  g_autofree char *shipped = g_build_filename (slot_etc, FW_ENV_CONFIG, NULL);
  if (!ab_install_write_file (ctx->sysroot, FW_ENV_CONFIG, config, error))
    return FALSE;
  if (g_file_test (shipped, G_FILE_TEST_EXISTS))
    {
      ab_event_message (ctx->events, "The image ships /%s: it must name /boot/%s and /boot/%s",
                        FW_ENV_CONFIG, ENV_FILE, ENV_FILE_REDUND);
      return TRUE;
    }
  return ab_install_write_file (slot_etc, FW_ENV_CONFIG, config, error);
}

/* Whether fstab text TEXT already mounts something on MOUNTPOINT. */
static gboolean
fstab_mounts (const char *text, const char *mountpoint)
{
  g_auto (GStrv) lines = g_strsplit (text, "\n", -1);
  for (char **l = lines; *l; l++)
    {
      g_auto (GStrv) f = g_strsplit_set (g_strstrip (*l), " \t", -1);
      guint n = 0;
      for (char **w = f; *w; w++)
        if (**w != '\0')
          f[n++] = *w; /* the fields, without the empty words between blanks */
      if (n >= 2 && f[0][0] != '#' && g_str_equal (f[1], mountpoint))
        return TRUE;
    }
  return FALSE;
}

/* Slot a's /etc/fstab mounts the FAT boot partition where fw_env.config
 * and the backend find it, so the device needs no further step: the
 * line is added to the image's fstab unless that already mounts the
 * place (the builder's line wins). Local to the device from here on:
 * later deployments carry it over like any changed file of /etc. */
static gboolean
write_fstab (AbInstallCtx *ctx, GError **error)
{
  g_autofree char *slot = g_build_filename (ctx->sysroot, "abdeploy", "slots", "a", NULL);
  g_autofree char *path = g_build_filename (slot, "etc", "fstab", NULL);
  g_autofree char *text = NULL;
  if (!g_file_get_contents (path, &text, NULL, NULL))
    text = g_strdup ("");
  if (fstab_mounts (text, BOOT_MOUNTPOINT))
    {
      ab_event_message (ctx->events, "The image's /etc/fstab mounts %s: it is kept",
                        BOOT_MOUNTPOINT);
      return TRUE;
    }
  g_autofree char *added = g_strdup_printf (
      "%s%s# abdeploy install: the FAT boot partition (kernels, U-Boot environment)\n"
      "LABEL=" FAT_LABEL " " BOOT_MOUNTPOINT " vfat defaults 0 2\n",
      text, *text && !g_str_has_suffix (text, "\n") ? "\n" : "");
  return ab_install_write_file (slot, "etc/fstab", added, error);
}

static gboolean
populate_uboot (AbInstallCtx *ctx, GError **error)
{
  return move_kernels (ctx, error) && write_boot_script (ctx, error)
         && write_device_config (ctx, error) && write_fstab (ctx, error);
}

const AbInstallLayout ab_install_layout_uboot = {
  .name = "uboot",
  .backend = "uboot",
  .label = "dos",
  .parts = { { AB_PART_FAT_BOOT, 256 }, { AB_PART_ROOT, 0 } },
  .n_parts = 2,
  .configure = configure_uboot,
  .populate = populate_uboot,
};
