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
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from analytics.frames import numeric_series, window_rows
from analytics.rightsizing.base import Finding
from analytics.storage import StorageAdvice
from collector.model import VmRecord
from core.settings import SignalSettings

if TYPE_CHECKING:
    from analytics.findings.finding import VmFinding

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


def contention_signals(hours: pd.DataFrame, vms: Sequence[VmRecord], settings: SignalSettings, *,
                       now: pd.Timestamp, lookback_days: float) -> dict[str, ContentionSignal]:
    """Per VM with delay data: the P95 hourly delay share and whether it is contended (``contention_share``)."""
    w = window_rows(hours, now, lookback_days)
    if w.empty:
        return {}
    vcpus = numeric_series(w, "vcpus").where(lambda v: v > 0)
    share = numeric_series(w, "cpu_delay_mean_vcpus") / vcpus
    worst = numeric_series(w, "cpu_delay_max_vcpus") / vcpus
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
    w = window_rows(hours, now, lookback_days)
    if w.empty:
        return {}
    swap = numeric_series(w, "swap_max_bps")
    faults = numeric_series(w, "major_faults_max_ps")
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
