"""The time-series store interface that the collector writes and analytics/dashboard read.

Frames are long format, one row per (vm, ts), ``ts`` as ``datetime64[ns, UTC]``, ``vm`` the VM's UUID.
Column names carry their units. The two resolutions:

``raw`` (one row per stored interval; rates over the interval ending at ``ts``)
    vm, ts, state, vcpus, memory_bytes, cpu_vcpus, memory_used_bytes, disk_read_bps, disk_write_bps,
    net_rx_bps, net_tx_bps, disk_capacity_bytes, interval_s, gap, then the signals:
    cpu_delay_vcpus (host-CPU wait summed over vCPUs, s/s), swap_in_bps, swap_out_bps, major_faults_ps,
    disk_read_iops, disk_write_iops, disk_read_time_s_per_s, disk_write_time_s_per_s (time spent on
    requests per second, summed over disks), disk_allocation_bytes

``hour`` (one row per VM and hour; ``ts`` is the start of the hour)
    vm, ts, samples, running_s, vcpus, memory_bytes, cpu_mean_vcpus, cpu_p95_vcpus, cpu_max_vcpus,
    memory_used_max_bytes, memory_used_mean_bytes, disk_read_bytes, disk_write_bytes, net_rx_bytes,
    net_tx_bytes, disk_capacity_bytes, then the signals: cpu_delay_mean_vcpus, cpu_delay_max_vcpus,
    swap_in_bytes, swap_out_bytes, major_faults (sums over the hour), major_faults_max_ps, swap_max_bps
    (worst interval), disk_read_reqs, disk_write_reqs, disk_read_time_s, disk_write_time_s (sums),
    disk_iops_p99, disk_bps_p99 (read+write, P99 of the hour's intervals), disk_allocation_bytes

``vcpus``/``memory_bytes`` in the hour frame are the allocation's maximum within the hour; ``running_s``
is the time the VM was seen running (what pay-as-you-go billing counts). Missing values are NaN.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

import pandas as pd

from collector.model import SampleBatch, UsagePoint, VmRecord
from core.dismissals import Dismissal

#: Contention, memory-pressure and disk-performance signals (schema version 2); NaN where not reported.
SIGNAL_RAW_COLUMNS: tuple[str, ...] = (
    "cpu_delay_vcpus", "swap_in_bps", "swap_out_bps", "major_faults_ps", "disk_read_iops", "disk_write_iops",
    "disk_read_time_s_per_s", "disk_write_time_s_per_s", "disk_allocation_bytes",
)
SIGNAL_HOUR_COLUMNS: tuple[str, ...] = (
    "cpu_delay_mean_vcpus", "cpu_delay_max_vcpus", "swap_in_bytes", "swap_out_bytes", "major_faults",
    "major_faults_max_ps", "swap_max_bps", "disk_read_reqs", "disk_write_reqs", "disk_read_time_s",
    "disk_write_time_s", "disk_iops_p99", "disk_bps_p99", "disk_allocation_bytes",
)
RAW_COLUMNS: tuple[str, ...] = (
    "vm", "ts", "state", "vcpus", "memory_bytes", "cpu_vcpus", "memory_used_bytes",
    "disk_read_bps", "disk_write_bps", "net_rx_bps", "net_tx_bps", "disk_capacity_bytes",
    "interval_s", "gap", *SIGNAL_RAW_COLUMNS,
)
HOUR_COLUMNS: tuple[str, ...] = (
    "vm", "ts", "samples", "running_s", "vcpus", "memory_bytes", "cpu_mean_vcpus", "cpu_p95_vcpus",
    "cpu_max_vcpus", "memory_used_max_bytes", "memory_used_mean_bytes", "disk_read_bytes",
    "disk_write_bytes", "net_rx_bytes", "net_tx_bytes", "disk_capacity_bytes", *SIGNAL_HOUR_COLUMNS,
)

Resolution = Literal["raw", "hour"]


@dataclass(frozen=True, slots=True)
class Counters:
    """Last cumulative counters seen for a VM, kept so rates survive a collector restart."""

    vm_uuid: str
    ts: datetime
    cpu_time_ns: int | None
    disk_read_bytes: int | None
    disk_write_bytes: int | None
    net_rx_bytes: int | None
    net_tx_bytes: int | None
    cpu_delay_ns: int | None = None
    swap_in_bytes: int | None = None
    swap_out_bytes: int | None = None
    major_faults: int | None = None
    disk_read_reqs: int | None = None
    disk_write_reqs: int | None = None
    disk_read_time_ns: int | None = None
    disk_write_time_ns: int | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One append-only record of an action (resize) attempt."""

    ts: datetime
    actor: str
    vm_uuid: str
    vm_name: str
    action: str
    before: Mapping[str, Any]
    after: Mapping[str, Any]
    result: str  # planned | applied | skipped | failed | reverted | revert-failed
    reason: str
    plan_id: str = ""
    price_before_per_hour: float | None = None
    price_after_per_hour: float | None = None
    currency: str = ""
    id: int | None = None


class TimeSeriesStore(Protocol):
    """Embedded time-series store. Every write is one transaction; readers never block the writer."""

    def write(self, batch: SampleBatch, points: Sequence[UsagePoint], counters: Sequence[Counters]) -> None:
        """Store one collection cycle: inventory from ``batch``, the usage points and the new counters.

        Raises StoreError. Either all of it is stored or none.
        """

    def write_history(self, vms: Sequence[VmRecord], points: Iterable[UsagePoint]) -> int:
        """Bulk-load imported or synthetic history (one transaction); returns the rows written."""

    def counters(self) -> dict[str, Counters]:
        """Last counters per VM UUID (empty on a new store)."""

    def vms(self) -> list[VmRecord]:
        """Every VM the store knows, newest spec and labels."""

    def frame(
        self,
        start: datetime,
        end: datetime,
        *,
        resolution: Resolution = "hour",
        vms: Collection[str] | None = None,
        columns: Collection[str] | None = None,
    ) -> pd.DataFrame:
        """Usage rows with ``start <= ts < end`` in long format (see module doc for columns).

        ``columns``: the only value columns the caller reads; a store may leave the others NaN or out of the frame
        (a remote source then fetches less, a local one holds less). The rows are the same either way.
        """

    def time_range(self) -> tuple[datetime, datetime] | None:
        """Oldest and newest raw timestamp stored, or None when empty."""

    def record_backups(self, vm_uuid: str, times: Sequence[datetime], kind: str = "snapshot") -> None:
        """Remember backup/snapshot creation times for a VM (idempotent)."""

    def backups(self) -> dict[str, datetime]:
        """Newest backup time per VM UUID."""

    def append_audit(self, entry: AuditEntry) -> int:
        """Append one audit record; returns its id. Records are never updated or deleted."""

    def audit(self, vm_uuid: str | None = None) -> list[AuditEntry]:
        """Audit records, oldest first."""

    def dismissals(self) -> list[Dismissal]:
        """Every stored dismissal, expired ones included (the analysis applies those active at its time)."""

    def dismiss(self, dismissal: Dismissal) -> None:
        """Store ``dismissal`` (replacing one of the same VM and kind) and its audit row, in one transaction."""

    def restore(self, vm_uuid: str, *, actor: str, at: datetime, kind: str | None = None) -> list[Dismissal]:
        """Remove the VM's dismissals (of ``kind`` only when given) with a ``restore`` audit row each;
        returns those removed."""

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...

    def prune(self, now: datetime) -> int:
        """Drop raw rows and rollups past their retention; returns rows removed."""

    def close(self) -> None: ...
