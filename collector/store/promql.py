"""PromQL source: the store read interface (collector/store/base.py) over a Prometheus-compatible query API.

The central role reads what agents (or the Go libvirt exporters) exported and a Prometheus, VictoriaMetrics,
Thanos, Mimir or Cortex keeps. Hourly rollups are computed by the engine (subqueries, ``*_over_time``; see
collector/store/promql_schema.py), never the raw points of a whole fleet. Long ranges and large fleets are split
into chunks within the server's limits: at most ``max_points_per_series`` steps per series per query (Prometheus
refuses more than 11,000) and about ``max_samples_per_query`` raw samples loaded per query (Prometheus'
``--query.max-samples`` defaults to 50 million).

What is not in the engine stays local: the audit log, metadata and backup times live in a small SQLite file
(``[store] path``) that the central role owns; writes of samples are refused (agents write, the engine stores).

Why one module above 500 lines: it is one class, the PromQL source, whose reads share one chunking and
resolution discipline; the series schema and queries (``promql_schema.py``), the HTTP client
(``promql_http.py``) and the label mapping (``promql_mapping.py``) live apart.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from collector.errors import StoreError
from collector.model import SampleBatch, UsagePoint, VmRecord, VmState
from collector.store.base import HOUR_COLUMNS, AuditEntry, Counters, Resolution
from collector.store.jsonmeta import HOST_CPUS_KEY, read_json_meta
from collector.store.promql_http import Matrix, PromqlClient, PromqlInputError, Sample
from collector.store.promql_mapping import VmMapping
from collector.store.promql_schema import RULES, Schema, rollup_queries
from core.dismissals import Dismissal

log = logging.getLogger(__name__)

_HOUR_S = 3600
_MAX_NAMED_BYTES = 8000  # longest uuid=~"a|b|..." alternation a query carries
_OLDEST_TTL_S = 300.0  # how long frame() trusts time_range's oldest sample to skip the empty hours before it
_HOST_CPUS_WINDOW_S = 86400  # a host's CPU count changes rarely; its last day of samples is enough
_EVAL_OFFSET_S = 0.001  # evaluate at H + 1h - 1 ms: subquery steps land on H, H+R, ... (see promql_schema)


#: Windows over which the sample interval is measured, longest first: N samples in W give W / N, off by at most one
#: sample (1 in 72 at 300-s samples over 6 h).
_INTERVAL_WINDOWS_S = (6 * _HOUR_S, _HOUR_S)
#: A VM counts when it has samples in the first this-many seconds of the window (its series covers the window).
_EDGE_S = 600
#: Collection intervals people configure; a measured interval within 10 % of one of them is taken as that one.
COMMON_INTERVALS_S = (1, 2, 5, 10, 15, 20, 30, 60, 120, 180, 300, 600, 900, 1800, 3600)


def snap_interval(measured_s: float) -> float:
    """``measured_s`` rounded to the nearest common interval when within 10 % of it, else to the second."""
    nearest = min(COMMON_INTERVALS_S, key=lambda c: abs(c - measured_s))
    return float(nearest) if abs(nearest - measured_s) <= 0.1 * nearest else float(round(measured_s))


@dataclass
class QueryStats:
    """How many time chunks :meth:`PromqlStore.frame` split its reads into (queries and seconds: the client's
    ``timing``)."""

    chunks: int = 0


@dataclass
class PromqlStore:
    """TimeSeriesStore reads over the PromQL HTTP API; audit/meta/backups in the ``local`` SQLite store."""

    client: PromqlClient
    schema: Schema
    local: Any  # SqliteStore (audit, meta, backups)
    matchers: str = ""
    resolution_s: int = 60
    #: False when ``[source] resolution_s`` was not set: the sample interval measured in the data is used instead
    resolution_explicit: bool = True
    history_days: float = 93.0
    max_points_per_series: int = 11_000
    max_samples_per_query: int = 20_000_000
    use_rules: str = "auto"  # auto | always | never (recording rules)
    host_uris: Mapping[str, str] = field(default_factory=dict)
    mapping: VmMapping = field(default_factory=VmMapping)
    concurrency: int = 2  # range queries in flight at once
    clock: Any = time.time
    stats: QueryStats = field(default_factory=QueryStats)
    _rules: bool | None = None
    _oldest: tuple[float, float] | None = None  # (oldest sample, when seen) from time_range
    _warned: set[str] = field(default_factory=set)
    _adapted: bool = False
    _cpu_fallback: bool = False  # some VMs lack the CPU gauge: per VM, the gauge's rollup or the counter's
    measured_interval_s: float | None = None

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

    def adapt_to_data(self) -> None:
        """Once, before the first rollup: read CPU from the counter when the per-cycle gauge is absent, and take
        the sample interval from the data (``resolution_s`` unset) or warn when the configured one does not fit.
        """
        if self._adapted:
            return
        self._adapted = True
        now = self.clock()
        start = now - self.history_days * 86400.0
        gauge = self.schema.cpu_usage
        if gauge:
            ident = self.schema.uuid_label
            with_gauge = {s.get(ident) for s in self.client.series(self._sel(gauge), start, now)}
            if not with_gauge:
                log.warning("%s: series %s is absent: CPU is computed from the rate of %s (agents of another "
                            "version, or a relabel that drops the gauge)", self.client.url, gauge,
                            self.schema.cpu_seconds)
                self.schema = dataclasses.replace(self.schema, cpu_usage="")
            else:
                counter = {s.get(ident): s for s in self.client.series(self._sel(self.schema.cpu_seconds), start, now)}
                without = sorted(str(s.get(self.schema.name_label) or u) for u, s in counter.items()
                                 if u not in with_gauge)
                if without:
                    log.warning("%s: series %s is absent for %d of %d VMs (%s): their CPU is computed from the rate "
                                "of %s", self.client.url, gauge, len(without), len(counter),
                                ", ".join(without[:5]) + (" ..." if len(without) > 5 else ""),
                                self.schema.cpu_seconds)
                    self._cpu_fallback = True
        measured = self.sample_interval_s(now)
        self.measured_interval_s = measured
        if measured is None or abs(measured - self.resolution_s) <= 0.1 * self.resolution_s:
            return
        if self.resolution_explicit:
            log.warning("%s: [source] resolution_s = %d but %s is sampled every %.0f s (measured): per-interval rates "
                        "and running time are off; set resolution_s = %.0f or remove it to use the measured interval",
                        self.client.url, self.resolution_s, self.schema.cpu_seconds, measured, measured)
            return
        log.info("%s: sample interval %.0f s measured on %s; using it as resolution_s", self.client.url, measured,
                 self.schema.cpu_seconds)
        self.resolution_s = int(round(measured))

    def sample_interval_s(self, now: float | None = None) -> float | None:
        """The collection interval in the data: a window over the largest number of distinct CPU counter values any
        VM has in it, snapped to a common interval within 10 %. Changes count, not samples: a counter scraped more
        often than it is collected repeats its value. The busiest VM counts, not the median: an idle VM's counter
        stands still for whole cycles. Only VMs with samples at the window's start count (a VM whose series began
        inside it would look sampled less often). Windows: 6 h, else 1 h (a younger deployment); measured at
        ``now``, else at the newest sample. None when no VM's counter moved.
        """
        now = self.clock() if now is None else now
        counter = self._sel(self.schema.cpu_seconds)
        exprs = [(w, f"max(changes({counter}[{w}s]) and count_over_time({counter}[{_EDGE_S}s] offset {w - _EDGE_S}s))")
                 for w in _INTERVAL_WINDOWS_S]
        for at in (now, None):
            if at is None:
                oldest = self._oldest
                span = self.time_range()
                self._oldest = oldest  # a probe: frame() trusts only the time_range its caller asked for
                if span is None:
                    return None
                at = span[1].timestamp()
            for window, expr in exprs:
                found = self._instant(expr, at)
                if found and found[0].values and math.isfinite(found[0].values[0]) and found[0].values[0] > 0:
                    return snap_interval(window / (found[0].values[0] + 1))
        return None

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

    def dismissals(self) -> list[Dismissal]:
        """Dismissals live in the local SQLite file beside the engine, like the audit log."""
        return list(self.local.dismissals())

    def dismiss(self, dismissal: Dismissal) -> None:
        self.local.dismiss(dismissal)

    def restore(self, vm_uuid: str, *, actor: str, at: datetime, kind: str | None = None) -> list[Dismissal]:
        return list(self.local.restore(vm_uuid, actor=actor, at=at, kind=kind))

    def get_meta(self, key: str) -> str | None:
        """The local meta entry; for ``host_cpus`` merged with the agents' ``rightsizer_host_cpus`` (newer)."""
        value: str | None = self.local.get_meta(key)
        if key != HOST_CPUS_KEY or not self.schema.host_cpus:
            return value
        from_engine = self.host_cpus()
        if not from_engine:
            return value
        doc = {**read_json_meta(self.local, key), **from_engine}
        return json.dumps(doc, sort_keys=True)

    def host_cpus(self) -> dict[str, int]:
        """Logical CPUs per host as the agents last exported them within ``_HOST_CPUS_WINDOW_S`` (libvirt
        getInfo on each agent). Empty when the schema has no such series or the engine does not answer."""
        if not self.schema.host_cpus:
            return {}
        host = self.schema.host_label
        expr = (f"max by ({host}) (last_over_time({self._sel(self.schema.host_cpus)}"
                f"[{_HOST_CPUS_WINDOW_S}s]))")
        try:
            found = self._instant(expr, self.clock())
        except StoreError as exc:  # the dashboard then shows "-" for CPUs and overcommit, as before
            self._warn_once(f"host CPU counts unreadable ({exc}); overcommit unknown")
            return {}
        out: dict[str, int] = {}
        for s in found:
            name, cpus = s.labels.get(host, ""), s.values[0] if len(s.values) else math.nan
            if name and math.isfinite(cpus) and cpus >= 1:
                out[name] = int(cpus)
        return out

    def set_meta(self, key: str, value: str) -> None:
        self.local.set_meta(key, value)

    def close(self) -> None:
        self.local.close()

    # -- reads ----------------------------------------------------------------------------------
    def _sel(self, metric: str) -> str:
        return f"{metric}{{{self.matchers}}}" if self.matchers else metric

    def _range(self, expr: str, start_s: float, end_s: float, step_s: float) -> list[Sample]:
        return self.client.query_range(expr, start_s, end_s, step_s)

    def _instant(self, expr: str, at_s: float) -> list[Sample]:
        return self.client.query(expr, at_s)

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
        days = self._starts(probe, start, end, day)
        if not days:
            return None
        whole = days[0] > start  # the window's first day has no data: the oldest sample lies inside the window
        edges = []
        for first, t in ((True, days[0]), (False, days[-1])):
            span = day
            for finer in (3600.0, 60.0, 1.0):
                found = self._starts(probe, t, t + span, finer)
                if not found:
                    return None
                t, span = (found[0] if first else found[-1]), finer
            edges.append(t)
        self._oldest = (edges[0], now) if whole else None
        return _utc(edges[0]), _utc(edges[1])

    def _data_start_h(self) -> int | None:
        """The hour of the oldest sample, when a recent :meth:`time_range` saw the whole history (else None)."""
        if self._oldest is None or self.clock() - self._oldest[1] > _OLDEST_TTL_S:
            return None
        return math.floor(self._oldest[0] / _HOUR_S) * _HOUR_S

    def _starts(self, probe: str, lo: float, hi: float, step: float) -> list[float]:
        """Multiples ``t`` of ``step`` in ``[lo, hi)`` whose interval ``[t, t + step)`` has samples.

        Evaluated at ``t + step - 1ms`` like the hourly rollups, so Prometheus (window closed on the left) and
        VictoriaMetrics (open on the left) count the same millisecond samples.
        """
        first = math.ceil(lo / step) * step
        window = f"{int(step)}s"
        found = self._range(f"count(count_over_time({probe}[{window}]))", first + step - _EVAL_OFFSET_S,
                            hi - _EVAL_OFFSET_S, step)
        return sorted(round(t + _EVAL_OFFSET_S) - step for s in found
                      for t, v in zip(s.ts_s, s.values, strict=True) if v > 0)

    def frame(self, start: datetime, end: datetime, *, resolution: Resolution = "hour",
              vms: Collection[str] | None = None, columns: Collection[str] | None = None) -> pd.DataFrame:
        """Hourly rollups with ``start <= ts < end`` (``ts`` = start of the hour), computed by the engine.

        ``columns`` names the hour columns the caller reads: only those are queried (plus ``vcpus``, the inventory
        gauge that marks the hours a VM existed, so the rows are the same); the others come back as NaN.
        """
        if resolution != "hour":
            raise StoreError(f"resolution {resolution!r}: the PromQL source serves hourly rollups only")
        first_h = math.ceil(start.timestamp() / _HOUR_S) * _HOUR_S
        last_h = math.ceil(end.timestamp() / _HOUR_S) * _HOUR_S - _HOUR_S
        oldest_h = self._data_start_h()
        if oldest_h is not None:  # no rows before the oldest sample: the engine need not step through them
            first_h = max(first_h, oldest_h)
        if last_h < first_h:
            return _empty_hours()
        self.adapt_to_data()
        queries = rollup_queries(self.schema, matchers=self.matchers, resolution_s=self.resolution_s,
                                 rules=self.rules_present(), cpu_fallback=self._cpu_fallback)
        wanted = queries.by_column if columns is None else {
            c: e for c, e in queries.by_column.items() if c in set(columns) | {"vcpus"}}
        chunks = self._chunks(first_h, last_h, subqueries=queries.subqueries)
        self.stats.chunks += len(chunks)
        jobs = [(col, expr, h0, h1) for h0, h1 in chunks for col, expr in wanted.items()]
        keep = None if vms is None else set(vms)
        parts = self._parallel(lambda j: self._rows(j[0], j[1], j[2], j[3], queries.identity, keep), jobs)
        return _assemble(parts)

    def _parallel(self, fn: Callable[[Any], _Part], jobs: Sequence[Any]) -> list[_Part]:
        """``fn`` over ``jobs`` with up to ``concurrency`` requests in flight; results in job order."""
        if self.concurrency <= 1 or len(jobs) <= 1:
            return [fn(j) for j in jobs]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(jobs)),
                                thread_name_prefix="promql") as pool:
            return list(pool.map(fn, jobs))

    def _chunks(self, first_h: float, last_h: float, *, subqueries: bool) -> list[tuple[float, float]]:
        """Hour ranges of about equal length that keep each query within the points and samples limits."""
        fleet = max(1, len(self._inventory_series(first_h, last_h + _HOUR_S)))
        per_hour = fleet * _HOUR_S / self.resolution_s
        hours = int(max(1, min(self.max_points_per_series, self.max_samples_per_query // max(per_hour, 1.0))))
        if subqueries:  # a subquery's inner steps over the chunk (plus its 1h window) count as points per series
            hours = max(1, min(hours, int(self.max_points_per_series * self.resolution_s // _HOUR_S) - 1))
        total = int((last_h - first_h) // _HOUR_S) + 1
        n = -(-total // hours)
        size = -(-total // n)
        return [(first_h + i * _HOUR_S, first_h + (min(i + size, total) - 1) * _HOUR_S) for i in range(0, total, size)]

    def _rows(self, col: str, expr: str, h0: float, h1: float, ident: str, keep: set[str] | None) -> _Part:
        """One column over hours ``h0..h1``: the identity of each series and its points, hour-aligned."""
        m = self.client.query_range_matrix(expr, h0 + _HOUR_S - _EVAL_OFFSET_S, h1 + _HOUR_S - _EVAL_OFFSET_S,
                                           _HOUR_S)
        names = [lab.get(ident, "") for lab in m.labels]
        if "" in names:
            self._warn_once(f"series without {ident!r} label in query {expr!r} ({col}); skipped. Relabel the "
                            f"scrape so every series carries {ident!r}")
        use = [bool(n) and (keep is None or n in keep) for n in names]
        if not all(use):
            m = _select(m, use)
            names = [n for n, u in zip(names, use, strict=True) if u]
        hours = np.floor(m.ts_s / _HOUR_S).astype(np.int64)
        return _Part(col, names, np.diff(m.offsets), hours, m.values)

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
            # name the missing VMs in the query only while it stays short (VictoriaMetrics refuses queries over
            # 16 KB by default); unnamed, the answer covers every VM and fills in only the missing ones
            only = missing if sum(len(u) + 1 for u in missing) <= _MAX_NAMED_BYTES else []
            older = self._latest(now, window=f"{span}s", only=only)
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


@dataclass(frozen=True, slots=True)
class _Part:
    """One column's answer for one chunk: series ``i`` is VM ``names[i]`` with ``counts[i]`` points."""

    column: str
    names: list[str]
    counts: np.ndarray
    hours: np.ndarray  # epoch hours (int64)
    values: np.ndarray


def _select(m: Matrix, use: Sequence[bool]) -> Matrix:
    counts = np.diff(m.offsets)
    mask = np.repeat(np.asarray(use, dtype=bool), counts)
    kept = counts[np.asarray(use, dtype=bool)]
    return Matrix([lab for lab, u in zip(m.labels, use, strict=True) if u],
                  np.concatenate(([0], np.cumsum(kept))).astype(np.int64), m.ts_s[mask], m.values[mask])


def _assemble(parts: Sequence[_Part]) -> pd.DataFrame:
    """One row per (vm, hour) that any column has, in the hour-frame column order, sorted by vm then ts.

    Several points of one column for the same (vm, hour) keep the largest (NaN only when all are NaN).
    """
    parts = [p for p in parts if len(p.values)]
    if not parts:
        return _empty_hours()
    vm_names = sorted({n for p in parts for n in p.names})
    code_of = {n: i for i, n in enumerate(vm_names)}
    keys_by_col: dict[str, list[np.ndarray]] = {}
    values_by_col: dict[str, list[np.ndarray]] = {}
    for p in parts:
        codes = np.repeat(np.array([code_of[n] for n in p.names], dtype=np.int64), p.counts)
        keys_by_col.setdefault(p.column, []).append((codes << 32) | p.hours)  # epoch hours < 2**32
        values_by_col.setdefault(p.column, []).append(p.values)
    keys = {c: np.concatenate(k) for c, k in keys_by_col.items()}
    rows = np.sort(np.concatenate(list(keys.values())))
    rows = rows[np.concatenate(([True], rows[1:] != rows[:-1]))]  # (np.unique hashes: slower here)
    frame = pd.DataFrame({
        "vm": pd.Series(np.array(vm_names, dtype=object)[rows >> 32], dtype=object),
        "ts": pd.to_datetime((rows & 0xFFFFFFFF) * _HOUR_S, unit="s", utc=True),
    })
    for col in HOUR_COLUMNS[2:]:
        out = np.full(len(rows), np.nan)
        if col in keys:
            pos = np.searchsorted(rows, keys[col])
            values = np.concatenate(values_by_col[col])
            if np.bincount(pos, minlength=len(rows)).max() <= 1:
                out[pos] = values
            else:
                np.fmax.at(out, pos, values)
        frame[col] = out
    return frame[list(HOUR_COLUMNS)]


__all__ = ["PromqlStore", "PromqlInputError", "QueryStats"]
