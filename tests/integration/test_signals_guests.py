"""Contention and disk signals on real QEMU guests: two busy guests pinned to one host CPU, the disk writer.

Reuses the session guests (rs-test-busy, rs-test-disk) and boots one more busy guest for the CPU contention;
the session busy guest is unpinned again afterwards.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import timedelta

import libvirt
import pandas as pd
import pytest
from domains import boot_guest, remove_domain, wait_for_console

from analytics.signals import contention_signals
from collector.exporter import build_registry
from collector.exposition import render_text
from collector.hypervisor.libvirt import LibvirtSource
from collector.sampler import Sampler
from collector.store.sqlite import SqliteStore
from core.settings import SignalSettings

pytestmark = [pytest.mark.integration, pytest.mark.guests]


def _pin_all(dom: libvirt.virDomain, cpus: tuple[bool, ...]) -> None:
    for vcpu in range(dom.info()[3]):
        dom.pinVcpu(vcpu, cpus)


@pytest.fixture
def pinned_pair(libvirtd, guests, guest_images, guest_dir):
    """rs-test-busy and a second busy guest, both pinned to host CPU 0; unpinned/removed afterwards."""
    spec = replace(guests["busy"], name="rs-test-busy2", console_log=guest_dir / "busy2.console.log")
    conn = libvirt.open(libvirtd)
    ncpus = conn.getInfo()[2]
    only_cpu0 = tuple(i == 0 for i in range(ncpus))
    try:
        dom2 = boot_guest(conn, spec, guest_images)
        wait_for_console(spec.console_log, timeout_s=180)
        busy = conn.lookupByName(guests["busy"].name)
        _pin_all(busy, only_cpu0)
        _pin_all(dom2, only_cpu0)
        yield guests["busy"].name, spec.name
    finally:
        try:
            _pin_all(conn.lookupByName(guests["busy"].name), tuple(True for _ in range(ncpus)))
        finally:
            remove_domain(conn, spec.name)
            conn.close()


def test_two_busy_guests_on_one_host_cpu_show_delay_and_contention(tmp_path, libvirtd, pinned_pair):
    store = SqliteStore(tmp_path / "rs.db")
    sampler = Sampler([LibvirtSource(libvirtd)], store, interval_s=3)
    try:
        sampler.poll_once()
        time.sleep(4)
        sampler.poll_once()
        time.sleep(4)
        sampler.poll_once()
        store.refresh_rollups()
        names = {r.uuid: r.name for r in store.vms()}
        now = sampler.clock()
        raw = store.frame(now - timedelta(hours=1), now + timedelta(minutes=1), resolution="raw")
        last = raw[~raw["gap"]].groupby("vm").last()
        delay = {names[u]: v for u, v in last["cpu_delay_vcpus"].items()}
        # each gets about half of the shared CPU: ~0.5 s of delay per second (TCG; the host is busy too)
        for name in pinned_pair:
            assert delay[name] > 0.2, (name, delay)
        hours = store.frame(now - timedelta(hours=2), now + timedelta(hours=1), resolution="hour")
        signals = contention_signals(hours, store.vms(), SignalSettings(), now=pd.Timestamp(now), lookback_days=1)
        host = sampler.snapshot.batches[libvirtd].host
        for uuid, name in names.items():
            if name in pinned_pair:
                assert signals[uuid].contended and host in signals[uuid].reason, signals[uuid]
        idle = next(u for u, n in names.items() if n == "rs-test-idle")
        assert not signals[idle].contended
    finally:
        sampler.close()
        store.close()


def test_disk_writer_shows_request_and_time_rates_and_capacity(tmp_path, libvirtd, guests):
    store = SqliteStore(tmp_path / "rs.db")
    sampler = Sampler([LibvirtSource(libvirtd)], store, interval_s=3)
    try:
        sampler.poll_once()
        time.sleep(4)
        sampler.poll_once()
        disk = next(s for b in sampler.snapshot.batches.values() for s in b.samples
                    if s.ref.name == guests["disk"].name)
        point = sampler.snapshot.points[disk.ref.uuid]
        assert point.disk_write_iops is not None and point.disk_write_iops > 1
        assert point.disk_write_time_s_per_s is not None and point.disk_write_time_s_per_s > 0
        (vda,) = disk.disks
        assert vda.capacity_bytes == 64 * 2**20 and vda.allocation_bytes is not None
        text = render_text(build_registry(lambda: sampler.snapshot).collect()).decode()
        mine = [line for line in text.splitlines() if f'vm="{disk.ref.name}"' in line]
        for series in ("rightsizer_vm_disk_write_requests_total", "rightsizer_vm_disk_write_time_seconds_total",
                       "rightsizer_vm_disk_capacity_bytes", "rightsizer_vm_disk_allocation_bytes",
                       "rightsizer_vm_cpu_delay_seconds_total", "rightsizer_vm_memory_major_faults_total"):
            assert any(line.startswith(series + "{") for line in mine), series
        (tmp_path / "scrape.txt").write_text("\n".join(mine) + "\n")
    finally:
        sampler.close()
        store.close()
