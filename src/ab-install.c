/* abdeploy install: see ab-install.h for the contract.
 *
 * Order: check the options → open the target (PATH.tmp, or the block
 * device, whose first and last MiB are wiped) → place the partitions →
 * build the sysroot in a staging directory (init, keys, stage + activate +
 * mark-good of slot a) → the layout's bootloader files → the file systems
 * (mkfs.ext4 -d at the root's offset; FAT built beside the disk with
 * mkfs.fat and mtools, then copied to its offset) → boot code outside file
 * systems → the partition table (sfdisk) → the MBR boot code → fsync →
 * rename PATH.tmp to PATH → fsync the directory. */
#include "config.h"
#include "ab-install.h"
#include "ab-content.h"
#include "ab-deploy.h"
#include "ab-fsutil.h"
#include "ab-health.h"
#include "ab-slots.h"
#include "ab-sysroot.h"
#include "bootloaders/ab-bootloader.h"
#include "bootloaders/ab-install-layout.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define MIB (G_GUINT64_CONSTANT (1) << 20)
/* The smallest root file system the install makes: room for a tiny image
 * in two slots; a real image needs more (mkfs.ext4 -d fails when full). */
#define MIN_ROOT_MIB 64
#define DEFAULT_OS "abdeploy"
#define DEFAULT_PANIC "panic=5"
#define WIPE_BYTES MIB
/* Relative to an etc/ directory. */
#define AB_INSTALL_CONF "abdeploy/conf.d/50-install.conf"

void
ab_install_result_clear (AbInstallResult *result)
{
  g_clear_pointer (&result->commit, g_free);
  g_clear_pointer (&result->version, g_free);
  g_clear_pointer (&result->root_uuid, g_free);
}

static gboolean
usage_error (GError **error, const char *format, ...) G_GNUC_PRINTF (2, 3);

static gboolean
usage_error (GError **error, const char *format, ...)
{
  va_list ap;
  va_start (ap, format);
  g_autofree char *msg = g_strdup_vprintf (format, ap);
  va_end (ap);
  g_set_error_literal (error, AB_INSTALL_ERROR, AB_INSTALL_ERROR_USAGE, msg);
  return FALSE;
}

gboolean
ab_install_parse_size (const char *text, guint64 *out, GError **error)
{
  static const char units[] = "KMGT";
  char *end = NULL;
  errno = 0;
  guint64 n = text && g_ascii_isdigit (*text) ? g_ascii_strtoull (text, &end, 10) : 0;
  guint shift = 0;
  const char *u = end && *end ? strchr (units, g_ascii_toupper (*end)) : NULL;
  if (u != NULL)
    {
      shift = 10 * (guint) (u - units + 1);
      end++;
      if (g_ascii_strcasecmp (end, "iB") == 0 || g_ascii_strcasecmp (end, "B") == 0)
        end += strlen (end);
    }
  if (end == NULL || *end != '\0' || errno != 0 || n == 0 || (shift && n > (G_MAXUINT64 >> shift)))
    return usage_error (error, "--size=%s is not a size: give bytes or a number with K, M, G "
                        "or T (powers of 1024), e.g. --size=2G", text ? text : "");
  *out = n << shift;
  return TRUE;
}

/* A kernel argument goes into grub.cfg inside double quotes and into boot
 * entries: only characters that need no quoting anywhere. */
static gboolean
check_kernel_arg (const char *arg, GError **error)
{
  for (const char *p = arg; *p; p++)
    if (!g_ascii_isalnum (*p) && strchr ("_.,:=/+@-", *p) == NULL)
      return usage_error (error, "--kernel-arg=%s: the character '%c' is not allowed (only "
                          "letters, digits and _ . , : = / + @ -)", arg, *p);
  if (*arg == '\0')
    return usage_error (error, "--kernel-arg is empty");
  if (g_str_has_prefix (arg, "abdeploy.slot=") || g_str_has_prefix (arg, "root="))
    return usage_error (error, "--kernel-arg=%s: the install sets %s itself", arg,
                        g_str_has_prefix (arg, "root=") ? "root=UUID=... of the root it makes"
                                                        : "nothing: the bootloader sets abdeploy.slot=");
  return TRUE;
}

static gboolean
check_keys (const char *const *keys, GError **error)
{
  if (keys == NULL || keys[0] == NULL)
    return usage_error (error, "give at least one --trusted-key=FILE: the commit is deployed only "
                        "when its signature verifies with a trusted key");
  for (guint i = 0; keys[i]; i++)
    {
      if (!g_str_has_suffix (keys[i], ".gpg") && !g_str_has_suffix (keys[i], ".asc"))
        return usage_error (error, "--trusted-key=%s: a key file must end in .gpg (binary) or "
                            ".asc (armored)", keys[i]);
      if (!g_file_test (keys[i], G_FILE_TEST_IS_REGULAR))
        return usage_error (error, "--trusted-key=%s: no such file", keys[i]);
    }
  return TRUE;
}

static gboolean
valid_os_name (const char *os)
{
  for (const char *p = os; *p; p++)
    if (!g_ascii_isalnum (*p) && strchr ("._-", *p) == NULL)
      return FALSE;
  return *os != '\0' && *os != '.';
}

static gboolean
check_options (const AbInstallOptions *opts, const AbInstallLayout **out, GError **error)
{
  if (opts->disk == NULL || *opts->disk == '\0')
    return usage_error (error, "give the disk: --disk=PATH (an image file to create, or a "
                        "block device)");
  *out = ab_install_layout_lookup (opts->bootloader);
  if (*out == NULL)
    return usage_error (error, "%s%s: give --bootloader=%s",
                        opts->bootloader ? "unknown bootloader " : "no bootloader",
                        opts->bootloader ? opts->bootloader : "", ab_install_layout_names ());
  if (opts->source == NULL || *opts->source == '\0')
    return usage_error (error, "give the repository: --from=URL|PATH");
  if (opts->refspec == NULL || *opts->refspec == '\0')
    return usage_error (error, "give exactly one REF or COMMIT");
  if (opts->os != NULL && !valid_os_name (opts->os))
    return usage_error (error, "--os=%s is not a valid name (letters, digits, . _ -)", opts->os);
  for (guint i = 0; opts->kernel_args && opts->kernel_args[i]; i++)
    if (!check_kernel_arg (opts->kernel_args[i], error))
      return FALSE;
  return check_keys (opts->trusted_keys, error);
}

/* The target, opened: an image file being built, or a block device. */
typedef struct
{
  gboolean block;
  char *final_path; /* PATH */
  char *tmp_path;   /* PATH.tmp for an image file; PATH for a block device */
  int fd;
  guint64 size;
} Target;

static void
target_clear (Target *t)
{
  if (t->fd >= 0)
    (void) close (t->fd);
  g_free (t->final_path);
  g_free (t->tmp_path);
}

static gboolean
fail_errno (GError **error, int e, const char *what, const char *path)
{
  return ab_throw_errno_prefix (error, e, "cannot %s %s", what, path);
}

static gboolean
open_block_device (const AbInstallOptions *opts, Target *t, GError **error)
{
  if (opts->size != 0)
    return usage_error (error, "--size is for image files; %s is a block device and keeps its "
                        "size", opts->disk);
  t->block = TRUE;
  t->tmp_path = g_strdup (opts->disk);
  /* O_EXCL on a block device fails while it is mounted or held: that is the
   * check. The device is then used through a plain descriptor, because
   * mkfs.ext4 makes the same check and would refuse a device we hold. */
  t->fd = open (opts->disk, O_RDWR | O_EXCL | O_CLOEXEC);
  if (t->fd < 0)
    return fail_errno (error, errno, "open (exclusively: is it mounted or in use?)", opts->disk);
  (void) close (t->fd);
  t->fd = open (opts->disk, O_RDWR | O_CLOEXEC);
  if (t->fd < 0)
    return fail_errno (error, errno, "open", opts->disk);
  if (ioctl (t->fd, BLKGETSIZE64, &t->size) < 0)
    return fail_errno (error, errno, "read the size of", opts->disk);
  return TRUE;
}

/* PATH.tmp replaces the leftover of an interrupted install: PATH.tmp is
 * never a finished image. */
static gboolean
open_image_file (const AbInstallOptions *opts, Target *t, GError **error)
{
  if (opts->size == 0)
    return usage_error (error, "%s does not exist: give --size=SIZE to create an image file of "
                        "that size (e.g. --size=2G)", opts->disk);
  t->tmp_path = g_strconcat (opts->disk, ".tmp", NULL);
  t->fd = open (t->tmp_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (t->fd < 0)
    return fail_errno (error, errno, "create", t->tmp_path);
  t->size = opts->size;
  if (ftruncate (t->fd, (off_t) t->size) < 0)
    return fail_errno (error, errno, "size", t->tmp_path);
  return TRUE;
}

static gboolean
open_target (const AbInstallOptions *opts, Target *t, GError **error)
{
  struct stat st;
  t->fd = -1;
  t->final_path = g_strdup (opts->disk);
  if (stat (opts->disk, &st) == 0 && S_ISBLK (st.st_mode))
    return open_block_device (opts, t, error);
  if (errno != ENOENT || lstat (opts->disk, &st) == 0)
    return usage_error (error, "%s exists and is not a block device; abdeploy install never "
                        "overwrites a file: remove it or choose another --disk", opts->disk);
  return open_image_file (opts, t, error);
}

/* A device without a partition table or file system signatures at its
 * start and end (GPT keeps a copy in the last sectors) looks empty. */
static gboolean
wipe_block_device (Target *t, GError **error)
{
  g_autofree guint8 *zero = g_malloc0 (WIPE_BYTES);
  guint64 offsets[] = { 0, t->size > WIPE_BYTES ? t->size - WIPE_BYTES : 0 };
  for (guint i = 0; i < G_N_ELEMENTS (offsets); i++)
    if (pwrite (t->fd, zero, WIPE_BYTES, (off_t) offsets[i]) != (ssize_t) WIPE_BYTES)
      return fail_errno (error, errno ? errno : EIO, "wipe", t->tmp_path);
  return fdatasync (t->fd) == 0 || fail_errno (error, errno, "sync", t->tmp_path);
}

/* Partitions at 1 MiB boundaries from 1 MiB on, in the layout's order; the
 * root takes the rest but the last MiB (the GPT backup header). */
static gboolean
place_partitions (const AbInstallLayout *layout, AbInstallCtx *ctx, GError **error)
{
  guint64 at = MIB, fixed = 0;
  for (guint i = 0; i < layout->n_parts; i++)
    fixed += layout->parts[i].size_mib * MIB;
  guint64 need = 2 * MIB + fixed + MIN_ROOT_MIB * MIB;
  if (ctx->disk_size < need)
    return usage_error (error, "the disk is %" G_GUINT64_FORMAT " MiB; --bootloader=%s needs at "
                        "least %" G_GUINT64_FORMAT " MiB (and the image more): give a larger "
                        "--size", ctx->disk_size / MIB, layout->name, need / MIB);
  for (guint i = 0; i < layout->n_parts; i++)
    {
      AbPart *p = &ctx->parts[i];
      p->kind = layout->parts[i].kind;
      p->number = i + 1;
      p->offset = at;
      p->size = layout->parts[i].size_mib ? layout->parts[i].size_mib * MIB
                                          : ((ctx->disk_size - MIB) / MIB) * MIB - at;
      at += p->size;
    }
  ctx->n_parts = layout->n_parts;
  return TRUE;
}

/* root=UUID=..., the --kernel-arg values, and panic=5 unless one was given
 * (a kernel that panics must reboot to spend a trial boot). */
static void
compose_kernel_args (const AbInstallOptions *opts, AbInstallCtx *ctx)
{
  g_autoptr(GString) s = g_string_new (NULL);
  gboolean panic = FALSE;
  g_string_append_printf (s, "root=UUID=%s", ctx->root_uuid);
  for (guint i = 0; opts->kernel_args && opts->kernel_args[i]; i++)
    {
      const char *a = opts->kernel_args[i];
      g_string_append_printf (s, " %s", a);
      panic = panic || g_str_has_prefix (a, "panic=");
      if (g_str_has_prefix (a, "console=ttyS") && g_ascii_isdigit (a[strlen ("console=ttyS")]))
        {
          g_auto(GStrv) parts = g_strsplit_set (a + strlen ("console=ttyS"), ",n", 3);
          g_free (ctx->serial_unit);
          g_free (ctx->serial_speed);
          ctx->serial_unit = g_strdup (parts[0]);
          ctx->serial_speed = g_strdup (parts[1] && g_ascii_isdigit (*parts[1]) ? parts[1] : "115200");
        }
    }
  if (!panic)
    g_string_append (s, " " DEFAULT_PANIC);
  ctx->kernel_args = g_string_free (g_steal_pointer (&s), FALSE);
}

static gboolean
trust_keys (const AbInstallOptions *opts, AbInstallCtx *ctx, GError **error)
{
  for (guint i = 0; opts->trusted_keys[i]; i++)
    {
      g_autofree char *base = g_path_get_basename (opts->trusted_keys[i]);
      g_autofree char *dest = g_build_filename (AB_TRUSTED_KEYS_DIR, base, NULL);
      if (!ab_install_copy_file (opts->trusted_keys[i], ctx->sysroot, dest, error))
        return FALSE;
    }
  return TRUE;
}

static gboolean
record_result (AbSysroot *sysroot, AbInstallResult *out, GError **error)
{
  g_autoptr(AbSlotRecord) rec = NULL;
  if (!ab_slot_record_load (sysroot->state_dfd, AB_SLOT_A, &rec, error))
    return FALSE;
  if (rec == NULL)
    {
      g_set_error (error, AB_INSTALL_ERROR, AB_INSTALL_ERROR_FAILED,
                   "slot a has no record after the deploy");
      return FALSE;
    }
  out->commit = g_strdup (rec->commit);
  out->version = g_strdup (rec->version);
  return TRUE;
}

/* Slot a: staged from the source (verified against the trusted keys),
 * made primary, marked good. The host's own abdeploy.slot= does not make
 * the staging sysroot a booted one. */
static gboolean
deploy_slot_a (const AbInstallOptions *opts, AbInstallCtx *ctx, AbInstallResult *out,
               GError **error)
{
  g_autoptr(AbSysroot) sysroot = ab_sysroot_open (ctx->sysroot, NULL, error);
  if (sysroot == NULL)
    return FALSE;
  sysroot->booted = AB_SLOT_NONE;
  sysroot->events = ctx->events;
  AbStageOptions stage = { .source = opts->source, .refspec = opts->refspec,
                           .adopt_os = opts->os == NULL, .cancellable = ctx->cancellable };
  AbSlot slot = AB_SLOT_NONE;
  if (!ab_deploy_stage (sysroot, &stage, &slot, error)
      || !ab_deploy_activate (sysroot, 0, &slot, error)
      || !ab_health_mark (sysroot, "a", TRUE, &slot, error))
    return FALSE;
  return record_result (sysroot, out, error);
}

/* The configuration the install leaves for a backend that writes its boot
 * entries itself (AB_BOOTLOADER_CAP_INSTALLS_KERNELS: systemd-boot): [boot]
 * kernel-args. The grub layouts keep the arguments in grub.cfg and get no
 * such file (an abdeploy older than the key would refuse it). */
static gboolean
needs_install_conf (const AbInstallLayout *layout)
{
  const AbBootloaderOps *ops = ab_bootloader_lookup (layout->backend);
  return ops != NULL && (ops->caps & AB_BOOTLOADER_CAP_INSTALLS_KERNELS) != 0;
}

static char *
install_conf_text (const AbInstallCtx *ctx)
{
  return g_strdup_printf ("# Written by abdeploy install (abdeploy-install(8)): the kernel command\n"
                          "# line of the boot entries, after abdeploy.slot=.\n"
                          "[boot]\nkernel-args=%s\n", ctx->kernel_args);
}

/* Slot a's /etc gets the keys and the configuration too, as local files:
 * the booted system reads its slot's /etc, and every later stage carries
 * local files over (three-way /etc merge). A file the image ships is kept. */
static gboolean
write_slot_glue (const AbInstallOptions *opts, const AbInstallLayout *layout, AbInstallCtx *ctx,
                 GError **error)
{
  g_autofree char *etc = g_build_filename (ctx->sysroot, "abdeploy/slots/a/etc", NULL);
  g_autofree char *conf = install_conf_text (ctx);
  for (guint i = 0; opts->trusted_keys[i]; i++)
    {
      g_autofree char *base = g_path_get_basename (opts->trusted_keys[i]);
      g_autofree char *dest = g_build_filename ("abdeploy/trusted.gpg.d", base, NULL);
      g_autofree char *path = g_build_filename (etc, dest, NULL);
      if (!g_file_test (path, G_FILE_TEST_EXISTS)
          && !ab_install_copy_file (opts->trusted_keys[i], etc, dest, error))
        return FALSE;
    }
  return !needs_install_conf (layout) || ab_install_write_file (etc, AB_INSTALL_CONF, conf, error);
}

static gboolean
build_sysroot (const AbInstallOptions *opts, const AbInstallLayout *layout, AbInstallCtx *ctx,
               AbInstallResult *out, GError **error)
{
  gboolean created = FALSE;
  g_autofree char *conf = install_conf_text (ctx);
  g_autofree char *etc = g_build_filename (ctx->sysroot, "etc", NULL);
  ab_event_phase (ctx->events, "sysroot");
  if (g_mkdir_with_parents (ctx->sysroot, 0755) < 0)
    return fail_errno (error, errno, "create", ctx->sysroot);
  if ((layout->configure && !layout->configure (ctx, error))
      || (needs_install_conf (layout) && !ab_install_write_file (etc, AB_INSTALL_CONF, conf, error))
      || !ab_sysroot_init (ctx->sysroot, NULL, opts->os ? opts->os : DEFAULT_OS, layout->backend,
                           ctx->events, &created, error)
      || !trust_keys (opts, ctx, error)
      || (layout->prepare && !layout->prepare (ctx, error)))
    return FALSE;
  ab_event_phase (ctx->events, "deploy");
  if (!deploy_slot_a (opts, ctx, out, error) || !write_slot_glue (opts, layout, ctx, error))
    return FALSE;
  ab_event_message (ctx->events, "Deployed %s (%s) into slot a, marked good",
                    out->version ? out->version : "no version", out->commit);
  ab_event_phase (ctx->events, "bootloader");
  return layout->populate (ctx, error);
}

static char *
size_arg (guint64 bytes)
{
  return g_strdup_printf ("%" G_GUINT64_FORMAT "k", bytes / 1024);
}

static gboolean
write_root_fs (AbInstallCtx *ctx, const char *disk, GError **error)
{
  const AbPart *p = ab_install_ctx_part (ctx, AB_PART_ROOT);
  g_autofree char *offset = g_strdup_printf ("offset=%" G_GUINT64_FORMAT, p->offset);
  g_autofree char *size = size_arg (p->size);
  const char *argv[] = { "mkfs.ext4", "-q", "-F", "-L", "abdeploy-root", "-U", ctx->root_uuid,
                         "-d", ctx->sysroot, "-E", offset, disk, size, NULL };
  return ab_install_spawn (ctx, argv, NULL, "e2fsprogs", error);
}

/* Writes DATA at OFFSET; on a new image file (all zeros, sparse) runs of
 * zeros are skipped, so that they take no space. */
static gboolean
ab_install_pwrite_sparse (AbInstallCtx *ctx, const char *data, gsize len, guint64 offset,
                          GError **error)
{
  static const gsize chunk = 64 * 1024;
  static const char zero[64 * 1024];
  for (gsize at = 0; at < len; at += chunk)
    {
      gsize n = MIN (chunk, len - at);
      if (ctx->fresh_image && memcmp (data + at, zero, n) == 0)
        continue;
      if (!ab_install_pwrite (ctx, data + at, n, offset + at, error))
        return FALSE;
    }
  return TRUE;
}

/* Copies the FAT image file IMAGE to the partition's offset. */
static gboolean
copy_into_disk (AbInstallCtx *ctx, const char *image, const AbPart *p, GError **error)
{
  g_autofree char *data = NULL;
  gsize len = 0;
  if (!g_file_get_contents (image, &data, &len, error))
    return FALSE;
  if (len > p->size)
    return fail_errno (error, EFBIG, "fit the FAT file system into its partition:", image);
  return ab_install_pwrite_sparse (ctx, data, len, p->offset, error);
}

/* The FAT partition: mkfs.fat on a file of its size, mtools copies the
 * staging directory in, then the file goes to the partition's offset. */
static gboolean
write_fat_fs (AbInstallCtx *ctx, const AbPart *p, GError **error)
{
  g_autofree char *image = g_build_filename (ctx->workdir, "fat.img", NULL);
  g_autofree char *blocks = g_strdup_printf ("%" G_GUINT64_FORMAT, p->size / 1024);
  const char *mkfs[] = { "mkfs.fat", "-C", "-n", "ABDEPLOY", image, blocks, NULL };
  if (!ab_install_spawn (ctx, mkfs, NULL, "dosfstools", error))
    return FALSE;
  g_autoptr(GDir) dir = g_dir_open (ctx->fat_dir, 0, error);
  if (dir == NULL)
    return FALSE;
  for (const char *name; (name = g_dir_read_name (dir)) != NULL;)
    {
      g_autofree char *src = g_build_filename (ctx->fat_dir, name, NULL);
      const char *mcopy[] = { "mcopy", "-s", "-Q", "-i", image, src, "::/", NULL };
      if (!ab_install_spawn (ctx, mcopy, NULL, "mtools", error))
        return FALSE;
    }
  return copy_into_disk (ctx, image, p, error);
}

static const char *
gpt_type (AbPartKind kind)
{
  switch (kind)
    {
    case AB_PART_ESP: return "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
    case AB_PART_BIOS_BOOT: return "21686148-6449-6E6F-744E-656564454649";
    case AB_PART_FAT_BOOT: return "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7";
    case AB_PART_ROOT: default: return "0FC63DAF-8483-4772-8E79-3D69D8477DE4";
    }
}

static const char *
dos_type (AbPartKind kind)
{
  switch (kind)
    {
    case AB_PART_ESP: return "ef";
    case AB_PART_FAT_BOOT: return "c, bootable";
    case AB_PART_BIOS_BOOT: return "da";
    case AB_PART_ROOT: default: return "83";
    }
}

static gboolean
write_partition_table (const AbInstallLayout *layout, AbInstallCtx *ctx, const char *disk,
                       GError **error)
{
  gboolean gpt = strcmp (layout->label, "gpt") == 0;
  g_autoptr(GString) script = g_string_new (NULL);
  g_string_append_printf (script, "label: %s\nunit: sectors\n", layout->label);
  for (guint i = 0; i < ctx->n_parts; i++)
    g_string_append_printf (script, "start=%" G_GUINT64_FORMAT ", size=%" G_GUINT64_FORMAT
                            ", type=%s\n", ctx->parts[i].offset / 512, ctx->parts[i].size / 512,
                            gpt ? gpt_type (ctx->parts[i].kind) : dos_type (ctx->parts[i].kind));
  const char *argv[] = { "sfdisk", "-q", "--no-reread", "--no-tell-kernel", "--wipe=never",
                         "--wipe-partitions=never", disk, NULL };
  return ab_install_spawn (ctx, argv, script->str, "fdisk", error);
}

static gboolean
write_disk (const AbInstallLayout *layout, AbInstallCtx *ctx, const Target *t, GError **error)
{
  ab_event_phase (ctx->events, "filesystems");
  if (!write_root_fs (ctx, t->tmp_path, error))
    return FALSE;
  for (guint i = 0; i < ctx->n_parts; i++)
    if ((ctx->parts[i].kind == AB_PART_ESP || ctx->parts[i].kind == AB_PART_FAT_BOOT)
        && !write_fat_fs (ctx, &ctx->parts[i], error))
      return FALSE;
  if (layout->write_boot_code && !layout->write_boot_code (ctx, error))
    return FALSE;
  /* Last: until here the disk has no partition table. */
  ab_event_phase (ctx->events, "partition");
  if (fdatasync (t->fd) < 0)
    return fail_errno (error, errno, "sync", t->tmp_path);
  return write_partition_table (layout, ctx, t->tmp_path, error)
         && (layout->write_mbr == NULL || layout->write_mbr (ctx, error));
}

/* fsync, then (image file) rename PATH.tmp to PATH and fsync the directory. */
static gboolean
finish_target (Target *t, GError **error)
{
  if (fsync (t->fd) < 0)
    return fail_errno (error, errno, "sync", t->tmp_path);
  if (t->block)
    return TRUE;
  if (link (t->tmp_path, t->final_path) < 0)
    return errno == EEXIST ? usage_error (error, "%s appeared while the install ran; the image "
                                          "is left in %s", t->final_path, t->tmp_path)
                           : fail_errno (error, errno, "name the image", t->final_path);
  if (unlink (t->tmp_path) < 0)
    return fail_errno (error, errno, "remove", t->tmp_path);
  g_autofree char *dir = g_path_get_dirname (t->final_path);
  return ab_fs_fsync_dir_at (AT_FDCWD, dir, error);
}

static void
ctx_clear (AbInstallCtx *ctx)
{
  if (ctx->workdir)
    AB_IGNORE_RESULT (ab_fs_rm_rf_at (AT_FDCWD, ctx->workdir, NULL));
  g_free (ctx->workdir);
  g_free (ctx->sysroot);
  g_free (ctx->fat_dir);
  g_free (ctx->datadir);
  g_free (ctx->root_uuid);
  g_free (ctx->kernel_args);
  g_free (ctx->serial_unit);
  g_free (ctx->serial_speed);
}

/* The staging directories: PATH.tmp.d beside an image file (same file
 * system, room for the image; the leftover of an interrupted install is
 * replaced), a new directory in $TMPDIR for a block device. */
static gboolean
make_workdir (const Target *t, const AbInstallLayout *layout, AbInstallCtx *ctx, GError **error)
{
  if (t->block)
    {
      g_autofree char *tmpl = g_build_filename (g_get_tmp_dir (), "abdeploy-install-XXXXXX", NULL);
      if (g_mkdtemp (tmpl) == NULL)
        return fail_errno (error, errno, "create a staging directory in", g_get_tmp_dir ());
      ctx->workdir = g_steal_pointer (&tmpl);
    }
  else
    {
      ctx->workdir = g_strconcat (t->tmp_path, ".d", NULL);
      if (!ab_fs_rm_rf_at (AT_FDCWD, ctx->workdir, error))
        return FALSE;
      if (mkdir (ctx->workdir, 0700) < 0)
        return fail_errno (error, errno, "create", ctx->workdir);
    }
  ctx->sysroot = g_build_filename (ctx->workdir, "root", NULL);
  for (guint i = 0; i < layout->n_parts; i++)
    if (layout->parts[i].kind == AB_PART_ESP || layout->parts[i].kind == AB_PART_FAT_BOOT)
      ctx->fat_dir = g_build_filename (ctx->workdir, "fat", NULL);
  if (ctx->fat_dir && mkdir (ctx->fat_dir, 0755) < 0)
    return fail_errno (error, errno, "create", ctx->fat_dir);
  const char *env = g_getenv ("ABDEPLOY_DATADIR");
  ctx->datadir = g_strdup (env && *env ? env : ABDEPLOY_DATADIR);
  return TRUE;
}

static gboolean
install_to (const AbInstallOptions *opts, const AbInstallLayout *layout, Target *t,
            AbInstallCtx *ctx, AbInstallResult *out, GError **error)
{
  ctx->disk_fd = t->fd;
  ctx->disk_size = t->size;
  ctx->fresh_image = !t->block;
  if (!place_partitions (layout, ctx, error) || !make_workdir (t, layout, ctx, error))
    return FALSE;
  if (t->block && !wipe_block_device (t, error))
    return FALSE;
  if (geteuid () != 0)
    ab_event_warning (ctx->events, "not running as root: the files in the image belong to uid "
                      "%u, and abdeploy refuses health hooks not owned by root", geteuid ());
  compose_kernel_args (opts, ctx);
  if (!build_sysroot (opts, layout, ctx, out, error) || !write_disk (layout, ctx, t, error))
    return FALSE;
  ab_event_phase (ctx->events, "finish");
  return finish_target (t, error);
}

gboolean
ab_install_run (const AbInstallOptions *opts, AbInstallResult *out, GError **error)
{
  const AbInstallLayout *layout = NULL;
  if (!check_options (opts, &layout, error))
    return FALSE;
  Target t = { 0 };
  AbInstallCtx ctx = { .bootloader = layout->name, .events = opts->events,
                       .cancellable = opts->cancellable, .disk_fd = -1 };
  ctx.root_uuid = g_uuid_string_random ();
  gboolean ok = open_target (opts, &t, error) && install_to (opts, layout, &t, &ctx, out, error);
  if (!ok && !t.block && t.tmp_path && t.fd >= 0)
    (void) unlink (t.tmp_path);
  if (ok)
    {
      struct stat st;
      out->root_uuid = g_strdup (ctx.root_uuid);
      out->disk_bytes = t.size;
      out->used_bytes = fstat (t.fd, &st) == 0 ? (guint64) st.st_blocks * 512 : 0;
    }
  ctx_clear (&ctx);
  target_clear (&t);
  return ok;
}
