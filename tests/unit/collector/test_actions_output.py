"""Resize results in words and as flat rows: sizes, prices, when each change takes effect."""

from __future__ import annotations

from datetime import UTC, datetime

from collector.actions.changes import plan_changes
from collector.actions.output import format_result, format_results, result_row
from collector.actions.policy import restart_permission
from collector.actions.result import ActionResult
from core.plan import SizeSpec
from tests.helpers.snapshots import GIB, REF, resize_step, snapshot

NOW = datetime(2024, 6, 3, 12, tzinfo=UTC)  # a Monday
NEVER = restart_permission("never", (), NOW)


def test_format_result_shows_sizes_prices_and_when() -> None:
    ch = plan_changes(snapshot(), SizeSpec(2, 4 * GIB), NEVER)
    res = ActionResult(step=resize_step(2, 4 * GIB, "g1.1"), result="planned", reason="dry run; add --yes to apply",
                       changes=ch.changes)
    text = format_result(res)
    lines = text.splitlines()
    assert lines[0] == f"web-1 ({REF.uuid}) on qemu:///system -- over-provisioned  [planned]"
    assert lines[1].split() [:4] == ["vCPUs", "4", "->", "2"]
    assert "next restart (persistent config only" in lines[1]
    assert lines[2].split()[:6] == ["memory", "8", "GiB", "->", "4", "GiB"]
    assert lines[2].endswith(
        "now (live balloon + persistent config); max memory 8 GiB -> 4 GiB at next restart (persistent config)")
    assert lines[3].split() == ["type", "c1.2", "->", "g1.1"]
    # 0.224 - 0.112 = 0.112 EUR/h; x 720 h = 80.64 EUR/month
    assert lines[4].split() == ["price", "0.2240", "->", "0.1120", "EUR/h", "saves", "0.1120", "EUR/h",
                                "(80.64", "EUR/month)"]
    assert lines[5] == "  dry run; add --yes to apply"


def test_format_results_without_inspection_and_total() -> None:
    skipped = ActionResult(step=resize_step(2, 4 * GIB), result="skipped", reason="VM 'web-1' no longer exists")
    text = format_results([skipped, skipped])
    assert "vCPUs   4 -> 2" in text and "memory  8 GiB -> 4 GiB" in text
    assert text.endswith("2 VM(s): 2 skipped\n")
    assert format_results([]) == "The plan has no steps: nothing to do.\n"


def test_result_row_is_flat() -> None:
    ch = plan_changes(snapshot(), SizeSpec(2, 4 * GIB), NEVER)
    row = result_row(ActionResult(step=resize_step(2, 4 * GIB), result="applied", reason="ok", changes=ch.changes,
                                  operations=("set memory (config)",), audit_id=7))
    assert row["vcpus_before"] == 4 and row["vcpus_after"] == 2
    assert row["memory_bytes_after"] == 4 * GIB
    assert row["memory_when"] == (
        "now (live balloon + persistent config); max memory 8 GiB -> 4 GiB at next restart (persistent config)")
    assert row["operations"] == ["set memory (config)"] and row["audit_id"] == 7
