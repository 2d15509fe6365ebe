from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from collector.actions.locks import VmLock
from collector.errors import ActionSkipped

UUID = "3f1c5e0a-6b1d-4d2e-9c1a-0f5e2b7d9a41"


def test_second_lock_on_same_vm_is_refused_until_released(tmp_path: Path) -> None:
    first = VmLock(tmp_path, UUID, holder="alice plan-1")
    first.acquire()
    with pytest.raises(ActionSkipped, match=r"Another apply is running on VM 3f1c5e0a.*held by pid \d+ alice plan-1"):
        VmLock(tmp_path, UUID).acquire()
    with VmLock(tmp_path, "7a0c1d2e-3f40-4a5b-8c6d-7e8f9a0b1c2d"):  # another VM is independent
        pass
    first.release()
    with VmLock(tmp_path, UUID) as again:
        assert again.held
    assert not again.held


def test_lock_held_by_another_process_is_refused(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, os, sys, time\n"
         f"fd = os.open({str(tmp_path / (UUID + '.lock'))!r}, os.O_RDWR | os.O_CREAT)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\n"
         "os.write(fd, b'pid other')\n"
         "print('locked', flush=True)\n"
         "sys.stdin.readline()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(ActionSkipped, match="held by pid other"):
            VmLock(tmp_path, UUID).acquire()
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=10)
        if holder.stdout is not None:
            holder.stdout.close()
    with VmLock(tmp_path, UUID) as lock:  # the kernel dropped the lock with the process
        assert lock.held


def test_unsafe_vm_uuid_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot name a lock file"):
        VmLock(tmp_path, "../etc/passwd")
