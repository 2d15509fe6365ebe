"""Render result rows as a table, JSON or CSV (formula-safe) on a stream."""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import IO, Any

from analytics.textsafe import csv_safe

__all__ = ["FORMATS", "Output", "csv_safe"]
FORMATS = ("table", "json", "csv")


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):  # numpy scalar
        return _jsonable(value.item())
    return value


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-"
        return f"{value:.4f}" if abs(value) < 100 else f"{value:,.2f}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, Mapping):
        return ",".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


class Output:
    """Writes rows in the chosen format; tables get aligned columns."""

    def __init__(self, fmt: str = "table", stream: IO[str] | None = None) -> None:
        self.fmt = fmt
        self.stream = stream or sys.stdout

    def emit(self, data: Sequence[Mapping[str, Any]] | Mapping[str, Any], fmt: str | None = None,
             columns: Sequence[str] | None = None) -> None:
        fmt = fmt or self.fmt
        if fmt == "json":
            json.dump(_jsonable(data), self.stream, indent=2, sort_keys=False)
            self.stream.write("\n")
            return
        rows = [data] if isinstance(data, Mapping) else list(data)
        cols = list(columns or _columns(rows))
        if fmt == "csv":
            writer = csv.writer(self.stream, lineterminator="\n")
            writer.writerow(cols)
            for row in rows:
                writer.writerow([csv_safe(_csv_cell(row.get(c))) for c in cols])
            return
        cells = [[_cell(r.get(c)) for c in cols] for r in rows]
        widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(cols)]
        self.stream.write("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip() + "\n")
        for r in cells:
            self.stream.write("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() + "\n")


def _csv_cell(value: Any) -> Any:
    """Machine-readable CSV: plain numbers (no separators or rounding), ISO times, empty for unknown."""
    value = _jsonable(value)
    if value is None:
        return ""
    if isinstance(value, dict):
        return ";".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    return value


def _columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    cols: list[str] = []
    for r in rows:
        for k in r:
            if k not in cols:
                cols.append(k)
    return cols
