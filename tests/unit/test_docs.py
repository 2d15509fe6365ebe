"""The documentation against the code: every settings key, metric family, API operation, CSV column and headline
kind is documented; README's contract holds; links and named files resolve."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
from prometheus_client.core import CounterMetricFamily, InfoMetricFamily

from analytics.findings.finding import FINDING_CSV_COLUMNS
from analytics.findings.headline import SAVING_KINDS
from analytics.rightsizing.base import Finding
from api.operations import OPERATIONS
from collector.exporter import RightsizerCollector
from collector.sampler import Snapshot
from core.settings import Settings, load_settings
from rightsizer.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
MARKDOWN = [README, *sorted(DOCS.glob("*.md"))]


def _settings_doc_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("settings_doc", ROOT / "scripts" / "settings_doc.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _table_rows(text: str) -> dict[str, list[str]]:
    """First-column code name -> the row's cells, for every markdown table row starting with a code span."""
    rows: dict[str, list[str]] = {}
    for line in text.splitlines():
        m = re.match(r"^\| `([^`]+)` \|(.*)\|\s*$", line)
        if m:
            rows[m.group(1)] = [c.strip() for c in re.split(r"(?<!\\)\|", m.group(2))]
    return rows


# ----------------------------------------------------------------------------------------------- configuration
def test_configuration_doc_tables_are_generated_from_the_current_settings() -> None:
    script = _settings_doc_script()
    doc = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert script.render(doc) == doc, "docs/configuration.md is out of date; run python scripts/settings_doc.py"


@pytest.mark.parametrize("section", list(Settings.model_fields))
def test_every_settings_key_has_a_row_with_its_default_in_its_section(section: str) -> None:
    doc = (DOCS / "configuration.md").read_text(encoding="utf-8")
    block = re.search(rf"<!-- settings:{section} -->\n(.*?)<!-- /settings:{section} -->", doc, re.S)
    assert block is not None, f"[{section}] has no table in docs/configuration.md"
    assert f"## `[{section}]`" in doc
    rows = _table_rows(block.group(1))
    model = Settings.model_fields[section].annotation
    keys = list(model.model_fields)  # type: ignore[union-attr]
    assert keys and sorted(rows) == sorted(keys)
    for key in keys:
        kind, default, meaning = rows[key]
        assert default.startswith("`") and meaning, f"[{section}] {key}: {rows[key]}"


def test_a_key_without_any_description_fails_the_generator() -> None:
    script = _settings_doc_script()
    from pydantic.fields import FieldInfo

    with pytest.raises(KeyError):
        script.meaning("collector", "no_such_key", FieldInfo(annotation=int, default=1))


def test_example_config_lists_every_section_and_key_at_its_default() -> None:
    path = DOCS / "config.example.toml"
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    for section, field in Settings.model_fields.items():
        assert section in data, f"[{section}] missing from docs/config.example.toml"
        assert sorted(data[section]) == sorted(field.annotation.model_fields)  # type: ignore[union-attr]
    # the file's header says every value shown is the default
    assert load_settings(path, env={}) == Settings()


# ----------------------------------------------------------------------------------------------------- metrics
def _families() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Exposed name -> (type word, label names) of every family the exporter describes."""
    out: dict[str, tuple[str, tuple[str, ...]]] = {}
    for fam in RightsizerCollector(Snapshot).describe():
        if isinstance(fam, InfoMetricFamily):
            out[fam.name + "_info"] = ("gauge (= 1)", ())
        elif isinstance(fam, CounterMetricFamily):
            out[fam.name + "_total"] = ("counter", tuple(getattr(fam, "_labelnames", ())))
        else:
            out[fam.name] = ("gauge", tuple(getattr(fam, "_labelnames", ())))
    return out


def test_metrics_doc_has_one_row_per_family_with_its_type_and_labels() -> None:
    families = _families()
    assert "rightsizer_vm_schedule_monthly_savings" in families and len(families) > 30
    rows = {k: v for k, v in _table_rows((DOCS / "metrics.md").read_text(encoding="utf-8")).items()
            if k.startswith("rightsizer_")}
    assert sorted(rows) == sorted(families), "docs/metrics.md and collector/exporter.py list other families"
    for name, (kind, labels) in families.items():
        doc_kind, doc_labels, meaning = rows[name]
        assert doc_kind.startswith(kind), f"{name}: documented as {doc_kind!r}, exported as {kind}"
        if labels:
            assert tuple(x.strip() for x in doc_labels.split(",")) == labels, name
        assert meaning


def test_metrics_doc_names_the_recommendation_info_labels() -> None:
    rows = _table_rows((DOCS / "metrics.md").read_text(encoding="utf-8"))
    labels = [x.strip() for x in rows["rightsizer_vm_recommendation_info"][1].split(",")]
    assert labels == ["vm", "uuid", "finding", "current_type", "recommended_type", "risk", "pattern"]


# --------------------------------------------------------------------------------------------------------- API
def test_api_doc_lists_every_operation() -> None:
    doc = (DOCS / "api.md").read_text(encoding="utf-8")
    assert len(OPERATIONS) >= 11
    for op in OPERATIONS:
        path = re.sub(r"<(\w+)>", r"{\1}", op.path)
        assert f"`{op.method} {path}`" in doc, f"{op.method} {path} ({op.operation_id}) missing from docs/api.md"
    assert "/api/v1/openapi.json" in doc


# ---------------------------------------------------------------------------------------------------- findings
def test_findings_doc_names_every_csv_column_headline_kind_and_finding() -> None:
    doc = (DOCS / "findings.md").read_text(encoding="utf-8")
    documented: set[str] = set()
    for line in doc.splitlines():
        if line.startswith("| `"):  # every code span of a row's first cell ("| `a`, `b` | ...")
            documented |= set(re.findall(r"`([^`]+)`", line.split(" | ")[0]))
    missing = [c for c in FINDING_CSV_COLUMNS if c not in documented]
    assert not missing, f"CSV columns not in docs/findings.md: {missing}"
    for kind in SAVING_KINDS:
        assert f"| `{kind}` |" in doc
    for finding in Finding:
        assert f"| `{finding.value}` |" in doc


# ------------------------------------------------------------------------------------------------------ README
def test_readme_is_short_and_keeps_the_two_commands_in_quick_start() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 260
    quick = re.search(r"^## Quick start\n(.*?)^## ", text, re.S | re.M)
    assert quick is not None
    assert re.search(r"^make run\b", quick.group(1), re.M) and re.search(r"^make test\b", quick.group(1), re.M)


def test_readme_commands_table_names_every_subcommand() -> None:
    text = README.read_text(encoding="utf-8")
    for name in COMMANDS:
        command = name.rstrip("_").replace("_", "-")  # import_ -> import, service_unit -> service-unit
        assert f"`rightsizer {command} " in text or f"`rightsizer {command}`" in text, name


# ------------------------------------------------------------------------------------------- links and names
def _slug(heading: str) -> str:
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return {_slug(m) for m in re.findall(r"^#+ (.+)$", text, re.M)}


@pytest.mark.parametrize("page", MARKDOWN, ids=lambda p: p.name)
def test_relative_links_reach_a_file_and_heading(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    for link in links:
        if re.match(r"^[a-z]+://", link):
            continue
        target, _, anchor = link.partition("#")
        dest = (page.parent / target).resolve() if target else page
        assert dest.is_file(), f"{page.name}: link {link!r} reaches no file"
        if anchor:
            assert anchor in _anchors(dest), f"{page.name}: link {link!r}: no such heading in {dest.name}"


_NAMED_PATH = re.compile(r"`((?:analytics|bench|collector|core|dashboard|data|rightsizer|scripts|tests|docs)/"
                         r"[\w./*-]*)`")


@pytest.mark.parametrize("page", MARKDOWN, ids=lambda p: p.name)
def test_files_the_docs_name_exist(page: Path) -> None:
    named = set(_NAMED_PATH.findall(page.read_text(encoding="utf-8")))
    named = {n for n in named if not n.startswith("dashboard/vendor")}  # fetched at install, not in git
    # folders of the installed package that come from the checkout's data/ and docs/ (setup.py)
    installed = {"rightsizer/data": "data", "rightsizer/examples": "docs"}
    named = {next((n.replace(k, v, 1) for k, v in installed.items() if n.startswith(k)), n) for n in named}
    missing = [n for n in sorted(named) if not any(ROOT.glob(n.rstrip("/")))]
    assert not missing, f"{page.name} names files that do not exist: {missing}"
