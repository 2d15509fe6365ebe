"""Write stored history as the agent's own series, for backfilling a Prometheus-compatible engine.

The output is the Prometheus text format with millisecond timestamps (what VictoriaMetrics'
``/api/v1/import/prometheus`` takes) or OpenMetrics with second timestamps and ``# EOF`` (what
``promtool tsdb create-blocks-from openmetrics`` takes). Series and labels are those of collector/exporter.py,
so the PromQL source reads a backfill exactly as it reads live agents.

Counters are rebuilt from the per-interval rates: ``cpu_seconds_total`` grows by ``cpu_vcpus * interval_s`` at
each row. A row whose interval does not start at the previous row (the first row, or after a gap) also gets a
counter sample at its interval's start, so ``irate`` at the row gives back exactly the stored rate.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from collector.model import VmRecord

_LABEL_KEY = re.compile(r"[^a-zA-Z0-9_]")
_COUNTERS = (
    ("rightsizer_vm_cpu_seconds_total", "cpu_vcpus", ""),
    ("rightsizer_vm_disk_read_bytes_total", "disk_read_bps", "vda"),
    ("rightsizer_vm_disk_write_bytes_total", "disk_write_bps", "vda"),
    ("rightsizer_vm_network_receive_bytes_total", "net_rx_bps", "net0"),
    ("rightsizer_vm_network_transmit_bytes_total", "net_tx_bps", "net0"),
)
_GAUGES = (
    ("rightsizer_vm_vcpus", "vcpus"),
    ("rightsizer_vm_memory_bytes", "memory_bytes"),
    ("rightsizer_vm_memory_used_bytes", "memory_used_bytes"),
    ("rightsizer_vm_cpu_usage_vcpus", "cpu_vcpus"),
)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Mapping[str, str]) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs.items()) + "}"


def info_labels(vm: VmRecord, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Labels of ``rightsizer_vm_info`` for a stored VM (as the exporter writes them)."""
    out = {"vm": vm.name, "uuid": vm.uuid, "host": vm.host, "uri": vm.uri, "state": vm.state.value,
           "machine_type": vm.labels.get("machine_type", "")}
    for k, v in vm.labels.items():
        if k not in ("vm", "uuid", "host", "uri", "machine_type", "state"):
            out["label_" + _LABEL_KEY.sub("_", k)] = v
    out.update(extra or {})
    return out


def history_lines(vms: Sequence[VmRecord], raw: pd.DataFrame, *, openmetrics: bool = False,
                  extra_labels: Mapping[str, str] | None = None) -> Iterator[str]:
    """Exposition lines for every VM's raw rows (``ts`` datetime64 UTC; columns as the store's raw frame)."""
    by_uuid = {vm.uuid: vm for vm in vms}
    scale = 1 if openmetrics else 1000
    for uuid, rows in raw.sort_values(["vm", "ts"], kind="stable").groupby("vm", sort=False):
        vm = by_uuid.get(str(uuid))
        if vm is None:
            continue
        ts_s = (rows["ts"].astype("datetime64[ns, UTC]").astype("int64") // 1_000_000_000).to_numpy()
        stamps = [str(int(t) * scale) for t in ts_s]
        base = {"vm": vm.name, "uuid": vm.uuid, "host": vm.host, **(extra_labels or {})}
        info = _labels(info_labels(vm, extra_labels))
        # identity once per hour is enough for the inventory (series/last_over_time over >= 1h)
        last = len(stamps) - 1
        yield from (f"rightsizer_vm_info{info} 1 {t}" for i, (t, s) in enumerate(zip(stamps, ts_s, strict=True))
                    if i == last or s % 3600 < 300)
        running = (rows["state"].astype(str) == "running").to_numpy()
        lab = _labels(base)
        yield from (f"rightsizer_vm_running{lab} {int(r)} {t}" for r, t in zip(running, stamps, strict=True))
        for metric, col in _GAUGES:
            values = pd.to_numeric(rows[col], errors="coerce").to_numpy(dtype=np.float64)
            yield from (f"{metric}{lab} {float(v)!r} {t}" for v, t in zip(values, stamps, strict=True)
                        if math.isfinite(v))
        interval = pd.to_numeric(rows["interval_s"], errors="coerce").fillna(0.0).to_numpy(dtype=np.float64)
        for metric, col, device in _COUNTERS:
            rates = pd.to_numeric(rows[col], errors="coerce").to_numpy(dtype=np.float64)
            if not np.isfinite(rates).any():
                continue
            clab = _labels({**base, "device": device}) if device else lab
            yield from _counter(metric + clab, ts_s, rates, interval, scale)


def _counter(series: str, ts_s: np.ndarray, rates: np.ndarray, interval: np.ndarray, scale: int) -> Iterator[str]:
    total = 0.0
    prev_ts: float | None = None
    for t, rate, step in zip(ts_s, rates, interval, strict=True):
        start = float(t) - float(step)
        # a row whose interval starts before the previous row (timestamps jitter around a nominal interval, e.g. a
        # trace's 299 s between two 300 s rows) continues the counter: a reset point there would go back in time
        if step > 0 and (prev_ts is None or start > prev_ts):
            yield f"{series} {total!r} {int(start * scale)}"
        if math.isfinite(rate):
            total += float(rate) * float(step)
        yield f"{series} {total!r} {int(t) * scale}"
        prev_ts = float(t)
