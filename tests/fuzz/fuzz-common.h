/* Shared by the fuzz targets (one fuzz-*.c per parser).
 *
 * Every target defines LLVMFuzzerTestOneInput() and calls fuzz_init()
 * first. A target's input is the file as abdeploy reads it (no selector
 * byte), so the seed corpora are real files. Parsers that only read from a
 * file are fed through a scratch directory on a tmpfs: the real load path,
 * ab_fs_read_at() included, is what gets fuzzed.
 *
 * Invariants checked beyond "no crash": GLib criticals abort (a
 * g_return_if_fail() hit on hostile input is a parser bug), and each
 * target aborts where the parser accepts something it cannot write back. */
#pragma once

#include <glib.h>
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* Once per process: criticals fatal, other log messages dropped. */
void fuzz_init (void);

/* A fresh directory, removed at exit; *out_dfd is an O_PATH-less dir fd. */
char *fuzz_scratch_dir (int *out_dfd);

/* Replaces DFD/NAME (through every hard link to it) with DATA. */
void fuzz_write_at (int dfd, const char *name, const void *data, size_t size);

/* Aborts with MESSAGE when COND is false, also in builds without asserts. */
#define fuzz_check(cond, ...) \
  do { if (!(cond)) fuzz_fail (G_STRLOC, __VA_ARGS__); } while (0)
G_NORETURN void fuzz_fail (const char *where, const char *format, ...) G_GNUC_PRINTF (2, 3);
