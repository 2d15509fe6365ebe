"""The shipped recording rules: `promtool check rules` clean and `promtool test rules` on a known hour."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from collector.store.promql_schema import RULES

REPO = Path(__file__).resolve().parents[3]
RULES_FILE = REPO / "dashboard" / "prometheus" / "rightsizer.rules.yml"


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: run `bash scripts/install-system.sh test` (Debian package prometheus)")
    return path


def test_rules_file_is_clean():
    proc = subprocess.run([_promtool(), "check", "rules", str(RULES_FILE)], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(RULES)} rules found" in proc.stdout


def test_rules_compute_the_expected_hour():
    proc = subprocess.run([_promtool(), "test", "rules", str(REPO / "tests" / "data" / "rightsizer.rules.test.yml")],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_rule_the_source_reads_is_recorded():
    text = RULES_FILE.read_text()
    # the source reads the hourly CPU, memory, allocation and running-time rollups
    assert {"cpu_mean_vcpus", "cpu_p95_vcpus", "memory_used_max_bytes", "running_s", "vcpus"} <= RULES.keys()
    for record in RULES.values():
        assert f"record: {record}\n" in text
