#!/usr/bin/env bash
# Build the tiny test guest (Debian kernel + busybox initramfs) into a cache outside git.
#   scripts/build-guest.sh                         build (or reuse) vmlinuz, initrd.img, initrd-agent.img; print paths
#   scripts/build-guest.sh disk PATH [MIB] [FMT]   create an empty disk image (qcow2 default, or raw)
# Cache: $RIGHTSIZER_GUEST_DIR (default /var/cache/rightsizer-guest). Idempotent: skips the work when the cached
# kernel is still the one linux-image-amd64 depends on and the init inputs are unchanged.
# initrd-agent.img is initrd.img with a second cpio archive appended (the kernel unpacks both): the QEMU guest
# agent (qemu-ga from Debian qemu-guest-agent, installed on the host by install-system.sh) with the libraries it
# links and the loader, virtio_console and the ext2 modules. Only guests that need them boot it, so the others
# unpack no more than before.
# Output (stdout): RIGHTSIZER_GUEST_KERNEL=..., RIGHTSIZER_GUEST_INITRD=... and RIGHTSIZER_GUEST_INITRD_AGENT=...
# lines, shell-sourceable.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DIR="${RIGHTSIZER_GUEST_DIR:-/var/cache/rightsizer-guest}"
# Load order matters: each module needs the ones before it.
MODULES=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_balloon virtio_blk
         button evdev virtio_console crc16 crc32c_generic mbcache jbd2 ext4)
MODULE_PATHS=(drivers/virtio drivers/virtio drivers/virtio drivers/virtio drivers/virtio drivers/virtio drivers/block
              drivers/acpi drivers/input drivers/char lib crypto fs fs/jbd2 fs/ext4)
# In initrd-agent.img only; init loads virtio_console for rs.agent=1 and crc16..ext4 for rs.fs=DEV (ext2 is
# mounted by the ext4 driver, which wants crc32c at mount time).
AGENT_MODULES=" virtio_console crc16 crc32c_generic mbcache jbd2 ext4 "
QEMU_GA=/usr/sbin/qemu-ga

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

for tool in apt-get dpkg-deb cpio gzip busybox sha256sum ldd; do
  command -v "$tool" >/dev/null || die "$tool not found; run scripts/install-system.sh first"
done
BUSYBOX="$(command -v busybox)"
file -L "$BUSYBOX" 2>/dev/null | grep -q 'dynamically linked' \
  && die "$BUSYBOX is dynamically linked; install busybox-static"
[ -x "$QEMU_GA" ] || die "$QEMU_GA not found; run scripts/install-system.sh (Debian package qemu-guest-agent)"
# qemu-ga's shared libraries and the loader, as absolute paths (the vdso has none)
GA_LIBS=()
while read -r lib; do GA_LIBS+=("$lib"); done < <(ldd "$QEMU_GA" | grep -o '/[^ ]*' | sort -u)
[ "${#GA_LIBS[@]}" -gt 0 ] || die "ldd $QEMU_GA listed no libraries"

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

modules_missing() {  # a module of the list is not in the cache yet (the list grew)
  local m
  for m in "${MODULES[@]}"; do [ -f "$DIR/modules/$m.ko" ] || return 0; done
  return 1
}
# 1. Kernel + modules, once per kernel package (and again when the module list grows).
if [ "$(cat "$DIR/kernel.pkg" 2>/dev/null)" != "$pkg" ] || [ ! -s "$DIR/vmlinuz" ] || modules_missing; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  log "downloading $pkg"
  if ! (cd "$work" && apt-get download -q "$pkg" >/dev/null 2>&1); then
    if [ -s "$DIR/vmlinuz" ] && [ -s "$DIR/kernel.pkg" ] && ! modules_missing; then
      pkg="$(cat "$DIR/kernel.pkg")"
      log "apt-get download failed; keeping the cached $pkg"
      rm -rf "$work"
      trap - EXIT
    else
      die "apt-get download $pkg failed; check apt sources (apt-get update) and network"
    fi
  fi
fi
if [ "$(cat "$DIR/kernel.pkg" 2>/dev/null)" != "$pkg" ] || [ ! -s "$DIR/vmlinuz" ] || modules_missing; then
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
  "$BUSYBOX" "$QEMU_GA" "${GA_LIBS[@]}" | cut -d' ' -f1; printf '%s\n' "${GA_LIBS[@]}"; } \
  | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$DIR/initrd.inputs" 2>/dev/null)" != "$inputs" ] || [ ! -s "$DIR/initrd.img" ] \
    || [ ! -s "$DIR/initrd-agent.img" ]; then
  root="$(mktemp -d)"
  trap 'rm -rf "$root"' EXIT
  mkdir -p "$root"/base/{bin,sbin,dev,proc,sys,tmp,etc/acpi/PWRF,lib/modules} "$root"/agent/{usr/sbin,lib/modules}
  cp "$BUSYBOX" "$root/base/bin/busybox"
  ln -s busybox "$root/base/bin/sh"
  install -m 0755 "$HERE/guest/init.sh" "$root/base/init"
  install -m 0755 "$HERE/guest/poweroff.sh" "$root/base/etc/acpi/PWRF/00000080"
  for m in "${MODULES[@]}"; do
    case "$AGENT_MODULES" in *" $m "*) part=agent ;; *) part=base ;; esac
    cp "$DIR/modules/$m.ko" "$root/$part/lib/modules/"
  done
  printf '%s\n' "${MODULES[@]}" >"$root/base/etc/rs-modules"
  # The kernel opens /dev/console for PID 1 before /init can mount devtmpfs.
  mknod -m 600 "$root/base/dev/console" c 5 1 2>/dev/null || true
  cp "$QEMU_GA" "$root/agent/usr/sbin/qemu-ga"
  for lib in "${GA_LIBS[@]}"; do  # same paths as on the host, so the loader finds them without ld.so.cache
    mkdir -p "$root/agent$(dirname "$lib")"
    cp -L "$lib" "$root/agent$lib"
  done
  for part in base agent; do
    (cd "$root/$part" && find . -print0 | cpio --null -o -H newc --quiet | gzip -9) >"$root/$part.cpio.gz"
  done
  cat "$root/base.cpio.gz" "$root/agent.cpio.gz" >"$DIR/initrd-agent.img.new"
  mv "$root/base.cpio.gz" "$DIR/initrd.img.new"
  mv "$DIR/initrd.img.new" "$DIR/initrd.img"
  mv "$DIR/initrd-agent.img.new" "$DIR/initrd-agent.img"
  echo "$inputs" >"$DIR/initrd.inputs"
  rm -rf "$root"
  trap - EXIT
  log "built $DIR/initrd.img and $DIR/initrd-agent.img for $pkg"
fi

echo "RIGHTSIZER_GUEST_KERNEL=$DIR/vmlinuz"
echo "RIGHTSIZER_GUEST_INITRD=$DIR/initrd.img"
echo "RIGHTSIZER_GUEST_INITRD_AGENT=$DIR/initrd-agent.img"
