"""Fleet scale: the central role over VictoriaMetrics, and in-process analytics on very large hourly frames.

    python -m bench.fleet_bench promql [--vms 5000] [--days 14]
        Writes a synthetic fleet (5-minute samples of the agent's series) into a throwaway VictoriaMetrics
        (not timed), then runs the central role's ``costs`` and ``recommend`` end to end in a fresh process and
        prints wall time, time in engine queries vs our code, and peak RSS. Targets: <= 60 s, <= 2 GiB.
    python -m bench.fleet_bench inprocess [--vms 50000] [--days 30]
        Builds the hourly frame (vms x days x 24 rows; float32, categorical VM) in memory and times costs +
        recommendations (idle, patterns, schedules, as the dashboard asks for them) on it, with the frame
        build as the floor. Targets: <= 30 s, <= 8 GiB.
    python -m bench.fleet_bench calibration [--vms 5000] [--days 30] [--repeats 3]
        The same frame, recommendations timed with our percentile rule (balanced before 0.2.0: memory max +
        15 % for every VM) and with the fleet-calibrated per-VM headroom (cpu_risk_pct 1, memory_risk_pct
        0.01: one calibration pass over the fleet, then per-VM estimates), alternating after one untimed
        warm-up; prints both medians and their ratio; and with today's default (balanced: memory headroom
        from the spread of daily peaks, memory_peak_risk_pct 3: one calibration pass over the fleet's daily
        peaks, then per-VM estimates) and the conservative profile. Target: each <= 2 x percentile rule.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analytics.catalogue import GIB
from collector.model import VmRecord, VmState

SIZES = ((1, 2), (1, 4), (2, 4), (2, 8), (4, 8), (4, 16), (8, 32), (16, 64))
STEP_S = 300


def _rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux: KiB


def _fleet(n_vms: int, seed: int) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    uuids = [str(uuid.UUID(int=int(rng.integers(0, 2**62)) << 64 | i)) for i in range(n_vms)]
    sizes = np.array(SIZES)[rng.integers(0, len(SIZES), n_vms)]
    return uuids, sizes


def _usage(rng: np.random.Generator, vcpus: np.ndarray, mem_gib: np.ndarray, t_s: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """CPU (vCPUs) and memory used (bytes), shape (vms, len(t_s)): daily cycle, noise, some growth."""
    k = len(vcpus)
    daily = (0.5 * (1 + np.sin(2 * np.pi * t_s / 86400.0))).astype(np.float32)
    level = (rng.lognormal(-2.5, 0.8, k).astype(np.float32) * vcpus).clip(0.001, None)[:, None]
    growth = np.where(rng.random(k) < 0.1, rng.uniform(0.01, 0.05, k), 0.0).astype(np.float32)[:, None]
    days = ((t_s - t_s[0]) / 86400.0).astype(np.float32)[None, :]
    cpu = level * (0.6 + 0.8 * daily[None, :]) * (1 + growth * days)
    cpu *= rng.lognormal(0.0, 0.25, cpu.shape).astype(np.float32)
    cpu = np.minimum(cpu, vcpus[:, None].astype(np.float32))
    mem = (rng.uniform(0.1, 0.7, k) * mem_gib * GIB).astype(np.float32)[:, None]
    mem = mem * (1 + 0.05 * rng.standard_normal(cpu.shape).astype(np.float32))
    return cpu, mem


# -- PromQL path ------------------------------------------------------------------------------------------
def _json_lines(n_vms: int, days: int, end_s: int, seed: int) -> Iterator[bytes]:
    """/api/v1/import JSON lines: one line per series with all its values and millisecond timestamps."""
    rng = np.random.default_rng(seed + 1)
    uuids, sizes = _fleet(n_vms, seed)
    n = days * 86400 // STEP_S
    t_s = end_s - STEP_S * np.arange(n, 0, -1) + STEP_S
    stamps = (t_s * 1000).astype(np.int64).tolist()
    hourly = [s for s in stamps if (s // 1000) % 3600 < STEP_S] + [stamps[-1]]
    chunk = 100
    for a in range(0, n_vms, chunk):
        b = min(a + chunk, n_vms)
        cpu, mem = _usage(rng, sizes[a:b, 0].astype(np.float32), sizes[a:b, 1].astype(np.float32),
                          t_s.astype(np.float64))
        for j, i in enumerate(range(a, b)):
            base = {"vm": f"vm-{i:05d}", "uuid": uuids[i], "host": f"hv-{i % 50:02d}"}
            info = {**base, "__name__": "rightsizer_vm_info", "uri": "qemu:///system", "state": "running",
                    "machine_type": "", "label_team": f"team-{i % 7}"}
            yield json.dumps({"metric": info, "values": [1] * len(hourly), "timestamps": hourly}).encode()
            for name, values in (("rightsizer_vm_vcpus", [int(sizes[i, 0])] * n),
                                 ("rightsizer_vm_memory_bytes", [int(sizes[i, 1]) * GIB] * n),
                                 ("rightsizer_vm_running", [1] * n),
                                 ("rightsizer_vm_cpu_usage_vcpus", np.round(cpu[j], 4).tolist()),
                                 ("rightsizer_vm_memory_used_bytes", np.round(mem[j]).tolist())):
                yield json.dumps({"metric": {**base, "__name__": name}, "values": values,
                                  "timestamps": stamps}).encode()


def _load(url: str, n_vms: int, days: int, end_s: int, seed: int) -> int:
    sent = 0
    buf: list[bytes] = []

    def post() -> None:
        req = urllib.request.Request(url + "/api/v1/import", data=b"\n".join(buf) + b"\n", method="POST")
        with urllib.request.urlopen(req, timeout=600) as resp:
            resp.read()

    for line in _json_lines(n_vms, days, end_s, seed):
        buf.append(line)
        if len(buf) >= 600:
            post()
            sent += len(buf)
            buf = []
    if buf:
        post()
        sent += len(buf)
    with urllib.request.urlopen(url + "/internal/force_flush", timeout=60) as resp:
        resp.read()
    return sent


def _load_avg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


class _Clock:
    """Wall time inside the PromQL store's reads (frame, vms, time_range) and every client it makes."""

    def __init__(self) -> None:
        self.store_s = 0.0
        self.clients: list[Any] = []

    def install(self) -> None:
        from collector.store import promql, promql_http

        clock = self
        post_init = promql_http.PromqlClient.__post_init__

        def track(client: Any) -> None:
            post_init(client)
            clock.clients.append(client)

        promql_http.PromqlClient.__post_init__ = track  # type: ignore[method-assign,assignment]
        for name in ("frame", "vms", "time_range"):
            original = getattr(promql.PromqlStore, name)

            def timed(self: Any, *a: Any, _f: Any = original, **kw: Any) -> Any:
                t0 = time.perf_counter()
                try:
                    return _f(self, *a, **kw)
                finally:
                    clock.store_s += time.perf_counter() - t0

            setattr(promql.PromqlStore, name, timed)

    def reset(self) -> None:
        self.store_s = 0.0
        self.clients = []

    def totals(self) -> dict[str, float]:
        keys = ("queries", "engine_wall_s", "request_s", "decode_s")
        return {k: sum(getattr(c.timing, k) for c in self.clients) for k in keys}


def central(url: str, work: Path, concurrency: int) -> dict[str, Any]:
    """Run recommend + costs through the CLI in this process; split each command's wall time.

    engine_s: wall time with at least one query in flight (the engine computing and sending); ours_s: the rest
    (decoding what is not overlapped, building frames, analytics, output). decode_s and store_s (all of the
    PromQL store's reads, engine included) are shown beside them; analytics_s = wall - store_s.
    """
    import contextlib
    import io

    from rightsizer.cli import main as cli_main

    clock = _Clock()
    clock.install()
    cfg = work / "central.toml"
    cfg.write_text(f'[source]\nkind = "prometheus"\nurl = "{url}"\nresolution_s = {STEP_S}\n'
                   f"query_concurrency = {concurrency}\n")
    out: dict[str, Any] = {}
    for name, argv in (("recommend", ["recommend", "--output", "json"]),
                       ("costs", ["costs", "--group-by", "host", "--output", "json"])):
        clock.reset()
        buf = io.StringIO()
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
            code = cli_main([*argv, "--config", str(cfg), "--db", str(work / "central.db")])
        wall = time.perf_counter() - t0
        if code != 0:
            raise RuntimeError(f"{name} exited {code}")
        doc = json.loads(buf.getvalue())
        t = clock.totals()
        out[name] = {"wall_s": round(wall, 2), "engine_s": round(t["engine_wall_s"], 2),
                     "ours_s": round(wall - t["engine_wall_s"], 2), "queries": int(t["queries"]),
                     "request_s_sum": round(t["request_s"], 2), "decode_s": round(t["decode_s"], 2),
                     "store_s": round(clock.store_s, 2), "analytics_s": round(wall - clock.store_s, 2),
                     "items": len(doc) if isinstance(doc, list) else len(doc.get("vms", []))}
    out["total_s"] = round(sum(v["wall_s"] for v in out.values() if isinstance(v, dict)), 2)
    out["peak_rss_gib"] = round(_rss_gib(), 3)
    return out


def engine_floor(url: str, concurrency: int, lookback_days: float = 14.0) -> dict[str, Any]:
    """The engine alone for the minimal data: the hourly rollups recommend reads (every column, every VM, the
    lookback), fetched and discarded undecoded, one at a time and ``concurrency`` at a time."""
    from concurrent.futures import ThreadPoolExecutor

    from collector.store.promql import PromqlStore
    from collector.store.promql_http import PromqlClient
    from collector.store.promql_schema import RIGHTSIZER, rollup_queries

    store = PromqlStore(client=PromqlClient(url, timeout_s=600), schema=RIGHTSIZER, local=None,
                        resolution_s=STEP_S)
    span = store.time_range()
    if span is None:
        raise RuntimeError("the engine holds no data")
    end_h = span[1].timestamp() // 3600 * 3600
    first_h = end_h - lookback_days * 86400 + 3600
    queries = rollup_queries(RIGHTSIZER, matchers="", resolution_s=STEP_S, rules=False)
    jobs = [(expr, h0, h1) for h0, h1 in store._chunks(first_h, end_h, subqueries=False)
            for expr in queries.by_column.values()]

    def fetch(job: tuple[str, float, float]) -> int:
        expr, h0, h1 = job
        params = {"query": expr, "start": f"{h0 + 3599.999:.3f}", "end": f"{h1 + 3599.999:.3f}", "step": "3600"}
        return len(store.client._fetch("/api/v1/query_range", params, expr))

    out: dict[str, Any] = {"queries": len(jobs)}
    for workers in sorted({1, concurrency}):
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            size = sum(pool.map(fetch, jobs))
        out[f"fetch_s_{workers}_in_flight"] = round(time.perf_counter() - t0, 2)
        out["answer_mb"] = round(size / 1e6, 1)
    return out


def run_promql(n_vms: int, days: int, concurrency: int) -> dict[str, Any]:
    from tests.integration.engines import start_victoria_metrics

    with tempfile.TemporaryDirectory(prefix="rs-fleet-bench-") as tmp:
        work = Path(tmp)
        engine = start_victoria_metrics(work / "vm")
        try:
            end_s = int(time.time()) // STEP_S * STEP_S
            t0 = time.perf_counter()
            lines = _load(engine.url, n_vms, days, end_s, seed=20240601)
            load_s = time.perf_counter() - t0
            load_before = _load_avg()
            proc = subprocess.run([sys.executable, "-m", "bench.fleet_bench", "central", "--url", engine.url,
                                   "--work", str(work), "--concurrency", str(concurrency)],
                                  capture_output=True, text=True, timeout=3600,
                                  env={k: v for k, v in os.environ.items() if not k.startswith("RIGHTSIZER_")})
            if proc.returncode != 0:
                raise RuntimeError(proc.stderr[-3000:])
            result: dict[str, Any] = json.loads(proc.stdout)
            load_after = _load_avg()
            result["engine_floor"] = engine_floor(engine.url, concurrency)
        finally:
            engine.stop()
    result.update({"vms": n_vms, "days": days, "series_lines": lines, "load_s_untimed": round(load_s, 1),
                   "query_concurrency": concurrency, "load_avg_before": load_before, "load_avg_after": load_after,
                   "targets": {"total_s": 60, "peak_rss_gib": 2}})
    return result


# -- in-process path --------------------------------------------------------------------------------------
def hourly_frame(n_vms: int, days: int, seed: int = 20240601) -> tuple[list[VmRecord], pd.DataFrame]:
    """An hourly frame (the store's hour columns) drawn directly per VM-hour, in float32 where it can be."""
    rng = np.random.default_rng(seed)
    uuids, sizes = _fleet(n_vms, seed)
    n_hours = days * 24
    end = datetime(2026, 11, 2, tzinfo=UTC)
    t0 = int(end.timestamp()) - n_hours * 3600
    t_s = t0 + 3600.0 * np.arange(n_hours)
    mean, mem = _usage(rng, sizes[:, 0].astype(np.float32), sizes[:, 1].astype(np.float32), t_s)
    spread = rng.uniform(1.1, 1.6, mean.shape).astype(np.float32)
    vms = [VmRecord(uuid=u, name=f"vm-{i:05d}", uri="qemu:///system", host=f"hv-{i % 50:02d}",
                    state=VmState.RUNNING, vcpus=int(sizes[i, 0]), max_vcpus=int(sizes[i, 0]),
                    memory_bytes=int(sizes[i, 1]) * GIB, max_memory_bytes=int(sizes[i, 1]) * GIB,
                    labels={"team": f"team-{i % 7}"}, first_seen=datetime.fromtimestamp(t0, tz=UTC), last_seen=end)
           for i, u in enumerate(uuids)]
    rows = n_vms * n_hours
    f32 = np.float32

    def const(value: float) -> np.ndarray:
        return np.full(rows, value, dtype=f32)

    # float32 for measurements (7 significant digits, far finer than any sizing step), a categorical VM
    # column, and one block per column (copy=False) so pandas makes no 2-D copy of the whole frame
    frame = pd.DataFrame({
        "vm": pd.Categorical.from_codes(np.repeat(np.arange(n_vms, dtype=np.int32), n_hours), categories=uuids),
        "ts": pd.to_datetime(np.tile(t_s.astype("int64"), n_vms), unit="s", utc=True),
        "samples": const(12.0),
        "running_s": const(3600.0),
        "vcpus": np.repeat(sizes[:, 0].astype(f32), n_hours),
        "memory_bytes": np.repeat((sizes[:, 1] * GIB).astype(f32), n_hours),
        "cpu_mean_vcpus": mean.ravel(),
        "cpu_p95_vcpus": (mean * spread).ravel(),
        "cpu_max_vcpus": (mean * spread * f32(1.2)).ravel(),
        "memory_used_max_bytes": (mem * f32(1.05)).ravel(),
        "memory_used_mean_bytes": mem.ravel(),
        "disk_read_bytes": const(1e6), "disk_write_bytes": const(1e6),
        "net_rx_bytes": const(1e6), "net_tx_bytes": const(1e6),
        "disk_capacity_bytes": const(50e9),
    }, copy=False)
    del mean, mem, spread
    return vms, frame


#: The parts of ``recommend_frame`` the in-process bench times (module, function), in call order.
_RECOMMEND_PARTS = (
    ("analytics.recommend", "hour_columns"), ("analytics.recommend", "fleet_trends"),
    ("analytics.recommend", "find_idle"),
    ("analytics.recommend", "fleet_peak_ratios"), ("analytics.recommend", "fleet_needs"),
    ("analytics.recommend", "rows_since"), ("analytics.recommend", "fit_vm_patterns"),
    ("analytics.patterns", "_fleet_stats"), ("analytics.patterns", "_cluster"), ("analytics.recommend", "decide"),
    ("analytics.recommend", "fleet_replays"), ("analytics.recommend", "_finding"),
    ("analytics.recommend", "with_schedules"),
)


class _Split:
    """Wall seconds and the calling thread's CPU seconds inside named module functions (wrapped for the
    run; calls counted). Thread CPU leaves out the background import of scikit-learn, and its clock costs a
    third of the process clock's: decide and _finding are called once per VM."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def install(self) -> None:
        import importlib

        for module_name, name in _RECOMMEND_PARTS:
            module = importlib.import_module(module_name)
            original = getattr(module, name, None)
            if original is None:
                continue
            self.seconds[name], self.cpu_seconds[name], self.calls[name] = 0.0, 0.0, 0

            def timed(*a: Any, _f: Any = original, _n: str = name, **kw: Any) -> Any:
                t0, c0 = time.perf_counter(), time.thread_time()
                try:
                    return _f(*a, **kw)
                finally:
                    self.seconds[_n] += time.perf_counter() - t0
                    self.cpu_seconds[_n] += time.thread_time() - c0
                    self.calls[_n] += 1

            setattr(module, name, timed)

    def report(self) -> dict[str, str]:
        """Per part: "wall s / thread CPU s" (and the number of calls when more than one)."""
        return {name: f"{s:.2f} / {self.cpu_seconds[name]:.2f}"
                + (f" ({self.calls[name]} calls)" if self.calls[name] > 1 else "")
                for name, s in self.seconds.items() if self.calls[name]}


def sklearn_import_s() -> float:
    """Wall seconds of ``from sklearn.cluster import KMeans`` in a fresh interpreter that has numpy and pandas."""
    code = ("import time, numpy, pandas; t = time.perf_counter(); from sklearn.cluster import KMeans; "
            "print(time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=600)
    return round(float(out.stdout), 2)


def run_inprocess(n_vms: int, days: int) -> dict[str, Any]:
    from analytics.catalogue import load_catalogue, load_storage_prices
    from analytics.costs import fleet_costs
    from analytics.recommend import recommend_frame
    from collector.heap import retain_freed_memory
    from core.settings import CostSettings, IdleSettings

    sklearn_s = sklearn_import_s()  # before the frame exists: a fork then copies nothing large
    heap_retained = retain_freed_memory()  # as the one-shot CLI commands (costs, recommend, report) do
    split = _Split()
    split.install()
    sklearn_before = "sklearn" in sys.modules
    t0, c0 = time.perf_counter(), time.process_time()
    vms, frame = hourly_frame(n_vms, days)
    build_s, build_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    rss_frame = _rss_gib()
    catalogue = load_catalogue()
    now = frame["ts"].iloc[-1].to_pydatetime() + pd.Timedelta(hours=1).to_pytimedelta()
    t1, c1, s1 = time.perf_counter(), time.process_time(), os.times().system
    fleet_costs(frame, vms, catalogue, load_storage_prices(), CostSettings(), now=now)
    t2, c2, s2 = time.perf_counter(), time.process_time(), os.times().system
    findings = recommend_frame(frame, vms, catalogue, now=now, lookback_days=float(days),
                               idle_settings=IdleSettings())  # as the dashboard: idle, patterns, schedules
    t3, c3, s3 = time.perf_counter(), time.process_time(), os.times().system
    return {"vms": n_vms, "days": days, "rows": len(frame), "frame_build_s_floor": round(build_s, 2),
            "frame_build_cpu_s": round(build_cpu_s, 2),
            "costs_s": round(t2 - t1, 2), "recommend_s": round(t3 - t2, 2),
            "costs_plus_recommend_s": round(t3 - t1, 2), "ratio_vs_frame_build": round((t3 - t1) / build_s, 2),
            # wall / thread CPU seconds inside recommend's main parts (_fleet_stats and _cluster are inside
            # fit_vm_patterns; the scikit-learn import starts in a background thread at the top of
            # recommend_frame, and _cluster waits for whatever of it is left)
            "recommend_split_s": split.report(), "sklearn_imported_in_recommend": not sklearn_before,
            "sklearn_import_s_fresh_process": sklearn_s,
            # CPU seconds of this process: what the work costs when other jobs share the cores
            "costs_cpu_s": round(c2 - c1, 2), "recommend_cpu_s": round(c3 - c2, 2),
            # of which in the kernel (page faults of fresh memory, mostly); heap_retained: freed memory reused
            "costs_system_cpu_s": round(s2 - s1, 2), "recommend_system_cpu_s": round(s3 - s2, 2),
            "heap_retained": heap_retained,
            "cpu_ratio_vs_frame_build": round((c3 - c1) / build_cpu_s, 2),
            "load_average_1m": round(os.getloadavg()[0], 1),
            "rss_after_frame_gib": round(rss_frame, 2), "peak_rss_gib": round(_rss_gib(), 2),
            "findings": len(findings), "targets": {"costs_plus_recommend_s": 30, "peak_rss_gib": 8}}


def run_calibration(n_vms: int, days: int, repeats: int) -> dict[str, Any]:
    """Median wall seconds of ``recommend_frame`` with the percentile rule and with calibrated headroom."""
    from analytics.catalogue import load_catalogue
    from analytics.recommend import recommend_frame
    from analytics.rightsizing.settings import PERCENTILE_RULE, RightsizerSettings, profile_settings
    from core.settings import IdleSettings

    vms, frame = hourly_frame(n_vms, days)
    catalogue = load_catalogue()
    now = frame["ts"].iloc[-1].to_pydatetime() + pd.Timedelta(hours=1).to_pytimedelta()
    rules = {
        "percentile_rule": RightsizerSettings.model_validate({"lookback_days": float(days), **PERCENTILE_RULE}),
        "calibrated": RightsizerSettings.model_validate(
            {"lookback_days": float(days), "cpu_risk_pct": 1.0, "memory_risk_pct": 0.01}),
        "peak_spread": RightsizerSettings.model_validate({"lookback_days": float(days)}),  # balanced
        "conservative": RightsizerSettings.model_validate(
            {"lookback_days": float(days), **profile_settings("conservative")}),
    }

    def once(name: str) -> tuple[float, float, int]:
        t0, c0 = time.perf_counter(), time.process_time()
        findings = recommend_frame(frame, vms, catalogue, now=now, settings=rules[name],
                                   idle_settings=IdleSettings())
        changed = sum(1 for f in findings if f.recommendation.changes_type)
        return time.perf_counter() - t0, time.process_time() - c0, changed

    once("percentile_rule")  # warm-up: imports, the k-means import, first-touch of the frame
    seconds: dict[str, list[float]] = {name: [] for name in rules}
    cpu_seconds: dict[str, list[float]] = {name: [] for name in rules}
    changed: dict[str, int] = {}
    for _ in range(repeats):
        for name in rules:
            wall, cpu, changed[name] = once(name)
            seconds[name].append(wall)
            cpu_seconds[name].append(cpu)
    median = {name: float(np.median(v)) for name, v in seconds.items()}
    cpu_median = {name: float(np.median(v)) for name, v in cpu_seconds.items()}
    return {"vms": n_vms, "days": days, "repeats": repeats,
            "recommend_s_percentile_rule": round(median["percentile_rule"], 2),
            "recommend_s_calibrated": round(median["calibrated"], 2),
            "ratio": round(median["calibrated"] / median["percentile_rule"], 2),
            # process CPU seconds: steadier than wall time when other jobs share the cores
            "recommend_cpu_s_percentile_rule": round(cpu_median["percentile_rule"], 2),
            "recommend_cpu_s_calibrated": round(cpu_median["calibrated"], 2),
            "cpu_ratio": round(cpu_median["calibrated"] / cpu_median["percentile_rule"], 2),
            "recommend_s_peak_spread": round(median["peak_spread"], 2),
            "peak_spread_ratio": round(median["peak_spread"] / median["percentile_rule"], 2),
            "recommend_cpu_s_peak_spread": round(cpu_median["peak_spread"], 2),
            "peak_spread_cpu_ratio": round(cpu_median["peak_spread"] / cpu_median["percentile_rule"], 2),
            "recommend_s_conservative": round(median["conservative"], 2),
            "conservative_ratio": round(median["conservative"] / median["percentile_rule"], 2),
            "conservative_cpu_ratio": round(cpu_median["conservative"] / cpu_median["percentile_rule"], 2),
            "runs_s": {k: [round(x, 2) for x in v] for k, v in seconds.items()},
            "vms_changing_type": changed, "load_average_1m": round(os.getloadavg()[0], 1),
            "target_ratio": 2.0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("promql")
    p.add_argument("--vms", type=int, default=5000)
    p.add_argument("--days", type=int, default=14)
    p.add_argument("--concurrency", type=int, default=2, help="[source] query_concurrency of the central role")
    q = sub.add_parser("inprocess")
    q.add_argument("--vms", type=int, default=50000)
    q.add_argument("--days", type=int, default=30)
    k = sub.add_parser("calibration", help="recommend time: percentile rule vs fleet-calibrated headroom")
    k.add_argument("--vms", type=int, default=5000)
    k.add_argument("--days", type=int, default=30)
    k.add_argument("--repeats", type=int, default=3)
    c = sub.add_parser("central", help="internal: the timed central run against --url")
    c.add_argument("--url", required=True)
    c.add_argument("--work", type=Path, required=True)
    c.add_argument("--concurrency", type=int, default=2)
    f = sub.add_parser("floor", help="the engine alone: fetch recommend's rollups from --url, undecoded")
    f.add_argument("--url", required=True)
    f.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args(argv)
    if args.what == "promql":
        print(json.dumps(run_promql(args.vms, args.days, args.concurrency), indent=2))
    elif args.what == "inprocess":
        print(json.dumps(run_inprocess(args.vms, args.days), indent=2))
    elif args.what == "calibration":
        print(json.dumps(run_calibration(args.vms, args.days, args.repeats), indent=2))
    elif args.what == "floor":
        print(json.dumps(engine_floor(args.url, args.concurrency)))
    else:
        print(json.dumps(central(args.url, args.work, args.concurrency)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
