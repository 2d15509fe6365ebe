"""ResizeAction's phases against the in-memory FakeControl: the logic, not libvirt (see tests/integration)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from analytics.rightsizing.policy import resolve_policy
from collector.actions.policy import restart_permission
from collector.actions.resize import ResizeAction
from collector.domxml import is_excluded
from collector.errors import ConnectionFailedError
from collector.hypervisor.base import HypervisorControl
from collector.hypervisor.fakecontrol import FakeControl
from collector.model import VmRef, VmState
from collector.store.base import AuditEntry
from core.plan import ResizeStep, SizeSpec

GIB = 1024**3
NOW = datetime(2024, 6, 3, 12, tzinfo=UTC)


class ListAudit:
    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    def append_audit(self, entry: AuditEntry) -> int:
        self.entries.append(entry)
        return len(self.entries)

    def audit(self, vm_uuid: str | None = None) -> list[AuditEntry]:
        return [e for e in self.entries if vm_uuid is None or e.vm_uuid == vm_uuid]


def _action(control: FakeControl, ref: VmRef, target: SizeSpec, audit: ListAudit | None = None,
            current: SizeSpec | None = None) -> ResizeAction:
    step = ResizeStep(vm=ref, current=current or SizeSpec(2, 4 * GIB, "c1.2"), target=target)
    return ResizeAction(control, step, permission=restart_permission("never", (), NOW), audit=audit,
                        clock=lambda: NOW, poll_s=0.0, verify_timeout_s=0.0, reconnect_timeout_s=0.0)


def test_fake_control_satisfies_the_protocol() -> None:
    control: HypervisorControl = FakeControl()
    assert control.uri == "fake:///control"


def test_downsize_of_running_vm_balloons_now_and_lowers_vcpus_in_config() -> None:
    control = FakeControl()
    ref = control.add("web-1", vcpus=2, memory_bytes=4 * GIB, labels={"machine_type": "c1.2"})
    audit = ListAudit()
    res = _action(control, ref, SizeSpec(1, 2 * GIB, "g1.1"), audit).execute()
    assert res.result == "applied", res.reason
    dom = control.domains[ref.uuid]
    assert (dom.config.vcpus, dom.config.memory_bytes) == (1, 2 * GIB)
    assert dom.live.memory_bytes == 2 * GIB and dom.live.vcpus == 2  # vCPUs drop at the next restart
    assert dom.labels["machine_type"] == "g1.1" and dom.live_labels["machine_type"] == "g1.1"
    assert [e.result for e in audit.entries] == ["applied"] and res.audit_id == 1


def test_failed_step_is_reverted_and_verified() -> None:
    control = FakeControl()
    ref = control.add("web-1", vcpus=2, memory_bytes=4 * GIB, labels={"machine_type": "c1.2"})
    control.fail_on["set_vcpus"] = ConnectionFailedError("libvirtd went away")
    res = _action(control, ref, SizeSpec(1, 2 * GIB, "g1.1")).execute()
    assert res.result == "reverted", res.reason
    dom = control.domains[ref.uuid]
    assert (dom.config.vcpus, dom.config.memory_bytes) == (2, 4 * GIB)
    assert dom.labels["machine_type"] == "c1.2" and dom.live.memory_bytes == 4 * GIB


def test_upsize_past_the_maximum_is_deferred_under_restart_policy_never() -> None:
    control = FakeControl()
    ref = control.add("db-1", vcpus=2, memory_bytes=4 * GIB)
    res = _action(control, ref, SizeSpec(4, 8 * GIB, "")).execute()
    assert res.result == "deferred" and "restart policy 'never'" in res.reason
    assert "set_vcpus" not in control.calls and "set_memory" not in control.calls


@pytest.mark.parametrize("value", ["true", "yes", "1", "on", " YES ", "True"])
def test_is_excluded_one_rule_for_analytics_and_resize_action(value: str) -> None:
    """Analytics and the resize action agree on every spelling of rightsizer_exclude."""
    labels = {"rightsizer_exclude": value}
    assert is_excluded(labels)
    assert resolve_policy([], uuid="u", name="n", labels=labels).exclude
    control = FakeControl()
    ref = control.add("batch-1", vcpus=2, memory_bytes=4 * GIB, labels=labels)
    res = _action(control, ref, SizeSpec(1, 2 * GIB, "g1.1")).execute()
    assert res.result == "skipped" and "rightsizer_exclude" in res.reason
    assert control.domains[ref.uuid].config.vcpus == 2


@pytest.mark.parametrize("value", ["false", "no", "0", "off", ""])
def test_is_excluded_false_values_resize_in_both(value: str) -> None:
    labels = {"rightsizer_exclude": value}
    assert not is_excluded(labels)
    assert not resolve_policy([], uuid="u", name="n", labels=labels).exclude
    control = FakeControl()
    ref = control.add("batch-1", vcpus=2, memory_bytes=4 * GIB, labels=labels)
    assert _action(control, ref, SizeSpec(1, 2 * GIB, "g1.1")).execute().result == "applied"


def test_shut_off_vm_gets_the_change_in_its_config() -> None:
    control = FakeControl()
    ref = control.add("off-1", vcpus=2, memory_bytes=4 * GIB, state=VmState.SHUTOFF)
    res = _action(control, ref, SizeSpec(4, 8 * GIB, "")).execute()
    assert res.result == "applied", res.reason
    assert {c.effect for c in res.changes} == {"next-start"}
    dom = control.domains[ref.uuid]
    assert (dom.config.max_vcpus, dom.config.vcpus, dom.config.memory_bytes) == (4, 4, 8 * GIB)


def test_audit_records_libvirts_name_for_the_uuid_not_the_plans() -> None:
    control = FakeControl()
    web = control.add("web-1", vcpus=2, memory_bytes=4 * GIB)
    control.add("db-1", vcpus=2, memory_bytes=4 * GIB)
    audit = ListAudit()
    forged = VmRef(uri=web.uri, uuid=web.uuid, name="db-1")  # web-1's UUID under another VM's name
    res = _action(control, forged, SizeSpec(1, 2 * GIB, "g1.1"), audit).execute()
    assert res.result == "applied", res.reason
    (entry,) = audit.entries
    assert (entry.vm_uuid, entry.vm_name) == (web.uuid, "web-1")
    assert "the plan named this VM 'db-1'" in entry.reason
