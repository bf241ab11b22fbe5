/* The GRUB environment block (ab-grubenv.c) and the grub backend's boot
 * pointer read from SYSROOT/boot/grub/grubenv. Invariant: a block that
 * parses and fits serializes to a block that parses to the same list. */
#include "config.h"
#include "fuzz-common.h"
#include "bootloaders/ab-bootloader.h"
#include "ab-fsutil.h"
#include "bootloaders/ab-grubenv.h"

#include <string.h>

static int sysroot_dfd = -1;
static char *sysroot_root;
static int grub_dfd = -1;

static void
check_round_trip (GPtrArray *env)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *block = ab_grubenv_serialize (env, &error);
  if (block == NULL)
    return;   /* too big for 1024 bytes: refused, as it must be */
  g_autoptr(GPtrArray) again = ab_grubenv_parse (block, AB_GRUBENV_SIZE, &error);
  fuzz_check (again != NULL, "a serialized block does not parse: %s", error->message);
  fuzz_check (again->len == env->len, "%u variables became %u", env->len, again->len);
  for (guint i = 0; i < env->len; i++)
    fuzz_check (g_str_equal (env->pdata[i], again->pdata[i]), "\"%s\" became \"%s\"",
                (char *) env->pdata[i], (char *) again->pdata[i]);
}

static void
load_pointer (const uint8_t *data, size_t size)
{
  if (sysroot_dfd < 0)
    {
      sysroot_root = fuzz_scratch_dir (&sysroot_dfd);
      if (!ab_fs_mkdir_p_at (sysroot_dfd, "boot/grub", 0755, NULL))
        fuzz_fail (G_STRLOC, "mkdir boot/grub");
      grub_dfd = ab_fs_opendir_at (sysroot_dfd, "boot/grub", NULL);
    }
  fuzz_write_at (grub_dfd, "grubenv", data, size);
  g_autoptr(AbBootloader) bl = ab_bootloader_new ("grub", sysroot_dfd, sysroot_root, NULL, NULL);
  AbBootPointer ptr;
  g_autoptr(GError) error = NULL;
  if (ab_bootloader_load (bl, &ptr, &error))
    (void) ab_boot_pointer_next_boot (&ptr);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  fuzz_init ();
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) env = ab_grubenv_parse ((const char *) data, size, &error);
  if (env != NULL)
    check_round_trip (env);
  load_pointer (data, size);
  return 0;
}
