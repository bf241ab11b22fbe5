/* The kernel command line: ab_cmdline_get() on the text, and
 * ab_cmdline_booted_slot() reading it from a file ($ABDEPLOY_CMDLINE).
 * Invariant: a value found is one word of the command line. */
#include "config.h"
#include "fuzz-common.h"
#include "ab-cmdline.h"

#include <string.h>

static int dfd = -1;

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  fuzz_init ();
  if (dfd < 0)
    {
      g_autofree char *dir = fuzz_scratch_dir (&dfd);
      g_autofree char *path = g_build_filename (dir, "cmdline", NULL);
      g_setenv ("ABDEPLOY_CMDLINE", path, TRUE);
    }
  g_autofree char *text = g_strndup ((const char *) data, size);
  g_autofree char *value = ab_cmdline_get (text, "abdeploy.slot");
  if (value != NULL)
    {
      fuzz_check (strpbrk (value, " \t\n") == NULL, "value \"%s\" spans words", value);
      g_autofree char *word = g_strconcat ("abdeploy.slot=", value, NULL);
      fuzz_check (strstr (text, word) != NULL, "value \"%s\" is not on the line", value);
    }
  fuzz_write_at (dfd, "cmdline", data, size);
  g_autoptr(GError) error = NULL;
  AbSlot slot = ab_cmdline_booted_slot (&error);
  fuzz_check (slot == AB_SLOT_NONE || slot == AB_SLOT_A || slot == AB_SLOT_B, "slot %d", slot);
  return 0;
}
