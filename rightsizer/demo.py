"""The built-in demo fleet: a libvirt test-driver node file and an honestly labelled synthetic history.

``make run`` on a machine without a reachable ``qemu:///system`` serves this fleet so that a newcomer sees a
populated dashboard. The inventory (names, UUIDs, vCPUs, memory, labels, run state, snapshots) is real libvirt
test-driver XML (this module); the usage history is SYNTHETIC -- generated in ``rightsizer.demo_history``
(``rightsizer.demo_source`` continues it live), marked ``source="demo"`` on every VM record and
``data_mode=demo`` in the store's meta table -- because the test driver reports no usable utilisation (its
cpuTime is wall-clock, NOTES-environment.md).

Behaviours present in a fleet of 24 (and repeated in larger ones): steady web/app servers with a working-day
rhythm, over-provisioned VMs, idle VMs, nightly batch jobs, one VM whose load grows over the window, one that is
under-provisioned, one whose guest reports no memory figures, and a few shut off.
"""

from __future__ import annotations

import math
import random
import uuid as uuidlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from collector.hypervisor.testfleet import FleetDomain, fleet_xml
from collector.model import VmRecord, VmState

DEFAULT_SEED = 20240601
DEFAULT_URI = "test:///demo/fleet.xml"
GIB = 1024**3

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
#: The demo service whose members all run on one host (a placement risk to show).
_ONE_HOST_SERVICE = "checkout-api"
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
    single_host: dict[str, str] = {}
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
        # the service a VM belongs to ([placement] service_label, default "app"): every checkout API runs on
        # one host (Placement shows that risk), the other services are spread over the hosts
        labels: dict[str, str] = {"team": team, "env": env, "project": project, "app": key}
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
                host=single_host.setdefault(key, hosts[i % len(hosts)]) if key == _ONE_HOST_SERVICE
                else hosts[i % len(hosts)],
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
    now = utc_hour(now)
    fleet = tuple(vms) if vms is not None else demo_fleet(n, seed)
    domains = [
        FleetDomain(
            name=vm.name, uuid=vm.uuid, vcpus=vm.vcpus, max_vcpus=vm.vcpus, memory_bytes=vm.memory_bytes,
            max_memory_bytes=vm.memory_bytes, running=vm.running, labels=dict(vm.labels), disks=1, nics=0,
            snapshot_times=() if vm.backup_age_h is None else (now - timedelta(hours=vm.backup_age_h),),
        )
        for vm in fleet
    ]
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # through testfleet: its host_xml() sizes the test driver's host for the fleet (the driver's own default
    # host, 16 CPUs and 3 GiB, fits none of the demo's resize targets)
    target.write_text(fleet_xml(domains), encoding="utf-8")
    return fleet


def demo_vm_records(
    vms: Sequence[DemoVm], *, now: datetime | None = None, days: float = 30, uri: str = DEFAULT_URI,
) -> list[VmRecord]:
    """Inventory rows for the demo VMs, first seen ``days`` before ``now`` (UTC), ``source="demo"``."""
    now = utc_hour(now)
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


def utc_hour(now: datetime | None) -> datetime:
    """Return ``now`` (aware, UTC) or the current hour; raises ValueError for a naive datetime."""
    if now is None:
        return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware (UTC), got naive {now!r}")
    return now.astimezone(UTC)
