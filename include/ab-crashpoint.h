/* Fault injection for the crash tests.
 *
 * ab_crash_point() marks a moment between two file-system steps. With the
 * build option crash_points enabled:
 *   ABDEPLOY_CRASH_TRACE=FILE  appends the name of every point reached;
 *   ABDEPLOY_CRASH_AT=N        SIGKILLs the process at the N-th point reached;
 *   ABDEPLOY_CRASH_AT=NAME     ... at the first point called NAME.
 * Without the environment variables it does nothing. */
#pragma once

/* A named crash point (docs/internals.md): with ABDEPLOY_CRASH_AT naming it
 * (or its index) the process kills itself here. Does nothing in builds
 * without crash points. */
void ab_crash_point (const char *name);
