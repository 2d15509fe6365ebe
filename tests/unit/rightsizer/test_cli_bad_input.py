"""Bad input the CLI used to answer with a traceback (exit 1) or to accept: one line, exit 2, nothing changed."""

from __future__ import annotations

import json
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.store.schema import APPLICATION_ID
from collector.store.sqlite import SqliteStore
from rightsizer.cli import main
from tests.helpers.bitbrains import trace_row, write_trace
from tests.helpers.history import raw_history, vm_record

UUID = "3f1c5e0a-6b1d-4d2e-9c1a-0f5e2b7d9a41"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "rs.db"
    store = SqliteStore(path)
    store.write_history([vm_record("u1", "web-1", 2, 4, "h1")], raw_history("u1", 2, 4, 20e9))
    store.close()
    return path


def _plan(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plan.json"
    path.write_text(text, encoding="utf-8")
    return path


def _step(**target: object) -> dict[str, object]:
    return {"uuid": UUID, "current": {"vcpus": 2, "memory_bytes": 2**31},
            "target": {"vcpus": 1, "memory_bytes": 2**30, **target}}


def _one_line_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], *expected: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1, err
    for text in expected:
        assert text in err[0], err[0]
    return err[0]


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield int(sock.getsockname()[1])


CASES = {
    "costs-until-9999": (["costs", "--until", "9999-12-31T23:59:59"], ("--until", "9999-12-31T23:59:59")),
    "costs-until-0001": (["costs", "--until", "0001-01-01"], ("--until", "'0001-01-01'")),
    "report-until-9999": (["report", "--until", "9999-12-31", "--out", "{tmp}/rep"], ("--until", "9999-12-31")),
    "plan-5000-digit-int": (["apply", "{tmp}/plan.json"], ("plan.json", "too long")),
    "plan-100000-nested": (["apply", "{tmp}/plan.json"], ("plan.json", "nested too deeply")),
    "save-plan-missing-folder": (["apply", "{tmp}/plan.json", "--save-plan", "{tmp}/nope/p.json"],
                                 ("--save-plan", "nope/p.json")),
    "save-plan-onto-folder": (["apply", "{tmp}/plan.json", "--save-plan", "{tmp}"], ("--save-plan",)),
    "serve-metrics-busy-port": (["serve", "--uri", "test:///default", "--no-dashboard", "--metrics-listen",
                                 "127.0.0.1:{busy}"], ("--metrics-listen", "cannot listen")),
    "serve-metrics-999.1.1.1": (["serve", "--uri", "test:///default", "--no-dashboard", "--metrics-listen",
                                 "999.1.1.1:9178"], ("--metrics-listen", "999.1.1.1:9178")),
    "collect-once-garbage-mid-file": (["collect", "--once", "--uri", "test:///default"], ("damaged",)),
}
PLANS = {
    "plan-5000-digit-int": '{"steps": [{"uuid": "' + UUID + '", "current": {"vcpus": ' + "9" * 5000 + "}}]}",
    "plan-100000-nested": "[" * 100_000 + "]" * 100_000,
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_value_gives_one_line_and_exit_2(
    case: str, db: Path, tmp_path: Path, busy_port: int, capsys: pytest.CaptureFixture[str],
) -> None:
    argv, expected = CASES[case]
    _plan(tmp_path, PLANS.get(case, json.dumps({"steps": [_step()]})))
    garbage = case == "collect-once-garbage-mid-file"
    if garbage:
        size = db.stat().st_size
        with db.open("r+b") as fh:  # keep the header, overwrite pages in the middle
            fh.seek(size // 3)
            fh.write(b"\xde\xad\xbe\xef" * 2048)
    before = db.read_bytes()
    args = [a.format(tmp=tmp_path, busy=busy_port) for a in argv]
    _one_line_exit_2(capsys, [*args, "--db", str(db)], *expected)
    if garbage:
        assert db.read_bytes() == before  # a damaged store is not written to


@pytest.mark.parametrize(
    ("target", "message"),
    [({"vcpus": True}, "target.vcpus = True"), ({"vcpus": "1"}, "target.vcpus = '1'"),
     ({"memory_bytes": True}, "target.memory_bytes = True")],
    ids=["vcpus-true", "vcpus-string", "memory-true"],
)
def test_plan_json_true_is_not_a_size(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              target: dict[str, object], message: str) -> None:
    plan = _plan(tmp_path, json.dumps({"steps": [_step(**target)]}))
    _one_line_exit_2(capsys, ["apply", str(plan), "--db", str(tmp_path / "x.db")], message)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0", "1e9"])
def test_shutdown_timeout_must_be_finite_positive(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          value: str) -> None:
    plan = _plan(tmp_path, json.dumps({"steps": [_step()]}))
    _one_line_exit_2(capsys, ["apply", str(plan), f"--shutdown-timeout={value}"], "--shutdown-timeout")


def test_bad_env_value_names_the_variable_not_the_flag(db: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RIGHTSIZER_RIGHTSIZING__MIN_MONTHLY_SAVINGS", "inf")
    line = _one_line_exit_2(capsys, ["recommend", "--db", str(db)],
                            "RIGHTSIZER_RIGHTSIZING__MIN_MONTHLY_SAVINGS")
    assert "--min-monthly-savings" not in line
    monkeypatch.setenv("RIGHTSIZER_RIGHTSIZING__MIN_MONTHLY_SAVINGS", "nan")
    _one_line_exit_2(capsys, ["recommend", "--db", str(db)], "RIGHTSIZER_RIGHTSIZING__MIN_MONTHLY_SAVINGS")
    monkeypatch.delenv("RIGHTSIZER_RIGHTSIZING__MIN_MONTHLY_SAVINGS")
    _one_line_exit_2(capsys, ["recommend", "--db", str(db), "--min-monthly-savings", "inf"],
                     "--min-monthly-savings")


@pytest.mark.parametrize("mode", ["live", None], ids=["mode-live", "libvirt-rows-without-mode"])
def test_import_into_live_collected_store_is_refused(db: Path, tmp_path: Path, mode: str | None,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    if mode:
        store = SqliteStore(db)
        store.set_meta("data_mode", mode)
        store.close()
    trace = tmp_path / "trace"
    write_trace(trace / "1.csv", [trace_row(1375308176 + 300 * i) for i in range(3)])
    _one_line_exit_2(capsys, ["import", str(trace), "--db", str(db)], "collected from libvirt")
    store = SqliteStore(db)
    try:
        assert store.get_meta("data_mode") == mode
        assert [vm.name for vm in store.vms()] == ["web-1"]
    finally:
        store.close()


def _sqlite(path: Path, *statements: str) -> Path:
    conn = sqlite3.connect(path)
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()
    return path


def _foreign(path: Path) -> Path:
    return _sqlite(path, "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT)",
                   "INSERT INTO notes(body) VALUES ('keep me')")


def _foreign_app(path: Path) -> Path:
    return _sqlite(path, "PRAGMA application_id=1234", "CREATE TABLE meta(key TEXT)")


@pytest.mark.parametrize(
    ("make", "message"),
    [(_foreign, "another program's SQLite database (tables notes)"),
     (_foreign_app, "application_id 0x4d2"),
     (lambda p: (p.write_bytes(b""), p)[1], "empty file"),
     (lambda p: (p.write_bytes(b"hello, not sqlite" * 100), p)[1], "not an SQLite database")],
    ids=["foreign-tables", "foreign-application-id", "zero-bytes", "not-sqlite"],
)
@pytest.mark.parametrize("command", [["costs"], ["collect", "--once", "--uri", "test:///default"]])
def test_foreign_files_are_refused_untouched(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     make: object, message: str, command: list[str]) -> None:
    path = make(tmp_path / "other.db")  # type: ignore[operator]
    before = path.read_bytes()
    _one_line_exit_2(capsys, [*command, "--db", str(path)], message)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]  # no -wal/-shm/lock left beside it


def test_store_of_the_previous_release_is_adopted(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    store = SqliteStore(path)
    store.write_history([vm_record("u1", "web-1", 2, 4, "h1")], raw_history("u1", 2, 4, 20e9))
    store.close()
    _sqlite(path, "PRAGMA application_id=0")  # as written by the release before the id existed
    store = SqliteStore(path)
    try:
        assert [vm.name for vm in store.vms()] == ["web-1"]
        assert store._conn().execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    finally:
        store.close()
    fresh = SqliteStore(tmp_path / "new.db")
    assert fresh._conn().execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    fresh.close()


def test_second_writer_on_one_store_is_refused(db: Path) -> None:
    from collector.errors import StoreLockedError
    from collector.store.writer import WriterLock

    first = WriterLock(db, holder="rightsizer serve")
    first.acquire()
    try:
        with pytest.raises(StoreLockedError, match=r"already written by pid \d+ rightsizer serve"):
            WriterLock(db).acquire()
    finally:
        first.release()
    second = WriterLock(db)
    second.acquire()  # free again once the first writer is gone
    second.release()
