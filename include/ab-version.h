/* Version precedence: the one place where abdeploy orders release
 * versions (abdeploy(8), VERSIONS).
 *
 * - A version that is valid SemVer 2.0.0 (MAJOR.MINOR.PATCH[-PRE][+BUILD])
 *   is ordered by SemVer precedence: a pre-release ranks below its
 *   release; numeric identifiers compare as numbers of any length,
 *   alphanumeric ones in ASCII order, numeric below alphanumeric; more
 *   pre-release identifiers rank higher when all before are equal. Build
 *   metadata is ignored.
 * - Any other string falls back to a natural order: cut into runs of
 *   digits and runs of other bytes, digit runs compare as numbers (any
 *   length, leading zeros ignored), other runs in ASCII order, a digit
 *   run ranks below another run, and a version that is a prefix of the
 *   other (in runs) ranks lower.
 * - Every SemVer version ranks above every version that is not SemVer.
 * - NULL (no version) ranks below everything.
 *
 * Invariant: ab_version_compare() is a total preorder (reflexive,
 * transitive), so it can sort; ab_version_order() refines its ties by the
 * bytes of the strings into a total order, for a deterministic choice
 * among versions of equal precedence. Comparisons neither allocate nor
 * overflow, whatever the input. */
#pragma once

#include <glib.h>

/* Whether V is a valid SemVer 2.0.0 version. */
gboolean ab_version_is_semver (const char *v);

/* Whether version V is a pre-release (abdeploy(8), PINS): SemVer with a
 * pre-release part; otherwise a '-', '~' or a letter right after the
 * leading run of dot-separated numbers ("1.4rc1", "1.4-beta", "1.4~rc1"). */
gboolean ab_version_is_prerelease (const char *v);

/* Whether version V follows PIN (abdeploy(8), PINS): V equals PIN, or,
 * unless PIN is a full SemVer version (an exact pin), V continues PIN with
 * a '.' ("1.4" -> "1.4.3", "1" -> "1.9.0"). A pre-release V follows a pin
 * other than itself only when PIN names a pre-release ("2.1.0-rc" ->
 * "2.1.0-rc.2"). */
gboolean ab_version_follows_pin (const char *v, const char *pin);

/* Whether PIN is exact: a full SemVer version, which only that version
 * follows. Every other pin rolls (follows the newest that continues it). */
gboolean ab_version_pin_is_exact (const char *pin);

/* <0, 0 or >0 as A has lower, equal or higher precedence than B. */
int ab_version_compare (const char *a, const char *b);

/* ab_version_compare(), ties broken by strcmp(): 0 only for equal strings. */
int ab_version_order (const char *a, const char *b);

/* The distance from OLDER to NEWER in MAJOR.MINOR: when both are SemVer,
 * or both start with DIGITS.DIGITS, and NEWER's major is not below
 * OLDER's. OUT_MAJORS is the difference of the majors; OUT_MINORS that of
 * the minors when the majors are equal (0 otherwise, and never negative).
 * FALSE (outputs 0) when they cannot be counted that way or a number does
 * not fit 64 bits. */
gboolean ab_version_gap (const char *older, const char *newer, guint64 *out_majors,
                         guint64 *out_minors);
