"""What the installed package carries and prints: the version, the price data, the systemd units."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import rightsizer
from analytics.catalogue import DATA_DIR, load_catalogue
from rightsizer.cli import main
from rightsizer.commands.service_unit import unit_text

REPO = Path(__file__).resolve().parents[3]


def _cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse's --version
            code = int(exc.code or 0)
    return code, out.getvalue()


def test_version_is_written_once_and_printed():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in pyproject["project"] and pyproject["project"]["dynamic"] == ["version"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", rightsizer.__version__)
    assert _cli("--version") == (0, f"rightsizer {rightsizer.__version__}\n")
    changelog = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"## {rightsizer.__version__} " in changelog


def test_price_data_is_found_in_the_checkout_and_loads():
    assert DATA_DIR.is_dir() and (DATA_DIR / "stackit_eu01_machine_types.csv").is_file()
    assert len(load_catalogue().machine_types()) > 100


@pytest.mark.parametrize("role", ["agent", "central"])
def test_service_units_verify_and_carry_the_contract(role, tmp_path):
    exe = shutil.which("rightsizer") or sys.executable  # systemd-analyze checks that ExecStart is executable
    text = unit_text(role, executable=exe, config_path="/etc/rightsizer/rightsizer.toml")
    for line in ("Type=notify", "User=rightsizer", "SupplementaryGroups=libvirt", "NoNewPrivileges=yes",
                 "ProtectSystem=strict", "StateDirectory=rightsizer", "ReadWritePaths=%S/rightsizer",
                 "StandardOutput=journal", f"ExecStart={exe} serve "):
        assert line in text, line
    assert ("WatchdogSec=300" in text) == (role == "agent")
    assert "@" not in text.split("[Service]", 1)[1].replace("%S", "")  # every placeholder filled in
    unit = tmp_path / f"rightsizer-{role}.service"
    unit.write_text(text, encoding="utf-8")
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0 and done.stdout == "" and done.stderr == "", done.stdout + done.stderr


def test_service_unit_command_prints_the_unit_and_refuses_relative_paths(capsys):
    code, out = _cli("service-unit", "agent", "--executable", "/opt/rightsizer/bin/rightsizer",
                     "--config-path", "/etc/rs.toml")
    assert code == 0
    assert "ExecStart=/opt/rightsizer/bin/rightsizer serve --role agent --config /etc/rs.toml --db " \
           "%S/rightsizer/rightsizer.db" in out
    code, _ = _cli("service-unit", "central", "--config-path", "rs.toml")
    assert code == 2
    assert capsys.readouterr().err.strip() == "rightsizer service-unit: --config-path 'rs.toml' must be an absolute " \
                                              "path without spaces; pass one"
