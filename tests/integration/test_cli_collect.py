"""`rightsizer collect --once` on the libvirt test driver (real libvirt code, no daemon)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def _cli(*args: str, cwd=None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    return subprocess.run([sys.executable, "-m", "rightsizer", *args], capture_output=True, text=True,
                          timeout=120, env=env, cwd=cwd)


def test_collect_once_prints_every_vm_as_json(tmp_path, testdriver_fleet):
    uri = testdriver_fleet(25)
    db = tmp_path / "rs.db"
    proc = _cli("collect", "--once", "--uri", uri, "--db", str(db), "--output", "json")
    assert proc.returncode == 0, proc.stderr
    vms = json.loads(proc.stdout)
    assert len(vms) == 25
    for vm in vms:
        assert {"name", "uuid", "host", "vcpus", "memory_bytes"} <= vm.keys()
        assert vm["vcpus"] >= 1 and vm["memory_bytes"] > 0
    assert len({vm["uuid"] for vm in vms}) == 25
    assert db.exists()


def test_collect_once_table_output(tmp_path, testdriver_fleet):
    proc = _cli("collect", "--once", "--uri", testdriver_fleet(3), "--db", str(tmp_path / "t.db"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].split()[:3] == ["name", "host", "state"]
    assert len(proc.stdout.splitlines()) == 4


def test_unreachable_uri_is_one_line_exit_2_and_writes_nothing(tmp_path):
    db = tmp_path / "never.db"
    proc = _cli("collect", "--once", "--uri", "qemu+tcp://127.0.0.1:1/system", "--db", str(db))
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "qemu+tcp://127.0.0.1:1/system" in proc.stderr
    assert not db.exists()


@pytest.mark.parametrize("args", [["collect", "--bogus"], ["collect", "--interval", "fast"], ["nosuchcommand"]])
def test_bad_flags_exit_2_in_one_line(args):
    proc = _cli(*args)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "error:" in proc.stderr


def test_bad_config_exit_2_names_file(tmp_path):
    cfg = tmp_path / "rs.toml"
    cfg.write_text("[collector]\ninterval_s = -1\n")
    proc = _cli("collect", "--once", "--config", str(cfg), "--db", str(tmp_path / "x.db"))
    assert proc.returncode == 2
    assert str(cfg) in proc.stderr and "interval_s" in proc.stderr
    assert not (tmp_path / "x.db").exists()
