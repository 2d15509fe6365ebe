"""Fixtures shared by the backtest and frontier tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.backtest import write_two_vm_trace


@pytest.fixture
def trace_dir(tmp_path: Path) -> Path:
    """The hand-computed two-VM Bitbrains trace (see ``tests.helpers.backtest``)."""
    return write_two_vm_trace(tmp_path / "trace")
