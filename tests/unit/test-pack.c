#include "config.h"
#include <archive.h>
#include <archive_entry.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <ostree.h>
#include "ab-pack.h"
#include "ab-test-fixture.h"

/* Packs are built here with libarchive, as the publisher writes them
 * (pax, zstd), from a list of entries; hostile ones too. */
typedef struct
{
  const char *name;
  mode_t type;           /* AE_IFREG, AE_IFLNK, ...; 0: AE_IFREG */
  mode_t perm;           /* 0: 0644 */
  const char *data;      /* a regular file's content */
  gint64 size;           /* -1: strlen (data) */
  const char *target;    /* a symlink's target */
  const char *hardlink;  /* a hardlink entry's target */
  guint uid, gid;
  const char *xattr;     /* value of user.test */
  const char *xname;     /* another xattr: its name, */
  const char *xvalue;    /* value */
  gsize xlen;            /* and length */
} Entry;

#define O1 "objects/ab/" "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"
#define O2 "objects/cd/" "1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"
#define O3 "objects/00/" "2123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"
#define O4 "objects/ff/" "3123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"
#define LEAF1 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"

static void
add_entry (struct archive *a, const Entry *e)
{
  struct archive_entry *ae = archive_entry_new ();
  archive_entry_set_pathname (ae, e->name);
  archive_entry_set_filetype (ae, e->type ? e->type : AE_IFREG);
  archive_entry_set_perm (ae, e->perm ? e->perm : 0644);
  archive_entry_set_uid (ae, e->uid);
  archive_entry_set_gid (ae, e->gid);
  if (e->target)
    archive_entry_set_symlink (ae, e->target);
  if (e->hardlink)
    archive_entry_set_hardlink (ae, e->hardlink);
  if (e->xattr)
    archive_entry_xattr_add_entry (ae, "user.test", e->xattr, strlen (e->xattr));
  if (e->xname)
    archive_entry_xattr_add_entry (ae, e->xname, e->xvalue, e->xlen);
  gsize len = e->data ? strlen (e->data) : 0;
  if (e->type == 0 || e->type == AE_IFREG)
    archive_entry_set_size (ae, e->size >= 0 ? e->size : (gint64) len);
  g_assert_cmpint (archive_write_header (a, ae), ==, ARCHIVE_OK);
  if (len > 0)
    g_assert_cmpint (archive_write_data (a, e->data, len), ==, (la_ssize_t) len);
  archive_entry_free (ae);
}

static void
write_pack_filter (TmpDir *t, const char *file, const Entry *entries, gsize n, gboolean zstd)
{
  g_autofree char *path = g_build_filename (t->path, file, NULL);
  struct archive *a = archive_write_new ();
  g_assert_cmpint (archive_write_set_format_pax_restricted (a), ==, ARCHIVE_OK);
  if (zstd)
    g_assert_cmpint (archive_write_add_filter_zstd (a), ==, ARCHIVE_OK);
  g_assert_cmpint (archive_write_open_filename (a, path), ==, ARCHIVE_OK);
  for (gsize i = 0; i < n; i++)
    add_entry (a, &entries[i]);
  /* a short data write (size above the content) is padded by libarchive
   * with zeros, so a pack can claim more than it holds only by its size */
  (void) archive_write_close (a);
  archive_write_free (a);
}

static void
write_pack (TmpDir *t, const char *file, const Entry *entries, gsize n)
{
  write_pack_filter (t, file, entries, n, TRUE);
}

static void
prepare (TmpDir *t)
{
  g_autoptr(GError) error = NULL;
  g_assert_true (ab_pack_prepare_repo (t->dfd, "repo", &error));
  g_assert_no_error (error);
}

static gboolean
extract (TmpDir *t, const char *file, guint64 budget_limit, GError **error)
{
  ab_autofd repo = ab_fs_opendir_at (t->dfd, "repo", NULL);
  g_assert_cmpint (repo, >=, 0);
  ab_autofd fd = openat (t->dfd, file, O_RDONLY | O_CLOEXEC);
  g_assert_cmpint (fd, >=, 0);
  AbPackBudget budget = { .limit = budget_limit };
  return ab_pack_extract_fd (repo, fd, file, &budget, NULL, error);
}

/* Nothing beside the repo and the packs in the test's directory, and
 * nothing but objects/XX/ in objects/. */
static void
assert_nothing_outside (TmpDir *t)
{
  g_autoptr(GDir) d = g_dir_open (t->path, 0, NULL);
  for (const char *n; (n = g_dir_read_name (d)) != NULL;)
    g_assert_true (g_str_equal (n, "repo") || g_str_has_suffix (n, ".tar.zst"));
  g_autofree char *objects = g_build_filename (t->path, "repo", "objects", NULL);
  g_autoptr(GDir) o = g_dir_open (objects, 0, NULL);
  guint count = 0;
  for (const char *n; (n = g_dir_read_name (o)) != NULL; count++)
    g_assert_cmpuint (strlen (n), ==, 2);
  g_assert_cmpuint (count, ==, 256);
  g_assert_false (ab_fs_exists_at (t->dfd, "x"));
  g_assert_false (ab_fs_exists_at (t->dfd, "repo/x"));
  g_assert_false (ab_fs_exists_at (AT_FDCWD, "/abs"));
}

/* Extracting ENTRIES must be refused naming NAMED. */
static void
assert_refused (TmpDir *t, const Entry *entries, gsize n, guint64 limit, const char *named)
{
  g_autoptr(GError) error = NULL;
  prepare (t);
  write_pack (t, "0.tar.zst", entries, n);
  g_assert_false (extract (t, "0.tar.zst", limit, &error));
  g_assert_error (error, AB_PACK_ERROR, AB_PACK_ERROR_REFUSED);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, "0.tar.zst"));
  g_assert_nonnull (strstr (error->message, named));
  assert_nothing_outside (t);
}

static void
test_prepare_repo (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  write_file_at (t->dfd, "repo/leftover", "from a killed run");
  prepare (t);
  g_assert_false (ab_fs_exists_at (t->dfd, "repo/leftover"));
  g_assert_true (ab_fs_exists_at (t->dfd, "repo/objects/00"));
  g_assert_true (ab_fs_exists_at (t->dfd, "repo/objects/ff"));
  struct stat st;
  g_assert_cmpint (fstatat (t->dfd, "repo", &st, 0), ==, 0);
  g_assert_cmpint (st.st_mode & 07777, ==, 0700);
  g_autofree char *path = g_build_filename (t->path, "repo", NULL);
  g_autoptr(GFile) dir = g_file_new_for_path (path);
  g_autoptr(OstreeRepo) repo = ostree_repo_new (dir);
  g_assert_true (ostree_repo_open (repo, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (ostree_repo_get_mode (repo), ==, OSTREE_REPO_MODE_BARE);
}

static void
test_valid (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  const Entry e[] = {
    { O1 ".commit", .data = "commit bytes", .size = -1 },
    { O1 ".commitmeta", .data = "signature", .size = -1 },
    { O2 ".dirtree", .data = "tree", .size = -1 },
    { O2 ".dirmeta", .data = "meta", .size = -1 },
    { O3 ".file", .perm = 04755, .data = "#!/bin/sh\n", .size = -1, .uid = 1000, .gid = 100,
      .xattr = "value" },
    { O4 ".file", .type = AE_IFLNK, .target = "../lib/x", .uid = 2, .gid = 3 },
    { O2 ".file", .size = -1, .data = "" },
  };
  prepare (t);
  write_pack (t, "0.tar.zst", e, G_N_ELEMENTS (e));
  g_assert_true (extract (t, "0.tar.zst", 10 + 8 + 12 + 9 + 4 + 4, &error));
  g_assert_no_error (error);
  g_autofree char *commit = read_file_at (t->dfd, "repo/" O1 ".commit");
  g_assert_cmpstr (commit, ==, "commit bytes");
  struct stat st;
  g_assert_cmpint (fstatat (t->dfd, "repo/" O1 ".commitmeta", &st, 0), ==, 0);
  g_assert_cmpint (st.st_mode, ==, S_IFREG | 0644);
  g_assert_cmpint (fstatat (t->dfd, "repo/" O3 ".file", &st, 0), ==, 0);
  g_assert_cmpint (st.st_mode, ==, S_IFREG | 04755);
  g_assert_cmpint (st.st_uid, ==, 1000);
  g_assert_cmpint (st.st_gid, ==, 100);
  g_autofree char *xpath = g_build_filename (t->path, "repo", O3 ".file", NULL);
  char value[16] = { 0 };
  g_assert_cmpint (lgetxattr (xpath, "user.test", value, sizeof value), ==, 5);
  g_assert_cmpstr (value, ==, "value");
  g_assert_cmpint (fstatat (t->dfd, "repo/" O4 ".file", &st, AT_SYMLINK_NOFOLLOW), ==, 0);
  g_assert_true (S_ISLNK (st.st_mode));
  g_assert_cmpint (st.st_uid, ==, 2);
  char target[32] = { 0 };
  g_assert_cmpint (readlinkat (t->dfd, "repo/" O4 ".file", target, sizeof target), ==, 8);
  g_assert_cmpstr (target, ==, "../lib/x");
  g_assert_cmpint (fstatat (t->dfd, "repo/" O2 ".file", &st, 0), ==, 0);
  g_assert_cmpint (st.st_size, ==, 0);
}

/* A file capability (version 2: effective, CAP_NET_RAW permitted). */
static const char CAP_NET_RAW_V2[20] = { 0x01, 0x00, 0x00, 0x02, 0x00, 0x20 };

/* A file capability survives its owner being set (fchown drops
 * security.capability), and a symlink keeps its xattrs (trusted.*: user.*
 * is not allowed on symlinks). */
static void
test_capability_and_symlink_xattrs (TmpDir *t, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  const Entry e[] = {
    { O3 ".file", .perm = 0755, .data = "ELF", .size = -1, .uid = 1000, .gid = 100,
      .xname = "security.capability", .xvalue = CAP_NET_RAW_V2, .xlen = 20 },
    { O4 ".file", .type = AE_IFLNK, .target = "ping", .uid = 2, .gid = 3,
      .xname = "trusted.label", .xvalue = "system_u", .xlen = 8 },
  };
  g_autofree char *probe = g_build_filename (t->path, "probe", NULL);
  g_autofree char *probe_link = g_build_filename (t->path, "probe-link", NULL);
  g_assert_true (g_file_set_contents (probe, "", 0, NULL));
  g_assert_cmpint (symlink ("probe", probe_link), ==, 0);
  gboolean able = setxattr (probe, "security.capability", CAP_NET_RAW_V2, 20, 0) == 0
                  && lsetxattr (probe_link, "trusted.t", "v", 1, 0) == 0;
  g_assert_cmpint (unlink (probe), ==, 0);
  g_assert_cmpint (unlink (probe_link), ==, 0);
  if (!able)
    {
      g_test_skip ("this file system takes no file capabilities or trusted.* xattrs");
      return;
    }
  prepare (t);
  write_pack (t, "0.tar.zst", e, G_N_ELEMENTS (e));
  g_assert_true (extract (t, "0.tar.zst", 3 + 4, &error));
  g_assert_no_error (error);
  g_autofree char *file = g_build_filename (t->path, "repo", O3 ".file", NULL);
  char value[32] = { 0 };
  g_assert_cmpint (lgetxattr (file, "security.capability", value, sizeof value), ==, 20);
  g_assert_cmpmem (value, 20, CAP_NET_RAW_V2, 20);
  g_autofree char *link = g_build_filename (t->path, "repo", O4 ".file", NULL);
  memset (value, 0, sizeof value);
  g_assert_cmpint (lgetxattr (link, "trusted.label", value, sizeof value), ==, 8);
  g_assert_cmpstr (value, ==, "system_u");
}

static void
test_refuse_dotdot (TmpDir *t, gconstpointer data)
{
  const Entry e[] = { { O1 ".commit", .data = "ok", .size = -1 },
                      { "../x", .data = "escape", .size = -1 } };
  assert_refused (t, e, G_N_ELEMENTS (e), 1000, "\"../x\"");
}

static void
test_refuse_absolute (TmpDir *t, gconstpointer data)
{
  const Entry e[] = { { "/abs", .data = "escape", .size = -1 } };
  assert_refused (t, e, G_N_ELEMENTS (e), 1000, "\"/abs\"");
}

static void
test_refuse_objects_dotdot (TmpDir *t, gconstpointer data)
{
  const Entry e[] = { { "objects/../../x", .data = "escape", .size = -1 } };
  assert_refused (t, e, G_N_ELEMENTS (e), 1000, "objects/../../x");
}

static void
test_refuse_upper_hex (TmpDir *t, gconstpointer data)
{
  const Entry e[] = { { "objects/AB/" LEAF1 ".file", .data = "x", .size = -1 } };
  assert_refused (t, e, G_N_ELEMENTS (e), 1000, "objects/AB/");
  const Entry f[] = { { "objects/ab/" "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcd"
                        ".file", .data = "x", .size = -1 } };
  assert_refused (t, f, G_N_ELEMENTS (f), 1000, "0123456789ABCDEF");
}

static void
test_refuse_bad_extension (TmpDir *t, gconstpointer data)
{
  const Entry e[] = { { O1 ".filez", .data = "x", .size = -1 } };
  assert_refused (t, e, G_N_ELEMENTS (e), 1000, O1 ".filez");
  const Entry f[] = { { O1 ".file/x", .data = "x", .size = -1 } };
  assert_refused (t, f, G_N_ELEMENTS (f), 1000, O1 ".file/x");
  const Entry g[] = { { "objects/ab/" LEAF1 "0.file", .data = "x", .size = -1 } };
  assert_refused (t, g, G_N_ELEMENTS (g), 1000, LEAF1 "0.file");
}

static void
test_refuse_directory (TmpDir *t, gconstpointer data)
{
  const Entry e[] = { { O1 ".file", .type = AE_IFDIR, .perm = 0755 } };
  /* libarchive names a directory with a trailing slash */
  assert_refused (t, e, G_N_ELEMENTS (e), 1000, "\"" O1 ".file/\" is not named");
  g_assert_false (ab_fs_exists_at (t->dfd, "repo/" O1 ".file"));
}

static void
test_refuse_hardlink (TmpDir *t, gconstpointer data)
{
  const Entry e[] = { { O1 ".file", .data = "x", .size = -1 },
                      { O2 ".file", .hardlink = O1 ".file", .size = 0 } };
  assert_refused (t, e, G_N_ELEMENTS (e), 1000, "\"" O2 ".file\" is a hardlink");
  g_assert_false (ab_fs_exists_at (t->dfd, "repo/" O2 ".file"));
}

static void
test_refuse_device (TmpDir *t, gconstpointer data)
{
  const Entry e[] = { { O1 ".file", .type = AE_IFCHR } };
  assert_refused (t, e, G_N_ELEMENTS (e), 1000, "is a character device");
  g_assert_false (ab_fs_exists_at (t->dfd, "repo/" O1 ".file"));
}

static void
test_refuse_symlink_metadata (TmpDir *t, gconstpointer data)
{
  const Entry e[] = { { O1 ".dirtree", .type = AE_IFLNK, .target = "/etc/shadow" } };
  assert_refused (t, e, G_N_ELEMENTS (e), 1000, "\"" O1 ".dirtree\" is a symlink");
  struct stat st;
  g_assert_cmpint (fstatat (t->dfd, "repo/" O1 ".dirtree", &st, AT_SYMLINK_NOFOLLOW), <, 0);
}

static void
test_refuse_symlink_target (TmpDir *t, gconstpointer data)
{
  g_autofree char *longer = g_strnfill (4096, 'a');
  const Entry e[] = { { O1 ".file", .type = AE_IFLNK, .target = longer } };
  assert_refused (t, e, G_N_ELEMENTS (e), 100000, "target is empty or 4096 bytes");
}

static void
test_refuse_duplicate (TmpDir *t, gconstpointer data)
{
  const Entry e[] = { { O1 ".file", .data = "first", .size = -1 },
                      { O1 ".file", .data = "second", .size = -1 } };
  assert_refused (t, e, G_N_ELEMENTS (e), 1000, "is a duplicate");
  g_autofree char *kept = read_file_at (t->dfd, "repo/" O1 ".file");
  g_assert_cmpstr (kept, ==, "first");
}

static void
test_refuse_over_budget (TmpDir *t, gconstpointer data)
{
  const Entry e[] = { { O1 ".file", .data = "0123456789", .size = -1 },
                      { O2 ".file", .data = "0123456789", .size = -1 } };
  assert_refused (t, e, G_N_ELEMENTS (e), 19, "\"" O2 ".file\" takes the content");
  g_assert_false (ab_fs_exists_at (t->dfd, "repo/" O2 ".file"));
  /* one size beyond the budget: refused before anything is written */
  const Entry f[] = { { O1 ".file", .size = 1 << 20 } };
  assert_refused (t, f, G_N_ELEMENTS (f), 1000, "\"" O1 ".file\" takes the content");
  g_assert_false (ab_fs_exists_at (t->dfd, "repo/" O1 ".file"));
}

static void
test_refuse_truncated (TmpDir *t, gconstpointer data)
{
  g_autofree char *big = g_strnfill (200000, 'z');
  g_autofree char *noise = g_malloc (200000);
  for (gsize i = 0; i < 200000; i++)
    noise[i] = (char) g_test_rand_int_range (1, 256);
  noise[199999] = 0;
  const Entry e[] = { { O1 ".file", .data = big, .size = -1 },
                      { O2 ".file", .data = noise, .size = -1 } };
  prepare (t);
  write_pack (t, "0.tar.zst", e, G_N_ELEMENTS (e));
  struct stat st;
  g_assert_cmpint (fstatat (t->dfd, "0.tar.zst", &st, 0), ==, 0);
  g_autofree char *path = g_build_filename (t->path, "0.tar.zst", NULL);
  g_assert_cmpint (truncate (path, st.st_size * 3 / 4), ==, 0);
  g_autoptr(GError) error = NULL;
  g_assert_false (extract (t, "0.tar.zst", 1000000, &error));
  g_assert_error (error, AB_PACK_ERROR, AB_PACK_ERROR_REFUSED);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, "\"" O2 ".file\" is damaged or truncated"));
  assert_nothing_outside (t);
}

static void
test_refuse_garbage (TmpDir *t, gconstpointer data)
{
  prepare (t);
  /* a zstd frame magic, then noise */
  write_file_at (t->dfd, "0.tar.zst", "\x28\xb5\x2f\xfd garbage garbage garbage garbage");
  g_autoptr(GError) error = NULL;
  g_assert_false (extract (t, "0.tar.zst", 1000, &error));
  g_assert_error (error, AB_PACK_ERROR, AB_PACK_ERROR_REFUSED);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, "0.tar.zst"));
  g_assert_nonnull (strstr (error->message, "entry 0"));
  assert_nothing_outside (t);
}

static void
test_refuse_uncompressed (TmpDir *t, gconstpointer data)
{
  const Entry e[] = { { O1 ".file", .data = "x", .size = -1 } };
  prepare (t);
  write_pack_filter (t, "0.tar.zst", e, G_N_ELEMENTS (e), FALSE);
  g_autoptr(GError) error = NULL;
  g_assert_false (extract (t, "0.tar.zst", 1000, &error));
  g_assert_error (error, AB_PACK_ERROR, AB_PACK_ERROR_REFUSED);
  g_assert_nonnull (strstr (error->message, "not zstd-compressed"));
}

static gboolean
extract_all (TmpDir *t, const char *const *packs, guint n, guint64 limit,
             GCancellable *cancellable, GError **error)
{
  ab_autofd repo = ab_fs_opendir_at (t->dfd, "repo", NULL);
  return ab_pack_extract_all (repo, t->dfd, packs, n, limit, cancellable, error);
}

static void
test_extract_all (TmpDir *t, gconstpointer data)
{
  const Entry a[] = { { O1 ".file", .data = "aaaa", .size = -1 } };
  const Entry b[] = { { O2 ".file", .data = "bbbb", .size = -1 } };
  const Entry c[] = { { O3 ".file", .data = "cccc", .size = -1 } };
  prepare (t);
  write_pack (t, "0.tar.zst", a, 1);
  write_pack (t, "1.tar.zst", b, 1);
  write_pack (t, "2.tar.zst", c, 1);
  const char *packs[] = { "0.tar.zst", "1.tar.zst", "2.tar.zst" };
  g_autoptr(GError) error = NULL;
  g_assert_true (extract_all (t, packs, 3, 12, NULL, &error));
  g_assert_no_error (error);
  g_autofree char *c3 = read_file_at (t->dfd, "repo/" O3 ".file");
  g_assert_cmpstr (c3, ==, "cccc");
  /* the budget is shared by the packs: 11 bytes are not enough for 12 */
  prepare (t);
  g_assert_false (extract_all (t, packs, 3, 11, NULL, &error));
  g_assert_error (error, AB_PACK_ERROR, AB_PACK_ERROR_REFUSED);
}

static void
test_extract_all_first_error (TmpDir *t, gconstpointer data)
{
  const Entry a[] = { { O1 ".file", .data = "aaaa", .size = -1 } };
  const Entry dup[] = { { O1 ".file", .data = "aaaa", .size = -1 } };
  prepare (t);
  write_pack (t, "0.tar.zst", a, 1);
  write_pack (t, "1.tar.zst", dup, 1);
  write_file_at (t->dfd, "2.tar.zst", "not a pack");
  const char *packs[] = { "0.tar.zst", "1.tar.zst", "2.tar.zst" };
  g_autoptr(GError) error = NULL;
  g_assert_false (extract_all (t, packs, 3, 100, NULL, &error));
  g_assert_error (error, AB_PACK_ERROR, AB_PACK_ERROR_REFUSED);
  g_test_message ("%s", error->message);
  g_assert_true (strstr (error->message, "1.tar.zst") || strstr (error->message, "2.tar.zst"));
  /* a missing pack is an error of this machine, named */
  const char *missing[] = { "9.tar.zst" };
  g_clear_error (&error);
  prepare (t);
  g_assert_false (extract_all (t, missing, 1, 100, NULL, &error));
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, "9.tar.zst"));
}

static void
test_extract_all_cancelled (TmpDir *t, gconstpointer data)
{
  const Entry a[] = { { O1 ".file", .data = "aaaa", .size = -1 } };
  prepare (t);
  write_pack (t, "0.tar.zst", a, 1);
  write_pack (t, "1.tar.zst", a, 0);
  const char *packs[] = { "0.tar.zst", "1.tar.zst" };
  g_autoptr(GCancellable) c = g_cancellable_new ();
  g_cancellable_cancel (c);
  g_autoptr(GError) error = NULL;
  g_assert_false (extract_all (t, packs, 2, 100, c, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_false (ab_fs_exists_at (t->dfd, "repo/" O1 ".file"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  TMPDIR_TEST ("/pack/prepare-repo", test_prepare_repo);
  TMPDIR_TEST ("/pack/valid", test_valid);
  TMPDIR_TEST ("/pack/capability-and-symlink-xattrs", test_capability_and_symlink_xattrs);
  TMPDIR_TEST ("/pack/refuse/dotdot", test_refuse_dotdot);
  TMPDIR_TEST ("/pack/refuse/absolute", test_refuse_absolute);
  TMPDIR_TEST ("/pack/refuse/objects-dotdot", test_refuse_objects_dotdot);
  TMPDIR_TEST ("/pack/refuse/upper-hex", test_refuse_upper_hex);
  TMPDIR_TEST ("/pack/refuse/bad-extension", test_refuse_bad_extension);
  TMPDIR_TEST ("/pack/refuse/directory", test_refuse_directory);
  TMPDIR_TEST ("/pack/refuse/hardlink", test_refuse_hardlink);
  TMPDIR_TEST ("/pack/refuse/device", test_refuse_device);
  TMPDIR_TEST ("/pack/refuse/symlink-metadata", test_refuse_symlink_metadata);
  TMPDIR_TEST ("/pack/refuse/symlink-target", test_refuse_symlink_target);
  TMPDIR_TEST ("/pack/refuse/duplicate", test_refuse_duplicate);
  TMPDIR_TEST ("/pack/refuse/over-budget", test_refuse_over_budget);
  TMPDIR_TEST ("/pack/refuse/truncated", test_refuse_truncated);
  TMPDIR_TEST ("/pack/refuse/garbage", test_refuse_garbage);
  TMPDIR_TEST ("/pack/refuse/uncompressed", test_refuse_uncompressed);
  TMPDIR_TEST ("/pack/extract-all", test_extract_all);
  TMPDIR_TEST ("/pack/extract-all/first-error", test_extract_all_first_error);
  TMPDIR_TEST ("/pack/extract-all/cancelled", test_extract_all_cancelled);
  return g_test_run ();
}
