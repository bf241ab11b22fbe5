/* Backup and restore of everything that is not content-addressed: the
 * configuration and trusted keys (SYSROOT/etc/abdeploy), the state
 * (SYSROOT/abdeploy/state: slot records, history, transaction, verdicts),
 * the boot pointer and the refs of both slots.
 *
 * The archive is a tar archive (plain, gzip or zstd, chosen by the file
 * name): first the manifest abdeploy-backup.json (header, pointer, refs and
 * every member's path, type, mode, size and SHA-256), then the members at
 * their paths below the sysroot, last SHA256SUMS (sha256sum -c format: the
 * manifest and every regular member), so truncation or corruption anywhere
 * is detected. Restore also reads the archive of abdeploy 0.1.0 and 0.2.0:
 * one JSON document (the same manifest with each member's data in base64)
 * and a trailing checksum line. The "format" is the layout version of the
 * files held: 1 from a layout-1 sysroot, 2 from a layout-2 one. Restore
 * reads both: a format-1 archive is migrated as it is restored
 * (see ab-migrate.h), and its files become the kept copy of layout 1.
 * Invariant: restore changes nothing unless the whole archive parses,
 * every member passes the checks of ab_backup_parse_archive(), every file
 * reads back with the readers of every command, and every commit it names
 * is in the repo. Then it is all or nothing: the verified archive is kept
 * as SYSROOT/abdeploy/restore.pending before the first part is replaced
 * and removed after the last. While it exists, read-only commands report
 * it (status "restore_pending") and the next command that writes completes
 * the restore from it under the lock, or refuses when it does not verify.
 * A journal is never written for an archive that fails a check. */
#pragma once

#include <glib.h>
#include "ab-sysroot.h"
#include "ab-slots.h"

#define AB_BACKUP_ERROR (ab_backup_error_quark ())
/* The error domain of ab-backup (the codes of the enum below). */
GQuark ab_backup_error_quark (void);

typedef enum
{
  AB_BACKUP_ERROR_FAILED,
  AB_BACKUP_ERROR_CORRUPT,
  AB_BACKUP_ERROR_MISSING_COMMITS,
  AB_BACKUP_ERROR_PENDING,   /* an invalid restore journal refuses a writer */
  AB_BACKUP_ERROR_EXISTS,    /* the output exists and overwriting was not asked for */
  AB_BACKUP_ERROR_USAGE,     /* an output name with no archive suffix abdeploy writes */
} AbBackupError;

/* The archive kinds backup writes, chosen by the output's suffix. */
typedef enum
{
  AB_BACKUP_TAR,
  AB_BACKUP_TAR_GZ,
  AB_BACKUP_TAR_ZST,
} AbBackupCompression;

#define AB_BACKUP_SUFFIXES ".tar, .tar.gz or .tar.zst"
/* The first and the last member of a tar archive. */
#define AB_BACKUP_MANIFEST_NAME "abdeploy-backup.json"
#define AB_BACKUP_SUMS_NAME "SHA256SUMS"

/* The kind NAME's suffix asks for; FALSE (AB_BACKUP_ERROR_USAGE, naming
 * the accepted suffixes) for any other name. */
gboolean ab_backup_compression_for_name (const char *name, AbBackupCompression *out,
                                         GError **error) G_GNUC_WARN_UNUSED_RESULT;

/* The SHA256SUMS member (sha256sum -c format) of an archive whose
 * manifest has checksum MANIFEST_SHA256 and whose members are FILES
 * (AbMigrateFile; links are not listed). */
char *ab_backup_sums_text (const char *manifest_sha256, GPtrArray *files);

/* A tar archive of kind C: MANIFEST as the first member, FILES
 * (AbMigrateFile, regular files and links, paths relative) in order, then
 * SHA256SUMS. Built in memory. */
GBytes *ab_backup_tar_write (const char *manifest, GPtrArray *files, AbBackupCompression c,
                             GError **error) G_GNUC_WARN_UNUSED_RESULT;

/* Caps of the archive reader: anything larger is refused as corrupt. */
#define AB_BACKUP_MAX_ARCHIVE_SIZE (64 * 1024 * 1024)
#define AB_BACKUP_MAX_MEMBER_SIZE (16 * 1024 * 1024)
#define AB_BACKUP_MAX_MEMBERS 4096
#define AB_BACKUP_MAX_PATH 1024
#define AB_BACKUP_MAX_NAME 255

/* An archive read and checked in memory by ab_backup_parse_archive().
 * Invariant: every member is a regular file or (where a link is allowed:
 * directly in etc/abdeploy/trusted.gpg.d/ or etc/abdeploy/health/NAME.d/)
 * a symbolic link whose target stays beneath the sysroot; every path is
 * relative, below etc/abdeploy/ or abdeploy/state/, has no empty, "." or
 * ".." component, no component starting with ".", no control character,
 * and no member is the parent of another (nothing resolves through a
 * member); sizes and SHA-256 checksums match the manifest; every state file
 * and configuration file has a format this abdeploy reads; the slot records
 * agree with the refs and the boot pointer. */
typedef struct
{
  gint64 format;              /* format of the files as archived: 1 or 2 */
  char *bootloader;           /* backend name, one this abdeploy has */
  char *os;                   /* the os name of the archived sysroot.json */
  AbBootPointer pointer;
  char *refs[AB_N_SLOTS];     /* commit of ref abdeploy/slot/X, or NULL */
  GPtrArray *files;           /* AbMigrateFile: the members as archived */
  GPtrArray *restored;        /* AbMigrateFile: what restore writes (current formats) */
  AbSlotRecord *records[AB_N_SLOTS];  /* the restored slot records, or NULL */
} AbBackupArchive;

/* The backup archive reader: parses and checks DATA (LEN bytes) entirely
 * in memory; it opens, reads and writes no file. WHAT names the archive in
 * messages (NULL: "the backup"). Every refusal is AB_BACKUP_ERROR_CORRUPT
 * or AB_FORMAT_ERROR. Safe on any input (the fuzz target calls it). */
AbBackupArchive *ab_backup_parse_archive (const guint8 *data, gsize len, const char *what,
                                          GError **error) G_GNUC_WARN_UNUSED_RESULT;
/* Frees ARCHIVE and everything it owns; NULL is allowed. */
void ab_backup_archive_free (AbBackupArchive *archive);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AbBackupArchive, ab_backup_archive_free)

/* The second check, before any change: writes the files to restore into a
 * private scratch directory outside the sysroot and reads them back with
 * the readers every command uses (configuration, slot records, history,
 * transaction, verdict, update state). Removes the scratch directory. */
gboolean ab_backup_archive_check_readable (const AbBackupArchive *archive, const char *what,
                                           GError **error) G_GNUC_WARN_UNUSED_RESULT;

/* An archive of kind C of the sysroot's state, configuration, refs and
 * slot records, in memory; *out_files counts its members. Reports to
 * sysroot->events: "collect" (files archived). */
GBytes *ab_backup_build (AbSysroot *sysroot, AbBackupCompression c, guint *out_files,
                         GError **error) G_GNUC_WARN_UNUSED_RESULT;
/* ab_backup_build() of the kind OUTPUT's suffix names, written to OUTPUT
 * whole or not at all (tmp, fsync, rename, fsync of the directory): a
 * killed backup never leaves part of an archive under OUTPUT. An existing
 * OUTPUT is replaced only with FORCE (else AB_BACKUP_ERROR_EXISTS, also
 * when it appears while the archive is written). Reports to
 * sysroot->events: "collect", then "write" (bytes of the archive). */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_backup_create (AbSysroot *sysroot, const char *output, gboolean force,
                           guint *out_files, GError **error);
/* Works on a sysroot whose state is wrecked: only the layout version (1 or
 * 2) and the repo must be intact. Leaves a sysroot of the current layout. */
/* *OUT_NOTES: what the operator must know, one line each (a format-1
 * archive was migrated; a slot restored empty because its tree does not
 * hold the commit its record names); NULL-terminated. */
/* Reports to EVENTS (may be NULL): "check", "restore" (files out of those
 * the archive restores), "checkout" for each slot checked out again (files
 * out of the commit's). */
gboolean ab_backup_restore (const char *sysroot_path, const char *path, AbEventSink *events,
                            guint *out_files, char ***out_notes,
                            GError **error) G_GNUC_WARN_UNUSED_RESULT;

/* The journal of an unfinished restore, in SYSROOT/abdeploy. */
#define AB_BACKUP_PENDING_NAME AB_SYSROOT_RESTORE_JOURNAL

/* TRUE when SYSROOT/abdeploy holds a restore journal. Reads nothing else. */
gboolean ab_backup_is_pending (int sysroot_dfd);

/* Completes a restore that was interrupted (*out_finished TRUE), or does
 * nothing when none was. The caller holds the sysroot lock, LOCK_FD (the
 * recovery step, ab_recover(), from ab_sysroot_lock_for_recovery()). A journal that does not verify is
 * refused with AB_BACKUP_ERROR_PENDING and left as it is. */
gboolean ab_backup_finish_pending (int sysroot_dfd, const char *sysroot_path, int lock_fd,
                                   gboolean *out_finished, GError **error)
    G_GNUC_WARN_UNUSED_RESULT;
