"""The demo fleet shows every feature: its VMs carry service labels, and one service runs on a single host."""

from __future__ import annotations

from analytics.placement import placement_risks
from core.settings import Settings
from rightsizer.demo import demo_fleet, demo_vm_records


def test_demo_vms_carry_app_labels_and_placement_finds_one_single_host_service() -> None:
    records = demo_vm_records(demo_fleet())
    assert records and all(r.labels.get("app") for r in records)
    risks = placement_risks(records, Settings().placement)
    at_risk = [r for r in risks if r.level == "single-host"]
    assert [r.service for r in at_risk] == ["checkout-api"]
    assert len({r.service for r in risks}) >= 5  # the other services are placed and judged too
