#include "config.h"
#include "ab-slots.h"
#include "ab-format.h"
#include "ab-test-fixture.h"

static void
test_record_roundtrip (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  AbSlotRecord rec = { .commit = (char *) "abc", .version = (char *) "1.0",
                       .deployed_at = (char *) "2026-11-20T00:00:00Z" };
  g_assert_true (ab_slot_record_save (t->dfd, AB_STATE_FORMAT, AB_SLOT_B, &rec, &error));
  g_autoptr(AbSlotRecord) back = NULL;
  g_assert_true (ab_slot_record_load (t->dfd, AB_SLOT_B, &back, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (back->commit, ==, "abc");
  g_assert_cmpstr (back->version, ==, "1.0");
  g_assert_null (back->activated_at);
  g_autofree char *json = read_file_at (t->dfd, "slot-b.json");
  g_assert_nonnull (strstr (json, "\"format\" : 2"));
}

static void
test_missing_is_empty (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  AbSlotRecord *rec = (AbSlotRecord *) 0x1;
  g_assert_true (ab_slot_record_load (t->dfd, AB_SLOT_A, &rec, &error));
  g_assert_null (rec);
}

static void
test_unknown_format_refused (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  write_file_at (t->dfd, "slot-a.json", "{\"format\": 9, \"commit\": \"x\"}");
  AbSlotRecord *rec = NULL;
  g_assert_false (ab_slot_record_load (t->dfd, AB_SLOT_A, &rec, &error));
  g_assert_error (error, AB_FORMAT_ERROR, AB_FORMAT_ERROR_UNKNOWN);
  g_assert_nonnull (strstr (error->message, "abdeploy/state/slot-a.json has format 9"));
}

static void
test_remove (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  AbSlotRecord rec = { .commit = (char *) "abc" };
  g_assert_true (ab_slot_record_save (t->dfd, AB_STATE_FORMAT, AB_SLOT_A, &rec, &error));
  g_assert_true (ab_slot_record_remove (t->dfd, AB_SLOT_A, &error));
  g_assert_false (ab_fs_exists_at (t->dfd, "slot-a.json"));
  g_assert_true (ab_slot_record_remove (t->dfd, AB_SLOT_A, &error));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  TMPDIR_TEST ("/slots/record-roundtrip", test_record_roundtrip);
  TMPDIR_TEST ("/slots/missing-is-empty", test_missing_is_empty);
  TMPDIR_TEST ("/slots/unknown-format-refused", test_unknown_format_refused);
  TMPDIR_TEST ("/slots/remove", test_remove);
  return g_test_run ();
}
