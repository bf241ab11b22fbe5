/* Small helpers shared by every module: fd cleanup, slot names, time. */
#pragma once

#include <glib.h>
#include <unistd.h>

/* Progress of a transfer: objects done of the total, bytes moved so far. */
typedef void (*AbProgressFunc) (guint64 objects_done, guint64 objects_total, guint64 bytes,
                                gpointer user_data);

/* A file descriptor closed when it leaves scope; -1 means "none". */
static inline void
ab_close_fdp (int *fdp)
{
  if (*fdp >= 0)
    {
      int errsv = errno;
      (void) close (*fdp);
      errno = errsv;
    }
}
#define ab_autofd __attribute__ ((cleanup (ab_close_fdp))) int

/* Hand the fd out of an ab_autofd variable. */
static inline int
ab_steal_fd (int *fdp)
{
  int fd = *fdp;
  *fdp = -1;
  return fd;
}

/* Calls EXPR and deliberately does not act on its result: a best-effort
 * cleanup on a path that already reports an error, or an outcome that
 * decides nothing. The one way to drop the result of a function marked
 * G_GNUC_WARN_UNUSED_RESULT (a (void) cast does not silence GCC). */
#define AB_IGNORE_RESULT(expr) \
  G_STMT_START { if (expr) {} } G_STMT_END

/* Slots are the integers 0 ("a") and 1 ("b"); AB_SLOT_NONE is "no slot". */
typedef enum
{
  AB_SLOT_NONE = -1,
  AB_SLOT_A = 0,
  AB_SLOT_B = 1,
} AbSlot;

#define AB_N_SLOTS 2
/* The most trial boots a slot is given: one digit, as boot counters, the
 * grubenv and the U-Boot script read it. */
#define AB_MAX_TRIES 9

/* The name of SLOT ("a", "b"), or NULL for AB_SLOT_NONE. */
const char *ab_slot_name (AbSlot slot);
/* The slot named NAME, or AB_SLOT_NONE. */
AbSlot ab_slot_from_name (const char *name);
/* The slot that is not SLOT. */
AbSlot ab_slot_other (AbSlot slot);

/* Current UTC time as ISO 8601 ("2026-11-20T23:00:00Z"). */
char *ab_now_iso8601 (void);

/* Whether S is a commit checksum: 64 lower-case hex digits. */
gboolean ab_is_commit_checksum (const char *s);
