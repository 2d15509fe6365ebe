"""The values a strategy's estimate produces: one dimension's need, a VM's need, and a fleet-prepared need.

A module of plain values with no strategy logic, so that the shared rules (:mod:`.base`), the fleet
path (:mod:`.batch`) and the strategies all import it and none of them imports another in a circle.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DimensionNeed:
    """What one dimension needs and the evidence for it.

    ``value`` is vCPUs (float) or bytes. ``statistic`` names what was measured (e.g. "p99 of hourly
    peaks"), ``observed`` is its value, ``headroom_fraction`` what was added, ``peak`` the largest value
    seen in the lookback.
    """

    value: float
    statistic: str
    observed: float
    headroom_fraction: float
    peak: float
    #: How the VM's own spread set the headroom: "steady", "variable" or "spiky" (a need fitted per VM:
    #: :mod:`.calibrated`, :mod:`.peak_spread`); "" when a fixed headroom applies.
    shape: str = ""
    #: The relative spread that word rests on (calibrated: (base - median) / base; daily peaks: their
    #: interquartile range / median), None with a fixed headroom.
    spread: float | None = None


@dataclass(frozen=True, slots=True)
class Need:
    """A strategy's estimate; ``memory`` is None when memory use is unknown (``memory_note`` says why)."""

    cpu: DimensionNeed
    memory: DimensionNeed | None
    memory_note: str = "memory use unknown (no guest balloon stats)"
    #: Keep at least the vCPUs of the cheapest type holding this much memory (bytes; None = no floor).
    cpu_floor_memory_bytes: float | None = None



@dataclass(frozen=True, slots=True)
class PreparedNeed:
    """One VM's lookback as ``decide`` measures it: samples with CPU data, hours they cover, days they
    span, and the strategy's need (None when there are no samples)."""

    samples: int
    coverage_hours: float
    span_days: float
    need: Need | None
