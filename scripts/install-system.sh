#!/usr/bin/env bash
# Install the Debian packages rightsizer needs (idempotent). Run as root on Debian 12.
#   run:  headers to build libvirt-python (the libvirt client library, with its test driver, comes along),
#         npm to fetch the dashboard's plotly.js bundle by name and version (scripts/fetch-plotly.sh)
#   test: also the libvirt daemon + QEMU (collector and action tests on real guests), Prometheus (scrape
#         tests), VictoriaMetrics + vmagent (PromQL source tests), Chromium (dashboard browser tests),
#         busybox + cpio for the tiny test guests' initramfs, qemu-guest-agent (its qemu-ga and the
#         libraries it links go into that initramfs: guest filesystem use through a live agent), nginx
#         (a reverse proxy with its own authentication in front of serve: tests/integration/test_reverse_proxy.py)
set -euo pipefail
PROFILE=${1:-test}
PKGS=(libvirt-dev pkg-config gcc)
command -v npm >/dev/null || PKGS+=(npm)  # any npm will do (Debian's, or the one a nodejs package brings)
case "$PROFILE" in
  run) ;;
  test) PKGS+=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 qemu-utils
               prometheus victoria-metrics chromium busybox-static cpio gzip xz-utils
               qemu-guest-agent nginx) ;;
  *) echo "install-system: unknown profile '$PROFILE'; use 'run' or 'test'" >&2; exit 2 ;;
esac
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
[ "$PROFILE" = test ] || { echo "install-system: ok ($PROFILE)"; exit 0; }
# libvirtd refuses to start without these accounts.
for g in libvirt-qemu kvm libvirt; do getent group "$g" >/dev/null || groupadd -r "$g"; done
getent passwd libvirt-qemu >/dev/null || useradd -r -g libvirt-qemu -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu
echo "install-system: ok ($PROFILE)"
