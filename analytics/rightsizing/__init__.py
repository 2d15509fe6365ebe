"""Right-sizing strategies by name: our default ``rightsizer`` and the anchors ``aws``, ``krr``, ``vpa``."""

from __future__ import annotations

from analytics.rightsizing import aws, default, krr, vpa
from analytics.rightsizing.base import (
    Finding,
    Recommendation,
    Strategy,
    StrategySettings,
    UsageHistory,
    VmSpec,
)

DEFAULT_STRATEGY = default.NAME
#: Every strategy by its user-facing name, ours first.
STRATEGIES: dict[str, Strategy] = {
    s.name: s for s in (default.STRATEGY, aws.STRATEGY, krr.STRATEGY, vpa.STRATEGY)
}

__all__ = [
    "DEFAULT_STRATEGY", "STRATEGIES", "Finding", "Recommendation", "Strategy", "StrategySettings",
    "UsageHistory", "VmSpec", "get_strategy",
]


def get_strategy(name: str) -> Strategy:
    """The strategy called ``name``. Raises KeyError listing the known names."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise KeyError(f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}") from None
