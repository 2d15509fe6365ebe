"""Machine-type price catalogues: which types exist, what they hold, what they cost per hour.

The default catalogue is STACKIT Compute Engine eu01 (single-AZ) in ``data/`` (installed as the package data
``rightsizer/data``); any CSV or TOML with the same columns can replace it (docs/catalogue.md). Memory as
published by the provider is nominal GB; we treat it as GiB (2**30 bytes) so that a VM with "8 GiB" fits an
"8 GB" type -- the provider does not say which it is.
"""

from __future__ import annotations

import bisect
import csv
import math
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, Field, ValidationError, field_validator

from collector.errors import InputError
from core.parsing import toml_loads

GIB = 1024**3
#: STACKIT publishes monthly = hourly x 720 (30 days x 24 h) for every machine type (prices.md).
HOURS_PER_MONTH = 720.0


def _data_dir() -> Path:
    """The price files: ``rightsizer/data`` of an installed package, else the checkout's top-level ``data/``."""
    from importlib.resources import files

    installed = Path(str(files("rightsizer").joinpath("data")))
    return installed if installed.is_dir() else Path(__file__).resolve().parent.parent / "data"


DATA_DIR = _data_dir()
DEFAULT_CATALOGUE = DATA_DIR / "stackit_eu01_machine_types.csv"
DEFAULT_STORAGE = DATA_DIR / "stackit_eu01_block_storage.csv"
CATALOGUES = {
    "stackit-eu01": DEFAULT_CATALOGUE,
    "aws-ap-southeast-2-2020": DATA_DIR / "aws_ec2_ap-southeast-2_2020.csv",
}
#: Categories that right-sizing never proposes (DESIGN.md: no GPU, beta, appliance or confidential types).
INELIGIBLE_CATEGORIES = frozenset({"gpu", "beta", "appliance", "confidential"})


@dataclass(frozen=True, slots=True)
class MachineType:
    """One machine type (flavor) and its pay-as-you-go price per hour."""

    name: str
    vcpus: int
    memory_bytes: int
    price_per_hour: float
    currency: str
    family: str = ""
    region: str = ""
    category: str = "standard"
    source: str = ""
    as_of: str = ""

    @property
    def generally_available(self) -> bool:
        return self.category not in INELIGIBLE_CATEGORIES

    @property
    def memory_gib(self) -> float:
        return self.memory_bytes / GIB

    @property
    def price_per_month(self) -> float:
        return self.price_per_hour * HOURS_PER_MONTH


class CatalogueRow(BaseModel):
    """One validated catalogue row (CSV or TOML)."""

    name: str = Field(min_length=1, description="machine type name, unique")
    vcpus: int = Field(gt=0, le=4096, description="virtual CPUs")
    memory_gib: float = Field(ge=1 / 32, le=65536, description="memory in GiB (nominal GB as published); "
                              "at least 32 MiB, the least a VM boots with")
    price_per_hour: float = Field(ge=0, le=10_000, description="pay-as-you-go price per hour")
    currency: str = Field(default="EUR", min_length=3, max_length=3)
    family: str = ""
    region: str = ""
    category: str = "standard"
    source: str = Field(min_length=1, description="where the price comes from")
    as_of: str = Field(min_length=1, description="date the price was read")

    @field_validator("price_per_hour")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v


class PriceCatalogue(Protocol):
    """A set of machine types with hourly prices."""

    def machine_types(self) -> Sequence[MachineType]: ...

    def get(self, name: str) -> MachineType | None: ...

    def cheapest_fitting(self, vcpus: float, memory_bytes: float) -> MachineType | None: ...


class CsvPriceCatalogue:
    """Catalogue loaded from a CSV or TOML file; rows validated, duplicates refused."""

    def __init__(self, types: Iterable[MachineType], *, path: Path | None = None) -> None:
        self._types = tuple(sorted(types, key=lambda t: (t.price_per_hour, t.vcpus, t.memory_bytes, t.name)))
        self._by_name = {t.name: t for t in self._types}
        self._eligible = tuple(t for t in self._types if t.generally_available)
        # fitting() depends on a request only through the smallest vCPU count and memory size of an
        # eligible type that cover it: the answers are kept per such pair (at most levels x levels)
        self._vcpu_levels = sorted({t.vcpus for t in self._eligible})
        self._memory_levels = sorted({t.memory_bytes for t in self._eligible})
        self._fits: dict[tuple[int, int], tuple[MachineType, ...]] = {}
        self.path = path
        self.currency = self._types[0].currency if self._types else "EUR"

    @classmethod
    def from_path(cls, path: Path | str) -> CsvPriceCatalogue:
        """Load and validate a catalogue file (.csv, or .toml with [[machine_type]] tables).

        Raises InputError naming file, line, field and value on the first bad row.
        """
        path = Path(path)
        if not path.is_file():
            raise InputError(f"Catalogue file {str(path)!r} not found; pass an existing CSV or TOML file")
        rows: list[tuple[int | str, dict[str, Any]]] = list(
            _toml_rows(path) if path.suffix.lower() == ".toml" else _csv_rows(path))
        types: list[MachineType] = []
        seen: dict[str, str] = {}
        for where, raw in rows:
            try:
                row = CatalogueRow.model_validate(raw)
            except ValidationError as exc:
                err = exc.errors()[0]
                field = ".".join(str(p) for p in err["loc"]) or "?"
                value = raw.get(field) if isinstance(raw, Mapping) else None
                raise InputError(
                    f"{path}:{where}: field {field!r} value {value!r}: {err['msg']}; fix the row or remove it"
                ) from exc
            if row.name in seen:
                raise InputError(
                    f"{path}:{where}: machine type {row.name!r} is listed twice (first at {seen[row.name]}); "
                    "keep one row per type"
                )
            seen[row.name] = str(where)
            types.append(
                MachineType(
                    name=row.name,
                    vcpus=row.vcpus,
                    memory_bytes=int(round(row.memory_gib * GIB)),
                    price_per_hour=row.price_per_hour,
                    currency=row.currency.upper(),
                    family=row.family,
                    region=row.region,
                    category=row.category.lower(),
                    source=row.source,
                    as_of=row.as_of,
                )
            )
        if not types:
            raise InputError(f"Catalogue {str(path)!r} has no machine types; add at least one row")
        currencies = {t.currency for t in types}
        if len(currencies) > 1:
            raise InputError(f"Catalogue {str(path)!r} mixes currencies {sorted(currencies)}; use one currency")
        return cls(types, path=path)

    def machine_types(self) -> Sequence[MachineType]:
        """Every type, cheapest first."""
        return self._types

    def eligible(self) -> Sequence[MachineType]:
        """Generally available types right-sizing may propose, cheapest first."""
        return self._eligible

    def get(self, name: str) -> MachineType | None:
        return self._by_name.get(name)

    def fitting(self, vcpus: float, memory_bytes: float, n: int = 3) -> list[MachineType]:
        """The ``n`` cheapest eligible types with at least ``vcpus`` vCPUs and ``memory_bytes`` memory.

        Same answer as :meth:`fitting_scan`, from a table keyed by the levels that cover the request.
        """
        if vcpus != vcpus or memory_bytes != memory_bytes:  # NaN: no type is at least NaN
            return []
        key = (bisect.bisect_left(self._vcpu_levels, vcpus - 1e-9),
               bisect.bisect_left(self._memory_levels, memory_bytes - 1))
        fits = self._fits.get(key)
        if fits is None:
            v_at, m_at = key
            if v_at >= len(self._vcpu_levels) or m_at >= len(self._memory_levels):
                fits = ()
            else:
                v, m = self._vcpu_levels[v_at], self._memory_levels[m_at]
                fits = tuple(t for t in self._eligible if t.vcpus >= v and t.memory_bytes >= m)
            self._fits[key] = fits
        return list(fits[:max(n, 1)])  # the scan keeps its first fit before it checks n

    def fitting_scan(self, vcpus: float, memory_bytes: float, n: int = 3) -> list[MachineType]:
        """:meth:`fitting` by scanning every eligible type (the reference the table is tested against)."""
        out: list[MachineType] = []
        for t in self._eligible:
            if t.vcpus >= vcpus - 1e-9 and t.memory_bytes >= memory_bytes - 1:
                out.append(t)
                if len(out) >= n:
                    break
        return out

    def cheapest_fitting(self, vcpus: float, memory_bytes: float) -> MachineType | None:
        """The cheapest eligible type covering ``vcpus`` and ``memory_bytes``; None when nothing is big enough."""
        found = self.fitting(vcpus, memory_bytes, n=1)
        return found[0] if found else None


def load_catalogue(path: Path | str | None = None) -> CsvPriceCatalogue:
    """Load a catalogue by path or by a built-in name (``stackit-eu01``); default STACKIT eu01."""
    if path is None:
        return CsvPriceCatalogue.from_path(DEFAULT_CATALOGUE)
    if isinstance(path, str) and path in CATALOGUES:
        return CsvPriceCatalogue.from_path(CATALOGUES[path])
    return CsvPriceCatalogue.from_path(path)


def _csv_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            required = {"name", "vcpus", "memory_gib", "price_per_hour", "source", "as_of"}
            missing = required - set(reader.fieldnames or ())
            if missing:
                raise InputError(
                    f"{path}:1: missing column(s) {', '.join(sorted(missing))}; "
                    f"a catalogue needs {', '.join(sorted(required))}"
                )
            return [(i + 2, {k: v for k, v in row.items() if k is not None and v not in (None, "")})
                    for i, row in enumerate(reader)]
    except UnicodeDecodeError as exc:
        raise InputError(f"Catalogue {str(path)!r} is not UTF-8 text; save it as UTF-8 CSV") from exc
    except csv.Error as exc:
        raise InputError(f"Catalogue {str(path)!r} is not valid CSV: {exc}") from exc


def _toml_rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    try:
        doc = toml_loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"Catalogue {str(path)!r} is not valid TOML: {exc}") from exc
    tables = doc.get("machine_type")
    if not isinstance(tables, list):
        raise InputError(f"Catalogue {str(path)!r} needs [[machine_type]] tables; none found")
    return [(f"machine_type[{i}]", dict(t)) for i, t in enumerate(tables)]


@dataclass(frozen=True, slots=True)
class StoragePrices:
    """Block-storage prices: capacity per GB-hour plus a flat per-disk performance-class fee."""

    per_gb_hour: float
    per_disk_hour: Mapping[str, float]
    currency: str
    default_class: str = "storage_premium_perf0"
    #: Performance-class limits from the same file: class -> (max IOPS, max throughput in bytes/s).
    class_limits: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def disk_price_per_hour(self, capacity_bytes: float, performance_class: str | None = None) -> float:
        """Hourly price of one volume: capacity (GB = 10**9 bytes as billed) plus its class fee."""
        fee = self.per_disk_hour.get(performance_class or self.default_class, 0.0)
        return capacity_bytes / 1e9 * self.per_gb_hour + fee


def load_storage_prices(path: Path | None = None) -> StoragePrices:
    """Read the block-storage price file (default STACKIT eu01). Raises InputError on a bad file."""
    path = path or DEFAULT_STORAGE
    if not path.is_file():
        raise InputError(f"Storage price file {str(path)!r} not found")
    per_gb: float | None = None
    fees: dict[str, float] = {}
    limits: dict[str, tuple[float, float]] = {}
    currency = "EUR"
    with path.open(newline="", encoding="utf-8") as fh:
        for i, row in enumerate(csv.DictReader(fh), start=2):
            try:
                price = float(row["price_per_unit_hour"])
            except (KeyError, TypeError, ValueError) as exc:
                raise InputError(
                    f"{path}:{i}: field 'price_per_unit_hour' value {row.get('price_per_unit_hour')!r} "
                    "is not a number"
                ) from exc
            currency = row.get("currency") or currency
            cls_ = row.get("class", "")
            if cls_ == "capacity":
                per_gb = price
            elif cls_.startswith("storage_premium_perf"):
                fees[cls_] = price
                if row.get("max_iops") and row.get("max_mb_s"):
                    # STACKIT publishes MB/s; taken as 10**6 bytes per second like its GB billing unit
                    limits[cls_] = (float(row["max_iops"]), float(row["max_mb_s"]) * 1e6)
    if per_gb is None:
        raise InputError(f"{path}: no 'capacity' row (price per GB-hour); add one")
    return StoragePrices(per_gb_hour=per_gb, per_disk_hour=fees, currency=currency, class_limits=limits)
