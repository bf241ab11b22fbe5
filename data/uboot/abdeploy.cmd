# abdeploy.cmd - slot decision and boot of abdeploy's uboot backend.
#
# Built into abdeploy.scr (a legacy U-Boot script image) by
#   mkimage -A arm -T script -C none -n abdeploy -d abdeploy.cmd abdeploy.scr
# U-Boot's `source` checks the image's magic, CRCs and type (script) but not
# its architecture field, so the same abdeploy.scr runs on 32- and 64-bit ARM
# (and any other U-Boot); "-A arm" is only a label.
#
# Wiring it into an appliance image:
#   1. Install abdeploy.scr (from $datadir/abdeploy/uboot) where the board's
#      bootcmd finds a boot script, e.g. as /boot/boot.scr on the sysroot
#      filesystem for distro boot, or run it from bootcmd:
#        load mmc 0:2 ${scriptaddr} /boot/abdeploy.scr; source ${scriptaddr}
#   2. The fw_env.config used by abdeploy ([boot] uboot-env-config) must
#      describe the environment U-Boot was built with (CONFIG_ENV_OFFSET,
#      CONFIG_ENV_SIZE, CONFIG_ENV_OFFSET_REDUND).  Use a redundant
#      environment (two copies): U-Boot and libubootenv then write the older
#      copy and a power cut leaves the newer one intact.  A single copy is
#      rewritten in place; a power cut during that write loses the whole
#      environment and U-Boot falls back to its built-in defaults.
#   3. U-Boot needs the commands: test, setexpr, saveenv, load, and the boot
#      command below.
#
# Environment variables read (optional, set once on the device):
#   abdeploy_devtype  interface holding the sysroot filesystem; default
#                     ${devtype} (set by distro boot / bootflow)
#   abdeploy_devpart  DEV:PART of that filesystem; default
#                     ${devnum}:${distro_bootpart}
#   abdeploy_bootdir  directory holding a/ and b/; default /boot/abdeploy
#   abdeploy_boot     boot command: booti (default; arm64 Image; a gzipped
#                     Image needs kernel_comp_addr_r and kernel_comp_size) or
#                     bootz (32-bit zImage)
#   abdeploy_fdt      address of the device tree for the kernel; default
#                     ${fdtcontroladdr}, the tree U-Boot itself runs with
#   abdeploy_kargs    kernel arguments (root=..., console=...)
#   kernel_addr_r, ramdisk_addr_r  the board's standard load addresses
# Environment variables read, the boot pointer of docs/internals.md:
#   ABDEPLOY_PRIMARY, ABDEPLOY_A_STATE, ABDEPLOY_A_TRIES,
#   ABDEPLOY_B_STATE, ABDEPLOY_B_TRIES
# Environment variables written: ABDEPLOY_A_TRIES or ABDEPLOY_B_TRIES of the
#   picked slot when that slot is in trial (saveenv), and bootargs (not saved).
#
# Invariants (the same decision as data/grub/abdeploy-select.cfg):
# - A slot is bootable iff its state is "good", or "trial" with tries exactly
#   one of 1..9.  Any other state or tries value (missing, 0, garbage) is not
#   bootable.
# - ABDEPLOY_PRIMARY "b" makes b the primary; any other value (a, empty,
#   unset, garbage) makes a the primary.
# - Pick order: primary if bootable, else the other slot if bootable, else
#   the primary (last resort, booted without touching the environment).
# - Running this script is one boot attempt.  A trial slot is only picked
#   after its tries, lowered by one with setexpr, have been stored with
#   saveenv; the kernel is loaded later.  If saveenv fails, that slot counts
#   as not bootable for this attempt and the decision is taken again, so an
#   unwritable counter can never make a trial slot boot without bound.
# - The script's own variables (abd_*) are hush locals: saveenv stores the
#   environment as a whole, and the only variable this script changes
#   before it is the lowered tries.
# - Comparisons are written "x${VAR}" = "xVALUE" so that an empty or unset
#   variable is still one argument for `test`.

abd_devtype="${abdeploy_devtype}"
if test "x${abd_devtype}" = "x"; then abd_devtype="${devtype}"; fi
abd_devpart="${abdeploy_devpart}"
if test "x${abd_devpart}" = "x"; then abd_devpart="${devnum}:${distro_bootpart}"; fi
abd_bootdir="${abdeploy_bootdir}"
if test "x${abd_bootdir}" = "x"; then abd_bootdir=/boot/abdeploy; fi
abd_boot="${abdeploy_boot}"
if test "x${abd_boot}" = "x"; then abd_boot=booti; fi
abd_fdt="${abdeploy_fdt}"
if test "x${abd_fdt}" = "x"; then abd_fdt="${fdtcontroladdr}"; fi

# abd_X_ok = 1 iff slot X is bootable.
abd_a_ok=0
if test "x${ABDEPLOY_A_STATE}" = "xgood"; then abd_a_ok=1; fi
if test "x${ABDEPLOY_A_STATE}" = "xtrial"; then
  for abd_n in 1 2 3 4 5 6 7 8 9; do
    if test "x${ABDEPLOY_A_TRIES}" = "x${abd_n}"; then abd_a_ok=1; fi
  done
fi
abd_b_ok=0
if test "x${ABDEPLOY_B_STATE}" = "xgood"; then abd_b_ok=1; fi
if test "x${ABDEPLOY_B_STATE}" = "xtrial"; then
  for abd_n in 1 2 3 4 5 6 7 8 9; do
    if test "x${ABDEPLOY_B_TRIES}" = "x${abd_n}"; then abd_b_ok=1; fi
  done
fi

# Each round picks a slot and, for a trial slot, stores its lowered tries.
# A failed store clears that slot's abd_X_ok, so the third round at the
# latest picks without storing (last resort).
abd_done=0
for abd_round in 1 2 3; do
  if test "x${abd_done}" = "x0"; then
    if test "x${ABDEPLOY_PRIMARY}" = "xb"; then
      if test "x${abd_b_ok}" = "x1"; then abd_slot=b; abd_reason=primary
      elif test "x${abd_a_ok}" = "x1"; then abd_slot=a; abd_reason=fallback
      else abd_slot=b; abd_reason=last-resort
      fi
    else
      if test "x${abd_a_ok}" = "x1"; then abd_slot=a; abd_reason=primary
      elif test "x${abd_b_ok}" = "x1"; then abd_slot=b; abd_reason=fallback
      else abd_slot=a; abd_reason=last-resort
      fi
    fi
    abd_done=1
    if test "x${abd_slot}${abd_a_ok}${ABDEPLOY_A_STATE}" = "xa1trial"; then
      abd_was="${ABDEPLOY_A_TRIES}"
      setexpr ABDEPLOY_A_TRIES ${ABDEPLOY_A_TRIES} - 1
      if saveenv; then abd_saved=1; else abd_saved=0; fi
      if test "x${abd_saved}" = "x0"; then
        setenv ABDEPLOY_A_TRIES "${abd_was}"
        abd_a_ok=0
        abd_done=0
      fi
    fi
    if test "x${abd_slot}${abd_b_ok}${ABDEPLOY_B_STATE}" = "xb1trial"; then
      abd_was="${ABDEPLOY_B_TRIES}"
      setexpr ABDEPLOY_B_TRIES ${ABDEPLOY_B_TRIES} - 1
      if saveenv; then abd_saved=1; else abd_saved=0; fi
      if test "x${abd_saved}" = "x0"; then
        setenv ABDEPLOY_B_TRIES "${abd_was}"
        abd_b_ok=0
        abd_done=0
      fi
    fi
  fi
done

echo "abdeploy: booting slot ${abd_slot} (${abd_reason})"
setenv bootargs "abdeploy.slot=${abd_slot} ${abdeploy_kargs}"
if load ${abd_devtype} ${abd_devpart} ${kernel_addr_r} ${abd_bootdir}/${abd_slot}/vmlinuz; then
  if test -e ${abd_devtype} ${abd_devpart} ${abd_bootdir}/${abd_slot}/initramfs.img; then
    load ${abd_devtype} ${abd_devpart} ${ramdisk_addr_r} ${abd_bootdir}/${abd_slot}/initramfs.img
    ${abd_boot} ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${abd_fdt}
  else
    ${abd_boot} ${kernel_addr_r} - ${abd_fdt}
  fi
fi
echo "abdeploy: could not boot slot ${abd_slot} from ${abd_devtype} ${abd_devpart} ${abd_bootdir}"
