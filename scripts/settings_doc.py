"""Write the settings tables of docs/configuration.md from the pydantic models in core/settings.py.

    python scripts/settings_doc.py           # rewrite the tables in place
    python scripts/settings_doc.py --check   # exit 1 when a table is out of date or a section has none

Each section's table sits between ``<!-- settings:NAME -->`` and ``<!-- /settings:NAME -->``; the prose around
the tables is written by hand and left alone. A section without a table is appended at the end of the file.
A key's meaning is its ``description=``; keys the models describe nowhere take theirs from ``MEANINGS`` below.
"""

from __future__ import annotations

import argparse
import re
import sys
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "configuration.md"
sys.path.insert(0, str(ROOT))

from pydantic import BaseModel, SecretStr  # noqa: E402
from pydantic.fields import FieldInfo  # noqa: E402

from core.settings import Settings  # noqa: E402

#: Meanings of keys whose model field carries no ``description=`` ("section.key" -> text).
MEANINGS: dict[str, str] = {
    "store.raw_retention_days": "raw (per-cycle) samples older than this are pruned, days",
    "store.rollup_retention_days": "hourly rollups older than this are pruned, days",
    "dashboard.enabled": "serve the dashboard and the HTTP API (false: collector, /metrics and reports only)",
    "costs.include_storage": "price block storage (capacity per GB-hour plus the class fee) beside compute",
    "costs.storage_class": "performance class a disk is priced at (a row of the block-storage price list)",
    "rightsizing.lookback_days": "days of hourly history a finding is judged on (the API and flags may override)",
    "idle.share_of_time": "share of the observed running time CPU, disk and network must stay below the limits",
    "idle.disk_bps_below": "disk traffic below this, bytes/s, counts as idle",
    "idle.net_bps_below": "network traffic below this, bytes/s, counts as idle",
    "idle.min_days": "days of running time with CPU data needed before a VM is judged idle",
    "reports.out_dir": "directory scheduled reports are written to (and 'report' without --out)",
    "actions.restart": "may a resize restart a VM: never (live changes only), allowed, or window "
                       "(only inside [actions] windows)",
    "actions.min_days_between_resizes": "a VM resized less than this many days ago is skipped",
}


def _plain(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Literal:
        return "one of " + ", ".join(f"`{a}`" for a in get_args(annotation))
    if origin in (list, tuple):
        return "list of " + _plain(get_args(annotation)[0])
    if origin is dict:
        key, value = get_args(annotation)
        return f"table {_plain(key)} → {_plain(value)}"
    if origin in (Union, types.UnionType):
        return " or ".join(_plain(a) for a in get_args(annotation) if a is not type(None))
    names = {str: "text", int: "integer", float: "number", bool: "boolean", SecretStr: "secret text"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _bounds(field: FieldInfo) -> str:
    marks = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<", "min_length": "length ≥", "max_length": "length ≤"}
    out = []
    for meta in field.metadata:
        for attr, sign in marks.items():
            value = getattr(meta, attr, None)
            if value is not None:
                out.append(f"{sign} {value:g}" if isinstance(value, float) else f"{sign} {value}")
    return ", ".join(out)


def _toml(value: Any) -> str:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, float):
        return f"{value:g}".replace("e+", "e")
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)


def meaning(section: str, key: str, field: FieldInfo) -> str:
    """The doc's meaning of one key; raises KeyError when neither the model nor ``MEANINGS`` gives one."""
    return field.description or MEANINGS[f"{section}.{key}"]


def section_table(section: str) -> str:
    """The markdown table of one ``[section]``: key, type and bounds, default, meaning."""
    model: type[BaseModel] = Settings.model_fields[section].annotation  # type: ignore[assignment]
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for key, field in model.model_fields.items():
        kind = _plain(field.annotation)
        bounds = _bounds(field)
        default = field.get_default(call_default_factory=True)
        text = meaning(section, key, field).replace("|", "\\|")
        rows.append(f"| `{key}` | {kind}{f' ({bounds})' if bounds else ''} | `{_toml(default)}` | {text} |")
    return "\n".join(rows)


def render(doc: str) -> str:
    """``doc`` with every section's table regenerated (and tables for new sections appended)."""
    for section in Settings.model_fields:
        begin, end = f"<!-- settings:{section} -->", f"<!-- /settings:{section} -->"
        block = f"{begin}\n{section_table(section)}\n{end}"
        found = re.search(re.escape(begin) + r".*?" + re.escape(end), doc, re.S)
        if found:
            doc = doc[:found.start()] + block + doc[found.end():]
        else:
            doc = doc.rstrip("\n") + f"\n\n## `[{section}]`\n\n{block}\n"
    return doc


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/configuration.md is out of date")
    args = parser.parse_args(argv)
    current = DOC.read_text(encoding="utf-8")
    wanted = render(current)
    if args.check:
        if wanted != current:
            print(f"{DOC.relative_to(ROOT)} is out of date with core/settings.py; run python scripts/settings_doc.py",
                  file=sys.stderr)
            return 1
        return 0
    DOC.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
