from __future__ import annotations

from datetime import UTC, datetime

from analytics.placement import (
    SINGLE_HOST,
    ZONE,
    one_restart_per_service,
    placement_risks,
    risk_by_vm,
)
from collector.actions.plan import ResizeStep, SizeSpec
from collector.model import VmRecord, VmRef, VmState
from core.settings import PlacementSettings

GIB = 1024**3
T = datetime(2026, 11, 1, tzinfo=UTC)
ZONES = PlacementSettings(zones={"hv1": "eu01-1", "hv2": "eu01-1", "hv3": "eu01-2"})


def _vm(name: str, host: str, app: str | None, *, running: bool = True, **labels: str) -> VmRecord:
    all_labels = {**labels, **({"app": app} if app else {})}
    return VmRecord(uuid=f"u-{name}", name=name, uri="test:///f.xml", host=host,
                    state=VmState.RUNNING if running else VmState.SHUTOFF, vcpus=2, max_vcpus=2,
                    memory_bytes=4 * GIB, max_memory_bytes=4 * GIB, labels=all_labels, first_seen=T, last_seen=T)


def test_single_host_and_zone_risks_name_hosts_and_members() -> None:
    vms = [_vm("web-1", "hv1", "web"), _vm("web-2", "hv1", "web"),      # one host
           _vm("db-1", "hv1", "db"), _vm("db-2", "hv2", "db"),          # two hosts, one zone
           _vm("api-1", "hv1", "api"), _vm("api-2", "hv3", "api"),      # two zones: fine
           _vm("solo-1", "hv1", "solo"),                                # one member: no verdict
           _vm("q-1", "hv2", "queue"), _vm("q-2", "hv2", "queue", running=False)]  # one running member
    risks = {r.service: r for r in placement_risks(vms, ZONES)}
    assert set(risks) == {"web", "db", "api"}
    assert risks["web"].level == SINGLE_HOST and risks["web"].hosts == ("hv1",)
    assert risks["web"].members == ("web-1", "web-2") and "hv1" in risks["web"].detail
    assert risks["db"].level == ZONE and risks["db"].zones == ("eu01-1",) and "eu01-2" in risks["db"].detail
    assert not risks["api"].at_risk
    assert [r.service for r in placement_risks(vms, ZONES)][:2] == ["web", "db"]  # riskiest first
    assert set(risk_by_vm(list(risks.values()), vms)) == {"u-web-1", "u-web-2", "u-db-1", "u-db-2"}


def test_zone_comes_from_a_vm_label_and_one_zone_fleet_has_no_zone_risk() -> None:
    labelled = [_vm("db-1", "a", "db", zone="z1"), _vm("db-2", "b", "db", zone="z1"), _vm("x", "c", None, zone="z2")]
    (risk,) = placement_risks(labelled, PlacementSettings())
    assert risk.level == ZONE and risk.zones == ("z1",)
    one_zone = [_vm("db-1", "a", "db", zone="z1"), _vm("db-2", "b", "db", zone="z1")]
    assert not placement_risks(one_zone, PlacementSettings())[0].at_risk
    custom = PlacementSettings(service_label="team")
    (team,) = placement_risks([_vm("a", "h", None, team="x"), _vm("b", "h", None, team="x")], custom)
    assert team.service == "x" and team.level == SINGLE_HOST


def test_never_more_than_one_restarting_member_of_a_service_per_window() -> None:
    vms = {v.uuid: v for v in (_vm("web-1", "hv1", "web"), _vm("web-2", "hv2", "web"), _vm("web-3", "hv3", "web"),
                               _vm("db-1", "hv1", "db"))}

    def step(uuid: str, vcpus: int, mem_gib: int) -> ResizeStep:
        vm = vms[uuid]
        return ResizeStep(VmRef(vm.uri, uuid, vm.name), SizeSpec(2, 4 * GIB), SizeSpec(vcpus, mem_gib * GIB))

    steps = [step("u-web-1", 4, 8), step("u-web-2", 4, 8), step("u-web-3", 1, 2), step("u-db-1", 4, 8)]
    kept, held = one_restart_per_service(steps, vms, PlacementSettings())
    assert [s.vm.name for s in kept] == ["web-1", "web-3", "db-1"]  # web-3 shrinks live: no restart
    ((step_held, why),) = held
    assert step_held.vm.name == "web-2" and "web-1" in why and "'web'" in why
