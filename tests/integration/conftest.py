"""The real rig: libvirtd (QEMU driver), tiny TCG guests, test-driver fleets and a throwaway Prometheus.

Helpers (guest XML, boot, LibvirtdRig) live in domains.py, importable as ``from domains import ...``.

Session fixtures start libvirtd once and boot the ``rs-test-*`` guests once; tests must not touch
domains with other names (``rs-act-*`` belong to the resize-action tests, which boot their own with
``domains.boot_guest``).

Fixtures:
    libvirtd           -> "qemu:///system" after scripts/libvirtd-up.sh answered
    libvirtd_rig       -> LibvirtdRig: stop()/start()/restart(down_s) of the daemon (guests survive)
    restart_libvirtd   -> LibvirtdRig.restart
    guest_images       -> domains.GuestImages (kernel + initramfs from scripts/build-guest.sh)
    guests             -> {"busy"|"idle"|"disk": GuestSpec} of booted rs-test-* guests
    mem_guest          -> GuestSpec of rs-test-mem (module scope): the mem workload holding 96 MiB of tmpfs and
                          reading it again every second, with a swap disk, booted at 192 MiB
    testdriver_fleet   -> factory(n, **make_fleet kwargs) -> test:///... URI of n domains
    prometheus         -> factory(targets, scrape_interval_s=1, scrape_extra="") -> PrometheusServer
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libvirt
import pytest
from domains import (
    GuestImages,
    GuestSpec,
    LibvirtdRig,
    boot_guest,
    build_guest_images,
    create_disk,
    remove_domain,
    wait_for_console,
)
from engines import free_port
from playwright.sync_api import Browser, sync_playwright

from collector.hypervisor.libvirt import silence_libvirt_stderr
from collector.hypervisor.testfleet import make_fleet, write_fleet

TEST_GUEST_PREFIX = "rs-test-"


@pytest.fixture(scope="session")
def libvirtd_rig() -> LibvirtdRig:
    if os.geteuid() != 0 or shutil.which("libvirtd") is None:
        pytest.fail(
            "the integration rig needs root and libvirtd; run `make rig` (scripts/install-system.sh, "
            "scripts/libvirtd-up.sh) or deselect with -m 'not integration'"
        )
    silence_libvirt_stderr()
    return LibvirtdRig()


@pytest.fixture(scope="session")
def libvirtd(libvirtd_rig: LibvirtdRig) -> str:
    libvirtd_rig.start()
    return libvirtd_rig.uri


@pytest.fixture
def restart_libvirtd(libvirtd: str, libvirtd_rig: LibvirtdRig) -> Iterator[Callable[..., None]]:
    yield libvirtd_rig.restart
    libvirtd_rig.start()  # leave the daemon up for the next test even if the test failed midway


@pytest.fixture(scope="session")
def guest_images() -> GuestImages:
    return build_guest_images()


GUEST_SPECS: dict[str, dict[str, Any]] = {
    "busy": {"labels": {"team": "payments", "env": "prod", "backup_policy": "24h"}},
    # No <stats period>: the balloon stats test turns it on through LibvirtSource.
    "idle": {"labels": {"team": "search", "env": "dev"}, "balloon_period_s": 0},
    "disk": {"labels": {"team": "data", "env": "staging", "rightsizer_exclude": "true"}},
}


@pytest.fixture(scope="session")
def guest_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("guests")


@pytest.fixture(scope="session")
def guests(libvirtd: str, guest_images: GuestImages, guest_dir: Path) -> Iterator[dict[str, GuestSpec]]:
    """Boot rs-test-busy, rs-test-idle and rs-test-disk once per session (transient, TCG where needed)."""
    specs: dict[str, GuestSpec] = {}
    for workload, extra in GUEST_SPECS.items():
        disk = create_disk(guest_dir / f"{workload}.qcow2", 64) if workload == "disk" else None
        specs[workload] = GuestSpec(
            name=f"{TEST_GUEST_PREFIX}{workload}",
            workload=workload,
            memory_mib=192,
            disk=disk,
            console_log=guest_dir / f"{workload}.console.log",
            **extra,
        )
    try:
        conn = libvirt.open(libvirtd)
        try:
            for spec in specs.values():
                boot_guest(conn, spec, guest_images)
        finally:
            conn.close()
        for workload in specs:
            wait_for_console(guest_dir / f"{workload}.console.log", timeout_s=180)
        yield specs
    finally:
        # A fresh connection: tests may have restarted libvirtd in between.
        conn = libvirt.open(libvirtd)
        try:
            for spec in specs.values():
                remove_domain(conn, spec.name)
        finally:
            conn.close()


@pytest.fixture(scope="module")
def mem_guest(libvirtd: str, guest_images: GuestImages, guest_dir: Path) -> Iterator[GuestSpec]:
    """Boot rs-test-mem for one module: 96 MiB working set re-read every second, swap on a 128 MiB disk.

    Module scope: squeezed, it swaps continuously and burns a host core, so it never outlives its tests.
    """
    spec = GuestSpec(
        name=f"{TEST_GUEST_PREFIX}mem", workload="mem", memory_mib=192, mem_touch_mib=96, mem_pass_s=1,
        disk=create_disk(guest_dir / "mem-swap.qcow2", 128), swap=True,
        console_log=guest_dir / "mem.console.log", labels={"team": "cache", "env": "prod"},
    )
    conn = libvirt.open(libvirtd)
    try:
        boot_guest(conn, spec, guest_images)
        wait_for_console(spec.console_log, marker="rs-init: holding", timeout_s=180)
        if "rs-init: swap on /dev/vda\n" not in spec.console_log.read_text(errors="replace"):
            raise RuntimeError(f"{spec.name} booted without swap; console: {spec.console_log}")
        yield spec
    finally:
        remove_domain(conn, spec.name)
        conn.close()


@pytest.fixture
def testdriver_fleet(tmp_path: Path) -> Callable[..., str]:
    """Factory: write an n-domain test-driver fleet (labels, every 10th shut off) and return its URI."""

    def make(n: int, **kwargs: Any) -> str:
        return write_fleet(tmp_path / f"fleet-{n}.xml", make_fleet(n, **kwargs))

    return make


@dataclass
class PrometheusServer:
    """A running Prometheus on 127.0.0.1 with a temporary config and TSDB."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Run an instant PromQL query and return ``data.result``; raises RuntimeError on API errors."""
        qs = urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{qs}", timeout=5) as resp:
            body = json.load(resp)
        if body.get("status") != "success":
            raise RuntimeError(f"Prometheus query {expr!r} failed: {body!r}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def wait_for(self, expr: str, timeout_s: float = 30.0) -> list[dict[str, Any]]:
        """Poll ``expr`` until it returns at least one series; raises TimeoutError with the log tail."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            result = self.query(expr)
            if result:
                return result
            time.sleep(0.25)
        tail = self.log_path.read_text(errors="replace")[-2000:]
        raise TimeoutError(f"Prometheus query {expr!r} stayed empty for {timeout_s}s; log tail:\n{tail}")


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[..., PrometheusServer]]:
    """Factory: start Prometheus scraping ``targets`` (HOST:PORT list) every ``scrape_interval_s``."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus not installed; run scripts/install-system.sh")
    servers: list[PrometheusServer] = []

    def start(
        targets: list[str], scrape_interval_s: float = 1.0, job: str = "rightsizer", scrape_extra: str = ""
    ) -> PrometheusServer:
        """``scrape_extra``: more YAML lines of the scrape job (scheme, tls_config, basic_auth), indented by 4."""
        work = tmp_path / f"prometheus-{len(servers)}"
        work.mkdir()
        config = work / "prometheus.yml"
        interval = f"{round(scrape_interval_s * 1000)}ms"  # Prometheus durations take no fractions
        config.write_text(
            "global:\n"
            f"  scrape_interval: {interval}\n"
            f"  evaluation_interval: {interval}\n"
            "scrape_configs:\n"
            f"  - job_name: {job}\n"
            "    static_configs:\n"
            f"      - targets: {json.dumps(targets)}\n"
            + scrape_extra
        )
        port = free_port()
        log_path = work / "prometheus.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={work / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--web.enable-lifecycle",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = PrometheusServer(f"http://127.0.0.1:{port}", process, log_path)
        servers.append(server)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return server
            except (urllib.error.URLError, ConnectionError):
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"Prometheus did not become ready (exit {process.poll()}); log:\n"
                    + log_path.read_text(errors="replace")[-2000:]
                )
            time.sleep(0.1)

    yield start
    for server in servers:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the whole session (Playwright's sync API allows one running instance per
    process: every browser test takes this fixture instead of starting its own)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing; install Debian's chromium (scripts/install-system.sh)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()
