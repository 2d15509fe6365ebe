"""The shipped alerting rules: `promtool check rules` clean, `promtool test rules` cases pass, every alert
carries `for:`, a severity and a summary naming what it is about, and reads only series the exporter serves."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from collector.exporter import RightsizerCollector
from collector.sampler import Snapshot

REPO = Path(__file__).resolve().parents[3]
ALERTS = REPO / "dashboard" / "prometheus" / "rightsizer.alerts.yml"
CASES = REPO / "tests" / "data" / "rightsizer.alerts.test.yml"
#: The alerts issue 23 asks for, by what they watch.
REQUIRED = {
    "RightsizerBackupOverdue", "RightsizerVmIdle", "RightsizerVmCpuContention", "RightsizerVmMemoryPressure",
    "RightsizerVmResizeRegret", "RightsizerExporterDown", "RightsizerCollectorStale", "RightsizerLargeSavingLowRisk",
}


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: run `bash scripts/install-system.sh test` (Debian package prometheus)")
    return path


def _rules() -> list[dict[str, object]]:
    doc = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_alert_rules_file_is_clean() -> None:
    proc = subprocess.run([_promtool(), "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in proc.stdout
    assert len(_rules()) >= len(REQUIRED)


def test_every_alert_fires_on_its_series_and_names_the_vm() -> None:
    proc = subprocess.run([_promtool(), "test", "rules", str(CASES)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout
    tested = set(re.findall(r"alertname: (\w+)", CASES.read_text(encoding="utf-8")))
    assert tested == {str(r["alert"]) for r in _rules()}, "every shipped alert has a promtool case"


def test_the_cases_fail_on_an_empty_rules_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yml"
    empty.write_text("groups: []\n")
    cases = tmp_path / "cases.yml"
    cases.write_text(CASES.read_text(encoding="utf-8").replace("../../dashboard/prometheus/rightsizer.alerts.yml",
                                                               str(empty)))
    proc = subprocess.run([_promtool(), "test", "rules", str(cases)], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "FAILED" in proc.stdout + proc.stderr


def test_every_alert_has_for_severity_and_a_summary_naming_its_subject() -> None:
    rules = _rules()
    assert REQUIRED <= {str(r["alert"]) for r in rules}
    for rule in rules:
        name = rule["alert"]
        assert rule.get("for"), f"{name} has no for:"
        labels = rule["labels"]
        assert isinstance(labels, dict) and labels.get("severity") in ("critical", "warning", "info"), name
        notes = rule["annotations"]
        assert isinstance(notes, dict) and notes.get("summary") and notes.get("description"), name
        subject = "$labels.vm" if "rightsizer_vm_" in str(rule["expr"]) else "$labels."
        assert subject in str(notes["summary"]), f"{name}: the summary names no {subject}"


def test_alerts_read_only_series_the_exporter_serves() -> None:
    served: set[str] = set()
    for fam in RightsizerCollector(Snapshot).describe():
        suffix = {"counter": "_total", "info": "_info"}.get(fam.type, "")
        served.add(fam.name + suffix)
    used = {m for r in _rules() for m in re.findall(r"\b(rightsizer_[a-z_]+)", str(r["expr"]))}
    assert used and used <= served, f"not exported: {sorted(used - served)}"
