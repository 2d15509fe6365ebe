"""`rightsizer import` shows its progress on a terminal and stays quiet when stderr is not one."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

from tests.helpers.backtest import T0
from tests.helpers.bitbrains import HEADER, usage_row


def _trace(tmp_path: Path) -> Path:
    trace = tmp_path / "trace"
    trace.mkdir()
    for vm in (1, 2, 3):
        rows = [usage_row(T0 + 300 * i, 2, 0.5, 4, 1.0) for i in range(400)]
        (trace / f"{vm}.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    return trace


def _run_on_a_terminal(args: list[str], columns: int = 120) -> tuple[int, str]:
    """Run the CLI with stderr on a pseudo-terminal ``columns`` wide; return its exit code and what it drew."""
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "rightsizer", *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=secondary)
    os.close(secondary)
    drawn = bytearray()
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # EIO once the child closed its side
            break
        if not chunk:
            break
        drawn += chunk
    os.close(primary)
    return proc.wait(timeout=120), drawn.decode(errors="replace")


def test_import_draws_read_and_convert_bars_on_a_terminal(tmp_path: Path) -> None:
    code, drawn = _run_on_a_terminal(["import", str(_trace(tmp_path)), "--db", str(tmp_path / "t.db")])
    assert code == 0, drawn
    frames = drawn.replace("\r", "\n")
    assert "read: 100%" in frames and "3/3" in frames  # files read
    assert "convert: 100%" in frames and "1200/1200" in frames  # rows converted
    assert "storing 1,200 rows" in frames


def test_import_draws_no_bars_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "rightsizer", "import", str(_trace(tmp_path)),
                           "--db", str(tmp_path / "t.db")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "convert:" not in proc.stderr and "\r" not in proc.stderr
    assert "imported 3 VMs, 1200 rows" in proc.stderr
