"""A resize's result, its audit record, and the notes on changes that wait for a restart."""

from __future__ import annotations

from datetime import UTC, datetime

from collector.actions.changes import Change, StepChanges
from collector.actions.outcome import audit_entry, pending_notes, result_of
from collector.model import VmRef
from core.plan import ResizeStep, SizeSpec
from tests.helpers.snapshots import DOMAIN_XML, GIB, REF, snapshot

STEP = ResizeStep(vm=REF, current=SizeSpec(4, 8 * GIB, "c1.2"), target=SizeSpec(2, 4 * GIB, "g1.2"),
                  price_before_per_hour=0.2, price_after_per_hour=0.1, currency="EUR")
TS = datetime(2024, 6, 3, 12, tzinfo=UTC)


def test_a_changed_vm_keeps_its_saved_xml_in_the_result_an_unchanged_one_does_not() -> None:
    before = snapshot()
    applied = result_of(STEP, "applied", "ok", before, snapshot(mem=4 * GIB))
    assert applied.before["inactive_xml"] == DOMAIN_XML and applied.after["memory_bytes"] == 4 * GIB
    assert "inactive_xml" not in result_of(STEP, "skipped", "gone", before, None).before
    assert result_of(STEP, "failed", "no VM", None, None).before == {}


def test_the_audit_records_libvirts_name_and_says_what_the_plan_called_the_vm() -> None:
    res = result_of(STEP, "applied", "applied and verified", snapshot(), None)
    entry = audit_entry(res, ts=TS, actor="ops", plan_id="p1", libvirt_name="web-1", operations=["vcpus"])
    assert (entry.vm_name, entry.reason, entry.action) == ("web-1", "applied and verified", "resize")
    assert entry.after["target_machine_type"] == "g1.2" and entry.after["operations"] == ["vcpus"]
    assert (entry.price_before_per_hour, entry.price_after_per_hour, entry.currency) == (0.2, 0.1, "EUR")
    renamed = ResizeStep(vm=VmRef(REF.uri, REF.uuid, "db-1"), current=STEP.current, target=STEP.target)
    entry = audit_entry(result_of(renamed, "applied", "ok", None, None), ts=TS, actor="ops", plan_id="p1",
                        libvirt_name="web-1", operations=[])
    assert entry.vm_name == "web-1" and entry.reason == "ok (the plan named this VM 'db-1')"
    unnamed = audit_entry(res, ts=TS, actor="ops", plan_id="p1", libvirt_name="", operations=[])
    assert unnamed.vm_name == "web-1" and unnamed.reason == "applied and verified"


def test_pending_notes_say_which_changes_wait_for_a_restart_or_start() -> None:
    changes = StepChanges(changes=(
        Change("vcpus", 4, 2, "next-restart", "next restart"),
        Change("memory_bytes", 8 * GIB, 4 * GIB, "live", "now", lowers_maximum=True),
    ))
    assert pending_notes(changes, snapshot()) == [
        "vCPUs 4 -> 2 takes effect at next restart",
        "max memory 8 GiB -> 4 GiB takes effect at next restart",
    ]
    off = StepChanges(changes=(Change("memory_bytes", 4 * GIB, 4 * GIB, "next-start", "next start",
                                      lowers_maximum=True),))
    assert pending_notes(off, snapshot(running=False)) == ["max memory 8 GiB -> 4 GiB takes effect at next start"]
    assert pending_notes(StepChanges(changes=(Change("vcpus", 4, 6, "live", "now"),)), snapshot()) == []
