"""Lock files: never written through links (issue 24 M1), keyed on the store's real file (M2), one per-VM
lock directory per host whatever store is used (M3)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from collector.actions.locks import VmLock, default_lock_dir, vm_lock_dir
from collector.actions.plan import SizeSpec
from collector.actions.runner import run_plan, single_step_plan
from collector.errors import ActionSkipped, StoreLockedError, StoreRefusedError
from collector.hypervisor.fakecontrol import FakeControl
from collector.store.sqlite import SqliteStore
from collector.store.writer import WriterLock
from core.settings import ActionSettings

UUID = "3f1c5e0a-6b1d-4d2e-9c1a-0f5e2b7d9a41"
GIB = 1024**3


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "elsewhere" / "victim.txt"
    victim.parent.mkdir()
    victim.write_text("precious\n")
    return victim


def test_store_lock_through_a_symlink_is_refused_and_the_target_kept(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    SqliteStore(tmp_path / "s.db").close()
    (tmp_path / "s.db.lock").symlink_to(victim)
    with pytest.raises(StoreRefusedError, match=r"s\.db\.lock' is a symbolic link, not a lock file; remove it"):
        WriterLock(tmp_path / "s.db").acquire()
    assert victim.read_text() == "precious\n"


def test_vm_lock_through_a_symlink_is_refused_and_the_target_kept(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    (tmp_path / "locks").mkdir()
    (tmp_path / "locks" / f"{UUID}.lock").symlink_to(victim)
    with pytest.raises(ActionSkipped, match="is a symbolic link"):
        VmLock(tmp_path / "locks", UUID).acquire()
    assert victim.read_text() == "precious\n"


def test_vm_lock_file_with_a_second_hard_link_or_a_fifo_is_refused(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    locks = tmp_path / "locks"
    locks.mkdir()
    os.link(victim, locks / f"{UUID}.lock")
    with pytest.raises(ActionSkipped, match="has 2 hard links"):
        VmLock(locks, UUID).acquire()
    assert victim.read_text() == "precious\n"
    os.mkfifo(locks / "7a0c1d2e.lock")
    with pytest.raises(ActionSkipped, match="is not a regular file"):
        VmLock(locks, "7a0c1d2e").acquire()


def test_vm_lock_directory_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "locks").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ActionSkipped, match="lock directory .* is not a directory owned by this user or root"):
        VmLock(tmp_path / "locks", UUID).acquire()
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_a_second_name_of_the_store_meets_the_same_writer_lock(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "real.db").close()
    (tmp_path / "alias.db").symlink_to(tmp_path / "real.db")
    with WriterLock(tmp_path / "real.db", holder="serve"):
        with pytest.raises(StoreLockedError, match="already written by pid .* serve"):
            WriterLock(tmp_path / "alias.db").acquire()
        with pytest.raises(StoreLockedError):
            WriterLock(tmp_path / "sub" / ".." / "real.db").acquire()


def test_a_store_with_a_second_hard_link_is_refused_for_writing(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "real.db").close()
    os.link(tmp_path / "real.db", tmp_path / "hard.db")
    with pytest.raises(StoreRefusedError, match="has 2 hard links"):
        WriterLock(tmp_path / "hard.db").acquire()


def test_cli_import_through_an_alias_of_a_locked_store_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                  tiny_trace: Path) -> None:
    from rightsizer.cli import main

    SqliteStore(tmp_path / "real.db").close()
    (tmp_path / "alias.db").symlink_to(tmp_path / "real.db")
    with WriterLock(tmp_path / "real.db", holder="serve"):
        assert main(["import", str(tiny_trace), "--db", str(tmp_path / "alias.db")]) == 1
    assert "already written by" in capsys.readouterr().err


def _plan():
    control = FakeControl()
    ref = control.add("plain-01", vcpus=2, memory_bytes=4 * GIB)
    plan = single_step_plan(ref, SizeSpec(2, 4 * GIB, ""), SizeSpec(1, 4 * GIB, ""), price_before=None,
                            price_after=None, currency="EUR")
    return control, ref, plan


@pytest.mark.parametrize("configured", [False, True])
def test_applies_through_stores_in_different_folders_share_the_host_lock(tmp_path: Path, host_lock_dir: Path,
                                                                         configured: bool) -> None:
    control, ref, plan = _plan()
    lock_dir = tmp_path / "shared-locks" if configured else host_lock_dir
    settings = ActionSettings(lock_dir=str(lock_dir) if configured else "")
    assert vm_lock_dir(settings.lock_dir) == lock_dir
    for folder in ("a", "b"):
        store = SqliteStore(tmp_path / folder / "s.db")
        try:
            with VmLock(lock_dir, ref.uuid, holder="other-apply"):
                (result,) = run_plan(plan, settings, store=store, apply=True, actor="t",
                                     control_for=lambda uri: control)
        finally:
            store.close()
        assert result.result == "skipped" and "other-apply" in result.reason
    assert control.domains[ref.uuid].config.vcpus == 2
    assert not (tmp_path / "a" / "locks").exists()


def test_default_lock_dir_is_the_hosts_for_root(host_lock_dir: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the root default is checked as root")
    assert default_lock_dir() == host_lock_dir


def _as_nobody(code: str) -> subprocess.CompletedProcess[str]:
    def _drop() -> None:
        os.setgid(65534)
        os.setuid(65534)

    # the system interpreter: another user may not reach the test's own (a venv under a private home)
    return subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True, text=True, timeout=60,
                          preexec_fn=_drop, cwd="/", env={"PYTHONPATH": str(Path(__file__).resolve().parents[3])})


def test_a_shared_lock_directory_serialises_two_users() -> None:
    if os.geteuid() != 0 or not Path("/usr/bin/python3").exists():
        pytest.skip("switching users needs root and a system python3, as the test rig has")
    import shutil
    import tempfile

    shared = Path(tempfile.mkdtemp(prefix="rightsizer-shared-locks-", dir="/tmp"))  # pytest's folders are 0700
    os.chmod(shared, 0o1777)
    take = ("from collector.actions.locks import VmLock\nfrom collector.errors import ActionSkipped\n"
            f"try:\n    VmLock({str(shared)!r}, {UUID!r}, holder='nobody').acquire()\n    print('acquired')\n"
            "except ActionSkipped as exc:\n    print('refused', exc)\n")
    try:
        with VmLock(shared, UUID, holder="root-apply"):  # root's file, 0644: the other user opens it read-only
            done = _as_nobody(take)
        assert done.stdout.startswith("refused") and "root-apply" in done.stdout, done.stderr
        done = _as_nobody(take)
        assert done.stdout.strip() == "acquired", done.stderr
    finally:
        shutil.rmtree(shared)


def test_a_lock_directory_in_another_users_folder_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("another user's folder is made as root")
    theirs = tmp_path / "rightsizer-1000"
    theirs.mkdir()
    os.chown(theirs, 65534, 65534)
    with pytest.raises(ActionSkipped, match="belongs to another user"):
        VmLock(theirs / "locks", UUID).acquire()
