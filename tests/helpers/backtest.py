"""A two-VM Bitbrains trace and a five-type catalogue whose backtest results are computed by hand."""

from __future__ import annotations

from pathlib import Path

from analytics.catalogue import MachineType
from tests.helpers.bitbrains import HEADER, usage_row
from tests.helpers.catalogues import FOUR_TYPES

GIB = 1024**3
T0 = 1375308000  # 2013-07-31T22:00:00Z: on the hour, so hourly rows are whole hours


def write_two_vm_trace(d: Path) -> Path:
    """Write the trace into folder ``d`` (created) and return it.

    VM 1: 4 cores, 16 GiB, hourly rows for 20 days. Training (first 14 days = 336 rows): 0.5 vCPU, 1 GiB.
    Evaluation (144 rows): the same, except 10 hours at 2.5 vCPU and 3 hours at 2.5 GiB.
    VM 2: 1 core, 2 GiB, only 20 hours of data: insufficient, keeps its type, not evaluated.
    """
    d.mkdir(parents=True)
    rows = []
    for i in range(480):
        cpu, used = 0.5, 1.0
        if 336 <= i < 346:
            cpu = 2.5
        if 400 <= i < 403:
            used = 2.5
        rows.append(usage_row(T0 + 3600 * i, 4, cpu, 16, used))
    (d / "1.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    rows = [usage_row(T0 + 3600 * i, 1, 0.2, 2, 0.5) for i in range(20)]
    (d / "2.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    return d


def backtest_types() -> list[MachineType]:
    """s.1 < s.2 < m.2 < l.4 by price, and a GPU type cheaper than all that must never be chosen."""
    return [
        MachineType("gpu.1", 64, 512 * GIB, 0.001, "EUR", category="gpu"),
        *FOUR_TYPES,
    ]


def write_catalogue(folder: Path) -> Path:
    """Write ``backtest_types()`` as a catalogue CSV (``--catalogue``) into ``folder``; return its path."""
    lines = ["name,vcpus,memory_gib,price_per_hour,currency,category,source,as_of"]
    for t in backtest_types():
        lines.append(f"{t.name},{t.vcpus},{t.memory_bytes / GIB:g},{t.price_per_hour},EUR,{t.category},test,2026-01-01")
    path = folder / "types.csv"
    path.write_text("\n".join(lines) + "\n")
    return path
