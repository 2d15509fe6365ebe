"""``backtest --schedules`` on the dev trace: patterns from the training days, savings vs missed demand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rightsizer import cli

pytestmark = [pytest.mark.integration]


def test_schedule_backtest_json(bitbrains_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("RIGHTSIZER_SHARED_DIR", "RIGHTSIZER_CONFIG"):
        monkeypatch.delenv(name, raising=False)  # not config keys
    assert cli.main(["backtest", str(bitbrains_dir), "--schedules", "--output", "json"]) == 0
    (doc,) = json.loads(capsys.readouterr().out)
    assert doc["strategy"] == "schedules" and doc["vms"] == sum(doc["patterns"].values())
    assert doc["vms_scheduled"] == len(doc["per_vm"]) > 0  # the rows below are checked, not an empty list
    assert 0 <= doc["missed_demand_hours"] <= doc["demand_hours"]
    assert doc["scheduled_monthly_savings"] == pytest.approx(sum(r["monthly_savings"] for r in doc["per_vm"]),
                                                             abs=0.02)
    for row in doc["per_vm"]:
        assert row["pattern"] in ("office-hours", "nightly-batch")
        assert 0 < row["off_hours"] < row["eval_hours"]
        # Hourly billing: the evaluated share of hours off, priced at the VM's current type, per 720 h month.
        assert row["monthly_savings"] == pytest.approx(row["off_hours"] / row["eval_hours"] * row["price_per_hour"]
                                                       * 720, rel=1e-3)
