"""Bitbrains trace files for tests: one row per sample, written under the real header."""

from __future__ import annotations

from pathlib import Path

from analytics.traces import BITBRAINS_COLUMNS

HEADER = ";\t".join(label for label, _ in BITBRAINS_COLUMNS)
T0 = 1375308176  # 2013-07-31T22:02:56Z, epoch seconds despite the "[ms]" label
_GIB_IN_KIB = 1024**2
_MHZ_PER_CORE = 2600.0


def trace_row(ts: object = T0, cores: object = 2, cap: float = 5200.0, use: float = 1300.0,
              mem_kib: object = 4194304.0, used_kib: float = 1048576.0) -> str:
    """One row in the file's units (MHz, KiB); ``ts``, ``cores`` and ``mem_kib`` take bad values as given."""
    pct = 100.0 * use / cap if cap else 0.0
    return ";\t".join(str(v) for v in (ts, cores, cap, use, pct, mem_kib, used_kib, 1.0, 2.0, 3.0, 4.0))


def usage_row(ts: int, cores: int, cpu_vcpus: float, mem_gib: float, used_gib: float) -> str:
    """One row of a VM using ``cpu_vcpus`` of ``cores`` 2.6 GHz cores and ``used_gib`` of ``mem_gib`` GiB."""
    cap = _MHZ_PER_CORE * cores
    use = cpu_vcpus * _MHZ_PER_CORE
    return ";\t".join(str(v) for v in (ts, cores, cap, use, 100 * use / cap, mem_gib * _GIB_IN_KIB,
                                        used_gib * _GIB_IN_KIB, 0.0, 0.0, 0.0, 0.0))


def write_trace(path: Path, rows: list[str]) -> Path:
    """Write ``rows`` under the header to ``path`` (parents created); return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path
