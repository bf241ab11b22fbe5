#!/bin/sh
# dracut pre-pivot hook of the "abdeploy" module (sourced by dracut): make the
# booted abdeploy slot the root that dracut switches into.  Without
# abdeploy.slot= on the command line this is not an abdeploy boot: do nothing.
if grep -q 'abdeploy\.slot=' /proc/cmdline; then
    /usr/sbin/abdeploy-prepare-root --assemble "${NEWROOT:-/sysroot}" ||
        die "abdeploy-prepare-root could not assemble the booted slot"
fi
