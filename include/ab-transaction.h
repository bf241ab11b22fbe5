/* The update transaction: SYSROOT/abdeploy/state/transaction.json, one at a
 * time, rewritten whole (tmp+fsync+rename) at every phase change. */
#pragma once

#include <glib.h>

#define AB_TRANSACTION_ERROR (ab_transaction_error_quark ())
/* The error domain of ab-transaction (the codes of the enum below). */
GQuark ab_transaction_error_quark (void);

typedef enum
{
  AB_TRANSACTION_ERROR_FORMAT,
} AbTransactionError;

typedef enum
{
  AB_PHASE_CREATED,
  AB_PHASE_DOWNLOADING,
  AB_PHASE_DOWNLOADED,
  AB_PHASE_VERIFIED,
  AB_PHASE_APPLYING,
  AB_PHASE_APPLIED,
  AB_PHASE_FAILED,
  AB_PHASE_ABANDONED,
} AbPhase;

typedef struct
{
  char *id;
  char *channel;
  char *version;
  char *commit;
  char *from_commit;   /* installed commit when it began, or NULL */
  gboolean use_delta;
  gboolean activate;
  AbPhase phase;
  AbPhase failed_in;   /* the phase that failed (phase == FAILED) */
  char *reason;        /* why it failed, or NULL */
  gboolean retryable;
  guint attempts;
  char *created_at;
  char *updated_at;
} AbTransaction;

/* The name of PHASE as transaction.json writes it. */
const char *ab_phase_name (AbPhase phase);
/* Frees T and everything it owns; NULL is allowed. */
void ab_transaction_free (AbTransaction *t);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AbTransaction, ab_transaction_free)

/* A new transaction (phase created, a random id, activate set) for installing
 * VERSION (COMMIT) of CHANNEL over FROM_COMMIT; nothing is written yet. */
AbTransaction *ab_transaction_new (const char *channel, const char *version, const char *commit,
                                   const char *from_commit);
/* *out NULL when there is none. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_transaction_load (int state_dfd, AbTransaction **out, GError **error);
/* Sets the phase, stamps updated_at and writes the file. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_transaction_set_phase (int state_dfd, gint64 format, AbTransaction *t, AbPhase phase, GError **error);
/* Marks T failed with REASON (keeping the phase it failed in) and writes it. */
G_GNUC_WARN_UNUSED_RESULT
gboolean ab_transaction_fail (int state_dfd, gint64 format, AbTransaction *t, const char *reason,
                              gboolean retryable, GError **error);
/* Whether the transaction still has work to do (not applied/abandoned). */
gboolean ab_transaction_is_open (const AbTransaction *t);
