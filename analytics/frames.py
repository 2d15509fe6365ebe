"""Small helpers over the store's long-format frames (pure; no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd


def numeric_column(frame: pd.DataFrame, name: str, rows: slice | np.ndarray | None = None) -> np.ndarray:
    """Return column ``name`` as float64 with NaN for missing or non-numeric cells (all NaN when absent).

    ``rows`` (a slice or an index array) picks rows first, so a float32 column is gathered at its own width
    and converted once (float32 -> float64 is exact: the values are those of converting, then picking).
    """
    if name not in frame.columns:
        picked = range(len(frame)) if rows is None else range(len(frame))[rows] if isinstance(rows, slice) else rows
        return np.full(len(picked), np.nan)
    column = frame[name]
    if isinstance(column.dtype, np.dtype) and column.dtype.kind in "fiu":
        raw = column.to_numpy()
        picked = raw if rows is None else raw[rows]
        converted: np.ndarray = picked.astype(np.float64, copy=False)
        return converted
    values: np.ndarray = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return values if rows is None else values[rows]


def sorted_codes(values: pd.Series, *, compact: bool = False) -> tuple[np.ndarray, list[str]]:
    """Codes (int64) into the sorted distinct values of ``values`` as strings (``pd.factorize(sort=True)``).

    A categorical column is recoded from its categories (no per-row strings are made); unused categories
    are dropped, so the result is the same as factorizing the rows' string values. ``compact`` gives the
    codes in the smallest signed integer type that holds them, as a ``pd.Categorical`` stores its codes
    (``Categorical.from_codes`` then takes them without a copy).
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        raw = values.cat.codes.to_numpy()
        names = np.asarray(values.cat.categories.astype(str), dtype=object)
        used = np.flatnonzero(np.bincount(raw[raw >= 0], minlength=len(names)) > 0) if len(raw) else raw[:0]
        ranked = used[np.argsort(names[used], kind="stable")]
        recode = np.full(len(names), -1, dtype=code_dtype(len(ranked)) if compact else np.int64)
        recode[ranked] = np.arange(len(ranked), dtype=recode.dtype)
        return recode[raw], [str(n) for n in names[ranked]]
    codes, uniques = pd.factorize(values, sort=True)
    if not all(isinstance(u, str) for u in uniques):  # mixed types: order and merge them as strings
        codes, uniques = pd.factorize(values.astype(str), sort=True)
    dtype = code_dtype(len(uniques)) if compact else np.int64
    return codes.astype(dtype, copy=False), [str(u) for u in uniques]


def code_dtype(n_categories: int) -> type[np.signedinteger]:
    """The integer type ``pd.Categorical`` keeps codes in for ``n_categories`` categories (-1 = missing)."""
    for dtype in (np.int8, np.int16, np.int32):
        if n_categories < np.iinfo(dtype).max:
            return dtype
    return np.int64


def nan_to_num_lean(values: np.ndarray) -> np.ndarray:
    """``np.nan_to_num(values)`` (a new array: NaN -> 0, +-inf -> the largest finite values of a float
    type) in three cheap passes over a fleet-sized array instead of seven when all values are finite."""
    out: np.ndarray = np.array(values, copy=True)
    if out.dtype.kind not in "fc":
        return out
    bad = np.isfinite(out)
    np.logical_not(bad, out=bad)
    if bad.any():
        out[bad] = np.nan_to_num(out[bad])
    return out


def vm_time_order(codes: np.ndarray, ts: np.ndarray) -> slice | np.ndarray:
    """The row order sorting by (code, ts) stably: ``slice(None)`` when the rows are in that order already.

    Equal to ``np.lexsort((ts, codes))``. Stores return rows grouped by VM in time order, so the common
    cases cost linear checks: rows already in order, or each VM's rows in one time-ordered block with the
    blocks in another VM order (then the blocks are put in code order without sorting rows).
    """
    if len(codes) < 2:
        return slice(None)
    same = codes[1:] == codes[:-1]  # bool temporaries only: a fleet frame has tens of millions of rows
    in_time = ts[1:] >= ts[:-1]
    np.logical_or(in_time, ~same, out=in_time)
    if not in_time.all():
        return _lexsort(codes, ts)
    starts = np.concatenate([[0], np.flatnonzero(~same) + 1])
    block_codes = codes[starts]
    if len(block_codes) < 2 or bool((block_codes[1:] > block_codes[:-1]).all()):
        return slice(None)
    rank = np.argsort(block_codes, kind="stable")
    if bool((block_codes[rank][1:] == block_codes[rank][:-1]).any()):  # a VM in two blocks
        return _lexsort(codes, ts)
    lengths = np.diff(np.append(starts, len(codes)))[rank]
    new_starts = np.cumsum(lengths) - lengths
    order = np.repeat(starts[rank] - new_starts, lengths)
    order += np.arange(len(codes), dtype=order.dtype)
    return order


def _lexsort(codes: np.ndarray, ts: np.ndarray) -> np.ndarray:
    order: np.ndarray = np.lexsort((ts, codes))
    return order


def epoch_ns(values: pd.Series) -> np.ndarray:
    """Nanoseconds since the epoch (int64) of timestamps; naive values are taken as UTC.

    Datetime columns are read from their integer storage (no per-row time-zone work).
    """
    dtype = values.dtype
    if not (isinstance(dtype, pd.DatetimeTZDtype) or (isinstance(dtype, np.dtype) and dtype.kind == "M")):
        values = pd.to_datetime(values, utc=True)
    stamps = pd.DatetimeIndex(values)
    ns: np.ndarray = stamps.as_unit("ns").asi8
    return ns


def rows_since(frame: pd.DataFrame, start: pd.Timestamp) -> pd.DataFrame:
    """Rows with ``ts >= start`` (naive stamps are UTC); the frame itself, not a copy, when all qualify."""
    if frame.empty:
        return frame
    keep = epoch_ns(frame["ts"]) >= utc_timestamp(start).value
    return frame if keep.all() else frame[keep]


def utc_timestamp(value: datetime | pd.Timestamp) -> pd.Timestamp:
    """A UTC ``Timestamp`` (naive values are taken as UTC)."""
    stamp = pd.Timestamp(value)
    return stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)


def group_percentile(codes: np.ndarray, values: np.ndarray, n: int, q: float) -> np.ndarray:
    """Per-group ``np.percentile(values, q)`` (NaN for empty groups), equal to the per-group call.

    ``codes`` (0..n-1) must be sorted ascending with ``values`` aligned. Groups of the same size are
    stacked into one 2-D array and done in one call, so a fleet whose VMs share a history length costs
    a handful of numpy calls instead of one per VM.
    """
    counts = np.bincount(codes, minlength=n)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    out = np.full(n, np.nan)
    lengths = np.unique(counts[counts > 0])
    if len(lengths) == 1 and len(codes) == n * int(lengths[0]):  # one length for all: the rows as they lie
        result: np.ndarray = np.percentile(values.reshape(n, int(lengths[0])), q, axis=1)
        return result
    for length in lengths:
        members = np.flatnonzero(counts == length)
        block = values[starts[members, None] + np.arange(length)[None, :]]
        out[members] = np.percentile(block, q, axis=1)
    return out


def sorted_by_vm_and_time(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame in (vm, ts) order with a fresh 0..n-1 index, as a stable sort by those columns.

    Stores return rows in that order already; then only the order is checked (no copy of the rows).
    """
    if frame.empty:
        return frame.reset_index(drop=True)
    codes, _names = sorted_codes(frame["vm"])
    order = vm_time_order(codes, epoch_ns(frame["ts"]))
    if isinstance(order, slice):
        return frame.reset_index(drop=True)  # copy-on-write: no data is copied
    return frame.take(order).reset_index(drop=True)


def appearance_codes(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    """``pd.factorize(values, sort=False)``: codes into the distinct values in order of first appearance.

    A categorical column is recoded from its integer codes, without hashing every row.
    """
    if not isinstance(values.dtype, pd.CategoricalDtype):
        codes, uniques = pd.factorize(values, sort=False)
        return codes.astype(np.int64, copy=False), [str(u) for u in uniques]
    raw = values.cat.codes.to_numpy()  # its own width (int16/int32): a fleet frame has tens of millions of rows
    names = values.cat.categories
    ascending = len(raw) > 0 and bool((raw[1:] >= raw[:-1]).all()) and raw[0] >= 0
    if ascending:
        used = np.flatnonzero(np.bincount(raw, minlength=len(names)))  # sorted codes: appearance = code order
        if len(used) == len(names):  # every category used, in code order: the codes are the answer
            return raw.astype(np.int64), [str(n) for n in names]
    else:
        seen, first = np.unique(raw[raw >= 0], return_index=True)
        used = seen[np.argsort(first, kind="stable")]
    recode = np.full(len(names), -1, dtype=np.int64)
    recode[used] = np.arange(len(used), dtype=np.int64)
    return np.where(raw >= 0, recode[raw], -1), [str(names[i]) for i in used]


def window_rows(hours: pd.DataFrame, now: pd.Timestamp, lookback_days: float) -> pd.DataFrame:
    """The rows of ``hours`` in the ``lookback_days`` up to and including ``now``."""
    if hours.empty:
        return hours
    ts = pd.to_datetime(hours["ts"], utc=True)
    return hours[(ts >= now - pd.Timedelta(days=lookback_days)) & (ts <= now)]


def numeric_series(frame: pd.DataFrame, col: str) -> pd.Series:
    """Column ``col`` as float64 (NaN where missing or not a number; all NaN when the column is absent)."""
    if col not in frame.columns:
        return pd.Series(np.nan, index=frame.index, dtype="float64")
    return pd.to_numeric(frame[col], errors="coerce").astype("float64")
