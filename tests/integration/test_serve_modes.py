"""`rightsizer serve` picks its data mode without ever mixing the demo fleet into real history."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from engines import free_port

from collector.model import VmRecord, VmState
from collector.store.base import RAW_COLUMNS
from collector.store.sqlite import SqliteStore

pytestmark = pytest.mark.integration
T0 = datetime(2013, 8, 1, tzinfo=UTC)


def _imported_store(path) -> None:
    store = SqliteStore(path)
    vm = VmRecord("u-trace-1", "trace-1", "trace://bitbrains/x", "bitbrains", VmState.RUNNING, 2, 2, 4 * 2**30,
                  4 * 2**30, {"dataset": "x"}, T0, T0 + timedelta(days=5), source="import")
    n = 5 * 24
    f = pd.DataFrame({c: np.full(n, np.nan) for c in RAW_COLUMNS})
    f["vm"], f["state"], f["gap"] = vm.uuid, "running", False
    f["ts"] = pd.date_range(T0, periods=n, freq="1h", tz="UTC")
    f["vcpus"], f["memory_bytes"], f["interval_s"], f["cpu_vcpus"] = 2.0, 4.0 * 2**30, 3600.0, 0.3
    store.write_history([vm], f)
    store.set_meta("data_mode", "import")
    store.close()


def _serve(tmp_path, *args: str) -> tuple[int, str]:
    log_path = tmp_path / "serve.log"
    # nothing answers here, as on a machine without libvirtd (the session's test guests run on qemu:///system)
    env = dict(os.environ, PYTHONPATH=os.getcwd(), RIGHTSIZER_COLLECTOR__LOCAL_URI="qemu+tcp://127.0.0.1:1/system")
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "rightsizer", "serve", "--no-dashboard",
                                 "--metrics-listen", f"127.0.0.1:{free_port()}", *args],
                                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "metrics: http" not in log_path.read_text():
            if proc.poll() is not None:
                break
            time.sleep(0.2)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    return code, log_path.read_text()


def test_an_imported_store_is_served_as_is(tmp_path):
    db = tmp_path / "imported.db"
    _imported_store(db)
    code, log = _serve(tmp_path, "--db", str(db))
    assert code == 0, log
    assert "Imported traces" in log and "without collecting" in log
    store = SqliteStore(db)
    assert [v.name for v in store.vms()] == ["trace-1"]  # no demo VMs were added
    assert store.get_meta("data_mode") == "import"
    store.close()


def test_demo_refuses_a_store_with_real_history(tmp_path):
    db = tmp_path / "imported.db"
    _imported_store(db)
    code, log = _serve(tmp_path, "--demo", "--db", str(db))
    assert code == 2, log
    assert "holds real history" in log
    store = SqliteStore(db)
    assert len(store.vms()) == 1
    store.close()


def test_demo_goes_to_its_own_store(tmp_path):
    code, log = _serve(tmp_path, "--demo")
    assert code == 0, log
    assert "SYNTHETIC" in log
    assert (tmp_path / "var" / "demo.db").exists() and not (tmp_path / "var" / "rightsizer.db").exists()
