"""The Grafana dashboard shipped in dashboard/grafana/ parses and queries only metrics the exporter has."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

GRAFANA = Path(__file__).resolve().parents[3] / "dashboard" / "grafana" / "rightsizer.json"
#: Metric names from DESIGN.md ("Metric names").
KNOWN_METRICS = {
    "rightsizer_vm_info", "rightsizer_vm_vcpus", "rightsizer_vm_cpu_seconds_total", "rightsizer_vm_memory_bytes",
    "rightsizer_vm_memory_used_bytes", "rightsizer_vm_disk_read_bytes_total", "rightsizer_vm_disk_write_bytes_total",
    "rightsizer_vm_hourly_cost", "rightsizer_vm_recommendation_info", "rightsizer_vm_potential_monthly_savings",
    "rightsizer_up", "rightsizer_collector_cycle_seconds", "rightsizer_collector_errors_total",
    "rightsizer_vm_running", "rightsizer_vm_cpu_delay_seconds_total", "rightsizer_vm_memory_swap_in_bytes_total",
    "rightsizer_vm_memory_swap_out_bytes_total", "rightsizer_vm_memory_major_faults_total",
    "rightsizer_vm_disk_read_requests_total", "rightsizer_vm_disk_write_requests_total",
    "rightsizer_vm_disk_write_time_seconds_total", "rightsizer_vm_storage_hourly_cost",
    "rightsizer_vm_backup_age_seconds", "rightsizer_vm_backup_overdue", "rightsizer_vm_idle", "rightsizer_host_cpus",
    "rightsizer_vm_storage_potential_monthly_savings", "rightsizer_vm_storage_recommendation_info",
}
_METRIC = re.compile(r"\b(rightsizer_[a-z0-9_]+)\b")
_LABEL_NAMES = re.compile(r"\{[^}]*\}")


def _exprs() -> list[str]:
    doc = json.loads(GRAFANA.read_text(encoding="utf-8"))
    return [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]


def test_dashboard_parses_and_has_panels() -> None:
    doc = json.loads(GRAFANA.read_text(encoding="utf-8"))
    assert doc["uid"] == "rightsizer-fleet"
    assert len(doc["panels"]) >= 10
    assert {v["name"] for v in doc["templating"]["list"]} == {"datasource", "host", "vm"}
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))


def test_every_expr_uses_known_metrics_only() -> None:
    exprs = _exprs()
    assert exprs
    used: set[str] = set()
    for expr in exprs:
        names = set(_METRIC.findall(_LABEL_NAMES.sub("", expr)))
        assert names, f"expression {expr!r} queries no rightsizer metric"
        assert names <= KNOWN_METRICS, f"unknown metric(s) {names - KNOWN_METRICS} in {expr!r}"
        assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}")
        used |= names
    # the cost, savings, recommendation and health metrics are all on the dashboard
    assert {"rightsizer_vm_hourly_cost", "rightsizer_vm_potential_monthly_savings",
            "rightsizer_vm_recommendation_info", "rightsizer_up", "rightsizer_collector_errors_total",
            "rightsizer_vm_storage_hourly_cost", "rightsizer_vm_backup_age_seconds",
            "rightsizer_vm_cpu_delay_seconds_total", "rightsizer_host_cpus",
            "rightsizer_vm_storage_potential_monthly_savings"} <= used


def test_per_vm_panels_keep_the_vm_label_through_their_joins() -> None:
    doc = json.loads(GRAFANA.read_text(encoding="utf-8"))
    per_vm = [t["expr"] for p in doc["panels"] for t in p.get("targets", [])
              if "{{vm}}" in t.get("legendFormat", "")]
    assert len(per_vm) >= 5, per_vm  # the per-VM CPU, memory, disk, cost and savings panels
    for expr in per_vm:
        # a one-to-one "/ on (uuid)" keeps only uuid; every join must be group_left (or none at all)
        assert " on (uuid) rightsizer" not in expr and " on (uuid, device) rate" not in expr, expr


def test_cost_stat_panels_are_in_euros() -> None:
    doc = json.loads(GRAFANA.read_text(encoding="utf-8"))
    cost_stats = [p for p in doc["panels"] if p["type"] == "stat" and "cost" in p["title"].lower()]
    assert cost_stats, [p["title"] for p in doc["panels"]]
    for p in cost_stats:
        assert p["fieldConfig"]["defaults"].get("unit") == "currencyEUR", p["title"]


def test_every_expr_is_valid_promql(tmp_path: Path) -> None:
    exprs = _exprs()
    assert exprs
    rules = {"groups": [{"name": "grafana", "rules": [
        {"record": f"rightsizer:check:{i}", "expr": expr.replace("$host", ".*").replace("$vm", ".*")
                                                  .replace("$__rate_interval", "1m")}
        for i, expr in enumerate(exprs)
    ]}]}
    path = tmp_path / "rules.json"  # promtool reads YAML, and JSON is YAML
    path.write_text(json.dumps(rules), encoding="utf-8")
    result = subprocess.run([_promtool(), "check", "rules", str(path)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout, result.stdout


def _promtool() -> str:
    """Path of Debian's promtool; `make test` installs it, so its absence is a failure, not a skip."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: run `bash scripts/install-system.sh test` (Debian package prometheus)")
    return path
