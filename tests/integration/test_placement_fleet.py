"""Availability placement on a test-driver fleet spread over three hosts in two zones, served by ``serve``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from served import AUTH, Served, serve

from analytics.catalogue import load_catalogue
from collector.hypervisor.testfleet import FleetDomain, domain_uuid, write_fleet
from collector.store.sqlite import SqliteStore
from core.settings import load_settings
from dashboard.data import DashboardData, Filters
from dashboard.pages import overview, vm_detail
from rightsizer.demo import DemoVm
from rightsizer.demo_history import seed_synthetic_history

pytestmark = pytest.mark.integration
GIB = 1024**3
CONFIG = """
[placement]
zones = { hv1 = "zone-a", hv2 = "zone-a", hv3 = "zone-b" }
"""
#: (name, host, app, profile): web on one host, db on two hosts of one zone, api over both zones.
FLEET = (("web-1", "hv1", "web", "undersized"), ("web-2", "hv1", "web", "undersized"),
         ("db-1", "hv1", "db", "steady"), ("db-2", "hv2", "db", "steady"),
         ("api-1", "hv1", "api", "steady"), ("api-2", "hv3", "api", "steady"),
         ("batch-1", "hv2", "", "steady"))


def _vms() -> list[DemoVm]:
    return [DemoVm(name=name, uuid=domain_uuid(name), host=host, vcpus=2, memory_bytes=4 * GIB,
                   disk_capacity_bytes=20 * 10**9, labels={"app": app} if app else {"team": "ops"},
                   profile=profile)  # type: ignore[arg-type]
            for name, host, app, profile in FLEET]


@pytest.fixture(scope="module")
def placed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Path]]:
    cwd = tmp_path_factory.mktemp("placement")
    vms = _vms()
    uri = write_fleet(cwd / "fleet.xml", [
        FleetDomain(name=v.name, uuid=v.uuid, vcpus=v.vcpus, max_vcpus=v.vcpus, memory_bytes=v.memory_bytes,
                    max_memory_bytes=v.memory_bytes, labels=dict(v.labels)) for v in vms])
    store = SqliteStore(cwd / "rs.db")
    seed_synthetic_history(store, vms, days=30, uri=uri, points_per_hour=4)
    store.set_meta("data_mode", "live")
    store.close()
    (cwd / "rs.toml").write_text(CONFIG)
    # no URI: serve reads the stored history (hosts hv1..hv3) without sampling the one-host test driver
    yield from ((s, cwd) for s in serve(cwd, "--config", str(cwd / "rs.toml"), "--db", str(cwd / "rs.db")))


def test_placement_risk_metric_names_single_host_and_zone_risks(placed: tuple[Served, Path]) -> None:
    served, _ = placed
    text = requests.get(served.metrics, timeout=60).text
    values = {(m[0], m[1]): float(m[2]) for m in re.findall(
        r'rightsizer_service_placement_risk\{level="([^"]+)",service="([^"]+)"\} ([0-9.]+)', text)}
    values = {(service, level): v for (level, service), v in values.items()}
    assert values[("web", "single-host")] == 1.0 and values[("web", "zone")] == 0.0
    assert values[("db", "zone")] == 1.0 and values[("db", "single-host")] == 0.0
    assert values[("api", "single-host")] == 0.0 and values[("api", "zone")] == 0.0
    assert not any(service == "" for service, _ in values)  # batch-1 has no app label


def test_overview_and_vm_page_show_the_placement_finding(placed: tuple[Served, Path]) -> None:
    _, cwd = placed
    settings = load_settings(cwd / "rs.toml", env={})
    store = SqliteStore(cwd / "rs.db")
    try:
        data = DashboardData(settings, store, load_catalogue(), data_mode="live",
                             clock=lambda: datetime.now(UTC))
        section = str(overview.placement_section(data))
        assert "2 of 3 services" in section and "web-1, web-2" in section and "hv1" in section
        assert "zone-a" in section and "zone-b" in section
        web = vm_detail.placement_finding(data, domain_uuid("web-2"))
        assert "single-host" in str(web) and "web-1, web-2" in str(web)
        assert vm_detail.placement_finding(data, domain_uuid("api-1")) == []
        page = str(vm_detail.layout(data, domain_uuid("db-1"), Filters()))
        assert "placement risk: zone" in page
    finally:
        store.close()


def test_plans_never_restart_two_members_of_a_service_in_one_window(placed: tuple[Served, Path]) -> None:
    served, _ = placed
    findings = requests.get(f"{served.base}/api/v1/findings", params={"label": "app=web"}, timeout=120).json()
    web_up = [f for f in findings["items"] if f["finding"] == "under-provisioned"]
    assert len(web_up) == 2, findings  # both members outgrow their maximum: each needs a restart
    plan = requests.post(f"{served.base}/api/v1/plans", json={"label": ["app=web"]}, headers=AUTH,
                         timeout=120).json()
    assert len(plan["steps"]) == 1 and plan["steps"][0]["name"] in ("web-1", "web-2"), plan
