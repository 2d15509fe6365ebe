"""``rightsizer catalogue check``: every problem of a price file, one line each, naming row and column.

Two kinds of file are recognised by their header: a machine-type catalogue (``name, vcpus, memory_gib,
price_per_hour, ...``; CSV, or TOML with ``[[machine_type]]`` tables) and a block-storage price list
(``class, price_per_unit_hour, ...``). Loading a catalogue stops at its first bad row; this check reads on and
reports them all. The format is documented in docs/catalogue.md.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from analytics.catalogue import INELIGIBLE_CATEGORIES, CatalogueRow, _toml_rows
from collector.errors import InputError

MACHINE_REQUIRED = ("name", "vcpus", "memory_gib", "price_per_hour", "source", "as_of")
MACHINE_KNOWN = frozenset(CatalogueRow.model_fields) | {"hardware", "cpu_overprovisioning", "sku"}
STORAGE_REQUIRED = ("class", "price_per_unit_hour")
#: The classes the block-storage price list understands: ``capacity`` (per GB-hour) and performance classes.
STORAGE_CLASS_PREFIX = "storage_premium_perf"
KNOWN_CATEGORIES = frozenset({"standard"}) | INELIGIBLE_CATEGORIES


@dataclass(frozen=True)
class CheckResult:
    path: Path
    kind: str  # "machine types" | "block storage"
    rows: int
    currency: str
    errors: tuple[str, ...]
    notes: tuple[str, ...]


def check_file(path: Path | str) -> CheckResult:
    """Check a price file; InputError only when it cannot be read at all (missing, not text, no header)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"price file {str(p)!r} not found; pass an existing CSV or TOML file")
    if p.suffix.lower() == ".toml":
        return _check_machine_rows(p, _toml_rows(p))
    try:
        with p.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in reader.fieldnames or ()]
            rows = [(i + 2, {k.strip(): (v or "").strip() for k, v in row.items() if k is not None})
                    for i, row in enumerate(reader)]
    except UnicodeDecodeError as exc:
        raise InputError(f"price file {str(p)!r} is not UTF-8 text; save it as UTF-8 CSV") from exc
    except csv.Error as exc:
        raise InputError(f"price file {str(p)!r} is not valid CSV: {exc}; fix the quoting") from exc
    if not header:
        raise InputError(f"price file {str(p)!r} is empty; it needs a header row (see docs/catalogue.md)")
    if "price_per_unit_hour" in header:
        return _check_storage_rows(p, header, rows)
    missing = [c for c in MACHINE_REQUIRED if c not in header]
    if missing:
        return CheckResult(p, "machine types", len(rows), "", (
            f"{p}:1: missing column(s) {', '.join(missing)}; a machine-type catalogue needs "
            f"{', '.join(MACHINE_REQUIRED)} (a storage price list needs {', '.join(STORAGE_REQUIRED)})",), ())
    notes = tuple(f"{p}:1: column {c!r} is not used by rightsizer (ignored)" for c in header
                  if c not in MACHINE_KNOWN)
    result = _check_machine_rows(p, [(line, {k: v for k, v in row.items() if v != ""}) for line, row in rows])
    return CheckResult(p, result.kind, result.rows, result.currency, result.errors, notes + result.notes)


def _check_machine_rows(path: Path, rows: list[tuple[Any, dict[str, Any]]]) -> CheckResult:
    errors: list[str] = []
    notes: list[str] = []
    seen: dict[str, Any] = {}
    currencies: dict[str, Any] = {}
    for where, raw in rows:
        try:
            row = CatalogueRow.model_validate(raw)
        except ValidationError as exc:
            for err in exc.errors():
                column = ".".join(str(x) for x in err["loc"]) or "?"
                value = raw.get(column) if isinstance(raw, Mapping) else None
                shown = "(empty)" if value is None else repr(value)
                errors.append(f"{path}:{where}: column {column!r} value {shown}: {err['msg']}")
            continue
        if row.name in seen:
            errors.append(f"{path}:{where}: column 'name' value {row.name!r}: listed twice (first at "
                          f"{seen[row.name]}); keep one row per type")
        seen.setdefault(row.name, where)
        currencies.setdefault(row.currency.upper(), where)
        if row.category.lower() not in KNOWN_CATEGORIES:
            notes.append(f"{path}:{where}: column 'category' value {row.category!r} is not one of "
                         f"{', '.join(sorted(KNOWN_CATEGORIES))}; treated as generally available")
    if len(currencies) > 1:
        mixed = ", ".join(f"{c} (first at {w})" for c, w in currencies.items())
        errors.append(f"{path}: column 'currency' mixes {mixed}; use one currency per file")
    if not rows:
        errors.append(f"{path}: no machine types; add at least one row")
    return CheckResult(path, "machine types", len(rows), next(iter(currencies), ""), tuple(errors), tuple(notes))


def _check_storage_rows(path: Path, header: list[str], rows: list[tuple[int, dict[str, str]]]) -> CheckResult:
    errors = [f"{path}:1: missing column {c!r}" for c in STORAGE_REQUIRED if c not in header]
    currencies: dict[str, int] = {}
    capacity = 0
    for line, row in rows:
        cls = row.get("class", "")
        price = row.get("price_per_unit_hour", "")
        try:
            value = float(price)
            if not math.isfinite(value) or value < 0:
                raise ValueError
        except ValueError:
            errors.append(f"{path}:{line}: column 'price_per_unit_hour' value {price!r}: must be a number >= 0")
        if not cls:
            errors.append(f"{path}:{line}: column 'class' is empty: name the class ('capacity' or "
                          f"'{STORAGE_CLASS_PREFIX}N')")
        capacity += cls == "capacity"
        if cls.startswith(STORAGE_CLASS_PREFIX):
            for column in ("max_iops", "max_mb_s"):
                text = row.get(column, "")
                if text and not _positive(text):
                    errors.append(f"{path}:{line}: column {column!r} value {text!r}: must be a number > 0")
        if row.get("currency"):
            cur = row["currency"]
            if len(cur) != 3 or not cur.isalpha():
                errors.append(f"{path}:{line}: column 'currency' value {cur!r}: must be a 3-letter ISO 4217 code")
            currencies.setdefault(cur.upper(), line)
    if capacity != 1:
        errors.append(f"{path}: needs exactly one row with class 'capacity' (price per GB-hour), found {capacity}")
    if len(currencies) > 1:
        errors.append(f"{path}: column 'currency' mixes {', '.join(sorted(currencies))}; use one currency per file")
    return CheckResult(path, "block storage", len(rows), next(iter(currencies), "EUR"), tuple(errors), ())


def _positive(text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return math.isfinite(value) and value > 0
