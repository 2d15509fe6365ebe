"""Write fleets for libvirt's test driver (``test:///abs/path.xml``): in-process domains, no daemon.

The test driver is good for listing, labels, snapshots, actions and scale. Its usage numbers are
synthetic (CPU time is wall-clock), so nothing here pretends to be utilisation data.
"""

from __future__ import annotations

import random
import uuid as uuidlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from collector.domxml import LABELS_NAMESPACE, LABELS_PREFIX

# Without this exact namespace on <node>, <test:runstate> is silently ignored.
TEST_NAMESPACE = "http://libvirt.org/schemas/domain/test/1.0"
_SHUTOFF_RUNSTATE = 5  # VIR_DOMAIN_SHUTOFF
_GIB = 1024**3
_UUID_NAMESPACE = uuidlib.UUID("5e0b1c36-8f0e-4d53-9a53-2d1f2b6c1e01")


@dataclass(frozen=True, slots=True)
class FleetDomain:
    """One test-driver domain: allocation in bytes, labels, device counts, snapshot times."""

    name: str
    uuid: str
    vcpus: int = 2
    max_vcpus: int = 2
    memory_bytes: int = 4 * _GIB
    max_memory_bytes: int = 4 * _GIB
    running: bool = True
    labels: Mapping[str, str] = field(default_factory=dict)
    disks: int = 1
    nics: int = 1
    snapshot_times: tuple[datetime, ...] = ()


def domain_uuid(name: str) -> str:
    """Return a stable UUID for a domain name (same name, same UUID, every run)."""
    return str(uuidlib.uuid5(_UUID_NAMESPACE, name))


def labels_xml(labels: Mapping[str, str]) -> str:
    """Return the ``<rs:labels>`` metadata element for ``labels`` (empty string when none)."""
    if not labels:
        return ""
    items = "".join(
        f"<{LABELS_PREFIX}:label name={quoteattr(k)}>{escape(v)}</{LABELS_PREFIX}:label>"
        for k, v in labels.items()
    )
    return (
        f'<{LABELS_PREFIX}:labels xmlns:{LABELS_PREFIX}="{LABELS_NAMESPACE}">{items}</{LABELS_PREFIX}:labels>'
    )


def _core_xml(d: FleetDomain) -> str:
    return (
        f"<name>{escape(d.name)}</name><uuid>{d.uuid}</uuid>"
        f"<memory unit='KiB'>{d.max_memory_bytes // 1024}</memory>"
        f"<currentMemory unit='KiB'>{d.memory_bytes // 1024}</currentMemory>"
        f"<vcpu current='{d.vcpus}'>{d.max_vcpus}</vcpu>"
        "<os><type arch='x86_64'>hvm</type></os>"
    )


def _domain_xml(d: FleetDomain, index: int) -> str:
    parts = ["<domain type='test'>", _core_xml(d)]
    labels = labels_xml(d.labels)
    if labels:
        parts.append(f"<metadata>{labels}</metadata>")
    if not d.running:
        parts.append(f"<test:runstate>{_SHUTOFF_RUNSTATE}</test:runstate>")
    parts.append("<devices>")
    for i in range(d.disks):
        # The test driver never opens the source; its block stats are synthetic.
        parts.append(
            f"<disk type='file' device='disk'><source file='/nonexistent/{escape(d.name)}-{i}.img'/>"
            f"<target dev='vd{chr(ord('a') + i)}' bus='virtio'/></disk>"
        )
    for i in range(d.nics):
        mac = f"52:54:00:{(index >> 8) & 0xFF:02x}:{index & 0xFF:02x}:{i:02x}"
        parts.append(
            f"<interface type='network'><mac address='{mac}'/><source network='default'/></interface>"
        )
    # memoryStats() on the test driver needs a virtio balloon.
    parts.append("<memballoon model='virtio'/></devices>")
    for n, ts in enumerate(sorted(d.snapshot_times)):
        parent = f"<parent><name>snap{n - 1}</name></parent>" if n else ""
        active = 1 if n == len(d.snapshot_times) - 1 else 0
        parts.append(
            f"<test:domainsnapshot><name>snap{n}</name><state>shutoff</state>{parent}"
            f"<creationTime>{int(ts.timestamp())}</creationTime><active>{active}</active>"
            f"<domain type='test'>{_core_xml(d)}</domain></test:domainsnapshot>"
        )
    parts.append("</domain>")
    return "".join(parts)


#: Host size the test driver reports (its built-in default is 16 CPUs and 3 GiB, too small for a fleet).
HOST_CPUS = 256
HOST_MEMORY_KIB = 1024 * 1024 * 1024  # 1 TiB


def host_xml(cpus: int = HOST_CPUS, memory_kib: int = HOST_MEMORY_KIB) -> str:
    """Return the ``<cpu>``/``<memory>`` elements that size the test driver's host."""
    return (
        f"<cpu><mhz>2600</mhz><model>x86_64</model><active>{cpus}</active><nodes>1</nodes>"
        f"<sockets>1</sockets><cores>{cpus}</cores><threads>1</threads></cpu>\n<memory>{memory_kib}</memory>"
    )


def fleet_xml(domains: Iterable[FleetDomain]) -> str:
    """Return a test-driver ``<node>`` document holding ``domains`` on a host big enough for them."""
    body = "\n".join(_domain_xml(d, i) for i, d in enumerate(domains))
    return f"<node xmlns:test='{TEST_NAMESPACE}'>\n{host_xml()}\n{body}\n</node>\n"


def write_fleet(path: Path, domains: Iterable[FleetDomain]) -> str:
    """Write the fleet to ``path`` and return its ``test:///abs/path`` URI."""
    path = path.resolve()
    path.write_text(fleet_xml(domains), encoding="utf-8")
    return f"test://{path}"


_TEAMS = ("payments", "search", "checkout", "data", "platform", "ml")
_ENVS = ("prod", "staging", "dev")
_SHAPES_GIB = ((1, 2), (2, 4), (2, 8), (4, 8), (4, 16), (8, 32), (16, 64))


def make_fleet(
    count: int,
    *,
    prefix: str = "vm",
    seed: int = 0,
    shutoff_every: int = 10,
    snapshot_at: datetime | None = None,
) -> list[FleetDomain]:
    """Return ``count`` varied domains, deterministic per seed; every ``shutoff_every``-th is shut off.

    Labels cover team, env, project and backup_policy; every 25th domain
    carries ``rightsizer_exclude=true``. When ``snapshot_at`` is given, every 3rd domain has a
    snapshot taken at that time.
    """
    if count < 0:
        raise ValueError(f"fleet size must be >= 0, got {count!r}")
    rng = random.Random(seed)
    fleet: list[FleetDomain] = []
    for i in range(count):
        name = f"{prefix}-{i:04d}"
        vcpus, mem_gib = rng.choice(_SHAPES_GIB)
        env = rng.choice(_ENVS)
        labels = {
            "team": rng.choice(_TEAMS),
            "env": env,
            "project": f"proj-{rng.randrange(20):02d}",
            "backup_policy": "24h" if env == "prod" else "7d",
        }
        if i % 25 == 24:
            labels["rightsizer_exclude"] = "true"
        snaps: Sequence[datetime] = (snapshot_at,) if snapshot_at is not None and i % 3 == 0 else ()
        fleet.append(
            FleetDomain(
                name=name,
                uuid=domain_uuid(name),
                vcpus=vcpus,
                max_vcpus=max(vcpus, 2 * vcpus),
                memory_bytes=mem_gib * _GIB,
                max_memory_bytes=mem_gib * _GIB,
                running=not (shutoff_every and i % shutoff_every == shutoff_every - 1),
                labels=labels,
                snapshot_times=tuple(snaps),
            )
        )
    return fleet
