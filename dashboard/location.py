"""The view in the address: filters, lookback and table search as a query string, so a view can be shared.

``?range=7d&label=team%3Dweb&label=env%3Dprod&host=h1&lookback=30&filter=...`` — ``range``, ``label`` and
``host`` are the global filters (every page), ``lookback`` the Recommendations/VM pages' lookback in days,
``filter`` the search typed into the VMs or Recommendations table (DataTable ``filter_query``). Opening such
an address restores the view; changing a control rewrites the address. Unknown keys are kept as they are,
values that are not among the choices are dropped (the view falls back to its default).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit

from dashboard.views import LOOKBACKS_DAYS, RANGES, Filters

RANGE = "range"
LABEL = "label"
HOST = "host"
LOOKBACK = "lookback"
FILTER = "filter"
#: Keys every page shares; navigation links carry them from page to page.
GLOBAL_KEYS: tuple[str, ...] = (RANGE, LABEL, HOST)
#: Keys that belong to one page (its lookback control and table search).
PAGE_KEYS: tuple[str, ...] = (LOOKBACK, FILTER)
_MAX_FILTER_CHARS = 500


@dataclass(frozen=True, slots=True)
class ViewState:
    """What the query string of an address asks the page to show."""

    filters: Filters = Filters()
    lookback_days: int | None = None  # None: the configured default
    table_filter: str = ""  # a DataTable filter_query


def _pairs(search: str | None) -> list[tuple[str, str]]:
    return parse_qsl((search or "").lstrip("?"), keep_blank_values=False)


def parse(search: str | None, *, labels: Iterable[str] = (), hosts: Iterable[str] = ()) -> ViewState:
    """The view a query string asks for; values outside ``labels``/``hosts``/the ranges/lookbacks are dropped."""
    known_labels, known_hosts = set(labels), set(hosts)
    pairs = _pairs(search)
    range_key = next((v for k, v in pairs if k == RANGE and v in RANGES), None)
    chosen_labels = [v for k, v in pairs if k == LABEL and v in known_labels]
    chosen_hosts = [v for k, v in pairs if k == HOST and v in known_hosts]
    lookback = next((int(v) for k, v in pairs if k == LOOKBACK and v.isdigit() and int(v) in LOOKBACKS_DAYS), None)
    table_filter = next((v for k, v in pairs if k == FILTER), "")[:_MAX_FILTER_CHARS]
    return ViewState(Filters.of(range_key, chosen_labels, chosen_hosts), lookback, table_filter)


def with_values(search: str | None, changes: Mapping[str, str | int | Iterable[str] | None]) -> str:
    """``search`` with the keys in ``changes`` replaced (None or empty removes a key); "" or "?...".

    Keys keep their first position, so the address does not reshuffle as controls change.
    """
    def values(value: str | int | Iterable[str] | None) -> list[str]:
        if value is None or value == "":
            return []
        if isinstance(value, str | int):
            return [str(value)]
        return [str(v) for v in value]

    out: list[tuple[str, str]] = []
    placed: set[str] = set()
    for key, value in _pairs(search):
        if key not in changes:
            out.append((key, value))
        elif key not in placed:
            out += [(key, v) for v in values(changes[key])]
            placed.add(key)
    for key in changes:
        if key not in placed:
            out += [(key, v) for v in values(changes[key])]
    return "?" + urlencode(out) if out else ""


def filter_values(filters: Filters) -> dict[str, str | tuple[str, ...] | None]:
    """The global keys for ``filters``; the default range is left out of the address."""
    default = Filters()
    return {RANGE: None if filters.range_key == default.range_key else filters.range_key,
            LABEL: filters.labels, HOST: filters.hosts}


def global_part(search: str | None) -> str:
    """Only the keys every page shares (for navigation links)."""
    return with_values("?" + urlencode([(k, v) for k, v in _pairs(search) if k in GLOBAL_KEYS]), {})


def path_and_query(url: str | None) -> tuple[str, str] | None:
    """(path, "?query") of an absolute or relative URL, e.g. the Referer of the layout request; None if empty."""
    if not url or not isinstance(url, str):  # a crafted callback may send any JSON value
        return None
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced "[" in the host part
        return None
    return (parts.path or "/", f"?{parts.query}" if parts.query else "")
