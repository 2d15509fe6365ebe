"""``--source`` / ``--prometheus-url``: where serve, costs, recommend and report read history."""

from __future__ import annotations

import argparse
from typing import Any


def add_source_flags(p: argparse.ArgumentParser) -> None:
    """Register the source flags (they override ``[source] kind`` and ``url``)."""
    g = p.add_argument_group("history source")
    g.add_argument("--source", choices=("sqlite", "prometheus"), default=None,
                   help="read history from the SQLite store (default) or a Prometheus-compatible query API "
                        "(Prometheus, VictoriaMetrics, Thanos, Mimir); overrides [source] kind")
    g.add_argument("--prometheus-url", metavar="URL", default=None,
                   help="query API base URL, e.g. http://127.0.0.1:9090 (implies --source prometheus); "
                        "credentials, matchers and limits are in [source]")


def source_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The ``[source]`` settings the flags set (empty when none given)."""
    over: dict[str, Any] = {}
    if getattr(args, "prometheus_url", None):
        over["url"] = args.prometheus_url
        over["kind"] = "prometheus"
    if getattr(args, "source", None):
        over["kind"] = args.source
    return over
