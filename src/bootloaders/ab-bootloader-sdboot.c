/* "systemd-boot" backend: Boot Loader Specification Type #1 entries, one
 * per slot, in loader/entries/ of the boot directory (XBOOTLDR when
 * [boot] xbootldr-path is set, else the ESP: [boot] esp-path, or the first
 * of SYSROOT/efi, SYSROOT/boot, SYSROOT/boot/efi that holds EFI/ or
 * loader/, systemd's search order). The pointer is the entries' file names
 * (ab-sdboot.h); each slot's kernel and initramfs are copied to
 * abdeploy/<slot>/ next to them when the slot is staged.
 *
 * Invariants:
 * - A save renames at most one entry per slot, the new primary's first
 *   (its state and its generation change in that one rename), then the
 *   other's; each rename is followed by an fsync of the directory and a
 *   syncfs of the file system (settle()). An
 *   activation, a blessing and a verdict on the slot that stays primary
 *   are one rename; a rollback is two, and after the first the bootloader
 *   already boots the slot rolled back to.
 * - The kernel of a slot is replaced only while its entry is .staged (state
 *   none), which systemd-boot does not read.
 * - Nothing is ever chmod-ed or chown-ed: FAT keeps no modes.
 * - loader.conf must not set "default": systemd-boot boots the entry it
 *   names even when its tries are used up, which would defeat the fallback.
 * - Duplicate entries of a slot (a rename cut short on FAT leaves both
 *   names) read as the one systemd-boot would boot; the next save removes
 *   the others. */
#include "config.h"
#include "bootloaders/ab-bootloader.h"
#include "bootloaders/ab-sdboot.h"
#include "ab-crashpoint.h"
#include "ab-fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#define ENTRIES_DIR "loader/entries"
#define KERNELS_DIR "abdeploy"

/* Makes a change in directory DFD durable. On FAT an fsync of the
 * directory is not enough: Linux's vfat writes a directory entry changed by
 * a rename to the block device's buffers, not to the directory's, so only
 * a sync of the whole file system reaches the disk (a power cut right after
 * an activation lost its rename under OVMF). The ESP is small; the syncfs
 * is cheap. */
static gboolean
settle (int dfd, GError **error)
{
  return ab_fs_fsync_dir_at (dfd, ".", error) && ab_fs_syncfs (dfd, error);
}

static gboolean
fail (GError **error, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

static gboolean
fail (GError **error, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error_literal (error, AB_BOOTLOADER_ERROR, AB_BOOTLOADER_ERROR_FAILED, msg);
  return FALSE;
}

/* ---- where the files are ---- */

static int
open_config_dir (AbBootloader *self, const char *path, GError **error)
{
  return ab_fs_opendir_at (g_path_is_absolute (path) ? AT_FDCWD : self->sysroot_dfd, path, error);
}

static gboolean
looks_like_esp (int sysroot_dfd, const char *path)
{
  ab_autofd dfd = openat (sysroot_dfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  return dfd >= 0 && (ab_fs_exists_at (dfd, "EFI") || ab_fs_exists_at (dfd, "loader"));
}

/* The ESP: [boot] esp-path, else systemd's candidates in its order. */
static int
open_esp (AbBootloader *self, GError **error)
{
  static const char *const candidates[] = { "efi", "boot", "boot/efi" };
  const char *path = self->config ? self->config->boot.esp_path : NULL;
  if (path != NULL)
    return open_config_dir (self, path, error);
  for (guint i = 0; i < G_N_ELEMENTS (candidates); i++)
    if (looks_like_esp (self->sysroot_dfd, candidates[i]))
      return ab_fs_opendir_at (self->sysroot_dfd, candidates[i], error);
  const char *root = self->sysroot_root;
  const char *r = root && !g_str_equal (root, "/") ? root : "";
  fail (error, "No EFI system partition found: none of %s/efi, %s/boot and %s/boot/efi holds "
        "an EFI or a loader directory. Mount the ESP at one of them, or name it with [boot] "
        "esp-path in abdeploy.conf(5)", r, r, r);
  return -1;
}

static const char *
xbootldr_path (AbBootloader *self)
{
  return self->config ? self->config->boot.xbootldr_path : NULL;
}

/* Where the entries and the kernels live: XBOOTLDR when set, else the ESP. */
static int
open_boot_dir (AbBootloader *self, GError **error)
{
  const char *xbootldr = xbootldr_path (self);
  return xbootldr ? open_config_dir (self, xbootldr, error) : open_esp (self, error);
}

/* Whether LINE of loader.conf sets "default". */
static gboolean
sets_default (const char *line)
{
  const char *p = line + strspn (line, " \t");
  return g_str_has_prefix (p, "default") && (p[7] == ' ' || p[7] == '\t' || p[7] == '\0');
}

static gboolean
check_loader_conf (AbBootloader *self, GError **error)
{
  g_autoptr(GError) local = NULL;
  ab_autofd esp = open_esp (self, &local);
  if (esp < 0 && xbootldr_path (self) != NULL)
    return TRUE;   /* loader.conf is on the ESP, which this host may not mount */
  if (esp < 0)
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  g_autofree char *text = NULL;
  if (!ab_fs_read_at (esp, "loader/loader.conf", &text, NULL, &local))
    return TRUE;
  g_auto(GStrv) lines = g_strsplit (text, "\n", -1);
  for (char **l = lines; *l != NULL; l++)
    if (sets_default (*l))
      return fail (error, "loader/loader.conf on the ESP sets \"%s\": systemd-boot would boot "
                   "that entry even when its tries are used up, which defeats the fallback. "
                   "Remove the line (abdeploy keeps the primary slot first; see "
                   "abdeploy-pointer(5))", g_strstrip (*l));
  return TRUE;
}

/* ---- the entries ---- */

typedef struct
{
  char *file;
  AbSdbootName n;
} Entry;

static void
entry_free (Entry *e)
{
  g_free (e->file);
  g_free (e);
}

typedef struct
{
  int dfd;                 /* loader/entries of the boot directory */
  GPtrArray *all;          /* every abdeploy entry, Entry * */
  Entry *win[AB_N_SLOTS];  /* per slot, the one systemd-boot would boot, or NULL */
} Entries;

static void
entries_clear (Entries *e)
{
  ab_close_fdp (&e->dfd);
  g_clear_pointer (&e->all, g_ptr_array_unref);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Entries, entries_clear)
#define ENTRIES_INIT { .dfd = -1 }

static gboolean
add_entry (Entries *e, const char *file, GError **error)
{
  Entry *entry = g_new0 (Entry, 1);
  entry->file = g_strdup (file);
  g_ptr_array_add (e->all, entry);
  if (!ab_sdboot_name_parse (file, &entry->n))
    return fail (error, "%s/%s is not a name abdeploy writes (abdeploy-G-SLOT.conf, "
                 "abdeploy-G-SLOT+LEFT[-DONE].conf or abdeploy-G-SLOT.staged; see "
                 "abdeploy-pointer(5)): rename or remove it", ENTRIES_DIR, file);
  Entry **win = &e->win[entry->n.slot];
  if (*win == NULL || ab_sdboot_name_compare (&entry->n, &(*win)->n) < 0)
    *win = entry;
  return TRUE;
}

static gboolean
list_entries (Entries *e, GError **error)
{
  ab_autofd list = dup (e->dfd);
  DIR *d = list >= 0 ? fdopendir (ab_steal_fd (&list)) : NULL;
  if (d == NULL)
    return fail (error, "Listing %s: %s", ENTRIES_DIR, g_strerror (errno));
  gboolean ok = TRUE;
  struct dirent *de;
  while (ok && (de = readdir (d)) != NULL)
    if (g_str_has_prefix (de->d_name, AB_SDBOOT_PREFIX))
      ok = add_entry (e, de->d_name, error);
  closedir (d);
  return ok;
}

static gboolean
read_entries (AbBootloader *self, Entries *e, GError **error)
{
  ab_autofd boot = open_boot_dir (self, error);
  if (boot < 0 || (e->dfd = ab_fs_opendir_at (boot, ENTRIES_DIR, error)) < 0)
    return FALSE;
  e->all = g_ptr_array_new_with_free_func ((GDestroyNotify) entry_free);
  return list_entries (e, error);
}

/* The slot whose entry has the higher generation (>= 1). */
static AbSlot
primary_of (const Entries *e)
{
  AbSlot primary = AB_SLOT_NONE;
  for (int s = 0; s < AB_N_SLOTS; s++)
    if (e->win[s] != NULL && e->win[s]->n.gen > 0
        && (primary == AB_SLOT_NONE || e->win[s]->n.gen >= e->win[primary]->n.gen))
      primary = (AbSlot) s;
  return primary;
}

/* The EFI variable in which systemd-boot names the entry file it booted,
 * as renamed to count this boot (\loader\entries\abdeploy-7-a+2-1.conf);
 * systemd-bless-boot judges the boot by it, and so does abdeploy. */
#define LOADER_BOOT_COUNT_PATH "LoaderBootCountPath-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
#define EFIVARS_DIR "/sys/firmware/efi/efivars"

/* The UTF-8 value of efivarfs file PATH (4 bytes of attributes, then
 * UTF-16LE), or NULL. */
static char *
read_efi_string (const char *path)
{
  g_autofree char *data = NULL;
  gsize len = 0;
  if (!g_file_get_contents (path, &data, &len, NULL) || len < 6 || len > 4100 || len % 2)
    return NULL;
  gsize n = (len - 4) / 2;
  g_autofree gunichar2 *text = g_new0 (gunichar2, n + 1);
  for (gsize i = 0; i < n; i++)
    text[i] = (gunichar2) ((guint8) data[4 + 2 * i] | (guint8) data[5 + 2 * i] << 8);
  return g_utf16_to_utf8 (text, (glong) n, NULL, NULL, NULL);
}

/* The entry systemd-boot counted in this boot (its name with the counter
 * it had then), when it booted one of ours with tries left. */
static gboolean
booted_counted_entry (AbSdbootName *out)
{
  const char *dir = g_getenv ("ABDEPLOY_EFIVARS_DIR");
  g_autofree char *path = g_build_filename (dir ? dir : EFIVARS_DIR, LOADER_BOOT_COUNT_PATH, NULL);
  g_autofree char *value = read_efi_string (path);
  const char *base = value ? strrchr (value, '\\') : NULL;
  base = base ? base + 1 : value;
  return base != NULL && ab_sdboot_name_parse (base, out) && !out->staged && out->counted
         && out->left > 0;
}

/* Whether W is the entry systemd-boot booted with tries left, renamed to
 * +0-DONE since: systemd-bless-boot bad (or mark-bad) judged this boot.
 * Without that variable, +0-DONE on the primary is the last trial. */
static gboolean
judged_bad_this_boot (const Entry *w, const AbSdbootName *booted)
{
  return booted->slot == w->n.slot && booted->gen == w->n.gen && w->n.counted
         && w->n.left == 0;
}

/* A primary judged bad in this boot hands over to the other slot when that
 * can boot: systemd-boot boots it next. */
static void
apply_this_boot (const Entries *e, AbBootPointer *out)
{
  AbSdbootName booted;
  AbSlot p = out->primary;
  if (p == AB_SLOT_NONE || !booted_counted_entry (&booted) || booted.slot != p
      || !judged_bad_this_boot (e->win[p], &booted))
    return;
  out->state[p] = AB_BOOT_STATE_BAD;
  out->tries[p] = 0;
  AbSlot o = ab_slot_other (p);
  if (out->state[o] == AB_BOOT_STATE_GOOD
      || (out->state[o] == AB_BOOT_STATE_TRIAL && out->tries[o] > 0))
    out->primary = o;
}

static void
pointer_of (const Entries *e, AbBootPointer *out)
{
  ab_boot_pointer_init (out);
  out->primary = primary_of (e);
  for (int s = 0; s < AB_N_SLOTS; s++)
    if (e->win[s] != NULL)
      ab_sdboot_name_state (&e->win[s]->n, out->primary == (AbSlot) s, &out->state[s],
                            &out->tries[s]);
  apply_this_boot (e, out);
}

static gboolean
sdboot_load (AbBootloader *self, AbBootPointer *out, GError **error)
{
  g_auto(Entries) e = ENTRIES_INIT;
  if (!check_loader_conf (self, error) || !read_entries (self, &e, error))
    return FALSE;
  pointer_of (&e, out);
  return TRUE;
}

/* ---- saving ---- */

static guint
max_gen (const Entries *e)
{
  guint gen = 0;
  for (int s = 0; s < AB_N_SLOTS; s++)
    if (e->win[s] != NULL)
      gen = MAX (gen, e->win[s]->n.gen);
  return gen;
}

/* The generations of WANT: the primary above the other, both 0 without. */
static gboolean
plan_gens (const Entries *e, const AbBootPointer *ptr, AbSdbootName *want, GError **error)
{
  AbSlot p = ptr->primary;
  if (p == AB_SLOT_NONE)
    {
      want[AB_SLOT_A].gen = want[AB_SLOT_B].gen = 0;
      return TRUE;
    }
  if (e->win[p] == NULL)
    return fail (error, "Slot %s has no boot entry in %s to make primary; stage it again",
                 ab_slot_name (p), ENTRIES_DIR);
  if (primary_of (e) != p && max_gen (e) >= AB_SDBOOT_MAX_NUMBER)
    return fail (error, "The generation of the boot entries is at its maximum (%u); rename "
                 "them to lower numbers, keeping their order", AB_SDBOOT_MAX_NUMBER);
  if (primary_of (e) != p)
    want[p].gen = max_gen (e) + 1;
  AbSlot o = ab_slot_other (p);
  if (want[o].gen >= want[p].gen)
    want[o].gen = want[p].gen - 1;
  return TRUE;
}

static gboolean
plan_names (const Entries *e, const AbBootPointer *ptr, AbSdbootName *want, GError **error)
{
  for (int s = 0; s < AB_N_SLOTS; s++)
    {
      if (e->win[s] == NULL && ptr->state[s] != AB_BOOT_STATE_NONE)
        return fail (error, "Slot %s has no boot entry in %s to mark %s; stage it again",
                     ab_slot_name ((AbSlot) s), ENTRIES_DIR, ab_boot_state_name (ptr->state[s]));
      if (e->win[s] != NULL)
        want[s] = ab_sdboot_name_for_state (&e->win[s]->n, ptr->state[s], ptr->tries[s],
                                            ptr->primary == (AbSlot) s);
    }
  return plan_gens (e, ptr, want, error);
}

/* Renames the entry of SLOT to WANT (one rename, then the directory is synced). */
static gboolean
rename_entry (Entries *e, AbSlot slot, const AbSdbootName *want, GError **error)
{
  Entry *win = e->win[slot];
  if (win == NULL)
    return TRUE;
  g_autofree char *to = ab_sdboot_name_format (want);
  if (g_str_equal (to, win->file))
    return TRUE;
  if (!ab_fs_rename_at (e->dfd, win->file, to, error) || !settle (e->dfd, error))
    return FALSE;
  ab_crash_point ("sdboot:renamed");
  g_free (win->file);
  win->file = g_steal_pointer (&to);
  win->n = *want;
  return TRUE;
}

/* Removes every entry but each slot's winner: they sort after it, so the
 * bootloader never preferred them. */
static gboolean
remove_extras (Entries *e, GError **error)
{
  gboolean removed = FALSE;
  for (guint i = 0; i < e->all->len; i++)
    {
      Entry *entry = e->all->pdata[i];
      Entry *win = e->win[entry->n.slot];
      if (entry == win || g_str_equal (entry->file, win->file))
        continue;
      if (unlinkat (e->dfd, entry->file, 0) < 0 && errno != ENOENT)
        return fail (error, "Removing %s/%s: %s", ENTRIES_DIR, entry->file, g_strerror (errno));
      removed = TRUE;
    }
  return !removed || settle (e->dfd, error);
}

static gboolean
sdboot_save (AbBootloader *self, const AbBootPointer *ptr, GError **error)
{
  g_auto(Entries) e = ENTRIES_INIT;
  AbSdbootName want[AB_N_SLOTS] = { { 0 } };
  if (!check_loader_conf (self, error) || !read_entries (self, &e, error)
      || !plan_names (&e, ptr, want, error) || !remove_extras (&e, error))
    return FALSE;
  /* The new primary first: see the invariants at the top. */
  AbSlot first = ptr->primary != AB_SLOT_NONE ? ptr->primary : AB_SLOT_A;
  return rename_entry (&e, first, &want[first], error)
         && rename_entry (&e, ab_slot_other (first), &want[ab_slot_other (first)], error);
}

static gboolean
sdboot_setup (AbBootloader *self, GError **error)
{
  ab_autofd boot = open_boot_dir (self, error);
  AbBootPointer ignored;
  return boot >= 0 && ab_fs_mkdir_p_at (boot, ENTRIES_DIR, 0755, error)
         && ab_fs_mkdir_p_at (boot, KERNELS_DIR, 0755, error)
         && sdboot_load (self, &ignored, error);
}

/* ---- the hook: a staged slot's kernel and entry ---- */

static gboolean
fill_kernel_dir (const AbBootEntry *entry, int dst, GError **error)
{
  return ab_fs_copy_data_at (entry->boot_dfd, entry->kernel, dst, "vmlinuz", error)
         && (entry->initramfs == NULL
             || ab_fs_copy_data_at (entry->boot_dfd, entry->initramfs, dst, "initramfs.img",
                                    error))
         && settle (dst, error);
}

/* KERNELS_DIR/<slot>/ gets the kernel (and initramfs): built beside it,
 * then put in place; the slot's entry is .staged meanwhile. */
static gboolean
copy_kernel (int boot, const AbBootEntry *entry, GError **error)
{
  const char *slot = ab_slot_name (entry->slot);
  g_autofree char *tmp = g_strdup_printf (".%s.new", slot);
  ab_autofd kernels = -1;
  if (!ab_fs_mkdir_p_at (boot, KERNELS_DIR, 0755, error)
      || (kernels = ab_fs_opendir_at (boot, KERNELS_DIR, error)) < 0
      || !ab_fs_rm_rf_at (kernels, tmp, error) || !ab_fs_mkdir_p_at (kernels, tmp, 0755, error))
    return FALSE;
  ab_autofd dst = ab_fs_opendir_at (kernels, tmp, error);
  if (dst < 0 || !fill_kernel_dir (entry, dst, error))
    {
      AB_IGNORE_RESULT (ab_fs_rm_rf_at (kernels, tmp, NULL));
      return FALSE;
    }
  ab_crash_point ("sdboot:kernel-copied");
  return ab_fs_rm_rf_at (kernels, slot, error) && ab_fs_rename_at (kernels, tmp, slot, error)
         && settle (kernels, error);
}

/* S with every control character made a blank: one line of an entry. */
static char *
one_line (const char *s)
{
  char *line = g_strdup (s ? s : "");
  for (char *p = line; *p; p++)
    if ((guchar) *p < 0x20 || *p == 0x7f)
      *p = ' ';
  return line;
}

static char *
entry_text (const AbBootEntry *entry)
{
  const char *slot = ab_slot_name (entry->slot);
  g_autofree char *os = one_line (entry->os);
  g_autofree char *version = one_line (entry->version);
  g_autoptr(GString) s = g_string_new (NULL);
  g_string_append_printf (s, "# abdeploy: slot %s. systemd-boot and systemd-bless-boot rename "
                          "this file\n# to count and bless trial boots; see "
                          "abdeploy-pointer(5).\n", slot);
  g_string_append_printf (s, "title %s%s%s (slot %s)\n", os, *version ? " " : "", version, slot);
  /* no version or machine-id: the file name alone must order the entries */
  g_string_append (s, "sort-key abdeploy\n");
  g_string_append_printf (s, "linux /" KERNELS_DIR "/%s/vmlinuz\n", slot);
  if (entry->initramfs != NULL)
    g_string_append_printf (s, "initrd /" KERNELS_DIR "/%s/initramfs.img\n", slot);
  g_string_append_printf (s, "options %s\n", entry->kernel_args);
  return g_string_free (g_steal_pointer (&s), FALSE);
}

static gboolean
write_staged_entry (Entries *e, const AbBootEntry *entry, GError **error)
{
  Entry *win = e->win[entry->slot];
  AbSdbootName n = { .gen = win ? win->n.gen : 0, .slot = entry->slot, .staged = TRUE };
  g_autofree char *name = ab_sdboot_name_format (&n);
  g_autofree char *text = entry_text (entry);
  if (!ab_fs_replace_at (e->dfd, name, text, strlen (text), AB_FS_MODE_NONE, error))
    return FALSE;
  Entry *written = g_new0 (Entry, 1);
  written->file = g_steal_pointer (&name);
  written->n = n;
  g_ptr_array_add (e->all, written);
  e->win[entry->slot] = written;
  return TRUE;
}

static gboolean
sdboot_install_entry (AbBootloader *self, const AbBootEntry *entry, GError **error)
{
  g_auto(Entries) e = ENTRIES_INIT;
  if (!check_loader_conf (self, error) || !read_entries (self, &e, error))
    return FALSE;
  Entry *win = e.win[entry->slot];
  if (win != NULL && !win->n.staged)
    return fail (error, "%s/%s is an entry systemd-boot reads: slot %s must be unbootable "
                 "(state none) before its kernel is replaced", ENTRIES_DIR, win->file,
                 ab_slot_name (entry->slot));
  ab_autofd boot = open_boot_dir (self, error);
  return boot >= 0 && copy_kernel (boot, entry, error)
         && write_staged_entry (&e, entry, error) && remove_extras (&e, error);
}

const AbBootloaderOps ab_bootloader_sdboot_ops = {
  .name = "systemd-boot",
  .summary = "Boot Loader Specification entries on the ESP (or XBOOTLDR), with systemd's "
             "boot counting",
  .caps = AB_BOOTLOADER_CAP_INSTALLS_KERNELS | AB_BOOTLOADER_CAP_NEEDS_ESP
          | AB_BOOTLOADER_CAP_SYSTEMD_BOOT_COUNTING,
  .setup = sdboot_setup,
  .load = sdboot_load,
  .save = sdboot_save,
  .install_entry = sdboot_install_entry,
  .location = "in loader/entries (systemd-boot)",
};
