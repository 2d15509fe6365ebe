"""A full disk is a runtime failure (issue 24 M6, L11): exit 1 with a message saying disk full and that the store
is intact, counted in ``errors_total{kind="store"}`` and failing /readyz while it lasts; two commands creating a
new store at once do not race on its schema (L7)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from collector.exporter import build_registry
from collector.hypervisor.fake import FakeHypervisor, Topology
from collector.sampler import Sampler
from collector.store.faults import StoreIOError
from collector.store.sqlite import SqliteStore
from core.settings import Settings
from tests.conftest import StepClock

MESSAGE = "disk full (0 bytes free on its file system)"


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs (needs root, as the test rig runs), unmounted afterwards."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def _fill(folder: Path) -> Path:
    filler = folder / "filler"
    with filler.open("wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass
    return filler


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rightsizer", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])})


def test_cli_on_a_full_disk_exits_1_saying_disk_full_and_store_intact(tiny_disk: Path) -> None:
    db = tiny_disk / "s.db"
    assert _cli("collect", "--once", "--uri", "test:///default", "--db", str(db)).returncode == 0
    _fill(tiny_disk)
    for args in (("costs", "--db", str(db)), ("collect", "--once", "--uri", "test:///default", "--db", str(db))):
        done = _cli(*args)
        assert done.returncode == 1, done.stderr
        (line,) = done.stderr.strip().splitlines()
        assert MESSAGE in line and "the store is intact" in line and "not a readable" not in line
        assert "Traceback" not in done.stderr


def test_a_cycle_that_cannot_be_stored_is_counted_and_fails_readiness_while_it_lasts(
        tiny_disk: Path, clock: StepClock) -> None:
    from analytics.catalogue import load_catalogue
    from api.routes import mount_api
    from api.service import ApiService

    store = SqliteStore(tiny_disk / "s.db")
    fake = FakeHypervisor(Topology().add_vms(40), clock=clock)
    sampler = Sampler([fake], store, clock=clock, interval_s=60)
    app = Flask("t")
    mount_api(app, ApiService(Settings(), store, load_catalogue("stackit-eu01"), runner=None))
    client = app.test_client()
    registry = build_registry(lambda: sampler.snapshot)
    try:
        sampler.poll_once()
        assert client.get("/readyz").status_code == 200
        assert registry.get_sample_value("rightsizer_collector_errors_total", {"kind": "store"}) == 0
        filler = _fill(tiny_disk)
        for cycle in (1, 2):
            clock.advance(60)
            with pytest.raises(StoreIOError, match="disk full .* the store is intact"):
                sampler.poll_once()
            assert registry.get_sample_value("rightsizer_collector_errors_total", {"kind": "store"}) == cycle
            ready = client.get("/readyz")
            assert ready.status_code == 503 and "store not writable: disk full" in ready.json["detail"]
        filler.unlink()
        clock.advance(60)
        sampler.poll_once()
        assert sampler.snapshot.store_fault == "" and store.fault == ""
        assert client.get("/readyz").status_code == 200
        assert registry.get_sample_value("rightsizer_collector_errors_total", {"kind": "store"}) == 2
        assert len(store.vms()) == 40
    finally:
        sampler.close()
        store.close()


def test_two_processes_creating_one_new_store_at_once_both_succeed(tmp_path: Path) -> None:
    code = ("import sys, time\nfrom collector.store.sqlite import SqliteStore\n"
            "start = float(sys.argv[2])\ntime.sleep(max(0.0, start - time.time()))\n"
            "SqliteStore(sys.argv[1]).close()\n")
    import time

    for attempt in range(6):
        db = tmp_path / f"new{attempt}.db"
        start = time.time() + 1.0
        procs = [subprocess.Popen([sys.executable, "-c", code, str(db), str(start)], stderr=subprocess.PIPE,
                                  text=True, cwd=Path(__file__).resolve().parents[3]) for _ in range(4)]
        for proc in procs:
            _out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
        store = SqliteStore(db)
        assert store.schema_version() > 0
        store.close()



def test_reports_plans_and_output_on_a_full_disk_exit_1_not_bad_input(tiny_disk: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    assert _cli("collect", "--once", "--uri", "test:///default", "--db", db).returncode == 0
    _fill(tiny_disk)
    done = _cli("report", "--db", db, "--out", str(tiny_disk / "rep"))
    assert done.returncode == 1, done.stderr
    assert "disk full while writing" in done.stderr and "--out" not in done.stderr
    with (tiny_disk / "out.json").open("w") as out:
        done = subprocess.run([sys.executable, "-m", "rightsizer", "recommend", "--db", db, "--output", "json"],
                              stdout=out, stderr=subprocess.PIPE, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])})
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert "cannot write the output: No space left on device" in line and "Traceback" not in done.stderr


def test_the_writer_lock_on_a_full_disk_is_a_disk_full_error(tiny_disk: Path) -> None:
    from collector.store.writer import WriterLock

    SqliteStore(tiny_disk / "s.db").close()
    _fill(tiny_disk)
    with pytest.raises(StoreIOError, match="disk full .* while locking store .* the store is intact"):
        WriterLock(tiny_disk / "s.db", holder="t").acquire()
