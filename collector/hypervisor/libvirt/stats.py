"""Decode what libvirt reports (bulk stats dicts, domain and snapshot XML) into our value types; no calls.

libvirt units (https://libvirt.org/html/libvirt-libvirt-domain.html#virConnectGetAllDomainStats and
virsh(1) dommemstat): memory in KiB (balloon.* incl. swap_in/swap_out, info(), memoryStats()), page faults
as counts, CPU and vCPU delay time in ns, block rd/wr.times in ns, block/net sizes in bytes.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import libvirt

from collector.model import DiskSample, NetSample, VmRef, VmSample, VmState

KIB = 1024

_STATE_BY_CODE: Mapping[int, VmState] = {
    libvirt.VIR_DOMAIN_NOSTATE: VmState.OTHER,
    libvirt.VIR_DOMAIN_RUNNING: VmState.RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: VmState.RUNNING,  # running, waiting on a resource
    libvirt.VIR_DOMAIN_PAUSED: VmState.PAUSED,
    libvirt.VIR_DOMAIN_SHUTDOWN: VmState.RUNNING,  # still running while it shuts down
    libvirt.VIR_DOMAIN_SHUTOFF: VmState.SHUTOFF,
    libvirt.VIR_DOMAIN_CRASHED: VmState.CRASHED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: VmState.PAUSED,
}

#: The groups one bulk ``getAllDomainStats`` call asks for.
STATS_GROUPS = (
    libvirt.VIR_DOMAIN_STATS_STATE
    | libvirt.VIR_DOMAIN_STATS_CPU_TOTAL
    | libvirt.VIR_DOMAIN_STATS_BALLOON
    | libvirt.VIR_DOMAIN_STATS_VCPU
    | libvirt.VIR_DOMAIN_STATS_INTERFACE
    | libvirt.VIR_DOMAIN_STATS_BLOCK
)
_CREATION_TIME = re.compile(r"<creationTime>(\d+)</creationTime>")


def vm_state(code: int) -> VmState:
    """Fold a libvirt VIR_DOMAIN_* state code into a ``VmState``."""
    return _STATE_BY_CODE.get(code, VmState.OTHER)


def is_active(state: VmState) -> bool:
    """True when the guest has a running QEMU process (running or paused): it has usage stats."""
    return state is VmState.RUNNING or state is VmState.PAUSED


def parse_snapshot_time(snapshot_xml: str) -> datetime | None:
    """Return the snapshot's ``<creationTime>`` (epoch seconds in the XML) as UTC, or None."""
    match = _CREATION_TIME.search(snapshot_xml)
    return datetime.fromtimestamp(int(match.group(1)), UTC) if match else None


def memory_used_bytes(stats: Mapping[str, int], prefix: str = "balloon.") -> int | None:
    """Guest-used memory from balloon stats in bytes: available - usable, else available - unused.

    ``stats`` holds KiB values under ``{prefix}available`` etc. Returns None when the guest reported
    neither pair (balloon driver not loaded yet, or no balloon) -- never the allocation.
    """
    available = stats.get(f"{prefix}available")
    if available is None:
        return None
    for key in (f"{prefix}usable", f"{prefix}unused"):
        free = stats.get(key)
        if free is not None and 0 <= free <= available:
            return (available - free) * KIB
    return None


def vcpu_delay_ns(stats: Mapping[str, int]) -> int | None:
    """Sum of ``vcpu.N.delay`` over vCPUs (ns), or None when the driver reports none.

    libvirt (https://libvirt.org/html/libvirt-libvirt-domain.html#virConnectGetAllDomainStats,
    VIR_DOMAIN_STATS_VCPU): ``vcpu.<num>.delay`` is the time in ns the vCPU thread was enqueued by the host
    scheduler but waiting instead of running (the guest sees it as steal time). libvirt 9.0 reports it.
    """
    total: int | None = None
    for i in range(int(stats.get("vcpu.maximum", stats.get("vcpu.current", 0)))):
        value = stats.get(f"vcpu.{i}.delay")
        if value is not None:
            total = (total or 0) + int(value)
    return total


def bulk_disks(stats: Mapping[str, Any]) -> tuple[DiskSample, ...]:
    """Disks from ``block.N.*`` bulk stats; a value the driver left out stays None (absent, never 0).

    libvirt units (same page, VIR_DOMAIN_STATS_BLOCK): ``rd.reqs``/``wr.reqs`` counts,
    ``rd.bytes``/``wr.bytes`` bytes, ``rd.times``/``wr.times`` nanoseconds spent on reads/writes,
    ``capacity`` the logical size in bytes, ``allocation`` the offset of the highest written sector in bytes.
    """
    disks: list[DiskSample] = []
    for i in range(stats.get("block.count", 0)):
        p = f"block.{i}."
        disks.append(
            DiskSample(
                device=stats.get(p + "name", str(i)),
                read_bytes=stats.get(p + "rd.bytes", 0),
                write_bytes=stats.get(p + "wr.bytes", 0),
                read_reqs=stats.get(p + "rd.reqs"),
                write_reqs=stats.get(p + "wr.reqs"),
                capacity_bytes=stats.get(p + "capacity"),
                allocation_bytes=stats.get(p + "allocation"),
                read_time_ns=stats.get(p + "rd.times"),
                write_time_ns=stats.get(p + "wr.times"),
            )
        )
    return tuple(disks)


def bulk_nets(stats: Mapping[str, Any]) -> tuple[NetSample, ...]:
    """Interfaces from ``net.N.*`` bulk stats (bytes)."""
    return tuple(
        NetSample(
            device=stats.get(f"net.{i}.name", str(i)),
            rx_bytes=stats.get(f"net.{i}.rx.bytes", 0),
            tx_bytes=stats.get(f"net.{i}.tx.bytes", 0),
        )
        for i in range(stats.get("net.count", 0))
    )


def has_bulk_usage(stats: Mapping[str, Any]) -> bool:
    """True when a bulk record carries more than the state group (the test driver's carries only state)."""
    return "balloon.current" in stats and "vcpu.current" in stats


def sample_from_bulk(
    ref: VmRef,
    host: str,
    stats: Mapping[str, Any],
    *,
    labels: Mapping[str, str],
    snapshots: tuple[datetime, ...],
    synthetic_cpu: bool,
) -> VmSample:
    """Build a sample from one bulk record; usage fields stay None unless the guest is active.

    ``synthetic_cpu`` drops ``cpu.time`` (drivers whose CPU time is not CPU time, such as the test driver).
    """
    state = vm_state(stats.get("state.state", libvirt.VIR_DOMAIN_NOSTATE))
    running = is_active(state)
    swap_in = stats.get("balloon.swap_in")
    swap_out = stats.get("balloon.swap_out")
    return VmSample(
        ref=ref,
        host=host,
        state=state,
        vcpus=stats["vcpu.current"],
        max_vcpus=stats.get("vcpu.maximum", stats["vcpu.current"]),
        memory_bytes=stats["balloon.current"] * KIB,
        max_memory_bytes=stats.get("balloon.maximum", stats["balloon.current"]) * KIB,
        cpu_time_ns=stats.get("cpu.time") if running and not synthetic_cpu else None,
        memory_used_bytes=memory_used_bytes(stats) if running else None,
        swap_in_bytes=swap_in * KIB if swap_in is not None and running else None,
        swap_out_bytes=swap_out * KIB if swap_out is not None and running else None,
        major_faults=stats.get("balloon.major_fault") if running else None,
        cpu_delay_ns=vcpu_delay_ns(stats) if running else None,
        disks=bulk_disks(stats),
        nets=bulk_nets(stats),
        labels=labels,
        snapshot_times=snapshots,
    )


@dataclass(frozen=True, slots=True)
class XmlFacts:
    """What the per-domain path needs from the domain XML."""

    max_vcpus: int
    disks: tuple[str, ...]  # target devs of device='disk'
    nics: tuple[str, ...]  # target dev, else MAC address (interfaceStats accepts either)


def parse_domain_xml(xml: str) -> XmlFacts:
    """Extract max vCPUs, disk targets and interface names from a domain XML; raises ET.ParseError."""
    root = ET.fromstring(xml)
    vcpu = root.find("vcpu")
    max_vcpus = int(vcpu.text) if vcpu is not None and vcpu.text else 0
    devices = root.find("devices")
    if devices is None:
        return XmlFacts(max_vcpus=max_vcpus, disks=(), nics=())
    return XmlFacts(max_vcpus=max_vcpus, disks=_disk_targets(devices), nics=_nic_names(devices))


def _disk_targets(devices: ET.Element) -> tuple[str, ...]:
    disks: list[str] = []
    for disk in devices.findall("disk"):
        target = disk.find("target")
        if disk.get("device", "disk") == "disk" and target is not None and target.get("dev"):
            disks.append(target.get("dev", ""))
    return tuple(disks)


def _nic_names(devices: ET.Element) -> tuple[str, ...]:
    nics: list[str] = []
    for nic in devices.findall("interface"):
        target = nic.find("target")
        mac = nic.find("mac")
        if target is not None and target.get("dev"):
            nics.append(target.get("dev", ""))
        elif mac is not None and mac.get("address"):
            nics.append(mac.get("address", ""))
    return tuple(nics)
