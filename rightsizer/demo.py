"""The built-in demo fleet: a libvirt test-driver node file and an honestly labelled synthetic history.

``make run`` on a machine without a reachable ``qemu:///system`` serves this fleet so that a newcomer sees a
populated dashboard. The inventory (names, UUIDs, vCPUs, memory, labels, run state, snapshots) is real libvirt
test-driver XML; the usage history is SYNTHETIC -- generated here, marked ``source="demo"`` on every VM record
and ``data_mode=demo`` in the store's meta table -- because the test driver reports no usable utilisation
(its cpuTime is wall-clock, NOTES-environment.md).

Behaviours present in a fleet of 24 (and repeated in larger ones): steady web/app servers with a working-day
rhythm, over-provisioned VMs, idle VMs, nightly batch jobs, one VM whose load grows over the window, one that is
under-provisioned, one whose guest reports no memory figures, and a few shut off.
"""

from __future__ import annotations

import math
import random
import uuid as uuidlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from collector.hypervisor.base import HypervisorSource
from collector.model import DiskSample, NetSample, SampleBatch, UsagePoint, VmRecord, VmState
from collector.store.base import TimeSeriesStore

LABELS_NAMESPACE = "https://rightsizer.dev/xmlns/labels/1"
TEST_NAMESPACE = "http://libvirt.org/schemas/domain/test/1.0"
DEFAULT_SEED = 20240601
DEFAULT_URI = "test:///demo/fleet.xml"
GIB = 1024**3
KIB = 1024
#: libvirt's VIR_DOMAIN_SHUTOFF, as ``<test:runstate>`` expects it.
_RUNSTATE_SHUTOFF = 5

Profile = Literal[
    "steady", "oversized", "idle", "batch", "growing", "undersized", "no-balloon-stats", "shutoff",
]

#: The first 24 VMs follow this list; later ones draw from _PROFILE_WEIGHTS.
_TEMPLATE: tuple[Profile, ...] = (
    "steady", "steady", "oversized", "steady", "idle", "batch", "steady", "oversized",
    "growing", "steady", "undersized", "idle", "steady", "oversized", "no-balloon-stats", "shutoff",
    "steady", "batch", "oversized", "steady", "idle", "shutoff", "steady", "shutoff",
)
#: Indices among the first 24 whose newest backup is older than their policy allows.
_BACKUP_GAPS = frozenset({3, 9, 18})
#: Indices among the first 24 that have a backup policy but no backup at all.
_NEVER_BACKED_UP = frozenset({12})
_PROFILE_WEIGHTS: dict[Profile, float] = {
    "steady": 0.40, "oversized": 0.22, "idle": 0.10, "batch": 0.10, "growing": 0.04,
    "undersized": 0.04, "no-balloon-stats": 0.04, "shutoff": 0.06,
}
#: (team, project, role) combinations VM names are drawn from.
_WORKLOADS: tuple[tuple[str, str, str], ...] = (
    ("payments", "checkout", "api"), ("payments", "billing", "worker"), ("search", "catalog", "api"),
    ("search", "indexer", "worker"), ("data", "etl", "batch"), ("data", "warehouse", "db"),
    ("platform", "ci", "runner"), ("platform", "monitoring", "tsdb"), ("web", "shop", "frontend"),
    ("web", "cms", "app"),
)
#: (vCPUs, memory GiB, machine type of the default catalogue with exactly that shape).
_SHAPES: tuple[tuple[int, int, str], ...] = (
    (1, 4, "g1.1"), (2, 4, "c1.2"), (2, 8, "g1.2"), (4, 8, "c1.3"), (4, 16, "g1.3"),
    (8, 16, "c1.4"), (8, 32, "g1.4"), (2, 16, "m1.2"), (16, 64, "g1.5"),
)
_SHAPE_BY_PROFILE: dict[Profile, tuple[int, ...]] = {
    "steady": (2, 3, 4, 5), "oversized": (6, 7, 8), "idle": (0, 1, 2), "batch": (3, 4, 5),
    "growing": (4,), "undersized": (1,), "no-balloon-stats": (2, 4), "shutoff": (2, 3, 4),
}


@dataclass(frozen=True, slots=True)
class DemoVm:
    """One demo VM: its libvirt identity and spec, and the behaviour its synthetic history follows."""

    name: str
    uuid: str
    host: str
    vcpus: int
    memory_bytes: int
    disk_capacity_bytes: int
    labels: Mapping[str, str]
    profile: Profile
    running: bool = True
    backup_age_h: float | None = None  # newest snapshot's age at seeding time, hours; None = never backed up
    extra: Mapping[str, float] = field(default_factory=dict)


def demo_fleet(n: int = 24, seed: int = DEFAULT_SEED) -> tuple[DemoVm, ...]:
    """Build ``n`` demo VM specs, deterministic for a seed. Raises ValueError when ``n`` < 1."""
    if n < 1:
        raise ValueError(f"demo fleet size must be at least 1, got {n!r}")
    rng = random.Random(seed)
    hosts = [f"demo-host-{i + 1}" for i in range(max(3, math.ceil(n / 25)))]
    counters: dict[str, int] = {}
    vms: list[DemoVm] = []
    profiles = list(_PROFILE_WEIGHTS)
    weights = list(_PROFILE_WEIGHTS.values())
    for i in range(n):
        profile: Profile = _TEMPLATE[i] if i < len(_TEMPLATE) else rng.choices(profiles, weights)[0]
        team, project, role = _WORKLOADS[i % len(_WORKLOADS)] if i < len(_TEMPLATE) else rng.choice(_WORKLOADS)
        key = f"{project}-{role}"
        counters[key] = counters.get(key, 0) + 1
        name = f"{key}-{counters[key]:02d}"
        vcpus, mem_gib, type_name = _SHAPES[rng.choice(_SHAPE_BY_PROFILE[profile])]
        env = "prod" if rng.random() < 0.55 else rng.choice(("staging", "dev"))
        if profile == "idle" and env == "prod":
            env = "dev"
        labels: dict[str, str] = {"team": team, "env": env, "project": project}
        policy = "24h" if env == "prod" else rng.choice(("7d", "7d", "24h", "none"))
        labels["backup_policy"] = policy
        if rng.random() < 0.3:
            labels["machine_type"] = type_name
        if i % 17 == 9:
            labels["rightsizer_exclude"] = "true"
        backup_age_h: float | None
        limit_h = {"24h": 24.0, "7d": 168.0}.get(policy)
        if policy == "none":
            backup_age_h = None
        elif i in _BACKUP_GAPS or (i >= len(_TEMPLATE) and rng.random() < 0.15):
            # a backup gap: the newest snapshot is older than the policy allows
            backup_age_h = (limit_h or 168.0) * rng.uniform(1.5, 5.0)
        elif i in _NEVER_BACKED_UP or (i >= len(_TEMPLATE) and rng.random() < 0.03):
            backup_age_h = None  # policy says back up, yet nothing was ever taken
        else:
            backup_age_h = (limit_h or 168.0) * rng.uniform(0.05, 0.8)
        vms.append(
            DemoVm(
                name=name,
                uuid=str(uuidlib.UUID(int=rng.getrandbits(128), version=4)),
                host=hosts[i % len(hosts)],
                vcpus=vcpus,
                memory_bytes=mem_gib * GIB,
                disk_capacity_bytes=rng.choice((20, 50, 100, 200, 500)) * 10**9,
                labels=labels,
                profile=profile,
                running=profile != "shutoff",
                backup_age_h=backup_age_h,
                extra={"phase_h": rng.uniform(-1.5, 1.5), "level": rng.uniform(0.8, 1.2),
                       "off_days_ago": rng.uniform(4.0, 12.0)},
            )
        )
    return tuple(vms)


def write_demo_fleet_xml(
    path: Path | str,
    n: int = 24,
    seed: int = DEFAULT_SEED,
    *,
    now: datetime | None = None,
    vms: Sequence[DemoVm] | None = None,
) -> tuple[DemoVm, ...]:
    """Write a libvirt test-driver node file for the demo fleet and return the VMs it holds.

    Open it as ``test:///<absolute path>``. Shut-off VMs carry ``<test:runstate>5``; VMs with a backup get a
    snapshot whose ``creationTime`` is ``now`` minus the backup age (UTC). Raises OSError when unwritable.
    """
    now = _utc(now)
    fleet = tuple(vms) if vms is not None else demo_fleet(n, seed)
    parts = [f"<node xmlns:test={quoteattr(TEST_NAMESPACE)}>\n"]
    for vm in fleet:
        parts.append(_domain_xml(vm, now))
    parts.append("</node>\n")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("".join(parts), encoding="utf-8")
    return fleet


def _domain_xml(vm: DemoVm, now: datetime) -> str:
    labels = "".join(
        f"<rs:label name={quoteattr(k)}>{escape(v)}</rs:label>" for k, v in sorted(vm.labels.items())
    )
    mem_kib = vm.memory_bytes // KIB
    lines = [
        "  <domain type='test'>",
        f"    <name>{escape(vm.name)}</name>",
        f"    <uuid>{vm.uuid}</uuid>",
        "    <description>rightsizer demo fleet (usage history is synthetic)</description>",
        f"    <metadata><rs:labels xmlns:rs={quoteattr(LABELS_NAMESPACE)}>{labels}</rs:labels></metadata>",
        f"    <memory unit='KiB'>{mem_kib}</memory>",
        f"    <currentMemory unit='KiB'>{mem_kib}</currentMemory>",
        f"    <vcpu placement='static'>{vm.vcpus}</vcpu>",
        "    <os><type arch='x86_64'>hvm</type></os>",
        "    <devices>",
        f"      <disk type='file' device='disk'><source file='/var/lib/rightsizer-demo/{vm.uuid}.qcow2'/>"
        "<target dev='vda' bus='virtio'/></disk>",
        "      <memballoon model='virtio'/>",
        "    </devices>",
    ]
    if not vm.running:
        lines.append(f"    <test:runstate>{_RUNSTATE_SHUTOFF}</test:runstate>")
    if vm.backup_age_h is not None:
        created = int((now - timedelta(hours=vm.backup_age_h)).timestamp())
        # The test driver parses <test:domainsnapshot> as a snapshot redefinition: it needs <active> and,
        # to stay quiet, the domain definition the snapshot was taken of.
        lines.append(
            f"    <test:domainsnapshot><name>backup-{created}</name><state>shutoff</state>"
            f"<creationTime>{created}</creationTime><active>0</active>"
            f"<domain type='test'><name>{escape(vm.name)}</name><uuid>{vm.uuid}</uuid>"
            f"<memory unit='KiB'>{mem_kib}</memory><vcpu>{vm.vcpus}</vcpu><os><type>hvm</type></os></domain>"
            "</test:domainsnapshot>"
        )
    lines.append("  </domain>\n")
    return "\n".join(lines)


def demo_vm_records(
    vms: Sequence[DemoVm], *, now: datetime | None = None, days: float = 30, uri: str = DEFAULT_URI,
) -> list[VmRecord]:
    """Inventory rows for the demo VMs, first seen ``days`` before ``now`` (UTC), ``source="demo"``."""
    now = _utc(now)
    start = now - timedelta(days=days)
    return [
        VmRecord(
            uuid=vm.uuid,
            name=vm.name,
            uri=uri,
            host=vm.host,
            state=VmState.RUNNING if vm.running else VmState.SHUTOFF,
            vcpus=vm.vcpus,
            max_vcpus=vm.vcpus,
            memory_bytes=vm.memory_bytes,
            max_memory_bytes=vm.memory_bytes,
            labels=dict(vm.labels),
            first_seen=start,
            last_seen=now,
            source="demo",
            newest_backup=None if vm.backup_age_h is None else now - timedelta(hours=vm.backup_age_h),
        )
        for vm in vms
    ]


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
    now = _utc(now)
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
        series = _usage(vm, rng, hour, weekday, progress, end_s - epoch_s, interval_s)
        yield from _vm_points(vm, times, interval_s, *series)


def _usage(
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
        mem_frac = 0.16 + 0.05 * working + 0.01 * noise
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


class DemoSource:
    """``HypervisorSource`` for ``serve`` in demo mode: real test-driver inventory, synthetic usage.

    States, specs and labels come from libvirt (the test driver, through the ordinary source); hosts come
    from the demo fleet, and usage continues the same SYNTHETIC generator the seeded history used, as
    cumulative counters, so rates, the store and /metrics behave as they do on a real host. The test
    driver's own counters are synthetic too (its CPU time is wall-clock) and are not used.
    """

    def __init__(self, inner: HypervisorSource, fleet: Sequence[DemoVm], *, seed: int = DEFAULT_SEED) -> None:
        self._inner = inner
        self._fleet = {vm.uuid: (index, vm) for index, vm in enumerate(fleet)}
        self._seed = seed
        self._counters: dict[str, list[float]] = {}
        self._last: datetime | None = None
        self._cycle = 0

    @property
    def uri(self) -> str:
        return self._inner.uri

    def close(self) -> None:
        self._inner.close()

    def sample_all(self) -> SampleBatch:
        """Sample the test driver and replace its counters with the demo fleet's synthetic ones."""
        batch = self._inner.sample_all()
        if not batch.ok:
            return batch
        now = batch.taken_at
        elapsed_s = 0.0 if self._last is None else max(0.0, (now - self._last).total_seconds())
        self._last = now
        self._cycle += 1
        epoch_s = np.array([now.timestamp()])
        hour = (epoch_s % 86400) / 3600.0
        weekday = ((epoch_s // 86400 + 3) % 7).astype(int)
        samples = []
        for sample in batch.samples:
            known = self._fleet.get(sample.ref.uuid)
            if known is None:
                samples.append(sample)
                continue
            index, vm = known
            counters = self._counters.setdefault(vm.uuid, [0.0] * 5)
            used: int | None = None
            if sample.state is VmState.RUNNING:
                rng = np.random.default_rng([self._seed, index, self._cycle])
                cpu, mem, disk, net, _ = _usage(vm, rng, hour, weekday, np.ones(1), np.zeros(1), 60.0)
                for k, rate in enumerate((cpu[0] * 1e9, disk[0] * 0.6, disk[0] * 0.4, net[0] * 0.55, net[0] * 0.45)):
                    counters[k] += float(rate) * elapsed_s
                used = None if mem is None else int(mem[0])
            samples.append(replace(
                sample, host=vm.host, cpu_time_ns=int(counters[0]), memory_used_bytes=used,
                swap_in_bytes=None, swap_out_bytes=None,
                disks=(DiskSample("vda", int(counters[1]), int(counters[2]), 0, 0, vm.disk_capacity_bytes, None),),
                nets=(NetSample("vnet0", int(counters[3]), int(counters[4])),),
            ))
        return replace(batch, samples=tuple(samples))


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware (UTC), got naive {now!r}")
    return now.astimezone(UTC)
