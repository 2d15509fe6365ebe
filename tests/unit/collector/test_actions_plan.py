from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from collector.actions.plan import load_plan, parse_plan, plan_from_findings, plan_id_for
from collector.errors import InputError

GIB = 1024**3
U1 = "3f1c5e0a-6b1d-4d2e-9c1a-0f5e2b7d9a41"
U2 = "7a0c1d2e-3f40-4a5b-8c6d-7e8f9a0b1c2d"


def nested_step(uuid: str = U1, **over: object) -> dict[str, object]:
    step: dict[str, object] = {
        "uuid": uuid,
        "name": "web-1",
        "uri": "qemu:///system",
        "current": {"vcpus": 4, "memory_bytes": 8 * GIB, "machine_type": "c1.2"},
        "target": {"vcpus": 2, "memory_bytes": 4 * GIB, "machine_type": "g1.1"},
        "price_before_per_hour": 0.224,
        "price_after_per_hour": 0.112,
        "currency": "eur",
        "finding": "over-provisioned",
    }
    step.update(over)
    return step


def flat_row(uuid: str = U2, finding: str = "over-provisioned", **over: object) -> dict[str, object]:
    row: dict[str, object] = {
        "uuid": uuid, "name": "db-1", "uri": "", "finding": finding,
        "current_vcpus": 8, "current_memory_bytes": 32 * GIB, "current_machine_type": "m1.4",
        "target_vcpus": 4, "target_memory_bytes": 16 * GIB, "target_machine_type": "m1.2",
        "price_before_per_hour": 0.5, "price_after_per_hour": 0.25, "currency": "EUR",
        "reasons": ["cpu p95 1.2 vCPU"],  # extra keys from recommend are ignored
    }
    row.update(over)
    return row


def test_nested_plan_parses_into_values() -> None:
    plan = parse_plan({"plan_id": "p1", "created_at": "2024-06-01T10:00:00Z", "steps": [nested_step()]})
    assert plan.plan_id == "p1"
    assert plan.created_at == datetime(2024, 6, 1, 10, tzinfo=UTC)
    (step,) = plan.steps
    assert step.vm.uuid == U1 and step.vm.name == "web-1" and step.vm.uri == "qemu:///system"
    assert (step.current.vcpus, step.current.memory_bytes, step.current.machine_type) == (4, 8 * GIB, "c1.2")
    assert (step.target.vcpus, step.target.memory_bytes, step.target.machine_type) == (2, 4 * GIB, "g1.1")
    assert step.currency == "EUR"
    assert step.price_after_per_hour == 0.112


def test_flat_rows_and_bare_list_with_default_uri() -> None:
    plan = parse_plan([flat_row()], default_uri="test:///x.xml")
    (step,) = plan.steps
    assert step.vm.uri == "test:///x.xml"
    assert (step.target.vcpus, step.target.memory_bytes) == (4, 16 * GIB)
    assert plan.plan_id.startswith("plan-") and len(plan.plan_id) == 17


def test_plan_id_is_stable_and_order_free() -> None:
    a = parse_plan([nested_step(), flat_row()])
    b = parse_plan([flat_row(), nested_step()])
    assert a.plan_id == b.plan_id == plan_id_for(a.steps)
    c = parse_plan([nested_step(target={"vcpus": 1, "memory_bytes": 4 * GIB})])
    assert c.plan_id != parse_plan([nested_step()]).plan_id


def test_round_trip_through_json(tmp_path: Path) -> None:
    plan = parse_plan([nested_step(), flat_row()], default_uri="qemu:///system")
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan.to_dict()))
    again = load_plan(path)
    assert again.plan_id == plan.plan_id
    assert again.steps == plan.steps


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ([nested_step(target={"vcpus": 0, "memory_bytes": 4 * GIB})], "steps[0].target.vcpus = 0"),
        ([nested_step(target={"vcpus": 2, "memory_bytes": 4 * GIB + 1})], "steps[0].target.memory_bytes = 4294967297"),
        ([nested_step(target={"vcpus": 2, "memory_bytes": 1024})], "steps[0].target.memory_bytes = 1024"),
        ([nested_step(uuid="not-a-uuid")], "steps[0].uuid = 'not-a-uuid'"),
        ([nested_step(), nested_step(U2, target="big")], "steps[1].target = 'big'"),
        ([{"uuid": U1, "current": {"vcpus": 1, "memory_bytes": GIB}}], "steps[0].target = '(missing)'"),
        ([nested_step(price_after_per_hour=-1)], "steps[0].price_after_per_hour = -1"),
        ({"version": 9, "steps": []}, "version = 9"),
        ("hello", "expected a JSON object"),
    ],
)
def test_bad_plans_name_field_and_value(doc: object, needle: str) -> None:
    with pytest.raises(InputError) as err:
        parse_plan(doc, source="plan.json")
    assert str(err.value).startswith("plan.json")
    assert needle in str(err.value)


def test_duplicate_vm_refused() -> None:
    with pytest.raises(InputError, match=r"steps\[1\]\.uuid = '3f1c5e0a-.*appears twice \(first at steps\[0\]\)"):
        parse_plan([nested_step(), nested_step(name="again")])


def test_load_plan_file_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_plan(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="is not valid JSON"):
        load_plan(bad)


def test_plan_from_findings_keeps_only_real_resizes() -> None:
    rows = [
        flat_row(),
        flat_row(U1, finding="optimized"),
        flat_row("11111111-2222-3333-4444-555555555555", finding="insufficient-data", target_vcpus=None),
        flat_row("22222222-2222-3333-4444-555555555555", finding="under-provisioned",
                 target_vcpus=8, target_memory_bytes=32.0 * GIB),  # same size: nothing to do
        flat_row("33333333-2222-3333-4444-555555555555", finding="under-provisioned",
                 target_vcpus=16, target_memory_bytes=float(64 * GIB), target_machine_type=None),
    ]
    plan = plan_from_findings(rows, default_uri="qemu:///system", now=datetime(2024, 6, 1, tzinfo=UTC))
    assert [s.vm.uuid for s in plan.steps] == [U2, "33333333-2222-3333-4444-555555555555"]
    assert plan.steps[1].target.memory_bytes == 64 * GIB
    assert plan.steps[1].target.machine_type == ""
    assert plan.created_at == datetime(2024, 6, 1, tzinfo=UTC)
    assert all(s.vm.uri == "qemu:///system" for s in plan.steps)


def test_plan_from_findings_reports_bad_row() -> None:
    with pytest.raises(InputError, match=r"findings: steps\[0\]\.target\.vcpus = -2"):
        plan_from_findings([flat_row(target_vcpus=-2)])


def test_with_uri_overrides_every_step() -> None:
    plan = parse_plan([nested_step(), flat_row()]).with_uri("test:///fleet.xml")
    assert {s.vm.uri for s in plan.steps} == {"test:///fleet.xml"}


def plan_entry(uuid: str, finding: object, *, excluded: bool = False,
               target_type: str | None = "g1.1") -> dict[str, object]:
    """Shaped like analytics.recommend.VmFinding.plan_entry()."""
    return {
        "uuid": uuid, "name": "app", "uri": "qemu:///system", "host": "h1", "finding": finding,
        "strategy": "rightsizer", "excluded": excluded,
        "current": {"machine_type": None, "type_source": "unknown", "vcpus": 4, "memory_bytes": 8 * GIB},
        "target": {"machine_type": target_type, "vcpus": 2, "memory_bytes": 4 * GIB},
        "need": {"vcpus": 1.3, "memory_bytes": 3 * GIB},
        "price_before_per_hour": None, "price_after_per_hour": 0.112, "currency": "EUR",
        "monthly_savings": 0.0, "hours_per_month": 720.0, "risk": 1, "reasons": {}, "options": [],
    }


def test_plan_from_recommend_plan_entries() -> None:
    class Finding(str):
        value = "over-provisioned"

    rows = [
        plan_entry(U1, "over-provisioned"),
        plan_entry(U2, "over-provisioned", excluded=True),
        plan_entry("33333333-2222-3333-4444-555555555555", Finding("x")),  # an enum-like finding
    ]
    plan = plan_from_findings(rows)
    assert [s.vm.uuid for s in plan.steps] == [U1, "33333333-2222-3333-4444-555555555555"]
    step = plan.steps[0]
    assert step.current.machine_type == "" and step.target.machine_type == "g1.1"
    assert step.price_before_per_hour is None and step.price_after_per_hour == 0.112
    assert step.finding == "over-provisioned" and step.vm.uri == "qemu:///system"
