/* "Did you mean ...?": the nearest known word to a mistyped one. */
#pragma once

#include <glib.h>

/* The Levenshtein distance between A and B (insertions, deletions and
 * substitutions of bytes, each costing 1). */
guint cli_edit_distance (const char *a, const char *b);

/* The word of CANDIDATES (NULL-terminated) closest to WORD, or NULL when
 * none is close: an edit distance of at most 2 that is at most half of
 * WORD's length, or else WORD being a prefix (3 bytes or more) of exactly
 * one candidate. Ties go to the candidate listed first. */
const char *cli_suggest (const char *word, const char *const *candidates);

/* ""; did you mean \"X\"?" for WORD, or "" when nothing is close. */
char *cli_did_you_mean (const char *word, const char *const *candidates);
