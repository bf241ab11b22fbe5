#include "config.h"
#include "cli/ab-exitcode.h"
#include "ab-backup.h"
#include "ab-content.h"
#include "ab-deploy.h"
#include "ab-health.h"
#include "ab-install.h"
#include "ab-update.h"
#include "ab-lock.h"
#include "ab-manifest.h"
#include "publisher/ab-publish.h"
#include "ab-sysroot.h"

AbExitCode
ab_exit_code_for_error (const GError *error)
{
  if (error == NULL)
    return AB_EXIT_OK;
  if (g_error_matches (error, AB_CONTENT_ERROR, AB_CONTENT_ERROR_VERIFY)
      || g_error_matches (error, AB_CONTENT_ERROR, AB_CONTENT_ERROR_WRONG_OS)
      || g_error_matches (error, AB_UPDATE_ERROR, AB_UPDATE_ERROR_REFUSED)
      || g_error_matches (error, AB_MANIFEST_ERROR, AB_MANIFEST_ERROR_PROTOCOL))
    return AB_EXIT_VERIFY;
  if (g_error_matches (error, AB_DEPLOY_ERROR, AB_DEPLOY_ERROR_REFUSED))
    return AB_EXIT_REFUSED;
  if (g_error_matches (error, AB_UPDATE_ERROR, AB_UPDATE_ERROR_NO_UPDATE))
    return AB_EXIT_NOTHING_TO_DO;
  if (g_error_matches (error, AB_LOCK_ERROR, AB_LOCK_ERROR_HELD))
    return AB_EXIT_LOCKED;
  if (g_error_matches (error, AB_DEPLOY_ERROR, AB_DEPLOY_ERROR_NOTHING_TO_DO)
      || g_error_matches (error, AB_DEPLOY_ERROR, AB_DEPLOY_ERROR_ALREADY_STAGED)
      || g_error_matches (error, AB_DEPLOY_ERROR, AB_DEPLOY_ERROR_ALREADY_PRIMARY)
      || g_error_matches (error, AB_HEALTH_ERROR, AB_HEALTH_ERROR_NOTHING_TO_DO))
    return AB_EXIT_NOTHING_TO_DO;
  if (g_error_matches (error, AB_DEPLOY_ERROR, AB_DEPLOY_ERROR_USAGE)
      || g_error_matches (error, AB_CONTENT_ERROR, AB_CONTENT_ERROR_USAGE)
      || g_error_matches (error, AB_SYSROOT_ERROR, AB_SYSROOT_ERROR_USAGE)
      || g_error_matches (error, AB_HEALTH_ERROR, AB_HEALTH_ERROR_USAGE)
      || g_error_matches (error, AB_PUBLISH_ERROR, AB_PUBLISH_ERROR_USAGE)
      || g_error_matches (error, AB_INSTALL_ERROR, AB_INSTALL_ERROR_USAGE)
      || g_error_matches (error, AB_BACKUP_ERROR, AB_BACKUP_ERROR_USAGE)
      || g_error_matches (error, G_OPTION_ERROR, G_OPTION_ERROR_UNKNOWN_OPTION)
      || g_error_matches (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE)
      || g_error_matches (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED))
    return AB_EXIT_USAGE;
  return AB_EXIT_ERROR;
}
