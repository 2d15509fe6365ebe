"""Where a first visit of the overview spends its time: Chromium tracing and CPU profile through Playwright.

    python -m bench.dashboard_profile [--vms 1000] [--days 30] [--rounds 3] [--trace-out DIR]

Serves the dashboard on the bench store (bench/dashboard_bench.py seeds it) and a bare Dash page, opens each in
a new browser context (empty cache) with Chromium's timeline tracing on, and splits the visit, from navigation
until the overview's graphs are drawn (the bench's end condition), into:

* network and server: each response's server time (requestStart -> responseStart) and bytes;
* main thread by trace event: script compile + evaluation per script (plotly.js, Dash's bundles), the
  component chunks, style/layout/paint, garbage collection, other work, idle;
* each ``Plotly.react``/``Plotly.newPlot`` call (wrapped by an init script): from call to its promise, by graph;
* the CPU profile's self time by script (plotly.js, react-dom, dash-renderer, dcc, ...) inside that window.

Medians over ``--rounds`` visits are printed; the raw trace of the last round goes to ``--trace-out``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from analytics.catalogue import load_catalogue
from bench.dashboard_bench import (
    CHROMIUM,
    CHROMIUM_ARGS,
    OVERVIEW_GRAPHS,
    RESULTS,
    _graphs_drawn,
    floor_apps,
    floor_graph_ids,
    open_store,
    serve,
    settle,
    settle_summary,
)
from core.settings import Settings
from dashboard.app import create_app, dashboard_data

CATEGORIES = ["devtools.timeline", "v8.execute", "disabled-by-default-devtools.timeline", "blink.user_timing",
              "v8", "disabled-by-default-v8.compile"]

#: Wraps Plotly.react/newPlot once plotly.js defines window.Plotly, recording [graph id, start, end] (ms).
WRAP_PLOTLY = """
(() => {
  window.__rsDraws = [];
  let value;
  Object.defineProperty(window, 'Plotly', {configurable: true, get() { return value; }, set(p) {
    value = p;
    for (const name of ['react', 'newPlot']) {
      const inner = p[name];
      if (typeof inner !== 'function' || inner.__rs) { continue; }
      p[name] = function(gd) {
        const id = (gd && gd.parentElement && gd.parentElement.id) || (gd && gd.id) || '?';
        const t0 = performance.now();
        const out = inner.apply(this, arguments);
        const sync = performance.now();
        Promise.resolve(out).then(() => window.__rsDraws.push([name, id, t0, sync, performance.now()]));
        return out;
      };
      p[name].__rs = true;
    }
  }});
})();
"""


def _bucket(url: str) -> str:
    if not url:
        return "(no script: native, GC, idle)"
    for key, name in (("plotly-basic", "plotly.js (basic bundle)"), ("plotly.min", "plotly.js (full)"),
                      ("react-dom", "react-dom"), ("react@", "react"), ("dash-renderer", "dash-renderer"),
                      ("async-graph", "dcc graph chunk"), ("async-dropdown", "dcc dropdown chunk"),
                      ("dash_core_components", "dcc main bundle"), ("dash_table", "dash_table"),
                      ("regenerator", "regenerator-runtime"), ("graph-resize", "our assets"),
                      ("dash_html_components", "dash html bundle"), ("prop-types", "prop-types")):
        if key in url:
            return name
    return url.rsplit("/", 1)[-1][:40]


def _self_time_by_script(profile: dict[str, Any], start_us: float, end_us: float) -> dict[str, float]:
    """Milliseconds of CPU-profile self time per script between ``start_us`` and ``end_us`` (profile clock)."""
    nodes = {n["id"]: n for n in profile["nodes"]}
    out: dict[str, float] = defaultdict(float)
    t = float(profile["startTime"])
    for node_id, delta in zip(profile["samples"], profile["timeDeltas"], strict=True):
        t += delta
        if not start_us <= t <= end_us:
            continue
        frame = nodes[node_id]["callFrame"]
        name = frame["functionName"]
        key = name if name in ("(idle)", "(garbage collector)", "(program)") else _bucket(frame["url"])
        out[key] += delta / 1000.0
    return out


def _main_thread(events: list[dict[str, Any]], url_origin: str, start_us: float, end_us: float
                 ) -> dict[str, float]:
    """Milliseconds of top-level main-thread work by kind within [start_us, end_us] (trace clock)."""
    names = {(e["pid"], e["tid"]) for e in events
             if e.get("name") == "thread_name" and e.get("args", {}).get("name") == "CrRendererMain"}
    # The renderer that loaded our origin: the one whose main thread evaluated our scripts.
    pids = {e["pid"] for e in events if e.get("name") == "EvaluateScript"
            and url_origin in str(e.get("args", {}).get("data", {}).get("url", ""))}
    main = {key for key in names if key[0] in pids}
    out: dict[str, float] = defaultdict(float)
    for e in events:
        if (e["pid"], e["tid"]) not in main or e.get("ph") != "X" or "dur" not in e:
            continue
        if not start_us <= e["ts"] <= end_us:
            continue
        name = e["name"]
        data = e.get("args", {}).get("data", {}) or {}
        if name == "EvaluateScript":
            out[f"script eval+compile: {_bucket(str(data.get('url', '')))}"] += e["dur"] / 1000.0
        elif name in ("v8.compile", "v8.compileModule", "V8.CompileCode"):
            out[f"compile: {_bucket(str(data.get('url', '')))}"] += e["dur"] / 1000.0
        elif name in ("Layout", "UpdateLayoutTree", "Paint", "PrePaint", "Layerize", "UpdateLayer",
                      "Commit", "HitTest"):
            out["style/layout/paint"] += e["dur"] / 1000.0
        elif name in ("MinorGC", "MajorGC", "V8.GCScavenger", "V8.GCFinalizeMC"):
            out["GC"] += e["dur"] / 1000.0
        elif name == "ParseHTML":
            out["HTML parse"] += e["dur"] / 1000.0
        elif name == "RunTask":
            out["(all top-level tasks)"] += e["dur"] / 1000.0
    return out


def visit(browser: Any, url: str, end: str, trace_path: Path) -> dict[str, Any]:
    """One first visit of ``url`` under tracing and the CPU profiler; ``end`` is "overview" or "bare"."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.add_init_script(WRAP_PLOTLY)
    page = context.new_page()
    page.set_default_timeout(120_000)
    # A same-origin 404 first, so that the profiler runs in the page's renderer; not a path Dash answers with
    # its index page, which would fill the cache before the measured visit.
    page.goto(url + "/assets/not-there.txt")
    cdp = context.new_cdp_session(page)
    cdp.send("Profiler.enable")
    cdp.send("Profiler.setSamplingInterval", {"interval": 200})
    browser.start_tracing(page=page, path=str(trace_path), categories=CATEGORIES)
    cdp.send("Profiler.start")
    started = time.perf_counter()
    page.goto(url + "/")
    if end == "bare":
        page.wait_for_function("() => document.querySelector('#out') && "
                               "document.querySelector('#out').innerText === 'echo bare'")
    else:
        _graphs_drawn(page, OVERVIEW_GRAPHS if end == "overview" else floor_graph_ids(int(end)))
    wall_s = time.perf_counter() - started
    done_ms = page.evaluate("performance.now()")
    profile = cdp.send("Profiler.stop")["profile"]
    browser.stop_tracing()
    nav = page.evaluate("JSON.parse(JSON.stringify(performance.getEntriesByType('navigation')[0]))")
    resources = page.evaluate("JSON.parse(JSON.stringify(performance.getEntriesByType('resource')))")
    draws = page.evaluate("window.__rsDraws || []")
    trace_path.with_suffix(".cpuprofile").write_text(json.dumps(profile))
    events = json.loads(trace_path.read_text())["traceEvents"]
    context.close()
    # performance.now() 0 is the navigation start; the trace clock of that moment is the navigationStart mark.
    nav_start = [e["ts"] for e in events if e.get("name") == "navigationStart"
                 and "not-there" not in str(e.get("args", {}).get("data", {}).get("documentLoaderURL", ""))]
    origin_us = max(nav_start) if nav_start else min(e["ts"] for e in events if e.get("ts"))
    end_us = origin_us + done_ms * 1000.0
    return {"wall_s": wall_s, "done_ms": done_ms, "nav": nav, "resources": resources, "draws": draws,
            "main": _main_thread(events, url, origin_us, end_us),
            "cpu": _self_time_by_script(profile, float(profile["startTime"]), float(profile["endTime"]))}


def _median_map(maps: list[dict[str, float]]) -> dict[str, float]:
    keys = {k for m in maps for k in m}
    return {k: statistics.median(m.get(k, 0.0) for m in maps) for k in keys}


def report(name: str, runs: list[dict[str, Any]]) -> None:
    print(f"\n=== {name}: {len(runs)} first visits ===")
    print(f"wall (goto -> drawn) median {statistics.median(r['wall_s'] for r in runs) * 1000:8.1f} ms; "
          f"page clock until drawn {statistics.median(r['done_ms'] for r in runs):8.1f} ms")
    last = runs[-1]
    nav = last["nav"]
    print(f"document: server {nav['responseStart'] - nav['requestStart']:.1f} ms, responseEnd "
          f"{nav['responseEnd']:.1f} ms, DOMContentLoaded {nav['domContentLoadedEventEnd']:.1f} ms")
    print("responses (last visit): start ms  server ms  end ms  bytes on wire  decoded  name")
    for r in sorted(last["resources"], key=lambda r: r["startTime"]):
        server = r["responseStart"] - r["requestStart"] if r["requestStart"] else float("nan")
        print(f"  {r['startTime']:8.1f} {server:9.1f} {r['responseEnd']:8.1f} {r['transferSize']:12d} "
              f"{r['decodedBodySize']:9d}  {r['name'].split('/', 3)[-1][:70]}")
    print("main thread of the renderer (median ms):")
    for key, ms in sorted(_median_map([r["main"] for r in runs]).items(), key=lambda kv: -kv[1]):
        print(f"  {ms:8.1f}  {key}")
    print("CPU profile self time by script (median ms, whole profile):")
    for key, ms in sorted(_median_map([r["cpu"] for r in runs]).items(), key=lambda kv: -kv[1]):
        if ms >= 1.0:
            print(f"  {ms:8.1f}  {key}")
    if last["draws"]:
        print("Plotly calls (last visit): call  graph  start ms  sync ms  until resolved ms")
        for fn, gid, t0, sync, t1 in sorted(last["draws"], key=lambda d: d[2]):
            print(f"  {fn:8s} {gid:28s} {t0:8.1f} {sync - t0:8.1f} {t1 - t0:8.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard_profile", description=__doc__.split("\n")[0])
    parser.add_argument("--vms", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trace-out", type=Path, default=RESULTS / "traces")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    store = open_store(RESULTS / f"dashboard-{args.vms}x{args.days}.db", args.vms, args.days, fresh=False)
    app = create_app(Settings(), store, load_catalogue(), data_mode="demo", ttl_s=3600, warm=False)
    data = dashboard_data(app)
    data.warm()
    data.wait_for_refresh(3600)
    data.warm()
    args.trace_out.mkdir(parents=True, exist_ok=True)
    floors = floor_apps(graphs=4)
    runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    with serve(app) as url, serve(floors["bare"]) as bare_url, serve(floors["one graph"]) as one_url, \
            serve(floors["4 graphs"]) as four_url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        targets = {"bare": (bare_url, "bare"), "one graph": (one_url, "1"), "four graphs": (four_url, "4"),
                   "overview": (url, "overview")}
        for _ in range(args.rounds):
            for name, (target, end) in targets.items():
                path = args.trace_out / f"{name.replace(' ', '-')}.json"
                settle()
                runs[name].append(visit(browser, target, end, path))
        browser.close()
    for name, got in runs.items():
        report(name, got)
    print(f"\n{settle_summary()}")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
