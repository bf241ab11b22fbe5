/* abdeploy install: the factory install of a signed commit to a disk
 * (abdeploy-install(8)); the engine is ab-install.c. */
#include "config.h"
#include "ab-install.h"
#include "cli.h"
#include "cli/ab-exitcode.h"
#include "bootloaders/ab-install-layout.h"

#include <stdio.h>

static void
print_result (const AbInstallOptions *opts, const AbInstallResult *res)
{
  g_autofree char *size = g_format_size_full (res->disk_bytes, G_FORMAT_SIZE_IEC_UNITS);
  g_autofree char *used = g_format_size_full (res->used_bytes, G_FORMAT_SIZE_IEC_UNITS);
  g_print ("Installed %s (%s) on %s with %s: slot a good and primary; root=UUID=%s\n",
           opts->refspec, res->version ? res->version : res->commit, opts->disk, opts->bootloader,
           res->root_uuid);
  g_print ("Disk size %s, %s allocated\n", size, used);
}

typedef struct
{
  char *disk, *size, *bootloader, *from, *os;
  char **keys, **kargs;
} InstallArgs;

static void
install_args_clear (InstallArgs *a)
{
  g_free (a->disk);
  g_free (a->size);
  g_free (a->bootloader);
  g_free (a->from);
  g_free (a->os);
  g_strfreev (a->keys);
  g_strfreev (a->kargs);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (InstallArgs, install_args_clear)

int
cli_install (int argc, char **argv)
{
  g_auto(InstallArgs) a = { 0 };
  g_autofree char *bl_help = g_strdup_printf ("Bootloader and disk layout: %s",
                                              ab_install_layout_names ());
  GOptionEntry entries[] = {
    { "disk", 0, 0, G_OPTION_ARG_FILENAME, &a.disk, "Image file to create, or a block device", "PATH" },
    { "size", 0, 0, G_OPTION_ARG_STRING, &a.size, "Size of the image file (e.g. 2G)", "SIZE" },
    { "bootloader", 0, 0, G_OPTION_ARG_STRING, &a.bootloader, bl_help, "NAME" },
    { "from", 0, 0, G_OPTION_ARG_STRING, &a.from, "Pull from URL (http, https) or local repo PATH", "URL|PATH" },
    { "os", 0, 0, G_OPTION_ARG_STRING, &a.os, "Name of the operating system (default abdeploy)", "NAME" },
    { "trusted-key", 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &a.keys, "Trust this public key (repeatable)", "FILE" },
    { "kernel-arg", 0, 0, G_OPTION_ARG_STRING_ARRAY, &a.kargs, "Extra kernel argument (repeatable)", "ARG" },
    { NULL }
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new (
      "REF|COMMIT - partition a disk, install the bootloader, deploy a signed commit into slot a");
  int code = 0;
  if (!cli_parse_command (ctx, entries, &argc, &argv, &code))
    return code;
  if (argc != 2)
    return cli_one_argument (ctx, argc, argv, "REF or COMMIT");
  GError *error = NULL;
  guint64 size = 0;
  if (a.size && !ab_install_parse_size (a.size, &size, &error))
    return cli_fail (error);
  g_autoptr(GCancellable) cancellable = cli_cancel_on_signals ();
  /* messages on stdout, warnings on stderr, as every command prints them */
  g_autoptr(CliProgress) text = cli_progress_new_text ();
  AbInstallOptions opts = {
    .disk = a.disk,
    .size = size,
    .bootloader = a.bootloader,
    .source = a.from,
    .os = a.os,
    .trusted_keys = (const char *const *) a.keys,
    .kernel_args = (const char *const *) a.kargs,
    .refspec = argv[1],
    .events = cli_progress_sink (text),
    .cancellable = cancellable,
  };
  g_auto(AbInstallResult) res = { 0 };
  if (!ab_install_run (&opts, &res, &error))
    return cli_fail (error);
  print_result (&opts, &res);
  return AB_EXIT_OK;
}
