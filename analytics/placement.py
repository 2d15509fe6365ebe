"""Availability placement: which services run all their members on one host, or in one zone.

A *service* is the value of a VM label (``[placement] service_label``, default ``app``). A service with at
least two running members has a **single-host** risk when they all run on one host, and a **zone** risk
when they all run in one zone while the fleet spans a second zone. A VM's zone is ``[placement] zones``
for its host, else its ``zone`` label (``[placement] zone_label``); hosts with neither have no zone.

Resizes must not make an outage more likely: :func:`one_restart_per_service` keeps at most one step per
service that needs a restart (a target above the VM's maximum vCPUs or memory) in one plan, i.e. one
maintenance window; the rest wait for the next run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from collector.model import VmRecord, VmState
from core.plan import ResizeStep
from core.settings import PlacementSettings

SINGLE_HOST = "single-host"
ZONE = "zone"
LEVELS = (SINGLE_HOST, ZONE)


@dataclass(frozen=True, slots=True)
class PlacementRisk:
    """One service's placement verdict; ``at_risk`` is False when its members are spread well enough."""

    service: str
    level: str  # "single-host", "zone" or "" (spread)
    members: tuple[str, ...]  # VM names of the running members
    hosts: tuple[str, ...]
    zones: tuple[str, ...]
    detail: str

    @property
    def at_risk(self) -> bool:
        return bool(self.level)


def zone_of(vm: VmRecord, settings: PlacementSettings) -> str:
    """The VM's zone: the configured zone of its host, else its zone label, else ""."""
    return settings.zones.get(vm.host) or (vm.labels or {}).get(settings.zone_label, "")


def service_of(vm: VmRecord, settings: PlacementSettings) -> str:
    """The service the VM belongs to ("" when it carries no service label)."""
    return (vm.labels or {}).get(settings.service_label, "").strip()


def placement_risks(vms: Iterable[VmRecord], settings: PlacementSettings) -> list[PlacementRisk]:
    """One verdict per service with at least two running members, riskiest first, then by name."""
    vms = list(vms)
    fleet_zones = {z for vm in vms if (z := zone_of(vm, settings))}
    members: dict[str, list[VmRecord]] = {}
    for vm in vms:
        service = service_of(vm, settings)
        if service and vm.state is VmState.RUNNING:
            members.setdefault(service, []).append(vm)
    out = []
    for service, group in members.items():
        if len(group) < 2:
            continue
        names = tuple(sorted(vm.name for vm in group))
        hosts = tuple(sorted({vm.host for vm in group}))
        zones = tuple(sorted({zone_of(vm, settings) for vm in group} - {""}))
        unzoned = any(not zone_of(vm, settings) for vm in group)
        if len(hosts) == 1:
            level = SINGLE_HOST
            detail = f"all {len(group)} running members of {service!r} are on host {hosts[0]}: one host failure " \
                     f"stops the service; move one of {', '.join(names)} to another host"
        elif len(zones) == 1 and not unzoned and len(fleet_zones) > 1:
            level = ZONE
            detail = f"all {len(group)} running members of {service!r} are in zone {zones[0]} (hosts " \
                     f"{', '.join(hosts)}) while the fleet also has {', '.join(sorted(fleet_zones - set(zones)))}; " \
                     "one zone outage stops the service"
        else:
            level = ""
            detail = f"{len(group)} running members on {len(hosts)} hosts" + (
                f" in {len(zones)} zones" if zones else "")
        out.append(PlacementRisk(service, level, names, hosts, zones, detail))
    rank = {SINGLE_HOST: 0, ZONE: 1, "": 2}
    return sorted(out, key=lambda r: (rank[r.level], r.service))


def risk_by_vm(risks: Sequence[PlacementRisk], vms: Iterable[VmRecord]) -> dict[str, PlacementRisk]:
    """VM UUID -> its service's verdict, for every running member of a service at risk."""
    by_name = {r.service: r for r in risks if r.at_risk}
    out = {}
    for vm in vms:
        for risk in by_name.values():
            if vm.name in risk.members:
                out[vm.uuid] = risk
    return out


def needs_restart(step: ResizeStep, vm: VmRecord) -> bool:
    """True when the target exceeds the VM's maximum vCPUs or memory: only a restart can apply it."""
    return step.target.vcpus > vm.max_vcpus or step.target.memory_bytes > vm.max_memory_bytes


def one_restart_per_service(steps: Sequence[ResizeStep], vms: Mapping[str, VmRecord],
                            settings: PlacementSettings) -> tuple[list[ResizeStep], list[tuple[ResizeStep, str]]]:
    """Keep at most one restarting step per service; return (kept, held back with the reason).

    ``vms`` maps UUID -> record. Steps that apply live (or to VMs without a service) are always kept.
    """
    kept: list[ResizeStep] = []
    held: list[tuple[ResizeStep, str]] = []
    restarting: dict[str, str] = {}
    for step in steps:
        vm = vms.get(step.vm.uuid)
        service = service_of(vm, settings) if vm is not None else ""
        if vm is None or not service or not needs_restart(step, vm):
            kept.append(step)
            continue
        if service in restarting:
            held.append((step, f"{restarting[service]} of service {service!r} already restarts in this window; "
                               "resize this member in the next one"))
            continue
        restarting[service] = vm.name
        kept.append(step)
    return kept, held
