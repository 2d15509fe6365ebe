"""Right-sizing strategies by name: our default ``rightsizer`` and the anchors ``aws``, ``krr``, ``vpa``.

Importing this package is light (pydantic settings only); the strategy modules (numpy) load on first use
of :func:`get_strategy` or ``STRATEGIES``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from analytics.rightsizing.settings import (
    DEFAULT_STRATEGY,
    SETTINGS_TYPES,
    STRATEGY_NAMES,
    Policy,
    StrategySettings,
)

if TYPE_CHECKING:
    from analytics.rightsizing.decide import Strategy

#: Strategy name -> module that defines ``STRATEGY``.
_MODULES = {"rightsizer": "default", "aws": "aws", "krr": "krr", "vpa": "vpa"}

__all__ = [
    "DEFAULT_STRATEGY", "SETTINGS_TYPES", "STRATEGIES", "STRATEGY_NAMES", "Policy", "StrategySettings",
    "get_strategy",
]


def get_strategy(name: str) -> Strategy:
    """The strategy called ``name``. Raises KeyError listing the known names."""
    module = _MODULES.get(name)
    if module is None:
        raise KeyError(f"unknown strategy {name!r}; known: {', '.join(STRATEGY_NAMES)}")
    strategy: Strategy = importlib.import_module(f"analytics.rightsizing.{module}").STRATEGY
    return strategy


def __getattr__(name: str) -> Any:
    if name == "STRATEGIES":
        return {n: get_strategy(n) for n in STRATEGY_NAMES}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
