"""The dashboard's views on a bench store, dumped for an exact before/after comparison.

    python -m bench.dashboard_views dump OUT.json [--vms 1000] [--days 30] [--db PATH]
    python -m bench.dashboard_views compare BEFORE.json AFTER.json

``dump`` builds the full snapshot with a fixed clock (the store's newest data) and writes what the pages
show: the overview, the VM rows, the recommendation rows and CSV, the backup rows and the VM detail of a
few VMs, for several ranges, label and host filters, and the host loads. Floats are written exactly (their
``repr``), frames with their dtypes. ``compare`` prints how many views differ and the first differences;
exit 1 when any does. Run ``dump`` on the code before a change and after it (e.g. from ``git archive``'s
copy of main with ``PYTHONPATH``) and compare.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analytics.catalogue import load_catalogue
from bench.dashboard_bench import RESULTS
from collector.store.sqlite import SqliteStore
from core.settings import Settings
from dashboard.data import DashboardData, Filters
from dashboard.viewmodel.backups import backup_rows
from dashboard.viewmodel.overview import host_loads_view, overview_view
from dashboard.viewmodel.recommendations import recommendation_rows, recommendations_csv
from dashboard.viewmodel.vm_detail import vm_detail_view
from dashboard.viewmodel.vms import vm_rows


def canonical(value: Any) -> Any:
    """``value`` as JSON-able data, floats exact (repr), frames with their columns' dtypes."""
    if isinstance(value, pd.DataFrame):
        return {"dtypes": [f"{c}:{t}" for c, t in value.dtypes.items()],
                "rows": [[canonical(v) for v in row] for row in value.itertuples(index=False)]}
    if isinstance(value, pd.Series | np.ndarray):
        return [canonical(v) for v in list(value)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [canonical(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, float | np.floating):
        return "nan" if math.isnan(value) else repr(float(value))
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, datetime | pd.Timestamp):
        return value.isoformat()
    return value if value is None or isinstance(value, str) else repr(value)


def dump(store: SqliteStore) -> dict[str, Any]:
    """Every compared view of the full snapshot, by name."""
    span = store.time_range()
    assert span is not None, "empty store"
    clock_at = span[1]
    data = DashboardData(Settings(), store, load_catalogue(), data_mode="demo", ttl_s=24 * 3600,
                         clock=lambda: clock_at, staged_above_vm_hours=None)
    labels, hosts = data.filter_options()
    teams = [label for label in labels if label.startswith("team=")][:2]
    filter_sets = [Filters()]
    for range_key in ("24h", "7d", "30d"):
        filter_sets += [Filters(range_key), Filters(range_key, tuple(teams[:1])),
                        Filters(range_key, tuple(teams), (hosts[0],))]
    out: dict[str, Any] = {"host_loads": canonical(host_loads_view(data))}
    snap = data.snapshot()
    some_vms = [vm.uuid for vm in snap.vms[:: max(1, len(snap.vms) // 5)]]
    for f in filter_sets:
        tag = f"{f.range_key}|{','.join(f.labels)}|{','.join(f.hosts)}"
        out[f"overview {tag}"] = canonical(overview_view(data, f))
        out[f"vm_rows {tag}"] = canonical(vm_rows(data, f))
        out[f"recommendation_rows {tag}"] = canonical(recommendation_rows(data, f))
        out[f"recommendations_csv {tag}"] = recommendations_csv(data, f)
        out[f"backup_rows {tag}"] = canonical(backup_rows(data, f))
        for uuid in some_vms:
            out[f"vm_detail {uuid} {tag}"] = canonical(vm_detail_view(data, uuid, f))
    return out


def compare(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Names of the views that differ (or exist on one side only)."""
    return [name for name in sorted(set(before) | set(after)) if before.get(name) != after.get(name)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard_views", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump", help="write the views of a bench store")
    d.add_argument("out", type=Path)
    d.add_argument("--vms", type=int, default=1000)
    d.add_argument("--days", type=int, default=30)
    d.add_argument("--db", type=Path, help="store (default bench/results/dashboard-VMSxDAYS.db, must exist)")
    c = sub.add_parser("compare", help="compare two dumps")
    c.add_argument("before", type=Path)
    c.add_argument("after", type=Path)
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.command == "dump":
        path = args.db or RESULTS / f"dashboard-{args.vms}x{args.days}.db"
        if not path.exists():
            print(f"{path}: no such store; seed it with python -m bench.dashboard_bench --vms {args.vms}",
                  file=sys.stderr)
            return 2
        views = dump(SqliteStore(path))
        args.out.write_text(json.dumps(views, sort_keys=True))
        print(f"{len(views)} views written to {args.out}")
        return 0
    before, after = (json.loads(p.read_text()) for p in (args.before, args.after))
    differ = compare(before, after)
    print(f"{len(before)} views before, {len(after)} after; {len(differ)} differ"
          + (": " + "; ".join(differ[:10]) if differ else ""))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
