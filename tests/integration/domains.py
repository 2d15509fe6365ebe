"""Build and boot the tiny test guests (Debian kernel + busybox initramfs, see scripts/build-guest.sh).

Reusable by every integration test that needs a real QEMU domain (``rs-test-*`` for the collector,
``rs-act-*`` for resize actions) and by ``bench/``. Only touches domains whose names it is given.
``LibvirtdRig`` stops and starts the local daemon for outage tests.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

import libvirt
import libvirt_qemu

from collector.hypervisor.testfleet import domain_uuid, labels_xml

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_MARKER = "rs-init: ready"
QEMU_URI = "qemu:///system"
LIBVIRTD_PIDFILE = Path("/var/run/libvirtd.pid")


@dataclass(frozen=True, slots=True)
class GuestImages:
    """Paths of the cached guest kernel and initramfs (``initrd_agent``: with qemu-ga and the ext2 modules)."""

    kernel: Path
    initrd: Path
    initrd_agent: Path


@dataclass(frozen=True, slots=True)
class GuestSpec:
    """One test guest. ``workload`` is busy | idle | mem | disk (see scripts/guest/init.sh)."""

    name: str
    workload: str = "idle"
    memory_mib: int = 192
    max_memory_mib: int | None = None
    vcpus: int = 1
    max_vcpus: int | None = None
    mem_touch_mib: int = 64  # what the mem workload fills and holds
    mem_pass_s: int = 0  # > 0: the mem workload reads its working set again every N s (swap-in when squeezed)
    disk_mib_per_s: int = 4  # what the disk workload writes per second at most
    balloon_driver: bool = True  # False boots with rs.noballoon=1: the guest never reports memory stats
    balloon_period_s: int = 2  # 0 = no <stats period>, stats arrive once when the driver loads
    disk: Path | None = None
    disk_format: str = "qcow2"
    swap: bool = False  # mkswap + swapon the disk (vda) at boot; needs ``disk``
    filesystem: bool = False  # mke2fs the disk (vda) at boot and mount it at /data; needs ``disk``
    guest_agent: bool = False  # an org.qemu.guest_agent.0 channel, and qemu-ga started on it by the guest's init
    console_log: Path | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


def domain_type() -> str:
    """Return 'qemu' (TCG) where KVM cannot boot a stock kernel (paravirtual KVM, no /dev/kvm), else 'kvm'."""
    if Path("/sys/module/kvm_pvm").exists() or not Path("/dev/kvm").exists():
        return "qemu"
    return "kvm"


def build_guest_images() -> GuestImages:
    """Run scripts/build-guest.sh (cached, idempotent) and return the image paths."""
    out = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "build-guest.sh")],
        check=True, capture_output=True, text=True, timeout=600,
    ).stdout
    values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return GuestImages(
        kernel=Path(values["RIGHTSIZER_GUEST_KERNEL"]), initrd=Path(values["RIGHTSIZER_GUEST_INITRD"]),
        initrd_agent=Path(values["RIGHTSIZER_GUEST_INITRD_AGENT"]),
    )


def create_disk(path: Path, size_mib: int = 64, fmt: str = "qcow2") -> Path:
    """Create an empty disk image of ``size_mib`` MiB (qcow2 or raw) and return its path."""
    subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "build-guest.sh"), "disk", str(path), str(size_mib), fmt],
        check=True, capture_output=True, text=True, timeout=60,
    )
    return path


def guest_domain_xml(spec: GuestSpec, images: GuestImages) -> str:
    """Return domain XML for ``spec``: direct kernel boot, serial console to a file, virtio balloon."""
    max_mem = spec.max_memory_mib or spec.memory_mib
    max_vcpus = spec.max_vcpus or spec.vcpus
    cmdline = (
        f"console=ttyS0 panic=-1 rs.workload={spec.workload} rs.mem_mib={spec.mem_touch_mib} "
        f"rs.disk_mib={spec.disk_mib_per_s}"
    )
    if spec.mem_pass_s:
        cmdline += f" rs.mem_pass_s={spec.mem_pass_s}"
    if spec.swap:
        if spec.disk is None:
            raise ValueError(f"guest {spec.name}: swap=True needs a disk to swap on")
        cmdline += " rs.swap=vda"
    if spec.filesystem:
        if spec.disk is None or spec.swap:
            raise ValueError(f"guest {spec.name}: filesystem=True needs a disk of its own (and no swap)")
        cmdline += " rs.fs=vda"
    channel = ""
    if spec.guest_agent:
        cmdline += " rs.agent=1"
        channel = "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
    if not spec.balloon_driver:
        cmdline += " rs.noballoon=1"
    initrd = images.initrd_agent if spec.guest_agent or spec.filesystem else images.initrd
    labels = labels_xml(spec.labels)
    metadata = f"<metadata>{labels}</metadata>" if labels else ""
    disk = ""
    if spec.disk is not None:
        disk = (
            f"<disk type='file' device='disk'><driver name='qemu' type='{spec.disk_format}' cache='none'/>"
            f"<source file='{escape(str(spec.disk))}'/><target dev='vda' bus='virtio'/></disk>"
        )
    serial = "<serial type='pty'><target port='0'/></serial>"
    if spec.console_log is not None:
        serial = (
            f"<serial type='file'><source path='{escape(str(spec.console_log))}'/><target port='0'/></serial>"
        )
    stats = f"<stats period='{spec.balloon_period_s}'/>" if spec.balloon_period_s else ""
    return f"""<domain type='{domain_type()}'>
  <name>{escape(spec.name)}</name>
  <uuid>{domain_uuid(spec.name)}</uuid>
  {metadata}
  <memory unit='MiB'>{max_mem}</memory>
  <currentMemory unit='MiB'>{spec.memory_mib}</currentMemory>
  <vcpu placement='static' current='{spec.vcpus}'>{max_vcpus}</vcpu>
  <os>
    <type arch='x86_64'>hvm</type>
    <kernel>{escape(str(images.kernel))}</kernel>
    <initrd>{escape(str(initrd))}</initrd>
    <cmdline>{cmdline}</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    {disk}
    {serial}
    {channel}
    <memballoon model='virtio'>{stats}</memballoon>
  </devices>
</domain>
"""


def wait_for_console(path: Path, marker: str = READY_MARKER, timeout_s: float = 90.0) -> None:
    """Wait until the guest's console log contains ``marker``; raises TimeoutError with the log tail."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if marker in path.read_text(errors="replace"):
                return
        except FileNotFoundError:
            pass
        time.sleep(0.2)
    tail = path.read_text(errors="replace")[-2000:] if path.exists() else "(no console log)"
    raise TimeoutError(f"guest console {path} never showed {marker!r} within {timeout_s}s; tail:\n{tail}")


def wait_for_agent(dom: libvirt.virDomain, timeout_s: float = 60.0) -> None:
    """Wait until the guest's QEMU guest agent answers ``guest-ping``; raises TimeoutError with the last error."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            libvirt_qemu.qemuAgentCommand(dom, '{"execute": "guest-ping"}', 5, 0)
            return
        except libvirt.libvirtError as exc:
            if time.monotonic() > deadline:
                raise TimeoutError(f"guest agent of {dom.name()} silent for {timeout_s}s: {exc}") from exc
        time.sleep(0.5)


def guest_exec(dom: libvirt.virDomain, argv: list[str], timeout_s: float = 60.0) -> tuple[int, str]:
    """Run ``argv`` in the guest through its agent (``guest-exec``); return (exit code, stdout)."""
    def agent(cmd: str, **arguments: object) -> dict[str, object]:
        reply = libvirt_qemu.qemuAgentCommand(dom, json.dumps({"execute": cmd, "arguments": arguments}), 10, 0)
        out: dict[str, object] = json.loads(reply)["return"]
        return out

    pid = agent("guest-exec", path=argv[0], arg=argv[1:], **{"capture-output": True})["pid"]
    deadline = time.monotonic() + timeout_s
    while not (status := agent("guest-exec-status", pid=pid))["exited"]:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{argv} in {dom.name()} still running after {timeout_s}s")
        time.sleep(0.1)
    return int(str(status.get("exitcode", -1))), base64.b64decode(str(status.get("out-data", ""))).decode()


def remove_domain(conn: libvirt.virConnect, name: str) -> None:
    """Destroy and undefine the domain called ``name`` if it exists (snapshot metadata included)."""
    try:
        dom = conn.lookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return
        raise
    try:
        if dom.isActive():
            dom.destroy()
    except libvirt.libvirtError as exc:
        if exc.get_error_code() not in (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_OPERATION_INVALID):
            raise
    try:
        if dom.isPersistent():
            dom.undefineFlags(
                libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
            )
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
            raise


def boot_guest(
    conn: libvirt.virConnect, spec: GuestSpec, images: GuestImages, *, persistent: bool = False
) -> libvirt.virDomain:
    """Boot ``spec`` (transient unless ``persistent``), replacing a leftover domain of the same name.

    Returns at once; call ``wait_for_console(spec.console_log)`` to wait for the guest's init.
    """
    remove_domain(conn, spec.name)
    if spec.console_log is not None and spec.console_log.exists():
        spec.console_log.unlink()
    xml = guest_domain_xml(spec, images)
    if persistent:
        dom = conn.defineXML(xml)
        dom.create()
        return dom
    return conn.createXML(xml, 0)


class LibvirtdRig:
    """Stops and starts the local libvirtd; running QEMU guests survive and are reattached on start."""

    def __init__(self, uri: str = QEMU_URI) -> None:
        self.uri = uri

    def pid(self) -> int | None:
        """Return libvirtd's pid when it runs, else None."""
        try:
            pid = int(LIBVIRTD_PIDFILE.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except FileNotFoundError:
            return None
        return pid if comm == "libvirtd" else None

    def start(self) -> None:
        """Start libvirtd (idempotent) and wait until the URI answers."""
        subprocess.run(
            ["bash", str(REPO_ROOT / "scripts" / "libvirtd-up.sh")],
            check=True, capture_output=True, text=True, timeout=120,
        )

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM libvirtd and wait until it has exited; raises TimeoutError."""
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while Path(f"/proc/{pid}").exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"libvirtd (pid {pid}) still running {timeout_s}s after SIGTERM")
            time.sleep(0.05)

    def restart(self, down_s: float = 0.0) -> None:
        """Stop libvirtd, stay down ``down_s`` seconds, start it again."""
        self.stop()
        time.sleep(down_s)
        self.start()
