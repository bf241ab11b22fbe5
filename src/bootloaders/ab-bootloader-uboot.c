/* "uboot" backend: the pointer variables in the U-Boot environment, read
 * and written through libubootenv (the library behind fw_printenv and
 * fw_setenv), so the environment stays in U-Boot's own format: CRC32, and
 * with two copies a flags byte that tells U-Boot which copy is newer.
 *
 * Configuration (abdeploy.conf, group [boot]):
 *   uboot-env-config    the fw_env.config that describes where the
 *                       environment lives (default etc/fw_env.config)
 *   uboot-env-defaults  U-Boot's default environment as NAME=VALUE lines
 *                       (default etc/u-boot-initial-env, the file
 *                       fw_setenv uses too); only read when no copy of the
 *                       environment is valid.
 * A relative path is taken inside the sysroot, an absolute one as it is.
 *
 * Invariants:
 * - save() changes the five pointer variables in memory and writes the
 *   whole environment with ONE libuboot_env_store(). With a redundant
 *   environment (two copies) that store writes the older copy with a higher
 *   flags value: U-Boot reads whichever copy has a valid CRC and the higher
 *   flags, so it sees the old or the new pointer, never a mix. A single-copy
 *   environment is rewritten in place and a power cut during the write
 *   leaves a bad CRC: U-Boot then boots with its built-in default
 *   environment. Use the redundant layout on appliances.
 * - Every other variable of the environment is kept as it is.
 * - The environment is never replaced by one that holds only the pointer
 *   when the default environment is available: U-Boot stops using its
 *   built-in defaults (bootcmd, ...) as soon as a valid copy exists. */
#include "config.h"
#include "bootloaders/ab-bootloader.h"
#include "ab-fsutil.h"

#if HAVE_LIBUBOOTENV
#include <errno.h>
#include <fcntl.h>
#include <libuboot.h>
#include <string.h>
#include <sys/stat.h>

#define KEY_ENV_CONFIG "uboot-env-config"
#define KEY_ENV_DEFAULTS "uboot-env-defaults"
#define DEFAULT_ENV_CONFIG "etc/fw_env.config"
#define DEFAULT_ENV_DEFAULTS "etc/u-boot-initial-env"

static const char *const pointer_vars[] = {
  "ABDEPLOY_PRIMARY", "ABDEPLOY_A_STATE", "ABDEPLOY_A_TRIES",
  "ABDEPLOY_B_STATE", "ABDEPLOY_B_TRIES",
};

/* An open environment; the libubootenv lock is held while opened. */
typedef struct
{
  struct uboot_ctx *ctx;
  gboolean opened;
  gboolean valid;   /* some copy had a valid CRC */
  char *config;     /* path of the fw_env.config, for messages */
} UbootEnv;

static void
uboot_env_free (UbootEnv *env)
{
  if (env->opened)
    libuboot_close (env->ctx);
  if (env->ctx != NULL)
    libuboot_exit (env->ctx);
  g_free (env->config);
  g_free (env);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (UbootEnv, uboot_env_free)

static gboolean
uboot_error (GError **error, const char *what, const char *path, int ret)
{
  g_set_error (error, AB_BOOTLOADER_ERROR, AB_BOOTLOADER_ERROR_FAILED,
               "%s %s: %s", what, path, g_strerror (-ret));
  return FALSE;
}

/* PATH resolved against the sysroot's path: absolute paths are kept. */
static char *
resolve_in_sysroot (const char *sysroot_root, const char *path, GError **error)
{
  if (g_path_is_absolute (path))
    return g_strdup (path);
  return g_build_filename (sysroot_root, path, NULL);
}

/* A [boot] path resolved against the sysroot, FALLBACK when the
 * configuration has none (no configuration: all defaults). */
static char *
config_path (AbBootloader *self, const char *value, const char *fallback, GError **error)
{
  return resolve_in_sysroot (self->sysroot_root, value != NULL ? value : fallback, error);
}

static char *
env_config_path (AbBootloader *self, GError **error)
{
  g_autofree char *path = config_path (self, self->config ? self->config->boot.uboot_env_config : NULL,
                                           DEFAULT_ENV_CONFIG, error);
  if (path == NULL)
    return NULL;
  if (!g_file_test (path, G_FILE_TEST_IS_REGULAR))
    {
      g_set_error (error, AB_CONFIG_ERROR, AB_CONFIG_ERROR_INVALID,
                   "U-Boot environment configuration %s not found; create it (fw_env.config "
                   "format) or point [boot] " KEY_ENV_CONFIG " in abdeploy.conf to it", path);
      return NULL;
    }
  return g_steal_pointer (&path);
}

/* Opens the environment described by CONFIG. An environment without any
 * valid copy (blank or corrupt) opens with valid = FALSE and no variables. */
static UbootEnv *
uboot_env_open (const char *config, GError **error)
{
  g_autoptr(UbootEnv) env = g_new0 (UbootEnv, 1);
  env->config = g_strdup (config);
  int ret = libuboot_initialize (&env->ctx, NULL);
  if (ret < 0)
    {
      uboot_error (error, "Initializing libubootenv for", config, ret);
      return NULL;
    }
  ret = libuboot_read_config (env->ctx, config);
  if (ret < 0)
    {
      g_set_error (error, AB_BOOTLOADER_ERROR, AB_BOOTLOADER_ERROR_FAILED,
                   "Invalid U-Boot environment configuration %s: %s (expected lines "
                   "\"DEVICE OFFSET SIZE\", one or two of them, and every DEVICE must exist)",
                   config, g_strerror (-ret));
      return NULL;
    }
  ret = libuboot_open (env->ctx);
  env->opened = TRUE;
  if (ret < 0 && ret != -ENODATA)
    {
      uboot_error (error, "Reading the U-Boot environment described by", config, ret);
      return NULL;
    }
  env->valid = ret == 0;
  return g_steal_pointer (&env);
}

static gboolean
uboot_env_set (UbootEnv *env, const char *name, const char *value, GError **error)
{
  /* U-Boot has no empty variables: an empty value removes the variable. */
  int ret = libuboot_set_env (env->ctx, name, value != NULL && *value != '\0' ? value : NULL);
  if (ret < 0)
    {
      g_set_error (error, AB_BOOTLOADER_ERROR, AB_BOOTLOADER_ERROR_FAILED,
                   "Setting %s in the U-Boot environment described by %s: %s%s", name,
                   env->config, g_strerror (-ret),
                   ret == -EPERM ? " (the variable is read-only by its .flags)" : "");
      return FALSE;
    }
  return TRUE;
}

/* An environment without a valid copy starts from U-Boot's default
 * environment when it is available, like fw_setenv does. */
static gboolean
uboot_env_start_from_defaults (AbBootloader *self, UbootEnv *env, GError **error)
{
  g_autofree char *defaults = config_path (self, self->config ? self->config->boot.uboot_env_defaults : NULL,
                                             DEFAULT_ENV_DEFAULTS, error);
  if (defaults == NULL)
    return FALSE;
  if (!g_file_test (defaults, G_FILE_TEST_IS_REGULAR))
    {
      ab_event_warning (self->events, "the U-Boot environment described by %s has no valid "
                        "copy and there is no default environment %s ([boot] "
                        KEY_ENV_DEFAULTS "); writing an environment that holds only the boot "
                        "pointer, which replaces U-Boot's built-in defaults", env->config,
                        defaults);
      return TRUE;
    }
  int ret = libuboot_load_file (env->ctx, defaults);
  if (ret < 0)
    return uboot_error (error, "Reading the default U-Boot environment", defaults, ret);
  return TRUE;
}

/* Sets the five pointer variables and stores the environment in one write. */
static gboolean
uboot_env_store_pointer (UbootEnv *env, const AbBootPointer *ptr, GError **error)
{
  g_autoptr(GHashTable) vars = ab_boot_pointer_to_vars (ptr);
  for (guint i = 0; i < G_N_ELEMENTS (pointer_vars); i++)
    if (!uboot_env_set (env, pointer_vars[i], g_hash_table_lookup (vars, pointer_vars[i]), error))
      return FALSE;
  int ret = libuboot_env_store (env->ctx);
  if (ret < 0)
    return uboot_error (error, "Writing the U-Boot environment described by", env->config, ret);
  return TRUE;
}

/* Creates a missing env file named by LINE of a fw_env.config ("DEVICE
 * OFFSET SIZE ..."): zero-filled, so it holds no valid copy yet. Devices
 * under /dev are never created; a missing one stays an error. */
static gboolean
create_missing_env_file (const char *line, GError **error)
{
  g_auto(GStrv) f = g_strsplit_set (line, " \t", -1);
  g_autoptr(GPtrArray) fields = g_ptr_array_new ();
  for (char **p = f; *p; p++)
    if (**p != '\0')
      g_ptr_array_add (fields, *p);
  if (fields->len < 3)
    return TRUE;
  const char *device = fields->pdata[0];
  if (g_str_has_prefix (device, "/dev/") || g_file_test (device, G_FILE_TEST_EXISTS))
    return TRUE;
  gint64 offset = g_ascii_strtoll (fields->pdata[1], NULL, 0);
  guint64 size = g_ascii_strtoull (fields->pdata[2], NULL, 16);
  if (offset < 0 || size == 0)
    return TRUE; /* libubootenv reports the bad line */
  ab_autofd fd = open (device, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0 || ftruncate (fd, offset + (gint64) size) < 0 || fsync (fd) < 0)
    {
      g_set_error (error, AB_BOOTLOADER_ERROR, AB_BOOTLOADER_ERROR_FAILED,
                   "Creating the U-Boot environment file %s: %s", device, g_strerror (errno));
      return FALSE;
    }
  g_autofree char *parent = g_path_get_dirname (device);
  return ab_fs_fsync_dir_at (AT_FDCWD, parent, error);
}

static gboolean
create_missing_env_files (const char *config, GError **error)
{
  g_autofree char *text = NULL;
  if (!g_file_get_contents (config, &text, NULL, error))
    return FALSE;
  g_auto(GStrv) lines = g_strsplit (text, "\n", -1);
  for (char **l = lines; *l; l++)
    {
      char *line = g_strstrip (*l);
      if (*line != '\0' && *line != '#' && !create_missing_env_file (line, error))
        return FALSE;
    }
  return TRUE;
}

static gboolean
uboot_setup (AbBootloader *self, GError **error)
{
  g_autofree char *config = env_config_path (self, error);
  if (config == NULL || !create_missing_env_files (config, error))
    return FALSE;
  g_autoptr(UbootEnv) env = uboot_env_open (config, error);
  if (env == NULL)
    return FALSE;
  if (env->valid)
    {
      g_autofree char *state = libuboot_get_env (env->ctx, "ABDEPLOY_A_STATE");
      if (state != NULL)
        return TRUE;
    }
  else if (!uboot_env_start_from_defaults (self, env, error))
    return FALSE;
  AbBootPointer ptr;
  ab_boot_pointer_init (&ptr);
  return uboot_env_store_pointer (env, &ptr, error);
}

static gboolean
uboot_load (AbBootloader *self, AbBootPointer *out, GError **error)
{
  g_autofree char *config = env_config_path (self, error);
  if (config == NULL)
    return FALSE;
  g_autoptr(UbootEnv) env = uboot_env_open (config, error);
  if (env == NULL)
    return FALSE;
  if (!env->valid)
    {
      g_set_error (error, AB_BOOTLOADER_ERROR, AB_BOOTLOADER_ERROR_PARSE,
                   "The U-Boot environment described by %s has no valid copy (blank, or "
                   "damaged by an interrupted write); U-Boot boots with its built-in defaults "
                   "until abdeploy writes the pointer again", config);
      return FALSE;
    }
  g_autoptr(GHashTable) vars = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_free);
  for (guint i = 0; i < G_N_ELEMENTS (pointer_vars); i++)
    {
      char *v = libuboot_get_env (env->ctx, pointer_vars[i]);
      if (v != NULL)
        g_hash_table_insert (vars, (char *) pointer_vars[i], v);
    }
  g_autofree char *fix = g_strdup_printf ("set it with fw_setenv -c %s NAME VALUE (the values "
                                          "are in abdeploy-pointer(5))", config);
  return ab_boot_pointer_from_env (vars, TRUE, fix, out, error);
}

static gboolean
uboot_save (AbBootloader *self, const AbBootPointer *ptr, GError **error)
{
  g_autofree char *config = env_config_path (self, error);
  if (config == NULL)
    return FALSE;
  g_autoptr(UbootEnv) env = uboot_env_open (config, error);
  if (env == NULL)
    return FALSE;
  /* No valid copy: U-Boot ignores the environment anyway; writing it makes
   * the pointer visible again. */
  if (!env->valid && !uboot_env_start_from_defaults (self, env, error))
    return FALSE;
  return uboot_env_store_pointer (env, ptr, error);
}

const AbBootloaderOps ab_bootloader_uboot_ops = {
  .name = "uboot",
  .summary = "the U-Boot environment of [boot] uboot-env-config (atomic with a redundant "
             "environment only)",
  .caps = 0,
  .setup = uboot_setup,
  .load = uboot_load,
  .save = uboot_save,
  .location = "in the U-Boot environment",
};

#else /* built without U-Boot support (meson -Duboot=disabled) */

static gboolean
uboot_unsupported (GError **error)
{
  g_set_error_literal (error, AB_BOOTLOADER_ERROR, AB_BOOTLOADER_ERROR_FAILED,
                       "abdeploy was built without U-Boot support (meson option -Duboot, "
                       "libubootenv); use a build with it, or another bootloader backend");
  return FALSE;
}

static gboolean
uboot_setup_unsupported (AbBootloader *self, GError **error)
{
  return uboot_unsupported (error);
}

static gboolean
uboot_load_unsupported (AbBootloader *self, AbBootPointer *out, GError **error)
{
  return uboot_unsupported (error);
}

static gboolean
uboot_save_unsupported (AbBootloader *self, const AbBootPointer *ptr, GError **error)
{
  return uboot_unsupported (error);
}

const AbBootloaderOps ab_bootloader_uboot_ops = {
  .name = "uboot",
  .summary = "the U-Boot environment (not in this build: built without U-Boot support)",
  .caps = 0,
  .setup = uboot_setup_unsupported,
  .load = uboot_load_unsupported,
  .save = uboot_save_unsupported,
  .location = "in the U-Boot environment",
};
#endif
