"""Dry run, apply and stop name a VM as libvirt names its UUID, not as the plan file does (issue 24 M4)."""

from __future__ import annotations

from pathlib import Path

from collector.actions.locks import VmLock
from collector.actions.output import format_results
from collector.actions.plan import SizeSpec
from collector.actions.runner import run_plan, single_step_plan
from collector.actions.stop import StopStep, stop_vm
from collector.hypervisor.fakecontrol import FakeControl
from collector.model import VmRef, VmState
from collector.store.sqlite import SqliteStore
from core.settings import ActionSettings

GIB = 1024**3


def _fleet() -> tuple[FakeControl, VmRef, VmRef]:
    control = FakeControl()
    one = control.add("plain-01", vcpus=2, memory_bytes=4 * GIB, state=VmState.SHUTOFF)
    two = control.add("plain-02", vcpus=2, memory_bytes=4 * GIB, state=VmState.SHUTOFF)
    return control, one, two


def test_dry_run_and_apply_name_the_vm_libvirt_resizes(store: SqliteStore) -> None:
    control, one, two = _fleet()
    mislabelled = VmRef(one.uri, one.uuid, "plain-02")  # plain-01's UUID under plain-02's name
    plan = single_step_plan(mislabelled, SizeSpec(2, 4 * GIB, ""), SizeSpec(1, 4 * GIB, ""), price_before=None,
                            price_after=None, currency="EUR")
    for apply in (False, True):
        (res,) = run_plan(plan, ActionSettings(), store=store, apply=apply, actor="t", control_for=lambda u: control)
        assert res.step.vm.name == "plain-01" and res.step.vm.uuid == one.uuid
        assert "(the plan named this VM 'plain-02')" in res.reason
        text = format_results([res])
        assert "plain-01" in text and "plain-02 [" not in text and "plain-02 (" not in text
    assert control.domains[one.uuid].config.vcpus == 1 and control.domains[two.uuid].config.vcpus == 2
    (entry,) = store.audit()
    assert entry.vm_name == "plain-01" and entry.reason.count("the plan named this VM") == 1


def test_a_stop_names_the_vm_libvirt_stops_and_holds_its_apply_lock(store: SqliteStore, tmp_path: Path) -> None:
    control, one, _two = _fleet()
    control.domains[one.uuid].state = VmState.RUNNING
    step = StopStep(vm=VmRef(one.uri, one.uuid, "plain-02"))
    preview = stop_vm(control, step, apply=False, audit=None, actor="t")
    assert preview.step.vm.name == "plain-01" and "the plan named this VM 'plain-02'" in preview.reason
    with VmLock(tmp_path, one.uuid, holder="a-resize"):
        held = stop_vm(control, step, apply=True, audit=store, actor="t", lock_dir=tmp_path, poll_s=0.01)
    assert held.result == "skipped" and "a-resize" in held.reason
    assert control.domains[one.uuid].state is VmState.RUNNING
    done = stop_vm(control, step, apply=True, audit=store, actor="t", lock_dir=tmp_path, poll_s=0.01)
    assert done.result == "applied" and control.domains[one.uuid].state is VmState.SHUTOFF
    assert [e.vm_name for e in store.audit()] == ["plain-01", "plain-01"]
