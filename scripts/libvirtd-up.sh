#!/usr/bin/env bash
# Start libvirtd (QEMU driver) without systemd, idempotently, and wait until qemu:///system answers.
# Safe to call when it is already running. Prints one line. Needs root and scripts/install-system.sh's packages.
set -euo pipefail
URI="qemu:///system"
TIMEOUT_S="${RIGHTSIZER_LIBVIRTD_TIMEOUT_S:-60}"
QEMU_CONF=/etc/libvirt/qemu.conf

die() { echo "libvirtd-up: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (it starts libvirtd); current uid $(id -u)"
command -v libvirtd >/dev/null || die "libvirtd not found; run scripts/install-system.sh first"

# libvirtd refuses to start without the libvirt-qemu account ("Failed to parse user 'libvirt-qemu'").
for g in libvirt-qemu kvm libvirt; do getent group "$g" >/dev/null || groupadd -r "$g"; done
getent passwd libvirt-qemu >/dev/null \
  || useradd -r -g libvirt-qemu -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu

# Set only our keys in qemu.conf, leaving every other line as it is.
mkdir -p /etc/libvirt
touch "$QEMU_CONF"
set_key() {  # set_key KEY VALUE (VALUE already quoted as qemu.conf wants it)
  local key="$1" value="$2"
  if grep -qE "^[[:space:]]*${key}[[:space:]]*=" "$QEMU_CONF"; then
    grep -qxF "${key} = ${value}" "$QEMU_CONF" \
      || sed -i -E "s|^[[:space:]]*${key}[[:space:]]*=.*|${key} = ${value}|" "$QEMU_CONF"
  else
    printf '%s = %s\n' "$key" "$value" >>"$QEMU_CONF"
  fi
}
set_key user '"root"'
set_key group '"root"'
set_key security_driver '"none"'

mkdir -p /var/log/libvirt /var/run/libvirt /var/lib/libvirt /var/cache/libvirt

alive() {  # alive PIDFILE NAME: the pid file names a live process called NAME
  local pid
  [ -s "$1" ] || return 1
  pid="$(cat "$1")"
  [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$2" ]
}

alive /var/run/virtlogd.pid virtlogd || virtlogd -d

started=0
if ! alive /var/run/libvirtd.pid libvirtd; then
  # This machine's vCPUs report different CPUID; pinning to one CPU avoids a QEMU capability re-probe on start.
  taskset -c 0 libvirtd -d
  started=1
fi

deadline=$(( $(date +%s) + TIMEOUT_S ))
until version="$(virsh -c "$URI" version 2>/dev/null)"; do
  [ "$(date +%s)" -lt "$deadline" ] \
    || die "no answer from $URI within ${TIMEOUT_S}s; see /var/log/libvirt/ and try 'libvirtd -v' in a shell"
  sleep 0.2
done

pid="$(cat /var/run/libvirtd.pid)"
if [ "$started" = 1 ]; then
  # Unpin every libvirtd thread once the capability probe is done (QEMU children get their own affinity).
  taskset -a -p -c "0-$(( $(nproc) - 1 ))" "$pid" >/dev/null
fi
lib_version="$(printf '%s\n' "$version" | sed -n 's/^Using library: libvirt //p')"
echo "libvirtd-up: $URI ready (libvirtd pid $pid, libvirt ${lib_version:-?}, $([ "$started" = 1 ] && echo started || echo already running))"
