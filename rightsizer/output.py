"""Render result rows as a table, JSON or CSV (formula-safe) on a stream."""

from __future__ import annotations

import csv
import json
import math
import re
import sys
import textwrap
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import IO, Any

from collector.model import natural_key
from core.textsafe import csv_safe, terminal_safe

__all__ = ["FORMATS", "Output", "csv_safe", "natural_key", "render_table"]
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


#: Widest table the CLI prints before it wraps text columns.
TABLE_WIDTH = 120
_MIN_TEXT_WIDTH = 8
_NUMBER_TEXT = re.compile(r"^-?[\d,]+(\.\d+)?$")

def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def column_decimals(values: Sequence[Any]) -> int:
    """Decimals for a numeric column: 0 when every value is whole, else enough for its smallest value (2..4)."""
    finite = [float(v) for v in values if _is_number(v) and math.isfinite(v)]
    if all(v.is_integer() for v in finite):
        return 0
    smallest = min(abs(v) for v in finite if v != 0)
    return 2 if smallest >= 0.1 else min(4, 2 - math.floor(math.log10(smallest)))


def _cell(value: Any, decimals: int | None = None) -> str:
    if value is None:
        return "-"
    if isinstance(value, float | int) and not isinstance(value, bool):
        if not math.isfinite(value):
            return "-"
        return f"{value:,.{decimals}f}" if decimals is not None else f"{value:,}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, Mapping):
        return ",".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def _words(name: str) -> list[str]:
    """A field name's pieces, each keeping its trailing ``_`` (``price_per_hour`` -> price_, per_, hour)."""
    return [part for part in re.split(r"(?<=_)", name) if part]


def _wrap_name(name: str, width: int) -> list[str]:
    lines: list[str] = []
    for word in _words(name):
        if lines and len(lines[-1]) + len(word) <= width:
            lines[-1] += word
        else:
            lines.extend(textwrap.wrap(word, width) or [""])
    return lines


def _wrap_text(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width, break_long_words=True, break_on_hyphens=False) or [""]


def _fit(widths: list[int], floors: list[int], limit: int) -> list[int]:
    """Narrow the widest columns (the first, the row's identity, last) down to their floors to fit ``limit``."""
    widths = list(widths)
    while sum(widths) + 2 * (len(widths) - 1) > limit:
        narrowable = [i for i, w in enumerate(widths) if w > floors[i]]
        if not narrowable:
            break
        rest = [i for i in narrowable if i > 0] or narrowable
        widths[max(rest, key=lambda i: widths[i])] -= 1
    return widths


def render_table(cols: Sequence[str], rows: Sequence[Mapping[str, Any]], *, width: int = TABLE_WIDTH) -> str:
    """Aligned text table: fixed decimals per numeric column, numbers right-aligned, text and headers wrapped.

    Headers wrap after their ``_``; a number is never wrapped.
    """
    numeric = [any(_is_number(r.get(c)) for r in rows) and all(r.get(c) is None or _is_number(r.get(c))
                                                               for r in rows) for c in cols]
    # columns of numbers already formatted by the command (fixed decimals) are right-aligned too
    shown = [all(isinstance(r.get(c), str) and _NUMBER_TEXT.match(r[c]) or r.get(c) in (None, "-") for r in rows)
             and any(isinstance(r.get(c), str) and _NUMBER_TEXT.match(r[c]) for r in rows) for c in cols]
    decimals = [column_decimals([r.get(c) for r in rows]) if numeric[i] else None for i, c in enumerate(cols)]
    cells = [[terminal_safe(_cell(r.get(c), decimals[i])) for i, c in enumerate(cols)] for r in rows]
    heads = list(cols)
    longest = [max([0] + [len(r[i]) for r in cells]) for i in range(len(cols))]
    natural = [max(len(h), n) for h, n in zip(heads, longest, strict=True)]
    word = [max(len(part) for part in _words(h)) if h else 1 for h in heads]
    floors = [max(n, min(w, 6)) if numeric[i] else min(natural[i], max(_MIN_TEXT_WIDTH, min(w, 12)))
              for i, (n, w) in enumerate(zip(longest, word, strict=True))]
    if sum(floors) + 2 * (len(cols) - 1) > width:
        return _records(heads, cells, width)
    widths = _fit(natural, floors, width)
    lines: list[str] = []
    for header, row in ((True, heads), *((False, r) for r in cells)):
        wrap = _wrap_name if header else _wrap_text
        wrapped = [wrap(v, w) if len(v) > w else [v] for v, w in zip(row, widths, strict=True)]
        for k in range(max(len(parts) for parts in wrapped)):
            parts = [p[k] if k < len(p) else "" for p in wrapped]
            line = "  ".join(v.rjust(w) if (numeric[i] or shown[i]) and not header else v.ljust(w)
                             for i, (v, w) in enumerate(zip(parts, widths, strict=True)))
            lines.append(line.rstrip())
    return "\n".join(lines) + "\n"


def _records(heads: Sequence[str], cells: Sequence[Sequence[str]], width: int) -> str:
    """Too many columns for ``width``: one block per row, a ``field  value`` line per column (values wrapped)."""
    key_w = max(len(h) for h in heads)
    lines: list[str] = []
    for n, row in enumerate(cells, start=1):
        lines.append(f"-[ {n} ]".ljust(min(width, 40), "-"))
        for head, value in zip(heads, row, strict=True):
            parts = textwrap.wrap(value, width - key_w - 2, break_on_hyphens=False) or [""]
            lines.append(f"{head.ljust(key_w)}  {parts[0]}".rstrip())
            lines.extend(f"{'':{key_w}}  {part}" for part in parts[1:])
    return "\n".join(lines) + "\n"


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
        self.stream.write(render_table(cols, rows))


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
