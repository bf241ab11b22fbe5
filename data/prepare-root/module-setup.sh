#!/bin/bash
# dracut module "abdeploy": abdeploy's prepare-root step in a dracut initramfs.
#
# abdeploy installs this directory as dracut's modules.d/50abdeploy/
# (/usr/lib/dracut/modules.d, dracut.pc's dracutmodulesdir) and as
# $datadir/abdeploy/prepare-root; build the initramfs with it:
#   dracut --add abdeploy ...
#
# Invariants:
# - The module is never included on its own (check returns 255): only an
#   image that boots through abdeploy's bootloader script asks for it.
# - It adds one pre-pivot hook.  dracut has mounted root= on $NEWROOT by
#   then; the hook runs abdeploy-prepare-root --assemble "$NEWROOT", which
#   puts the booted slot's root on $NEWROOT (see that script for the layout)
#   or fails the boot with die.
#
# Not exercised by abdeploy's own tests (they boot a busybox initramfs that
# runs abdeploy-prepare-root as /init; the assembly code is the same).

check() {
    return 255
}

depends() {
    return 0
}

install() {
    inst_script "$moddir/abdeploy-prepare-root" /usr/sbin/abdeploy-prepare-root
    inst_multiple mount readlink mkdir cat
    inst_hook pre-pivot 50 "$moddir/abdeploy-pre-pivot.sh"
}
