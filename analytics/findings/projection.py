"""Projected utilisation: the lookback's hourly demand replayed against a proposed size.

For every hour with data, CPU utilisation on the target is the hour's peak demand (``cpu_max_vcpus``, the
busiest 5-minute sample) divided by the target's vCPUs, and memory utilisation the hour's peak memory used
divided by the target's memory. An hour "over 100 % CPU" is one in which at least one sample would have
wanted more vCPUs than the target has (the guest would have been CPU-saturated for part of it); an hour
"over 90 % memory" is one in which the guest would have used more than 90 % of the target's memory (little
room left for the page cache). These are the facts that set a resize's risk (:mod:`analytics.findings.risk`)
and what the VM page draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: An hour whose peak CPU demand exceeds this share of the target's vCPUs counts as saturated.
CPU_OVER_FRACTION = 1.0
#: An hour whose peak memory used exceeds this share of the target's memory counts as tight.
MEMORY_OVER_FRACTION = 0.9


@dataclass(frozen=True, slots=True)
class Projection:
    """Hourly utilisation on a target size (percent, NaN where unknown) and the hours over the limits."""

    hour_s: np.ndarray
    cpu_pct: np.ndarray
    memory_pct: np.ndarray
    target_vcpus: int
    target_memory_bytes: int
    hours: int
    hours_cpu_over: int
    hours_memory_over: int
    memory_known: bool

    @property
    def hours_over(self) -> int:
        """Hours with CPU over 100 % or memory over 90 % of the target (an hour counts once)."""
        cpu = self.cpu_pct > CPU_OVER_FRACTION * 100.0  # NaN compares False: unknown is not over
        mem = self.memory_pct > MEMORY_OVER_FRACTION * 100.0
        return int(np.count_nonzero(cpu | mem))

    def summary(self) -> str:
        mem = (f"{self.hours_memory_over} h over {MEMORY_OVER_FRACTION:.0%} memory" if self.memory_known
               else "memory use unknown")
        return (f"replaying {self.hours} h of the lookback on {self.target_vcpus} vCPU / "
                f"{self.target_memory_bytes / 1024**3:.2f} GiB: {self.hours_cpu_over} h over "
                f"{CPU_OVER_FRACTION:.0%} CPU, {mem}")


def project_utilisation(
    hour_s: np.ndarray,
    cpu_peak_vcpus: np.ndarray,
    memory_used_bytes: np.ndarray,
    *,
    target_vcpus: int,
    target_memory_bytes: int,
) -> Projection:
    """Replay hourly peaks (vCPUs, bytes; NaN = no data) against a target size.

    Hours without CPU data are dropped. Raises ValueError for a target without vCPUs or memory, or arrays
    of different lengths.
    """
    if target_vcpus < 1 or target_memory_bytes < 1:
        raise ValueError(f"target size {target_vcpus} vCPU / {target_memory_bytes} bytes must be positive")
    ts = np.asarray(hour_s, dtype=np.float64)
    cpu = np.asarray(cpu_peak_vcpus, dtype=np.float64)
    mem = np.asarray(memory_used_bytes, dtype=np.float64)
    if not len(ts) == len(cpu) == len(mem):
        raise ValueError(f"projection arrays differ in length: {len(ts)}, {len(cpu)}, {len(mem)}")
    keep = ~np.isnan(cpu)
    ts, cpu, mem = ts[keep], cpu[keep], mem[keep]
    cpu_pct = cpu / target_vcpus * 100.0
    mem_pct = mem / target_memory_bytes * 100.0
    return Projection(
        hour_s=ts,
        cpu_pct=cpu_pct,
        memory_pct=mem_pct,
        target_vcpus=int(target_vcpus),
        target_memory_bytes=int(target_memory_bytes),
        hours=len(ts),
        hours_cpu_over=int(np.count_nonzero(cpu_pct > CPU_OVER_FRACTION * 100.0)),
        hours_memory_over=int(np.count_nonzero(mem_pct > MEMORY_OVER_FRACTION * 100.0)),
        memory_known=bool(np.any(~np.isnan(mem))),
    )


def project_fleet(
    bounds: np.ndarray,
    hour_s: np.ndarray,
    cpu_peak_vcpus: np.ndarray,
    memory_used_bytes: np.ndarray,
    groups: np.ndarray,
    target_vcpus: np.ndarray,
    target_memory_bytes: np.ndarray,
    *,
    start_s: float,
) -> list[Projection]:
    """:func:`project_utilisation` of many VMs in one pass over a fleet's columns, the same results.

    The columns hold the fleet's hours sorted by VM; rows ``bounds[g]:bounds[g + 1]`` are group ``g``.
    ``groups`` picks the VMs (ascending), ``target_*`` their targets (integers >= 1), and only hours at or
    after ``start_s`` are replayed. One projection per picked group, in order; their arrays are views into
    one compact copy of the picked rows.
    """
    if len(groups) == 0:
        return []
    first, lengths = bounds[groups], bounds[groups + 1] - bounds[groups]
    rows = np.repeat(first - (np.cumsum(lengths) - lengths), lengths) + np.arange(int(lengths.sum()))
    owner = np.repeat(np.arange(len(groups)), lengths)
    ts, cpu = hour_s[rows], cpu_peak_vcpus[rows]
    keep = (ts >= start_s) & ~np.isnan(cpu)
    owner, ts, cpu, mem = owner[keep], ts[keep], cpu[keep], memory_used_bytes[rows][keep]
    vcpus = np.asarray(target_vcpus, dtype=np.int64)
    memory = np.asarray(target_memory_bytes, dtype=np.int64)
    # elementwise, as the per-VM call divides by its integer target: the same float64 results
    cpu_pct = cpu / vcpus.astype(np.float64)[owner] * 100.0
    mem_pct = mem / memory.astype(np.float64)[owner] * 100.0
    m = len(groups)
    hours = np.bincount(owner, minlength=m)
    cpu_over = np.bincount(owner[cpu_pct > CPU_OVER_FRACTION * 100.0], minlength=m)
    mem_over = np.bincount(owner[mem_pct > MEMORY_OVER_FRACTION * 100.0], minlength=m)
    known = np.bincount(owner[~np.isnan(mem)], minlength=m) > 0
    ends = np.cumsum(hours)
    out: list[Projection] = []
    for g, (a, b) in enumerate(zip((ends - hours).tolist(), ends.tolist(), strict=True)):
        out.append(Projection(hour_s=ts[a:b], cpu_pct=cpu_pct[a:b], memory_pct=mem_pct[a:b],
                              target_vcpus=int(vcpus[g]), target_memory_bytes=int(memory[g]), hours=b - a,
                              hours_cpu_over=int(cpu_over[g]), hours_memory_over=int(mem_over[g]),
                              memory_known=bool(known[g])))
    return out
