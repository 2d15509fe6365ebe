"""Control characters in VM names never reach the terminal from CLI tables (issue 24 L4)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from core.textsafe import terminal_safe
from rightsizer.output import render_table
from tests.conftest import steady_rows, write_trace

REPO = Path(__file__).resolve().parents[3]
EVIL = "evil\x1b]0;PWNED\x07\x1b[2J\nfake-row"
UNSAFE = ("\x1b", "\x07", "\x9b", "\u202e", "\u2028", "\r")


def test_terminal_safe_shows_every_control_as_its_escape() -> None:
    assert terminal_safe(EVIL) == "evil\\x1b]0;PWNED\\x07\\x1b[2J\\nfake-row"
    assert terminal_safe("a\u202eb\x9bc\u2028d\te\x7f") == "a\\u202eb\\x9bc\\u2028d\\te\\x7f"
    assert terminal_safe("plain-01 ünïcode") == "plain-01 ünïcode"


def test_a_table_cell_cannot_forge_a_row() -> None:
    text = render_table(["name", "cost"], [{"name": EVIL, "cost": 1.5}, {"name": "ok", "cost": 2.0}])
    assert not any(c in text for c in UNSAFE)
    assert len(text.splitlines()) == 3  # header and two rows


def test_import_and_costs_print_no_raw_escape_sequences(tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "trace", {f"{EVIL}\u202e.csv": steady_rows()})
    db = str(tmp_path / "s.db")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    for args in (["import", str(trace), "--db", db], ["costs", "--db", db], ["recommend", "--db", db]):
        done = subprocess.run([sys.executable, "-m", "rightsizer", *args], capture_output=True, text=True,
                              timeout=300, env=env)
        assert done.returncode == 0, done.stderr
        for stream in (done.stdout, done.stderr):
            assert not any(c in stream for c in UNSAFE), (args, stream)
            assert not any(line.startswith("fake-row") for line in stream.splitlines())
        assert "\\x1b]0;PWNED" in done.stdout or args[0] == "import"


def test_log_lines_show_control_characters_in_messages_as_escapes() -> None:
    import logging

    from core.textsafe import TerminalSafeFormatter

    formatter = TerminalSafeFormatter("%(levelname)s %(message)s")
    record = logging.LogRecord("rightsizer.schedule", logging.INFO, __file__, 1, "schedule stop %s: %s", (EVIL, "ok"),
                               None)
    line = formatter.format(record)
    assert line == "INFO schedule stop evil\\x1b]0;PWNED\\x07\\x1b[2J\\nfake-row: ok"
