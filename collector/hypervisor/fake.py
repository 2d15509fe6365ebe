"""An in-memory ``HypervisorSource`` built from a typed topology, for unit tests of pure logic.

Each VM has steady usage rates (vCPU-equivalents, bytes per second); the fake integrates them over
the injected clock, so cumulative counters and the rates computed from them are exact. Tests change
the world between cycles: ``set_usage``, ``set_state``, ``remove``, ``reboot`` (counters reset),
``fail_vm`` (one VM errors) and ``set_reachable(False)`` (the whole URI is down).
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from collector.errors import HypervisorError
from collector.hypervisor.base import error_kind
from collector.model import DiskSample, NetSample, SampleBatch, VmError, VmRef, VmSample, VmState

_MIB = 1024 * 1024
_GIB = 1024 * _MIB
_FAKE_NAMESPACE = uuidlib.UUID("0b6b3f4e-5a0e-4f0f-9a56-3f5c8c7d2a10")


@dataclass(frozen=True, slots=True)
class FakeVm:
    """One fake VM: allocation, steady usage rates, labels. ``uuid`` defaults to a stable one per name."""

    name: str
    uuid: str = ""
    vcpus: int = 2
    max_vcpus: int = 0  # 0 = same as vcpus
    memory_bytes: int = 4 * _GIB
    max_memory_bytes: int = 0  # 0 = same as memory_bytes
    state: VmState = VmState.RUNNING
    cpu_vcpus: float = 0.5  # CPU demand in vCPU-equivalents
    memory_used_bytes: int | None = 2 * _GIB  # None = guest reports no balloon stats
    disk_read_bps: float = 0.0
    disk_write_bps: float = 0.0
    net_rx_bps: float = 0.0
    net_tx_bps: float = 0.0
    disk_capacity_bytes: int = 20 * _GIB
    # Contention and pressure signals; None = the hypervisor does not report them (absent, never 0).
    cpu_delay_vcpus: float | None = 0.0  # host-CPU wait summed over vCPUs, seconds per second
    swap_in_bps: float | None = 0.0
    swap_out_bps: float | None = 0.0
    major_faults_ps: float | None = 0.0
    disk_latency_s: float = 0.001  # time per request, for block rd/wr.times
    labels: Mapping[str, str] = field(default_factory=dict)
    snapshot_times: tuple[datetime, ...] = ()

    def __post_init__(self) -> None:
        if self.vcpus < 1 or self.memory_bytes < 1 or self.cpu_vcpus < 0:
            raise ValueError(
                f"FakeVm {self.name!r}: vcpus={self.vcpus!r} and memory_bytes={self.memory_bytes!r} must be "
                f">= 1 and cpu_vcpus={self.cpu_vcpus!r} >= 0"
            )
        if not self.uuid:
            object.__setattr__(self, "uuid", str(uuidlib.uuid5(_FAKE_NAMESPACE, self.name)))
        if not self.max_vcpus:
            object.__setattr__(self, "max_vcpus", self.vcpus)
        if not self.max_memory_bytes:
            object.__setattr__(self, "max_memory_bytes", self.memory_bytes)


class Topology:
    """A list of fake VMs, built fluently: ``Topology().add_vms(3, vcpus=2, memory_mib=4096)``."""

    def __init__(self) -> None:
        self.vms: list[FakeVm] = []

    def add_vm(self, name: str, *, memory_mib: int | None = None, **fields: object) -> Topology:
        """Add one VM; ``memory_mib`` is shorthand for ``memory_bytes``; other keywords are FakeVm fields."""
        if memory_mib is not None:
            fields["memory_bytes"] = memory_mib * _MIB
        if any(vm.name == name for vm in self.vms):
            raise ValueError(f"duplicate fake VM name {name!r}; names must be unique")
        self.vms.append(FakeVm(name, **fields))  # type: ignore[arg-type]
        return self

    def add_vms(self, count: int, *, prefix: str = "vm", **fields: object) -> Topology:
        """Add ``count`` VMs named ``{prefix}-{n}``, numbered on from the VMs already there."""
        start = len(self.vms)
        for i in range(start, start + count):
            self.add_vm(f"{prefix}-{i}", **fields)  # type: ignore[arg-type]
        return self


@dataclass(slots=True)
class _Counters:
    cpu_time_ns: float = 0.0
    read_bytes: float = 0.0
    write_bytes: float = 0.0
    rx_bytes: float = 0.0
    tx_bytes: float = 0.0
    delay_ns: float = 0.0
    swap_in_bytes: float = 0.0
    swap_out_bytes: float = 0.0
    major_faults: float = 0.0


def _known(reported: float | None, value: float) -> int | None:
    return None if reported is None else round(value)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class FakeHypervisor:
    """``HypervisorSource`` over a ``Topology`` (or a list of ``FakeVm``), driven by an injected clock."""

    def __init__(
        self,
        topology: Topology | list[FakeVm],
        *,
        uri: str = "fake:///default",
        host: str = "fake-host",
        clock: Callable[[], datetime] = _utcnow,
        host_cpus: int | None = None,
    ) -> None:
        vms = topology.vms if isinstance(topology, Topology) else topology
        self._uri = uri
        self._host = host
        self._host_cpus = host_cpus
        self._clock = clock
        self._vms: dict[str, FakeVm] = {vm.name: vm for vm in vms}
        self._counters: dict[str, _Counters] = {vm.name: _Counters() for vm in vms}
        self._last: datetime | None = None
        self._failures: dict[str, HypervisorError] = {}
        self._reachable = True
        self.cycles = 0

    @property
    def uri(self) -> str:
        return self._uri

    def vm(self, name: str) -> FakeVm:
        """Return the fake VM called ``name``; raises KeyError."""
        return self._vms[name]

    def ref(self, name: str) -> VmRef:
        """Return the ``VmRef`` of the fake VM called ``name``."""
        vm = self._vms[name]
        return VmRef(self._uri, vm.uuid, vm.name)

    def add(self, vm: FakeVm) -> None:
        """Add a VM (it appears in the next cycle with zero counters)."""
        self._vms[vm.name] = vm
        self._counters[vm.name] = _Counters()

    def remove(self, name: str) -> None:
        """Make a VM vanish (undefined or migrated away)."""
        del self._vms[name]
        del self._counters[name]

    def set_usage(self, name: str, **fields: object) -> None:
        """Change a VM's fields from the clock's current time on (e.g. ``cpu_vcpus=1.5``, ``vcpus=4``)."""
        if self._last is not None:
            self._advance()
        self._vms[name] = replace(self._vms[name], **fields)  # type: ignore[arg-type]

    def set_state(self, name: str, state: VmState) -> None:
        """Change a VM's run state; a VM that is not running accumulates nothing."""
        self.set_usage(name, state=state)

    def reboot(self, name: str) -> None:
        """Reset the VM's cumulative counters to zero, as a restart of its QEMU process does."""
        if self._last is not None:
            self._advance()
        self._counters[name] = _Counters()

    def fail_vm(self, name: str, error: HypervisorError | None) -> None:
        """Make sampling ``name`` fail with ``error`` in every cycle until called with None."""
        if error is None:
            self._failures.pop(name, None)
        else:
            self._failures[name] = error

    def set_reachable(self, reachable: bool) -> None:
        """Simulate the URI going down (``ok=False`` batches) or coming back."""
        self._reachable = reachable

    def close(self) -> None:
        """Nothing to release."""

    def _advance(self) -> datetime:
        """Integrate every running VM's rates up to the clock's time; returns that time."""
        now = self._clock()
        elapsed_s = 0.0 if self._last is None else max(0.0, (now - self._last).total_seconds())
        self._last = now
        for name, vm in self._vms.items():
            if vm.state is VmState.RUNNING:
                c = self._counters[name]
                c.cpu_time_ns += vm.cpu_vcpus * elapsed_s * 1e9
                c.read_bytes += vm.disk_read_bps * elapsed_s
                c.write_bytes += vm.disk_write_bps * elapsed_s
                c.rx_bytes += vm.net_rx_bps * elapsed_s
                c.tx_bytes += vm.net_tx_bps * elapsed_s
                c.delay_ns += (vm.cpu_delay_vcpus or 0.0) * elapsed_s * 1e9
                c.swap_in_bytes += (vm.swap_in_bps or 0.0) * elapsed_s
                c.swap_out_bytes += (vm.swap_out_bps or 0.0) * elapsed_s
                c.major_faults += (vm.major_faults_ps or 0.0) * elapsed_s
        return now

    def sample_all(self) -> SampleBatch:
        """Advance counters to the clock's time and sample every VM; never raises."""
        now = self._advance()
        self.cycles += 1
        if not self._reachable:
            err = VmError(None, "connection", f"{self._uri}: fake hypervisor is unreachable")
            return SampleBatch(self._uri, self._host, now, errors=(err,), ok=False, driver="Fake")
        samples: list[VmSample] = []
        errors: list[VmError] = []
        for name, vm in self._vms.items():
            ref = VmRef(self._uri, vm.uuid, vm.name)
            failure = self._failures.get(name)
            if failure is not None:
                errors.append(VmError(ref, error_kind(failure), str(failure)))
                continue
            samples.append(self._sample(ref, vm, self._counters[name]))
        return SampleBatch(
            self._uri, self._host, now, samples=tuple(samples), errors=tuple(errors), driver="Fake",
            host_cpus=self._host_cpus,
        )

    def _sample(self, ref: VmRef, vm: FakeVm, c: _Counters) -> VmSample:
        running = vm.state is VmState.RUNNING
        return VmSample(
            ref=ref,
            host=self._host,
            state=vm.state,
            vcpus=vm.vcpus,
            max_vcpus=vm.max_vcpus,
            memory_bytes=vm.memory_bytes,
            max_memory_bytes=vm.max_memory_bytes,
            cpu_time_ns=round(c.cpu_time_ns) if running else None,
            memory_used_bytes=vm.memory_used_bytes if running else None,
            swap_in_bytes=_known(vm.swap_in_bps, c.swap_in_bytes) if running else None,
            swap_out_bytes=_known(vm.swap_out_bps, c.swap_out_bytes) if running else None,
            major_faults=_known(vm.major_faults_ps, c.major_faults) if running else None,
            cpu_delay_ns=_known(vm.cpu_delay_vcpus, c.delay_ns) if running else None,
            disks=(
                DiskSample(
                    device="vda",
                    read_bytes=round(c.read_bytes),
                    write_bytes=round(c.write_bytes),
                    read_reqs=round(c.read_bytes / 4096),
                    write_reqs=round(c.write_bytes / 4096),
                    capacity_bytes=vm.disk_capacity_bytes,
                    allocation_bytes=vm.disk_capacity_bytes,
                    read_time_ns=round(c.read_bytes / 4096 * vm.disk_latency_s * 1e9),
                    write_time_ns=round(c.write_bytes / 4096 * vm.disk_latency_s * 1e9),
                ),
            ),
            nets=(NetSample(device="vnet0", rx_bytes=round(c.rx_bytes), tx_bytes=round(c.tx_bytes)),),
            labels=dict(vm.labels),
            snapshot_times=vm.snapshot_times,
        )
