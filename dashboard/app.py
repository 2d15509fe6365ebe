"""The Dash app: ``create_app(...)`` wires the view model, the shell (banner, navigation, global filters)
and the pages behind an explicit router, so that several apps can live in one process (tests, bench).

``rightsizer serve`` builds the app and runs it; ``python -m dashboard.app`` serves a store on its own.
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from dash import Dash, Input, Output, State, dcc, html
from flask import Flask

from analytics.catalogue import CsvPriceCatalogue, StoragePrices
from collector.config import Settings
from collector.errors import RightsizerError
from collector.store.base import TimeSeriesStore
from dashboard import ids, web
from dashboard.api.routes import mount_api
from dashboard.api.service import ApiService, PlanRunner
from dashboard.data import DATA_MODES, DEFAULT_RANGE, RANGES, ApplyHook, DashboardData, Filters
from dashboard.pages import backups, overview, recommendations, vm_detail, vms
from dashboard.security import add_security_headers

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent / "assets"
#: (path, title) of the pages in the navigation bar.
NAV_PAGES: tuple[tuple[str, str], ...] = (
    (overview.PATH, overview.TITLE),
    (vms.PATH, vms.TITLE),
    (recommendations.PATH, recommendations.TITLE),
    (backups.PATH, backups.TITLE),
)


def banner_text(data_mode: str) -> str:
    """The data-mode banner sentence; an unknown mode is shown as is."""
    return DATA_MODES.get(data_mode, f"Data mode: {data_mode}")


def _nav(pathname: str) -> list[Any]:
    links = []
    for path, title in NAV_PAGES:
        active = pathname == path or (path == vms.PATH and pathname.startswith(vm_detail.PATH_PREFIX))
        link_id = f"app-nav-{path.strip('/') or 'overview'}"
        links.append(dcc.Link(title, href=path, className="active" if active else "", id=link_id))
    return links


def route(data: DashboardData, pathname: str | None, filters: Filters | None = None,
          hook: ApplyHook | None = None) -> tuple[Any, list[Any]]:
    """Callback body of the router: the page for ``pathname``, filled for ``filters``, and the navigation.

    Pages arrive filled, so a page load costs one callback round trip; their own callbacks only run when a
    filter changes.
    """
    path = pathname or "/"
    filters = filters or Filters()
    if path.startswith(vm_detail.PATH_PREFIX):
        key = unquote(path[len(vm_detail.PATH_PREFIX):].strip("/"))  # /vm/<uuid> or /vm/<name>
        page = vm_detail.layout(data, data.find_vm(key) or key, filters)
    elif path == vms.PATH:
        page = vms.layout(data, filters)
    elif path == recommendations.PATH:
        page = recommendations.layout(data, filters, hook=hook)
    elif path == backups.PATH:
        page = backups.layout(data, filters)
    elif path in ("/", "/overview"):
        page = overview.layout(data, filters)
    else:
        page = html.Div([html.H1("Page not found"), html.P(f"There is no page at {path!r}."),
                         dcc.Link("Go to the overview", href="/")])
    return page, _nav(path)


def shell(data: DashboardData) -> html.Div:
    """The page frame: header with navigation, data-mode banner, global filters, page container.

    Built per page load so that filter choices and the as-of time are current.
    """
    labels, hosts = data.filter_options()
    as_of = data.as_of().astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    detail = {
        "demo": "usage numbers are generated, not measured; the inventory is the libvirt test driver's",
        "import": "figures describe the imported period, not this machine",
        "live": "sampled from libvirt by the collector",
        "central": "collected by the agents on each host, read back through PromQL",
    }.get(data.data_mode, "")
    return html.Div([
        dcc.Location(id=ids.URL, refresh="callback-nav"),
        html.Header([
            html.Div("rightsizer", className="rs-brand"),
            html.Nav(_nav("/"), id=ids.NAV, className="rs-nav"),
        ], className="rs-header"),
        html.Div([banner_text(data.data_mode), html.Small(detail)],
                 id=ids.BANNER, className=f"rs-banner rs-banner-{data.data_mode}"),
        html.Div([
            dcc.Dropdown(id=ids.FILTER_LABELS, options=[{"label": p, "value": p} for p in labels], multi=True,
                         placeholder="Filter by label (key=value)", className="rs-filter",
                         persistence=True, persistence_type="session"),
            dcc.Dropdown(id=ids.FILTER_HOSTS, options=[{"label": h, "value": h} for h in hosts], multi=True,
                         placeholder="Filter by host", className="rs-filter",
                         persistence=True, persistence_type="session"),
            dcc.RadioItems(id=ids.FILTER_RANGE, options=[{"label": f"last {k}", "value": k} for k in RANGES],
                           value=DEFAULT_RANGE, inline=True, className="rs-filter-range",
                           persistence=True, persistence_type="session"),
            html.Span(f"Data as of {as_of} · money in {data.currency}", id=ids.DATA_AS_OF, className="rs-asof"),
        ], className="rs-filters"),
        html.Main(id=ids.PAGE, className="rs-page"),
    ])


def create_app(
    settings: Settings,
    store: TimeSeriesStore,
    catalogue: CsvPriceCatalogue,
    *,
    data_mode: str,
    actions: ApplyHook | None = None,
    storage: StoragePrices | None = None,
    clock: Callable[[], datetime] | None = None,
    ttl_s: float = 60.0,
    warm: bool = True,
    lean: bool = True,
    data: DashboardData | None = None,
    plan_runner: PlanRunner | None = None,
) -> Dash:
    """Build the dashboard for a store and catalogue.

    ``data_mode`` is "live", "demo" or "import" (shown in the banner). ``actions`` is the apply hook the
    Recommendations page calls when ``settings.actions.enabled`` (with the configured token); without it
    nothing can be applied. ``warm`` builds the data snapshot in a background thread right away.
    ``lean`` (the default) loads the partial plotly.js bundle and gzips responses (dashboard/web.py);
    ``lean=False`` is Dash's plain setup, kept as the bench's point of comparison. ``data`` shares the view
    model of another app (its snapshot and memo) instead of building one.
    The HTTP API (/api/v1, /healthz, /readyz) rides on the same Flask server; its writes run plans
    through ``plan_runner`` (None: writes are refused as disabled).
    """
    shared = data is not None
    if data is None:
        data = DashboardData(settings, store, catalogue, data_mode=data_mode, storage=storage, clock=clock,
                             ttl_s=ttl_s)
    server = Flask(__name__)
    app = Dash(
        __name__,
        server=server,  # type: ignore[arg-type]  # Dash accepts a Flask app; its stub says otherwise
        external_scripts=web.plotly_script(server) if lean else [],
        assets_folder=str(ASSETS),
        title="rightsizer",
        update_title="",
        suppress_callback_exceptions=True,
        serve_locally=True,
    )
    if lean:
        web.enable_compression(server)
    app.layout = lambda: shell(data)

    @app.callback(
        Output(ids.PAGE, "children"), Output(ids.NAV, "children"), Input(ids.URL, "pathname"),
        State(ids.FILTER_RANGE, "value"), State(ids.FILTER_LABELS, "value"), State(ids.FILTER_HOSTS, "value"),
    )
    def _route(pathname: str | None, range_key: str | None, labels: list[str] | None,
               hosts: list[str] | None) -> tuple[Any, list[Any]]:
        return route(data, pathname, Filters.of(range_key, labels, hosts), actions)

    for page in (overview, vms, vm_detail, recommendations, backups):
        page.register(app, data, hook=actions)
    # What a user sees first is rebuilt right after every data refresh, off the request path.
    for update in (overview.update, vms.update, recommendations.update, backups.update) if not shared else ():
        data.add_warmer(functools.partial(update, data, DEFAULT_RANGE, None, None))
    mount_api(app.server, ApiService(settings, store, catalogue, runner=plan_runner, storage=storage,
                                     clock=clock or (lambda: datetime.now(UTC))))
    app.server.config["RIGHTSIZER_DATA"] = data  # for the bench and tests
    add_security_headers(app)  # after every callback exists: the CSP carries their inline scripts' hashes
    if warm:
        threading.Thread(target=_warm, args=(data,), name="dashboard-warm", daemon=True).start()
    return app


def _warm(data: DashboardData) -> None:
    try:
        data.warm()
    except RightsizerError as exc:  # the first page load retries and shows the error
        log.warning("dashboard warm-up failed: %s", exc)


def dashboard_data(app: Dash) -> DashboardData:
    """The view model behind an app made by ``create_app``."""
    data: DashboardData = app.server.config["RIGHTSIZER_DATA"]
    return data


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the dashboard for an existing store: ``python -m dashboard.app --db var/rightsizer.db``."""
    from analytics.catalogue import load_catalogue
    from collector.config import load_settings
    from collector.store.sqlite import SqliteStore

    parser = argparse.ArgumentParser(prog="python -m dashboard.app", description=main.__doc__)
    parser.add_argument("--config", metavar="FILE", help="TOML config file")
    parser.add_argument("--db", metavar="PATH", help="SQLite store (default from the config)")
    parser.add_argument("--listen", metavar="HOST:PORT", help="address to serve on (default 127.0.0.1:8050)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        overrides: dict[str, Any] = {}
        if args.db:
            overrides["store"] = {"path": args.db}
        if args.listen:
            overrides["dashboard"] = {"listen": args.listen}
        settings = load_settings(args.config, overrides=overrides)
        if not Path(settings.store.path).exists():
            print(f"dashboard: database {settings.store.path!r} does not exist; run 'rightsizer collect' "
                  "or 'rightsizer serve' first, or pass --db", file=sys.stderr)
            return 2
        store = SqliteStore(settings.store.path)
        catalogue = load_catalogue(settings.costs.catalogue)
    except RightsizerError as exc:
        print(f"dashboard: {exc}", file=sys.stderr)
        return 2
    mode = store.get_meta("data_mode") or "live"
    host, _, port = settings.dashboard.listen.rpartition(":")
    app = create_app(settings, store, catalogue, data_mode=mode)
    try:
        server = web.start_server(app.server, host.strip("[]"), int(port))
    except OSError as exc:
        print(f"dashboard: --listen {settings.dashboard.listen!r}: cannot listen there "
              f"({exc.strerror or exc}); pick a free port on an address of this machine", file=sys.stderr)
        return 2
    log.info("dashboard on %s/ (%s)", server.url, banner_text(mode))
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        store.close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
