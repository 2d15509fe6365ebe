"""Small helpers over the store's long-format frames (pure; no I/O)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def numeric_column(frame: pd.DataFrame, name: str) -> np.ndarray:
    """Return column ``name`` as float64 with NaN for missing or non-numeric cells (all NaN when absent)."""
    if name not in frame.columns:
        return np.full(len(frame), np.nan)
    values: np.ndarray = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return values
