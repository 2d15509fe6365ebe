"""Same history, same answers: recommend and costs from the SQLite store vs the PromQL source.

Imports a Bitbrains trace into SQLite (shifted to end now), writes the same rows into a throwaway
VictoriaMetrics as the agent's rightsizer_* series (collector/store/promexport.py) -- or, with
``--engine prometheus``, into TSDB blocks built by ``promtool tsdb create-blocks-from openmetrics`` under a
throwaway Prometheus -- then runs
``rightsizer recommend --output json`` and ``rightsizer costs --group-by vm --output json`` against both and
prints how many VMs get the same recommended type and how far costs differ, with every difference listed.

    RIGHTSIZER_SHARED_DIR=/work/shared python -m bench.promql_equality [--trace DIR] [--engine prometheus]
        [--counter-only] [--measured-interval]

``--counter-only`` leaves out the per-cycle CPU gauge (``rightsizer_vm_cpu_usage_vcpus``), as from agents of another
version or a relabel that drops it: the central role then computes CPU from the counter's rate.
``--measured-interval`` writes no ``resolution_s`` into the central config: the interval is taken from the data.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collector.store.promexport import history_lines
from collector.store.sqlite import SqliteStore
from rightsizer.cli import main as cli_main
from tests.integration.engines import (
    Engine,
    import_prometheus_text,
    promtool_backfill,
    start_prometheus,
    start_victoria_metrics,
)

REPO = Path(__file__).resolve().parents[1]
#: The shared data folder sits beside the checkout (as in tests/conftest.py).
SHARED = Path(os.environ.get("RIGHTSIZER_SHARED_DIR", REPO.parent / "shared"))
DEFAULT_TRACE = SHARED / "data" / "traces" / "bitbrains-rnd-2013-08" / "2013-8"
TRACE_STEP_S = 300  # Bitbrains samples every 5 minutes


@dataclass(frozen=True)
class Comparison:
    vms: int
    same_type: int
    differences: list[dict[str, Any]]
    cost_sqlite: float
    cost_promql: float
    cost_diff_pct: float
    per_vm_cost_max_diff_pct: float


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """Run the CLI in this process; returns (exit code, stdout, stderr)."""
    os.environ.pop("RIGHTSIZER_SHARED_DIR", None)  # not a settings key
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_main(argv)
    return code, out.getvalue(), err.getvalue()


def import_trace(trace: Path, db: Path) -> None:
    code, _out, err = run_cli(["import", str(trace), "--format", "bitbrains", "--shift-to-now", "--db", str(db),
                               "--output", "json"])
    if code != 0:
        raise RuntimeError(f"import failed ({code}): {err}")


#: The per-cycle CPU gauge; ``--counter-only`` drops its lines.
CPU_GAUGE = "rightsizer_vm_cpu_usage_vcpus{"


def _store_lines(db: Path, *, openmetrics: bool, counter_only: bool = False) -> Iterator[str]:
    """The store's raw rows as the agent's rightsizer_* series (exposition or OpenMetrics sample lines)."""
    store = SqliteStore(db)
    try:
        span = store.time_range()
        assert span is not None
        raw = store.frame(span[0], span[1] + (span[1] - span[0]), resolution="raw")
        vms = store.vms()
    finally:
        store.close()
    lines = history_lines(vms, raw, openmetrics=openmetrics)
    yield from (line for line in lines if not line.startswith(CPU_GAUGE)) if counter_only else lines


def backfill(db: Path, engine: Engine, *, counter_only: bool = False) -> int:
    """Write the store's raw rows into VictoriaMetrics as rightsizer_* series; returns lines sent."""
    return import_prometheus_text(engine, _store_lines(db, openmetrics=False, counter_only=counter_only))


def start_backfilled_prometheus(db: Path, work: Path) -> tuple[Engine, int]:
    """A Prometheus (no scrape targets) over TSDB blocks that promtool built from the store's rows."""
    lines = promtool_backfill(_store_lines(db, openmetrics=True), work / "data", work)
    engine = start_prometheus(work, {}, data=work / "data")
    try:
        engine.wait_for("last_over_time(rightsizer_vm_info[400d])", timeout_s=120)
    except BaseException:
        engine.stop()
        raise
    return engine, lines


def promql_config(path: Path, url: str, *, resolution: bool = True) -> Path:
    step = f"resolution_s = {TRACE_STEP_S}\n" if resolution else ""
    path.write_text(f'[source]\nkind = "prometheus"\nurl = "{url}"\n{step}history_days = 400\n', encoding="utf-8")
    return path


def results(db: Path, config: Path | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]], float, float]:
    """recommend + costs JSON; returns (findings, cost rows, seconds for recommend, seconds for costs)."""
    base = ["--db", str(db), "--output", "json"] + (["--config", str(config)] if config else [])
    t0 = time.perf_counter()
    code, rec, err = run_cli(["recommend", *base])
    t1 = time.perf_counter()
    if code != 0:
        raise RuntimeError(f"recommend failed ({code}): {err}")
    code, costs, err = run_cli(["costs", "--group-by", "vm", "--since", "14d", *base])
    t2 = time.perf_counter()
    if code != 0:
        raise RuntimeError(f"costs failed ({code}): {err}")
    return json.loads(rec), _cost_rows(json.loads(costs)), t1 - t0, t2 - t1


def _cost_rows(doc: Any) -> list[dict[str, Any]]:
    return list(doc["vms"])


def compare(sq: list[dict[str, Any]], pq: list[dict[str, Any]], sq_costs: list[dict[str, Any]],
            pq_costs: list[dict[str, Any]]) -> Comparison:
    a = {f["uuid"]: f for f in sq}
    b = {f["uuid"]: f for f in pq}
    diffs = []
    same = 0
    for uuid, fa in sorted(a.items(), key=lambda kv: kv[1]["name"]):
        fb = b.get(uuid)
        ta = (fa.get("target") or {}).get("machine_type")
        tb = (fb.get("target") or {}).get("machine_type") if fb else None
        if fb is not None and ta == tb and fa["finding"] == fb["finding"]:
            same += 1
            continue
        diffs.append({"vm": fa["name"], "sqlite": [fa["finding"], ta, fa.get("need")],
                      "promql": [fb["finding"], tb, fb.get("need")] if fb else None})
    ca = {r["uuid"]: float(r["cost"]) for r in sq_costs}
    cb = {r["uuid"]: float(r["cost"]) for r in pq_costs}
    total_a, total_b = sum(ca.values()), sum(cb.values())
    per_vm = [abs(cb.get(k, 0.0) - v) / v * 100 for k, v in ca.items() if v]
    return Comparison(
        vms=len(a), same_type=same, differences=diffs, cost_sqlite=total_a, cost_promql=total_b,
        cost_diff_pct=abs(total_b - total_a) / total_a * 100 if total_a else 0.0,
        per_vm_cost_max_diff_pct=max(per_vm, default=0.0),
    )


def measure(trace: Path, work: Path, engine_name: str = "victoria-metrics", *, counter_only: bool = False,
            measured_interval: bool = False) -> tuple[Comparison, dict[str, float]]:
    db = work / "trace.db"
    t0 = time.perf_counter()
    import_trace(trace, db)
    t1 = time.perf_counter()
    if engine_name == "prometheus":
        engine, lines = start_backfilled_prometheus(db, work / "prom")
    else:
        engine = start_victoria_metrics(work / "vm")
    try:
        if engine_name != "prometheus":
            lines = backfill(db, engine, counter_only=counter_only)
        t2 = time.perf_counter()
        sq, sq_costs, sq_rec_s, sq_cost_s = results(db, None)
        config = promql_config(work / "promql.toml", engine.url, resolution=not measured_interval)
        pq, pq_costs, pq_rec_s, pq_cost_s = results(work / "central.db", config)
    finally:
        engine.stop()
    times = {"import_s": t1 - t0, "backfill_s": t2 - t1, "backfill_lines": float(lines),
             "recommend_sqlite_s": sq_rec_s, "recommend_promql_s": pq_rec_s, "costs_sqlite_s": sq_cost_s,
             "costs_promql_s": pq_cost_s}
    return compare(sq, pq, sq_costs, pq_costs), times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.promql_equality", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trace", type=Path, default=DEFAULT_TRACE)
    parser.add_argument("--engine", choices=("victoria-metrics", "prometheus"), default="victoria-metrics",
                        help="VictoriaMetrics (import API) or Prometheus (promtool-built blocks)")
    parser.add_argument("--counter-only", action="store_true", help="write no CPU gauge, only the counter")
    parser.add_argument("--measured-interval", action="store_true", help="no resolution_s in the central config")
    args = parser.parse_args(argv)
    if args.counter_only and args.engine == "prometheus":
        parser.error("--counter-only writes through the VictoriaMetrics import API; drop --engine prometheus")
    with tempfile.TemporaryDirectory(prefix="rs-equality-") as tmp:
        cmp_, times = measure(args.trace.resolve(), Path(tmp), args.engine, counter_only=args.counter_only,
                              measured_interval=args.measured_interval)
    print(json.dumps({"engine": args.engine, "counter_only": args.counter_only,
                      "measured_interval": args.measured_interval, "vms": cmp_.vms,
                      "same_recommended_type": cmp_.same_type,
                      "same_pct": round(cmp_.same_type / cmp_.vms * 100, 1) if cmp_.vms else 0.0,
                      "cost_sqlite": round(cmp_.cost_sqlite, 4), "cost_promql": round(cmp_.cost_promql, 4),
                      "cost_diff_pct": round(cmp_.cost_diff_pct, 4),
                      "per_vm_cost_max_diff_pct": round(cmp_.per_vm_cost_max_diff_pct, 4),
                      "differences": cmp_.differences, "times": {k: round(v, 2) for k, v in times.items()}},
                     indent=2, default=str))
    return 0 if cmp_.vms and cmp_.same_type / cmp_.vms >= 0.95 and cmp_.cost_diff_pct <= 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())
