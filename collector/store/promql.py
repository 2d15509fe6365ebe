"""PromQL source: the store read interface (collector/store/base.py) over a Prometheus-compatible query API.

The central role reads what agents (or the Go libvirt exporters) exported and a Prometheus, VictoriaMetrics,
Thanos, Mimir or Cortex keeps. Hourly rollups are computed by the engine (subqueries, ``*_over_time``; see
collector/store/promql_schema.py), never the raw points of a whole fleet. Long ranges and large fleets are split
into chunks within the server's limits: at most ``max_points_per_series`` steps per series per query (Prometheus
refuses more than 11,000) and about ``max_samples_per_query`` raw samples loaded per query (Prometheus'
``--query.max-samples`` defaults to 50 million).

What is not in the engine stays local: the audit log, metadata and backup times live in a small SQLite file
(``[store] path``) that the central role owns; writes of samples are refused (agents write, the engine stores).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from collector.errors import StoreError
from collector.model import SampleBatch, UsagePoint, VmRecord, VmState
from collector.store.base import HOUR_COLUMNS, AuditEntry, Counters, Resolution
from collector.store.promql_http import PromqlClient, PromqlInputError, Sample
from collector.store.promql_mapping import VmMapping
from collector.store.promql_schema import RULES, Schema, rollup_queries

log = logging.getLogger(__name__)

_HOUR_S = 3600
_EVAL_OFFSET_S = 0.001  # evaluate at H + 1h - 1 ms: subquery steps land on H, H+R, ... (see promql_schema)


@dataclass
class QueryStats:
    """Where the time went: engine (HTTP round trips) vs our code."""

    queries: int = 0
    engine_s: float = 0.0
    chunks: int = 0


@dataclass
class PromqlStore:
    """TimeSeriesStore reads over the PromQL HTTP API; audit/meta/backups in the ``local`` SQLite store."""

    client: PromqlClient
    schema: Schema
    local: Any  # SqliteStore (audit, meta, backups)
    matchers: str = ""
    resolution_s: int = 60
    history_days: float = 93.0
    max_points_per_series: int = 11_000
    max_samples_per_query: int = 20_000_000
    use_rules: str = "auto"  # auto | always | never (recording rules)
    host_uris: Mapping[str, str] = field(default_factory=dict)
    mapping: VmMapping = field(default_factory=VmMapping)
    clock: Any = time.time
    stats: QueryStats = field(default_factory=QueryStats)
    _rules: bool | None = None
    _warned: set[str] = field(default_factory=set)

    @property
    def path(self) -> str:
        return f"{self.client.url} ({self.schema.name} series{', ' + self.matchers if self.matchers else ''})"

    # -- checks ---------------------------------------------------------------------------------
    def check(self) -> None:
        """Fail fast on a wrong URL, credentials or a server that is not Prometheus-compatible."""
        self.client.labels()

    def rules_present(self) -> bool:
        """True when the shipped recording rules' series exist (and ``use_rules`` allows them)."""
        if self.use_rules == "never" or self.schema.name != "rightsizer":
            return False
        if self._rules is None:
            if self.use_rules == "always":
                self._rules = True
            else:
                now = self.clock()
                found = self.client.series(self._sel(RULES["cpu_p95_vcpus"]), now - 2 * _HOUR_S, now)
                self._rules = bool(found)
                log.info("recording rules %s", "found: reading hourly rollups" if found else "absent: subqueries")
        return self._rules

    # -- writes are the agents' job -------------------------------------------------------------
    def write(self, batch: SampleBatch, points: Sequence[UsagePoint], counters: Sequence[Counters]) -> None:
        raise StoreError(f"{self.path} is read-only here: agents write samples, the engine stores them")

    def write_history(self, vms: Sequence[VmRecord], points: Iterable[UsagePoint]) -> int:
        raise StoreError(f"{self.path} is read-only: import history into the engine (see README 'Running on many "
                         "hosts'), not through the PromQL source")

    def counters(self) -> dict[str, Counters]:
        return {}

    def prune(self, now: datetime) -> int:
        return 0

    def refresh_rollups(self) -> None:
        """Nothing to do: the engine computes rollups at query time (or its recording rules do)."""

    # -- local parts ----------------------------------------------------------------------------
    def record_backups(self, vm_uuid: str, times: Sequence[datetime], kind: str = "snapshot") -> None:
        self.local.record_backups(vm_uuid, times, kind)

    def backups(self) -> dict[str, datetime]:
        return dict(self.local.backups())

    def append_audit(self, entry: AuditEntry) -> int:
        return int(self.local.append_audit(entry))

    def audit(self, vm_uuid: str | None = None) -> list[AuditEntry]:
        return list(self.local.audit(vm_uuid))

    def get_meta(self, key: str) -> str | None:
        value: str | None = self.local.get_meta(key)
        return value

    def set_meta(self, key: str, value: str) -> None:
        self.local.set_meta(key, value)

    def close(self) -> None:
        self.local.close()

    # -- reads ----------------------------------------------------------------------------------
    def _sel(self, metric: str) -> str:
        return f"{metric}{{{self.matchers}}}" if self.matchers else metric

    def _range(self, expr: str, start_s: float, end_s: float, step_s: float) -> list[Sample]:
        before_q, before_s = self.client.queries, self.client.seconds
        try:
            return self.client.query_range(expr, start_s, end_s, step_s)
        finally:
            self.stats.queries += self.client.queries - before_q
            self.stats.engine_s += self.client.seconds - before_s

    def _instant(self, expr: str, at_s: float) -> list[Sample]:
        before_q, before_s = self.client.queries, self.client.seconds
        try:
            return self.client.query(expr, at_s)
        finally:
            self.stats.queries += self.client.queries - before_q
            self.stats.engine_s += self.client.seconds - before_s

    def time_range(self) -> tuple[datetime, datetime] | None:
        """Oldest and newest sample of the inventory series within ``history_days``, to the second.

        Cheap passes of ``count(count_over_time(...))``: the days with data, then within the first and last of
        them the hour, the minute and the second (at most 60 points per query).
        """
        now = self.clock()
        day = 86400.0
        probe = self._sel(self.schema.vcpus)
        start = math.floor((now - self.history_days * day) / day) * day + day
        end = math.floor(now / day) * day + day
        days = self._steps(probe, start, end, day)
        if not days:
            return None
        edges = []
        for first, t in ((True, days[0]), (False, days[-1])):
            step = day
            for finer in (3600.0, 60.0, 1.0):
                found = self._steps(probe, t - step, t, finer)
                if not found:
                    return None
                t, step = (found[0] if first else found[-1]), finer
            edges.append(t)
        return _utc(edges[0]), _utc(edges[1])

    def _steps(self, probe: str, lo: float, hi: float, step: float) -> list[float]:
        """Evaluation times in ``(lo, hi]`` (multiples of ``step``) whose window ``(t - step, t]`` has samples."""
        start = math.floor(lo / step) * step + step
        window = f"{int(step)}s"
        found = self._range(f"count(count_over_time({probe}[{window}]))", start, hi, step)
        return sorted(t for s in found for t, v in zip(s.ts_s, s.values, strict=True) if v > 0)

    def frame(self, start: datetime, end: datetime, *, resolution: Resolution = "hour",
              vms: Collection[str] | None = None) -> pd.DataFrame:
        """Hourly rollups with ``start <= ts < end`` (``ts`` = start of the hour), computed by the engine."""
        if resolution != "hour":
            raise StoreError(f"resolution {resolution!r}: the PromQL source serves hourly rollups only")
        first_h = math.ceil(start.timestamp() / _HOUR_S) * _HOUR_S
        last_h = math.ceil(end.timestamp() / _HOUR_S) * _HOUR_S - _HOUR_S
        if last_h < first_h:
            return _empty_hours()
        queries = rollup_queries(self.schema, matchers=self.matchers, resolution_s=self.resolution_s,
                                 rules=self.rules_present())
        columns: dict[str, pd.Series] = {}
        for h0, h1 in self._chunks(first_h, last_h, subqueries=queries.subqueries):
            self.stats.chunks += 1
            for col, expr in queries.by_column.items():
                part = self._rows(expr, col, h0, h1, queries.identity)
                columns[col] = part if col not in columns else pd.concat([columns[col], part])
        frame = _assemble(columns)
        if vms is not None:
            frame = frame[frame["vm"].isin(set(vms))].reset_index(drop=True)
        return frame

    def _chunks(self, first_h: float, last_h: float, *, subqueries: bool) -> list[tuple[float, float]]:
        """Hour ranges that keep each query within the points and samples limits."""
        fleet = max(1, len(self._inventory_series(first_h, last_h + _HOUR_S)))
        per_hour = fleet * _HOUR_S / self.resolution_s
        hours = int(max(1, min(self.max_points_per_series, self.max_samples_per_query // max(per_hour, 1.0))))
        if subqueries:  # a subquery's inner steps over the chunk (plus its 1h window) count as points per series
            hours = max(1, min(hours, int(self.max_points_per_series * self.resolution_s // _HOUR_S) - 1))
        out = []
        h = first_h
        while h <= last_h:
            nxt = min(last_h, h + (hours - 1) * _HOUR_S)
            out.append((h, nxt))
            h = nxt + _HOUR_S
        return out

    def _rows(self, expr: str, col: str, h0: float, h1: float, ident: str) -> pd.Series:
        result = self._range(expr, h0 + _HOUR_S - _EVAL_OFFSET_S, h1 + _HOUR_S - _EVAL_OFFSET_S, _HOUR_S)
        keys: list[np.ndarray] = []
        stamps: list[np.ndarray] = []
        values: list[np.ndarray] = []
        for s in result:
            vm = s.labels.get(ident, "")
            if not vm:
                self._warn_once(f"series without {ident!r} label in query {expr!r} ({col}); skipped. Relabel the "
                                f"scrape so every series carries {ident!r}")
                continue
            ts = np.floor(np.asarray(s.ts_s, dtype=np.float64) / _HOUR_S) * _HOUR_S
            keys.append(np.full(len(ts), vm, dtype=object))
            stamps.append(ts)
            values.append(np.asarray(s.values, dtype=np.float64))
        if not keys:  # named like a full part: concatenating chunks keeps the column's name
            return pd.Series(dtype="float64", index=pd.MultiIndex.from_arrays([[], []], names=["vm", "ts"]),
                             name=col)
        index = pd.MultiIndex.from_arrays([np.concatenate(keys), np.concatenate(stamps)], names=["vm", "ts"])
        return pd.Series(np.concatenate(values), index=index, name=col)

    def _warn_once(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            log.warning("%s: %s", self.client.url, message)

    def _inventory_series(self, start_s: float, end_s: float) -> dict[str, dict[str, str]]:
        """uuid -> one label set of the identity series seen between start and end (index lookup only)."""
        out: dict[str, dict[str, str]] = {}
        for labels in self.client.series(self._sel(self.schema.info), start_s, end_s):
            ident = labels.get(self.schema.uuid_label, "")
            if not ident:
                self._warn_once(f"series {labels!r} has no {self.schema.uuid_label!r} label; skipped")
                continue
            out.setdefault(ident, labels)
        return out

    def vms(self) -> list[VmRecord]:
        """Every VM with identity series in the last ``history_days``: newest labels and allocation."""
        now = self.clock()
        start = now - self.history_days * 86400.0
        inventory = self._inventory_series(start, now)
        if not inventory:
            return []
        latest = self._latest(now, window=f"{_HOUR_S}s")
        missing = [u for u in inventory if u not in latest.get("vcpus", {})]
        if missing:
            span = int(self.history_days * 86400)
            older = self._latest(now, window=f"{span}s", only=missing)
            for key, values in older.items():
                for u, v in values.items():
                    latest.setdefault(key, {}).setdefault(u, v)
        return sorted((self._record(u, labels, latest, now) for u, labels in inventory.items()),
                      key=lambda r: r.name)

    def _latest(self, now: float, *, window: str, only: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
        ident = self.schema.uuid_label
        extra = f'{ident}=~"{"|".join(only)}"' if only else ""
        m = ",".join(x for x in (self.matchers, extra) if x)

        def sel(metric: str) -> str:
            return f"{metric}{{{m}}}" if m else metric

        out: dict[str, dict[str, Any]] = {"info": {}}
        for s in self._instant(f"last_over_time({sel(self.schema.info)}[{window}])", now):
            if s.labels.get(ident):
                out["info"][s.labels[ident]] = dict(s.labels)
        metrics = {"vcpus": self.schema.vcpus, "memory_bytes": self.schema.memory_bytes}
        if self.schema.running:
            metrics["running"] = self.schema.running
        if self.schema.name == "rightsizer":
            metrics["max_memory_bytes"] = "rightsizer_vm_memory_max_bytes"
        for key, metric in metrics.items():
            found = self._instant(f"max by ({ident}) (last_over_time({sel(metric)}[{window}]))", now)
            out[key] = {s.labels[ident]: s.values[0] for s in found if s.labels.get(ident)}
        return out

    def _record(self, uuid: str, series_labels: Mapping[str, str], latest: Mapping[str, Mapping[str, Any]],
                now: float) -> VmRecord:
        sch = self.schema
        labels = dict(latest["info"].get(uuid) or series_labels)
        name = labels.get(sch.name_label) or uuid
        host = labels.get("host") or labels.get(sch.host_label) or ""
        vm_labels = {k[len("label_"):]: v for k, v in labels.items() if k.startswith("label_") and v}
        if labels.get("machine_type"):
            vm_labels["machine_type"] = labels["machine_type"]
        vm_labels.update(self.mapping.labels_for(uuid, name))
        vcpus = int(latest.get("vcpus", {}).get(uuid, 0) or 0)
        memory = int(latest.get("memory_bytes", {}).get(uuid, 0) or 0)
        running = latest.get("running", {}).get(uuid)
        if running is None:
            state = VmState(labels["state"]) if labels.get("state") in {s.value for s in VmState} else (
                VmState.RUNNING if uuid in latest.get("vcpus", {}) else VmState.SHUTOFF)
        else:
            state = VmState.RUNNING if running >= 0.5 else VmState.SHUTOFF
        return VmRecord(
            uuid=uuid, name=name, uri=self.host_uris.get(host, labels.get("uri", "")), host=host, state=state,
            vcpus=vcpus, max_vcpus=vcpus, memory_bytes=memory,
            max_memory_bytes=int(latest.get("max_memory_bytes", {}).get(uuid, memory) or memory),
            labels=vm_labels, first_seen=_utc(now - self.history_days * 86400.0), last_seen=_utc(now),
            source="prometheus",
        )


def _utc(ts_s: float) -> datetime:
    return datetime.fromtimestamp(ts_s, tz=UTC)


def _empty_hours() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype="float64") for c in HOUR_COLUMNS})
    frame["vm"] = frame["vm"].astype(object)
    frame["ts"] = pd.to_datetime(frame["ts"].astype("int64"), unit="s", utc=True)
    return frame


def _assemble(columns: Mapping[str, pd.Series]) -> pd.DataFrame:
    """One row per (vm, hour) that any column has, in the hour-frame column order, sorted by vm then ts."""
    parts = [s.groupby(level=[0, 1]).max() for s in columns.values() if len(s)]
    if not parts:
        return _empty_hours()
    joined = pd.concat(parts, axis=1).sort_index()
    joined = joined.reset_index()
    frame = pd.DataFrame({"vm": joined["vm"].astype(object),
                          "ts": pd.to_datetime(joined["ts"].astype("int64"), unit="s", utc=True)})
    for col in HOUR_COLUMNS[2:]:
        frame[col] = joined[col].astype("float64") if col in joined.columns else np.nan
    return frame[list(HOUR_COLUMNS)]


__all__ = ["PromqlStore", "PromqlInputError", "QueryStats"]
