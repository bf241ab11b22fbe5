/* Every JSON file in SYSROOT/abdeploy/state/ (abdeploy-layout(7)): slot
 * records, transaction.json, history.json, last-rollback.json,
 * update.json, verdict.json and sysroot.json. One input is offered as each
 * of them at once (hard links to one file), and read by:
 *   - the from-data readers: ab_slot_record_from_json(), and
 *     ab_migrate_state_text() as restore and the migration use it;
 *   - the loaders of each module, through a real initialized sysroot:
 *     slot records, transaction, history, last rollback, the pin, the
 *     verdict, and status (text and JSON), which reads them all;
 *   - ab_sysroot_open() of a second sysroot whose sysroot.json it is.
 * Invariant: what the migration converts is a JSON object of the current
 * state format. */
#include "config.h"
#include "fuzz-common.h"
#include "ab-fsutil.h"
#include "ab-health.h"
#include "ab-history.h"
#include "ab-migrate.h"
#include "ab-slots.h"
#include "ab-status.h"
#include "ab-sysroot.h"
#include "ab-transaction.h"
#include "ab-update.h"

#include <fcntl.h>
#include <unistd.h>

#define INPUT ".fuzz-input"

static AbSysroot *sysroot;     /* every state file but sysroot.json is the input */
static char *second_path;      /* a sysroot whose sysroot.json is the input */
static int inputs[2] = { -1, -1 };

/* Makes every state file NAMES of STATE_DFD a hard link to INPUT. */
static void
link_state_files (int state_dfd, const char *const *names)
{
  fuzz_write_at (state_dfd, INPUT, "", 0);
  for (const char *const *n = names; *n; n++)
    {
      (void) unlinkat (state_dfd, *n, 0);
      if (linkat (state_dfd, INPUT, state_dfd, *n, 0) < 0)
        fuzz_fail (G_STRLOC, "link %s", *n);
    }
}

static char *
make_sysroot (const char *base, const char *name)
{
  char *path = g_build_filename (base, name, NULL);
  gboolean created = FALSE;
  g_autoptr(GError) error = NULL;
  if (!ab_sysroot_init (path, NULL, "fuzz", "file", NULL, &created, &error))
    fuzz_fail (G_STRLOC, "init %s: %s", path, error->message);
  return path;
}

static void
setup (void)
{
  int dfd = -1;
  g_autofree char *base = fuzz_scratch_dir (&dfd);
  fuzz_write_at (dfd, "cmdline", "abdeploy.slot=a", 15);
  g_autofree char *cmdline = g_build_filename (base, "cmdline", NULL);
  g_setenv ("ABDEPLOY_CMDLINE", cmdline, TRUE);
  g_autofree char *first = make_sysroot (base, "first");
  second_path = make_sysroot (base, "second");
  g_autoptr(GError) error = NULL;
  if ((sysroot = ab_sysroot_open (first, NULL, &error)) == NULL)
    fuzz_fail (G_STRLOC, "open: %s", error->message);
  /* ab_migrate_state_files without sysroot.json, which must stay valid. */
  link_state_files (sysroot->state_dfd, ab_migrate_state_files + 1);
  inputs[0] = sysroot->state_dfd;
  static const char *const own[] = { "sysroot.json", NULL };
  g_autofree char *state = g_build_filename (second_path, "abdeploy/state", NULL);
  inputs[1] = open (state, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  link_state_files (inputs[1], own);
  close (dfd);
}

static void
check_migrate (const char *text)
{
  for (const char *const *n = ab_migrate_state_files; *n; n++)
    {
      g_autofree char *converted = NULL;
      g_autoptr(GError) error = NULL;
      if (!ab_migrate_state_text (*n, *n, text, "fuzz", &converted, &error) || converted == NULL)
        continue;
      g_autoptr(JsonParser) parser = json_parser_new ();
      fuzz_check (json_parser_load_from_data (parser, converted, -1, NULL),
                  "%s converted to text that is not JSON", *n);
      JsonNode *root = json_parser_get_root (parser);
      fuzz_check (root != NULL && JSON_NODE_HOLDS_OBJECT (root), "%s converted to a non-object", *n);
      gint64 format = 0;
      fuzz_check (ab_format_check_state (*n, json_node_get_object (root), &format, &error)
                  && format == AB_STATE_FORMAT, "%s converted to an unreadable format", *n);
    }
}

static void
load_all (void)
{
  g_autoptr(GError) e1 = NULL, e2 = NULL, e3 = NULL, e4 = NULL, e5 = NULL, e6 = NULL;
  g_autoptr(GError) e7 = NULL, e8 = NULL, e9 = NULL, e10 = NULL;
  g_autoptr(AbSlotRecord) a = NULL, b = NULL;
  AB_IGNORE_RESULT (ab_slot_record_load (sysroot->state_dfd, AB_SLOT_A, &a, &e1));
  AB_IGNORE_RESULT (ab_slot_record_load (sysroot->state_dfd, AB_SLOT_B, &b, &e2));
  g_autoptr(AbTransaction) t = NULL;
  AB_IGNORE_RESULT (ab_transaction_load (sysroot->state_dfd, &t, &e3));
  g_autoptr(JsonArray) history = ab_history_load (sysroot->state_dfd, sysroot->events, &e4);
  g_autoptr(JsonNode) last = NULL;
  AB_IGNORE_RESULT (ab_history_load_last_rollback (sysroot->state_dfd, sysroot->events,
                                                   &last, &e5));
  g_autofree char *pin = ab_update_get_pin (sysroot, &e6);
  g_autoptr(JsonNode) health = ab_health_status_json (sysroot, &e7);
  g_autoptr(JsonNode) status = ab_status_to_json (sysroot, &e8);
  g_autofree char *text = ab_status_to_text (sysroot, &e9);
  g_autoptr(AbSysroot) second = ab_sysroot_open (second_path, NULL, &e10);
  (void) history, (void) pin, (void) health, (void) status, (void) text, (void) second;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  fuzz_init ();
  if (sysroot == NULL)
    setup ();
  g_autofree char *text = g_strndup ((const char *) data, size);
  g_autoptr(GError) error = NULL;
  g_autoptr(AbSlotRecord) rec = ab_slot_record_from_json (text, &error);
  (void) rec;
  check_migrate (text);
  for (int i = 0; i < 2; i++)
    fuzz_write_at (inputs[i], INPUT, data, size);
  load_all ();
  return 0;
}
