"""Four VMs over 14 days from 2026-10-01 UTC, each with its own lifecycle, and their hourly history.

busy-1 is over-provisioned, parked-1 ran 4 days then stayed shut off, sleepy-1 idles throughout and snug-1
(g1.3) fits c1.3, which saves under 10 %. Every hour carries 50 GB of disk.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np

from collector.model import UsagePoint, VmRecord, VmState

GIB = 1024**3
T0 = datetime(2026, 10, 1, tzinfo=UTC)
DAYS = 14
NOW = T0 + timedelta(days=DAYS)
DISK_BYTES = 50e9


def lifecycle_vm(name: str, vcpus: int, mem_gib: int, state: VmState = VmState.RUNNING) -> VmRecord:
    """A VM on host h1 (UUID derived from ``name``) in ``state``, seen from ``T0`` to ``NOW``."""
    return VmRecord(uuid=str(uuid.uuid5(uuid.NAMESPACE_DNS, name)), name=name, uri="test:///default", host="h1",
                    state=state, vcpus=vcpus, max_vcpus=vcpus, memory_bytes=mem_gib * GIB,
                    max_memory_bytes=mem_gib * GIB, labels={}, first_seen=T0, last_seen=NOW)


def lifecycle_points(vm: VmRecord, hours: range, cpu: float, *, used_gib: float, io_bps: float = 1e6,
                     running: bool = True) -> list[UsagePoint]:
    """One point per hour offset in ``hours`` from ``T0``: ``cpu`` vCPUs (+ up to 10 %, seeded) when running,
    no usage when shut off; ``DISK_BYTES`` of disk either way."""
    rng = np.random.default_rng(7)
    return [
        UsagePoint(vm_uuid=vm.uuid, ts=T0 + timedelta(hours=h), state=VmState.RUNNING if running else VmState.SHUTOFF,
                   vcpus=vm.vcpus, memory_bytes=vm.memory_bytes,
                   cpu_vcpus=float(cpu * (1 + 0.1 * rng.random())) if running else None,
                   memory_used_bytes=int(used_gib * GIB) if running else None,
                   disk_read_bps=io_bps if running else None, disk_write_bps=io_bps if running else None,
                   net_rx_bps=io_bps if running else None, net_tx_bps=io_bps if running else None,
                   disk_capacity_bytes=int(DISK_BYTES), interval_s=3600.0)
        for h in hours
    ]


FLEET = {
    "busy-1": lifecycle_vm("busy-1", 8, 32),  # 0.5 vCPU, 2 GiB used: over-provisioned
    "parked-1": lifecycle_vm("parked-1", 4, 16, VmState.SHUTOFF),  # ran 4 days, shut off for the last 10
    "sleepy-1": lifecycle_vm("sleepy-1", 4, 16),  # idle throughout
    "snug-1": lifecycle_vm("snug-1", 4, 16),  # g1.3; fits c1.3 (4 vCPU, 8 GiB), which saves under 10 %
}
