/* Three-way merge of /etc, as in OSTree:
 *   base   = the running deployment's defaults (its usr/etc),
 *   local  = the running deployment's etc/ (what the operator has),
 *   new    = the new image's defaults (usr/etc of the new tree).
 * The result is the new tree's etc/: a copy of new, then every file that
 * local changed or added relative to base is copied over, and every file
 * that local removed relative to base is removed. All files are copies. */
#pragma once

#include <glib.h>

#define AB_ETCMERGE_ERROR (ab_etcmerge_error_quark ())
GQuark ab_etcmerge_error_quark (void);

typedef enum
{
  AB_ETCMERGE_ERROR_FAILED,
} AbEtcmergeError;

/* old_tree_dfd is the running slot's tree, or -1 for a first deployment.
 * Creates new_tree_dfd/etc, which must not exist. */
gboolean ab_etc_merge (int old_tree_dfd, int new_tree_dfd, GError **error);
