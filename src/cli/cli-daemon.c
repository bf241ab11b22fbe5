/* abdeploy daemon: parses the options and runs the D-Bus front end
 * (src/daemon/, abdeploy-dbus(5)). */
#include "config.h"
#include "cli.h"
#include "cli/ab-exitcode.h"
#include "daemon/ab-daemon.h"

int
cli_daemon (int argc, char **argv)
{
  int idle = AB_DAEMON_DEFAULT_IDLE_SEC;
  GOptionEntry entries[] = {
    { "idle-timeout", 0, 0, G_OPTION_ARG_INT, &idle,
      "Exit after SEC seconds without a call or an operation (default 60; 0: never)", "SEC" },
    { NULL }
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new (
      "- serve org.abdeploy1 on the system bus (abdeploy-dbus(5))");
  int code = 0;
  if (!cli_parse_options_only (ctx, entries, &argc, &argv, &code))
    return code;
  if (idle < 0)
    return cli_bad_number (ctx, "--idle-timeout", idle, "0 (never) or a number of seconds");
  AbDaemonOptions opts = {
    .sysroot = cli_sysroot_path (),
    .config = cli_config_path (),
    .idle_timeout_sec = (guint) idle,
  };
  return ab_daemon_run (&opts);
}
