"""Fixtures shared by every test: a fixed clock, a temporary store, the real trace folder, a clean env."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from collector.store.sqlite import SqliteStore

REPO = Path(__file__).resolve().parent.parent
#: The shared data folder sits beside the checkout (CI lays a copy there too).
SHARED = Path(os.environ.get("RIGHTSIZER_SHARED_DIR", REPO.parent / "shared"))


class StepClock:
    """A clock that returns ``start`` and moves forward only when told to."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def clock() -> StepClock:
    return StepClock(datetime(2026, 11, 2, 10, 0, 0, tzinfo=UTC))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "rs.db")
    yield s
    s.close()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("RIGHTSIZER_") and key != "RIGHTSIZER_SHARED_DIR":
            monkeypatch.delenv(key)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only shared data folder; tests that need real traces skip only when it is absent."""
    if not (SHARED / "data").is_dir():
        pytest.skip(f"shared data folder {SHARED} is absent (set RIGHTSIZER_SHARED_DIR)")
    return SHARED


@pytest.fixture(scope="session")
def bitbrains_dir(shared_dir: Path) -> Path:
    path = shared_dir / "data" / "traces" / "bitbrains-rnd-2013-08" / "2013-8"
    if not path.is_dir():
        pytest.skip(f"Bitbrains trace folder {path} is absent")
    return path
