/* Install layouts of the grub backend: grub-bios (GRUB i386-pc, GPT with a
 * BIOS boot partition) and grub-efi (GRUB x86_64-efi on an ESP).
 *
 * Both keep GRUB's $prefix at /boot/grub on the ext4 root, with the shipped
 * scripts (data/grub/abdeploy.cfg, abdeploy-select.cfg) unchanged and the
 * env block boot/grub/grubenv that `abdeploy init --bootloader=grub` made.
 * The core image finds the root by its file system UUID (search
 * --fs-uuid), so the disk's position on the machine does not matter.
 *
 * Invariants: the core image holds every module the scripts need (no
 * module is loaded from the disk before grub.cfg runs); grub.cfg sets
 * abd_kargs to the root (root=UUID=...) and the kernel arguments of the
 * install, and prints one "ABDEPLOY-GRUB: slot=S reason=R" line per boot. */
#include "config.h"
#include "bootloaders/ab-install-layout.h"

#include <string.h>

#define GRUB_LIBDIR "/usr/lib/grub"
#define SECTOR 512
/* grub-setup's offsets: the LBA of core.img in boot.img, and the first
 * block list entry (start LBA, 8 bytes) at the end of core.img's first
 * sector (diskboot.img). The MBR boot code ends at 440 (disk signature). */
#define BOOT_KERNEL_SECTOR 0x5c
#define DISKBOOT_BLOCKLIST_START (SECTOR - 12)
#define MBR_CODE_SIZE 440

static const char *const modules_common[] = {
  "part_gpt", "part_msdos", "ext2", "fat", "normal", "linux", "echo", "test", "loadenv",
  "configfile", "search", "search_fs_uuid", "serial", "terminal", "sleep", "halt", "reboot",
  "cat", "ls", NULL,
};

static const char *
platform_of (const AbInstallCtx *ctx)
{
  return strcmp (ctx->bootloader, "grub-efi") == 0 ? "x86_64-efi" : "i386-pc";
}

static const char *
package_of (const AbInstallCtx *ctx)
{
  return strcmp (ctx->bootloader, "grub-efi") == 0 ? "grub-efi-amd64-bin" : "grub-pc-bin";
}

static char *
grub_dir (const AbInstallCtx *ctx, GError **error)
{
  g_autofree char *dir = g_build_filename (GRUB_LIBDIR, platform_of (ctx), NULL);
  if (g_file_test (dir, G_FILE_TEST_IS_DIR))
    return g_steal_pointer (&dir);
  g_set_error (error, AB_INSTALL_ERROR, AB_INSTALL_ERROR_TOOL,
               "%s is missing: GRUB's %s modules are needed for --bootloader=%s; install the "
               "%s package", dir, platform_of (ctx), ctx->bootloader, package_of (ctx));
  return NULL;
}

/* The config built into the core image: find the root, set $prefix. */
static char *
write_early_config (AbInstallCtx *ctx, GError **error)
{
  g_autofree char *text = g_strdup_printf ("search --no-floppy --fs-uuid --set=root %s\n"
                                           "set prefix=($root)/boot/grub\n", ctx->root_uuid);
  g_autofree char *path = g_build_filename (ctx->workdir, "grub-early.cfg", NULL);
  if (!g_file_set_contents (path, text, -1, error))
    return NULL;
  return g_steal_pointer (&path);
}

static gboolean
make_core (AbInstallCtx *ctx, const char *output, GError **error)
{
  g_autofree char *dir = grub_dir (ctx, error);
  g_autofree char *early = dir ? write_early_config (ctx, error) : NULL;
  if (early == NULL)
    return FALSE;
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  const char *fixed[] = { "grub-mkimage", "-O", platform_of (ctx), "-o", output, "-c", early,
                          "-p", "/boot/grub", "-d", dir };
  for (guint i = 0; i < G_N_ELEMENTS (fixed); i++)
    g_ptr_array_add (argv, (gpointer) fixed[i]);
  for (guint i = 0; modules_common[i]; i++)
    g_ptr_array_add (argv, (gpointer) modules_common[i]);
  g_ptr_array_add (argv, (gpointer) (strcmp (platform_of (ctx), "i386-pc") == 0 ? "biosdisk"
                                                                                 : "efi_gop"));
  g_ptr_array_add (argv, NULL);
  return ab_install_spawn (ctx, (const char *const *) argv->pdata, NULL, "grub-common", error);
}

/* GRUB's module directory as grub-install leaves it in $prefix. */
static gboolean
copy_modules (AbInstallCtx *ctx, GError **error)
{
  g_autofree char *src = grub_dir (ctx, error);
  if (src == NULL)
    return FALSE;
  g_autoptr(GDir) dir = g_dir_open (src, 0, error);
  if (dir == NULL)
    return FALSE;
  g_autofree char *prefix = g_build_filename ("boot/grub", platform_of (ctx), NULL);
  for (const char *name; (name = g_dir_read_name (dir)) != NULL;)
    {
      if (!g_str_has_suffix (name, ".mod") && !g_str_has_suffix (name, ".lst"))
        continue;
      g_autofree char *from = g_build_filename (src, name, NULL);
      g_autofree char *to = g_build_filename (prefix, name, NULL);
      if (!ab_install_copy_file (from, ctx->sysroot, to, error))
        return FALSE;
    }
  return TRUE;
}

static char *
grub_cfg_text (const AbInstallCtx *ctx)
{
  g_autoptr(GString) s = g_string_new (NULL);
  g_string_append_printf (s, "# grub.cfg written by abdeploy install --bootloader=%s: the\n"
                             "# shipped abdeploy.cfg decides the slot (and spends a trial boot),\n"
                             "# then the entry \"abdeploy\" boots it.\n", ctx->bootloader);
  if (ctx->serial_unit != NULL)
    g_string_append_printf (s, "serial --unit=%s --speed=%s\nterminal_input serial\n"
                               "terminal_output serial\n", ctx->serial_unit, ctx->serial_speed);
  g_string_append_printf (s, "set timeout=0\nset abd_kargs=\"%s\"\n"
                             "source \"$prefix/abdeploy.cfg\"\n"
                             "echo \"ABDEPLOY-GRUB: slot=$abd_slot reason=$abd_reason\"\n"
                             "set default=abdeploy\n", ctx->kernel_args);
  return g_string_free (g_steal_pointer (&s), FALSE);
}

static gboolean
populate_grub (AbInstallCtx *ctx, GError **error)
{
  static const char *const scripts[] = { "abdeploy.cfg", "abdeploy-select.cfg" };
  for (guint i = 0; i < G_N_ELEMENTS (scripts); i++)
    {
      g_autofree char *src = g_build_filename (ctx->datadir, "grub", scripts[i], NULL);
      g_autofree char *dest = g_build_filename ("boot/grub", scripts[i], NULL);
      if (!ab_install_copy_file (src, ctx->sysroot, dest, error))
        return FALSE;
    }
  g_autofree char *cfg = grub_cfg_text (ctx);
  return ab_install_write_file (ctx->sysroot, "boot/grub/grub.cfg", cfg, error)
         && copy_modules (ctx, error);
}

static gboolean
populate_efi (AbInstallCtx *ctx, GError **error)
{
  g_autofree char *efi = g_build_filename (ctx->fat_dir, "EFI/BOOT", NULL);
  if (g_mkdir_with_parents (efi, 0755) < 0)
    {
      g_set_error (error, AB_INSTALL_ERROR, AB_INSTALL_ERROR_FAILED, "cannot create %s", efi);
      return FALSE;
    }
  g_autofree char *image = g_build_filename (efi, "BOOTX64.EFI", NULL);
  return populate_grub (ctx, error) && make_core (ctx, image, error);
}

/* core.img into the BIOS boot partition; its first block list entry
 * points at its own second sector. */
static gboolean
write_bios_core (AbInstallCtx *ctx, GError **error)
{
  const AbPart *part = ab_install_ctx_part (ctx, AB_PART_BIOS_BOOT);
  g_autofree char *path = g_build_filename (ctx->workdir, "core.img", NULL);
  g_autofree char *core = NULL;
  gsize len = 0;
  if (!make_core (ctx, path, error) || !g_file_get_contents (path, &core, &len, error))
    return FALSE;
  if (len < SECTOR || len > part->size)
    {
      g_set_error (error, AB_INSTALL_ERROR, AB_INSTALL_ERROR_FAILED,
                   "GRUB's core.img is %" G_GSIZE_FORMAT " bytes; the BIOS boot partition holds "
                   "%" G_GUINT64_FORMAT, len, part->size);
      return FALSE;
    }
  guint64 second = GUINT64_TO_LE (part->offset / SECTOR + 1);
  memcpy (core + DISKBOOT_BLOCKLIST_START, &second, sizeof second);
  return ab_install_pwrite (ctx, core, len, part->offset, error);
}

/* boot.img's code into the MBR, with the LBA of core.img patched in. */
static gboolean
write_bios_mbr (AbInstallCtx *ctx, GError **error)
{
  const AbPart *part = ab_install_ctx_part (ctx, AB_PART_BIOS_BOOT);
  g_autofree char *path = g_build_filename (GRUB_LIBDIR, "i386-pc", "boot.img", NULL);
  g_autofree char *code = NULL;
  gsize len = 0;
  if (!g_file_get_contents (path, &code, &len, error))
    return FALSE;
  if (len != SECTOR)
    {
      g_set_error (error, AB_INSTALL_ERROR, AB_INSTALL_ERROR_TOOL,
                   "%s is %" G_GSIZE_FORMAT " bytes, not one sector; reinstall grub-pc-bin",
                   path, len);
      return FALSE;
    }
  guint64 lba = GUINT64_TO_LE (part->offset / SECTOR);
  memcpy (code + BOOT_KERNEL_SECTOR, &lba, sizeof lba);
  return ab_install_pwrite (ctx, code, MBR_CODE_SIZE, 0, error);
}

const AbInstallLayout ab_install_layout_grub_bios = {
  .name = "grub-bios",
  .backend = "grub",
  .label = "gpt",
  .parts = { { AB_PART_BIOS_BOOT, 1 }, { AB_PART_ROOT, 0 } },
  .n_parts = 2,
  .populate = populate_grub,
  .write_boot_code = write_bios_core,
  .write_mbr = write_bios_mbr,
};

const AbInstallLayout ab_install_layout_grub_efi = {
  .name = "grub-efi",
  .backend = "grub",
  .label = "gpt",
  .parts = { { AB_PART_ESP, 64 }, { AB_PART_ROOT, 0 } },
  .n_parts = 2,
  .populate = populate_efi,
};
