"""Value types shared by every package: what one collection cycle saw, in base units.

All timestamps are timezone-aware UTC ``datetime`` values; all sizes are bytes; CPU time is
nanoseconds (cumulative, as libvirt reports it); CPU demand is in vCPU-equivalents (1.0 = one
vCPU busy for the whole interval).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from core.identity import VmRef as VmRef  # the model's identity type (defined in core), part of this API

#: URI scheme of VMs imported from traces: they have history but no libvirt domain behind them.
TRACE_URI_SCHEME = "trace"


def is_trace_uri(uri: str) -> bool:
    """True for the URI of an imported trace VM (nothing to sample or resize)."""
    return uri.startswith(TRACE_URI_SCHEME + "://")


class VmState(str, enum.Enum):
    """Domain run state, folded from libvirt's VIR_DOMAIN_* states."""

    RUNNING = "running"
    PAUSED = "paused"
    SHUTOFF = "shutoff"
    CRASHED = "crashed"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class DiskSample:
    """Cumulative counters of one block device (``block.N.*`` in libvirt bulk stats).

    ``None`` means the driver did not report the value. Times are nanoseconds spent on completed
    requests (libvirt ``block.N.rd.times``/``wr.times``); capacity is the guest-visible size, allocation
    the highest written offset of the image (``block.N.capacity``/``allocation``), both bytes.
    """

    device: str
    read_bytes: int
    write_bytes: int
    read_reqs: int | None
    write_reqs: int | None
    capacity_bytes: int | None = None
    allocation_bytes: int | None = None
    read_time_ns: int | None = None
    write_time_ns: int | None = None


@dataclass(frozen=True, slots=True)
class NetSample:
    """Cumulative counters of one interface (``net.N.*``)."""

    device: str
    rx_bytes: int
    tx_bytes: int


@dataclass(frozen=True, slots=True)
class VmSample:
    """What one cycle read of one VM. ``None`` means the hypervisor did not report it.

    ``memory_used_bytes`` is guest-used memory from balloon stats (available - usable, else
    available - unused); it is ``None`` when the guest reports none -- never the allocation.
    """

    ref: VmRef
    host: str
    state: VmState
    vcpus: int
    max_vcpus: int
    memory_bytes: int  # current allocation (balloon actual), bytes
    max_memory_bytes: int
    cpu_time_ns: int | None = None
    memory_used_bytes: int | None = None
    swap_in_bytes: int | None = None  # cumulative, guest balloon stats (libvirt reports KiB)
    swap_out_bytes: int | None = None
    major_faults: int | None = None  # cumulative count of the guest's major page faults
    cpu_delay_ns: int | None = None  # cumulative, summed over vCPUs: runnable but waiting for a host CPU
    disks: tuple[DiskSample, ...] = ()
    nets: tuple[NetSample, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    snapshot_times: tuple[datetime, ...] = ()  # creation times of the domain's snapshots (backup age)

    @property
    def disk_read_bytes(self) -> int:
        return sum(d.read_bytes for d in self.disks)

    @property
    def disk_write_bytes(self) -> int:
        return sum(d.write_bytes for d in self.disks)

    @property
    def net_rx_bytes(self) -> int:
        return sum(n.rx_bytes for n in self.nets)

    @property
    def net_tx_bytes(self) -> int:
        return sum(n.tx_bytes for n in self.nets)

    @property
    def disk_capacity_bytes(self) -> int | None:
        return _sum_known(d.capacity_bytes for d in self.disks)

    @property
    def disk_allocation_bytes(self) -> int | None:
        return _sum_known(d.allocation_bytes for d in self.disks)

    @property
    def disk_read_reqs(self) -> int | None:
        return _sum_known(d.read_reqs for d in self.disks)

    @property
    def disk_write_reqs(self) -> int | None:
        return _sum_known(d.write_reqs for d in self.disks)

    @property
    def disk_read_time_ns(self) -> int | None:
        return _sum_known(d.read_time_ns for d in self.disks)

    @property
    def disk_write_time_ns(self) -> int | None:
        return _sum_known(d.write_time_ns for d in self.disks)


def _sum_known(values: Iterable[int | None]) -> int | None:
    """Sum of the reported values; None when no disk reported one (absent, never 0)."""
    known = [v for v in values if v is not None]
    return sum(known) if known else None


@dataclass(frozen=True, slots=True)
class VmError:
    """A VM that could not be sampled this cycle, and why (kind is a short slug)."""

    ref: VmRef | None
    kind: str
    message: str


@dataclass(frozen=True, slots=True)
class SampleBatch:
    """One cycle over one URI. ``ok`` is False when the URI itself was unreachable."""

    uri: str
    host: str
    taken_at: datetime
    samples: tuple[VmSample, ...] = ()
    errors: tuple[VmError, ...] = ()
    duration_s: float = 0.0
    ok: bool = True
    driver: str = ""  # libvirt driver type, e.g. "QEMU" or "Test"
    host_cpus: int | None = None  # logical CPUs of the host (libvirt getInfo), for overcommit
    #: guest-agent filesystem readings that arrived since the last batch, by VM UUID (most cycles: none)
    guest_fs: Mapping[str, GuestFsUsage] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GuestFsUsage:
    """Bytes used and total over a guest's disk-backed filesystems, as its QEMU guest agent reported them."""

    used_bytes: int
    total_bytes: int
    filesystems: int
    at: datetime


@dataclass(frozen=True, slots=True)
class UsagePoint:
    """One stored interval of one VM, rates over the interval ending at ``ts``.

    This is the row the store keeps for both collected and imported data. ``cpu_vcpus`` is CPU
    demand in vCPU-equivalents; rates are bytes per second. A ``None`` rate marks a gap (first
    sample, counter reset after a reboot or migration, or the source did not report it).
    """

    vm_uuid: str
    ts: datetime
    state: VmState
    vcpus: int
    memory_bytes: int
    cpu_vcpus: float | None = None
    memory_used_bytes: int | None = None
    disk_read_bps: float | None = None
    disk_write_bps: float | None = None
    net_rx_bps: float | None = None
    net_tx_bps: float | None = None
    disk_capacity_bytes: int | None = None
    interval_s: float | None = None
    gap: bool = False
    cpu_delay_vcpus: float | None = None  # host-CPU wait, summed over vCPUs, in vCPU-equivalents (s/s)
    swap_in_bps: float | None = None
    swap_out_bps: float | None = None
    major_faults_ps: float | None = None
    disk_read_iops: float | None = None
    disk_write_iops: float | None = None
    disk_read_time_s_per_s: float | None = None  # seconds spent on reads per second (sum over disks)
    disk_write_time_s_per_s: float | None = None
    disk_allocation_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class VmRecord:
    """Inventory row of a VM as the store knows it (latest spec and labels)."""

    uuid: str
    name: str
    uri: str
    host: str
    state: VmState
    vcpus: int
    max_vcpus: int
    memory_bytes: int
    max_memory_bytes: int
    labels: Mapping[str, str]
    first_seen: datetime
    last_seen: datetime
    source: str = "libvirt"  # libvirt | import | demo
    newest_backup: datetime | None = None


_DIGITS = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders embedded numbers by value: vm-2 before vm-10 (1, 2, ... 10), case-insensitive."""
    return tuple((0, int(part)) if part.isdigit() else (1, part.casefold()) for part in _DIGITS.split(text) if part)
