"""The view in the address (dashboard/location.py) and the router that renders it (dashboard/app.py)."""

from __future__ import annotations

from dash import dcc, html
from tinyfleet import A, find_component

from dashboard import app as app_module
from dashboard import ids, location
from dashboard.data import DashboardData, Filters

LABELS = ("team=web", "team=pay", "env=prod")
HOSTS = ("h1", "h2")


def test_parse_reads_filters_lookback_and_table_search() -> None:
    search = "?range=7d&label=team%3Dweb&label=env%3Dprod&host=h2&lookback=30&filter=%7Bname%7D+contains+a"
    state = location.parse(search, labels=LABELS, hosts=HOSTS)
    assert state.filters == Filters("7d", ("env=prod", "team=web"), ("h2",))
    assert state.lookback_days == 30
    assert state.table_filter == "{name} contains a"


def test_parse_drops_values_that_are_not_choices() -> None:
    state = location.parse("?range=5y&label=team%3Dnope&host=h9&lookback=3&lookback=x", labels=LABELS, hosts=HOSTS)
    assert state == location.ViewState(Filters(), None, "")
    assert location.parse(None) == location.ViewState()


def test_round_trip_through_the_query_string() -> None:
    filters = Filters("30d", ("team=pay", "team=web"), ("h1",))
    search = location.with_values("", {**location.filter_values(filters), location.LOOKBACK: 7})
    assert search == "?range=30d&label=team%3Dpay&label=team%3Dweb&host=h1&lookback=7"
    back = location.parse(search, labels=LABELS, hosts=HOSTS)
    assert back.filters == filters and back.lookback_days == 7


def test_with_values_replaces_in_place_removes_empty_and_keeps_unknown_keys() -> None:
    search = "?range=7d&other=1&label=team%3Dweb"
    assert location.with_values(search, {"range": "24h"}) == "?range=24h&other=1&label=team%3Dweb"
    assert location.with_values(search, {"label": None}) == "?range=7d&other=1"
    assert location.with_values(search, {"label": ["a=1", "b=2"]}) == "?range=7d&other=1&label=a%3D1&label=b%3D2"
    assert location.with_values("?range=7d", {"range": None}) == ""
    # the default range stays out of the address
    assert location.filter_values(Filters())[location.RANGE] is None


def test_navigation_carries_only_the_shared_keys() -> None:
    assert location.global_part("?range=7d&filter=x&lookback=30&host=h1") == "?range=7d&host=h1"
    assert location.global_part("?filter=x") == ""


def test_path_and_query_of_a_referrer() -> None:
    assert location.path_and_query("http://127.0.0.1:8050/vms?range=7d") == ("/vms", "?range=7d")
    assert location.path_and_query("http://127.0.0.1:8050") == ("/", "")
    assert location.path_and_query(None) is None


def test_view_restores_controls_and_page_from_the_address(data: DashboardData) -> None:
    body, nav, key = app_module.view(data, "/recommendations", "?range=24h&label=team%3Dweb&lookback=7&filter=x")
    assert key == "/recommendations?range=24h&label=team%3Dweb&lookback=7&filter=x"
    assert find_component(body, ids.FILTER_RANGE).value == "24h"
    assert find_component(body, ids.FILTER_LABELS).value == ["team=web"]
    assert find_component(body, ids.RECS_LOOKBACK).value == 7
    assert find_component(body, ids.RECS_TABLE).filter_query == "x"
    # navigation keeps the shared filters, not the page's own search
    assert [link.href for link in nav] == [p + "?range=24h&label=team%3Dweb" for p in
                                           ("/", "/vms", "/recommendations", "/backups")]
    body, _, _ = app_module.view(data, f"/vm/{A}", "?lookback=30")
    assert find_component(body, ids.VM_LOOKBACK).value == 30


def test_shell_renders_the_view_of_its_address_and_leaves_it_to_the_router_without_one(
        data: DashboardData) -> None:
    shell = app_module.shell(data, address="http://127.0.0.1:1/vms?filter=%7Bname%7D+contains+web")
    key = find_component(shell, ids.VIEW_KEY)
    assert isinstance(key, dcc.Store) and key.data == "/vms?filter=%7Bname%7D+contains+web"
    assert find_component(shell, ids.VMS_TABLE).filter_query == "{name} contains web"
    bare = app_module.shell(data)
    assert find_component(bare, ids.VIEW_KEY).data is None
    page = find_component(bare, ids.PAGE)
    assert isinstance(page, html.Main) and page.children is None
