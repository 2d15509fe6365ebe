"""The overview's Hosts section in headless Chromium: overcommit per host, its vCPU wait, the contended VMs.

A store with two hosts as the collector leaves it: hv-busy (2 CPUs) runs 6 vCPUs whose VMs wait for a host
CPU 40 % of their vCPU time; hv-calm (8 CPUs) runs 2 vCPUs that hardly wait. Host CPU counts are what the
sampler records from libvirt getInfo (store meta ``host_cpus``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from analytics.catalogue import load_catalogue
from collector.config import Settings
from collector.model import UsagePoint, VmRecord, VmState
from collector.store.jsonmeta import HOST_CPUS_KEY, merge_json_meta
from collector.store.sqlite import SqliteStore
from dashboard.app import create_app
from dashboard.web import start_server

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
GIB = 1 << 30
END = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
#: name, host, vCPUs, vCPU-equivalents spent waiting for a host CPU
VMS = (("web-1", "hv-busy", 2, 0.8), ("web-2", "hv-busy", 4, 1.6), ("db-1", "hv-calm", 2, 0.01))


def _vm(name: str, host: str, vcpus: int) -> VmRecord:
    first = END - timedelta(days=10)
    return VmRecord(str(uuid.uuid5(uuid.NAMESPACE_DNS, name)), name, "qemu:///system", host, VmState.RUNNING,
                    vcpus, vcpus, 4 * GIB, 4 * GIB, {"team": "web"}, first, END)


@pytest.fixture
def dashboard_url(tmp_path: Path) -> Iterator[str]:
    store = SqliteStore(tmp_path / "hosts.db")
    vms = [_vm(name, host, vcpus) for name, host, vcpus, _ in VMS]
    points = [UsagePoint(vm.uuid, END - timedelta(hours=240 - h), VmState.RUNNING, vm.vcpus, 4 * GIB,
                         cpu_vcpus=0.9 * vm.vcpus, memory_used_bytes=2 * GIB, interval_s=3600.0,
                         cpu_delay_vcpus=delay)
              for vm, (_n, _h, _v, delay) in zip(vms, VMS, strict=True) for h in range(240)]
    store.write_history(vms, points)
    merge_json_meta(store, HOST_CPUS_KEY, {"hv-busy": 2, "hv-calm": 8})
    app = create_app(Settings(), store, load_catalogue(), data_mode="live")
    server = start_server(app.server, "127.0.0.1", 0, name="hosts-test")
    try:
        yield server.url
    finally:
        server.stop()
        store.close()


def test_hosts_section_shows_overcommit_wait_and_the_contended_vms(dashboard_url: str) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing; install Debian's chromium (scripts/install-system.sh)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(dashboard_url + "/", timeout=60_000)
            page.wait_for_selector("#overview-hosts-table", timeout=60_000)
            rows = page.eval_on_selector_all(
                "#overview-hosts-table tr", "rs => rs.map(r => [...r.cells].map(c => c.innerText.trim()))")
            by_host = {r[0]: r for r in rows[1:]}
            assert set(by_host) == {"hv-busy", "hv-calm"}
            # hv-busy: 2 + 4 vCPUs on 2 CPUs; every vCPU waits 40 % of its time; both VMs contended
            assert by_host["hv-busy"][1:4] == ["6", "2", "3.00 : 1"]
            assert by_host["hv-busy"][4] == "40.0%" and by_host["hv-busy"][5] == "web-1, web-2"
            assert by_host["hv-calm"][1:6] == ["2", "8", "0.25 : 1", "0.5%", "-"]
            warn = page.eval_on_selector_all("#overview-hosts-table td.rs-warn", "cs => cs.map(c => c.innerText)")
            assert warn == ["3.00 : 1", "40.0%"]
            # the contention finding names its host on the VM page
            page.goto(dashboard_url + "/vm/web-2", timeout=60_000)
            page.wait_for_selector("text=contention", timeout=60_000)
            assert "on host 'hv-busy'" in page.inner_text("body")
            assert errors == []
        finally:
            browser.close()
