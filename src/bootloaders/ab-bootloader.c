#include "config.h"
#include "bootloaders/ab-bootloader.h"
#include "ab-fsutil.h"

#include <string.h>

G_DEFINE_QUARK (ab-bootloader-error-quark, ab_bootloader_error)

static const char *const state_names[] = { "none", "good", "trial", "bad" };

const char *
ab_boot_state_name (AbBootState state)
{
  g_return_val_if_fail ((guint) state < G_N_ELEMENTS (state_names), "none");
  return state_names[state];
}

gboolean
ab_boot_state_from_name (const char *name, AbBootState *out)
{
  for (guint i = 0; i < G_N_ELEMENTS (state_names); i++)
    if (g_strcmp0 (name, state_names[i]) == 0)
      {
        *out = (AbBootState) i;
        return TRUE;
      }
  return FALSE;
}

void
ab_boot_pointer_init (AbBootPointer *ptr)
{
  ptr->primary = AB_SLOT_NONE;
  for (int s = 0; s < AB_N_SLOTS; s++)
    {
      ptr->state[s] = AB_BOOT_STATE_NONE;
      ptr->tries[s] = 0;
    }
}

gboolean
ab_boot_pointer_bootable (const AbBootPointer *ptr, AbSlot slot)
{
  if (slot == AB_SLOT_NONE)
    return FALSE;
  return ptr->state[slot] == AB_BOOT_STATE_GOOD
         || (ptr->state[slot] == AB_BOOT_STATE_TRIAL && ptr->tries[slot] > 0);
}

AbSlot
ab_boot_pointer_next_boot (const AbBootPointer *ptr)
{
  if (ptr->primary == AB_SLOT_NONE)
    return AB_SLOT_NONE;
  if (ab_boot_pointer_bootable (ptr, ptr->primary))
    return ptr->primary;
  if (ab_boot_pointer_bootable (ptr, ab_slot_other (ptr->primary)))
    return ab_slot_other (ptr->primary);
  return ptr->primary;
}

static const char *const state_vars[] = { "ABDEPLOY_A_STATE", "ABDEPLOY_B_STATE" };
static const char *const tries_vars[] = { "ABDEPLOY_A_TRIES", "ABDEPLOY_B_TRIES" };

GHashTable *
ab_boot_pointer_to_vars (const AbBootPointer *ptr)
{
  GHashTable *vars = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_free);
  const char *primary = ab_slot_name (ptr->primary);
  g_hash_table_insert (vars, (char *) "ABDEPLOY_PRIMARY", g_strdup (primary ? primary : ""));
  for (int s = 0; s < AB_N_SLOTS; s++)
    {
      g_hash_table_insert (vars, (char *) state_vars[s], g_strdup (ab_boot_state_name (ptr->state[s])));
      g_hash_table_insert (vars, (char *) tries_vars[s], g_strdup_printf ("%d", ptr->tries[s]));
    }
  return vars;
}

static gboolean
parse_error (GError **error, const char *name, const char *value, const char *expected)
{
  g_set_error (error, AB_BOOTLOADER_ERROR, AB_BOOTLOADER_ERROR_PARSE,
               "Invalid boot pointer: %s=%s (expected %s); see abdeploy-pointer(5)",
               name, value, expected);
  return FALSE;
}

gboolean
ab_boot_pointer_from_vars (GHashTable *vars, AbBootPointer *out, GError **error)
{
  ab_boot_pointer_init (out);
  const char *primary = g_hash_table_lookup (vars, "ABDEPLOY_PRIMARY");
  if (primary != NULL && *primary != '\0')
    {
      out->primary = ab_slot_from_name (primary);
      if (out->primary == AB_SLOT_NONE)
        return parse_error (error, "ABDEPLOY_PRIMARY", primary, "a, b or empty");
    }
  for (int s = 0; s < AB_N_SLOTS; s++)
    {
      const char *state = g_hash_table_lookup (vars, state_vars[s]);
      if (state != NULL && !ab_boot_state_from_name (state, &out->state[s]))
        return parse_error (error, state_vars[s], state, "none, good, trial or bad");
      const char *tries = g_hash_table_lookup (vars, tries_vars[s]);
      guint64 n = 0;
      if (tries != NULL && !g_ascii_string_to_unsigned (tries, 10, 0, 9, &n, NULL))
        return parse_error (error, tries_vars[s], tries, "0 to 9");
      out->tries[s] = (int) n;
    }
  return TRUE;
}

gboolean
ab_boot_pointer_from_env (GHashTable *vars, gboolean primary_may_be_absent, const char *fix,
                          AbBootPointer *out, GError **error)
{
  for (guint i = 0; i < G_N_ELEMENTS (state_vars); i++)
    {
      const char *need[] = { "ABDEPLOY_PRIMARY", state_vars[i], tries_vars[i] };
      for (guint j = primary_may_be_absent ? 1 : 0; j < G_N_ELEMENTS (need); j++)
        if (!g_hash_table_contains (vars, need[j]))
          {
            g_set_error (error, AB_BOOTLOADER_ERROR, AB_BOOTLOADER_ERROR_PARSE,
                         "%s is missing; %s", need[j], fix);
            return FALSE;
          }
    }
  if (ab_boot_pointer_from_vars (vars, out, error))
    return TRUE;
  if (error == NULL)
    return FALSE;
  g_autofree char *msg = g_strdup_printf ("%s; %s", (*error)->message, fix);
  g_free ((*error)->message);
  (*error)->message = g_steal_pointer (&msg);
  return FALSE;
}

/* The backend table: every backend name, help text and capability comes
 * from here (no other code compares backend names). */
static const AbBootloaderOps *const backends[] = {
  &ab_bootloader_grub_ops,
  &ab_bootloader_file_ops,
  &ab_bootloader_uboot_ops,
  &ab_bootloader_custom_ops,
  &ab_bootloader_sdboot_ops,
  NULL,
};

const AbBootloaderOps *const *
ab_bootloader_backends (void)
{
  return backends;
}

const AbBootloaderOps *
ab_bootloader_lookup (const char *name)
{
  for (guint i = 0; name != NULL && backends[i] != NULL; i++)
    if (g_str_equal (name, backends[i]->name))
      return backends[i];
  return NULL;
}

char *
ab_bootloader_names_text (void)
{
  g_autoptr(GString) s = g_string_new (NULL);
  for (guint i = 0; backends[i] != NULL; i++)
    g_string_append_printf (s, "%s%s", i == 0 ? "" : backends[i + 1] ? ", " : " or ",
                            backends[i]->name);
  return g_string_free (g_steal_pointer (&s), FALSE);
}

AbBootloader *
ab_bootloader_new (const char *name, int sysroot_dfd, const char *sysroot_root,
                   const AbConfig *config, GError **error)
{
  const AbBootloaderOps *ops = ab_bootloader_lookup (name);
  if (ops == NULL)
    {
      g_autofree char *names = ab_bootloader_names_text ();
      g_set_error (error, AB_BOOTLOADER_ERROR, AB_BOOTLOADER_ERROR_UNKNOWN_BACKEND,
                   "Unknown bootloader backend \"%s\"; use %s", name ? name : "", names);
      return NULL;
    }
  AbBootloader *self = g_new0 (AbBootloader, 1);
  self->ops = ops;
  self->sysroot_dfd = sysroot_dfd;
  self->sysroot_root = g_strdup (sysroot_root);
  self->config = config;
  return self;
}

void
ab_bootloader_free (AbBootloader *self)
{
  if (self == NULL)
    return;
  if (self->ops->free != NULL)
    self->ops->free (self);
  g_free (self->sysroot_root);
  g_free (self);
}

const char *
ab_bootloader_name (AbBootloader *self)
{
  return self->ops->name;
}

gboolean
ab_bootloader_has_cap (AbBootloader *self, AbBootloaderCaps cap)
{
  return (self->ops->caps & cap) == cap;
}

gboolean
ab_bootloader_setup (AbBootloader *self, GError **error)
{
  return self->ops->setup (self, error);
}

gboolean
ab_bootloader_load (AbBootloader *self, AbBootPointer *out, GError **error)
{
  if (!self->ops->load (self, out, error))
    {
      g_prefix_error (error, "Reading the boot pointer %s: ", self->ops->location);
      return FALSE;
    }
  return TRUE;
}

/* Equal as the bootloader sees them: tries count only for a trial. */
static gboolean
pointers_equal (const AbBootPointer *a, const AbBootPointer *b)
{
  if (a->primary != b->primary)
    return FALSE;
  for (int s = 0; s < AB_N_SLOTS; s++)
    if (a->state[s] != b->state[s]
        || (a->state[s] == AB_BOOT_STATE_TRIAL && a->tries[s] != b->tries[s]))
      return FALSE;
  return TRUE;
}

char *
ab_boot_pointer_describe (const AbBootPointer *ptr)
{
  g_autoptr(GString) s = g_string_new (NULL);
  const char *primary = ab_slot_name (ptr->primary);
  g_string_append_printf (s, "primary %s", primary ? primary : "none");
  for (int i = 0; i < AB_N_SLOTS; i++)
    {
      g_string_append_printf (s, ", %s %s", ab_slot_name ((AbSlot) i), ab_boot_state_name (ptr->state[i]));
      if (ptr->state[i] == AB_BOOT_STATE_TRIAL)
        g_string_append_printf (s, " %d", ptr->tries[i]);
    }
  return g_string_free (g_steal_pointer (&s), FALSE);
}

/* A backend that says it saved the pointer but stores something else (or
 * nothing) must not be taken at its word: the pointer is read back. */
static gboolean
check_read_back (AbBootloader *self, const AbBootPointer *ptr, GError **error)
{
  AbBootPointer back;
  g_autoptr(GError) local = NULL;
  g_autofree char *wrote = ab_boot_pointer_describe (ptr);
  if (!self->ops->load (self, &back, &local))
    {
      g_set_error (error, AB_BOOTLOADER_ERROR, AB_BOOTLOADER_ERROR_READ_BACK,
                   "The %s backend reported the pointer saved (%s), but reading it back "
                   "failed: %s", self->ops->name, wrote, local->message);
      return FALSE;
    }
  if (pointers_equal (ptr, &back))
    return TRUE;
  g_autofree char *read = ab_boot_pointer_describe (&back);
  g_set_error (error, AB_BOOTLOADER_ERROR, AB_BOOTLOADER_ERROR_READ_BACK,
               "The %s backend reported the pointer saved, but it did not store it: wrote "
               "%s, read back %s. Check the backend (and, for a custom backend, its set-* "
               "calls) before trying again", self->ops->name, wrote, read);
  return FALSE;
}

gboolean
ab_bootloader_save (AbBootloader *self, const AbBootPointer *ptr, GError **error)
{
  if (!self->ops->save (self, ptr, error) || !check_read_back (self, ptr, error))
    {
      g_prefix_error (error, "Writing the boot pointer %s: ", self->ops->location);
      return FALSE;
    }
  return TRUE;
}

gboolean
ab_bootloader_install_entry (AbBootloader *self, const AbBootEntry *entry, GError **error)
{
  if (self->ops->install_entry == NULL || self->ops->install_entry (self, entry, error))
    return TRUE;
  g_prefix_error (error, "Installing the boot entry of slot %s (%s backend): ",
                  ab_slot_name (entry->slot), self->ops->name);
  return FALSE;
}

int
ab_bootloader_open_dir (AbBootloader *self, const char *rel, gboolean create, GError **error)
{
  if (create && !ab_fs_mkdir_p_at (self->sysroot_dfd, rel, 0755, error))
    return -1;
  return ab_fs_opendir_at (self->sysroot_dfd, rel, error);
}

gboolean
ab_bootloader_setup_pointer (AbBootloader *self, gboolean have_pointer, GError **error)
{
  if (have_pointer)
    return TRUE;
  AbBootPointer ptr;
  ab_boot_pointer_init (&ptr);
  return self->ops->save (self, &ptr, error);
}
