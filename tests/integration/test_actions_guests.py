"""Resize actions on real QEMU guests (libvirtd + TCG): the evidence that live and config resizes work.

Two guests, each booted once per module: ``rs-act-live`` (running; balloon, hot-plug, deferred vCPU
unplug, a reverted failure, then a restart that raises the maximum) and ``rs-act-off`` (defined shut off,
resized in its config, then started once to show the config took effect). The tests run in file order
and each one checks the state it starts from. No other domain is touched.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import libvirt
import pytest
from domains import GuestImages, GuestSpec, boot_guest, guest_domain_xml, remove_domain, wait_for_console

from collector.actions.policy import restart_permission
from collector.actions.resize import ResizeAction
from collector.domxml import parse_config, parse_labels
from collector.hypervisor.libvirt import LibvirtControl
from collector.model import VmState
from collector.store.sqlite import SqliteStore
from core.plan import ResizeStep, SizeSpec

pytestmark = [pytest.mark.integration, pytest.mark.guests]

MIB = 1024**2
LIVE = "rs-act-live"
OFF = "rs-act-off"


@dataclass
class Rig:
    control: LibvirtControl
    store: SqliteStore
    lock_dir: Path
    console: Path

    def step(self, name: str, vcpus: int, memory_mib: int, machine_type: str = "") -> ResizeStep:
        ref = self.control.lookup(name)
        info = self.control.info(ref)
        return ResizeStep(vm=ref, current=SizeSpec(info.vcpus, info.memory_bytes),
                          target=SizeSpec(vcpus, memory_mib * MIB, machine_type),
                          price_before_per_hour=0.05, price_after_per_hour=0.04, currency="EUR")

    def run(self, step: ResizeStep, *, policy: str = "never", control: Any = None) -> Any:
        return ResizeAction(
            control or self.control, step, permission=restart_permission(policy, (), datetime.now(UTC)),
            audit=self.store, lock_dir=self.lock_dir, plan_id="plan-guests", actor="rig",
            min_days_between_resizes=0, shutdown_timeout_s=60.0, verify_timeout_s=30.0,
        ).execute()

    def xml(self, name: str) -> str:
        return self.control.get_domain_xml(self.control.lookup(name), inactive=True)

    def info(self, name: str) -> Any:
        return self.control.info(self.control.lookup(name))


@pytest.fixture(scope="module")
def rig(libvirtd: str, guest_images: GuestImages, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    work = tmp_path_factory.mktemp("actions-guests")
    conn = libvirt.open(libvirtd)
    live = GuestSpec(name=LIVE, memory_mib=224, vcpus=1, max_vcpus=2, console_log=work / "live.console.log",
                     labels={"team": "payments", "machine_type": "t.small"})
    try:
        boot_guest(conn, live, guest_images, persistent=True)
        remove_domain(conn, OFF)
        conn.defineXML(guest_domain_xml(
            GuestSpec(name=OFF, memory_mib=128, vcpus=1, console_log=work / "off.console.log"), guest_images))
        assert live.console_log is not None
        wait_for_console(live.console_log, timeout_s=180)
        control = LibvirtControl(libvirtd)
        store = SqliteStore(work / "rs.db")
        yield Rig(control, store, work / "locks", live.console_log)
        store.close()
        control.close()
    finally:
        conn.close()
        conn = libvirt.open(libvirtd)  # fresh: another test may have restarted libvirtd meanwhile
        try:
            remove_domain(conn, LIVE)
            remove_domain(conn, OFF)
        finally:
            conn.close()


def test_running_guest_balloons_down_and_hotplugs_a_vcpu_live(rig: Rig) -> None:
    before = rig.info(LIVE)
    assert (before.state, before.vcpus, before.memory_bytes) == (VmState.RUNNING, 1, 224 * MIB)
    res = rig.run(rig.step(LIVE, 2, 160, "t.medium"))
    assert res.result == "applied", res.reason
    assert [c.effect for c in res.changes] == ["live", "live"]
    info = rig.info(LIVE)  # live, from QEMU
    assert (info.state, info.vcpus, info.max_vcpus) == (VmState.RUNNING, 2, 2)
    assert abs(info.memory_bytes - 160 * MIB) <= 4 * MIB
    cfg = parse_config(rig.xml(LIVE))  # persistent
    assert (cfg.vcpus, cfg.max_vcpus, cfg.memory_bytes, cfg.max_memory_bytes) == (2, 2, 160 * MIB, 160 * MIB)
    assert parse_labels(rig.xml(LIVE)) == {"team": "payments", "machine_type": "t.medium"}
    assert "CPU1 has been hot-added" in rig.console.read_text(errors="replace")  # the guest saw it
    again = rig.run(rig.step(LIVE, 2, 160, "t.medium"))
    assert again.result == "unchanged" and again.operations == ()


def test_running_guest_fewer_vcpus_go_to_config_only(rig: Rig) -> None:
    res = rig.run(rig.step(LIVE, 1, 160))
    assert res.result == "applied", res.reason
    assert res.operations == ("set vCPUs (config)",)
    assert rig.info(LIVE).vcpus == 2  # no live unplug
    assert parse_config(rig.xml(LIVE)).vcpus == 1
    assert "vCPUs 2 -> 1 takes effect at next restart" in res.reason


class SecondCallFails:
    """Passes calls through; the 2nd mutating call is replaced by one QEMU refuses (memory above max)."""

    def __init__(self, inner: LibvirtControl) -> None:
        self.inner = inner
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if name not in ("set_vcpus", "set_memory", "define_xml", "set_labels", "shutdown", "start"):
            return target

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.calls == 2:
                ref = args[0]
                return self.inner.set_memory(ref, 4096 * MIB, live=True, config=False)
            return target(*args, **kwargs)

        return wrapped

    @property
    def uri(self) -> str:
        return self.inner.uri


class ConsoleAtStart:
    """Passes calls through; keeps the guest console's text as it was when ``start`` was called."""

    def __init__(self, inner: LibvirtControl, console: Path) -> None:
        self.inner = inner
        self.console = console
        self.console_before_start = ""

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @property
    def uri(self) -> str:
        return self.inner.uri

    def start(self, ref: Any) -> None:
        self.console_before_start = self.console.read_text(errors="replace")
        self.inner.start(ref)


def test_libvirt_error_on_second_step_reverts_the_running_guest(rig: Rig) -> None:
    saved_xml = rig.xml(LIVE)
    saved = rig.info(LIVE)
    # ops: set label (live + config metadata), set memory (config) <- QEMU error, ...
    res = rig.run(rig.step(LIVE, 1, 128, "t.tiny"), control=SecondCallFails(rig.control))
    assert res.result == "reverted", res.reason
    assert "step 2 (set memory (config)) failed" in res.reason and "libvirt error code" in res.reason
    assert rig.xml(LIVE) == saved_xml  # libvirt's persistent definition is the saved one, byte for byte
    info = rig.info(LIVE)
    assert (info.state, info.vcpus, info.memory_bytes) == (VmState.RUNNING, saved.vcpus, saved.memory_bytes)
    entry = rig.store.audit(info.ref.uuid)[-1]
    assert entry.result == "reverted" and "revert verified against libvirt" in entry.reason


def test_restart_allowed_raises_max_memory_with_graceful_shutdown(rig: Rig) -> None:
    assert rig.info(LIVE).max_memory_bytes == 224 * MIB
    never = rig.run(rig.step(LIVE, 1, 256))
    assert never.result == "deferred" and "max memory" in never.reason
    assert rig.info(LIVE).max_memory_bytes == 224 * MIB
    spy = ConsoleAtStart(rig.control, rig.console)
    res = rig.run(rig.step(LIVE, 1, 256), policy="allowed", control=spy)
    assert res.result == "applied", res.reason
    assert res.operations[0] == "graceful shutdown" and res.operations[-1] == "start"
    # The guest's own console, read just before the start (QEMU truncates it on boot): ACPI, not a power cut.
    assert "rs-init: power button, powering off" in spy.console_before_start
    info = rig.info(LIVE)
    # The vCPU decrease deferred earlier takes effect with this restart.
    assert (info.state, info.vcpus, info.max_memory_bytes, info.memory_bytes) == (
        VmState.RUNNING, 1, 256 * MIB, 256 * MIB)
    cfg = parse_config(rig.xml(LIVE))
    assert (cfg.vcpus, cfg.memory_bytes, cfg.max_memory_bytes) == (1, 256 * MIB, 256 * MIB)


def test_shut_off_guest_is_resized_in_config_and_boots_with_it(rig: Rig) -> None:
    assert rig.info(OFF).state is VmState.SHUTOFF
    res = rig.run(rig.step(OFF, 2, 192))
    assert res.result == "applied", res.reason
    assert [c.effect for c in res.changes] == ["next-start", "next-start"]
    cfg = parse_config(rig.xml(OFF))
    assert (cfg.vcpus, cfg.max_vcpus, cfg.memory_bytes, cfg.max_memory_bytes) == (2, 2, 192 * MIB, 192 * MIB)
    assert rig.info(OFF).state is VmState.SHUTOFF  # a shut-off VM stays off
    ref = rig.control.lookup(OFF)
    rig.control.start(ref)
    try:
        info = rig.info(OFF)
        assert (info.state, info.vcpus, info.memory_bytes) == (VmState.RUNNING, 2, 192 * MIB)
    finally:
        rig.control.destroy(ref)


def test_downsize_lowers_max_memory_and_the_guest_boots_smaller(rig: Rig) -> None:
    before = rig.info(LIVE)
    assert (before.state, before.memory_bytes, before.max_memory_bytes) == (VmState.RUNNING, 256 * MIB, 256 * MIB)
    step = rig.step(LIVE, 1, 192)
    plan = ResizeAction(rig.control, step, permission=restart_permission("never", (), datetime.now(UTC)),
                        min_days_between_resizes=0).preview()
    assert plan.result == "planned" and "lower max memory (config)" in plan.operations
    assert any("max memory 256 MiB -> 192 MiB at next restart" in c.when for c in plan.changes)
    res = rig.run(step)
    assert res.result == "applied", res.reason
    cfg = parse_config(rig.xml(LIVE))  # persistent <memory> and <currentMemory>
    assert (cfg.memory_bytes, cfg.max_memory_bytes) == (192 * MIB, 192 * MIB)
    info = rig.info(LIVE)  # live: ballooned down, the live maximum waits for the restart
    assert abs(info.memory_bytes - 192 * MIB) <= 4 * MIB and info.max_memory_bytes == 256 * MIB
    ref = rig.control.lookup(LIVE)
    rig.control.destroy(ref)
    rig.control.start(ref)
    info = rig.info(LIVE)
    assert (info.state, info.max_memory_bytes, info.memory_bytes) == (VmState.RUNNING, 192 * MIB, 192 * MIB)
