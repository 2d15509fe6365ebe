"""Run every benchmark: ``python -m bench`` (or ``make bench``). Each prints its figures and ratios."""

from __future__ import annotations

import importlib
import sys

BENCHES = ("bench.collector_bench", "bench.analytics_bench", "bench.dashboard_bench", "bench.patterns_bench",
           "bench.robustness_bench", "bench.running_hour_bench", "bench.own_frontier_bench", "bench.fleet_subsets")


def main(argv: list[str]) -> int:
    chosen = [b for b in BENCHES if not argv or any(a in b for a in argv)]
    for name in chosen:
        print(f"== {name}", flush=True)
        module = importlib.import_module(name)
        module.main([])  # each bench with its defaults; the selection words are not its flags
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
