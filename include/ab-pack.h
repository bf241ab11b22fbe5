/* Image packs (issue 18; abdeploy-manifest(5), "packs"): zstd-compressed
 * POSIX tar files whose entries are the objects of one commit, named as in
 * a bare OSTree repo. A first install extracts them into a temporary bare
 * repo and imports the commit from there with ab-import (signature first,
 * every object hashed before it is linked into the device's repo).
 *
 * Invariants of the extraction (fail closed: the first bad entry refuses
 * the whole pack with AB_PACK_ERROR_REFUSED, naming the pack and entry):
 * - An entry is written only when its name matches
 *   objects/[0-9a-f]{2}/[0-9a-f]{62}.(file|commit|commitmeta|dirtree|dirmeta),
 *   it is a regular file, or a symlink (target 1..4095 bytes) of a .file,
 *   and is not a hardlink, sparse or already written (O_EXCL).
 * - Every write goes through a descriptor of objects/XX of the temporary
 *   repo (openat/symlinkat with O_NOFOLLOW, never a path that could leave
 *   it).
 * - The content bytes written over all packs of one extraction (regular
 *   files: their size; symlinks: their target's length) never exceed the
 *   signed "unpacked" total: the budget is checked before each entry.
 * - Nothing is fsynced: the import links verified objects and syncs. */
#pragma once

#include <gio/gio.h>

#define AB_PACK_ERROR (ab_pack_error_quark ())
/* The error domain of ab-pack (the codes of the enum below). */
GQuark ab_pack_error_quark (void);

typedef enum
{
  AB_PACK_ERROR_FAILED,  /* an I/O error of this machine */
  AB_PACK_ERROR_REFUSED, /* the pack is damaged or hostile: not extracted */
} AbPackError;

/* The most packs one release may have (abdeploy-manifest(5)). */
#define AB_PACK_MAX_FILES 64

/* Makes DFD/NAME a fresh, empty bare repo: a leftover of an earlier run is
 * removed first; then config, objects/00..ff and the other directories of
 * a bare repo are created. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_pack_prepare_repo (int dfd, const char *name, GError **error);

/* The content budget shared by the packs of one extraction; USED only
 * grows (atomically). */
typedef struct
{
  guint64 limit; /* the signed "unpacked" */
  guint64 used;
} AbPackBudget;

/* Extracts the pack read from PACK_FD into the bare repo REPO_DFD (made by
 * ab_pack_prepare_repo()). LABEL names the pack in errors. On a refused
 * entry the objects already written stay in the temporary repo: the caller
 * removes it. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_pack_extract_fd (int repo_dfd, int pack_fd, const char *label,
                             AbPackBudget *budget, GCancellable *cancellable, GError **error);

/* Extracts the N_PACKS files PACKS (relative to PACKS_DFD) into REPO_DFD
 * on min(2, CPUs, N_PACKS) threads, within UNPACKED content bytes in all.
 * The first error wins: the other threads stop at their next entry, and it
 * is returned. CANCELLABLE stops them all. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_pack_extract_all (int repo_dfd, int packs_dfd, const char *const *packs,
                              guint n_packs, guint64 unpacked, GCancellable *cancellable,
                              GError **error);
