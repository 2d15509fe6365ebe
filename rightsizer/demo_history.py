"""The demo fleet's SYNTHETIC usage history: working-day rhythms, batch nights, growth, idle VMs.

Everything here is generated (seeded, reproducible); the store is marked ``data_mode=demo`` so no view
mistakes it for measured data. ``usage_rates`` is shared with ``rightsizer.demo_source``, which continues
the same generator live.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import numpy as np

from collector.model import UsagePoint, VmState
from collector.store.base import TimeSeriesStore
from rightsizer.demo import DEFAULT_SEED, DEFAULT_URI, DemoVm, demo_fleet, demo_vm_records, utc_hour


def seed_synthetic_history(
    store: TimeSeriesStore,
    vms: Sequence[DemoVm] | None = None,
    days: float = 30,
    now: datetime | None = None,
    seed: int = DEFAULT_SEED,
    *,
    points_per_hour: int = 4,
    uri: str = DEFAULT_URI,
) -> int:
    """Write ``days`` of SYNTHETIC usage for the demo VMs into ``store``; returns the rows written.

    Points are every ``60 / points_per_hour`` minutes ending at ``now`` (UTC, default: the current hour).
    Also records each VM's snapshot times and sets store meta ``data_mode=demo``. Raises ValueError for a
    non-positive ``days`` or ``points_per_hour``; StoreError from the store.
    """
    if days <= 0 or points_per_hour < 1:
        raise ValueError(f"days and points_per_hour must be positive, got {days!r} and {points_per_hour!r}")
    fleet = tuple(vms) if vms is not None else demo_fleet(seed=seed)
    now = utc_hour(now)
    interval_s = 3600.0 / points_per_hour
    end = datetime.fromtimestamp(math.floor(now.timestamp() / interval_s) * interval_s, tz=UTC)
    records = demo_vm_records(fleet, now=end, days=days, uri=uri)
    written = store.write_history(records, _points(fleet, end, days, interval_s, seed))
    for vm, record in zip(fleet, records, strict=True):
        if record.newest_backup is not None:
            times = [record.newest_backup - timedelta(hours=24 * k) for k in range(3)]
            store.record_backups(vm.uuid, sorted(times))
    store.set_meta("data_mode", "demo")
    store.set_meta("demo_seed", str(seed))
    store.set_meta("demo_history", f"synthetic, {days:g} days, {points_per_hour} points per hour, until "
                   f"{end.isoformat()}")
    return written


def _points(
    fleet: Sequence[DemoVm], end: datetime, days: float, interval_s: float, seed: int,
) -> Iterator[UsagePoint]:
    count = int(days * 86400 / interval_s)
    offsets_s = (np.arange(count, 0, -1) - 1) * interval_s  # oldest first, last point at ``end``
    end_s = end.timestamp()
    epoch_s = end_s - offsets_s
    times = [datetime.fromtimestamp(t, tz=UTC) for t in epoch_s]
    hour = (epoch_s % 86400) / 3600.0
    weekday = ((epoch_s // 86400 + 3) % 7).astype(int)  # 1970-01-01 was a Thursday; Monday = 0
    progress = np.linspace(0.0, 1.0, count)
    for index, vm in enumerate(fleet):
        rng = np.random.default_rng([seed, index])
        series = usage_rates(vm, rng, hour, weekday, progress, end_s - epoch_s, interval_s)
        yield from _vm_points(vm, times, interval_s, *series)


def usage_rates(
    vm: DemoVm,
    rng: np.random.Generator,
    hour: np.ndarray,
    weekday: np.ndarray,
    progress: np.ndarray,
    age_s: np.ndarray,
    interval_s: float,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray, np.ndarray]:
    """CPU (vCPU-equivalents), memory used (bytes or None), disk and net (bytes/s), running mask."""
    n = hour.size
    level = vm.extra.get("level", 1.0)
    local_hour = hour + vm.extra.get("phase_h", 0.0)
    working = np.exp(-(((local_hour - 14.0) / 4.0) ** 2)) * np.where(weekday >= 5, 0.45, 1.0)
    noise = rng.normal(0.0, 1.0, n)
    running = np.ones(n, dtype=bool)
    mem_frac: np.ndarray
    profile = vm.profile
    if profile == "oversized":
        cpu_frac = 0.025 + 0.05 * working + 0.01 * np.abs(noise)
        # peaks stay well under a quarter of the allocation (a memory step down two): with the headroom the rule
        # adds they still fit that step, at any hour the history ends (peaks at 0.25 put the need on the step)
        mem_frac = 0.14 + 0.04 * working + 0.006 * noise
    elif profile == "idle":
        cpu_frac = np.full(n, 0.004) / vm.vcpus + 0.002 * np.abs(noise) / vm.vcpus
        mem_frac = np.full(n, 0.11) + 0.005 * noise
    elif profile == "batch":
        night = ((hour % 24) >= 1.0) & ((hour % 24) < 4.0)
        cpu_frac = np.where(night, 0.62 + 0.05 * noise, 0.05 + 0.02 * np.abs(noise))
        mem_frac = np.where(night, 0.72, 0.35) + 0.02 * noise
    elif profile == "growing":
        cpu_frac = (0.15 + 0.45 * progress) + 0.2 * working + 0.03 * noise
        mem_frac = 0.30 + 0.45 * progress + 0.02 * noise
    elif profile == "undersized":
        cpu_frac = 0.72 + 0.3 * working + 0.06 * noise
        mem_frac = 0.90 + 0.05 * working + 0.01 * noise
    else:  # steady, no-balloon-stats, and shut-off VMs before they were stopped
        cpu_frac = 0.12 + 0.38 * working * level + 0.03 * noise
        mem_frac = 0.58 + 0.08 * working + 0.015 * noise
    if profile == "shutoff":
        running = age_s > vm.extra.get("off_days_ago", 7.0) * 86400
        cpu_frac = cpu_frac * 0.5
    # Rare one-off spikes (about one day in thirty has one) keep maxima and percentiles apart.
    if profile != "idle":
        spikes = rng.random(n) < interval_s / 86400.0 / 30.0
        cpu_frac = np.where(spikes, np.maximum(cpu_frac, rng.uniform(0.5, 0.9, n)), cpu_frac)
    cpu = np.clip(cpu_frac, 0.0005, 1.0) * vm.vcpus
    mem: np.ndarray | None = np.clip(mem_frac, 0.05, 0.99) * vm.memory_bytes
    if profile == "no-balloon-stats":
        mem = None
    active = profile not in ("idle",)
    disk = cpu * (1.5e6 if active else 2.0e3) * rng.lognormal(0.0, 0.3, n)
    net = cpu * (0.8e6 if active else 1.0e3) * rng.lognormal(0.0, 0.3, n)
    return cpu, mem, disk, net, running


def _vm_points(
    vm: DemoVm,
    times: Sequence[datetime],
    interval_s: float,
    cpu: np.ndarray,
    mem: np.ndarray | None,
    disk: np.ndarray,
    net: np.ndarray,
    running: np.ndarray,
) -> Iterator[UsagePoint]:
    cpu_l = cpu.tolist()
    mem_l = None if mem is None else mem.astype(np.int64).tolist()
    disk_l = disk.tolist()
    net_l = net.tolist()
    run_l = running.tolist()
    was_running = False
    for i, ts in enumerate(times):
        if not run_l[i]:
            was_running = False
            yield UsagePoint(
                vm_uuid=vm.uuid, ts=ts, state=VmState.SHUTOFF, vcpus=vm.vcpus, memory_bytes=vm.memory_bytes,
                disk_capacity_bytes=vm.disk_capacity_bytes, interval_s=interval_s,
            )
            continue
        if not was_running:  # first sample after a start: no rate yet
            was_running = True
            yield UsagePoint(
                vm_uuid=vm.uuid, ts=ts, state=VmState.RUNNING, vcpus=vm.vcpus, memory_bytes=vm.memory_bytes,
                memory_used_bytes=None if mem_l is None else mem_l[i],
                disk_capacity_bytes=vm.disk_capacity_bytes, interval_s=interval_s, gap=True,
            )
            continue
        yield UsagePoint(
            vm_uuid=vm.uuid,
            ts=ts,
            state=VmState.RUNNING,
            vcpus=vm.vcpus,
            memory_bytes=vm.memory_bytes,
            cpu_vcpus=cpu_l[i],
            memory_used_bytes=None if mem_l is None else mem_l[i],
            disk_read_bps=disk_l[i] * 0.6,
            disk_write_bps=disk_l[i] * 0.4,
            net_rx_bps=net_l[i] * 0.55,
            net_tx_bps=net_l[i] * 0.45,
            disk_capacity_bytes=vm.disk_capacity_bytes,
            interval_s=interval_s,
        )
