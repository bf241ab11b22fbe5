/* The file backend's boot pointer, SYSROOT/boot/abdeploy/pointer
 * (abdeploy-pointer(5)). Invariant: a pointer that loads is saved and
 * loads back unchanged. */
#include "config.h"
#include "fuzz-common.h"
#include "bootloaders/ab-bootloader.h"
#include "ab-fsutil.h"

static int sysroot_dfd = -1;
static char *sysroot_root;
static int boot_dfd = -1;

static void
check_round_trip (AbBootloader *bl, const AbBootPointer *ptr)
{
  g_autoptr(GError) error = NULL;
  fuzz_check (ab_bootloader_save (bl, ptr, &error), "save: %s", error->message);
  AbBootPointer again;
  fuzz_check (ab_bootloader_load (bl, &again, &error), "a saved pointer does not load: %s",
              error->message);
  fuzz_check (again.primary == ptr->primary, "primary changed");
  for (int s = 0; s < AB_N_SLOTS; s++)
    fuzz_check (again.state[s] == ptr->state[s] && again.tries[s] == ptr->tries[s],
                "slot %d changed", s);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  fuzz_init ();
  if (sysroot_dfd < 0)
    {
      sysroot_root = fuzz_scratch_dir (&sysroot_dfd);
      if (!ab_fs_mkdir_p_at (sysroot_dfd, "boot/abdeploy", 0755, NULL))
        fuzz_fail (G_STRLOC, "mkdir boot/abdeploy");
      boot_dfd = ab_fs_opendir_at (sysroot_dfd, "boot/abdeploy", NULL);
    }
  fuzz_write_at (boot_dfd, "pointer", data, size);
  g_autoptr(AbBootloader) bl = ab_bootloader_new ("file", sysroot_dfd, sysroot_root, NULL, NULL);
  AbBootPointer ptr;
  g_autoptr(GError) error = NULL;
  if (!ab_bootloader_load (bl, &ptr, &error))
    return 0;
  fuzz_check (ptr.primary == AB_SLOT_NONE || ptr.primary == AB_SLOT_A || ptr.primary == AB_SLOT_B,
              "primary %d", ptr.primary);
  (void) ab_boot_pointer_next_boot (&ptr);
  check_round_trip (bl, &ptr);
  return 0;
}
