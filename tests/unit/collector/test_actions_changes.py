"""Resize planning: which changes are live and which wait for a restart, the operations, and when a VM is at its
target."""

from __future__ import annotations

from datetime import UTC, datetime

from collector.actions.changes import build_operations, is_at_target, plan_changes
from collector.actions.output import format_result
from collector.actions.policy import restart_permission
from collector.actions.result import ActionResult
from core.plan import SizeSpec
from core.windows import parse_windows
from tests.helpers.snapshots import resize_step, snapshot

GIB = 1024**3
MIB = 1024**2
NOW = datetime(2024, 6, 3, 12, tzinfo=UTC)  # a Monday
NEVER = restart_permission("never", (), NOW)
ALLOWED = restart_permission("allowed", (), NOW)
WINDOW = restart_permission("window", parse_windows(["sat 02:00-04:00"]), NOW)


def test_running_downsize_memory_live_vcpus_next_restart() -> None:
    ch = plan_changes(snapshot(), SizeSpec(2, 4 * GIB), NEVER)
    assert not ch.restart and not ch.deferred
    vc, mem = ch.changes
    assert (vc.dimension, vc.before, vc.after, vc.effect) == ("vcpus", 4, 2, "next-restart")
    assert vc.when.startswith("next restart")
    assert (mem.before, mem.after, mem.effect) == (8 * GIB, 4 * GIB, "live")
    assert mem.when == ("now (live balloon + persistent config); max memory 8 GiB -> 4 GiB at next restart "
                        "(persistent config)")
    ops = build_operations(snapshot(), SizeSpec(2, 4 * GIB), ch)
    assert [(o.name, o.value, o.live, o.config) for o in ops] == [
        ("set memory (config)", 4 * GIB, False, True),
        ("lower max memory (config)", 4 * GIB, False, True),
        ("set vCPUs (config)", 2, False, True),
        ("set memory (live balloon)", 4 * GIB, True, False),
    ]


def test_running_vcpu_hotplug_within_max_is_live_and_last() -> None:
    s = snapshot(vcpus=2, cfg_vcpus=2)
    ch = plan_changes(s, SizeSpec(6, 8 * GIB), NEVER)
    assert [c.effect for c in ch.changes] == ["live", "unchanged"]
    ops = build_operations(s, SizeSpec(6, 8 * GIB), ch)
    assert [o.name for o in ops] == ["set vCPUs (config)", "hot-plug vCPUs (live)"]


def test_raising_a_maximum_follows_the_restart_policy() -> None:
    target = SizeSpec(4, 16 * GIB)
    never = plan_changes(snapshot(), target, NEVER)
    assert never.deferred and not never.restart
    assert never.changes[0].effect == "unchanged"
    assert never.changes[1].effect == "deferred" and never.changes[1].raises_maximum
    assert never.changes[1].when == "deferred (needs a restart; restart policy 'never')"
    assert never.reason == ("deferred: needs a restart to raise max memory 8 GiB -> 16 GiB; restart policy "
                            "'never' (use --restart allowed or --restart window)")
    assert build_operations(snapshot(), target, never) == []

    window = plan_changes(snapshot(), target, WINDOW)
    assert window.deferred
    assert window.changes[1].when == "in window sat 02:00-04:00 UTC (next opens 2024-06-08 02:00 UTC)"
    assert window.reason.startswith("deferred: needs a restart to raise max memory 8 GiB -> 16 GiB; in window")

    allowed = plan_changes(snapshot(), target, ALLOWED)
    assert allowed.restart and not allowed.deferred
    assert allowed.changes[1].effect == "restart-now"
    ops = build_operations(snapshot(), target, allowed)
    assert [(o.name, o.maximum) for o in ops] == [
        ("graceful shutdown", False),
        ("raise max memory (config)", True),
        ("set memory (config)", False),
        ("start", False),
    ]


def test_shut_off_vm_changes_config_only() -> None:
    s = snapshot(running=False, vcpus=4, max_vcpus=4)
    ch = plan_changes(s, SizeSpec(6, 2 * GIB, "g1.1"), NEVER)
    assert [c.effect for c in ch.changes] == ["next-start", "next-start"]
    assert ch.changes[0].raises_maximum and not ch.changes[1].raises_maximum
    ops = build_operations(s, SizeSpec(6, 2 * GIB, "g1.1"), ch)
    assert [o.name for o in ops] == [
        "set label machine_type=g1.1", "set memory (config)", "lower max memory (config)",
        "raise max vCPUs (config)", "set vCPUs (config)",
    ]


def test_is_at_target() -> None:
    assert is_at_target(snapshot(cfg_vcpus=2, cfg_mem=4 * GIB, mem=4 * GIB + MIB), SizeSpec(2, 4 * GIB))
    assert not is_at_target(snapshot(cfg_vcpus=2, cfg_mem=4 * GIB), SizeSpec(2, 4 * GIB))  # balloon not down
    assert not is_at_target(snapshot(cfg_vcpus=2, cfg_mem=4 * GIB, mem=4 * GIB), SizeSpec(2, 4 * GIB, "g1.1"))
    assert is_at_target(snapshot(running=False, vcpus=2, mem=4 * GIB, max_mem=4 * GIB), SizeSpec(2, 4 * GIB, "c1.2"))
    # at its type's memory, but an older downsize left the persistent maximum above it: not done yet
    leftover_max = snapshot(running=False, vcpus=2, mem=4 * GIB, max_mem=8 * GIB)
    assert not is_at_target(leftover_max, SizeSpec(2, 4 * GIB, "c1.2"))
    assert not is_at_target(snapshot(vcpus=2, cfg_vcpus=4), SizeSpec(4, 8 * GIB))  # hot-plug still to do


def test_memory_downsize_lowers_the_persistent_maximum() -> None:
    # the real-guest report: 2 vCPU / 1 GiB -> 1 vCPU / 512 MiB left <memory> at 1 GiB
    s = snapshot(vcpus=2, max_vcpus=2, mem=GIB, max_mem=GIB)
    ch = plan_changes(s, SizeSpec(1, 512 * MIB), NEVER)
    vc, mem = ch.changes
    assert not vc.lowers_maximum and mem.lowers_maximum and ch.lowers_max_memory
    assert mem.effect == "live"
    assert mem.when.endswith("; max memory 1 GiB -> 512 MiB at next restart (persistent config)")
    ops = build_operations(s, SizeSpec(1, 512 * MIB), ch)
    lower = [o for o in ops if o.name == "lower max memory (config)"]
    assert [(o.kind, o.value, o.live, o.config, o.maximum) for o in lower] == [
        ("memory", 512 * MIB, False, True, True)]
    assert [o.name for o in ops].index("set memory (config)") < [o.name for o in ops].index(lower[0].name)
    # shut off: the maximum goes down with the memory, at next start
    off = plan_changes(snapshot(running=False, mem=GIB, max_mem=GIB), SizeSpec(4, 512 * MIB), NEVER)
    assert off.changes[1].lowers_maximum and "max memory 1 GiB -> 512 MiB at next start" in off.changes[1].when
    # no memory downsize: the maximum is left alone (upsize, equal memory, memory already below max)
    for target, sn in ((SizeSpec(4, 8 * GIB), snapshot()), (SizeSpec(2, 8 * GIB), snapshot()),
                       (SizeSpec(4, 2 * GIB), snapshot(mem=2 * GIB, max_mem=4 * GIB))):
        plan = plan_changes(sn, target, NEVER)
        assert not plan.lowers_max_memory
        assert "lower max memory (config)" not in [o.name for o in build_operations(sn, target, plan)]
    # the dry-run diff says so
    res = ActionResult(step=resize_step(1, 512 * MIB), result="planned", reason="dry run", changes=ch.changes)
    assert "max memory 1 GiB -> 512 MiB at next restart" in format_result(res)


def test_leftover_max_memory_is_lowered_whether_or_not_the_vm_carries_the_label() -> None:
    """At the step's type's memory with ``<memory>`` above it: the step lowers only the maximum, next restart."""
    target = SizeSpec(2, 2 * GIB, "g1.1")
    for labels in ({}, {"machine_type": "g1.1"}, {"machine_type": "c1.2"}):
        s = snapshot(vcpus=2, max_vcpus=2, mem=2 * GIB, max_mem=4 * GIB, labels=labels)
        assert not is_at_target(s, target)
        ch = plan_changes(s, target, NEVER)
        vc, mem = ch.changes
        assert vc.effect == "unchanged" and (mem.effect, mem.lowers_maximum) == ("next-restart", True)
        assert mem.when.startswith("max memory 4 GiB -> 2 GiB at next restart (persistent config")
        names = [o.name for o in build_operations(s, target, ch)]
        label = [] if labels.get("machine_type") == "g1.1" else ["set label machine_type=g1.1"]
        assert names == [*label, "lower max memory (config)"]
    # a bare size step (no type named) keeps an operator's headroom
    s = snapshot(vcpus=2, max_vcpus=2, mem=2 * GIB, max_mem=4 * GIB, labels={})
    assert not plan_changes(s, SizeSpec(2, 2 * GIB), NEVER).lowers_max_memory
    assert is_at_target(s, SizeSpec(2, 2 * GIB))
