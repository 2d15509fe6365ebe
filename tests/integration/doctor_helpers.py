"""Run ``rightsizer doctor`` in-process with free ports, for the tests."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from conftest import free_port

from rightsizer.cli import main


def run_doctor(tmp_path: Path, config: Path, *args: str) -> tuple[int, list[str]]:
    """Doctor with ``config`` plus free exporter/dashboard ports; returns (exit code, stdout lines)."""
    cfg = tmp_path / f"doctor-{config.stem}.toml"
    cfg.write_text(config.read_text(encoding="utf-8") + f'[exporter]\nlisten = "127.0.0.1:{free_port()}"\n'
                   f'[dashboard]\nlisten = "127.0.0.1:{free_port()}"\n', encoding="utf-8")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(["doctor", "--config", str(cfg), "--db", str(tmp_path / "doctor.db"), *args])
    return code, out.getvalue().splitlines()
