"""Resize actions against libvirt's test driver: real libvirt code in-process, no daemon.

Every test writes its own fleet file; each ``test:///`` connection holds a private in-memory copy, so the
tests are isolated and every check reads back through the same (real) connection the action used.
Failure injection wraps the control object; the evidence that a revert worked always comes from libvirt.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import libvirt
import pytest

from collector.actions.locks import VmLock
from collector.actions.policy import restart_permission
from collector.actions.resize import ResizeAction
from collector.actions.result import ActionResult
from collector.domxml import parse_config, parse_labels
from collector.errors import ActionSkipped, ConnectionFailedError
from collector.hypervisor.libvirt import LibvirtControl
from collector.hypervisor.testfleet import TEST_NAMESPACE, FleetDomain, domain_uuid, fleet_xml
from collector.model import VmRef, VmState
from collector.store.base import AuditEntry
from collector.store.sqlite import SqliteStore
from core.plan import ResizeStep, SizeSpec
from core.windows import parse_windows

pytestmark = pytest.mark.integration

GIB = 1024**3
NOW = datetime(2024, 6, 3, 12, 0, tzinfo=UTC)  # a Monday
# The test driver's default host has 3 GiB; give it room for the fleet below.
HOST_CPUS = 16
HOST_MEMORY_KIB = 64 * 1024 * 1024


def _fleet() -> list[FleetDomain]:
    return [
        FleetDomain("rs-act-run", domain_uuid("rs-act-run"), vcpus=2, max_vcpus=4, memory_bytes=4 * GIB,
                    max_memory_bytes=4 * GIB, labels={"team": "payments", "machine_type": "c1.2"}),
        FleetDomain("rs-act-off", domain_uuid("rs-act-off"), vcpus=2, max_vcpus=2, memory_bytes=4 * GIB,
                    max_memory_bytes=4 * GIB, running=False, labels={"machine_type": "c1.2"}),
        FleetDomain("rs-act-excl", domain_uuid("rs-act-excl"), labels={"rightsizer_exclude": "true"}),
        FleetDomain("rs-act-bystander", domain_uuid("rs-act-bystander")),
        # downsized by hand or by an older rightsizer: 1 GiB, <memory> still 4 GiB, no machine_type label
        FleetDomain("rs-act-legacy", domain_uuid("rs-act-legacy"), vcpus=2, max_vcpus=2, memory_bytes=1 * GIB,
                    max_memory_bytes=4 * GIB),
    ]


@dataclass
class Rig:
    uri: str
    control: LibvirtControl
    conn: Any  # the raw libvirt connection the control uses (same in-memory driver state)
    store: SqliteStore
    lock_dir: Path

    def ref(self, name: str) -> VmRef:
        return self.control.lookup(name)

    def xml(self, name: str) -> str:
        return self.control.get_domain_xml(self.ref(name), inactive=True)

    def step(self, name: str, vcpus: int, memory_bytes: int, machine_type: str = "",
             current: tuple[int, int] | None = None) -> ResizeStep:
        ref = self.ref(name)
        info = self.control.info(ref)
        cur = current or (info.vcpus, info.memory_bytes)
        return ResizeStep(vm=ref, current=SizeSpec(cur[0], cur[1], "c1.2"),
                          target=SizeSpec(vcpus, memory_bytes, machine_type),
                          price_before_per_hour=0.224, price_after_per_hour=0.112, currency="EUR",
                          finding="over-provisioned")

    def action(self, step: ResizeStep, *, control: Any = None, policy: str = "never", windows: tuple[str, ...] = (),
               now: datetime = NOW, **kw: Any) -> ResizeAction:
        perm = restart_permission(policy, parse_windows(windows), now)
        kw.setdefault("min_days_between_resizes", 7)
        kw.setdefault("verify_timeout_s", 2.0)
        kw.setdefault("poll_s", 0.05)
        return ResizeAction(control or self.control, step, permission=perm, audit=self.store,
                            lock_dir=self.lock_dir, plan_id="plan-test", actor="tester", clock=lambda: now, **kw)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    path = tmp_path / "fleet.xml"
    node = (f"<node xmlns:test='{TEST_NAMESPACE}'>\n<cpu><nodes>1</nodes><sockets>1</sockets><cores>{HOST_CPUS}"
            f"</cores><threads>1</threads><active>{HOST_CPUS}</active><mhz>2000</mhz></cpu>"
            f"<memory>{HOST_MEMORY_KIB}</memory>")
    path.write_text(fleet_xml(_fleet()).replace(f"<node xmlns:test='{TEST_NAMESPACE}'>", node, 1))
    uri = f"test://{path}"
    conns: list[Any] = []

    def opener(u: str) -> Any:
        conns.append(libvirt.open(u))
        return conns[-1]

    control = LibvirtControl(uri, open_readwrite=opener)
    control.host_capacity()  # opens the connection
    store = SqliteStore(tmp_path / "rs.db")
    yield Rig(uri, control, conns[0], store, tmp_path / "locks")
    store.close()
    control.close()


class FlakyControl:
    """Test wrapper: passes every call through, but on the Nth mutating call runs ``on_call`` instead."""

    MUTATING = ("set_vcpus", "set_memory", "define_xml", "set_labels", "shutdown", "start")

    def __init__(self, inner: LibvirtControl, n: int, on_call: Callable[[str, tuple[Any, ...], dict[str, Any]], Any]):
        self.inner = inner
        self.n = n
        self.on_call = on_call
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if name not in self.MUTATING:
            return target

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            if len(self.calls) == self.n:
                return self.on_call(name, args, kwargs)
            return target(*args, **kwargs)

        return wrapped

    @property
    def uri(self) -> str:
        return self.inner.uri


def audit_of(rig: Rig, name: str) -> list[AuditEntry]:
    return rig.store.audit(domain_uuid(name))


# ------------------------------------------------------------------------------------------ happy


def test_shut_off_vm_gets_vcpus_memory_and_label_in_config(rig: Rig) -> None:
    step = rig.step("rs-act-off", 4, 2 * GIB, "g1.1")
    res = rig.action(step).execute()
    assert res.result == "applied", res.reason
    cfg = parse_config(rig.xml("rs-act-off"))
    assert (cfg.vcpus, cfg.max_vcpus, cfg.memory_bytes, cfg.max_memory_bytes) == (4, 4, 2 * GIB, 2 * GIB)
    assert parse_labels(rig.xml("rs-act-off"))["machine_type"] == "g1.1"
    assert rig.control.info(rig.ref("rs-act-off")).state is VmState.SHUTOFF
    assert res.operations == ("set label machine_type=g1.1", "set memory (config)", "lower max memory (config)",
                              "raise max vCPUs (config)", "set vCPUs (config)")
    (entry,) = audit_of(rig, "rs-act-off")
    assert (entry.result, entry.actor, entry.plan_id, entry.action) == ("applied", "tester", "plan-test", "resize")
    assert entry.before["config_vcpus"] == 2 and entry.after["config_vcpus"] == 4
    assert entry.after["config_memory_bytes"] == 2 * GIB
    assert (entry.price_before_per_hour, entry.price_after_per_hour, entry.currency) == (0.224, 0.112, "EUR")
    assert "next start" in entry.reason
    assert "<vcpu" in entry.before["inactive_xml"]  # the saved XML, for manual recovery


def test_running_vm_memory_down_live_and_vcpu_hotplug_up(rig: Rig) -> None:
    res = rig.action(rig.step("rs-act-run", 4, 2 * GIB, "g1.1")).execute()
    assert res.result == "applied", res.reason
    info = rig.control.info(rig.ref("rs-act-run"))
    assert (info.state, info.vcpus, info.memory_bytes) == (VmState.RUNNING, 4, 2 * GIB)
    cfg = parse_config(rig.xml("rs-act-run"))
    assert (cfg.vcpus, cfg.memory_bytes, cfg.max_memory_bytes) == (4, 2 * GIB, 2 * GIB)
    assert [c.effect for c in res.changes] == ["live", "live"]
    assert res.operations[-1] == "hot-plug vCPUs (live)"
    # the collector reads live metadata: the new machine type must be visible there at once
    live_xml = rig.control.get_domain_xml(rig.ref("rs-act-run"), inactive=False)
    assert parse_labels(live_xml)["machine_type"] == "g1.1"
    assert parse_labels(rig.xml("rs-act-run"))["machine_type"] == "g1.1"


def test_fewer_vcpus_go_to_config_only(rig: Rig) -> None:
    res = rig.action(rig.step("rs-act-run", 1, 4 * GIB)).execute()
    assert res.result == "applied", res.reason
    assert rig.control.info(rig.ref("rs-act-run")).vcpus == 2  # live untouched
    assert parse_config(rig.xml("rs-act-run")).vcpus == 1
    assert res.reason == "applied and verified against libvirt; vCPUs 2 -> 1 takes effect at next restart"
    assert res.operations == ("set vCPUs (config)",)


def test_rerunning_a_finished_plan_changes_nothing(rig: Rig) -> None:
    step = rig.step("rs-act-run", 1, 2 * GIB, "g1.1")
    assert rig.action(step).execute().result == "applied"
    xml_after_first = rig.xml("rs-act-run")
    again = rig.action(step).execute()
    assert again.result == "unchanged"
    assert again.reason == "already at target; 2 -> 1 vCPUs take effect at next restart"
    assert rig.xml("rs-act-run") == xml_after_first
    assert [e.result for e in audit_of(rig, "rs-act-run")] == ["applied", "unchanged"]


def test_restart_policy_never_defers_a_raise_of_the_maximum(rig: Rig) -> None:
    before = rig.xml("rs-act-run")
    res = rig.action(rig.step("rs-act-run", 2, 8 * GIB)).execute()
    assert res.result == "deferred"
    assert "max memory 4 GiB -> 8 GiB" in res.reason and "restart policy 'never'" in res.reason
    assert rig.xml("rs-act-run") == before
    assert audit_of(rig, "rs-act-run")[-1].result == "deferred"


def test_restart_allowed_shuts_down_changes_and_starts(rig: Rig) -> None:
    res = rig.action(rig.step("rs-act-run", 6, 8 * GIB), policy="allowed").execute()
    assert res.result == "applied", res.reason
    assert res.operations[0] == "graceful shutdown" and res.operations[-1] == "start"
    info = rig.control.info(rig.ref("rs-act-run"))
    assert (info.state, info.vcpus, info.max_vcpus, info.memory_bytes, info.max_memory_bytes) == (
        VmState.RUNNING, 6, 6, 8 * GIB, 8 * GIB)


def test_window_policy_waits_for_the_window(rig: Rig) -> None:
    step = rig.step("rs-act-run", 2, 8 * GIB)
    outside = rig.action(step, policy="window", windows=("sat 02:00-04:00",)).execute()
    assert outside.result == "deferred"
    assert outside.reason.endswith("in window sat 02:00-04:00 UTC (next opens 2024-06-08 02:00 UTC)")
    assert rig.control.info(rig.ref("rs-act-run")).max_memory_bytes == 4 * GIB
    saturday = datetime(2024, 6, 8, 2, 30, tzinfo=UTC)
    inside = rig.action(step, policy="window", windows=("sat 02:00-04:00",), now=saturday).execute()
    assert inside.result == "applied", inside.reason
    assert rig.control.info(rig.ref("rs-act-run")).memory_bytes == 8 * GIB


# --------------------------------------------------------------------------------------- refusals


def test_target_beyond_host_fails_before_any_change(rig: Rig) -> None:
    before = rig.xml("rs-act-off")
    res = rig.action(rig.step("rs-act-off", HOST_CPUS + 1, 2 * GIB)).execute()
    assert res.result == "failed"
    assert f"does not fit host vm ({HOST_CPUS} CPUs, 64 GiB)" in res.reason
    assert res.operations == ()
    assert rig.xml("rs-act-off") == before
    assert audit_of(rig, "rs-act-off")[-1].result == "failed"


def test_excluded_vm_is_skipped(rig: Rig) -> None:
    res = rig.action(rig.step("rs-act-excl", 1, 2 * GIB)).execute()
    assert res.result == "skipped" and "rightsizer_exclude=true" in res.reason
    assert parse_config(rig.xml("rs-act-excl")).vcpus == 2


def test_recently_resized_vm_is_skipped(rig: Rig) -> None:
    rig.store.append_audit(AuditEntry(
        ts=NOW - timedelta(days=2), actor="someone", vm_uuid=domain_uuid("rs-act-run"), vm_name="rs-act-run",
        action="resize", before={}, after={}, result="applied", reason="earlier resize"))
    res = rig.action(rig.step("rs-act-run", 1, 2 * GIB)).execute()
    assert res.result == "skipped"
    assert "was resized on 2024-06-01 12:00 UTC, less than 7 days ago" in res.reason
    assert rig.action(rig.step("rs-act-run", 1, 2 * GIB), min_days_between_resizes=1).execute().result == "applied"


def test_stale_plan_and_missing_vm_are_skipped(rig: Rig) -> None:
    stale = rig.step("rs-act-run", 1, 2 * GIB, current=(8, 16 * GIB))
    res = rig.action(stale).execute()
    assert res.result == "skipped" and "changed since the plan was made" in res.reason
    ghost = ResizeStep(vm=VmRef(rig.uri, "0badc0de-0000-4000-8000-000000000000", "ghost"),
                       current=SizeSpec(2, 4 * GIB), target=SizeSpec(1, 2 * GIB))
    gone = rig.action(ghost).execute()
    assert gone.result == "skipped" and "no longer exists" in gone.reason


# ------------------------------------------------------------------------------ failure injection


def test_libvirt_error_on_second_step_reverts_to_saved_state(rig: Rig) -> None:
    ref = rig.ref("rs-act-run")
    saved_xml = rig.xml("rs-act-run")
    saved_info = rig.control.info(ref)

    def real_libvirt_error(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        # A call libvirt itself refuses: more vCPUs than the maximum, without the MAXIMUM flag.
        return rig.control.set_vcpus(ref, 64, live=False, config=True)

    flaky = FlakyControl(rig.control, 2, real_libvirt_error)
    res = rig.action(rig.step("rs-act-run", 3, 2 * GIB, "g1.1"), control=flaky).execute()
    assert res.result == "reverted", res.reason
    assert flaky.calls[:2] == ["set_labels", "set_memory"]  # step 1 (label) ran, step 2 failed
    assert "step 2 (set memory (config)) failed" in res.reason
    assert "libvirt error code" in res.reason and "revert verified against libvirt" in res.reason
    # Evidence from libvirt: the persistent XML is the saved one, live values are the saved ones.
    assert rig.xml("rs-act-run") == saved_xml
    info = rig.control.info(ref)
    assert (info.state, info.vcpus, info.memory_bytes) == (saved_info.state, saved_info.vcpus, saved_info.memory_bytes)
    entry = audit_of(rig, "rs-act-run")[-1]
    assert entry.result == "reverted" and "step 2" in entry.reason
    assert entry.after["config_memory_bytes"] == 4 * GIB and entry.after["machine_type"] == "c1.2"


def test_failure_after_live_changes_balloons_back(rig: Rig) -> None:
    ref = rig.ref("rs-act-run")
    saved_xml = rig.xml("rs-act-run")

    def fail(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return rig.control.set_vcpus(ref, 64, live=True, config=False)

    # ops: set memory (config), lower max memory (config), set vCPUs (config), set memory (live balloon),
    # hot-plug vCPUs (live) <- fails
    flaky = FlakyControl(rig.control, 5, fail)
    res = rig.action(rig.step("rs-act-run", 3, 2 * GIB), control=flaky).execute()
    assert res.result == "reverted", res.reason
    assert "step 5 (hot-plug vCPUs (live)) failed" in res.reason
    assert "ballooned back to 4 GiB" in res.reason
    assert rig.xml("rs-act-run") == saved_xml
    assert rig.control.info(ref).memory_bytes == 4 * GIB


def test_revert_rides_out_a_lost_connection(rig: Rig) -> None:
    ref = rig.ref("rs-act-run")
    saved_xml = rig.xml("rs-act-run")
    drops = {"left": 0}

    class DropsAfterFailure(FlakyControl):
        def __getattr__(self, name: str) -> Any:
            if name == "info" and drops["left"] > 0:
                def unreachable(*args: Any, **kwargs: Any) -> Any:
                    drops["left"] -= 1
                    raise ConnectionFailedError("injected: libvirtd restarting")
                return unreachable
            return super().__getattr__(name)

    def fail_then_drop(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        drops["left"] = 2  # the revert's next two reads find libvirt unreachable
        return rig.control.set_vcpus(ref, 64, live=False, config=True)

    flaky = DropsAfterFailure(rig.control, 2, fail_then_drop)
    res = rig.action(rig.step("rs-act-run", 1, 2 * GIB, "g1.1"), control=flaky, poll_s=0.01).execute()
    assert res.result == "reverted", res.reason
    assert drops["left"] == 0
    assert rig.xml("rs-act-run") == saved_xml


def test_domain_vanishing_mid_apply_is_reported_not_recreated(rig: Rig) -> None:
    ref = rig.ref("rs-act-off")

    def undefine_then_call(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        rig.conn.lookupByUUIDString(ref.uuid).undefine()
        return getattr(rig.control, name)(*args, **kwargs)

    flaky = FlakyControl(rig.control, 2, undefine_then_call)
    res = rig.action(rig.step("rs-act-off", 4, 2 * GIB), control=flaky).execute()
    assert res.result == "failed"
    assert "step 2 (lower max memory (config)) failed" in res.reason
    assert "no longer exists" in res.reason and "nothing was re-created" in res.reason
    assert ref.uuid not in {d.UUIDString() for d in rig.conn.listAllDomains()}
    assert audit_of(rig, "rs-act-off")[-1].result == "failed"
    assert parse_config(rig.xml("rs-act-bystander")).vcpus == 2  # others untouched


def test_shutdown_timeout_fails_and_leaves_vm_running_as_saved(rig: Rig) -> None:
    saved_xml = rig.xml("rs-act-run")
    flaky = FlakyControl(rig.control, 1, lambda *_: None)  # the guest ignores the ACPI request
    res = rig.action(rig.step("rs-act-run", 2, 8 * GIB), control=flaky, policy="allowed",
                     shutdown_timeout_s=0.3).execute()
    assert res.result == "reverted", res.reason
    assert "did not finish within 0.3s" in res.reason
    assert rig.control.info(rig.ref("rs-act-run")).state is VmState.RUNNING
    assert rig.xml("rs-act-run") == saved_xml


def test_start_failure_after_restart_brings_vm_back(rig: Rig) -> None:
    ref = rig.ref("rs-act-run")
    saved_xml = rig.xml("rs-act-run")

    def broken_start(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return rig.control.set_vcpus(ref, 64, live=True, config=False)  # VM is off: libvirt refuses

    # ops: shutdown, raise max memory, set memory, start <- fails
    flaky = FlakyControl(rig.control, 4, broken_start)
    res = rig.action(rig.step("rs-act-run", 2, 8 * GIB), control=flaky, policy="allowed").execute()
    assert res.result == "reverted", res.reason
    assert "started it again" in res.reason
    info = rig.control.info(ref)
    assert (info.state, info.memory_bytes, info.max_memory_bytes) == (VmState.RUNNING, 4 * GIB, 4 * GIB)
    assert rig.xml("rs-act-run") == saved_xml


def test_interrupt_mid_apply_reverts_then_propagates(rig: Rig) -> None:
    saved_xml = rig.xml("rs-act-run")

    def interrupt(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rig.action(rig.step("rs-act-run", 1, 2 * GIB), control=FlakyControl(rig.control, 2, interrupt)).execute()
    assert rig.xml("rs-act-run") == saved_xml
    entry = audit_of(rig, "rs-act-run")[-1]
    assert entry.result == "reverted" and entry.reason.startswith("interrupted after 1 step(s)")
    with VmLock(rig.lock_dir, domain_uuid("rs-act-run")):  # the lock was released
        pass


def test_concurrent_apply_on_same_vm_is_refused(rig: Rig) -> None:
    entered, release = threading.Event(), threading.Event()
    ref = rig.ref("rs-act-run")

    def slow(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        entered.set()
        release.wait(10)
        return getattr(rig.control, name)(*args, **kwargs)

    first_result: list[ActionResult] = []
    first = threading.Thread(target=lambda: first_result.append(
        rig.action(rig.step("rs-act-run", 1, 2 * GIB), control=FlakyControl(rig.control, 1, slow)).execute()))
    first.start()
    try:
        assert entered.wait(10)
        second = rig.action(rig.step("rs-act-run", 1, 2 * GIB)).execute()
        assert second.result == "skipped"
        assert "Another apply is running on VM" in second.reason
    finally:
        release.set()
        first.join(10)
    assert first_result[0].result == "applied"
    assert parse_config(rig.xml("rs-act-run")).vcpus == 1
    assert [e.result for e in audit_of(rig, "rs-act-run")] == ["skipped", "applied"]
    with VmLock(rig.lock_dir, ref.uuid):  # released afterwards
        pass


def test_lock_held_elsewhere_refuses_without_touching_the_vm(rig: Rig) -> None:
    before = rig.xml("rs-act-run")
    with VmLock(rig.lock_dir, domain_uuid("rs-act-run"), holder="other-process"):
        res = rig.action(rig.step("rs-act-run", 1, 2 * GIB)).execute()
    assert res.result == "skipped" and "other-process" in res.reason
    assert rig.xml("rs-act-run") == before
    with pytest.raises(ActionSkipped):
        with VmLock(rig.lock_dir, domain_uuid("rs-act-run")):
            VmLock(rig.lock_dir, domain_uuid("rs-act-run")).acquire()


def test_preview_changes_nothing_and_writes_no_audit(rig: Rig) -> None:
    before = rig.xml("rs-act-run")
    res = rig.action(rig.step("rs-act-run", 1, 2 * GIB, "g1.1")).preview()
    assert res.result == "planned"
    assert [c.effect for c in res.changes] == ["next-restart", "live"]
    assert res.operations == ("set label machine_type=g1.1", "set memory (config)", "lower max memory (config)",
                              "set vCPUs (config)", "set memory (live balloon)")
    assert rig.xml("rs-act-run") == before
    assert audit_of(rig, "rs-act-run") == []


# ------------------------------------------------------------------------------------------- CLI


def test_cli_dry_run_apply_and_history(rig: Rig, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from rightsizer.cli import main

    plan = tmp_path / "plan.json"
    step = rig.step("rs-act-run", 1, 2 * GIB, "g1.1")
    plan.write_text(json.dumps({"plan_id": "plan-cli", "steps": [step.to_dict()]}))
    db = tmp_path / "cli.db"
    # Each CLI run opens its own test:/// connection, i.e. a fresh copy of the fleet file.
    assert main(["apply", str(plan), "--uri", rig.uri, "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Plan plan-cli (1 VM(s), dry run, restart policy 'never')")
    assert "  vCPUs   2 -> 1" in out and "next restart (persistent config only" in out
    assert "  memory  4 GiB -> 2 GiB" in out and "now (live balloon + persistent config)" in out
    assert "saves 0.1120 EUR/h (80.64 EUR/month)" in out
    assert out.endswith("Dry run: nothing was changed. Run again with --yes to apply.\n")
    assert not db.exists()  # a dry run writes nothing

    assert main(["apply", str(plan), "--uri", rig.uri, "--db", str(db), "--yes", "--actor", "alice",
                 "--output", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["result"], row["plan_id"], row["vcpus_after"]) == ("applied", "plan-cli", 1)

    assert main(["apply", "--history", "--db", str(db), "--output", "json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    assert (entry["actor"], entry["vm"], entry["result"], entry["plan_id"]) == ("alice", "rs-act-run", "applied",
                                                                               "plan-cli")
    assert "inactive_xml" not in entry["before"]


def test_cli_bad_plan_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rightsizer.cli import main

    plan = tmp_path / "plan.json"
    plan.write_text('[{"uuid": "3f1c5e0a-6b1d-4d2e-9c1a-0f5e2b7d9a41", "current": {"vcpus": 2, '
                    '"memory_bytes": 1073741824}, "target": {"vcpus": 0, "memory_bytes": 1073741824}}]')
    assert main(["apply", str(plan), "--db", str(tmp_path / "x.db")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "steps[0].target.vcpus = 0" in err and str(plan) in err
    assert main(["apply", "--db", str(tmp_path / "x.db")]) == 2
    assert "give exactly one of PLAN.json or --from-findings" in capsys.readouterr().err


def test_downsize_lowers_persistent_max_memory_verified_and_reverted(rig: Rig) -> None:
    ref = rig.ref("rs-act-run")
    saved_xml = rig.xml("rs-act-run")
    step = rig.step("rs-act-run", 2, 1 * GIB)
    plan = rig.action(step).preview()
    (mem,) = [c for c in plan.changes if c.dimension == "memory_bytes"]
    assert mem.lowers_maximum and "max memory 4 GiB -> 1 GiB at next restart" in mem.when
    assert "lower max memory (config)" in plan.operations
    assert rig.xml("rs-act-run") == saved_xml  # the dry run changed nothing

    # a failure after the maximum was lowered: the revert brings the saved <memory> back
    def fail(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return rig.control.set_vcpus(ref, 64, live=True, config=False)

    flaky = FlakyControl(rig.control, 3, fail)  # set memory (config), lower max (config), balloon <- fails
    bad = rig.action(step, control=flaky).execute()
    assert bad.result == "reverted", bad.reason
    assert parse_config(rig.xml("rs-act-run")).max_memory_bytes == 4 * GIB
    assert rig.xml("rs-act-run") == saved_xml

    res = rig.action(step, min_days_between_resizes=0).execute()
    assert res.result == "applied", res.reason
    cfg = parse_config(rig.xml("rs-act-run"))
    assert (cfg.memory_bytes, cfg.max_memory_bytes) == (1 * GIB, 1 * GIB)
    info = rig.control.info(ref)
    assert (info.memory_bytes, info.max_memory_bytes) == (1 * GIB, 4 * GIB)  # live max drops at next restart
    assert "max memory 4 GiB -> 1 GiB takes effect at next restart" in res.reason
    assert audit_of(rig, "rs-act-run")[-1].after["config_max_memory_bytes"] == 1 * GIB


def test_leftover_max_memory_of_an_older_downsize_is_lowered_on_rerun(rig: Rig) -> None:
    """A VM downsized before the maximum was lowered: at its type's memory, ``<memory>`` still above it."""
    import re

    step = rig.step("rs-act-run", 2, 1 * GIB, "g1.1")
    assert rig.action(step).execute().result == "applied"
    # what the older code left behind: the same downsize with the persistent maximum untouched
    legacy = re.sub(r"<memory unit='KiB'>\d+</memory>", f"<memory unit='KiB'>{4 * GIB // 1024}</memory>",
                    rig.xml("rs-act-run"), count=1)
    rig.conn.defineXML(legacy)
    cfg = parse_config(rig.xml("rs-act-run"))
    assert (cfg.memory_bytes, cfg.max_memory_bytes) == (1 * GIB, 4 * GIB)

    step = rig.step("rs-act-run", 2, 1 * GIB, "g1.1")  # a plan made now, for the type it already has
    plan = rig.action(step, min_days_between_resizes=0).preview()
    assert plan.result == "planned" and "lower max memory (config)" in plan.operations, plan.reason
    res = rig.action(step, min_days_between_resizes=0).execute()
    assert res.result == "applied", res.reason
    assert "max memory 4 GiB -> 1 GiB takes effect at next restart" in res.reason
    cfg = parse_config(rig.xml("rs-act-run"))
    assert (cfg.memory_bytes, cfg.max_memory_bytes) == (1 * GIB, 1 * GIB)
    assert rig.action(step, min_days_between_resizes=0).execute().result == "unchanged"


def test_leftover_max_memory_without_a_machine_type_label_is_lowered(rig: Rig) -> None:
    """The step findings make for such a VM (to the size it has, naming its type): plan, a failure that
    reverts, apply, verify, and a rerun that finds nothing left to do."""
    ref = rig.ref("rs-act-legacy")
    saved_xml = rig.xml("rs-act-legacy")
    assert "machine_type" not in parse_labels(saved_xml)
    size = SizeSpec(2, 1 * GIB, "g1.1")
    step = ResizeStep(vm=ref, current=size, target=size, price_before_per_hour=0.05, price_after_per_hour=0.05,
                      currency="EUR", finding="optimized")
    plan = rig.action(step).preview()
    assert plan.result == "planned", plan.reason
    assert plan.operations == ("set label machine_type=g1.1", "lower max memory (config)")
    (mem,) = [c for c in plan.changes if c.dimension == "memory_bytes"]
    assert (mem.effect, mem.lowers_maximum) == ("next-restart", True)
    assert mem.when.startswith("max memory 4 GiB -> 1 GiB at next restart (persistent config")
    assert rig.xml("rs-act-legacy") == saved_xml and audit_of(rig, "rs-act-legacy") == []  # a dry run

    # the maximum is lowered, then libvirt refuses a call: the revert restores <memory> and the labels
    def lower_then_fail(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        rig.control.set_memory(*args, **kwargs)
        assert parse_config(rig.xml("rs-act-legacy")).max_memory_bytes == 1 * GIB
        return rig.control.set_vcpus(ref, 64, live=False, config=True)  # beyond the maximum: a real error

    flaky = FlakyControl(rig.control, 2, lower_then_fail)
    res = rig.action(step, control=flaky).execute()
    assert res.result == "reverted", res.reason
    assert flaky.calls[:2] == ["set_labels", "set_memory"]  # then the revert's calls
    assert "step 2 (lower max memory (config)) failed" in res.reason
    assert rig.xml("rs-act-legacy") == saved_xml

    res = rig.action(step, min_days_between_resizes=0).execute()
    assert res.result == "applied", res.reason
    assert "max memory 4 GiB -> 1 GiB takes effect at next restart" in res.reason
    xml = rig.xml("rs-act-legacy")
    cfg = parse_config(xml)
    assert (cfg.vcpus, cfg.memory_bytes, cfg.max_memory_bytes) == (2, 1 * GIB, 1 * GIB)
    assert parse_labels(xml)["machine_type"] == "g1.1"
    info = rig.control.info(ref)
    assert (info.memory_bytes, info.max_memory_bytes) == (1 * GIB, 4 * GIB)  # the live maximum: next restart
    after = audit_of(rig, "rs-act-legacy")[-1]
    assert after.result == "applied" and after.after["config_max_memory_bytes"] == 1 * GIB
    assert rig.action(step, min_days_between_resizes=0).execute().result == "unchanged"


def test_cli_from_findings_lowers_a_leftover_max_memory_without_the_label(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Findings over a store -> ``apply --from-findings`` dry run -> ``--yes``, on an unlabelled test-driver VM
    at g1.3's size (4 vCPU, 16 GiB) whose ``<memory>`` is still 32 GiB."""
    import json

    from collector.model import VmRecord
    from rightsizer.cli import main
    from tests.helpers.lifecycle_fleet import DAYS, FLEET, NOW, T0, lifecycle_points

    snug = FLEET["snug-1"]  # its history: below-threshold at g1.3, no resize proposed
    fleet = tmp_path / "fleet.xml"
    fleet.write_text(fleet_xml([FleetDomain(snug.name, snug.uuid, vcpus=4, max_vcpus=4, memory_bytes=16 * GIB,
                                            max_memory_bytes=32 * GIB)]))
    legacy = VmRecord(uuid=snug.uuid, name=snug.name, uri=snug.uri, host=snug.host, state=VmState.RUNNING,
                      vcpus=4, max_vcpus=4, memory_bytes=16 * GIB, max_memory_bytes=32 * GIB, labels={},
                      first_seen=T0, last_seen=NOW)
    db = tmp_path / "fleet.db"
    store = SqliteStore(db)
    store.write_history([legacy], lifecycle_points(legacy, range(DAYS * 24), 2.2, used_gib=5.0))
    store.close()
    uri = f"test://{fleet}"

    assert main(["apply", "--from-findings", "--uri", uri, "--db", str(db), "--output", "json"]) == 0
    (planned,) = json.loads(capsys.readouterr().out)
    assert (planned["name"], planned["result"]) == (snug.name, "planned"), planned
    assert "lower max memory (config)" in planned["operations"], planned
    assert planned["memory_when"].startswith("max memory 32 GiB -> 16 GiB at next restart"), planned
    assert (planned["memory_bytes_before"], planned["memory_bytes_after"]) == (16 * GIB, 16 * GIB)

    # each CLI run opens its own test:/// copy of the fleet file: the applied run's own verification is the proof
    assert main(["apply", "--from-findings", "--uri", uri, "--db", str(db), "--yes", "--output", "json"]) == 0
    (applied,) = json.loads(capsys.readouterr().out)
    assert applied["result"] == "applied", applied
    assert "max memory 32 GiB -> 16 GiB takes effect at next restart" in applied["reason"]
    audit = SqliteStore(db)
    try:
        (entry,) = audit.audit(snug.uuid)
    finally:
        audit.close()
    assert entry.result == "applied" and entry.after["config_max_memory_bytes"] == 16 * GIB
    assert entry.after["machine_type"] == "g1.3" and entry.before["config_max_memory_bytes"] == 32 * GIB
