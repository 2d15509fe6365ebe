"""A small EUR catalogue of four general-purpose types, for tests whose prices are worked out by hand."""

from __future__ import annotations

from analytics.catalogue import CsvPriceCatalogue, MachineType

GIB = 1024**3
#: s.1 (1 vCPU, 1 GiB, 0.01/h) < s.2 (2, 2 GiB, 0.02) < m.2 (2, 8 GiB, 0.06) < l.4 (4, 16 GiB, 0.12).
FOUR_TYPES: tuple[MachineType, ...] = (
    MachineType("s.1", 1, GIB, 0.01, "EUR"),
    MachineType("s.2", 2, 2 * GIB, 0.02, "EUR"),
    MachineType("m.2", 2, 8 * GIB, 0.06, "EUR"),
    MachineType("l.4", 4, 16 * GIB, 0.12, "EUR"),
)


def small_catalogue() -> CsvPriceCatalogue:
    """A catalogue of ``FOUR_TYPES``."""
    return CsvPriceCatalogue(list(FOUR_TYPES))
