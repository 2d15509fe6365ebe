"""Contention, memory-pressure and storage signals from the hourly rollups: pure inputs and blocking rules.

* **Contention**: a VM whose vCPUs spend a large share of their time runnable but waiting for a host CPU
  (libvirt ``vcpu.N.delay``, stored as ``cpu_delay_*_vcpus``) is starved by its host, not undersized: its
  CPU must not be upsized (more vCPUs on an overcommitted host wait too); the finding names the host.
* **Memory pressure**: guest swap traffic or bursts of major page faults (balloon ``swap_in``/``swap_out``/
  ``major_fault``) mean the guest needs more memory than it has, even when balloon "used" looks below the
  allocation (the kernel already gave up its caches): such hours count as fully used, which blocks a memory
  downsize and can mark the memory under-provisioned.
* **Storage**: the cheapest performance class whose published limits cover the disk's P99 IOPS and
  throughput, and disk capacity that was never written (allocation, or the guest's filesystem use when the
  QEMU guest agent answers), priced per month.

Thresholds come from ``SignalSettings`` (``[signals]``). No I/O here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from analytics.catalogue import HOURS_PER_MONTH, StoragePrices
from analytics.rightsizing.base import Finding
from collector.config import SignalSettings
from collector.model import VmRecord

if TYPE_CHECKING:
    from analytics.recommend import VmFinding

_MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ContentionSignal:
    """Host-CPU wait of one VM over the window: shares of its vCPU time (0..1)."""

    vm_uuid: str
    host: str
    delay_share: float  # P95 over hours of the hourly mean delay per vCPU
    worst_share: float  # worst interval seen
    contended: bool
    reason: str


@dataclass(frozen=True, slots=True)
class PressureSignal:
    """Memory pressure of one VM over the window: the hours (epoch s) with swap or major-fault bursts."""

    vm_uuid: str
    hours_s: tuple[float, ...]
    swap_max_bps: float
    major_faults_max_ps: float
    reason: str

    @property
    def pressured(self) -> bool:
        return bool(self.hours_s)


@dataclass(frozen=True, slots=True)
class HostLoad:
    """One host's overcommit and contention: vCPUs allocated to running VMs against its CPUs."""

    host: str
    host_cpus: int | None
    vcpus_allocated: int
    overcommit: float | None  # vcpus_allocated / host_cpus
    delay_share: float | None  # mean over its VMs' vCPU time
    contended_vms: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StorageAdvice:
    """Storage right-sizing of one VM (all disks together): class by P99 load and unused capacity."""

    vm_uuid: str
    capacity_bytes: float
    used_bytes: float | None  # guest filesystem use, else image allocation; None when unknown
    used_source: str  # "guest-agent" | "allocation" | "unknown"
    iops_p99: float | None
    bps_p99: float | None
    current_class: str
    needed_class: str | None  # None: load unknown, or beyond every published class
    recommended_capacity_bytes: float | None
    monthly_cost: float
    recommended_monthly_cost: float
    monthly_savings: float
    currency: str
    reason: str

    @property
    def recommended_class(self) -> str:
        """The class to move to (the current one when the load is unknown or beyond every class)."""
        return self.needed_class or self.current_class

    @property
    def is_change(self) -> bool:
        """True when moving class or shrinking capacity saves money."""
        return self.monthly_savings > 0

    def as_json(self) -> dict[str, object]:
        """The advice with units in the field names (recommend JSON, API)."""
        return {
            "capacity_bytes": self.capacity_bytes, "used_bytes": self.used_bytes, "used_source": self.used_source,
            "iops_p99": self.iops_p99, "bytes_per_second_p99": self.bps_p99,
            "current_class": self.current_class, "recommended_class": self.recommended_class,
            "recommended_capacity_bytes": self.recommended_capacity_bytes, "monthly_cost": self.monthly_cost,
            "recommended_monthly_cost": self.recommended_monthly_cost, "monthly_savings": self.monthly_savings,
            "currency": self.currency, "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class StorageRules:
    """What storage advice needs beside the rollups: prices, the class disks are billed at, guest fs use."""

    prices: StoragePrices
    current_class: str
    guest_fs_used_bytes: Mapping[str, float] = field(default_factory=dict)


def _window(hours: pd.DataFrame, now: pd.Timestamp, lookback_days: float) -> pd.DataFrame:
    if hours.empty:
        return hours
    ts = pd.to_datetime(hours["ts"], utc=True)
    return hours[(ts >= now - pd.Timedelta(days=lookback_days)) & (ts <= now)]


def _num(frame: pd.DataFrame, col: str) -> pd.Series:
    if col not in frame.columns:
        return pd.Series(np.nan, index=frame.index, dtype="float64")
    return pd.to_numeric(frame[col], errors="coerce").astype("float64")


def contention_signals(hours: pd.DataFrame, vms: Sequence[VmRecord], settings: SignalSettings, *,
                       now: pd.Timestamp, lookback_days: float) -> dict[str, ContentionSignal]:
    """Per VM with delay data: the P95 hourly delay share and whether it is contended (``contention_share``)."""
    w = _window(hours, now, lookback_days)
    if w.empty:
        return {}
    vcpus = _num(w, "vcpus").where(lambda v: v > 0)
    share = _num(w, "cpu_delay_mean_vcpus") / vcpus
    worst = _num(w, "cpu_delay_max_vcpus") / vcpus
    frame = pd.DataFrame({"vm": w["vm"].astype(str), "share": share, "worst": worst}).dropna(subset=["share"])
    by_uuid = {vm.uuid: vm for vm in vms}
    out: dict[str, ContentionSignal] = {}
    for uuid, g in frame.groupby("vm", sort=False):
        p95 = float(np.quantile(g["share"].to_numpy(), 0.95))
        high = float(np.nanmax(g["worst"].to_numpy())) if g["worst"].notna().any() else p95
        host = by_uuid[str(uuid)].host if str(uuid) in by_uuid else ""
        contended = p95 >= settings.contention_share
        reason = (f"vCPUs waited {p95:.0%} of their time for a host CPU on host {host!r} (P95 of hourly means, "
                  f"worst {high:.0%}; threshold {settings.contention_share:.0%}): starved by the host, not "
                  "undersized; no CPU upsize" if contended else
                  f"vCPU wait for a host CPU {p95:.0%} (P95 of hourly means) is below "
                  f"{settings.contention_share:.0%}")
        out[str(uuid)] = ContentionSignal(str(uuid), host, p95, high, contended, reason)
    return out


def pressure_signals(hours: pd.DataFrame, settings: SignalSettings, *, now: pd.Timestamp,
                     lookback_days: float) -> dict[str, PressureSignal]:
    """Per VM with swap/fault data: the hours whose worst interval swapped or faulted past the thresholds."""
    w = _window(hours, now, lookback_days)
    if w.empty:
        return {}
    swap = _num(w, "swap_max_bps")
    faults = _num(w, "major_faults_max_ps")
    known = swap.notna() | faults.notna()
    frame = pd.DataFrame({"vm": w["vm"].astype(str), "ts": pd.to_datetime(w["ts"], utc=True), "swap": swap,
                          "faults": faults})[known]
    out: dict[str, PressureSignal] = {}
    for uuid, g in frame.groupby("vm", sort=False):
        hot = (g["swap"].fillna(0) >= settings.pressure_swap_bps) | \
              (g["faults"].fillna(0) >= settings.pressure_major_faults_ps)
        stamps = tuple(float(t.timestamp()) for t in g.loc[hot, "ts"])
        smax, fmax = float(g["swap"].max(skipna=True) or 0.0), float(g["faults"].max(skipna=True) or 0.0)
        smax = 0.0 if math.isnan(smax) else smax
        fmax = 0.0 if math.isnan(fmax) else fmax
        reason = (f"memory pressure in {len(stamps)} hour(s): swap up to {smax / _MIB:.2f} MiB/s, major faults up "
                  f"to {fmax:.0f}/s (thresholds {settings.pressure_swap_bps / _MIB:.2f} MiB/s, "
                  f"{settings.pressure_major_faults_ps:.0f}/s): memory counts as fully used in those hours, so it "
                  "is not downsized" if stamps else "no swap or major-fault bursts")
        out[str(uuid)] = PressureSignal(str(uuid), stamps, smax, fmax, reason)
    return out


def memory_under_pressure(ts_s: np.ndarray, memory_used_bytes: np.ndarray, signal: PressureSignal | None,
                          allocation_bytes: int) -> np.ndarray:
    """The hourly memory-used series with pressured hours raised to the allocation (blocks a downsize)."""
    if signal is None or not signal.pressured or len(ts_s) == 0:
        return memory_used_bytes
    hot = np.isin(np.asarray(ts_s, dtype=float), np.asarray(signal.hours_s, dtype=float))
    used = np.asarray(memory_used_bytes, dtype=float).copy()
    used[hot] = np.fmax(used[hot], float(allocation_bytes))
    return used


def host_loads(vms: Sequence[VmRecord], host_cpus: Mapping[str, int],
               contention: Mapping[str, ContentionSignal]) -> list[HostLoad]:
    """Each host's vCPUs allocated to running VMs against its CPUs, and its VMs' mean delay share.

    The VMs are grouped by host in one pass (inventory order kept within a host): linear in the fleet, where
    a scan of every VM per host grows with hosts x VMs.
    """
    by_host: dict[str, list[VmRecord]] = {}
    for vm in vms:
        if vm.host:
            by_host.setdefault(vm.host, []).append(vm)
    out: list[HostLoad] = []
    for host in sorted(by_host):
        mine = by_host[host]
        allocated = sum(vm.vcpus for vm in mine if vm.state.value == "running")
        cpus = host_cpus.get(host)
        shares = [(contention[vm.uuid].delay_share, vm.vcpus) for vm in mine if vm.uuid in contention]
        weight = sum(v for _s, v in shares)
        out.append(HostLoad(
            host=host, host_cpus=cpus, vcpus_allocated=allocated,
            overcommit=allocated / cpus if cpus else None,
            delay_share=sum(s * v for s, v in shares) / weight if weight else None,
            contended_vms=tuple(vm.name for vm in mine if vm.uuid in contention and contention[vm.uuid].contended),
        ))
    return out


def storage_advice(hours: pd.DataFrame, vms: Sequence[VmRecord], prices: StoragePrices, current_class: str,
                   settings: SignalSettings, *, now: pd.Timestamp, lookback_days: float,
                   guest_fs_used: Mapping[str, float] | None = None) -> dict[str, StorageAdvice]:
    """Per VM with a known disk capacity: the class its P99 load needs and the capacity it never used."""
    w = _window(hours, now, lookback_days)
    if w.empty:
        return {}
    frame = pd.DataFrame({"vm": w["vm"].astype(str), "cap": _num(w, "disk_capacity_bytes"),
                          "alloc": _num(w, "disk_allocation_bytes"), "iops": _num(w, "disk_iops_p99"),
                          "bps": _num(w, "disk_bps_p99")})
    out: dict[str, StorageAdvice] = {}
    known = {vm.uuid for vm in vms}
    for uuid, g in frame.groupby("vm", sort=False):
        cap = g["cap"].dropna()
        if str(uuid) not in known or cap.empty:
            continue
        iops = _p99(g["iops"])
        bps = _p99(g["bps"])
        fs = (guest_fs_used or {}).get(str(uuid))
        alloc = g["alloc"].dropna()
        used, source = ((fs, "guest-agent") if fs is not None else
                        (float(alloc.iloc[-1]), "allocation") if not alloc.empty else (None, "unknown"))
        out[str(uuid)] = _advise(str(uuid), float(cap.iloc[-1]), used, source, iops, bps, prices, current_class,
                                 settings)
    return out


def _p99(values: pd.Series) -> float | None:
    v = values.dropna().to_numpy()
    return float(np.quantile(v, 0.99)) if len(v) else None


def needed_class(prices: StoragePrices, iops: float, bps: float) -> str | None:
    """The cheapest performance class whose published IOPS and throughput limits both cover the load."""
    fitting = [c for c, (max_iops, max_bps) in prices.class_limits.items() if max_iops >= iops and max_bps >= bps]
    return min(fitting, key=lambda c: prices.per_disk_hour.get(c, math.inf)) if fitting else None


def _advise(uuid: str, cap: float, used: float | None, source: str, iops: float | None, bps: float | None,
            prices: StoragePrices, current_class: str, settings: SignalSettings) -> StorageAdvice:
    cls = needed_class(prices, iops, bps) if iops is not None and bps is not None else None
    target_class = cls or current_class
    new_cap = cap
    if used is not None:
        wanted_gb = math.ceil(max(used * (1 + settings.storage_headroom), settings.storage_min_bytes) / 1e9)
        new_cap = min(cap, wanted_gb * 1e9)
    before = prices.disk_price_per_hour(cap, current_class) * HOURS_PER_MONTH
    after = prices.disk_price_per_hour(new_cap, target_class) * HOURS_PER_MONTH
    parts = []
    if iops is not None and bps is not None:
        parts.append(f"P99 {iops:.0f} IOPS and {bps / 1e6:.1f} MB/s need class {cls or 'beyond every class'}"
                     f" (now {current_class})")
    else:
        parts.append(f"disk load unknown: class stays {current_class}")
    if used is None:
        parts.append("capacity use unknown (no guest agent answered and no allocation reported)")
    else:
        parts.append(f"{used / 1e9:.1f} GB used of {cap / 1e9:.1f} GB ({source}); with "
                     f"{settings.storage_headroom:.0%} headroom {new_cap / 1e9:.0f} GB")
    return StorageAdvice(uuid, cap, used, source, iops, bps, current_class, cls, new_cap if used else None,
                         round(before, 2), round(after, 2), round(before - after, 2), prices.currency,
                         "; ".join(parts))


def add_storage_advice(findings: Sequence[VmFinding], advice: Mapping[str, StorageAdvice]) -> list[VmFinding]:
    """Attach each VM's storage advice; a saving names itself in the reasons."""
    out: list[VmFinding] = []
    for f in findings:
        a = advice.get(f.uuid)
        if a is None:
            out.append(f)
        else:
            out.append(replace(f, storage=a, reasons={**f.reasons, "storage": a.reason}))
    return out


def apply_contention(findings: Sequence[VmFinding], contention: Mapping[str, ContentionSignal]) -> list[VmFinding]:
    """Contended VMs get no CPU upsize: an upsize becomes the ``contention`` finding naming the host.

    The delay is measured directly, so a contended VM whose sizing history is still too short (or that
    fits its type) is reported as contended too; a downsize keeps its finding with the contention reason.
    """
    out: list[VmFinding] = []
    for f in findings:
        sig = contention.get(f.uuid)
        if sig is None or not sig.contended:
            out.append(f)
            continue
        upsize = f.finding is Finding.UNDER_PROVISIONED or (
            f.target_vcpus is not None and f.target_vcpus > f.current_vcpus)
        if upsize or f.finding in (Finding.OPTIMIZED, Finding.INSUFFICIENT_DATA):
            out.append(replace(f, finding=Finding.CONTENTION, target_type=None, target_vcpus=None,
                               target_memory_bytes=None, price_after_per_hour=None, monthly_savings=0.0,
                               savings_pct=0.0, action="none", options=(),
                               reasons={**f.reasons, "contention": sig.reason, "overall": sig.reason}))
        else:
            out.append(replace(f, reasons={**f.reasons, "contention": sig.reason}))
    return out


def add_pressure_reasons(findings: Sequence[VmFinding], pressure: Mapping[str, PressureSignal]) -> list[VmFinding]:
    """Name the memory pressure in the reasons of VMs that had it."""
    return [replace(f, reasons={**f.reasons, "memory_pressure": pressure[f.uuid].reason})
            if f.uuid in pressure and pressure[f.uuid].pressured else f for f in findings]
