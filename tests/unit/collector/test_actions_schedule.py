from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from analytics.realised import realised_savings
from collector.actions.schedule import PowerSettings, ScheduledVm, audit_entry, run_power, start_vm, stop_vm
from collector.hypervisor.fakecontrol import FakeControl
from collector.model import VmState
from collector.store.base import AuditEntry

NOW = datetime(2026, 11, 2, 19, 0, tzinfo=UTC)
FAST = PowerSettings(idle_vcpus=0.03, busy_lookback_s=900, timeout_s=3, poll_s=1)


class Cpu:
    def __init__(self, peak: float | None) -> None:
        self.peak = peak
        self.asked: list[datetime] = []

    def recent_peak_vcpus(self, vm_uuid: str, since: datetime) -> float | None:
        self.asked.append(since)
        return self.peak


class Audit:
    def __init__(self) -> None:
        self.rows: list[AuditEntry] = []

    def append_audit(self, entry: AuditEntry) -> int:
        self.rows.append(entry)
        return len(self.rows)


def _vm(control: FakeControl, **labels: str) -> ScheduledVm:
    ref = control.add("office-1", vcpus=2, memory_bytes=4 << 30, labels=labels)
    return ScheduledVm(ref, "Mon-Fri 07:00-19:00 UTC", "label", 0.1, "EUR")


def test_idle_vm_is_shut_down_by_acpi_and_audited() -> None:
    control, cpu, audit = FakeControl(), Cpu(0.01), Audit()
    vm = _vm(control)
    res = run_power("stop", control, vm, cpu=cpu, audit=audit, settings=FAST, actor="t", now=NOW)
    assert res.result == "applied" and "shutdown" in control.calls and "destroy" not in control.calls
    assert cpu.asked == [NOW - timedelta(minutes=15)]
    (row,) = audit.rows
    assert (row.action, row.result, row.price_before_per_hour, row.price_after_per_hour) == \
        ("schedule-stop", "applied", 0.1, 0.0)


@pytest.mark.parametrize(("peak", "needle"), [(0.5, "busy: CPU reached 0.50 vCPU"), (None, "no CPU sample")])
def test_busy_or_unknown_vm_is_not_stopped(peak: float | None, needle: str) -> None:
    control = FakeControl()
    vm = _vm(control)
    res = stop_vm(control, vm, Cpu(peak), FAST, now=NOW)
    assert res.result == "skipped" and needle in res.reason
    assert "shutdown" not in control.calls
    assert audit_entry(res, actor="t").price_before_per_hour is None  # a skip saves nothing


def test_excluded_vm_is_never_stopped() -> None:
    control = FakeControl()
    vm = _vm(control, rightsizer_exclude="true")
    res = stop_vm(control, vm, Cpu(0.0), FAST, now=NOW)
    assert res.result == "skipped" and "excluded" in res.reason and "shutdown" not in control.calls


def test_guest_ignoring_the_power_button_is_left_running() -> None:
    control = FakeControl()
    vm = _vm(control)
    control.shutdown = lambda ref: None  # type: ignore[method-assign]  # a guest without ACPI handling
    slept: list[float] = []
    res = stop_vm(control, vm, Cpu(0.0), FAST, now=NOW, sleep=slept.append)
    assert res.result == "failed" and "still running" in res.reason and sum(slept) == 3
    assert control.domains[vm.ref.uuid].state is VmState.RUNNING


def test_start_only_a_stopped_vm_and_savings_join_the_resizes() -> None:
    control = FakeControl()
    vm = _vm(control)
    assert start_vm(control, vm).result == "skipped"
    control.domains[vm.ref.uuid].state = VmState.SHUTOFF
    started = start_vm(control, vm)
    assert started.result == "applied" and control.domains[vm.ref.uuid].state is VmState.RUNNING
    other_control = FakeControl()
    stopped = stop_vm(other_control, _vm(other_control), Cpu(0.0), FAST, now=NOW)  # same name, same UUID
    stop = audit_entry(stopped, actor="t", now=NOW)
    start = audit_entry(started, actor="t", now=NOW + timedelta(hours=12))
    resize = AuditEntry(ts=NOW - timedelta(hours=24), actor="t", vm_uuid="other", vm_name="other", action="resize",
                        before={}, after={}, result="applied", reason="", price_before_per_hour=0.2,
                        price_after_per_hour=0.1, currency="EUR")
    savings = realised_savings([resize, stop, start], NOW + timedelta(hours=12))
    by_vm = {s.vm_uuid: s.saving for s in savings if s.saving}
    assert by_vm == {"other": pytest.approx(0.1 * 36), vm.ref.uuid: pytest.approx(0.1 * 12)}


def test_a_window_edge_skips_a_vm_an_apply_holds_and_audits_it(tmp_path) -> None:
    """Issue 24, same class as M3: scheduled starts/stops take the VM's apply lock in the host lock directory."""
    from collector.actions.locks import VmLock

    control, cpu, audit = FakeControl(), Cpu(0.01), Audit()
    vm = _vm(control)
    with VmLock(tmp_path, vm.ref.uuid, holder="alice plan-7"):
        res = run_power("stop", control, vm, cpu=cpu, audit=audit, settings=FAST, actor="t", now=NOW,
                        lock_dir=tmp_path)
    assert res.result == "skipped" and "alice plan-7" in res.reason and "shutdown" not in control.calls
    assert [r.result for r in audit.rows] == ["skipped"]
    res = run_power("stop", control, vm, cpu=cpu, audit=audit, settings=FAST, actor="t", now=NOW, lock_dir=tmp_path)
    assert res.result == "applied"
