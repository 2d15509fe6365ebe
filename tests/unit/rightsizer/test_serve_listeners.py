"""``serve`` refuses an address it cannot listen on before it creates, migrates or seeds a store (issue 24 L6)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from rightsizer.cli import main


@pytest.fixture
def busy_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.mark.parametrize("listen", ["metrics-bad", "dashboard-bad", "metrics-busy", "same-port"])
@pytest.mark.parametrize("demo", [False, True])
def test_bad_listen_address_fails_before_the_store_exists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str], busy_port: int,
                                                          listen: str, demo: bool) -> None:
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "new.db"
    flags = {"metrics-bad": ["--metrics-listen", "999.1.1.1:19180"],
             "dashboard-bad": ["--dashboard-listen", "999.1.1.1:19181"],
             "metrics-busy": ["--metrics-listen", f"127.0.0.1:{busy_port}"],
             "same-port": ["--metrics-listen", "127.0.0.1:19182", "--dashboard-listen", "127.0.0.1:19182"]}[listen]
    args = ["serve", "--db", str(db), *flags, *(["--demo"] if demo else ["--uri", "test:///default"])]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and ("cannot listen there" in err or "give each its own port" in err)
    assert not db.exists() and not (tmp_path / "var").exists()


@pytest.mark.parametrize("case", ["web-config-flag", "web-config-env", "dashboard-cert-missing", "dashboard-key-only"])
def test_bad_tls_or_auth_files_fail_before_the_store_exists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str], case: str) -> None:
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "new.db"
    web = tmp_path / "web.yml"
    web.write_text("basic_auth_users:\n  prometheus: hunter2\n")
    args = ["serve", "--db", str(db), "--demo", "--metrics-listen", "127.0.0.1:19183", "--dashboard-listen",
            "127.0.0.1:19184"]
    expected = {"web-config-flag": "basic_auth_users.prometheus is not a bcrypt hash",
                "web-config-env": "basic_auth_users.prometheus is not a bcrypt hash",
                "dashboard-cert-missing": "[dashboard] tls_cert_file = '/nonexistent.pem': no such file",
                "dashboard-key-only": "[dashboard] tls_cert_file is empty while the other TLS file is set"}[case]
    if case == "web-config-flag":
        args += ["--web-config-file", str(web)]
    elif case == "web-config-env":
        monkeypatch.setenv("RIGHTSIZER_EXPORTER__WEB_CONFIG_FILE", str(web))
    elif case == "dashboard-cert-missing":
        monkeypatch.setenv("RIGHTSIZER_DASHBOARD__TLS_CERT_FILE", "/nonexistent.pem")
        monkeypatch.setenv("RIGHTSIZER_DASHBOARD__TLS_KEY_FILE", str(web))
    else:
        monkeypatch.setenv("RIGHTSIZER_DASHBOARD__TLS_KEY_FILE", str(web))
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err, err
    assert "hunter2" not in err
    assert not db.exists() and not (tmp_path / "var").exists()
