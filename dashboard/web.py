"""How the dashboard goes over HTTP: the WSGI server, compression and the plotly.js bundle.

* Server: ``dashboard.wsgiserver`` (an event loop that reads whole requests, with bounded header time, header
  size, body size and connections, and a pool of threads running the app). ``rightsizer serve`` runs the
  collector, scheduler, exporter and dashboard in one process sharing one in-memory data snapshot, so the
  server must live in a thread of that process: a pre-fork server (gunicorn) would copy the snapshot into every
  worker and wants to own the process. It binds before anything runs (a busy port is an error at once), serves
  from a thread and stops on ``stop()``. It replaced cheroot, whose workers each belonged to a connection from
  its first byte: 16 sockets that never sent anything stalled the whole port (issue 24, H1).
* Compression: gzip for every text response of 1 KiB or more (flask-compress); the fingerprinted,
  immutable static bundles are compressed once and kept.
* plotly.js: the dashboard draws only scatter and bar traces, so it loads plotly.js's "basic" partial
  bundle (npm ``plotly.js-basic-dist-min``, the same version as the plotly Python package's own bundle),
  fetched by ``scripts/fetch-plotly.sh`` into ``dashboard/vendor/``. dcc.Graph uses ``window.Plotly`` when
  it is already defined, so the full bundle (4.6 MB) is then never requested. Without the fetched file the
  app falls back to the full bundle and logs how to fetch it.
* Dash's polyfill bundle (@babel/polyfill: core-js 2 plus regenerator-runtime, ~100 KB, the largest script
  a first visit parses after plotly.js) is left out: the browsers Dash supports have every core-js feature
  natively, and the one global Dash's bundles need from it is ``regeneratorRuntime`` (their async-chunk
  loader is a transpiled generator). The same ``regenerator-runtime`` package, at the version the polyfill
  carries, is fetched by name and version next to plotly.js and served instead (25 KB). Without the fetched
  file Dash's polyfill stays.
* The first visit's requests start early: the index page preloads ``/_dash-layout``,
  ``/_dash-dependencies`` and the lazily loaded component chunks the page will ask for, so the server
  builds the view while the browser is still parsing scripts (Dash asks for them only after its scripts
  ran).
"""

from __future__ import annotations

import gzip
import logging
import re
import socket
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from flask import Flask, Response, request
from flask_compress import Compress

from dashboard.wsgiserver import Limits, WsgiApp, WsgiServer

log = logging.getLogger(__name__)

VENDOR = Path(__file__).resolve().parent / "vendor"
PLOTLY_PACKAGE = "plotly.js-basic-dist-min"
PLOTLY_ROUTE = "/_rightsizer/vendor/"
REGENERATOR_PACKAGE = "regenerator-runtime"
#: The newest release within the range @babel/polyfill 7.12 (Dash's polyfill bundle) depends on (^0.13.4).
REGENERATOR_VERSION = "0.13.11"
#: Dash's polyfill script tag in the index page's script block.
_DASH_POLYFILL = re.compile(r'<script src="[^"]*/deps/polyfill@[^"]*"></script>\s*')
#: Responses under these paths never change for a given URL (Dash puts a fingerprint in them).
IMMUTABLE_PREFIXES = ("/_dash-component-suites/", PLOTLY_ROUTE)
MIN_COMPRESS_BYTES = 1024
SERVER_THREADS = 16
#: listen(2) backlog of the dashboard socket (connections the kernel queues before the loop accepts them).
BACKLOG = 1024


def plotly_version() -> str:
    """The plotly.js version the installed plotly Python package was built against (e.g. "4.1.1")."""
    from plotly.offline import get_plotlyjs_version

    version: str = get_plotlyjs_version()
    return version


def plotly_bundle_path(vendor: Path = VENDOR) -> Path:
    """Where ``scripts/fetch-plotly.sh`` puts the partial bundle for the installed plotly version."""
    return vendor / f"plotly-basic-{plotly_version()}.min.js"


def enable_compression(server: Flask) -> None:
    """gzip text responses of ``MIN_COMPRESS_BYTES`` or more; cache the compressed immutable bundles."""
    server.config.update(COMPRESS_ALGORITHM=["gzip"], COMPRESS_LEVEL=6, COMPRESS_MIN_SIZE=MIN_COMPRESS_BYTES,
                         COMPRESS_STREAMS=False)
    Compress(server)
    cache: dict[str, bytes] = {}
    lock = threading.Lock()

    # Registered after Compress, so Flask runs it first; Compress then skips what already has an encoding.
    @server.after_request
    def _compress_immutable(response: Response) -> Response:
        if (not request.path.startswith(IMMUTABLE_PREFIXES) or response.status_code != 200
                or "gzip" not in request.headers.get("Accept-Encoding", "")
                or "Content-Encoding" in response.headers or response.is_streamed):
            return response
        with lock:
            body = cache.get(request.path)
        if body is None:
            body = gzip.compress(response.get_data(), compresslevel=9, mtime=0)
            with lock:
                cache[request.path] = body
        response.set_data(body)
        response.headers["Content-Encoding"] = "gzip"
        response.headers["Vary"] = "Accept-Encoding"
        return response


def add_vendor_script(server: Flask, script: Path) -> str:
    """Serve ``script`` (a fetched, versioned file) under ``PLOTLY_ROUTE``; returns its URL path."""
    body = script.read_bytes()
    url = PLOTLY_ROUTE + script.name

    def _script() -> Response:
        response = Response(body, mimetype="application/javascript")
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return response

    server.add_url_rule(url, endpoint=f"rightsizer_vendor_{script.stem}", view_func=_script)
    return url


def plotly_script(server: Flask, vendor: Path = VENDOR) -> list[str]:
    """The script URL of the partial plotly.js bundle when it was fetched, else [] (Dash's full bundle)."""
    bundle = plotly_bundle_path(vendor)
    if not bundle.is_file():
        log.warning("%s is missing: the dashboard loads the full plotly.js (slower first visit); "
                    "run 'bash scripts/fetch-plotly.sh' (make run does)", bundle)
        return []
    return [add_vendor_script(server, bundle)]


def regenerator_path(vendor: Path = VENDOR) -> Path:
    """Where ``scripts/fetch-plotly.sh`` puts regenerator-runtime, the one part of Dash's polyfill in use."""
    return vendor / f"{REGENERATOR_PACKAGE}-{REGENERATOR_VERSION}.js"


def regenerator_script(server: Flask, vendor: Path = VENDOR) -> str | None:
    """The URL of the served regenerator-runtime when it was fetched, else None (keep Dash's polyfill)."""
    runtime = regenerator_path(vendor)
    if not runtime.is_file():
        log.warning("%s is missing: the dashboard loads Dash's polyfill bundle (slower first visit); "
                    "run 'bash scripts/fetch-plotly.sh' (make run does)", runtime)
        return None
    return add_vendor_script(server, runtime)


def without_polyfill(scripts: str, runtime_url: str) -> str:
    """Dash's script tags with its polyfill bundle replaced by the regenerator-runtime at ``runtime_url``.

    Returns ``scripts`` unchanged when it holds no polyfill tag (a Dash that no longer ships one).
    """
    return _DASH_POLYFILL.sub(f'<script src="{runtime_url}"></script>\n', scripts, count=1)


def preload_links(prefix: str, chunks: Sequence[str]) -> str:
    """``<link rel=preload>`` tags for the layout, the callback graph and the component ``chunks``
    (paths under ``_dash-component-suites/``) a page will ask for; ``prefix`` is Dash's
    ``requests_pathname_prefix``. The JSON ones are fetched the way Dash fetches them (same origin, with
    credentials), so the browser hands the preloaded answer to Dash's request.
    """
    links = [f'<link rel="preload" href="{prefix}{name}" as="fetch" crossorigin="anonymous">'
             for name in ("_dash-layout", "_dash-dependencies")]
    links += [f'<link rel="preload" href="{prefix}_dash-component-suites/{chunk}" as="script">' for chunk in chunks]
    return "\n".join(links)


def probe_bind(host: str, port: int) -> None:
    """Bind and release ``host:port`` once; raises OSError when a server could not listen there."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(address)


@dataclass
class WebServer:
    """A ``WsgiServer`` on its own thread; ``port`` is the bound port (useful with port 0)."""

    host: str
    port: int
    stop: Callable[[], None]
    tls: bool = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"


def start_server(app: Callable[..., object], host: str, port: int, *, name: str = "dashboard",
                 threads: int = SERVER_THREADS, limits: Limits | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> WebServer:
    """Bind ``host:port`` and serve the WSGI ``app`` from a daemon thread (``limits``: see dashboard.wsgiserver;
    ``ssl_context``: HTTPS).

    Raises OSError when the address cannot be bound (callers name the setting it came from).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=BACKLOG)
    try:
        server = WsgiServer(cast(WsgiApp, app), sock, threads=threads, limits=limits, name=name,
                            ssl_context=ssl_context)
    except BaseException:
        sock.close()
        raise
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()

    def _stop() -> None:
        server.shutdown()
        thread.join(5.0)
        server.close()

    return WebServer(host=host, port=server.server_address[1], stop=_stop, tls=ssl_context is not None)
