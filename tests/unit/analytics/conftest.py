"""Fixtures shared by the analytics tests: the one analysis entry point, the backtest trace."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from analytics.analysis import AnalysisOptions, analyse_fleet
from analytics.findings.finding import VmFinding
from tests.helpers.backtest import write_two_vm_trace


def _analyse(store: Any, catalogue: Any, *, now: Any, strategy: str = "rightsizer", profile: str | None = None,
             settings: Any = None, idle_settings: Any = None, signal_settings: Any = None, rules: Any = None,
             policies: Any = (), lookback_days: float = 14.0) -> list[VmFinding]:
    """The one analysis entry point with the pure path's defaults (no idle, signal or lifecycle rules unless
    given), as the findings list."""
    options = AnalysisOptions(strategy=strategy, profile=profile, strategy_settings=settings, idle=idle_settings,
                              signals=signal_settings, lifecycle=rules, policies=tuple(policies or ()),
                              lookback_days=lookback_days, now=now)
    return list(analyse_fleet(store, catalogue, options).findings)


@pytest.fixture
def analyse() -> Callable[..., list[VmFinding]]:
    """``analyse(store, catalogue, now=..., **options)`` -> findings, through ``analytics.analysis``."""
    return _analyse


@pytest.fixture
def trace_dir(tmp_path: Path) -> Path:
    """The hand-computed two-VM Bitbrains trace (see ``tests.helpers.backtest``)."""
    return write_two_vm_trace(tmp_path / "trace")
