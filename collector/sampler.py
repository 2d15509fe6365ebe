"""One collection cycle: sample every source, turn counters into rates, store, publish a snapshot.

Rates come from the difference of cumulative counters between two cycles. A counter that goes
backwards (guest reboot, domain restart, migration) or a first sighting yields no rate for that
interval (``None``) and the point is marked as a gap -- a negative rate never reaches the store.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from collector.errors import RightsizerError, StoreError
from collector.guestfs import record_usage
from collector.hypervisor.base import HypervisorSource
from collector.model import SampleBatch, UsagePoint, VmError, VmSample, VmState
from collector.store.base import Counters, TimeSeriesStore
from collector.store.jsonmeta import HOST_CPUS_KEY, merge_json_meta

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
#: Sources sampled at once: one per core (at least 2, at most 8). More threads only add GIL contention
#: (measured, 10 test-driver URIs x 1,000 domains on 2 cores: 8 threads 2.5 s, 2 threads 1.0 s per cycle).
#: ``errors_total{kind}`` of a cycle that could not be stored (full disk, I/O error).
STORE_ERROR_KIND = "store"
MAX_SAMPLING_THREADS = max(2, min(8, os.cpu_count() or 2))


def utc_now() -> datetime:
    return datetime.now(UTC)


def _rate(cur: int | None, prev: int | None, interval_s: float) -> tuple[float | None, bool]:
    """Per-second rate of a cumulative counter; (None, True) when it reset or is unknown."""
    if cur is None or prev is None:
        return None, False
    if cur < prev:
        return None, True
    return (cur - prev) / interval_s, False


def usage_point(sample: VmSample, prev: Counters | None, taken_at: datetime,
                max_interval_s: float | None = None) -> tuple[UsagePoint, Counters]:
    """Turn one sample and the VM's previous counters into a usage point and new counters.

    CPU demand is cpu_time delta (ns) / wall delta (ns), in vCPU-equivalents. A shut-off VM demands
    nothing (all rates 0) and its counters are forgotten, so the next start begins a fresh series.
    """
    counters = Counters(
        vm_uuid=sample.ref.uuid, ts=taken_at, cpu_time_ns=sample.cpu_time_ns,
        disk_read_bytes=sample.disk_read_bytes if sample.disks else None,
        disk_write_bytes=sample.disk_write_bytes if sample.disks else None,
        net_rx_bytes=sample.net_rx_bytes if sample.nets else None,
        net_tx_bytes=sample.net_tx_bytes if sample.nets else None,
        cpu_delay_ns=sample.cpu_delay_ns, swap_in_bytes=sample.swap_in_bytes,
        swap_out_bytes=sample.swap_out_bytes, major_faults=sample.major_faults,
        disk_read_reqs=sample.disk_read_reqs, disk_write_reqs=sample.disk_write_reqs,
        disk_read_time_ns=sample.disk_read_time_ns, disk_write_time_ns=sample.disk_write_time_ns,
    )
    base = UsagePoint(vm_uuid=sample.ref.uuid, ts=taken_at, state=sample.state, vcpus=sample.vcpus,
                      memory_bytes=sample.memory_bytes, disk_capacity_bytes=sample.disk_capacity_bytes,
                      disk_allocation_bytes=sample.disk_allocation_bytes)
    if prev is not None and prev.cpu_time_ns is None and prev.disk_read_bytes is None and prev.net_rx_bytes is None:
        prev = None  # nothing to diff against (VM was off, or the source reports no counters)
    interval_s = (taken_at - prev.ts).total_seconds() if prev is not None else None
    if sample.state is not VmState.RUNNING:
        point = replace(base, cpu_vcpus=0.0, memory_used_bytes=None, disk_read_bps=0.0,
                        disk_write_bps=0.0, net_rx_bps=0.0, net_tx_bps=0.0, interval_s=interval_s,
                        cpu_delay_vcpus=0.0, swap_in_bps=0.0, swap_out_bps=0.0, major_faults_ps=0.0,
                        disk_read_iops=0.0, disk_write_iops=0.0, disk_read_time_s_per_s=0.0,
                        disk_write_time_s_per_s=0.0)
        blank = Counters(sample.ref.uuid, taken_at, None, None, None, None, None)
        return point, blank
    if prev is None or interval_s is None or interval_s <= 0:
        return replace(base, memory_used_bytes=sample.memory_used_bytes, gap=True), counters
    cpu_ns_rate, reset_cpu = _rate(sample.cpu_time_ns, prev.cpu_time_ns, interval_s)
    rd, reset_rd = _rate(counters.disk_read_bytes, prev.disk_read_bytes, interval_s)
    wr, reset_wr = _rate(counters.disk_write_bytes, prev.disk_write_bytes, interval_s)
    rx, reset_rx = _rate(counters.net_rx_bytes, prev.net_rx_bytes, interval_s)
    tx, reset_tx = _rate(counters.net_tx_bytes, prev.net_tx_bytes, interval_s)
    reset = reset_cpu or reset_rd or reset_wr or reset_rx or reset_tx
    long_gap = max_interval_s is not None and interval_s > max_interval_s
    if reset:
        # a reset invalidates every counter of the interval: the guest restarted somewhere inside it
        cpu_ns_rate = rd = wr = rx = tx = None
    point = replace(
        base if reset else with_signal_rates(base, counters, prev, interval_s),
        cpu_vcpus=None if cpu_ns_rate is None else cpu_ns_rate / 1e9,
        memory_used_bytes=sample.memory_used_bytes,
        disk_read_bps=rd, disk_write_bps=wr, net_rx_bps=rx, net_tx_bps=tx,
        interval_s=min(interval_s, max_interval_s) if long_gap and max_interval_s else interval_s,
        gap=reset or long_gap,
    )
    return point, counters


def with_signal_rates(point: UsagePoint, cur: Counters, prev: Counters, interval_s: float) -> UsagePoint:
    """``point`` with the contention/pressure/disk rates; a counter that reset or is unknown gives None.

    Each counter stands alone: the guest's balloon stats can restart without the domain restarting.
    Nanosecond counters (vCPU delay, disk times) become seconds per second.
    """

    def rate(now: int | None, before: int | None, scale: float = 1.0) -> float | None:
        value, _reset = _rate(now, before, interval_s)
        return None if value is None else value * scale

    return replace(
        point,
        cpu_delay_vcpus=rate(cur.cpu_delay_ns, prev.cpu_delay_ns, 1e-9),
        swap_in_bps=rate(cur.swap_in_bytes, prev.swap_in_bytes),
        swap_out_bps=rate(cur.swap_out_bytes, prev.swap_out_bytes),
        major_faults_ps=rate(cur.major_faults, prev.major_faults),
        disk_read_iops=rate(cur.disk_read_reqs, prev.disk_read_reqs),
        disk_write_iops=rate(cur.disk_write_reqs, prev.disk_write_reqs),
        disk_read_time_s_per_s=rate(cur.disk_read_time_ns, prev.disk_read_time_ns, 1e-9),
        disk_write_time_s_per_s=rate(cur.disk_write_time_ns, prev.disk_write_time_ns, 1e-9),
    )


@dataclass(frozen=True, slots=True)
class UriHealth:
    """Health of one URI after the latest cycle."""

    uri: str
    up: bool
    last_ok: datetime | None
    message: str = ""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the exporter serves: the latest batch per URI and health counters. Immutable."""

    batches: dict[str, SampleBatch] = field(default_factory=dict)
    points: dict[str, UsagePoint] = field(default_factory=dict)
    health: dict[str, UriHealth] = field(default_factory=dict)
    cycle_seconds: float = 0.0
    cycles_total: int = 0
    errors_total: dict[str, int] = field(default_factory=dict)
    taken_at: datetime | None = None
    #: why the last cycle could not be stored (a full disk...), "" when it was
    store_fault: str = ""


class Sampler:
    """Runs cycles over several sources; one unreachable URI never stops the others."""

    def __init__(
        self,
        sources: Sequence[HypervisorSource],
        store: TimeSeriesStore,
        *,
        clock: Clock = utc_now,
        interval_s: float = 60.0,
    ) -> None:
        self.sources = list(sources)
        self.store = store
        self.clock = clock
        self.interval_s = interval_s
        self._prev: dict[str, Counters] = store.counters()
        self._snapshot = Snapshot()
        self._lock = threading.Lock()
        self._last_prune = 0.0
        self._pool: ThreadPoolExecutor | None = None
        self._host_cpus: dict[str, int] = {}  # as last recorded in the store's meta

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def sample(self) -> list[SampleBatch]:
        """Sample every source once without storing anything; several sources are sampled in parallel.

        libvirt-python releases the GIL inside each call, so URIs overlap their waits (remote daemons)
        and, for in-process drivers, their C work. One source is only ever used by one thread at a time.
        """
        if len(self.sources) < 2:
            return [self._sample_one(source) for source in self.sources]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=min(MAX_SAMPLING_THREADS, len(self.sources)),
                                            thread_name_prefix="sample")
        return list(self._pool.map(self._sample_one, self.sources))

    def _sample_one(self, source: HypervisorSource) -> SampleBatch:
        try:
            return source.sample_all()
        except RightsizerError as exc:  # sources should not raise; record it if one does
            log.warning("sampling %s failed: %s", source.uri, exc)
            return SampleBatch(uri=source.uri, host="", taken_at=self.clock(), ok=False,
                               errors=(VmError(None, "source", str(exc)),))

    def poll_once(self) -> list[SampleBatch]:
        """Sample every source once, store the cycle, publish the snapshot; returns the batches.

        Raises StoreError only when the store cannot be written (nothing of the cycle is kept then).
        """
        with self._lock:  # a scheduler misfire must not run two cycles at once
            started = time.perf_counter()
            batches = self.sample()
            self._ingest(batches, started)
            return batches

    def ingest(self, batches: Sequence[SampleBatch]) -> list[UsagePoint]:
        """Store batches sampled earlier (see ``sample``) and publish the snapshot; returns the points."""
        with self._lock:
            return self._ingest(batches, time.perf_counter())

    def _ingest(self, batches: Sequence[SampleBatch], started: float) -> list[UsagePoint]:
        errors = dict(self._snapshot.errors_total)
        health = dict(self._snapshot.health)
        points_by_vm = dict(self._snapshot.points)
        latest = dict(self._snapshot.batches)
        all_points: list[UsagePoint] = []
        try:
            self._store_batches(batches, errors, health, points_by_vm, latest, all_points)
            self._maybe_prune()
        except StoreError as exc:
            # counted and shown (errors_total{kind="store"}, readiness) while it lasts; nothing of it was kept
            errors[STORE_ERROR_KIND] = errors.get(STORE_ERROR_KIND, 0) + 1
            self._publish(latest, points_by_vm, health, errors, started, store_fault=str(exc))
            raise
        self._publish(latest, points_by_vm, health, errors, started)
        return all_points

    def _publish(self, latest: dict[str, SampleBatch], points_by_vm: dict[str, UsagePoint],
                 health: dict[str, UriHealth], errors: dict[str, int], started: float, *,
                 store_fault: str = "") -> None:
        self._snapshot = Snapshot(
            batches=latest, points=points_by_vm, health=health,
            cycle_seconds=time.perf_counter() - started, cycles_total=self._snapshot.cycles_total + 1,
            errors_total=errors, taken_at=self.clock(), store_fault=store_fault,
        )

    def _store_batches(self, batches: Sequence[SampleBatch], errors: dict[str, int], health: dict[str, UriHealth],
                       points_by_vm: dict[str, UsagePoint], latest: dict[str, SampleBatch],
                       all_points: list[UsagePoint]) -> None:
        for batch in batches:
            prev_ok = health.get(batch.uri)
            health[batch.uri] = UriHealth(
                uri=batch.uri, up=batch.ok,
                last_ok=batch.taken_at if batch.ok else (prev_ok.last_ok if prev_ok else None),
                message="; ".join(e.message for e in batch.errors if e.ref is None),
            )
            for err in batch.errors:
                errors[err.kind] = errors.get(err.kind, 0) + 1
            if not batch.ok:
                continue
            latest[batch.uri] = batch
            points: list[UsagePoint] = []
            counters: list[Counters] = []
            for sample in batch.samples:
                point, new = usage_point(sample, self._prev.get(sample.ref.uuid), batch.taken_at,
                                         max_interval_s=3 * self.interval_s)
                points.append(point)
                counters.append(new)
            self.store.write(batch, points, counters)
            self._record_host_cpus(batch)
            if batch.guest_fs:
                record_usage(self.store, batch.guest_fs)
            all_points.extend(points)
            for point, new in zip(points, counters, strict=True):
                self._prev[new.vm_uuid] = new
                points_by_vm[point.vm_uuid] = point
            log.debug("%s: %d VMs, %d errors in %.3f s", batch.uri, len(batch.samples),
                      len(batch.errors), batch.duration_s)

    def _record_host_cpus(self, batch: SampleBatch) -> None:
        """Keep each host's CPU count in the store (for overcommit views); written only when it changes."""
        if not batch.host or not batch.host_cpus or self._host_cpus.get(batch.host) == batch.host_cpus:
            return
        merge_json_meta(self.store, HOST_CPUS_KEY, {batch.host: batch.host_cpus})
        self._host_cpus[batch.host] = batch.host_cpus

    def _maybe_prune(self) -> None:
        mono = time.monotonic()
        if mono - self._last_prune < 3600:
            return
        self._last_prune = mono
        removed = self.store.prune(self.clock())
        if removed:
            log.info("retention: removed %d old rows", removed)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        for source in self.sources:
            source.close()
