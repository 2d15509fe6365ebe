"""Deeply nested TOML and JSON are a one-line parse error, never a RecursionError traceback (issue 24 L1)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from collector.errors import InputError
from core.parsing import MAX_DEPTH, json_loads, toml_loads

REPO = Path(__file__).resolve().parents[3]
DEEP_TOML = "x = " + "[" * 50_000 + "]" * 50_000 + "\n"
DEEP_JSON = "[" * 50_000 + "]" * 50_000


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rightsizer", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})


def test_depth_limit_both_formats() -> None:
    assert toml_loads("x = " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1))["x"] is not None  # + the root table
    assert json_loads("[" * MAX_DEPTH + "]" * MAX_DEPTH) == json.loads("[" * MAX_DEPTH + "]" * MAX_DEPTH)
    with pytest.raises(ValueError, match="nested too deeply \\(more than 64 levels\\)"):
        toml_loads("x = " + "[" * MAX_DEPTH + "]" * MAX_DEPTH)
    with pytest.raises(json.JSONDecodeError, match="nested too deeply \\(more than 64 levels\\)"):
        json_loads(DEEP_JSON)
    with pytest.raises(json.JSONDecodeError, match="nested too deeply \\(more than 64 levels\\)"):
        json_loads('{"a":' * 65 + "1" + "}" * 65)


@pytest.mark.parametrize("what", ["config", "policies", "catalogue", "plan"])
def test_cli_refuses_a_deep_file_in_one_line_with_exit_2(tmp_path: Path, what: str) -> None:
    deep = tmp_path / ("deep.json" if what == "plan" else "deep.toml")
    deep.write_text(DEEP_JSON if what == "plan" else DEEP_TOML)
    db = str(tmp_path / "s.db")
    args = {"config": ["costs", "--config", str(deep), "--db", db],
            "policies": ["recommend", "--policies", str(deep), "--db", db],
            "catalogue": ["costs", "--db", db],
            "plan": ["apply", str(deep), "--db", db]}[what]
    if what in ("policies", "catalogue"):
        assert _cli("collect", "--once", "--uri", "test:///default", "--db", db, cwd=tmp_path).returncode == 0
    if what == "catalogue":
        (tmp_path / "c.toml").write_text(f'[costs]\ncatalogue = "{deep}"\n')
        args += ["--config", str(tmp_path / "c.toml")]
    done = _cli(*args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "RecursionError" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "nested too deeply (more than 64 levels)" in line


def test_a_deep_answer_from_the_promql_url_is_not_json_to_us() -> None:
    from collector.store.promql_http import _envelope

    with pytest.raises(InputError, match="the answer is not JSON"):
        _envelope(('{"status":"success","data":' + DEEP_JSON + "}").encode(), "query")
