/* The configuration: the input as one file (ab_config_load_from_data()),
 * and as SYSROOT/etc/abdeploy/abdeploy.conf and a conf.d/ drop-in (hard
 * links to one file) read by ab_config_load(), each bootloader backend
 * made from the result, and the
 * format stamp that migration and restore apply to the text.
 * Invariant: stamping text that parses gives text that parses and states
 * the current format. */
#include "config.h"
#include "fuzz-common.h"
#include "bootloaders/ab-bootloader.h"
#include "ab-config.h"
#include "ab-format.h"
#include "ab-fsutil.h"

#include <unistd.h>

static int sysroot_dfd = -1;
static char *sysroot_root;
static int config_dfd = -1;

static void
setup (void)
{
  sysroot_root = fuzz_scratch_dir (&sysroot_dfd);
  if (!ab_fs_mkdir_p_at (sysroot_dfd, "etc/abdeploy/conf.d", 0755, NULL))
    fuzz_fail (G_STRLOC, "mkdir etc/abdeploy/conf.d");
  config_dfd = ab_fs_opendir_at (sysroot_dfd, "etc/abdeploy", NULL);
  fuzz_write_at (config_dfd, "abdeploy.conf", "", 0);
  if (linkat (config_dfd, "abdeploy.conf", config_dfd, "conf.d/50-input.conf", 0) < 0)
    fuzz_fail (G_STRLOC, "link conf.d/50-input.conf");
}

static void
check_stamp (const uint8_t *data, size_t size)
{
  g_autofree char *text = g_strndup ((const char *) data, size);
  if (!ab_config_stated_format (text, strlen (text), "input", NULL, NULL))
    return;
  g_autofree char *stamped = ab_config_stamp_format (text, AB_CONFIG_FORMAT);
  g_autoptr(GError) error = NULL;
  gint64 stated = 0;
  fuzz_check (ab_config_stated_format (stamped, strlen (stamped), "stamped", &stated, &error)
              && stated == AB_CONFIG_FORMAT, "stamped text does not state format %d: %s",
              AB_CONFIG_FORMAT, error ? error->message : "");
}

static void
use_config (const AbConfig *config)
{
  static const char *const backends[] = { "file", "grub", "uboot", "custom" };
  for (guint i = 0; i < G_N_ELEMENTS (backends); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(AbBootloader) bl = ab_bootloader_new (backends[i], sysroot_dfd, sysroot_root,
                                                      config, &error);
      (void) bl;
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  fuzz_init ();
  if (sysroot_dfd < 0)
    setup ();
  check_stamp (data, size);
  g_autoptr(GError) data_error = NULL;
  g_autoptr(AbConfig) from_data = ab_config_load_from_data ((const char *) data, size,
                                                            "abdeploy.conf", &data_error);
  fuzz_check (from_data != NULL || data_error != NULL, "refused without an error");
  fuzz_write_at (config_dfd, "abdeploy.conf", data, size);
  g_autoptr(GError) error = NULL;
  g_autoptr(AbConfig) config = ab_config_load (sysroot_dfd, NULL, &error);
  if (config == NULL)
    {
      fuzz_check (error != NULL, "refused without an error");
      return 0;
    }
  use_config (config);
  gboolean changed = FALSE;
  g_autoptr(GError) stamp_error = NULL;
  AB_IGNORE_RESULT (ab_config_stamp_file_at (sysroot_dfd, &changed, &stamp_error));
  return 0;
}
