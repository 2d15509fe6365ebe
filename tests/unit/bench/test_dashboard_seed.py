"""The dashboard bench's fast seeder writes exactly the rows of the demo history generator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from bench.dashboard_seed import seed_history_fast
from collector.store.sqlite import SqliteStore
from rightsizer.demo import demo_fleet
from rightsizer.demo_history import seed_synthetic_history

NOW = datetime(2024, 6, 3, 12, tzinfo=UTC)


def test_fast_seeder_writes_the_demo_generators_rows(tmp_path: Path) -> None:
    fleet = demo_fleet(30, seed=7)  # the 24 template VMs (every profile, a shut-off one) and 6 drawn ones
    slow, fast = SqliteStore(tmp_path / "slow.db"), SqliteStore(tmp_path / "fast.db")
    rows_slow = seed_synthetic_history(slow, fleet, days=3, now=NOW, seed=7, points_per_hour=1)
    rows_fast = seed_history_fast(fast, fleet, days=3, now=NOW, seed=7)
    assert rows_fast == rows_slow == 30 * 72
    start, end = NOW - timedelta(days=4), NOW + timedelta(hours=1)
    for resolution in ("raw", "hour"):
        expected = slow.frame(start, end, resolution=resolution)  # type: ignore[arg-type]
        got = fast.frame(start, end, resolution=resolution)  # type: ignore[arg-type]
        pd.testing.assert_frame_equal(got, expected)
    assert fast.vms() == slow.vms()
    assert fast.backups() == slow.backups()
    assert fast.get_meta("demo_history") == slow.get_meta("demo_history")
    slow.close()
    fast.close()
