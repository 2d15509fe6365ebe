"""Resize regret: watch every resized VM on its new size and flag the resizes that did not fit.

After an applied resize (audit result ``applied``, not yet reverted or resized again) the VM is watched for
one lookback. Each running hour on the new size is checked for overrun:

* **CPU saturated**: the hour's p95 demand reached ``SATURATED_FRACTION`` of the new vCPUs (the guest
  wanted all it had for a good part of the hour);
* **memory used at the new allocation**: the hour's peak memory used reached ``SATURATED_FRACTION`` of the
  new memory;
* **pressure signals** where the store has them (columns named in ``PRESSURE_COLUMNS``, any positive value
  in the hour counts).

With at least ``min_hours`` overrun hours that are also at least ``min_share`` of the watched running hours
the resize is a regret: the finding proposes the next size up that covers the observed demand plus
headroom, or the revert to the size before the resize when that is not smaller.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from analytics.catalogue import HOURS_PER_MONTH, MachineType
from analytics.frames import numeric_column
from analytics.rightsizing.base import FittingCatalogue
from collector.store.base import AuditEntry
from core.settings import SignalSettings

SATURATED_FRACTION = 0.95
HEADROOM_FRACTION = 0.15
#: Hourly memory-pressure columns and the level from which an hour counts as pressured: the worst interval's
#: swap traffic (bytes/s) and major faults (/s), the same thresholds as the memory-pressure signal. A few major
#: faults or a trickle of swap are normal in a healthy guest, so "any" would flag nearly every hour.
PRESSURE_THRESHOLDS = {
    "swap_max_bps": SignalSettings().pressure_swap_bps,
    "major_faults_max_ps": SignalSettings().pressure_major_faults_ps,
}


@dataclass(frozen=True, slots=True)
class AppliedResize:
    """A resize in force: when, from which size to which (``machine_type`` may be empty)."""

    vm_uuid: str
    vm_name: str
    plan_id: str
    applied_at: datetime
    before_vcpus: int
    before_memory_bytes: int
    before_type: str
    after_vcpus: int
    after_memory_bytes: int
    after_type: str
    price_before_per_hour: float | None
    price_after_per_hour: float | None


@dataclass(frozen=True, slots=True)
class Regret:
    """A resize that overran its new size, the evidence, and the proposed way back."""

    resize: AppliedResize
    watched_from: datetime
    watched_until: datetime
    running_hours: int
    cpu_saturated_hours: int
    memory_full_hours: int
    pressure_hours: int
    overrun_hours: int
    cpu_p95_max_vcpus: float
    memory_used_max_bytes: float | None
    proposal: str  # "next-size-up" | "revert"
    target_type: str
    target_vcpus: int
    target_memory_bytes: int
    target_price_per_hour: float | None

    def evidence(self) -> str:
        r = self.resize
        mem = ("memory use unknown" if self.memory_used_max_bytes is None
               else f"memory used up to {self.memory_used_max_bytes / 1024**3:.2f} GiB")
        return (f"since the resize to {r.after_type or '?'} ({r.after_vcpus} vCPU, "
                f"{r.after_memory_bytes / 1024**3:.2f} GiB) on {r.applied_at:%Y-%m-%d %H:%M} UTC: "
                f"{self.overrun_hours} of {self.running_hours} running h overran it "
                f"(CPU saturated {self.cpu_saturated_hours} h, memory at the allocation "
                f"{self.memory_full_hours} h, pressure {self.pressure_hours} h); hourly p95 CPU up to "
                f"{self.cpu_p95_max_vcpus:.2f} vCPU, {mem}")


def resizes_in_force(entries: Sequence[AuditEntry]) -> list[AppliedResize]:
    """The newest applied resize of every VM that no later revert or apply has replaced."""
    current: dict[str, AuditEntry | None] = {}
    for e in sorted(entries, key=lambda e: (e.ts, e.id or 0)):
        if e.result == "applied":
            current[e.vm_uuid] = e
        elif e.result == "reverted":
            current[e.vm_uuid] = None
    out = []
    for found in current.values():
        if found is None:
            continue
        e = found
        vcpus, mem = _int(e.after.get("target_vcpus")), _int(e.after.get("target_memory_bytes"))
        if vcpus is None or mem is None:
            continue
        out.append(AppliedResize(
            vm_uuid=e.vm_uuid, vm_name=e.vm_name, plan_id=e.plan_id, applied_at=e.ts,
            before_vcpus=_int(e.before.get("config_vcpus")) or vcpus,
            before_memory_bytes=_int(e.before.get("config_memory_bytes")) or mem,
            before_type=str(e.before.get("machine_type") or ""),
            after_vcpus=vcpus, after_memory_bytes=mem, after_type=str(e.after.get("target_machine_type") or ""),
            price_before_per_hour=e.price_before_per_hour, price_after_per_hour=e.price_after_per_hour,
        ))
    return sorted(out, key=lambda r: r.applied_at)


def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def find_regrets(
    resizes: Sequence[AppliedResize],
    hour_frame: pd.DataFrame,
    catalogue: FittingCatalogue,
    *,
    now: datetime,
    watch_days: float,
    min_hours: int = 3,
    min_share: float = 0.01,
) -> dict[str, Regret]:
    """Regrets among ``resizes``, by VM UUID, judged on the hourly frame (``collector.store.base`` columns).

    Only hours from the apply up to ``watch_days`` later (and before ``now``) with running time count.
    """
    if hour_frame.empty or not resizes:
        return {}
    frame = hour_frame.copy()
    frame["vm"] = frame["vm"].astype(str)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    by_vm = dict(tuple(frame.groupby("vm", sort=False)))
    out: dict[str, Regret] = {}
    for r in resizes:
        rows = by_vm.get(r.vm_uuid)
        if rows is None:
            continue
        until = min(pd.Timestamp(r.applied_at) + pd.Timedelta(days=watch_days), pd.Timestamp(now))
        # the hour containing the apply is mixed (old and new size): start at the next full hour
        start = pd.Timestamp(r.applied_at).ceil("h")
        window = rows[(rows["ts"] >= start) & (rows["ts"] < until)
                      & (pd.to_numeric(rows["running_s"], errors="coerce").fillna(0) > 0)]
        regret = _judge(r, window, catalogue, start, until, min_hours, min_share)
        if regret is not None:
            out[r.vm_uuid] = regret
    return out


def _judge(
    r: AppliedResize, window: pd.DataFrame, catalogue: FittingCatalogue, start: pd.Timestamp,
    until: pd.Timestamp, min_hours: int, min_share: float,
) -> Regret | None:
    n = len(window)
    if n == 0:
        return None
    cpu = numeric_column(window, "cpu_p95_vcpus")
    mem = numeric_column(window, "memory_used_max_bytes")
    cpu_sat = np.nan_to_num(cpu) >= SATURATED_FRACTION * r.after_vcpus
    mem_full = np.nan_to_num(mem) >= SATURATED_FRACTION * r.after_memory_bytes
    pressure = np.zeros(n, dtype=bool)
    for name, level in PRESSURE_THRESHOLDS.items():
        pressure |= np.nan_to_num(numeric_column(window, name)) >= level
    over = cpu_sat | mem_full | pressure
    overrun = int(np.count_nonzero(over))
    if overrun < min_hours or overrun < min_share * n:
        return None
    cpu_max = float(np.nanmax(cpu)) if np.any(~np.isnan(cpu)) else 0.0
    mem_max = float(np.nanmax(mem)) if np.any(~np.isnan(mem)) else None
    proposal, target = _proposal(r, catalogue, cpu_max, mem_max, bool(cpu_sat.any()), bool(mem_full.any()))
    return Regret(
        resize=r, watched_from=start.to_pydatetime(), watched_until=until.to_pydatetime(), running_hours=n,
        cpu_saturated_hours=int(np.count_nonzero(cpu_sat)), memory_full_hours=int(np.count_nonzero(mem_full)),
        pressure_hours=int(np.count_nonzero(pressure)), overrun_hours=overrun, cpu_p95_max_vcpus=cpu_max,
        memory_used_max_bytes=mem_max, proposal=proposal,
        target_type=target.name if target is not None else r.before_type,
        target_vcpus=target.vcpus if target is not None else r.before_vcpus,
        target_memory_bytes=target.memory_bytes if target is not None else r.before_memory_bytes,
        target_price_per_hour=(target.price_per_hour if target is not None else r.price_before_per_hour),
    )


def _proposal(
    r: AppliedResize, catalogue: FittingCatalogue, cpu_max: float, mem_max: float | None,
    cpu_sat: bool, mem_full: bool,
) -> tuple[str, MachineType | None]:
    """Next size up covering observed demand + headroom, strictly larger where it overran; else revert."""
    cpu_need = max(cpu_max * (1 + HEADROOM_FRACTION), r.after_vcpus + (1 if cpu_sat else 0))
    mem_need = float(r.after_memory_bytes)
    if mem_max is not None:
        mem_need = max(mem_need, mem_max * (1 + HEADROOM_FRACTION))
    if mem_full:
        mem_need = max(mem_need, r.after_memory_bytes * 1.5)
    bigger = catalogue.cheapest_fitting(cpu_need, math.ceil(mem_need))
    if (bigger is None or bigger.vcpus > r.before_vcpus or bigger.memory_bytes > r.before_memory_bytes
            or (bigger.vcpus == r.before_vcpus and bigger.memory_bytes == r.before_memory_bytes)):
        return "revert", None
    return "next-size-up", bigger


def monthly_cost_change(regret: Regret) -> float | None:
    """Extra cost per 720-hour month of the proposal over the size in force (None when unpriced)."""
    after = regret.resize.price_after_per_hour
    if after is None or regret.target_price_per_hour is None:
        return None
    return (regret.target_price_per_hour - after) * HOURS_PER_MONTH


def watch_end(r: AppliedResize, watch_days: float) -> datetime:
    """When watching ``r`` ends."""
    return r.applied_at + timedelta(days=watch_days)
