"""The fleet's hourly rollups as sorted arrays, and what is computed over all VMs at once from them.

Trends, peak ratios and replays of the lookback on a recommended type are done for the whole fleet in one
vectorised pass each; the per-VM finding code reads their results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analytics.catalogue import MachineType
from analytics.findings.projection import Projection, project_fleet
from analytics.frames import appearance_codes, epoch_ns, group_percentile, numeric_column
from analytics.rightsizing.base import Recommendation
from analytics.trend import Trend, theil_sen, trend_from_fit
from collector.model import VmRecord
from core.units import SECONDS_PER_DAY


@dataclass(frozen=True, slots=True)
class HourSeries:
    ts_s: np.ndarray
    cpu_p95: np.ndarray
    cpu_max: np.ndarray
    mem_max: np.ndarray
    running_s: np.ndarray | None = None  # seconds of each hour the samples cover (NaN/None: unknown)


@dataclass(frozen=True, slots=True)
class HourColumns:
    """The hourly frame as arrays sorted by (VM, hour); ``bounds[i]:bounds[i+1]`` is VM ``names[i]``."""

    names: list[str]
    codes: np.ndarray
    bounds: np.ndarray
    ts_s: np.ndarray
    cpu_p95: np.ndarray
    cpu_max: np.ndarray
    mem_max: np.ndarray
    running_s: np.ndarray

    def series(self) -> dict[str, HourSeries]:
        out: dict[str, HourSeries] = {}
        for i in range(len(self.bounds) - 1):
            a, b = self.bounds[i], self.bounds[i + 1]
            out[self.names[int(self.codes[a])]] = HourSeries(
                self.ts_s[a:b], self.cpu_p95[a:b], self.cpu_max[a:b], self.mem_max[a:b], self.running_s[a:b])
        return out


def _epoch_s(values: pd.Series) -> np.ndarray:
    """Epoch seconds (float64) of timestamps; naive values are taken as UTC."""
    seconds: np.ndarray = epoch_ns(values) / 1e9
    return seconds


def hour_columns(frame: pd.DataFrame) -> HourColumns:
    if frame.empty:
        empty = np.empty(0)
        return HourColumns([], np.empty(0, dtype=np.int64), np.zeros(1, dtype=np.int64), empty, empty, empty, empty,
                        empty)
    vm_codes, vm_names = appearance_codes(frame["vm"])
    ts_s = _epoch_s(frame["ts"])

    def column(name: str) -> np.ndarray:
        return numeric_column(frame, name)  # float64, NaN for missing or non-numeric cells

    # Stores return rows grouped by VM in time order; sort only when they are not.
    later = ts_s[1:] > ts_s[:-1]
    later |= vm_codes[1:] != vm_codes[:-1]  # time order is checked within a VM only
    ordered = bool(np.all(vm_codes[1:] >= vm_codes[:-1])) and bool(later.all())
    order = slice(None) if ordered else np.lexsort((ts_s, vm_codes))
    codes = vm_codes[order]
    change = np.ones(len(codes) + 1, dtype=bool)
    np.not_equal(codes[1:], codes[:-1], out=change[1:-1])
    return HourColumns(
        [str(v) for v in vm_names], codes, np.flatnonzero(change), ts_s[order], column("cpu_p95_vcpus")[order],
        column("cpu_max_vcpus")[order], column("memory_used_max_bytes")[order], column("running_s")[order],
    )


def fleet_trends(
    cols: HourColumns, *, end_s: float, lookback_days: float, growth_fraction: float
) -> dict[str, tuple[Trend | None, Trend | None]]:
    """CPU and memory trends of every VM in one vectorised pass (same rule as ``history_trends``).

    Daily p95 of hourly peaks over the lookback, Theil-Sen slope, Mann-Kendall test, projected over one
    more lookback.
    """
    keep = (cols.ts_s >= end_s - lookback_days * SECONDS_PER_DAY) & ~np.isnan(cols.cpu_p95)
    if not keep.any():
        return {}
    data = pd.DataFrame({"vm": cols.codes[keep], "day": np.floor(cols.ts_s[keep] / SECONDS_PER_DAY),
                         "cpu": cols.cpu_max[keep], "mem": cols.mem_max[keep]})
    daily = data.groupby(["vm", "day"], sort=True)[["cpu", "mem"]].quantile(0.95)
    cpu_m = daily["cpu"].unstack("day")
    mem_m = daily["mem"].unstack("day").reindex(index=cpu_m.index, columns=cpu_m.columns)
    days = cpu_m.columns.to_numpy(dtype=np.float64)

    def fit(values: np.ndarray) -> list[Trend | None]:
        slope, intercept, z, n = theil_sen(days, values)
        valid = ~np.isnan(values)
        last = days[valid.shape[1] - 1 - np.argmax(valid[:, ::-1], axis=1)]
        return [trend_from_fit(float(slope[i]), float(intercept[i]), float(z[i]), int(n[i]),
                               last_day=float(last[i]), horizon_days=lookback_days,
                               growth_fraction=growth_fraction)
                for i in range(len(values))]

    cpu_t = fit(cpu_m.to_numpy(dtype=np.float64))
    mem_t = fit(mem_m.to_numpy(dtype=np.float64))
    return {cols.names[int(code)]: (cpu_t[i], mem_t[i]) for i, code in enumerate(cpu_m.index)}


def fleet_peak_ratios(cols: HourColumns, *, end_s: float, lookback_days: float) -> dict[str, float]:
    """Per VM: max / p95 of its hourly CPU peaks over the lookback (NaN without data or p95 of 0).

    The same figure :func:`_risk_and_projection` computes for one VM, done for the fleet at once.
    """
    cpu = cols.cpu_max
    ok = (cols.ts_s >= end_s - lookback_days * SECONDS_PER_DAY) & ~np.isnan(cpu)
    n = len(cols.names)
    rows = slice(None) if ok.all() else ok  # no copies when every hour counts
    codes, values = cols.codes[rows], cpu[rows]
    p95 = group_percentile(codes, values, n, 95.0)
    peak = np.full(n, -np.inf)
    if len(codes):  # codes ascending: one maximum per run of a VM's rows (as exact as np.maximum.at)
        starts = np.flatnonzero(np.concatenate([[True], codes[1:] != codes[:-1]]))
        peak[codes[starts]] = np.maximum.reduceat(values, starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(p95 > 0, peak / p95, np.nan)
    return dict(zip(cols.names, ratio.tolist(), strict=True))


def replays_lookback(rec: Recommendation) -> bool:
    """True when a finding made from ``rec`` replays the lookback on its target (:func:`_risk_and_projection`)."""
    return rec.changes_type and rec.recommended_type is not None and rec.evidence is not None


def fleet_replays(cols: HourColumns, vms: Sequence[VmRecord], decided: Sequence[tuple[Recommendation, str, float]],
                  *, end_s: float) -> dict[str, Projection]:
    """The projection :func:`_risk_and_projection` makes for each VM whose recommendation changes its type,
    for the whole fleet in one pass per lookback (:func:`analytics.findings.projection.project_fleet`).

    ``decided`` is (recommendation, type source, lookback days) per VM of ``vms``; VMs without hours in
    ``cols`` are left to the per-VM path.
    """
    code_of = {name: i for i, name in enumerate(cols.names)}
    group_of_code = np.empty(len(cols.names), dtype=np.int64)
    group_of_code[cols.codes[cols.bounds[:-1]]] = np.arange(len(cols.bounds) - 1)
    picked: dict[float, list[tuple[str, int, MachineType]]] = {}
    for vm, (rec, _source, lookback) in zip(vms, decided, strict=True):
        target, code = rec.recommended_type, code_of.get(vm.uuid)
        if code is None or target is None or not replays_lookback(rec) or target.vcpus < 1 or target.memory_bytes < 1:
            continue
        picked.setdefault(lookback, []).append((vm.uuid, int(group_of_code[code]), target))
    out: dict[str, Projection] = {}
    for lookback, chosen in picked.items():
        chosen.sort(key=lambda c: c[1])
        projections = project_fleet(
            cols.bounds, cols.ts_s, cols.cpu_max, cols.mem_max, np.array([c[1] for c in chosen], dtype=np.int64),
            np.array([c[2].vcpus for c in chosen]), np.array([c[2].memory_bytes for c in chosen]),
            start_s=end_s - lookback * SECONDS_PER_DAY)
        out.update((c[0], p) for c, p in zip(chosen, projections, strict=True))
    return out
