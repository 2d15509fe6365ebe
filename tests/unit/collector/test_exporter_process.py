"""/metrics from a server process of its own (collector.metrics_process) and the text-level name filter."""

from __future__ import annotations

import os
import signal
import threading
import time
import urllib.request

import pytest

from collector.exporter import build_registry
from collector.exposition import ExpositionCache, filter_text
from collector.hypervisor.fake import FakeHypervisor, Topology
from collector.metrics_process import MetricsProcess
from collector.sampler import Sampler


@pytest.fixture
def sampler(store, clock):
    fake = FakeHypervisor(Topology().add_vm("web", vcpus=4).add_vm("db", vcpus=2), clock=clock, host="hv1")
    s = Sampler([fake], store, clock=clock, interval_s=60)
    s.poll_once()
    clock.advance(30)
    s.poll_once()
    return s, fake


@pytest.fixture
def process(sampler):
    s, fake = sampler
    cache = ExpositionCache(build_registry(lambda: s.snapshot))
    server = MetricsProcess(cache, "127.0.0.1", 0)
    try:
        yield server, cache, s, fake
    finally:
        server.shutdown()
        server.server_close()


def _get(port: int, path: str = "/metrics", headers: dict[str, str] | None = None) -> tuple[bytes, dict[str, str]]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.read(), dict(resp.headers)


def _until(check, timeout_s: float = 10.0):
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def test_child_process_serves_the_parents_rendered_bytes(process):
    server, cache, _, _ = process
    port = server.server_address[1]
    assert server.pid != os.getpid()
    body, headers = _get(port)
    assert body == cache.current().text and b'rightsizer_vm_vcpus{host="hv1"' in body
    assert "Content-Encoding" not in headers
    zipped, headers = _get(port, headers={"Accept-Encoding": "gzip"})
    assert headers["Content-Encoding"] == "gzip" and zipped == cache.current().gzipped


def test_a_new_render_reaches_the_child_and_scrapes_do_not_render(process):
    server, cache, s, fake = process
    port = server.server_address[1]
    before, _ = _get(port)
    fake.set_usage("web", vcpus=8)
    s.poll_once()
    assert _get(port)[0] == before
    cache.refresh()
    uuid = fake.vm("web").uuid.encode()
    want = b'rightsizer_vm_vcpus{host="hv1",uuid="' + uuid + b'",vm="web"} 8.0'
    assert _until(lambda: want in _get(port)[0])


def test_name_filter_in_the_child(process):
    server, _, _, _ = process
    body, _ = _get(server.server_address[1], "/metrics?name[]=rightsizer_vm_vcpus&name[]=rightsizer_collector_cycles")
    names = {line.split("{")[0].split(" ")[0] for line in body.decode().splitlines() if not line.startswith("#")}
    assert names == {"rightsizer_vm_vcpus", "rightsizer_collector_cycles_total"}


def test_a_killed_child_is_started_again_on_the_next_render(process):
    server, cache, _, _ = process
    first = server.pid
    os.kill(first, signal.SIGKILL)
    assert _until(lambda: not os.path.exists(f"/proc/{first}") or _zombie(first))
    cache.refresh()
    assert server.pid != first
    assert _until(lambda: _get(server.server_address[1])[0] == cache.current().text)


def test_the_child_exits_when_the_parent_lets_go(sampler):
    s, _ = sampler
    cache = ExpositionCache(build_registry(lambda: s.snapshot))
    server = MetricsProcess(cache, "127.0.0.1", 0)
    child = server.pid
    server.shutdown()
    server.server_close()
    assert _until(lambda: not os.path.exists(f"/proc/{child}") or _zombie(child))


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


TEXT = (b'# HELP a_total Counter a.\n# TYPE a_total counter\na_total{vm="x",note="# HELP b"} 1.0\n'
        b'# HELP b_info Info b.\n# TYPE b_info gauge\nb_info{vm="x"} 1.0\nb_info{vm="y"} 1.0\n'
        b'# HELP c Gauge c.\n# TYPE c gauge\nc 2.0\n')


@pytest.mark.parametrize(("names", "expected"), [
    (["a_total"], b'# HELP a_total Counter a.\n# TYPE a_total counter\na_total{vm="x",note="# HELP b"} 1.0\n'),
    (["a"], b'# HELP a_total Counter a.\n# TYPE a_total counter\na_total{vm="x",note="# HELP b"} 1.0\n'),
    (["b", "c"], b'# HELP b_info Info b.\n# TYPE b_info gauge\nb_info{vm="x"} 1.0\nb_info{vm="y"} 1.0\n'
                 b'# HELP c Gauge c.\n# TYPE c gauge\nc 2.0\n'),
    (["nothing"], b""),
])
def test_filter_text_keeps_asked_families_whole_or_by_sample_name(names, expected):
    assert filter_text(TEXT, names) == expected


def test_filter_text_by_every_family_name_returns_the_whole_exposition(sampler):
    s, _ = sampler
    text = ExpositionCache(build_registry(lambda: s.snapshot)).current().text
    families = [ln.split(b" ")[2].decode() for ln in text.splitlines() if ln.startswith(b"# TYPE ")]
    assert len(families) > 20
    assert filter_text(text, families) == text
    assert filter_text(text, families[1:]) == text[text.index(b"# HELP " + families[1].encode()):]


def test_silent_and_idle_keep_alive_connections_do_not_hold_up_a_scrape(sampler):
    import http.client
    import socket

    from collector.metrics_server import MetricsServer

    s, _ = sampler
    cache = ExpositionCache(build_registry(lambda: s.snapshot))
    server = MetricsServer(cache, workers=2, waiting=16, idle_timeout_s=30)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]  # connect, never ask
    kept = []
    for _ in range(4):  # one scrape each, then the connections stay open and idle
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/metrics")
        conn.getresponse().read()
        kept.append(conn)
    try:
        started = time.monotonic()
        body, _ = _get(port)  # 2 accepting workers, 8 connections waiting on 30 s time-outs
        assert body == cache.current().text and time.monotonic() - started < 5
        kept[0].request("GET", "/metrics")  # a kept connection is still served
        assert kept[0].getresponse().read() == cache.current().text
    finally:
        for sock in silent:
            sock.close()
        for conn in kept:
            conn.close()
        server.shutdown()
        server.server_close()
