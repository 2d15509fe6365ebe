"""``rightsizer doctor`` on the demo (every check passes, exit 0), on a test-driver fleet with a VM whose machine
type the catalogue lacks (exit 1 naming it), on bad input (exit 2) and on a busy port and a damaged store."""

from __future__ import annotations

import contextlib
import io
import json
import socket
from pathlib import Path

import pytest
from conftest import free_port

from collector.hypervisor.testfleet import FleetDomain, domain_uuid, make_fleet, write_fleet
from rightsizer.cli import main

pytestmark = pytest.mark.integration
GIB = 2**30


def _doctor(tmp_path: Path, *args: str, config: str = "") -> tuple[int, list[str], str]:
    cfg = tmp_path / "ports.toml"
    cfg.write_text(f'[exporter]\nlisten = "127.0.0.1:{free_port()}"\n[dashboard]\nlisten = "127.0.0.1:{free_port()}"'
                   f"\n{config}", encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["doctor", "--config", str(cfg), *args])
    return code, out.getvalue().splitlines(), err.getvalue()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for key in [k for k in __import__("os").environ if k.startswith("RIGHTSIZER_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def test_demo_passes_every_check(tmp_path):
    code, lines, _ = _doctor(tmp_path, "--demo")
    assert code == 0, lines
    names = [line.split(None, 1)[1].split(": ", 1)[0] for line in lines[:-1]]
    assert names[0] == "config" and names[1].startswith("libvirt test:///")
    assert names[2:] == ["prometheus", "machine types", "store", "exporter listen", "dashboard listen", "clock"]
    assert all(line.split()[0] in ("OK", "SKIP") for line in lines[:-1]), lines
    assert lines[-1] == "8 checks, 0 failed"


def test_a_vm_of_an_unknown_machine_type_fails_naming_it(tmp_path):
    fleet = make_fleet(6, seed=3, shutoff_every=0)
    odd = FleetDomain(name="odd-one", uuid=domain_uuid("odd-one"), vcpus=2, max_vcpus=2, memory_bytes=4 * GIB,
                      max_memory_bytes=4 * GIB, labels={"machine_type": "zz9.huge"})
    uri = write_fleet(tmp_path / "fleet.xml", [*fleet, odd])
    code, lines, _ = _doctor(tmp_path, "--uri", uri, "--db", str(tmp_path / "store.db"))
    assert code == 1, lines
    (failed,) = [line for line in lines if line.startswith("FAIL")]
    assert failed.startswith("FAIL machine types: 1 VM(s) name a machine type the catalogue lacks: 'odd-one' "
                             "(machine_type='zz9.huge')"), failed
    assert lines[-1] == "8 checks, 1 failed"
    # JSON: one object per check
    code, lines, _ = _doctor(tmp_path, "--uri", uri, "--db", str(tmp_path / "store.db"), "--output", "json")
    checks = json.loads("\n".join(lines))
    assert code == 1 and {c["check"]: c["status"] for c in checks}["machine types"] == "fail"


def test_bad_input_exits_2_and_an_unreachable_uri_fails(tmp_path):
    code, _, err = _doctor(tmp_path, config="[collector]\ninterval_s = 0\n")
    assert code == 2 and "interval_s" in err and len(err.strip().splitlines()) == 1
    code, lines, _ = _doctor(tmp_path, "--uri", "qemu+tcp://127.0.0.1:1/system", "--db", str(tmp_path / "s.db"))
    assert code == 1
    assert any(line.startswith("FAIL libvirt qemu+tcp://127.0.0.1:1/system: not reachable") for line in lines)


def test_a_busy_port_and_a_damaged_store_fail(tmp_path, monkeypatch):
    damaged = tmp_path / "bad.db"
    damaged.write_bytes(b"SQLite format 3\x00" + b"\x00" * 4000)
    code, lines, _ = _doctor(tmp_path, "--demo", "--db", str(damaged))
    assert code == 1
    (failed,) = [line for line in lines if line.startswith("FAIL")]
    assert failed.startswith(f"FAIL store: {str(damaged)!r}"), failed
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        cfg = tmp_path / "busy.toml"
        cfg.write_text(f'[exporter]\nlisten = "127.0.0.1:{port}"\n', encoding="utf-8")
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(["doctor", "--demo", "--config", str(cfg)])
    finally:
        busy.close()
    assert code == 1
    assert f"FAIL exporter listen: 127.0.0.1:{port} cannot be bound" in out.getvalue()
    # an agent serves no dashboard: a busy dashboard port is not its problem
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    monkeypatch.setenv("RIGHTSIZER_DASHBOARD__LISTEN", f"127.0.0.1:{busy.getsockname()[1]}")
    try:
        code, lines, _ = _doctor(tmp_path, "--demo", "--role", "agent")
        assert _doctor(tmp_path, "--demo")[0] == 1  # the same setup as role "all" fails on it
    finally:
        busy.close()
    assert code == 0, lines
    assert not any("dashboard listen" in line for line in lines) and lines[-1] == "7 checks, 0 failed"


def test_store_line_names_the_process_writing_it(tmp_path):
    import os

    from collector.store.sqlite import SqliteStore
    from collector.store.writer import WriterLock

    db = tmp_path / "live.db"
    SqliteStore(db).close()
    lock = WriterLock(db, holder="rightsizer serve")
    lock.acquire()
    try:
        code, lines, _ = _doctor(tmp_path, "--demo", "--db", str(db))
    finally:
        lock.release()
    assert code == 0, lines
    (store,) = [line for line in lines if line.startswith("OK   store: ")]
    assert store.endswith(f"; written by pid {os.getpid()} rightsizer serve"), store
    code, lines, _ = _doctor(tmp_path, "--demo", "--db", str(db))
    assert "written by" not in next(line for line in lines if " store: " in line)



def test_tls_and_auth_files_are_checked_when_configured(tmp_path, monkeypatch):
    from tests.helpers.tlscerts import make_certs

    certs = make_certs(tmp_path / "certs")
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {certs.server_cert}\n  key_file: {certs.server_key}\n")
    monkeypatch.setenv("RIGHTSIZER_EXPORTER__WEB_CONFIG_FILE", str(web))
    monkeypatch.setenv("RIGHTSIZER_DASHBOARD__TLS_CERT_FILE", str(certs.server_cert))
    monkeypatch.setenv("RIGHTSIZER_DASHBOARD__TLS_KEY_FILE", str(certs.server_key))
    code, lines, _ = _doctor(tmp_path, "--demo")
    check = [line for line in lines if "tls and auth:" in line]
    assert code == 0 and len(check) == 1 and check[0].startswith("OK"), lines
    assert "/metrics https://" in check[0] and "no authentication" in check[0] and "dashboard https" in check[0]
    web.write_text("basic_auth_users:\n  prometheus: hunter2\n")
    code, lines, _ = _doctor(tmp_path, "--demo")
    check = [line for line in lines if "tls and auth:" in line]
    assert code == 1 and check[0].startswith("FAIL"), lines
    assert "basic_auth_users.prometheus is not a bcrypt hash" in check[0] and "hunter2" not in "\n".join(lines)
