"""On/off schedules on real TCG guests, through ``rightsizer serve`` with ``[actions] schedules = true``.

Two persistent guests, once booted, get a ``schedule`` label whose window closes at the first whole minute at
least :data:`LEAD_S` seconds later and opens again one minute after that. At the close, serve's cron job stops
the idle guest by ACPI (the guest's acpid powers it off) and skips the busy one; at the opening it starts the
idle guest again. Every attempt is in the audit log.
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import libvirt
import pytest
from domains import REPO_ROOT, GuestImages, GuestSpec, boot_guest, remove_domain, wait_for_console
from engines import free_port

from collector.domxml import LABELS_NAMESPACE, LABELS_PREFIX
from collector.store.sqlite import SqliteStore

pytestmark = [pytest.mark.integration, pytest.mark.guests]

NAMES = {"idle": "rs-sched-idle", "busy": "rs-sched-busy"}
#: Seconds from the label to the window's close at least: serve starts (about 15 s beside two TCG guests on two
#: cores), syncs the schedules and samples the busy lookback (15 s) before the close. The guests boot before the
#: label is set, so their boot is not part of the wait.
LEAD_S = 70


def _window(now: datetime) -> tuple[datetime, datetime, str]:
    """(stop at, start at, label): the window closes >= LEAD_S from now and reopens one minute later."""
    close = datetime.fromtimestamp(math.ceil((now.timestamp() + LEAD_S) / 60) * 60, tz=UTC)
    opening = close + timedelta(minutes=1)
    return close, opening, f"daily {opening:%H:%M}-{close:%H:%M} UTC"


def _state(conn: libvirt.virConnect, name: str) -> int:
    state: int = conn.lookupByName(name).state()[0]
    return state


def _wait_state(conn: libvirt.virConnect, name: str, state: int, until: datetime) -> bool:
    while datetime.now(UTC) < until:
        if _state(conn, name) == state:
            return True
        time.sleep(1)
    return _state(conn, name) == state


def _set_labels(dom: libvirt.virDomain, labels: dict[str, str]) -> None:
    """The domain's labels, live and in its persistent definition (one call each, as the action module does)."""
    items = "".join(f'<label name="{k}">{v}</label>' for k, v in sorted(labels.items()))
    for flag in (libvirt.VIR_DOMAIN_AFFECT_CONFIG, libvirt.VIR_DOMAIN_AFFECT_LIVE):
        dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, f"<labels>{items}</labels>", LABELS_PREFIX,
                        LABELS_NAMESPACE, flag)


@pytest.fixture
def scheduled_guests(libvirtd: str, guest_images: GuestImages, tmp_path: Path) -> Iterator[tuple[datetime, datetime]]:
    conn = libvirt.open(libvirtd)
    try:
        for workload, name in NAMES.items():
            spec = GuestSpec(name=name, workload=workload, memory_mib=160, console_log=tmp_path / f"{workload}.log",
                             labels={"env": "dev"})
            boot_guest(conn, spec, guest_images, persistent=True)
        for workload in NAMES:
            wait_for_console(tmp_path / f"{workload}.log", timeout_s=180)
        close, opening, label = _window(datetime.now(UTC))
        for name in NAMES.values():
            _set_labels(conn.lookupByName(name), {"env": "dev", "schedule": label})
        yield close, opening
    finally:
        for name in NAMES.values():
            remove_domain(conn, name)
        conn.close()


def _serve(tmp_path: Path, libvirtd: str) -> subprocess.Popen[bytes]:
    config = tmp_path / "rightsizer.toml"
    config.write_text(
        f'[collector]\nuris = ["{libvirtd}"]\ninterval_s = 2\n'
        f'[store]\npath = "{tmp_path / "rs.db"}"\n'
        f'[exporter]\nlisten = "127.0.0.1:{free_port()}"\n'
        "[dashboard]\nenabled = false\n"
        "[actions]\nschedules = true\n"
        "[schedules]\nbusy_lookback_minutes = 0.25\nstop_timeout_s = 60\n"
    )
    with (tmp_path / "serve.log").open("wb") as log:  # the child keeps its own descriptor
        return subprocess.Popen([sys.executable, "-m", "rightsizer", "serve", "--config", str(config)],
                                cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)


def test_window_end_stops_idle_guest_by_acpi_skips_busy_and_start_boots_it(
    libvirtd: str, scheduled_guests: tuple[datetime, datetime], tmp_path: Path
) -> None:
    close, opening = scheduled_guests
    serve = _serve(tmp_path, libvirtd)
    conn = libvirt.open(libvirtd)
    try:
        assert _wait_state(conn, NAMES["idle"], libvirt.VIR_DOMAIN_SHUTOFF, close + timedelta(seconds=75)), \
            (tmp_path / "serve.log").read_text(errors="replace")[-3000:]
        assert datetime.now(UTC) >= close  # stopped by the window's end, not before
        assert _state(conn, NAMES["busy"]) == libvirt.VIR_DOMAIN_RUNNING
        assert "power button" in (tmp_path / "idle.log").read_text(errors="replace")  # ACPI, not destroy
        assert _wait_state(conn, NAMES["idle"], libvirt.VIR_DOMAIN_RUNNING, opening + timedelta(seconds=75)), \
            (tmp_path / "serve.log").read_text(errors="replace")[-3000:]
        assert datetime.now(UTC) >= opening
    finally:
        serve.terminate()
        serve.wait(timeout=60)
        conn.close()
    store = SqliteStore(tmp_path / "rs.db")
    try:
        rows = [(e.vm_name, e.action, e.result) for e in store.audit() if e.action.startswith("schedule-")]
        reasons = {(e.vm_name, e.action): e.reason for e in store.audit()}
    finally:
        store.close()
    assert (NAMES["idle"], "schedule-stop", "applied") in rows
    assert (NAMES["idle"], "schedule-start", "applied") in rows
    assert (NAMES["busy"], "schedule-stop", "skipped") in rows
    assert reasons[(NAMES["busy"], "schedule-stop")].startswith("busy: CPU reached")
    assert (NAMES["busy"], "schedule-start", "skipped") in rows  # already running
