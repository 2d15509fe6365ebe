"""sd_notify datagrams: path and abstract sockets, no-op without NOTIFY_SOCKET, READY rules per role."""

from __future__ import annotations

import os
import socket

from collector.sdnotify import ServiceNotifier, notify, watchdog_seconds


def _recv_all(sock: socket.socket) -> list[str]:
    sock.settimeout(0.2)
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except TimeoutError:
            return out


def test_path_and_abstract_sockets_and_no_socket():
    name = f"rightsizer-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        assert notify("READY=1", {"NOTIFY_SOCKET": "@" + name})
        assert _recv_all(sock) == ["READY=1"]
    assert not notify("READY=1", {})
    assert not notify("READY=1", {"NOTIFY_SOCKET": "/nonexistent/dir/sock"})  # logged, not raised


def test_watchdog_seconds_only_for_this_process():
    assert watchdog_seconds({"WATCHDOG_USEC": "300000000"}) == 300.0
    assert watchdog_seconds({"WATCHDOG_USEC": "300000000", "WATCHDOG_PID": str(os.getpid())}) == 300.0
    assert watchdog_seconds({"WATCHDOG_USEC": "300000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_seconds({}) is None


def test_central_role_is_ready_once_started_agent_once_a_cycle_is_stored(tmp_path, monkeypatch):
    path = tmp_path / "n.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        central = ServiceNotifier(collects=False)
        central.started()
        assert _recv_all(sock) == ["READY=1\nSTATUS=started"]
        agent = ServiceNotifier(collects=True)
        agent.started()
        agent.cycle_done(False)  # libvirt down: alive, not ready
        assert _recv_all(sock) == ["WATCHDOG=1", "STATUS=waiting for the first stored collection cycle (no host "
                                                 "answered yet)"]
        agent.cycle_done(True)
        agent.cycle_done(True)
        assert _recv_all(sock) == ["WATCHDOG=1", "READY=1\nSTATUS=first collection cycle stored", "WATCHDOG=1"]
        agent.stopping()
        assert _recv_all(sock) == ["STOPPING=1"]
