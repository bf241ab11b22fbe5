/* Three-way merge of /etc, as in OSTree:
 *   base   = the running deployment's defaults (its usr/etc),
 *   local  = the running deployment's etc/ (what the operator has),
 *   new    = the new image's defaults (usr/etc of the new tree).
 * The result is the new tree's etc/: a copy of new, then every file that
 * local changed or added relative to base is copied over, and every file
 * that local removed relative to base is removed. All files are copies.
 *
 * Invariant: nothing is read, written or deleted through a symbolic link.
 * Every path is resolved with ab_fs_open_beneath(AB_FS_RESOLVE_NO_SYMLINKS)
 * below its root (old etc, old usr/etc, new etc), so a directory that the
 * new image turned into a link (to /tmp/outside, or to ../../..) is never
 * entered: a local change or deletion below it is a conflict
 * (AB_ETCMERGE_ERROR_CONFLICT) and the stage is refused before the slot or
 * the pointer changes. */
#pragma once

#include <glib.h>

#define AB_ETCMERGE_ERROR (ab_etcmerge_error_quark ())
/* The error domain of ab-etcmerge (the codes of the enum below). */
GQuark ab_etcmerge_error_quark (void);

typedef enum
{
  AB_ETCMERGE_ERROR_FAILED,
  AB_ETCMERGE_ERROR_CONFLICT,   /* a local change lies below a link of the new image */
} AbEtcmergeError;

/* old_tree_dfd is the running slot's tree, or -1 for a first deployment.
 * Creates new_tree_dfd/etc, which must not exist. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_etc_merge (int old_tree_dfd, int new_tree_dfd, GError **error);
