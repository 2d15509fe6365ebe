"""Inventory rows and raw 5-minute history for a SQLite store, from 2026-05-01 00:00 UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from collector.model import VmRecord, VmState
from collector.store.base import RAW_COLUMNS

T0 = datetime(2026, 5, 1, tzinfo=UTC)


def vm_record(uuid: str, name: str, vcpus: int, gib: int, host: str, **labels: str) -> VmRecord:
    """A running VM of ``vcpus`` and ``gib`` GiB on the test driver, seen from T0 for 10 hours."""
    return VmRecord(uuid=uuid, name=name, uri="test:///default", host=host, state=VmState.RUNNING, vcpus=vcpus,
                    max_vcpus=vcpus, memory_bytes=gib * 2**30, max_memory_bytes=gib * 2**30, labels=labels,
                    first_seen=T0, last_seen=T0 + timedelta(hours=10))


def raw_history(uuid: str, vcpus: int, gib: int, capacity_bytes: float, hours: int = 10) -> pd.DataFrame:
    """``hours`` of 5-minute samples from T0, all running at 0.2 vCPU, with ``capacity_bytes`` of disk."""
    n = hours * 12
    frame = pd.DataFrame({c: np.full(n, np.nan) for c in RAW_COLUMNS})
    frame["vm"] = uuid
    frame["ts"] = pd.date_range(T0, periods=n, freq="5min", tz="UTC")
    frame["state"] = "running"
    frame["vcpus"] = float(vcpus)
    frame["memory_bytes"] = float(gib * 2**30)
    frame["cpu_vcpus"] = 0.2
    frame["interval_s"] = 300.0
    frame["disk_capacity_bytes"] = capacity_bytes
    frame["gap"] = False
    return frame
