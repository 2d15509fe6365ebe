"""Fetched SQLite rows decoded chunk by chunk straight into one growable numpy array per column.

A month of a large fleet is tens of millions of rows. Decoding each fetched chunk into its own arrays and
joining them at the end holds every chunk and the joined copy at once (twice the frame), and the chunks'
small arrays, interleaved on the heap with the rows' Python objects, are not handed back to the system
afterwards. Here each column is one array allocated once at the expected size (its untouched tail is never
resident) and filled in place; text columns (VM UUIDs, states) are kept as int32 codes into one string per
distinct value until the end.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np
import pandas as pd


class ColumnBuffers:
    """Columns ``cols`` of rows appended chunk by chunk; ``text`` columns coded, ``ts`` int64 epoch seconds,
    ``gap`` bool, the rest float64 (NULL -> NaN)."""

    def __init__(self, cols: Sequence[str], text: Collection[str], capacity_rows: int) -> None:
        self._cols = tuple(cols)
        self._text = frozenset(c for c in cols if c in text)
        self._numeric = [i for i, c in enumerate(self._cols) if c not in self._text and c not in ("ts", "gap")]
        self._codes: dict[str, dict[str, int]] = {c: {} for c in self._text}
        self._capacity = max(int(capacity_rows), 1)
        self._data: dict[str, np.ndarray] = {c: np.empty(self._capacity, dtype=self._dtype(c)) for c in self._cols}
        self.rows = 0

    def _dtype(self, col: str) -> type:
        if col in self._text:
            return np.int32
        return {"ts": np.int64, "gap": np.bool_}.get(col, np.float64)

    def _reserve(self, more: int) -> None:
        """Room for ``more`` rows: each column moved to one twice as large (one column at a time)."""
        needed = self.rows + more
        if needed <= self._capacity:
            return
        self._capacity = max(needed, 2 * self._capacity)
        for col, old in self._data.items():
            new = np.empty(self._capacity, dtype=old.dtype)
            new[: self.rows] = old[: self.rows]
            self._data[col] = new
            del old

    def append(self, rows: Sequence[tuple[object, ...]]) -> None:
        """Decode ``rows`` (tuples in column order) into the columns, through one object array."""
        if not rows:
            return
        self._reserve(len(rows))
        grid = np.array(rows, dtype=object)
        part = slice(self.rows, self.rows + len(rows))
        for i in self._numeric:
            self._data[self._cols[i]][part] = grid[:, i]  # None -> NaN
        for i, col in enumerate(self._cols):
            if col in self._text:
                self._data[col][part] = self._coded(col, grid[:, i])
            elif col in ("ts", "gap"):
                self._data[col][part] = grid[:, i]
        self.rows += len(rows)

    def _coded(self, col: str, values: np.ndarray) -> np.ndarray:
        """Codes of ``values`` into the column's distinct strings (-1 for NULL), new strings coded as they come."""
        local, uniques = _factorize(values)
        known = self._codes[col]
        lookup = np.array([known.setdefault(u, len(known)) for u in uniques] + [-1], dtype=np.int32)
        coded: np.ndarray = lookup[local]
        return coded

    def columns(self) -> dict[str, np.ndarray]:
        """The columns so far (views of the buffers); text columns as object arrays sharing one string per
        distinct value (None for NULL). The buffers are released: call once."""
        out: dict[str, np.ndarray] = {}
        for col in self._cols:
            data = self._data.pop(col)[: self.rows]
            if col in self._text:
                strings = np.array([*self._codes[col], None], dtype=object)
                out[col] = strings[data]  # code -1 picks the trailing None
            else:
                out[col] = data
        return out


def _factorize(values: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Codes into the distinct non-NULL values of an object array (-1 for None), values in first-seen order."""
    codes, uniques = pd.factorize(values)
    return codes, [str(u) for u in uniques]
