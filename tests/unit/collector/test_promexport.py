"""Backfill lines: counters rebuilt from rates give the stored rates back; gauges as stored."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd

from collector.model import VmRecord, VmState
from collector.store.promexport import history_lines


def _vm() -> VmRecord:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    return VmRecord(uuid="u1", name="web", uri="test:///x", host="hv1", state=VmState.RUNNING, vcpus=2, max_vcpus=2,
                    memory_bytes=4 << 30, max_memory_bytes=4 << 30, labels={"team": "a b", "machine_type": "c1.2"},
                    first_seen=t, last_seen=t)


def _raw(ts_s: list[int], cpu: list[float]) -> pd.DataFrame:
    n = len(ts_s)
    return pd.DataFrame({
        "vm": ["u1"] * n, "ts": pd.to_datetime(ts_s, unit="s", utc=True), "state": ["running"] * n,
        "vcpus": [2] * n, "memory_bytes": [4 << 30] * n, "cpu_vcpus": cpu, "memory_used_bytes": [1e9] * n,
        "disk_read_bps": [np.nan] * n, "disk_write_bps": [np.nan] * n, "net_rx_bps": [np.nan] * n,
        "net_tx_bps": [np.nan] * n, "interval_s": [300.0] * n,
    })


def _series(lines: list[str], name: str) -> list[tuple[float, float]]:
    out = []
    for line in lines:
        if line.startswith(name + "{"):
            _, value, stamp = line.rsplit(" ", 2)
            out.append((int(stamp) / 1000, float(value)))
    return out


def test_counter_deltas_give_back_the_rates_across_a_gap():
    # rows at 300, 600, then a gap, then 1500: the row after the gap gets its own interval start
    lines = list(history_lines([_vm()], _raw([300, 600, 1500], [0.5, 1.0, 2.0])))
    counter = _series(lines, "rightsizer_vm_cpu_seconds_total")
    assert counter == [(0.0, 0.0), (300.0, 150.0), (600.0, 450.0), (1200.0, 450.0), (1500.0, 1050.0)]
    rates = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(counter, counter[1:], strict=False)]
    assert rates == [0.5, 1.0, 0.0, 2.0]  # the 0.0 is the gap itself, which no row ends
    assert _series(lines, "rightsizer_vm_cpu_usage_vcpus") == [(300.0, 0.5), (600.0, 1.0), (1500.0, 2.0)]
    assert _series(lines, "rightsizer_vm_vcpus") == [(300.0, 2.0), (600.0, 2.0), (1500.0, 2.0)]


def test_rows_closer_than_their_interval_keep_the_counter_in_time_order():
    # a trace row 299 s after the previous one whose rate covers a nominal 300 s: no point before the previous row
    lines = list(history_lines([_vm()], _raw([300, 599, 900], [0.5, 1.0, 2.0])))
    counter = _series(lines, "rightsizer_vm_cpu_seconds_total")
    stamps = [t for t, _ in counter]
    assert stamps == sorted(set(stamps)) == [0.0, 300.0, 599.0, 600.0, 900.0]
    assert [v for _, v in counter] == [0.0, 150.0, 450.0, 450.0, 1050.0]  # every row's rate x interval counted


def test_info_labels_escape_and_carry_machine_type():
    lines = list(history_lines([_vm()], _raw([300], [0.5]), extra_labels={"cluster": "a"}))
    info = next(x for x in lines if x.startswith("rightsizer_vm_info{"))
    assert 'machine_type="c1.2"' in info and 'label_team="a b"' in info and 'cluster="a"' in info
    assert "label_machine_type" not in info
