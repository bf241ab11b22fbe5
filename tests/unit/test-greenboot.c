/* greenboot.conf read without a shell (ab_greenboot_conf_parse()). */
#include "config.h"
#include "ab-greenboot.h"

#include <string.h>

static gboolean
parse (const char *text, AbGreenbootConf *out, GError **error)
{
  return ab_greenboot_conf_parse (text, strlen (text), "greenboot.conf", out, error);
}

/* greenboot's shipped file, as Fedora IoT has it, plus the two keys. */
static void
test_greenboot_syntax (void)
{
  const char *text =
    "# greenboot configuration file\n"
    "\n"
    "## Generic\n"
    "GREENBOOT_MAX_BOOT_ATTEMPTS=5\n"
    "\n"
    "### This array should have the names of the health checks that are disabled\n"
    "DISABLED_HEALTHCHECKS=(\"01-repository-dns-check.sh\" '02-watchdog.sh'  03-plain.sh)  # c\n"
    "## Watchdog\n"
    "GREENBOOT_WATCHDOG_CHECK_ENABLED=true\n"
    "GREENBOOT_WATCHDOG_GRACE_PERIOD=24\n"
    "export OTHER=\"with spaces\"\n";
  AbGreenbootConf c = { 0 };
  g_autoptr(GError) error = NULL;
  g_assert_true (parse (text, &c, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (c.max_boot_attempts, ==, 5);
  g_assert_cmpuint (g_strv_length (c.disabled_healthchecks), ==, 3);
  g_assert_cmpstr (c.disabled_healthchecks[0], ==, "01-repository-dns-check.sh");
  g_assert_cmpstr (c.disabled_healthchecks[1], ==, "02-watchdog.sh");
  g_assert_cmpstr (c.disabled_healthchecks[2], ==, "03-plain.sh");
  ab_greenboot_conf_clear (&c);

  g_assert_true (parse ("GREENBOOT_MAX_BOOT_ATTEMPTS=\"2\"\nDISABLED_HEALTHCHECKS=()\n", &c, &error));
  g_assert_cmpuint (c.max_boot_attempts, ==, 2);
  g_assert_cmpuint (g_strv_length (c.disabled_healthchecks), ==, 0);
  ab_greenboot_conf_clear (&c);

  g_assert_true (parse ("", &c, &error));
  g_assert_cmpuint (c.max_boot_attempts, ==, 0);
  g_assert_nonnull (c.disabled_healthchecks);
  ab_greenboot_conf_clear (&c);
}

/* Nothing a shell would expand or run is taken; each refusal names the
 * line and what to write instead. */
static void
test_greenboot_refused (void)
{
  static const struct { const char *text; const char *needle; } cases[] = {
    { "GREENBOOT_MAX_BOOT_ATTEMPTS=$(reboot)\n", "line 1: a value a shell would expand" },
    { "\nGREENBOOT_MAX_BOOT_ATTEMPTS=`id`\n", "line 2: a value a shell would expand" },
    { "DISABLED_HEALTHCHECKS=(\"$HOME\")\n", "double-quoted value a shell would expand" },
    { "GREENBOOT_MAX_BOOT_ATTEMPTS=3; rm -rf /\n", "would expand or run" },
    { "DISABLED_HEALTHCHECKS=(\"a.sh\"\n", "without its closing )" },
    { "GREENBOOT_MAX_BOOT_ATTEMPTS=\"3\n", "a quote that is not closed" },
    { "source /etc/other.conf\n", "not KEY=VALUE" },
    { "GREENBOOT_MAX_BOOT_ATTEMPTS=3 4\n", "more than one value" },
    { "GREENBOOT_MAX_BOOT_ATTEMPTS=0\n", "use a whole number of boot attempts from 1 to 9" },
    { "GREENBOOT_MAX_BOOT_ATTEMPTS=ten\n", "GREENBOOT_MAX_BOOT_ATTEMPTS=ten" },
    { "GREENBOOT_MAX_BOOT_ATTEMPTS=99\n", "from 1 to 9" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      AbGreenbootConf c = { 0 };
      g_autoptr(GError) error = NULL;
      g_assert_false (parse (cases[i].text, &c, &error));
      g_assert_nonnull (error);
      g_assert_true (error->domain == AB_GREENBOOT_ERROR);
      if (strstr (error->message, cases[i].needle) == NULL)
        g_error ("\"%s\" not in: %s", cases[i].needle, error->message);
      g_assert_nonnull (strstr (error->message, "greenboot.conf"));
      ab_greenboot_conf_clear (&c);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/greenboot/syntax", test_greenboot_syntax);
  g_test_add_func ("/greenboot/refused", test_greenboot_refused);
  return g_test_run ();
}
