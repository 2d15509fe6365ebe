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


@pytest.fixture(autouse=True)
def host_lock_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The host's per-VM apply lock directory, private to each test (tests run as root beside other runs)."""
    import collector.actions.locks as locks

    path = tmp_path_factory.mktemp("host-locks") / "locks"
    monkeypatch.setattr(locks, "SYSTEM_LOCK_DIR", path)
    return path


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


def write_trace(folder: Path, rows_by_file: dict[str, list[tuple[float, ...]]]) -> Path:
    """A Bitbrains-format trace folder: one file per name, rows of the eleven numeric fields."""
    from analytics.traces import BITBRAINS_COLUMNS

    folder.mkdir(parents=True, exist_ok=True)
    header = ";\t".join(label for label, _ in BITBRAINS_COLUMNS)
    for name, rows in rows_by_file.items():
        lines = [";\t".join(repr(v) if isinstance(v, float) else str(v) for v in row) for row in rows]
        (folder / name).write_text("\n".join([header, *lines]) + "\n")
    return folder


def steady_rows(count: int = 400, *, t0: int = 1375308000, cores: int = 2,
                capacity_mhz: float = 5200.0) -> list[tuple[float, ...]]:
    """``count`` five-minute rows of a VM using a quarter of its CPU and 1 of 4 GiB."""
    return [(t0 + 300 * i, cores, capacity_mhz, capacity_mhz / 4, 25.0, 4194304.0, 1048576.0, 0.0, 0.0, 0.0, 0.0)
            for i in range(count)]


@pytest.fixture
def tiny_trace(tmp_path: Path) -> Path:
    """A two-VM Bitbrains-format trace folder of 400 five-minute rows each."""
    return write_trace(tmp_path / "trace", {"1.csv": steady_rows(), "2.csv": steady_rows()})
