"""The sampler and store on the real daemon: restarts give gaps not negative rates; libvirtd outages heal."""

from __future__ import annotations

import time
from datetime import timedelta

import libvirt
import pytest
from domains import boot_guest, wait_for_console

from collector.hypervisor.libvirt import LibvirtSource
from collector.sampler import Sampler
from collector.store.sqlite import SqliteStore

pytestmark = [pytest.mark.integration, pytest.mark.guests]


def _raw(store: SqliteStore, sampler: Sampler):
    now = sampler.clock()
    return store.frame(now - timedelta(hours=2), now + timedelta(hours=1), resolution="raw")


def test_guest_destroyed_and_restarted_mid_run_gives_no_negative_rate(tmp_path, libvirtd, guests, guest_images):
    store = SqliteStore(tmp_path / "rs.db")
    sampler = Sampler([LibvirtSource(libvirtd)], store, interval_s=2)
    spec = guests["busy"]
    sampler.poll_once()
    time.sleep(2)
    sampler.poll_once()
    conn = libvirt.open(libvirtd)
    try:
        conn.lookupByName(spec.name).destroy()  # transient guest: gone until booted again
        sampler.poll_once()
        boot_guest(conn, spec, guest_images)
        wait_for_console(spec.console_log, timeout_s=180)
    finally:
        conn.close()
    for _ in range(3):
        time.sleep(2)
        sampler.poll_once()
    raw = _raw(store, sampler)
    busy = raw[raw["vm"] == next(r.uuid for r in store.vms() if r.name == spec.name)]
    cpu = busy["cpu_vcpus"].dropna()
    assert (raw[["cpu_vcpus", "disk_read_bps", "disk_write_bps"]].fillna(0) >= 0).all().all()
    assert busy["gap"].sum() >= 2  # the first sighting and the restart
    assert len(cpu) >= 2 and cpu.iloc[-1] > 0.5  # busy again after the restart
    sampler.close()
    store.close()


def test_libvirtd_killed_and_restarted_the_collector_reconnects(tmp_path, libvirtd, guests, libvirtd_rig,
                                                               restart_libvirtd):
    store = SqliteStore(tmp_path / "rs.db")
    sampler = Sampler([LibvirtSource(libvirtd)], store, interval_s=2)
    sampler.poll_once()
    assert sampler.snapshot.health[libvirtd].up
    libvirtd_rig.stop()
    for _ in range(2):
        batches = sampler.poll_once()  # must not raise while the daemon is down
        assert batches[0].ok is False
        assert sampler.snapshot.health[libvirtd].up is False
    libvirtd_rig.start()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        time.sleep(1)
        if sampler.poll_once()[0].ok:
            break
    assert sampler.snapshot.health[libvirtd].up, "collector did not reconnect within 90 s"
    time.sleep(2)
    sampler.poll_once()
    names = {s.ref.name for b in sampler.snapshot.batches.values() for s in b.samples}
    assert {g.name for g in guests.values()} <= names
    raw = _raw(store, sampler)
    assert (raw["cpu_vcpus"].dropna() >= 0).all()
    assert sampler.snapshot.errors_total.get("connection", 0) >= 2
    sampler.close()
    store.close()
