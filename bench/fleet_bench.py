"""Fleet scale: the central role over VictoriaMetrics, and in-process analytics on very large hourly frames.

    python -m bench.fleet_bench promql [--vms 5000] [--days 14]
        Writes a synthetic fleet (5-minute samples of the agent's series) into a throwaway VictoriaMetrics
        (not timed), then runs the central role's ``costs`` and ``recommend`` end to end in a fresh process and
        prints wall time, time in engine queries vs our code, and peak RSS. Targets: <= 60 s, <= 2 GiB.
    python -m bench.fleet_bench inprocess [--vms 50000] [--days 30]
        Builds the hourly frame (vms x days x 24 rows; float32, categorical VM) in memory and times costs +
        recommendations (idle, patterns, schedules, as the dashboard asks for them) on it, with the frame
        build as the floor. Targets: <= 30 s, <= 8 GiB.
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


def central(url: str, work: Path) -> dict[str, Any]:
    """Run costs + recommend through the CLI in this process; split the time into engine vs ours."""
    import contextlib
    import io

    from collector.store import promql_http
    from rightsizer.cli import main as cli_main

    engine = {"s": 0.0, "queries": 0}
    original = promql_http.PromqlClient._call

    def timed(self: Any, path: str, params: Any, what: str) -> Any:
        t0 = time.perf_counter()
        try:
            return original(self, path, params, what)
        finally:
            engine["s"] += time.perf_counter() - t0
            engine["queries"] += 1

    promql_http.PromqlClient._call = timed  # type: ignore[method-assign]
    cfg = work / "central.toml"
    cfg.write_text(f'[source]\nkind = "prometheus"\nurl = "{url}"\nresolution_s = {STEP_S}\n')
    out: dict[str, Any] = {}
    for name, argv in (("recommend", ["recommend", "--output", "json"]),
                       ("costs", ["costs", "--group-by", "host", "--output", "json"])):
        engine["s"], engine["queries"] = 0.0, 0
        buf = io.StringIO()
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
            code = cli_main([*argv, "--config", str(cfg), "--db", str(work / "central.db")])
        wall = time.perf_counter() - t0
        if code != 0:
            raise RuntimeError(f"{name} exited {code}")
        doc = json.loads(buf.getvalue())
        out[name] = {"wall_s": round(wall, 2), "engine_s": round(engine["s"], 2),
                     "ours_s": round(wall - engine["s"], 2), "queries": engine["queries"],
                     "items": len(doc) if isinstance(doc, list) else len(doc.get("vms", []))}
    out["total_s"] = round(sum(v["wall_s"] for v in out.values() if isinstance(v, dict)), 2)
    out["peak_rss_gib"] = round(_rss_gib(), 3)
    return out


def run_promql(n_vms: int, days: int) -> dict[str, Any]:
    from tests.integration.engines import start_victoria_metrics

    with tempfile.TemporaryDirectory(prefix="rs-fleet-bench-") as tmp:
        work = Path(tmp)
        engine = start_victoria_metrics(work / "vm")
        try:
            end_s = int(time.time()) // STEP_S * STEP_S
            t0 = time.perf_counter()
            lines = _load(engine.url, n_vms, days, end_s, seed=20240601)
            load_s = time.perf_counter() - t0
            proc = subprocess.run([sys.executable, "-m", "bench.fleet_bench", "central", "--url", engine.url,
                                   "--work", str(work)], capture_output=True, text=True, timeout=1800,
                                  env={k: v for k, v in os.environ.items() if not k.startswith("RIGHTSIZER_")})
            if proc.returncode != 0:
                raise RuntimeError(proc.stderr[-3000:])
            result: dict[str, Any] = json.loads(proc.stdout)
        finally:
            engine.stop()
    result.update({"vms": n_vms, "days": days, "series_lines": lines, "load_s_untimed": round(load_s, 1),
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


def run_inprocess(n_vms: int, days: int) -> dict[str, Any]:
    from analytics.catalogue import load_catalogue, load_storage_prices
    from analytics.costs import fleet_costs
    from analytics.recommend import recommend_frame
    from collector.config import CostSettings, IdleSettings

    t0, c0 = time.perf_counter(), time.process_time()
    vms, frame = hourly_frame(n_vms, days)
    build_s, build_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    rss_frame = _rss_gib()
    catalogue = load_catalogue()
    now = frame["ts"].iloc[-1].to_pydatetime() + pd.Timedelta(hours=1).to_pytimedelta()
    t1, c1 = time.perf_counter(), time.process_time()
    fleet_costs(frame, vms, catalogue, load_storage_prices(), CostSettings(), now=now)
    t2, c2 = time.perf_counter(), time.process_time()
    findings = recommend_frame(frame, vms, catalogue, now=now, lookback_days=float(days),
                               idle_settings=IdleSettings())  # as the dashboard: idle, patterns, schedules
    t3, c3 = time.perf_counter(), time.process_time()
    return {"vms": n_vms, "days": days, "rows": len(frame), "frame_build_s_floor": round(build_s, 2),
            "frame_build_cpu_s": round(build_cpu_s, 2),
            "costs_s": round(t2 - t1, 2), "recommend_s": round(t3 - t2, 2),
            "costs_plus_recommend_s": round(t3 - t1, 2), "ratio_vs_frame_build": round((t3 - t1) / build_s, 2),
            # CPU seconds of this process: what the work costs when other jobs share the cores
            "costs_cpu_s": round(c2 - c1, 2), "recommend_cpu_s": round(c3 - c2, 2),
            "cpu_ratio_vs_frame_build": round((c3 - c1) / build_cpu_s, 2),
            "load_average_1m": round(os.getloadavg()[0], 1),
            "rss_after_frame_gib": round(rss_frame, 2), "peak_rss_gib": round(_rss_gib(), 2),
            "findings": len(findings), "targets": {"costs_plus_recommend_s": 30, "peak_rss_gib": 8}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("promql")
    p.add_argument("--vms", type=int, default=5000)
    p.add_argument("--days", type=int, default=14)
    q = sub.add_parser("inprocess")
    q.add_argument("--vms", type=int, default=50000)
    q.add_argument("--days", type=int, default=30)
    c = sub.add_parser("central", help="internal: the timed central run against --url")
    c.add_argument("--url", required=True)
    c.add_argument("--work", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.what == "promql":
        print(json.dumps(run_promql(args.vms, args.days), indent=2))
    elif args.what == "inprocess":
        print(json.dumps(run_inprocess(args.vms, args.days), indent=2))
    else:
        print(json.dumps(central(args.url, args.work)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
