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
#   rs.fs=DEV                       make an ext2 filesystem on /dev/DEV and mount it at /data (e.g. vda)
#   rs.agent=1                      load virtio_console and run the QEMU guest agent (qemu-ga) on the virtio-serial
#                                   port named org.qemu.guest_agent.0 (the domain needs that channel)
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
fs=
agent=0
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    rs.workload=*) workload="${arg#rs.workload=}" ;;
    rs.mem_mib=*) mem_mib="${arg#rs.mem_mib=}" ;;
    rs.disk_mib=*) disk_mib="${arg#rs.disk_mib=}" ;;
    rs.noballoon=1) noballoon=1 ;;
    rs.mem_pass_s=*) mem_pass_s="${arg#rs.mem_pass_s=}" ;;
    rs.swap=*) swap="${arg#rs.swap=}" ;;
    rs.fs=*) fs="${arg#rs.fs=}" ;;
    rs.agent=1) agent=1 ;;
  esac
done

# Debian builds virtio as modules; they must load in dependency order (see /etc/rs-modules).
while read -r mod; do
  [ -n "$mod" ] || continue
  if [ "$mod" = virtio_balloon ] && [ "$noballoon" = 1 ]; then continue; fi
  if [ "$mod" = virtio_console ] && [ "$agent" != 1 ]; then continue; fi
  case "$mod" in crc16|crc32c_generic|mbcache|jbd2|ext4) [ -n "$fs" ] || continue ;; esac  # ext2 is mounted by the ext4 driver
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

if [ -n "$fs" ]; then
  mkdir -p /data
  if mke2fs -q "/dev/$fs" >/dev/null && mount -t ext2 "/dev/$fs" /data; then
    echo "rs-init: ext2 on /dev/$fs at /data"
  else
    echo "rs-init: filesystem on /dev/$fs failed"
  fi
fi

start_agent() {  # no udev here: find the port by its name in sysfs; devtmpfs made /dev/vportNpM
  port=
  for _ in $(seq 50); do  # the host announces the ports shortly after virtio_console loads
    for f in /sys/class/virtio-ports/*/name; do
      [ -r "$f" ] && [ "$(cat "$f")" = org.qemu.guest_agent.0 ] && port="$(basename "$(dirname "$f")")"
    done
    [ -n "$port" ] && break
    usleep 100000
  done
  if [ -z "$port" ]; then
    echo "rs-init: no virtio-serial port org.qemu.guest_agent.0; guest agent not started"
    return
  fi
  if [ ! -e "/dev/$port" ]; then
    dev="$(cat "/sys/class/virtio-ports/$port/dev")"
    mknod "/dev/$port" c "${dev%:*}" "${dev#*:}"
  fi
  mkdir -p /var/run
  qemu-ga -m virtio-serial -p "/dev/$port" -t /var/run &
  echo "rs-init: guest agent on /dev/$port pid $!"
}
[ "$agent" = 1 ] && start_agent

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
