"""Output guard for speed work on the fleet path: the same inputs must give byte-identical outputs.

    python -m bench.golden_check save  DIR [--vms 3000] [--trace PATH]
    python -m bench.golden_check check DIR [--vms 3000] [--trace PATH]

``save`` writes, and ``check`` compares byte for byte, the outputs of:

* the in-process bench's fleet (``bench.fleet_bench.hourly_frame``, ``--vms`` x 30 days): every costs
  column (a digest per column) and every finding in full (plan entry, table row, the recommendation with its
  evidence and trends, the projection, idle and schedule), as the bench calls them;
* the same fleet made ragged (rows dropped, NaN CPU and memory, VMs with a few days only, unknown memory),
  with signals on, for our strategy and the ``aws``, ``krr`` and ``vpa`` anchors;
* the CLI's ``recommend --output json`` (four strategies) and ``costs --output json`` on a Bitbrains trace
  imported into a scratch store (``--trace``; skipped when the directory is absent).

It prints one line per output (same / DIFFERENT) and exits 1 when anything differs.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.fleet_bench import hourly_frame
from collector.model import VmRecord

_ROOT = Path(__file__).resolve().parents[1]
#: The repository's ``../shared`` (a worktree one level deeper looks one level further up).
TRACE = next((p for p in (_ROOT / "../shared/data/traces/bitbrains-rnd-2013-08/2013-8",
                          _ROOT / "../../shared/data/traces/bitbrains-rnd-2013-08/2013-8") if p.is_dir()),
             _ROOT / "../shared/data/traces/bitbrains-rnd-2013-08/2013-8")
STRATEGIES = ("rightsizer", "aws", "krr", "vpa")


def _costs_digest(costs: pd.DataFrame) -> str:
    lines = [f"rows {len(costs)}"]
    for name in costs.columns:
        col = costs[name]
        if isinstance(col.dtype, pd.DatetimeTZDtype):  # its object array would hash addresses
            data = pd.DatetimeIndex(col).asi8.tobytes()
        elif isinstance(col.dtype, pd.CategoricalDtype):
            data = col.cat.codes.to_numpy().tobytes() + "\n".join(map(str, col.cat.categories)).encode()
        else:
            data = np.ascontiguousarray(col.to_numpy()).tobytes()
        lines.append(f"{name} {col.dtype} {hashlib.sha256(data).hexdigest()}")
    return "\n".join(lines) + "\n"


def _findings_text(findings: Sequence[Any]) -> str:
    out = []
    for f in findings:
        out.append(json.dumps({"plan": f.plan_entry(), "row": f.row(), "recommendation": repr(f.recommendation),
                               "projection": repr(f.projection), "idle": repr(f.idle),
                               "schedule": repr(f.schedule), "storage": repr(f.storage)},
                              sort_keys=True, default=str))
    return "\n".join(out) + "\n"


def _ragged(vms: list[VmRecord], frame: pd.DataFrame, seed: int = 7) -> pd.DataFrame:
    """The frame with rows dropped, NaN holes, short histories and VMs whose memory is unknown."""
    rng = np.random.default_rng(seed)
    n_vms = len(vms)
    codes = frame["vm"].cat.codes.to_numpy()
    keep = rng.random(len(frame)) > 0.08
    short = rng.random(n_vms) < 0.05  # these keep only their last 2-4 days
    hour_idx = np.tile(np.arange(len(frame) // n_vms), n_vms)
    hours = len(frame) // n_vms
    cutoff = hours - rng.integers(48, 97, n_vms)
    keep &= ~(short[codes] & (hour_idx < cutoff[codes]))
    out = frame[keep].reset_index(drop=True).copy()
    rows = len(out)
    out_codes = out["vm"].cat.codes.to_numpy()
    for name, share in (("cpu_p95_vcpus", 0.02), ("cpu_max_vcpus", 0.02), ("memory_used_max_bytes", 0.05)):
        values = out[name].to_numpy().copy()
        values[rng.random(rows) < share] = np.nan
        out[name] = values
    no_memory = rng.random(n_vms) < 0.1
    for name in ("memory_used_max_bytes", "memory_used_mean_bytes"):
        values = out[name].to_numpy().copy()
        values[no_memory[out_codes]] = np.nan
        out[name] = values
    running = out["running_s"].to_numpy().copy()
    running[rng.random(rows) < 0.03] = 1800.0
    out["running_s"] = running
    return out


def _in_process(n_vms: int) -> Iterator[tuple[str, str]]:
    from analytics.catalogue import load_catalogue, load_storage_prices
    from analytics.costs import fleet_costs
    from analytics.recommend import recommend_frame
    from core.settings import CostSettings, IdleSettings, SignalSettings

    days = 30
    vms, frame = hourly_frame(n_vms, days)
    catalogue = load_catalogue()
    now = frame["ts"].iloc[-1].to_pydatetime() + pd.Timedelta(hours=1).to_pytimedelta()
    yield "bench-costs", _costs_digest(fleet_costs(frame, vms, catalogue, load_storage_prices(), CostSettings(),
                                                   now=now))
    findings = recommend_frame(frame, vms, catalogue, now=now, lookback_days=float(days),
                               idle_settings=IdleSettings())
    yield "bench-recommend", _findings_text(findings)
    ragged = _ragged(vms, frame)
    del frame
    yield "ragged-costs", _costs_digest(fleet_costs(ragged, vms, catalogue, load_storage_prices(), CostSettings(),
                                                    now=now))
    for strategy in STRATEGIES:
        findings = recommend_frame(ragged, vms, catalogue, strategy=strategy, now=now, lookback_days=14.0,
                                   idle_settings=IdleSettings(), signal_settings=SignalSettings())
        yield f"ragged-recommend-{strategy}", _findings_text(findings)


def _cli(argv: list[str]) -> str:
    from rightsizer.cli import main as cli_main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
        code = cli_main(argv)
    return f"exit {code}\n{buf.getvalue()}"


def _trace(trace: Path) -> Iterator[tuple[str, str]]:
    with tempfile.TemporaryDirectory(prefix="rs-golden-") as tmp:
        db = str(Path(tmp) / "trace.db")
        cfg = Path(tmp) / "empty.toml"
        cfg.write_text("")
        common = ["--config", str(cfg), "--db", db]
        _cli(["import", str(trace), *common])
        for strategy in STRATEGIES:
            yield f"trace-recommend-{strategy}", _cli(
                ["recommend", "--output", "json", "--now", "latest", "--strategy", strategy, *common])
        yield "trace-costs", _cli(["costs", "--output", "json", "--group-by", "host", *common])


def outputs(n_vms: int, trace: Path) -> Iterator[tuple[str, str]]:
    yield from _in_process(n_vms)
    if trace.is_dir():
        yield from _trace(trace)
    else:
        print(f"trace {trace} not found: skipped", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.golden_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("save", "check"))
    parser.add_argument("dir", type=Path)
    parser.add_argument("--vms", type=int, default=3000)
    parser.add_argument("--trace", type=Path, default=TRACE)
    parser.add_argument("--only", action="append", default=[], metavar="WORD",
                        help="save/check only the outputs whose name contains WORD (repeatable)")
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    differ = 0
    started = last = time.perf_counter()
    for name, text in outputs(args.vms, args.trace):
        took, last = time.perf_counter() - last, time.perf_counter()
        if args.only and not any(word in name for word in args.only):
            continue
        path = args.dir / f"{name}.txt"
        if args.mode == "save":
            path.write_text(text)
            print(f"{name}: saved ({len(text):,} bytes, {took:.1f} s)", flush=True)
            continue
        same = path.exists() and path.read_text() == text
        differ += not same
        if not same:
            (args.dir / f"{name}.new.txt").write_text(text)
        print(f"{name}: {'same' if same else 'DIFFERENT (see .new.txt)'} ({took:.1f} s)", flush=True)
    print(f"{time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
