"""A VM's headroom in words, from its recommendation's evidence: how much each dimension got over which
statistic, and why (its own spread, or one fixed headroom for every VM). One wording for the dashboard's VM
page and ``recommend --explain``:

    spiky CPU (P99 62 % above its median): 45 % headroom over its P99; steady memory (daily peaks spread
    over 3 % of their median): 8 % headroom over its maximum

    CPU: 20 % headroom over its P99.5 (fixed, not fitted to this VM); memory: 15 % headroom over its
    maximum (fixed, not fitted to this VM)
"""

from __future__ import annotations

import re

from analytics.rightsizing.base import Recommendation
from analytics.rightsizing.needs import DimensionNeed

#: "p99.5 of CPU demand", "p90 of daily peak-hour CPU demand", "p95 of 24 h memory peaks": the percentile, and
#: what it is of when that is not the dimension's plain series.
_PERCENTILE = re.compile(r"^p(?P<q>\d+(?:\.\d+)?) of (?P<of>[^(]*?)\s*(?:\(|$)")
_PLAIN = ("CPU demand", "memory used")


def headroom_text(rec: Recommendation | None) -> str:
    """Each dimension's headroom in words, "; "-joined ("" without a recommendation or without a CPU need:
    too little data, or a VM not judged).

    A need fitted to the VM (:mod:`analytics.rightsizing.calibrated`, :mod:`analytics.rightsizing.peak_spread`)
    names its shape ("steady", "variable", "spiky") and the spread behind it; any other need says its
    headroom is fixed.
    """
    ev = rec.evidence if rec is not None else None
    if ev is None or ev.cpu is None:
        return ""
    memory = (dimension_text("memory", ev.memory) if ev.memory is not None
              else "memory: use unknown, kept at its allocation")
    return f"{dimension_text('CPU', ev.cpu)}; {memory}"


def dimension_text(what: str, need: DimensionNeed) -> str:
    """One dimension's clause: "spiky CPU (P99 62 % above its median): 45 % headroom over its P99"."""
    basis = statistic_name(need.statistic)
    pct = round(need.headroom_fraction * 100)
    amount = (f"sized {-pct} % below its {basis}" if pct < 0
              else f"{pct} % headroom over its {basis}")
    if not need.shape:
        return f"{what}: {amount} (fixed, not fitted to this VM)"
    return f"{need.shape} {what} ({_spread_text(need, basis)}): {amount}"


def statistic_name(statistic: str) -> str:
    """The short name of a need's statistic: "p99.5 of CPU demand" -> "P99.5", "max of memory used" and
    "p100 of CPU demand" -> "maximum", "p90 of daily peak-hour CPU demand" -> "P90 of daily peak-hour CPU demand"."""
    m = _PERCENTILE.match(statistic)
    if statistic.startswith("max of") or (m is not None and float(m.group("q")) >= 100 and m.group("of") in _PLAIN):
        return "maximum"
    if m is None:
        return statistic.partition(" (")[0]
    of = m.group("of")
    return f"P{m.group('q')}" + ("" if of in _PLAIN else f" of {of}")


def _spread_text(need: DimensionNeed, basis: str) -> str:
    spread = round((need.spread or 0.0) * 100)
    if "daily peaks" in need.statistic:  # peak_spread: the interquartile range of the daily maxima
        return f"daily peaks spread over {spread} % of their median"
    return f"{basis} {spread} % above its median"


__all__ = ["dimension_text", "headroom_text", "statistic_name"]
