/* The U-Boot environment as the uboot backend reads it through
 * libubootenv: the input is
 *   - the data of a single-copy environment (the harness adds the CRC32,
 *     so the variables themselves get parsed), read by load();
 *   - the default-environment text (SYSROOT/etc/u-boot-initial-env,
 *     NAME=VALUE lines) that setup() starts from when no copy is valid. */
#include "config.h"
#include "fuzz-common.h"
#include "bootloaders/ab-bootloader.h"
#include "ab-fsutil.h"

#include <string.h>
#include <zlib.h>

#define ENV_SIZE 0x1000

static int sysroot_dfd = -1;
static AbBootloader *bootloader;

static void
setup (void)
{
  g_autofree char *dir = fuzz_scratch_dir (&sysroot_dfd);
  if (!ab_fs_mkdir_p_at (sysroot_dfd, "etc", 0755, NULL))
    fuzz_fail (G_STRLOC, "mkdir etc");
  g_autofree char *config = g_strdup_printf ("%s/uboot.env 0x0 0x%x\n", dir, ENV_SIZE);
  fuzz_write_at (sysroot_dfd, "etc/fw_env.config", config, strlen (config));
  g_autoptr(GError) error = NULL;
  if ((bootloader = ab_bootloader_new ("uboot", sysroot_dfd, dir, NULL, &error)) == NULL)
    fuzz_fail (G_STRLOC, "%s", error->message);
}

/* A single-copy environment: CRC32 (little endian) of the data, then the
 * data, cut or zero-padded to ENV_SIZE. */
static void
write_env (const uint8_t *data, size_t size, gboolean valid)
{
  g_autofree guint8 *env = g_malloc0 (ENV_SIZE);
  if (size > 0)
    memcpy (env + 4, data, MIN (size, ENV_SIZE - 4));
  guint32 crc = valid ? (guint32) crc32 (0, env + 4, ENV_SIZE - 4) : 0;
  for (int i = 0; i < 4; i++)
    env[i] = (guint8) (crc >> (8 * i));
  fuzz_write_at (sysroot_dfd, "uboot.env", env, ENV_SIZE);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  fuzz_init ();
  if (bootloader == NULL)
    setup ();
  AbBootPointer ptr;
  g_autoptr(GError) error = NULL;
  write_env (data, size, TRUE);
  if (ab_bootloader_load (bootloader, &ptr, &error))
    (void) ab_boot_pointer_next_boot (&ptr);
  g_clear_error (&error);

  write_env (NULL, 0, FALSE);
  fuzz_write_at (sysroot_dfd, "etc/u-boot-initial-env", data, size);
  if (ab_bootloader_setup (bootloader, &error))
    fuzz_check (ab_bootloader_load (bootloader, &ptr, &error),
                "the environment setup() wrote does not load: %s", error->message);
  return 0;
}
