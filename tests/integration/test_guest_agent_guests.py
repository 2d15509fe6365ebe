"""Guest filesystem use on the real rig, with and without a QEMU guest agent.

The session guests have no agent channel: the probe asks each running guest once (on a read-write connection,
in its own thread); libvirt answers "QEMU guest agent is not configured" at once. Nothing is logged above
debug, no error is counted, nothing is stored, the collection cycle does not wait, and storage advice falls
back to the image allocation.

rs-test-agent has the channel, an ext2 filesystem on its disk mounted at /data and a live qemu-ga: the
collector's reading matches the guest's own ``df``, follows a file written into /data, is stored and drives
the storage advice; once the agent is killed the guest is unknown again and the stored reading is kept.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import libvirt
import libvirt_qemu
import pytest
from domains import (
    GuestImages,
    GuestSpec,
    boot_guest,
    create_disk,
    guest_exec,
    remove_domain,
    wait_for_agent,
    wait_for_console,
)

from analytics.analysis import AnalysisOptions, analyse_fleet
from analytics.catalogue import load_catalogue, load_storage_prices
from analytics.findings.context import LifecycleRules
from collector.guestfs import stored_usage
from collector.hypervisor.libvirt import LibvirtSource
from collector.sampler import Sampler
from collector.store.sqlite import SqliteStore
from core.settings import CostSettings, Settings, SignalSettings
from rightsizer.service import compute_economics

pytestmark = [pytest.mark.integration, pytest.mark.guests]


def test_guests_without_an_agent_are_unknown_quietly_and_the_cycle_does_not_wait(
        tmp_path, libvirtd, guests, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="collector")
    # one-shot CLI commands run in-process earlier in the session quiet collector.hypervisor; the probe's own
    # logger is set here so its debug line is seen whatever ran before
    caplog.set_level(logging.DEBUG, logger="collector.hypervisor.guestagent")
    store = SqliteStore(tmp_path / "rs.db")
    plain = LibvirtSource(libvirtd)
    probed = LibvirtSource(libvirtd, guest_agent_every_s=3600, guest_agent_timeout_s=10)
    sampler = Sampler([probed], store, interval_s=2)
    try:
        plain.sample_all()  # warm both connections: the first open probes capabilities
        probed.sample_all()
        ours = {spec.name for spec in guests.values()}
        cycles: list[tuple[float, float]] = []
        for _ in range(3):
            t0 = time.monotonic()
            plain.sample_all()
            t1 = time.monotonic()
            sampler.poll_once()  # the first of these hands every running guest to the probe
            cycles.append((t1 - t0, time.monotonic() - t1))
            time.sleep(1.0)
        probe = probed.guest_agent
        assert probe is not None and probe.wait_idle(30)
        uuids = {s.ref.uuid for b in sampler.snapshot.batches.values() for s in b.samples if s.ref.name in ours}
        assert ours and len(uuids) == len(ours)
        assert uuids <= probe.unknown  # no agent: unknown, not an error
        assert not uuids & set(stored_usage(store))
        assert sampler.snapshot.errors_total == {}
        noisy = [r for r in caplog.records if r.levelno >= logging.WARNING and "agent" in r.getMessage()]
        assert noisy == []
        assert any("guest agent" in r.getMessage() and r.levelno == logging.DEBUG for r in caplog.records)
        # a probed cycle costs what a plain one does (+ storing it); never the agent's time
        assert len(cycles) == 3 and all(probed_s < plain_s + 1.0 for plain_s, probed_s in cycles), cycles
        disk = next(s for b in sampler.snapshot.batches.values() for s in b.samples
                    if s.ref.name == guests["disk"].name)
        now = sampler.snapshot.taken_at + timedelta(hours=1)
        rules = LifecycleRules(7.0, CostSettings(), load_storage_prices())
        options = AnalysisOptions(profile=None, idle=None, signals=SignalSettings(), lifecycle=rules, now=now)
        findings = analyse_fleet(store, load_catalogue(), options).by_uuid()
        advice = findings[disk.ref.uuid].storage
        assert advice is not None and advice.used_source == "allocation", advice
    finally:
        probed.close()
        plain.close()
        store.close()


@pytest.fixture
def agent_guest(libvirtd: str, guest_images: GuestImages, tmp_path: Path) -> Iterator[libvirt.virDomain]:
    """rs-test-agent: idle, ext2 on its 64 MiB disk at /data, qemu-ga on org.qemu.guest_agent.0."""
    spec = GuestSpec(name="rs-test-agent", disk=create_disk(tmp_path / "agent.qcow2", 64), filesystem=True,
                     guest_agent=True, console_log=tmp_path / "agent.console.log", labels={"team": "data"})
    conn = libvirt.open(libvirtd)
    try:
        dom = boot_guest(conn, spec, guest_images)
        wait_for_console(spec.console_log, timeout_s=180)
        console = spec.console_log.read_text(errors="replace")
        assert "rs-init: ext2 on /dev/vda at /data" in console and "rs-init: guest agent on" in console, console
        wait_for_agent(dom)
        yield dom
    finally:
        remove_domain(conn, spec.name)
        conn.close()


def _guest_df(dom: libvirt.virDomain) -> tuple[int, int]:
    """(used, used + available) bytes of /data as the guest's own df sees them."""
    code, out = guest_exec(dom, ["/bin/df", "-k", "/data"])
    assert code == 0, out
    used_kib, avail_kib = (int(v) for v in out.splitlines()[-1].split()[2:4])
    return used_kib * 1024, (used_kib + avail_kib) * 1024


def test_a_live_agent_reports_guest_filesystem_use_that_is_stored_and_drives_storage_advice(
        tmp_path, libvirtd, agent_guest, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="collector.hypervisor.guestagent")
    uuid = agent_guest.UUIDString()
    store = SqliteStore(tmp_path / "rs.db")
    source = LibvirtSource(libvirtd, guest_agent_every_s=0.5, guest_agent_timeout_s=15)
    sampler = Sampler([source], store, interval_s=2)
    probe = source.guest_agent
    assert probe is not None

    def reading_after_a_fresh_ask() -> None:
        assert probe.wait_idle(30)  # an ask already under way may predate the change
        time.sleep(0.6)  # past every_s: the next cycle asks again
        sampler.poll_once()
        assert probe.wait_idle(30)
        sampler.poll_once()  # hands over what the probe read (and asks once more)
        assert probe.wait_idle(30)

    try:
        reading_after_a_fresh_ask()
        first = stored_usage(store)[uuid]
        assert (first.used_bytes, first.total_bytes) == _guest_df(agent_guest)
        assert first.filesystems == 1 and 50 * 2**20 < first.total_bytes <= 64 * 2**20, first

        code, out = guest_exec(agent_guest, ["/bin/dd", "if=/dev/zero", "of=/data/blob", "bs=1M", "count=8",
                                             "conv=fsync"])
        assert code == 0, out
        reading_after_a_fresh_ask()
        second = stored_usage(store)[uuid]
        assert (second.used_bytes, second.total_bytes) == _guest_df(agent_guest)
        grown = second.used_bytes - first.used_bytes
        assert 8 * 2**20 <= grown <= 8 * 2**20 + 256 * 2**10, (first, second)  # data + ext2 indirect blocks
        assert second.total_bytes == first.total_bytes and uuid not in probe.unknown

        now = sampler.snapshot.taken_at + timedelta(hours=1)
        rules = LifecycleRules(7.0, CostSettings(), load_storage_prices())
        options = AnalysisOptions(profile=None, idle=None, signals=SignalSettings(), lifecycle=rules, now=now)
        findings = analyse_fleet(store, load_catalogue(), options).by_uuid()
        advice = findings[uuid].storage
        assert advice is not None and advice.used_source == "guest-agent", advice
        assert advice.used_bytes == second.used_bytes
        economics = compute_economics(store, load_catalogue(), Settings(), now)
        assert economics.by_vm[uuid].storage_used_source == "guest-agent"  # the metric's used_source label

        # the agent goes away (its own guest-exec kills it): unknown, never 0; the last reading stays stored
        kill = {"execute": "guest-exec", "arguments": {"path": "/bin/sh", "arg": ["-c", "sleep 1; killall qemu-ga"]}}
        assert probe.wait_idle(30)
        killed_at = datetime.now(UTC)
        libvirt_qemu.qemuAgentCommand(agent_guest, json.dumps(kill), 10, 0)  # not waited for: it ends the agent
        time.sleep(3)
        reading_after_a_fresh_ask()
        assert uuid in probe.unknown
        kept = stored_usage(store)[uuid]
        assert (kept.used_bytes, kept.total_bytes) == (second.used_bytes, second.total_bytes)
        assert kept.at < killed_at, kept
        assert sampler.snapshot.errors_total == {}
    finally:
        source.close()
        store.close()
