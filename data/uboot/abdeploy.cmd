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
#      Board settings (the abdeploy_* variables below) go either into the
#      saved environment or, as hush variables, in front of this script:
#        cat board.cmd abdeploy.cmd > boot.cmd
#        mkimage -A arm -T script -C none -n boot -d boot.cmd boot.scr
#   2. Where the environment lives:
#      - U-Boot's own environment (CONFIG_ENV_IS_IN_MMC, _IN_SPI_FLASH, ...,
#        and CONFIG_ENV_IS_IN_FAT as on a Raspberry Pi): leave
#        abdeploy_envfile unset; the script stores with saveenv.
#      - A U-Boot without a writable environment (CONFIG_ENV_IS_NOWHERE,
#        e.g. Debian's qemu-x86 build): set abdeploy_envfile (and
#        abdeploy_envfile_redund) to files on a FAT partition.  The script
#        imports them at its start (load + env import -c) and stores with
#        env export + fatwrite, in the format libubootenv reads and writes.
#      Either way, the fw_env.config used by abdeploy ([boot]
#      uboot-env-config) must describe the same copies and size
#      (CONFIG_ENV_OFFSET, CONFIG_ENV_SIZE, CONFIG_ENV_OFFSET_REDUND, or the
#      two files).  Use a redundant environment (two copies): U-Boot, this
#      script and libubootenv then write the older copy and a power cut
#      leaves the newer one intact.  A single copy is rewritten in place; a
#      power cut during that write loses the whole environment and U-Boot
#      falls back to its built-in defaults (tests/vm shows both).
#   3. U-Boot needs the commands: test, load, the boot command below, and
#      saveenv, or (environment files) env import/export, fatwrite, itest,
#      mw and cp.  setexpr is not needed.
#
# Variables read (optional; set once on the device or in front of the
# script; the ones that locate files must be in the running environment,
# the others may also come from the imported environment file):
#   abdeploy_devtype  interface holding the kernels; default ${devtype}
#                     (set by distro boot / bootflow)
#   abdeploy_devpart  DEV:PART of that filesystem; default
#                     ${devnum}:${distro_bootpart}
#   abdeploy_bootdir  directory holding a/ and b/; default /boot/abdeploy
#                     (/abdeploy when the partition is the sysroot's /boot)
#   abdeploy_boot     boot command: booti (default; arm64 Image; a gzipped
#                     Image needs kernel_comp_addr_r and kernel_comp_size),
#                     bootz (32-bit zImage) or zboot (x86 bzImage)
#   abdeploy_fdt      address of the device tree for the kernel; default
#                     ${fdtcontroladdr}, the tree U-Boot itself runs with
#   abdeploy_kargs    kernel arguments (root=..., console=...)
#   abdeploy_envfile  environment file on a FAT partition (see 2.); unset:
#                     U-Boot's own environment and saveenv
#   abdeploy_envfile_redund  its second copy (redundant layout)
#   abdeploy_envpart  DEV:PART of the FAT partition holding them, on
#                     abdeploy_devtype; default ${devnum}:${distro_bootpart}
#   abdeploy_envsize  size of each copy, as in fw_env.config; default
#                     0x4000; with two copies one of 0x2000, 0x4000, 0x8000,
#                     0x10000, 0x20000, 0x40000
#   kernel_addr_r, ramdisk_addr_r  the board's standard load addresses (also
#                     the scratch memory of the environment files, which are
#                     done with before the kernel is loaded)
# Environment variables read, the boot pointer of docs/internals.md:
#   ABDEPLOY_PRIMARY, ABDEPLOY_A_STATE, ABDEPLOY_A_TRIES,
#   ABDEPLOY_B_STATE, ABDEPLOY_B_TRIES
# Environment variables written: ABDEPLOY_A_TRIES or ABDEPLOY_B_TRIES of the
#   picked slot when that slot is in trial (saveenv, or the environment
#   file), and bootargs (not saved).  Like saveenv, a store writes the
#   whole environment, the variables distro boot set included (filesize
#   excepted).
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
#   after its tries, lowered by one (a table, not setexpr), have been
#   stored; the kernel is loaded later.  If the store fails, that slot
#   counts as not bootable for this attempt and the decision is taken
#   again, so an unwritable counter can never make a trial slot boot
#   without bound.
# - With environment files, a copy with a bad CRC is never imported; of
#   two valid copies only the current one (flags, as U-Boot and
#   libubootenv decide) is, and a store rewrites the other one.
# - The script's own variables (abd_*) are hush locals, never stored: a
#   store writes the environment as a whole, and the only variable this
#   script changes before it is the lowered tries.
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
abd_envfile="${abdeploy_envfile}"
abd_envfile2="${abdeploy_envfile_redund}"
abd_envpart="${abdeploy_envpart}"
if test "x${abd_envpart}" = "x"; then abd_envpart="${devnum}:${distro_bootpart}"; fi
abd_envsize="${abdeploy_envsize}"
if test "x${abd_envsize}" = "x"; then abd_envsize=0x4000; fi
# Scratch memory for the environment: the kernel's load address (the kernel
# is loaded after the environment is done with) and, for one flags byte,
# the initramfs's.
abd_ea="${kernel_addr_r}"
abd_eb="${ramdisk_addr_r}"
# A redundant copy is CRC (4 bytes), flags (1), data (SIZE - 5): abd_es1 is
# SIZE - 1, abd_es5 SIZE - 5 (no setexpr: the supported sizes are listed).
abd_es1=
if test "x${abd_envsize}" = "x0x2000"; then abd_es1=0x1fff; abd_es5=0x1ffb; fi
if test "x${abd_envsize}" = "x0x4000"; then abd_es1=0x3fff; abd_es5=0x3ffb; fi
if test "x${abd_envsize}" = "x0x8000"; then abd_es1=0x7fff; abd_es5=0x7ffb; fi
if test "x${abd_envsize}" = "x0x10000"; then abd_es1=0xffff; abd_es5=0xfffb; fi
if test "x${abd_envsize}" = "x0x20000"; then abd_es1=0x1ffff; abd_es5=0x1fffb; fi
if test "x${abd_envsize}" = "x0x40000"; then abd_es1=0x3ffff; abd_es5=0x3fffb; fi
abd_redund=0
if test "x${abd_envfile}" != "x" && test "x${abd_envfile2}" != "x"; then
  abd_redund=1
  if test "x${abd_es1}" = "x"; then
    echo "abdeploy: abdeploy_envsize ${abd_envsize} is not one of 0x2000 0x4000 0x8000 0x10000 0x20000 0x40000; using ${abd_envfile} alone"
    abd_redund=0
  fi
fi

# An environment kept in files (abd_envfile[, abd_envfile2]) is imported
# over the running one: the built-in defaults stay for variables the file
# does not hold.  Nothing valid to import (no file, bad CRC) leaves the
# pointer variables unset: both slots are not bootable, and the primary "a"
# boots as the last resort.
#
# Redundant layout (libubootenv's and U-Boot's CONFIG_ENV_REDUNDANT format):
# a copy is valid iff its CRC matches; of two valid copies the one with the
# higher flags byte is current (255 then 0 counts as 0 being newer); a
# store writes the other copy with the current flags + 1.  A copy is
# loaded so that its CRC sits right before its data ("env import -c"'s
# format): bytes 1.. at abd_ea, then bytes 0..3 over the first four.
# "env import -c ... abd_probe" checks a CRC without importing anything.
abd_envuse=0
abd_envwrite="${abd_envfile}"
abd_envflag=0x01
if test "x${abd_redund}" = "x1"; then
  abd_ok1=0
  if load ${abd_devtype} ${abd_envpart} ${abd_ea} ${abd_envfile} ${abd_es1} 1 && load ${abd_devtype} ${abd_envpart} ${abd_ea} ${abd_envfile} 4 0 && env import -c ${abd_ea} ${abd_es1} abd_probe; then
    abd_ok1=1
  fi
  abd_ok2=0
  if load ${abd_devtype} ${abd_envpart} ${abd_ea} ${abd_envfile2} ${abd_es1} 1 && load ${abd_devtype} ${abd_envpart} ${abd_ea} ${abd_envfile2} 4 0 && env import -c ${abd_ea} ${abd_es1} abd_probe; then
    abd_ok2=1
  fi
  if test "x${abd_ok1}${abd_ok2}" = "x10"; then abd_envuse=1; fi
  if test "x${abd_ok1}${abd_ok2}" = "x01"; then abd_envuse=2; fi
  if test "x${abd_ok1}${abd_ok2}" = "x11"; then
    load ${abd_devtype} ${abd_envpart} ${abd_ea} ${abd_envfile} 1 4
    load ${abd_devtype} ${abd_envpart} ${abd_eb} ${abd_envfile2} 1 4
    if itest.b *${abd_ea} == 0xff && itest.b *${abd_eb} == 0x00; then abd_envuse=2
    elif itest.b *${abd_eb} == 0xff && itest.b *${abd_ea} == 0x00; then abd_envuse=1
    elif itest.b *${abd_eb} > *${abd_ea}; then abd_envuse=2
    else abd_envuse=1
    fi
    if test "x${abd_envuse}" = "x2"; then cp.b ${abd_eb} ${abd_ea} 1; fi
  elif test "x${abd_envuse}" = "x1"; then
    load ${abd_devtype} ${abd_envpart} ${abd_ea} ${abd_envfile} 1 4
  elif test "x${abd_envuse}" = "x2"; then
    load ${abd_devtype} ${abd_envpart} ${abd_ea} ${abd_envfile2} 1 4
  fi
  # abd_envflag: the current copy's flags (at abd_ea) + 1; the list ends
  # with 0x00, so 0xff + 1 wraps to 0x00.
  if test "x${abd_envuse}" != "x0"; then
    abd_hit=0
    for abd_v in 0x00 0x01 0x02 0x03 0x04 0x05 0x06 0x07 0x08 0x09 0x0a 0x0b 0x0c 0x0d 0x0e 0x0f 0x10 0x11 0x12 0x13 0x14 0x15 0x16 0x17 0x18 0x19 0x1a 0x1b 0x1c 0x1d 0x1e 0x1f 0x20 0x21 0x22 0x23 0x24 0x25 0x26 0x27 0x28 0x29 0x2a 0x2b 0x2c 0x2d 0x2e 0x2f 0x30 0x31 0x32 0x33 0x34 0x35 0x36 0x37 0x38 0x39 0x3a 0x3b 0x3c 0x3d 0x3e 0x3f 0x40 0x41 0x42 0x43 0x44 0x45 0x46 0x47 0x48 0x49 0x4a 0x4b 0x4c 0x4d 0x4e 0x4f 0x50 0x51 0x52 0x53 0x54 0x55 0x56 0x57 0x58 0x59 0x5a 0x5b 0x5c 0x5d 0x5e 0x5f 0x60 0x61 0x62 0x63 0x64 0x65 0x66 0x67 0x68 0x69 0x6a 0x6b 0x6c 0x6d 0x6e 0x6f 0x70 0x71 0x72 0x73 0x74 0x75 0x76 0x77 0x78 0x79 0x7a 0x7b 0x7c 0x7d 0x7e 0x7f 0x80 0x81 0x82 0x83 0x84 0x85 0x86 0x87 0x88 0x89 0x8a 0x8b 0x8c 0x8d 0x8e 0x8f 0x90 0x91 0x92 0x93 0x94 0x95 0x96 0x97 0x98 0x99 0x9a 0x9b 0x9c 0x9d 0x9e 0x9f 0xa0 0xa1 0xa2 0xa3 0xa4 0xa5 0xa6 0xa7 0xa8 0xa9 0xaa 0xab 0xac 0xad 0xae 0xaf 0xb0 0xb1 0xb2 0xb3 0xb4 0xb5 0xb6 0xb7 0xb8 0xb9 0xba 0xbb 0xbc 0xbd 0xbe 0xbf 0xc0 0xc1 0xc2 0xc3 0xc4 0xc5 0xc6 0xc7 0xc8 0xc9 0xca 0xcb 0xcc 0xcd 0xce 0xcf 0xd0 0xd1 0xd2 0xd3 0xd4 0xd5 0xd6 0xd7 0xd8 0xd9 0xda 0xdb 0xdc 0xdd 0xde 0xdf 0xe0 0xe1 0xe2 0xe3 0xe4 0xe5 0xe6 0xe7 0xe8 0xe9 0xea 0xeb 0xec 0xed 0xee 0xef 0xf0 0xf1 0xf2 0xf3 0xf4 0xf5 0xf6 0xf7 0xf8 0xf9 0xfa 0xfb 0xfc 0xfd 0xfe 0xff 0x00; do
      if test "x${abd_hit}" = "x1"; then abd_envflag="${abd_v}"; abd_hit=2; fi
      if test "x${abd_hit}" = "x0" && itest.b *${abd_ea} == ${abd_v}; then abd_hit=1; fi
    done
  fi
  abd_envread="${abd_envfile}"
  if test "x${abd_envuse}" = "x2"; then abd_envread="${abd_envfile2}"; else abd_envwrite="${abd_envfile2}"; fi
  if test "x${abd_envuse}" != "x0"; then
    load ${abd_devtype} ${abd_envpart} ${abd_ea} ${abd_envread} ${abd_es1} 1
    load ${abd_devtype} ${abd_envpart} ${abd_ea} ${abd_envread} 4 0
    env import -c ${abd_ea} ${abd_es1}
    echo "abdeploy: environment imported from ${abd_envread}"
  else
    echo "abdeploy: neither ${abd_envfile} nor ${abd_envfile2} holds a valid environment"
  fi
elif test "x${abd_envfile}" != "x"; then
  if load ${abd_devtype} ${abd_envpart} ${abd_ea} ${abd_envfile} && env import -c ${abd_ea} ${abd_envsize}; then
    abd_envuse=1
    echo "abdeploy: environment imported from ${abd_envfile}"
  else
    echo "abdeploy: ${abd_envfile} holds no valid environment (missing, or bad CRC)"
  fi
fi

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
    # abd_was: the picked trial slot's tries; abd_less: one less (a table,
    # not setexpr, which many U-Boot builds lack).
    abd_was=
    if test "x${abd_slot}${abd_a_ok}${ABDEPLOY_A_STATE}" = "xa1trial"; then
      abd_was="${ABDEPLOY_A_TRIES}"
    fi
    if test "x${abd_slot}${abd_b_ok}${ABDEPLOY_B_STATE}" = "xb1trial"; then
      abd_was="${ABDEPLOY_B_TRIES}"
    fi
    if test "x${abd_was}" != "x"; then
      abd_prev=0
      for abd_n in 1 2 3 4 5 6 7 8 9; do
        if test "x${abd_was}" = "x${abd_n}"; then abd_less="${abd_prev}"; fi
        abd_prev="${abd_n}"
      done
      if test "x${abd_slot}" = "xa"; then setenv ABDEPLOY_A_TRIES "${abd_less}"; fi
      if test "x${abd_slot}" = "xb"; then setenv ABDEPLOY_B_TRIES "${abd_less}"; fi
      # The store.  "filesize" is set by every export: it is removed
      # first, so that two exports of one environment are identical.
      abd_saved=0
      if test "x${abd_envfile}" = "x"; then
        if saveenv; then abd_saved=1; fi
      elif test "x${abd_redund}" = "x1"; then
        setenv filesize
        if env export -c -s ${abd_es1} ${abd_ea} && fatwrite ${abd_devtype} ${abd_envpart} ${abd_ea} ${abd_envwrite} 4 0 && mw.b ${abd_ea} ${abd_envflag} && fatwrite ${abd_devtype} ${abd_envpart} ${abd_ea} ${abd_envwrite} 1 4 && setenv filesize && env export -b -s ${abd_es5} ${abd_ea} && fatwrite ${abd_devtype} ${abd_envpart} ${abd_ea} ${abd_envwrite} ${abd_es5} 5; then
          abd_saved=1
        fi
      else
        setenv filesize
        if env export -c -s ${abd_envsize} ${abd_ea} && fatwrite ${abd_devtype} ${abd_envpart} ${abd_ea} ${abd_envfile} ${abd_envsize}; then
          abd_saved=1
        fi
      fi
      if test "x${abd_saved}" = "x0"; then
        echo "abdeploy: could not store the tries of slot ${abd_slot}; not booting it as a trial"
        if test "x${abd_slot}" = "xa"; then setenv ABDEPLOY_A_TRIES "${abd_was}"; abd_a_ok=0; fi
        if test "x${abd_slot}" = "xb"; then setenv ABDEPLOY_B_TRIES "${abd_was}"; abd_b_ok=0; fi
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
    if test "x${abd_boot}" = "xzboot"; then
      zboot ${kernel_addr_r} 0 ${ramdisk_addr_r} ${filesize}
    else
      ${abd_boot} ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${abd_fdt}
    fi
  elif test "x${abd_boot}" = "xzboot"; then
    zboot ${kernel_addr_r}
  else
    ${abd_boot} ${kernel_addr_r} - ${abd_fdt}
  fi
fi
echo "abdeploy: could not boot slot ${abd_slot} from ${abd_devtype} ${abd_devpart} ${abd_bootdir}"
