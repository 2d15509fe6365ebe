"""The dashboard end to end in headless Chromium (Debian's, through Playwright) against an in-process app.

One SqliteStore seeded with the demo fleet (rightsizer/demo.py, 24 VMs, 30 days of synthetic history) plus
one VM whose name and label are HTML, one app on a free 127.0.0.1 port and one browser for the whole test run.
Screenshots go to test-artifacts/ for a human to look at.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Dialog, Page

from analytics.catalogue import load_catalogue
from analytics.findings.finding import FINDING_CSV_COLUMNS
from analytics.findings.headline import headline_saving
from collector.store.sqlite import SqliteStore
from core.settings import Settings
from dashboard.app import create_app, dashboard_data
from dashboard.pages.paged import PAGE_ROWS
from dashboard.snapshot import Snapshot
from dashboard.web import PLOTLY_ROUTE, plotly_bundle_path, plotly_version, regenerator_path, start_server
from rightsizer.demo import demo_fleet
from rightsizer.demo_history import seed_synthetic_history
from tests.helpers.dropdown import pick_by_search

pytestmark = [pytest.mark.integration, pytest.mark.browser]

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
XSS_NAME = "<img src=x onerror=alert(1)>"
XSS_LABEL = "<script>alert(2)</script>"
XSS_UUID = "0badc0de-0000-4000-8000-00000000b00b"
TIMEOUT_MS = 30_000


@dataclass(frozen=True)
class Dashboard:
    url: str
    fleet_size: int
    largest_saving_vm: str = ""  # the VM whose findings add most to the headline's gross savings


@pytest.fixture(scope="session")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    store = SqliteStore(tmp_path_factory.mktemp("dashboard") / "rs.db")
    fleet = list(demo_fleet(24, seed=11))
    fleet.append(replace(fleet[2], name=XSS_NAME, uuid=XSS_UUID,
                         labels={**fleet[2].labels, "team": XSS_LABEL}))
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    seed_synthetic_history(store, fleet, days=30, now=now, seed=11, points_per_hour=2)
    app = create_app(Settings(), store, load_catalogue(), data_mode="demo")
    snap = dashboard_data(app).snapshot()  # built before the first page: it can outlast a page timeout
    server = start_server(app.server, "127.0.0.1", 0, name="dashboard-test")  # as rightsizer serve does
    try:
        yield Dashboard(url=server.url, fleet_size=len(fleet), largest_saving_vm=_largest_saving_vm(snap))
    finally:
        server.stop()
        store.close()


class DashPage:
    """A page plus what it saw: JavaScript errors and dialogs (alert/confirm/prompt)."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("dialog", self._dialog)
        # a Content-Security-Policy violation (a blocked script, eval or style) shows only on the console
        page.on("console", lambda msg: self.errors.append(msg.text)
                if "Content Security Policy" in msg.text else None)

    def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    seen = DashPage(pg)
    yield pg
    pg.wait_for_timeout(300)  # let a late error or dialog surface
    context.close()
    assert seen.errors == [], f"JavaScript errors on the page: {seen.errors}"
    assert seen.dialogs == [], f"dialogs fired (user data executed as markup?): {seen.dialogs}"


def _shot(pg: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)


def _graph_rendered(pg: Page, graph_id: str) -> None:
    """Wait until Plotly has drawn at least one trace with points in the graph."""
    pg.wait_for_function(
        "id => { const g = document.querySelector('#' + id + ' .js-plotly-plot');"
        " return !!g && Array.isArray(g.data) && g.data.length > 0"
        " && g.querySelectorAll('.main-svg .trace').length > 0; }",
        arg=graph_id,
    )


def test_overview_loads_with_data(page: Page, dashboard: Dashboard) -> None:
    pg = page
    pg.goto(dashboard.url + "/")
    pg.wait_for_selector("#overview-kpi-mtd")
    for graph in ("overview-spend-hour", "overview-spend-day", "overview-utilisation", "overview-findings"):
        _graph_rendered(pg, graph)
    banner = pg.inner_text("#app-banner")
    assert "SYNTHETIC" in banner and "test driver" in banner
    mtd = pg.inner_text("#overview-kpi-mtd")
    assert "EUR" in mtd and "0.00 EUR" not in mtd
    assert f"{dashboard.fleet_size} VMs" in pg.inner_text("#overview-kpi-range")
    axis_titles = pg.locator("#overview-spend-day .ytitle").all_text_contents()
    assert axis_titles == ["EUR per day"]
    assert "vCPUs" in pg.locator("#overview-utilisation .ytitle").all_text_contents()
    _shot(pg, "overview")


def test_overview_draws_with_the_partial_plotly_bundle_gzipped(page: Page, dashboard: Dashboard) -> None:
    """make test fetched the partial bundle: the full plotly.js is never requested, and text comes gzipped."""
    assert plotly_bundle_path().is_file(), "run 'bash scripts/fetch-plotly.sh' (make run/test do)"
    responses: list[tuple[str, str | None]] = []
    page.on("response", lambda r: responses.append((r.url.split("?")[0], r.headers.get("content-encoding"))))
    page.goto(dashboard.url + "/")
    for graph in ("overview-spend-hour", "overview-spend-day", "overview-utilisation", "overview-findings"):
        _graph_rendered(page, graph)
    assert page.evaluate("() => !!window.Plotly && window.Plotly.version") == plotly_version()
    seen = dict(responses)
    assert not [url for url in seen if url.endswith("/plotly.min.js")], "the full plotly.js was loaded"
    bundle = dashboard.url + PLOTLY_ROUTE + plotly_bundle_path().name
    assert seen.get(bundle) == "gzip"
    assert seen.get(dashboard.url + "/") == "gzip"
    # the overview comes inside the (gzipped) layout: no callback round trip before it draws
    assert seen.get(dashboard.url + "/_dash-layout") == "gzip"
    assert [url for url, _ in responses if url.endswith("/_dash-update-component")] == []


def test_first_visit_asks_early_once_and_without_dash_polyfill(page: Page, dashboard: Dashboard) -> None:
    """The index preloads the layout, the callback graph and the page's chunks, and Dash's own requests get
    those answers (each URL is fetched once); regenerator-runtime stands in for Dash's polyfill bundle on
    every page, including the ones whose grids Dash loads on demand."""
    assert regenerator_path().is_file(), "run 'bash scripts/fetch-plotly.sh' (make run/test do)"
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url.removeprefix(dashboard.url).split("?")[0]))
    page.goto(dashboard.url + "/")
    for graph in ("overview-spend-hour", "overview-spend-day", "overview-utilisation", "overview-findings"):
        _graph_rendered(page, graph)
    for url in ("/_dash-layout", "/_dash-dependencies", "/_dash-component-suites/dash/dcc/async-graph.js",
                "/_dash-component-suites/dash/dcc/async-dropdown.js"):
        assert requests.count(url) == 1, (url, requests)
    assert page.evaluate("() => typeof regeneratorRuntime.mark") == "function"
    for path, cell in (("/vms", "#vms-table td[data-dash-column='name']"),
                       ("/recommendations", "#recs-table td[data-dash-column='name']")):
        page.click(f"a[href='{path}']")
        page.wait_for_selector(cell)
    assert PLOTLY_ROUTE + regenerator_path().name in requests
    assert not [url for url in requests if "/deps/polyfill@" in url]


def test_graphs_skip_same_size_resizes_and_follow_a_real_one(page: Page, dashboard: Dashboard) -> None:
    """dashboard/assets/graph-resize.js: a resize to the size a graph has answers at once (plotly.js would
    relayout it 100 ms later); a window that really changed size still resizes every graph."""
    page.goto(dashboard.url + "/")
    for graph in ("overview-spend-hour", "overview-findings"):
        _graph_rendered(page, graph)
    same = page.evaluate("""async () => {
        const gd = document.querySelector('#overview-spend-hour .js-plotly-plot');
        const timer = gd._redrawTimer, width = gd._fullLayout.width;
        await Plotly.Plots.resize(gd);
        return [gd._redrawTimer === timer, gd._fullLayout.width === width];
    }""")
    assert same == [True, True]
    # each graph is drawn at the size its card gives it, so dcc.Graph's resizes after the first draw are no-ops
    sizes = page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')].map(gd =>
        [Math.round(parseFloat(getComputedStyle(gd).height)), gd._fullLayout.height])""")
    assert sizes and all(css == drawn for css, drawn in sizes), sizes
    before = page.evaluate("() => document.querySelector('#overview-spend-day .js-plotly-plot')._fullLayout.width")
    page.set_viewport_size({"width": 1000, "height": 1000})  # the two-column grid becomes one column
    page.wait_for_function(
        "w => document.querySelector('#overview-spend-day .js-plotly-plot')._fullLayout.width > w + 100",
        arg=before)


def test_security_headers_sent_and_pages_render_under_the_csp(page: Page, dashboard: Dashboard) -> None:
    pg = page
    response = pg.goto(dashboard.url + "/")
    assert response is not None
    headers = response.headers
    assert headers["x-frame-options"] == "DENY"
    csp = headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self' 'sha256-" in csp
    assert "'unsafe-eval'" not in csp
    _graph_rendered(pg, "overview-spend-hour")
    for path, graph in (("/vms", None), ("/recommendations", "recs-savings"), ("/backups", "backups-age")):
        pg.click(f"a[href='{path}']")
        pg.wait_for_url(f"**{path}")
        if graph:
            _graph_rendered(pg, graph)
    # the page fixture fails the test on any CSP violation reported on the console


def _rows(pg: Page, table: str) -> int:
    return pg.locator(f"#{table} tr:has(td[data-dash-column='name'])").count()


def test_vms_grid_filter_by_label_changes_rows(page: Page, dashboard: Dashboard) -> None:
    pg = page
    pg.goto(dashboard.url + "/vms")
    pg.wait_for_selector("#vms-table td[data-dash-column='name']")
    assert pg.inner_text("#vms-count").startswith(f"{dashboard.fleet_size} VMs match")
    assert _rows(pg, "vms-table") == dashboard.fleet_size  # 25 rows fit on one page
    _shot(pg, "vms")
    # pick the listed option itself: pressing Enter races the dropdown's filtering of its options
    pick_by_search(pg, "app-filter-labels", "team=payments")
    pg.keyboard.press("Escape")
    pg.wait_for_function(
        f"() => !document.querySelector('#vms-count').innerText.startsWith('{dashboard.fleet_size} VMs')")
    # the count and the grid re-render separately: wait until every shown row is a filtered one
    pg.wait_for_function(
        "() => { const cells = [...document.querySelectorAll(\"#vms-table td[data-dash-column='labels']\")];"
        " return cells.length > 0 && cells.every(c => c.innerText.includes('team=payments')); }")
    shown = _rows(pg, "vms-table")
    assert 0 < shown < dashboard.fleet_size
    assert pg.inner_text("#vms-count").startswith(f"{shown} VMs match")
    labels = pg.locator("#vms-table td[data-dash-column='labels']").all_inner_texts()
    assert labels and all("team=payments" in text for text in labels)
    _shot(pg, "vms-filtered")


def test_label_search_survives_a_browser_that_moves_focus_late(page: Page, dashboard: Dashboard) -> None:
    # A loaded browser runs the dropdown's animation-frame callbacks late; that callback moves focus from the
    # trigger to the search box, and a key pressed before the move and released after it is dropped (one CI run
    # timed out waiting for the option). With every frame 300 ms late and keys 40 ms apart, typing right after
    # the click loses a key every time ("team=ayments"); picking by search waits for the box and loses none.
    pg = page
    pg.add_init_script("const raf = window.requestAnimationFrame.bind(window);"
                       " window.requestAnimationFrame = cb => setTimeout(() => raf(cb), 300);")
    pg.goto(dashboard.url + "/vms")
    pg.wait_for_selector("#vms-table td[data-dash-column='name']")
    pick_by_search(pg, "app-filter-labels", "team=payments", key_delay_ms=40)
    pg.keyboard.press("Escape")
    pg.wait_for_function(
        f"() => !document.querySelector('#vms-count').innerText.startsWith('{dashboard.fleet_size} VMs')")


def test_row_click_opens_vm_detail(page: Page, dashboard: Dashboard) -> None:
    pg = page
    pg.goto(dashboard.url + "/vms")
    cell = pg.locator("#vms-table td[data-dash-column='name']").first
    name = cell.inner_text()
    cell.click()
    pg.wait_for_url("**/vm/*")
    assert pg.inner_text("#vm-name") == name
    for graph in ("vm-cpu", "vm-memory", "vm-disk", "vm-cost"):
        _graph_rendered(pg, graph)
    legend = " ".join(pg.locator("#vm-cpu .legendtext").all_text_contents())
    assert "allocated" in legend
    assert pg.locator("#vm-recommendation .rs-badge").count() >= 1
    assert "Why" in pg.inner_text("#vm-recommendation")
    _shot(pg, "vm-detail")


def test_recommendation_and_backup_rows_open_their_vm_page(page: Page, dashboard: Dashboard) -> None:
    pg = page
    for path, table in (("/recommendations", "recs-table"), ("/backups", "backups-table")):
        pg.goto(dashboard.url + path + "?range=30d")
        cell = pg.locator(f"#{table} td[data-dash-column='host']").first
        row = cell.locator("xpath=..")
        name = row.locator("td[data-dash-column='name']").inner_text()
        cell.click()
        pg.wait_for_url("**/vm/*")
        pg.wait_for_selector("#vm-name")
        assert pg.inner_text("#vm-name") == name, path
        assert "range=30d" in pg.url, pg.url  # the filters travel with the click


def test_vm_page_by_name_in_the_address(page: Page, dashboard: Dashboard) -> None:
    pg = page
    pg.goto(dashboard.url + "/vms")
    name = pg.locator("#vms-table td[data-dash-column='name']").nth(1).inner_text()
    pg.goto(f"{dashboard.url}/vm/{name}")  # a link someone pasted: no click through the list
    pg.wait_for_selector("#vm-name")
    assert pg.inner_text("#vm-name") == name
    _graph_rendered(pg, "vm-cpu")
    pg.goto(dashboard.url + "/vm/no-such-vm")
    pg.wait_for_function("() => document.querySelector('#vm-header')"
                         " && document.querySelector('#vm-header').innerText.includes('no-such-vm')")
    assert "No VM with UUID or name 'no-such-vm'" in pg.inner_text("#vm-header")


def test_recommendations_csv_export_downloads(page: Page, dashboard: Dashboard) -> None:
    pg = page
    pg.goto(dashboard.url + "/recommendations")
    pg.wait_for_selector("#recs-table td[data-dash-column='name']")
    _graph_rendered(pg, "recs-savings")
    assert pg.locator("#recs-apply-button").count() == 0  # actions disabled
    shown = _rows(pg, "recs-table")
    _shot(pg, "recommendations")
    with pg.expect_download() as info:
        pg.click("#recs-export")
    download = info.value
    assert download.suggested_filename.startswith("rightsizer-recommendations-")
    assert download.suggested_filename.endswith(".csv")
    ARTIFACTS.mkdir(exist_ok=True)
    target = ARTIFACTS / "dashboard-recommendations.csv"
    download.save_as(str(target))
    reader = csv.DictReader(io.StringIO(target.read_text(encoding="utf-8")))
    rows = list(reader)
    # one row per VM in the one findings schema (a VM's schedule and storage rows of the table are its columns)
    assert shown > 0 and rows and tuple(reader.fieldnames or ()) == FINDING_CSV_COLUMNS
    assert len({r["uuid"] for r in rows}) == len(rows)
    assert {r["currency"] for r in rows} == {"EUR"}


def test_backups_page_lists_gaps(page: Page, dashboard: Dashboard) -> None:
    pg = page
    pg.goto(dashboard.url + "/backups")
    pg.wait_for_selector("#backups-table td[data-dash-column='name']")
    _graph_rendered(pg, "backups-age")
    statuses = pg.locator("#backups-table td[data-dash-column='status']").all_inner_texts()
    assert "overdue" in statuses and "ok" in statuses
    _shot(pg, "backups")


def test_html_in_vm_names_and_labels_is_shown_as_text(page: Page, dashboard: Dashboard) -> None:
    pg = page
    pg.goto(dashboard.url + "/vms")
    cell = pg.locator("#vms-table td[data-dash-column='name']", has_text=XSS_NAME)
    cell.wait_for()
    assert cell.inner_text() == XSS_NAME
    labels = pg.locator("#vms-table td[data-dash-column='labels']", has_text=XSS_LABEL).all_inner_texts()
    assert labels and XSS_LABEL in labels[0]
    pg.goto(dashboard.url + f"/vm/{XSS_UUID}")
    pg.wait_for_selector("#vm-name")
    _graph_rendered(pg, "vm-cpu")
    assert pg.inner_text("#vm-name") == XSS_NAME
    assert f"team={XSS_LABEL}" in pg.inner_text("#vm-header")
    assert pg.locator("img[src='x']").count() == 0
    assert pg.locator("#app-page script").count() == 0
    pg.goto(dashboard.url + "/backups")
    _graph_rendered(pg, "backups-age")
    ticks = pg.locator("#backups-age .ytick text").all_text_contents()
    assert XSS_NAME in ticks  # Plotly shows the escaped name as literal text
    assert pg.locator("img[src='x']").count() == 0
    _shot(pg, "inert-names")  # the page fixture then asserts that no dialog fired


RISK_WORDS = {"very-low", "low", "medium", "high", "very-high"}


def test_recommendations_lookback_control_rejudges_the_fleet(page: Page, dashboard: Dashboard) -> None:
    pg = page
    pg.goto(dashboard.url + "/recommendations")
    pg.wait_for_selector("#recs-table td[data-dash-column='name']")
    assert "very-low" in pg.inner_text("#recs-risk-legend")  # a legend wherever risk is shown
    risks = set(pg.locator("#recs-table td[data-dash-column='risk']").all_inner_texts())
    assert risks and risks <= RISK_WORDS
    assert pg.locator("#recs-table td[data-dash-column='savings_pct']").count() > 0
    assert "in the last 14 days" in pg.inner_text("#recs-summary")
    pg.locator("#recs-lookback label", has_text="7 days").click()
    pg.wait_for_function("() => document.querySelector('#recs-summary').innerText.includes('in the last 7 days')")
    pg.wait_for_selector("#recs-table td[data-dash-column='name']")
    _shot(pg, "recommendations-7d")


def _search_findings(pg: Page, finding: str) -> None:
    """Type ``finding`` into the VMs table's search row under "Finding" and wait until only it is shown."""
    pg.wait_for_selector("#vms-table td[data-dash-column='name']")
    finding_filter = pg.locator("#vms-table th[data-dash-column='finding'] input[type='text']")
    finding_filter.fill(finding)
    finding_filter.press("Enter")
    pg.wait_for_function(
        "f => { const cells = [...document.querySelectorAll(\"#vms-table td[data-dash-column='finding']\")];"
        " return cells.length > 0 && cells.every(c => c.innerText === f); }", arg=finding)


def _open_an_over_provisioned_vm(pg: Page, dashboard: Dashboard) -> None:
    pg.goto(dashboard.url + "/vms")
    _search_findings(pg, "over-provisioned")
    pg.locator("#vms-table td[data-dash-column='name']").first.click()
    pg.wait_for_url("**/vm/*")


def test_vm_page_draws_projected_utilisation_and_follows_the_lookback(page: Page, dashboard: Dashboard) -> None:
    pg = page
    _open_an_over_provisioned_vm(pg, dashboard)
    _graph_rendered(pg, "vm-projection")
    title = pg.locator("#vm-projection .gtitle").text_content() or ""
    assert "last 14 days replayed" in title and "h over 100 % CPU" in title and "h over 90 % memory" in title
    legend = " ".join(pg.locator("#vm-projection .legendtext").all_text_contents())
    assert "CPU: hourly peak / new vCPUs (%)" in legend
    assert any(w in pg.inner_text("#vm-risk") for w in RISK_WORDS)
    assert "very-high" in pg.inner_text("#vm-risk-legend")
    cpu_legend = " ".join(pg.locator("#vm-cpu .legendtext").all_text_contents())
    assert "need: " in cpu_legend and "hourly p95" in cpu_legend  # every statistic on the chart is named
    _shot(pg, "vm-projection-14d")
    pg.locator("#vm-lookback label", has_text="30 days").click()
    pg.wait_for_function(
        "() => { const t = document.querySelector('#vm-projection .gtitle');"
        " return !!t && t.textContent.includes('last 30 days replayed'); }")
    assert "30 days" in pg.inner_text("#vm-recommendation")
    _shot(pg, "vm-projection-30d")


def test_vm_page_says_its_headroom_in_words(page: Page, dashboard: Dashboard) -> None:
    pg = page
    _open_an_over_provisioned_vm(pg, dashboard)
    pg.wait_for_selector("#vm-headroom")
    assert pg.eval_on_selector("#vm-headroom", "td => td.previousElementSibling.innerText") == "Headroom"
    # the demo runs the default profile: the AWS CPU rule, the same for every VM; memory as its rule says it
    line = re.compile(r"CPU: 20 % headroom over its P99\.5 \(fixed, not fitted to this VM\); "
                      r"(memory: \d+ % headroom over its maximum \(fixed, not fitted to this VM\)"
                      r"|(steady|variable|spiky) memory \(daily peaks spread over \d+ % of their median\): "
                      r"\d+ % headroom over its maximum)")
    assert line.fullmatch(pg.inner_text("#vm-headroom"))
    pg.locator("#vm-lookback label", has_text="30 days").click()
    pg.wait_for_function("() => document.querySelector('#vm-recommendation').innerText.includes('30 days')")
    assert line.fullmatch(pg.inner_text("#vm-headroom"))  # re-judged over 30 days: the line stays
    _shot(pg, "vm-headroom")


def _query(pg: Page) -> dict[str, list[str]]:
    from urllib.parse import parse_qs, urlsplit

    return parse_qs(urlsplit(pg.url).query)


def test_filters_and_table_search_live_in_the_address(page: Page, dashboard: Dashboard) -> None:
    pg = page
    pg.goto(dashboard.url + "/vms")
    _search_findings(pg, "over-provisioned")
    pg.wait_for_function("() => new URLSearchParams(location.search).get('filter') !== null")
    pg.locator("#app-filter-range label", has_text="last 24h").click()
    pg.wait_for_function("() => new URLSearchParams(location.search).get('range') === '24h'")
    shared = pg.url
    assert "over-provisioned" in _query(pg)["filter"][0]
    # the navigation carries the shared filters, not the page's own search
    assert pg.get_attribute("#app-nav-backups", "href") == "/backups?range=24h"

    other = pg.context.new_page()  # someone opens the shared address
    other.goto(shared)
    other.wait_for_selector("#vms-table td[data-dash-column='name']")
    findings = other.locator("#vms-table td[data-dash-column='finding']").all_inner_texts()
    assert findings and set(findings) == {"over-provisioned"}
    assert other.is_checked("#app-filter-range input[value='24h']")
    # the table shows the restored search with its operator spelled out ("scontains over-provisioned")
    shown = other.input_value("#vms-table th[data-dash-column='finding'] input[type='text']")
    assert shown.endswith("over-provisioned")
    assert "over the last 24h" in other.inner_text("#vms-count")
    other.close()

    pg.go_back()  # back to the 14-day view: the address drives the view
    pg.wait_for_function("() => new URLSearchParams(location.search).get('range') === null")
    pg.wait_for_function("() => document.querySelector(\"#app-filter-range input[value='14d']\").checked")
    pg.wait_for_function("() => document.querySelector('#vms-count').innerText.includes('over the last 14d')")


def test_label_filter_and_lookback_from_the_address_and_back_into_it(page: Page, dashboard: Dashboard) -> None:
    pg = page
    pg.goto(dashboard.url + "/recommendations?label=team%3Dpayments&lookback=7")
    pg.wait_for_selector("#recs-table td[data-dash-column='name']")
    assert "in the last 7 days" in pg.inner_text("#recs-summary")
    assert pg.is_checked("#recs-lookback input[value='7']")
    assert "team=payments" in pg.inner_text("#app-filter-labels")
    pg.get_by_role("link", name="VMs").click()
    pg.wait_for_url("**/vms?label=team%3Dpayments")
    pg.wait_for_selector("#vms-table td[data-dash-column='name']")
    labels = pg.locator("#vms-table td[data-dash-column='labels']").all_inner_texts()
    assert labels and all("team=payments" in text for text in labels)
    pg.go_back()
    pg.wait_for_selector("#recs-lookback")
    pg.locator("#recs-lookback label", has_text="30 days").click()
    pg.wait_for_function("() => new URLSearchParams(location.search).get('lookback') === '30'")
    pg.wait_for_function("() => document.querySelector('#recs-summary').innerText.includes('in the last 30 days')")
    assert _query(pg)["label"] == ["team=payments"]


CONTENT_WIDTH_PX = 1360  # the page's content area at the tests' 1,400 px viewport (20 px padding each side)


def _table_fits(pg: Page, table: str) -> None:
    content = pg.evaluate("() => { const m = document.querySelector('#app-page'); const s = getComputedStyle(m);"
                          " return m.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight); }")
    assert content == CONTENT_WIDTH_PX
    width = pg.evaluate(f"() => document.querySelector('#{table} table').getBoundingClientRect().width")
    assert width <= CONTENT_WIDTH_PX + 1, f"{table} is {width} px wide"
    overflowing = pg.evaluate(f"() => [...document.querySelectorAll('#{table} .dash-spreadsheet-container')]"
                              ".filter(d => d.scrollWidth > d.clientWidth + 1).length")
    assert overflowing == 0


def _show_column(pg: Page, table: str, column: str, title: str) -> None:
    assert pg.locator(f"#{table} th[data-dash-column='{column}']").count() == 0  # hidden at first
    pg.click(f"#{table} button.show-hide")
    pg.locator(f"#{table} .show-hide-menu-item", has_text=title).locator("input").check()
    pg.wait_for_selector(f"#{table} th[data-dash-column='{column}']")


def test_tables_fit_the_content_area_and_hidden_columns_can_be_shown(page: Page, dashboard: Dashboard) -> None:
    pg = page
    pg.goto(dashboard.url + "/vms")
    pg.wait_for_selector("#vms-table td[data-dash-column='name']")
    _table_fits(pg, "vms-table")
    for column in ("state", "labels"):  # visible without asking
        assert pg.locator(f"#vms-table td[data-dash-column='{column}']").first.is_visible()
    labels = pg.locator("#vms-table td[data-dash-column='labels']").first
    full = labels.inner_text()
    labels.hover()  # a long cell shows its whole text in a tooltip
    tip = pg.locator("#vms-table .dash-tooltip")
    tip.wait_for()
    assert " ".join(tip.inner_text().split()) == " ".join(full.split())  # the cell shows three lines of it
    _show_column(pg, "vms-table", "vcpus", "vCPUs")
    _shot(pg, "vms-columns")

    pg.goto(dashboard.url + "/recommendations")
    pg.wait_for_selector("#recs-table td[data-dash-column='name']")
    _table_fits(pg, "recs-table")
    for column in ("options", "reason", "risk_reasons"):
        assert pg.locator(f"#recs-table td[data-dash-column='{column}']").first.is_visible()
    _show_column(pg, "recs-table", "excluded", "Excluded")
    _shot(pg, "recommendations-columns")


# -- Hosts section: overcommit per host, its vCPU wait, the contended VMs -------------------------------------
# A store with two hosts as the collector leaves it: hv-busy (2 CPUs) runs 6 vCPUs whose VMs wait for a host
# CPU 40 % of their vCPU time; hv-calm (8 CPUs) runs 2 vCPUs that hardly wait. Host CPU counts are what the
# sampler records from libvirt getInfo (store meta ``host_cpus``).
HOSTS_END = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
#: name, host, vCPUs, vCPU-equivalents spent waiting for a host CPU
HOSTS_VMS = (("web-1", "hv-busy", 2, 0.8), ("web-2", "hv-busy", 4, 1.6), ("db-1", "hv-calm", 2, 0.01))


def _serve_hosts(path: Path, spec: Sequence[tuple[str, str, int, float]],
                 host_cpus: dict[str, int]) -> Iterator[str]:
    """Serve a store of ``spec`` VMs (name, host, vCPUs, vCPU-equivalents waiting for a host CPU), each running
    the last 10 days at 90 % CPU, with ``host_cpus`` as the sampler records them."""
    import uuid

    from collector.model import UsagePoint, VmRecord, VmState
    from collector.store.jsonmeta import HOST_CPUS_KEY, merge_json_meta

    gib = 1 << 30
    first = HOSTS_END - timedelta(days=10)
    store = SqliteStore(path)
    vms = [VmRecord(str(uuid.uuid5(uuid.NAMESPACE_DNS, name)), name, "qemu:///system", host, VmState.RUNNING,
                    vcpus, vcpus, 4 * gib, 4 * gib, {"team": "web"}, first, HOSTS_END)
           for name, host, vcpus, _ in spec]
    points = [UsagePoint(vm.uuid, HOSTS_END - timedelta(hours=240 - h), VmState.RUNNING, vm.vcpus, 4 * gib,
                         cpu_vcpus=0.9 * vm.vcpus, memory_used_bytes=2 * gib, interval_s=3600.0,
                         cpu_delay_vcpus=delay)
              for vm, (_n, _h, _v, delay) in zip(vms, spec, strict=True) for h in range(240)]
    store.write_history(vms, points)
    merge_json_meta(store, HOST_CPUS_KEY, host_cpus)
    app = create_app(Settings(), store, load_catalogue(), data_mode="live")
    server = start_server(app.server, "127.0.0.1", 0, name="hosts-test")
    try:
        yield server.url
    finally:
        server.stop()
        store.close()


@pytest.fixture
def hosts_dashboard(tmp_path: Path) -> Iterator[str]:
    yield from _serve_hosts(tmp_path / "hosts.db", HOSTS_VMS, {"hv-busy": 2, "hv-calm": 8})


def _table_cells(pg: Page, table: str) -> list[list[str]]:
    return pg.eval_on_selector_all(  # type: ignore[no-any-return]
        f"#{table} tbody tr", "rs => rs.map(r => [...r.cells].map(c => c.innerText.trim()))")


def test_hosts_section_shows_overcommit_wait_and_the_contended_vms(page: Page, hosts_dashboard: str) -> None:
    page.goto(hosts_dashboard + "/")
    page.wait_for_selector("#overview-hosts-table")
    rows = _table_cells(page, "overview-hosts-table")
    assert [r[0] for r in rows] == ["hv-busy", "hv-calm"]  # the biggest spender (6 vCPUs against 2) first
    by_host = {r[0]: r for r in rows}
    assert float(by_host["hv-busy"][1].replace(",", "")) > float(by_host["hv-calm"][1].replace(",", "")) > 0
    # hv-busy: 2 + 4 vCPUs on 2 CPUs; every vCPU waits 40 % of its time; both VMs contended
    assert by_host["hv-busy"][2:5] == ["6", "2", "3.00 : 1"]
    assert by_host["hv-busy"][5] == "40.0%" and by_host["hv-busy"][6] == "web-1, web-2"
    assert by_host["hv-calm"][2:7] == ["2", "8", "0.25 : 1", "0.5%", "-"]
    warn = page.eval_on_selector_all("#overview-hosts-table td.rs-warn", "cs => cs.map(c => c.innerText)")
    assert warn == ["3.00 : 1", "40.0%"]
    summary = page.inner_text("#overview-hosts")
    assert "2 hosts, the biggest spenders first: 1 overcommitted" in summary and "1 with contended VMs" in summary
    assert page.locator("#overview-hosts-next").count() == 0  # one page: no controls
    _shot(page, "hosts")
    # the contention finding names its host on the VM page
    page.goto(hosts_dashboard + "/vm/web-2")
    page.wait_for_selector("text=contention")
    assert "on host 'hv-busy'" in page.inner_text("body")


# -- Many hosts: the overview renders one page of them, the biggest spenders first; paging reaches every one ---
#: 22 hosts of one 2-vCPU VM each and hv-top, whose three 8-vCPU VMs make it the biggest spender.
MANY_HOSTS_VMS = (*((f"vm-{i:02d}", f"hv-{i:02d}", 2, 0.0) for i in range(22)),
                  *((f"big-{i}", "hv-top", 8, 0.0) for i in range(3)))


@pytest.fixture
def many_hosts_dashboard(tmp_path: Path) -> Iterator[str]:
    yield from _serve_hosts(tmp_path / "many.db", MANY_HOSTS_VMS, {f"hv-{i:02d}": 4 for i in range(22)})


def test_hosts_table_shows_one_page_biggest_spender_first_and_pages_reach_every_host(
        page: Page, many_hosts_dashboard: str) -> None:
    page.goto(many_hosts_dashboard + "/")
    page.wait_for_selector("#overview-hosts-table")
    first = _table_cells(page, "overview-hosts-table")
    assert len(first) == PAGE_ROWS and first[0][0] == "hv-top"
    spend = [float(r[1].replace(",", "")) for r in first]
    assert spend == sorted(spend, reverse=True) and spend[0] > spend[1]
    assert page.inner_text("#overview-hosts-status") == f"hosts 1-{PAGE_ROWS} of 23"
    assert page.is_disabled("#overview-hosts-prev") and not page.is_disabled("#overview-hosts-next")
    seen = [r[0] for r in first]
    while not page.is_disabled("#overview-hosts-next"):
        shown = page.inner_text("#overview-hosts-status")
        page.click("#overview-hosts-next")
        page.wait_for_function("s => document.querySelector('#overview-hosts-status').innerText !== s", arg=shown)
        seen += [r[0] for r in _table_cells(page, "overview-hosts-table")]
    assert page.inner_text("#overview-hosts-status") == "hosts 21-23 of 23"
    assert len(seen) == 23 and set(seen) == {"hv-top", *(f"hv-{i:02d}" for i in range(22))}
    page.click("#overview-hosts-prev")
    page.wait_for_function("() => document.querySelector('#overview-hosts-status').innerText === 'hosts 11-20 of 23'")
    page.click("#overview-hosts-all")
    page.wait_for_function("() => document.querySelectorAll('#overview-hosts-table tbody tr').length === 23")
    assert [r[0] for r in _table_cells(page, "overview-hosts-table")] == seen
    assert page.inner_text("#overview-hosts-all") == f"Show {PAGE_ROWS} per page"
    page.click("#overview-hosts-all")
    page.wait_for_function(
        f"() => document.querySelectorAll('#overview-hosts-table tbody tr').length === {PAGE_ROWS}")
    assert page.inner_text("#overview-hosts-status") == f"hosts 1-{PAGE_ROWS} of 23"
    _shot(page, "hosts-paged")


# -- At 1,360 px: the Overview says what to do first, and no table ends past the window's right edge ---------
NARROW_PX = 1360


def _largest_saving_vm(snap: Snapshot) -> str:
    """The VM whose finding (the analysis core's VmFinding) adds most to the gross headline."""
    findings = [f.source for f in snap.findings.values() if f.source is not None]
    return min(findings, key=lambda f: (-headline_saving(f), f.name)).name  # a tie goes by name, as in the digest


def _tables_past_the_right_edge(pg: Page) -> list[str]:
    """Each table (plain or grid) whose right edge is past the window's or the page content's, with both in px."""
    return pg.evaluate("""() => { const edge = document.documentElement.clientWidth;
        const m = document.querySelector('#app-page'), s = getComputedStyle(m);
        const content = m.getBoundingClientRect().right - parseFloat(s.paddingRight);
        return [...document.querySelectorAll('table')].filter(t => t.offsetParent !== null)
            .map(t => [t.closest('[id]') ? t.closest('[id]').id : '?', t.getBoundingClientRect().right])
            .filter(([, right]) => right > Math.min(edge, content) + 0.5)
            .map(([id, right]) => `${id}: ${right} > window ${edge} / content ${content}`); }""")


def test_overview_at_1360_px_names_the_largest_saving_and_no_table_overflows(
        browser: Browser, dashboard: Dashboard) -> None:
    context = browser.new_context(viewport={"width": NARROW_PX, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    seen = DashPage(pg)
    try:
        pg.goto(dashboard.url + "/")
        pg.wait_for_selector("#overview-actions table")
        _graph_rendered(pg, "overview-spend-label")
        largest = dashboard.largest_saving_vm
        first = pg.locator("#overview-actions tbody tr").first
        assert first.locator("td").first.inner_text().strip() == largest
        assert first.locator("a").get_attribute("href", timeout=TIMEOUT_MS).startswith("/vm/")
        risks = pg.locator("#overview-actions tbody td:nth-child(4)").all_inner_texts()
        assert risks and all(r.strip() for r in risks)
        assert "Spend by team" in pg.inner_text("#overview-spend-label")
        assert pg.evaluate("() => document.documentElement.scrollWidth") <= NARROW_PX
        assert _tables_past_the_right_edge(pg) == []
        _shot(pg, "overview-1360")

        pg.goto(dashboard.url + "/recommendations")
        pg.wait_for_selector("#recs-table td[data-dash-column='name']")
        assert _tables_past_the_right_edge(pg) == []
        assert pg.evaluate("() => document.documentElement.scrollWidth") <= NARROW_PX
        _shot(pg, "recommendations-1360")

        pg.goto(dashboard.url + "/")
        pg.locator("#overview-actions tbody tr").first.locator("a").click()
        pg.wait_for_url("**/vm/**")
        pg.wait_for_selector("#vm-name")
        assert pg.inner_text("#vm-name").strip() == largest
    finally:
        context.close()
    assert seen.errors == [] and seen.dialogs == []
