"""Idle VMs, the way GCP's idle-VM recommender defines them, with thresholds from ``IdleSettings``.

A VM is idle when, over at least ``min_days`` of observed running time, its CPU stays below
``cpu_vcpus_below`` vCPUs and its disk and network traffic below ``disk_bps_below`` / ``net_bps_below``
bytes per second for at least ``share_of_time`` of that time (GCP's published rule: CPU < 0.03 vCPU for
97 % of the runtime). Shares are weighted by running time; stopped time is not counted.

On hourly rollups an hour counts as idle only when its *peak* (``cpu_max_vcpus``) is below the
threshold; a single busy sample makes the whole hour busy, so hourly results are conservative (they
flag fewer VMs than raw samples would). Disk and network use the hour's bytes over its running seconds.
A dimension without any data does not block the verdict; its share is reported as None.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from analytics.frames import nan_to_num_lean, numeric_column, sorted_codes
from core.settings import IdleSettings

IdleStatus = Literal["idle", "active", "insufficient-data"]


@dataclass(frozen=True, slots=True)
class IdleFinding:
    """Evidence for one VM: observed running time and the idle share of each dimension (0..1)."""

    vm_uuid: str
    status: IdleStatus
    resolution: str  # "hour" or "raw"
    observed_days: float  # running time with CPU data, days
    cpu_idle_share: float | None
    disk_idle_share: float | None
    net_idle_share: float | None
    cpu_threshold_vcpus: float
    disk_threshold_bps: float
    net_threshold_bps: float
    share_required: float
    min_days: float
    reasons: tuple[str, ...]

    @property
    def is_idle(self) -> bool:
        return self.status == "idle"


def find_idle(
    frame: pd.DataFrame, settings: IdleSettings, *, include_all: bool = False
) -> dict[str, IdleFinding]:
    """Judge every VM in an hourly or raw frame; returns idle VMs by UUID (all VMs with ``include_all``).

    The frame's resolution is told by its columns (``cpu_max_vcpus`` = hour, ``cpu_vcpus`` = raw).
    Raises ValueError when it has neither.
    """
    if "cpu_max_vcpus" in frame.columns:
        resolution = "hour"
    elif "cpu_vcpus" in frame.columns:
        resolution = "raw"
    else:
        raise ValueError(
            f"Frame has neither 'cpu_max_vcpus' (hour) nor 'cpu_vcpus' (raw) columns: {list(frame.columns)!r}"
        )
    if frame.empty:
        return {}
    codes, names = sorted_codes(frame["vm"])
    weights, cpu = _hour_weights_cpu(frame) if resolution == "hour" else _raw_weights_cpu(frame)
    n = len(names)

    def total(group: np.ndarray, w: np.ndarray, ok: np.ndarray) -> np.ndarray:
        summed: np.ndarray = np.bincount(group, weights=np.where(ok, w, 0.0), minlength=n)
        return summed

    cpu_ok = (weights > 0) & np.isfinite(cpu)
    sums = {"cpu_w": total(codes, weights, cpu_ok),
            "cpu_idle_w": total(codes, weights, cpu_ok & (cpu < settings.cpu_vcpus_below))}
    # disk and network matter only where CPU allows idle: their sums are taken over those VMs' rows
    # alone (the same rows in the same order, so each VM's sum is the same)
    candidates = np.ones(n, dtype=bool) if include_all else _maybe_idle(sums, settings, ("cpu",))
    rows: slice | np.ndarray = slice(None) if candidates.all() else np.flatnonzero(candidates[codes])
    group, w = codes[rows], weights[rows]
    disk, net = _hour_disk_net(frame, w, rows) if resolution == "hour" else _raw_disk_net(frame, rows)
    running = w > 0
    disk_ok, net_ok = running & np.isfinite(disk), running & np.isfinite(net)
    sums.update({
        "disk_w": total(group, w, disk_ok), "disk_idle_w": total(group, w, disk_ok & (disk < settings.disk_bps_below)),
        "net_w": total(group, w, net_ok), "net_idle_w": total(group, w, net_ok & (net < settings.net_bps_below)),
    })
    judged = range(n) if include_all else np.flatnonzero(_maybe_idle(sums, settings) & candidates)
    out: dict[str, IdleFinding] = {}
    for i in judged:
        finding = _judge(names[i], {k: float(v[i]) for k, v in sums.items()}, resolution, settings)
        if include_all or finding.is_idle:
            out[finding.vm_uuid] = finding
    return out


def _maybe_idle(sums: dict[str, np.ndarray], settings: IdleSettings,
                kinds: tuple[str, ...] = ("cpu", "disk", "net")) -> np.ndarray:
    """VMs that can be idle by :func:`_judge`'s rule (enough days; no measured share of ``kinds`` below the
    need)."""
    ok = sums["cpu_w"] / 86400.0 >= settings.min_days
    for key in kinds:
        w = sums[f"{key}_w"]
        with np.errstate(invalid="ignore", divide="ignore"):
            below = (w > 0) & (sums[f"{key}_idle_w"] / w < settings.share_of_time)
        ok &= ~below
    mask: np.ndarray = ok
    return mask


def _hour_weights_cpu(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Hourly rows: the running seconds (weights) and the hour's CPU peak."""
    return nan_to_num_lean(numeric_column(frame, "running_s")), numeric_column(frame, "cpu_max_vcpus")


def _hour_disk_net(frame: pd.DataFrame, running_s: np.ndarray, rows: slice | np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Disk and network bytes per running second of the picked hourly rows (``running_s`` already picked)."""
    seconds = np.where(running_s > 0, running_s, np.nan)
    disk = (numeric_column(frame, "disk_read_bytes", rows) + numeric_column(frame, "disk_write_bytes", rows)) / seconds
    net = (numeric_column(frame, "net_rx_bytes", rows) + numeric_column(frame, "net_tx_bytes", rows)) / seconds
    return disk, net


def _raw_weights_cpu(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Raw samples: the interval of each running sample (0 when not running or a gap) and its CPU."""
    interval_s = np.nan_to_num(numeric_column(frame, "interval_s"))
    state = frame["state"].astype(str).str.lower().to_numpy() if "state" in frame.columns else None
    running = np.ones(len(frame), dtype=bool) if state is None else np.isin(state, ["running", "vmstate.running"])
    if "gap" in frame.columns:
        running &= ~frame["gap"].fillna(False).astype(bool).to_numpy()
    return np.where(running, interval_s, 0.0), numeric_column(frame, "cpu_vcpus")


def _raw_disk_net(frame: pd.DataFrame, rows: slice | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    disk = numeric_column(frame, "disk_read_bps", rows) + numeric_column(frame, "disk_write_bps", rows)
    net = numeric_column(frame, "net_rx_bps", rows) + numeric_column(frame, "net_tx_bps", rows)
    return disk, net


def _share(idle_w: float, total_w: float) -> float | None:
    return idle_w / total_w if total_w > 0 else None


def _judge(uuid: str, row: Mapping[str, float], resolution: str, settings: IdleSettings) -> IdleFinding:
    observed_days = float(row["cpu_w"]) / 86400.0
    cpu = _share(float(row["cpu_idle_w"]), float(row["cpu_w"]))
    disk = _share(float(row["disk_idle_w"]), float(row["disk_w"]))
    net = _share(float(row["net_idle_w"]), float(row["net_w"]))
    need = settings.share_of_time
    reasons: list[str] = []
    status: IdleStatus
    if observed_days < settings.min_days:
        status = "insufficient-data"
        reasons.append(f"only {observed_days:.2f} days of running time with CPU data; need {settings.min_days:g}")
    else:
        busy = False
        for label, share, limit in (
            ("CPU", cpu, f"< {settings.cpu_vcpus_below:g} vCPU"),
            ("disk", disk, f"< {settings.disk_bps_below:g} B/s"),
            ("network", net, f"< {settings.net_bps_below:g} B/s"),
        ):
            if share is None:
                reasons.append(f"{label}: no data")
                continue
            verdict = ">=" if share >= need else "<"
            busy |= share < need
            reasons.append(f"{label} {limit} for {share:.1%} of running time ({verdict} {need:.0%})")
        status = "active" if busy else "idle"
    return IdleFinding(
        vm_uuid=uuid,
        status=status,
        resolution=resolution,
        observed_days=observed_days,
        cpu_idle_share=cpu,
        disk_idle_share=disk,
        net_idle_share=net,
        cpu_threshold_vcpus=settings.cpu_vcpus_below,
        disk_threshold_bps=settings.disk_bps_below,
        net_threshold_bps=settings.net_bps_below,
        share_required=need,
        min_days=settings.min_days,
        reasons=tuple(reasons),
    )
