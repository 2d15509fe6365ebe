"""`rightsizer serve` with the exporter-toolkit web configuration file, scraped by a real Prometheus over TLS
with basic auth; a scrape with the wrong password is refused; a bad file stops serve at start with exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import bcrypt
import pytest
from engines import free_port

from tests.helpers.tlscerts import make_certs

pytestmark = [pytest.mark.integration]


def _serve(tmp_path: Path, port: int, web: Path) -> subprocess.Popen[bytes]:
    with (tmp_path / "serve.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "rightsizer", "serve", "--demo", "--db", str(tmp_path / "demo.db"),
             "--metrics-listen", f"127.0.0.1:{port}", "--no-dashboard", "--web-config-file", str(web)],
            stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONPATH=os.getcwd()), cwd=tmp_path,
        )


def test_prometheus_scrapes_metrics_over_tls_with_basic_auth(tmp_path: Path, prometheus) -> None:
    certs = make_certs(tmp_path / "certs")
    web = tmp_path / "web.yml"
    hashed = bcrypt.hashpw(b"scrape-pass", bcrypt.gensalt(rounds=10)).decode()
    web.write_text(f"tls_server_config:\n  cert_file: {certs.server_cert}\n  key_file: {certs.server_key}\n"
                   f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    port = free_port()
    proc = _serve(tmp_path, port, web)
    tls = f"    scheme: https\n    tls_config:\n      ca_file: {certs.ca}\n"
    extra = (f"{tls}    basic_auth:\n      username: prometheus\n      password: scrape-pass\n"
             f"  - job_name: wrong-password\n    static_configs:\n      - targets: [\"127.0.0.1:{port}\"]\n"
             f"{tls}    basic_auth:\n      username: prometheus\n      password: nope\n"
             f"  - job_name: plain-http\n    static_configs:\n      - targets: [\"127.0.0.1:{port}\"]\n")
    try:
        prom = prometheus([f"127.0.0.1:{port}"], scrape_extra=extra)
        up = prom.wait_for('up{job="rightsizer"} == 1', timeout_s=90)
        assert up
        assert prom.wait_for('rightsizer_vm_vcpus{job="rightsizer"}', timeout_s=30)
        refused = prom.wait_for('up{job="wrong-password"} == 0', timeout_s=30)
        assert refused
        assert prom.wait_for('up{job="plain-http"} == 0', timeout_s=30)
        time.sleep(2)  # several scrapes each: the refused jobs never got a sample through
        assert prom.query('rightsizer_vm_vcpus{job=~"wrong-password|plain-http"}') == []
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(30)
    log = (tmp_path / "serve.log").read_text()
    assert f"https://127.0.0.1:{port}/metrics (basic auth for 1 user(s)" in log


def test_a_bad_web_config_file_stops_serve_at_start_with_exit_2(tmp_path: Path) -> None:
    web = tmp_path / "web.yml"
    web.write_text("basic_auth_users:\n  prometheus: not-a-hash\n")
    port = free_port()
    proc = _serve(tmp_path, port, web)
    assert proc.wait(60) == 2
    out = (tmp_path / "serve.log").read_text()
    assert "basic_auth_users.prometheus is not a bcrypt hash (value not shown)" in out
    assert "not-a-hash" not in out
    assert not (tmp_path / "demo.db").exists()  # checked before the store was opened or seeded
