#!/usr/bin/env bash
# Build the tiny test guest (Debian kernel + busybox initramfs) into a cache outside git.
#   scripts/build-guest.sh                         build (or reuse) vmlinuz + initrd.img; print their paths
#   scripts/build-guest.sh disk PATH [MIB] [FMT]   create an empty disk image (qcow2 default, or raw)
# Cache: $RIGHTSIZER_GUEST_DIR (default /var/cache/rightsizer-guest). Idempotent: skips the work when the cached
# kernel is still the one linux-image-amd64 depends on and the init inputs are unchanged.
# Output (stdout): RIGHTSIZER_GUEST_KERNEL=... and RIGHTSIZER_GUEST_INITRD=... lines, shell-sourceable.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DIR="${RIGHTSIZER_GUEST_DIR:-/var/cache/rightsizer-guest}"
# Load order matters: each module needs the ones before it.
MODULES=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_balloon virtio_blk
         button evdev)
MODULE_PATHS=(drivers/virtio drivers/virtio drivers/virtio drivers/virtio drivers/virtio drivers/virtio drivers/block
              drivers/acpi drivers/input)

log() { echo "build-guest: $*" >&2; }
die() { echo "build-guest: $*" >&2; exit 1; }

if [ "${1:-}" = disk ]; then
  path="${2:?usage: build-guest.sh disk PATH [SIZE_MIB] [qcow2|raw]}"
  size_mib="${3:-64}"
  fmt="${4:-qcow2}"
  case "$fmt" in qcow2|raw) ;; *) die "disk format '$fmt' unknown; use qcow2 or raw" ;; esac
  mkdir -p "$(dirname "$path")"
  qemu-img create -q -f "$fmt" "$path" "${size_mib}M"
  echo "RIGHTSIZER_GUEST_DISK=$path"
  exit 0
fi

for tool in apt-get dpkg-deb cpio gzip busybox sha256sum; do
  command -v "$tool" >/dev/null || die "$tool not found; run scripts/install-system.sh first"
done
BUSYBOX="$(command -v busybox)"
file -L "$BUSYBOX" 2>/dev/null | grep -q 'dynamically linked' \
  && die "$BUSYBOX is dynamically linked; install busybox-static"

mkdir -p "$DIR"
kernel_pkg() {  # the versioned linux-image package the metapackage depends on
  apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -n1
}
pkg="$(kernel_pkg)"
if [ -z "$pkg" ] && [ ! -s "$DIR/kernel.pkg" ]; then
  log "apt lists have no linux-image-amd64; running apt-get update"
  apt-get update -qq >/dev/null
  pkg="$(kernel_pkg)"
fi
if [ -z "$pkg" ]; then
  [ -s "$DIR/kernel.pkg" ] || die "cannot find the kernel package linux-image-amd64 depends on (apt-cache depends)"
  pkg="$(cat "$DIR/kernel.pkg")"
  log "apt does not name a kernel; reusing cached $pkg"
fi

# 1. Kernel + modules, once per kernel package.
if [ "$(cat "$DIR/kernel.pkg" 2>/dev/null)" != "$pkg" ] || [ ! -s "$DIR/vmlinuz" ]; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  log "downloading $pkg"
  if ! (cd "$work" && apt-get download -q "$pkg" >/dev/null 2>&1); then
    if [ -s "$DIR/vmlinuz" ] && [ -s "$DIR/kernel.pkg" ]; then
      pkg="$(cat "$DIR/kernel.pkg")"
      log "apt-get download failed; keeping the cached $pkg"
      rm -rf "$work"
      trap - EXIT
    else
      die "apt-get download $pkg failed; check apt sources (apt-get update) and network"
    fi
  fi
fi
if [ "$(cat "$DIR/kernel.pkg" 2>/dev/null)" != "$pkg" ] || [ ! -s "$DIR/vmlinuz" ]; then
  dpkg-deb -x "$work"/"$pkg"_*.deb "$work/x"
  kver="$(ls "$work/x/lib/modules")"
  rm -rf "$DIR/modules.new"
  mkdir -p "$DIR/modules.new"
  for i in "${!MODULES[@]}"; do
    src="$work/x/lib/modules/$kver/kernel/${MODULE_PATHS[$i]}/${MODULES[$i]}.ko"
    [ -f "$src" ] || die "module ${MODULES[$i]} not found in $pkg (looked for $src)"
    cp "$src" "$DIR/modules.new/"
  done
  cp "$work/x/boot/vmlinuz-$kver" "$DIR/vmlinuz.new"
  rm -rf "$DIR/modules"
  mv "$DIR/modules.new" "$DIR/modules"
  mv "$DIR/vmlinuz.new" "$DIR/vmlinuz"
  echo "$pkg" >"$DIR/kernel.pkg"
  rm -rf "$work"
  trap - EXIT
fi

# 2. Initramfs, rebuilt when any input changes.
inputs="$( { echo "$pkg"; printf '%s\n' "${MODULES[@]}"; sha256sum "$HERE/guest/init.sh" "$HERE/guest/poweroff.sh" \
  "$BUSYBOX" | cut -d' ' -f1; } | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$DIR/initrd.inputs" 2>/dev/null)" != "$inputs" ] || [ ! -s "$DIR/initrd.img" ]; then
  root="$(mktemp -d)"
  trap 'rm -rf "$root"' EXIT
  mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,etc/acpi/PWRF,lib/modules}
  cp "$BUSYBOX" "$root/bin/busybox"
  ln -s busybox "$root/bin/sh"
  install -m 0755 "$HERE/guest/init.sh" "$root/init"
  install -m 0755 "$HERE/guest/poweroff.sh" "$root/etc/acpi/PWRF/00000080"
  cp "$DIR"/modules/*.ko "$root/lib/modules/"
  printf '%s\n' "${MODULES[@]}" >"$root/etc/rs-modules"
  # The kernel opens /dev/console for PID 1 before /init can mount devtmpfs.
  mknod -m 600 "$root/dev/console" c 5 1 2>/dev/null || true
  (cd "$root" && find . -print0 | cpio --null -o -H newc --quiet | gzip -9) >"$DIR/initrd.img.new"
  mv "$DIR/initrd.img.new" "$DIR/initrd.img"
  echo "$inputs" >"$DIR/initrd.inputs"
  rm -rf "$root"
  trap - EXIT
  log "built $DIR/initrd.img for $pkg"
fi

echo "RIGHTSIZER_GUEST_KERNEL=$DIR/vmlinuz"
echo "RIGHTSIZER_GUEST_INITRD=$DIR/initrd.img"
