"""Fixtures for dashboard tests: the hand-computable three-VM store of ``tinyfleet``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from tinyfleet import END, RECORDS, A, make_data, points

from collector.store.sqlite import SqliteStore
from dashboard.data import DashboardData


@pytest.fixture
def tiny_store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "tiny.db")
    s.write_history(RECORDS, points())
    s.record_backups(A, [END - timedelta(hours=2)])
    yield s
    s.close()


@pytest.fixture
def data(tiny_store: SqliteStore) -> DashboardData:
    return make_data(tiny_store)
