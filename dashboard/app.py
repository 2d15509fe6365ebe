"""The Dash app: ``create_app(...)`` wires the view model, the shell (banner, navigation, global filters)
and the pages behind an explicit router, so that several apps can live in one process (tests, bench).

``rightsizer serve`` builds the app (with the API beside it, ``rightsizer.webapp``) and runs it.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from dash import Dash, Input, Output, State, dcc, html
from flask import Flask, has_request_context, request

from analytics.catalogue import CsvPriceCatalogue, StoragePrices
from collector.errors import RightsizerError
from collector.store.base import TimeSeriesStore
from core.settings import Settings
from dashboard import ids, location, web
from dashboard.callback_guard import guard_callbacks
from dashboard.data import DATA_MODES, DEFAULT_RANGE, RANGES, ApplyHook, DashboardData, Filters
from dashboard.pages import backups, overview, recommendations, vm_detail, vms
from dashboard.pages.common import FILTER_INPUTS
from dashboard.security import add_security_headers
from dashboard.signin import current_principal
from dashboard.viewmodel.vm_detail import find_vm
from dashboard.viewmodel.warm import warm_default_views

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent / "assets"
#: (path, title) of the pages in the navigation bar.
NAV_PAGES: tuple[tuple[str, str], ...] = (
    (overview.PATH, overview.TITLE),
    (vms.PATH, vms.TITLE),
    (recommendations.PATH, recommendations.TITLE),
    (backups.PATH, backups.TITLE),
)


#: Component chunks Dash loads on demand: dcc's dropdown (the filter bar, on every page) and graph, and
#: dash_table's grid with its highlighter; the index page preloads the ones its page draws (dashboard/web.py).
_DROPDOWN, _GRAPH = "dash/dcc/async-dropdown.js", "dash/dcc/async-graph.js"
_TABLE = ("dash/dash_table/async-table.js", "dash/dash_table/async-highlight.js")


def first_chunks(pathname: str) -> tuple[str, ...]:
    """The on-demand component chunks the page at ``pathname`` draws first."""
    if pathname in (recommendations.PATH, backups.PATH):
        return (_DROPDOWN, _GRAPH, *_TABLE)
    if pathname == vms.PATH:
        return (_DROPDOWN, *_TABLE)
    if pathname.startswith(vm_detail.PATH_PREFIX) or pathname in ("/", "/overview"):
        return (_DROPDOWN, _GRAPH)
    return (_DROPDOWN,)


class LeanDash(Dash):
    """Dash whose index page loads less and asks earlier (dashboard/web.py): the regenerator-runtime in
    place of Dash's polyfill bundle (when fetched) and preloads for the layout and the page's chunks."""

    runtime_url: str | None = None

    def interpolate_index(self, metas: str = "", title: str = "", css: str = "", config: str = "",
                          scripts: str = "", app_entry: str = "", favicon: str = "", renderer: str = "") -> str:
        if self.runtime_url is not None:
            scripts = web.without_polyfill(scripts, self.runtime_url)
        path = request.path if has_request_context() else "/"
        prefix = str(self.config.requests_pathname_prefix or "/")
        metas += web.preload_links(prefix, first_chunks(path))
        index: str = super().interpolate_index(  # type: ignore[no-untyped-call]  # Dash leaves it untyped
            metas=metas, title=title, css=css, config=config, scripts=scripts, app_entry=app_entry,
            favicon=favicon, renderer=renderer)
        return index


def banner_text(data_mode: str) -> str:
    """The data-mode banner sentence; an unknown mode is shown as is."""
    return DATA_MODES.get(data_mode, f"Data mode: {data_mode}")


def _nav(pathname: str, query: str = "") -> list[Any]:
    links = []
    for path, title in NAV_PAGES:
        active = pathname == path or (path == vms.PATH and pathname.startswith(vm_detail.PATH_PREFIX))
        link_id = f"app-nav-{path.strip('/') or 'overview'}"
        links.append(dcc.Link(title, href=path + query, className="active" if active else "", id=link_id))
    return links


def route(data: DashboardData, pathname: str | None, filters: Filters | None = None,
          hook: ApplyHook | None = None, *, state: location.ViewState | None = None,
          query: str = "") -> tuple[Any, list[Any]]:
    """The page for ``pathname``, filled for ``filters`` (and the lookback/table search of ``state``), and the
    navigation whose links carry ``query``.

    Pages arrive filled, so a page load costs no callback round trip; their own callbacks only run when a
    control changes.
    """
    path = pathname or "/"
    state = state or location.ViewState(filters or Filters())
    filters = filters or state.filters
    if path.startswith(vm_detail.PATH_PREFIX):
        key = unquote(path[len(vm_detail.PATH_PREFIX):].strip("/"))  # /vm/<uuid> or /vm/<name>
        page = vm_detail.layout(data, find_vm(data, key) or key, filters, lookback=state.lookback_days)
    elif path == vms.PATH:
        page = vms.layout(data, filters, table_filter=state.table_filter)
    elif path == recommendations.PATH:
        page = recommendations.layout(data, filters, hook=hook, lookback=state.lookback_days,
                                      table_filter=state.table_filter)
    elif path == backups.PATH:
        page = backups.layout(data, filters)
    elif path in ("/", "/overview"):
        page = overview.layout(data, filters)
    else:
        page = html.Div([html.H1("Page not found"), html.P(f"There is no page at {path!r}."),
                         dcc.Link("Go to the overview", href="/")])
    return page, _nav(path, query)


def filter_bar(data: DashboardData, filters: Filters) -> html.Div:
    """The global filters, set to ``filters``; their values live in the address (dashboard/location.py)."""
    labels, hosts = data.filter_options()
    as_of = data.as_of().astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return html.Div([
        dcc.Dropdown(id=ids.FILTER_LABELS, options=[{"label": p, "value": p} for p in labels], multi=True,
                     value=list(filters.labels), placeholder="Filter by label (key=value)", className="rs-filter"),
        dcc.Dropdown(id=ids.FILTER_HOSTS, options=[{"label": h, "value": h} for h in hosts], multi=True,
                     value=list(filters.hosts), placeholder="Filter by host", className="rs-filter"),
        dcc.RadioItems(id=ids.FILTER_RANGE, options=[{"label": f"last {k}", "value": k} for k in RANGES],
                       value=filters.range_key, inline=True, className="rs-filter-range"),
        html.Span(f"Data as of {as_of}{_loading_text(data)} · money in {data.currency}", id=ids.DATA_AS_OF,
                  className="rs-asof"),
    ], className="rs-filters")


def _loading_text(data: DashboardData) -> str:
    note = data.loading_note()
    return f" · {note}" if note else ""


def view(data: DashboardData, pathname: str | None, search: str | None,
         hook: ApplyHook | None = None) -> tuple[list[Any], list[Any], str]:
    """Callback body of the router: filter bar and page for an address, the navigation, and the view key."""
    labels, hosts = data.filter_options()
    state = location.parse(search, labels=labels, hosts=hosts)
    page, nav = route(data, pathname, hook=hook, state=state, query=location.global_part(search))
    return ([filter_bar(data, state.filters), html.Main(page, id=ids.PAGE, className="rs-page")], nav,
            view_key(pathname, search))


def view_key(pathname: str | None, search: str | None) -> str:
    """What identifies a rendered view: the path and the query string, as the browser shows them."""
    return (pathname or "/") + (search or "")


def shell(data: DashboardData, hook: ApplyHook | None = None, address: str | None = None) -> html.Div:
    """The page frame: header with navigation, data-mode banner, and the view for ``address``.

    Built per page load. ``address`` is the URL the browser shows (the Referer of the layout request): the
    view for it comes inside the layout, so a first visit needs no callback round trip before it draws.
    Without it the view is left empty and the router fills it.
    """
    detail = {
        "demo": "usage numbers are generated, not measured; the inventory is the libvirt test driver's",
        "import": "figures describe the imported period, not this machine",
        "live": "sampled from libvirt by the collector",
        "central": "collected by the agents on each host, read back through PromQL",
    }.get(data.data_mode, "")
    where = location.path_and_query(address)
    if where is not None:
        body, nav, key = view(data, where[0], where[1], hook)
    else:
        body, nav, key = [filter_bar(data, Filters()), html.Main(id=ids.PAGE, className="rs-page")], _nav("/"), None
    return html.Div([
        dcc.Location(id=ids.URL, refresh="callback-nav"),
        dcc.Store(id=ids.VIEW_KEY, data=key),
        dcc.Store(id=ids.ROUTE),
        html.Header([
            html.Div("rightsizer", className="rs-brand"),
            html.Nav(nav, id=ids.NAV, className="rs-nav"),
        ], className="rs-header"),
        html.Div([banner_text(data.data_mode), html.Small(detail)],
                 id=ids.BANNER, className=f"rs-banner rs-banner-{data.data_mode}"),
        html.Div(body, id=ids.VIEW),
        *_staged_poll(data),
    ])


def _staged_poll(data: DashboardData) -> list[Any]:
    """While a short first window is shown: a poll that reloads the page once the full window is in."""
    if data.is_complete():
        return []
    return [dcc.Interval(id=ids.STAGED_POLL, interval=STAGED_POLL_MS), dcc.Store(id=ids.STAGED_DONE)]


#: How often a page showing the short first window asks whether the full one is in.
STAGED_POLL_MS = 3000
_RELOAD_WHEN_DONE = """
function(done) {
    if (done === true) { window.location.reload(); }
    return window.dash_clientside.no_update;
}
"""


#: Asks the router for a view only when the address differs from the one shown (a link, back/forward, or a
#: first load whose layout came without the view); a control that rewrote the address has updated the key.
_ROUTE_GUARD = """
function(pathname, search, shown) {
    if (pathname === undefined || pathname === null) { return window.dash_clientside.no_update; }
    const wanted = pathname + (search || "");
    return wanted === shown ? window.dash_clientside.no_update : wanted;
}
"""


def _request_address() -> str | None:
    """The page address behind the current layout request (its Referer, same origin only), if any."""
    if not has_request_context():
        return None
    referrer = request.referrer
    if not referrer or not referrer.startswith(request.host_url):
        return None
    return referrer


def register_router(app: Dash, data: DashboardData, hook: ApplyHook | None) -> None:
    """The router and the controls that write the address."""
    app.clientside_callback(  # type: ignore[no-untyped-call]  # Dash leaves it untyped
        _ROUTE_GUARD, Output(ids.ROUTE, "data"), Input(ids.URL, "pathname"), Input(ids.URL, "search"),
        State(ids.VIEW_KEY, "data"))

    @app.callback(Output(ids.STAGED_DONE, "data"), Input(ids.STAGED_POLL, "n_intervals"), prevent_initial_call=True)
    def _staged(_n: int | None) -> bool:
        return data.is_complete()

    app.clientside_callback(  # type: ignore[no-untyped-call]  # Dash leaves it untyped
        _RELOAD_WHEN_DONE, Output(ids.STAGED_POLL, "disabled"), Input(ids.STAGED_DONE, "data"))

    @app.callback(Output(ids.VIEW, "children"), Output(ids.NAV, "children"),
                  Output(ids.VIEW_KEY, "data"), Input(ids.ROUTE, "data"), prevent_initial_call=True)
    def _route(wanted: str | None) -> tuple[Any, ...]:
        where = location.path_and_query(wanted) or ("/", "")
        return view(data, where[0], where[1], hook)

    @app.callback(Output(ids.URL, "search", allow_duplicate=True), Output(ids.VIEW_KEY, "data", allow_duplicate=True),
                  Output(ids.NAV, "children", allow_duplicate=True), *FILTER_INPUTS, State(ids.URL, "pathname"),
                  State(ids.URL, "search"), prevent_initial_call=True)
    def _filters_to_address(range_key: str | None, labels: list[str] | None, hosts: list[str] | None,
                            pathname: str | None, search: str | None) -> tuple[Any, ...]:
        new = location.with_values(search, location.filter_values(Filters.of(range_key, labels, hosts)))
        return new, view_key(pathname, new), _nav(pathname or "/", location.global_part(new))

    for control, key in ((Input(ids.VMS_TABLE, "filter_query"), location.FILTER),
                         (Input(ids.RECS_TABLE, "filter_query"), location.FILTER),
                         (Input(ids.RECS_LOOKBACK, "value"), location.LOOKBACK),
                         (Input(ids.VM_LOOKBACK, "value"), location.LOOKBACK)):
        _address_follows(app, control, key)


def _address_follows(app: Dash, control: Input, key: str) -> None:
    """Write ``control``'s value into the address under ``key`` when the user changes it."""

    @app.callback(Output(ids.URL, "search", allow_duplicate=True), Output(ids.VIEW_KEY, "data", allow_duplicate=True),
                  control, State(ids.URL, "pathname"), State(ids.URL, "search"), prevent_initial_call=True)
    def _to_address(value: Any, pathname: str | None, search: str | None) -> tuple[str, str]:
        new = location.with_values(search, {key: value})
        return new, view_key(pathname, new)


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
) -> Dash:
    """Build the dashboard for a store and catalogue.

    ``data_mode`` is "live", "demo" or "import" (shown in the banner). ``actions`` is the apply hook the
    Recommendations page calls when ``settings.actions.enabled`` (with the configured token); without it
    nothing can be applied. ``warm`` builds the data snapshot in a background thread right away.
    ``lean`` (the default) loads the partial plotly.js bundle and gzips responses (dashboard/web.py);
    ``lean=False`` is Dash's plain setup, kept as the bench's point of comparison. ``data`` shares the view
    model of another app (its snapshot and memo) instead of building one.
    The HTTP API is not part of it: the composition root (``rightsizer.webapp.build_web_app``) mounts it on
    the same Flask server.
    """
    shared = data is not None
    if data is None:
        data = DashboardData(settings, store, catalogue, data_mode=data_mode, storage=storage, clock=clock,
                             ttl_s=ttl_s, view_warmer=warm_default_views, principal=current_principal)
    server = Flask(__name__)
    app = (LeanDash if lean else Dash)(
        __name__,
        server=server,  # type: ignore[arg-type]  # Dash accepts a Flask app; its stub says otherwise
        external_scripts=web.plotly_script(server) if lean else [],
        assets_folder=str(ASSETS),
        title="rightsizer",
        update_title="",
        suppress_callback_exceptions=True,
        serve_locally=True,
    )
    if isinstance(app, LeanDash):
        web.enable_compression(server)
        app.runtime_url = web.regenerator_script(server)
    app.layout = lambda: shell(data, actions, _request_address())
    register_router(app, data, actions)
    for page in (overview, vms, vm_detail, recommendations, backups):
        page.register(app, data, hook=actions)
    # What a user sees first is rebuilt right after every data refresh, off the request path.
    for update in (overview.update, vms.update, recommendations.update, backups.update) if not shared else ():
        data.add_warmer(functools.partial(update, data, DEFAULT_RANGE, None, None))
    if not shared:
        data.add_warmer(functools.partial(overview.sections, data))
    app.server.config["RIGHTSIZER_DATA"] = data  # for the bench and tests
    add_security_headers(app)  # after every callback exists: the CSP carries their inline scripts' hashes
    guard_callbacks(app)
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
