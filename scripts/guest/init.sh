#!/bin/busybox sh
# PID 1 of the rightsizer test guest (busybox initramfs, direct kernel boot).
# Kernel command line:
#   rs.workload=busy|idle|mem|disk  busy: spin one CPU; idle: sleep; mem: fill rs.mem_mib MiB of RAM and hold;
#                                   disk: dd zeros to /dev/vda with O_DIRECT, rs.disk_mib MiB then 1 s pause, looping
#   rs.mem_mib=N                    MiB the mem workload touches (default 64)
#   rs.mem_pass_s=N                 mem: read the whole working set again every N s (default 0: fill and hold), so
#                                   pages the balloon pushed out come back in (swap-in) while squeezed
#   rs.swap=DEV                     mkswap + swapon /dev/DEV before the workload starts (e.g. vda); the memory
#                                   workload's tmpfs pages can then be swapped out under balloon pressure
#   rs.disk_mib=N                   MiB the disk workload writes per second at most (default 4; keeps TCG CPU low)
#   rs.noballoon=1                  do not load virtio_balloon (the guest then reports no memory stats)
# Prints "rs-init: ready workload=W" on the console once the drivers are loaded.
/bin/busybox mkdir -p /proc /sys /dev /tmp /bin /sbin /usr/bin /usr/sbin
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
/bin/busybox --install -s
exec </dev/console >/dev/console 2>&1
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

workload=idle
mem_mib=64
disk_mib=4
noballoon=0
mem_pass_s=0
swap=
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    rs.workload=*) workload="${arg#rs.workload=}" ;;
    rs.mem_mib=*) mem_mib="${arg#rs.mem_mib=}" ;;
    rs.disk_mib=*) disk_mib="${arg#rs.disk_mib=}" ;;
    rs.noballoon=1) noballoon=1 ;;
    rs.mem_pass_s=*) mem_pass_s="${arg#rs.mem_pass_s=}" ;;
    rs.swap=*) swap="${arg#rs.swap=}" ;;
  esac
done

# Debian builds virtio as modules; they must load in dependency order (see /etc/rs-modules).
while read -r mod; do
  [ -n "$mod" ] || continue
  if [ "$mod" = virtio_balloon ] && [ "$noballoon" = 1 ]; then continue; fi
  insmod "/lib/modules/$mod.ko" || echo "rs-init: insmod $mod failed"
done </etc/rs-modules

# ACPI power button (virsh shutdown) -> clean power-off; busybox acpid runs /etc/acpi/PWRF/00000080.
[ -e /dev/input/event0 ] && acpid -c /etc/acpi -l /dev/console  # default log /var/log/acpid.log does not exist: acpid would exit

if [ -n "$swap" ]; then
  if mkswap "/dev/$swap" >/dev/null && swapon "/dev/$swap"; then
    echo "rs-init: swap on /dev/$swap"
  else
    echo "rs-init: swap on /dev/$swap failed"
  fi
fi

echo "rs-init: ready workload=$workload"
case "$workload" in
  busy)
    while :; do :; done
    ;;
  mem)
    # /tmp is on the initramfs root (tmpfs), so these pages are swappable, unlike ramfs
    dd if=/dev/zero of=/tmp/rs-mem bs=1M count="$mem_mib" 2>/dev/null
    echo "rs-init: holding ${mem_mib} MiB"
    if [ "$mem_pass_s" -gt 0 ] 2>/dev/null; then
      while :; do cat /tmp/rs-mem >/dev/null; sleep "$mem_pass_s"; done &
    fi
    ;;
  disk)
    while :; do dd if=/dev/zero of=/dev/vda oflag=direct bs=64k count=$((disk_mib * 16)) 2>/dev/null; sleep 1; done &
    ;;
esac
while :; do sleep 3600; done
