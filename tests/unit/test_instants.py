"""One date range for every command, flag and API parameter (issue 24 L2), and plain messages (L9)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from analytics.fleet import parse_instant
from collector.errors import InputError
from core.instants import parse_iso_instant
from rightsizer.cli import main

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
RANGE = "is outside 1970-01-01 .. 2199-12-31; pass a time in that range"


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = str(tmp_path / "s.db")
    assert main(["collect", "--once", "--uri", "test:///default", "--db", path, "--output", "json"]) == 0
    return path


@pytest.mark.parametrize("text", ["9999-12-31T23:00Z", "0001-01-01", "1969-12-31T23:59:59Z", "2200-01-01",
                                  "0001-01-01T00:00+05:00", "9999-12-31T23:59:59-05:00"])
@pytest.mark.parametrize("flag", ["schedule --from", "recommend --now", "costs --since", "costs --until",
                                  "report --until"])
def test_every_flag_refuses_the_same_instants_in_one_line(db: str, tmp_path: Path, text: str, flag: str,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    command, option = flag.split()
    args = [command, option, text, "--db", db]
    if command == "schedule":
        args += ["--vm", "test", "--window", "Sun 02:30-02:45 Europe/Berlin"]
    if command == "report":
        args += ["--out", str(tmp_path / "r")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{option} {text!r} {RANGE}" in err


def test_the_range_edges_are_accepted_everywhere() -> None:
    for text in ("1970-01-01", "2199-12-31T23:59:59Z"):
        assert parse_iso_instant(text, "--from") == parse_instant(text, now=NOW, flag="--since")


def test_a_duration_too_long_says_so_and_one_reaching_before_1970_starts_there() -> None:
    with pytest.raises(InputError, match=r"--since '99999d' is a duration longer than the longest accepted"):
        parse_instant("99999d", now=NOW)
    assert parse_instant("14d", now=datetime(1970, 1, 5, tzinfo=UTC)) == datetime(1970, 1, 1, tzinfo=UTC)
    with pytest.raises(InputError, match="is neither an ISO date/time"):
        parse_instant("yesterday", now=NOW)
    with pytest.raises(InputError, match="'2026-13-01' is not an ISO 8601 date/time"):
        parse_instant("2026-13-01", now=NOW)


def test_api_parameters_use_the_same_range() -> None:
    from api.problems import ProblemError
    from api.service import _instant

    with pytest.raises(ProblemError) as caught:
        _instant("9999-12-31", NOW, "until")
    assert RANGE in str(caught.value.detail)
