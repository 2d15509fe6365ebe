#!/usr/bin/env bash
# Install the Debian packages rightsizer needs (idempotent). Run as root on Debian 12.
#   libvirt daemon + QEMU (collector, actions, integration tests), headers to build libvirt-python,
#   Prometheus (scrape tests), Chromium (dashboard browser tests), busybox + a kernel for tiny test guests.
set -euo pipefail
PKGS=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients libvirt-dev pkg-config gcc
      qemu-system-x86 qemu-utils prometheus chromium busybox-static cpio gzip xz-utils)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-system: missing Debian packages (${missing[*]}); run as root or install them" >&2
    exit 2
  fi
  echo "install-system: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# libvirtd refuses to start without these accounts (see docs/rig.md).
for g in libvirt-qemu kvm libvirt; do getent group "$g" >/dev/null || groupadd -r "$g"; done
getent passwd libvirt-qemu >/dev/null || useradd -r -g libvirt-qemu -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu
echo "install-system: ok"
