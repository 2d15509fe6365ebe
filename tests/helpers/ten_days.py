"""A ten-day hourly history from 2023-11-15 00:00 UTC (epoch seconds ``T0``): VMs and their usage points."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np

from collector.model import UsagePoint, VmRecord, VmState

GIB = 1024**3
T0 = 1_700_006_400  # UTC midnight
HOURS = 10 * 24
NOW = datetime.fromtimestamp(T0 + HOURS * 3600, tz=UTC)


def running_vm(name: str, vcpus: int, mem_gib: int, **labels: str) -> VmRecord:
    """A running VM on host h1 (UUID derived from ``name``), seen from ``T0`` to ``NOW``."""
    first = datetime.fromtimestamp(T0, tz=UTC)
    return VmRecord(uuid=str(uuid.uuid5(uuid.NAMESPACE_DNS, name)), name=name, uri="test:///default", host="h1",
                    state=VmState.RUNNING, vcpus=vcpus, max_vcpus=vcpus, memory_bytes=mem_gib * GIB,
                    max_memory_bytes=mem_gib * GIB, labels=labels, first_seen=first, last_seen=NOW)


def hourly_points(vm: VmRecord, cpu: np.ndarray, *, used_gib: float = 1.0,
                  io_bps: float = 1e6) -> list[UsagePoint]:
    """One running hour from ``T0`` per value of ``cpu`` (vCPUs), with ``used_gib`` of memory and ``io_bps``."""
    return [
        UsagePoint(vm_uuid=vm.uuid, ts=datetime.fromtimestamp(T0 + 3600 * i, tz=UTC), state=VmState.RUNNING,
                   vcpus=vm.vcpus, memory_bytes=vm.memory_bytes, cpu_vcpus=float(c),
                   memory_used_bytes=int(used_gib * GIB), disk_read_bps=io_bps, disk_write_bps=io_bps,
                   net_rx_bps=io_bps, net_tx_bps=io_bps, interval_s=3600.0)
        for i, c in enumerate(cpu)
    ]


def host_vm(name: str, vcpus: int, mem_gib: int, host: str = "h1") -> VmRecord:
    """A running VM without labels on ``host`` (UUID derived from ``name``), seen from ``T0`` to ``NOW``."""
    return replace(running_vm(name, vcpus, mem_gib), host=host)


def signal_points(vm: VmRecord, cpu: float, used_gib: float, **signals: float) -> list[UsagePoint]:
    """``HOURS`` running hours from ``T0`` at a flat ``cpu`` and ``used_gib``, 1 MB/s of I/O, and ``signals``
    (``cpu_delay_vcpus``, ``swap_in_bps``, ``major_faults_ps``, ...)."""
    return [UsagePoint(vm_uuid=vm.uuid, ts=datetime.fromtimestamp(T0 + 3600 * i, tz=UTC), state=VmState.RUNNING,
                       vcpus=vm.vcpus, memory_bytes=vm.memory_bytes, cpu_vcpus=cpu,
                       memory_used_bytes=int(used_gib * GIB), disk_read_bps=1e6, disk_write_bps=1e6,
                       net_rx_bps=1e6, net_tx_bps=1e6, interval_s=3600.0, **signals)
            for i in range(HOURS)]
