"""A small client for the Prometheus HTTP query API (Prometheus, VictoriaMetrics, Thanos, Mimir, Cortex).

Only what the PromQL source needs: ``/api/v1/query``, ``/api/v1/query_range``, ``/api/v1/series`` and
``/api/v1/labels`` (https://prometheus.io/docs/prometheus/latest/querying/api/). Transient failures
(connection refused, timeouts, HTTP 429/502/503/504) are retried with exponential backoff; everything else
becomes one :class:`PromqlError` that names the URL and the query. Bad credentials (401/403), a server that
does not answer in the API's JSON envelope, and a refused query are :class:`PromqlInputError` (the CLI
exits 2: the user has to fix a URL, a credential or a limit).

Range answers of a whole fleet are large (5,000 series x 336 hourly points is ~65 MB of JSON), so
:meth:`PromqlClient.query_range_matrix` decodes them without a Python object per point: the small part of the
envelope (labels) goes through ``json``, the ``[ts,"value"]`` pairs of every series through one ``msgspec`` pass
into a flat float array (the same correctly rounded doubles ``float()`` gives). Anything unexpected falls back to
the plain decoder.
"""

from __future__ import annotations

import base64
import logging
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from collector.errors import InputError, StoreError
from core.parsing import json_loads

log = logging.getLogger(__name__)

_RETRY_STATUS = {429, 502, 503, 504}


class PromqlError(StoreError):
    """The query API failed at run time (after retries)."""


class PromqlInputError(InputError):
    """The URL, credentials or the query are wrong: unreachable, 401/403, not a Prometheus API, refused."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """How to authenticate: a bearer token, or basic auth; both read from files so secrets stay out of config."""

    bearer_token: str = ""
    basic_user: str = ""
    basic_password: str = ""

    def header(self) -> str | None:
        if self.bearer_token:
            return f"Bearer {self.bearer_token}"
        if self.basic_user:
            raw = f"{self.basic_user}:{self.basic_password}".encode()
            return "Basic " + base64.b64encode(raw).decode("ascii")
        return None


def read_secret(path: str, what: str) -> str:
    """The stripped contents of a secret file. Raises InputError naming the file."""
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise InputError(f"cannot read {what} file {path!r}: {exc.strerror}; check [source] settings") from exc


@dataclass(frozen=True, slots=True)
class Sample:
    """One series of a query answer: its labels and (epoch seconds, value) points."""

    labels: Mapping[str, str]
    ts_s: Sequence[float]
    values: Sequence[float]


@dataclass(frozen=True, slots=True)
class Matrix:
    """A range answer as flat arrays: series ``i`` has labels ``labels[i]`` and points ``offsets[i]:offsets[i+1]``
    of ``ts_s`` (epoch seconds) and ``values``."""

    labels: list[dict[str, str]]
    offsets: np.ndarray
    ts_s: np.ndarray
    values: np.ndarray

    def samples(self) -> list[Sample]:
        bounds = self.offsets.tolist()
        return [Sample(lab, self.ts_s[a:b].tolist(), self.values[a:b].tolist())
                for lab, a, b in zip(self.labels, bounds[:-1], bounds[1:], strict=True)]


@dataclass
class Timing:
    """Where a client's time went, safe to update from several threads.

    ``request_s`` sums every HTTP round trip (request sent .. body read); ``engine_wall_s`` is the wall time with at
    least one request in flight (what the engine costs us when requests overlap); ``decode_s`` sums decoding.
    """

    queries: int = 0
    request_s: float = 0.0
    engine_wall_s: float = 0.0
    decode_s: float = 0.0
    _in_flight: int = 0
    _busy_since: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def begin(self) -> float:
        now = time.perf_counter()
        with self._lock:
            if self._in_flight == 0:
                self._busy_since = now
            self._in_flight += 1
        return now

    def end(self, started: float) -> None:
        now = time.perf_counter()
        with self._lock:
            self.queries += 1
            self.request_s += now - started
            self._in_flight -= 1
            if self._in_flight == 0:
                self.engine_wall_s += now - self._busy_since

    def decoded(self, seconds: float) -> None:
        with self._lock:
            self.decode_s += seconds


@dataclass
class PromqlClient:
    """Blocking client; safe to share between threads (no mutable state besides counters)."""

    url: str
    credentials: Credentials = field(default_factory=Credentials)
    ca_file: str = ""
    timeout_s: float = 30.0
    retries: int = 3
    backoff_s: float = 0.5
    sleep: Callable[[float], None] = time.sleep
    timing: Timing = field(default_factory=Timing)

    @property
    def queries(self) -> int:
        """HTTP requests sent (retries included)."""
        return self.timing.queries

    def __post_init__(self) -> None:
        parsed = urllib.parse.urlsplit(self.url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise PromqlInputError(f"Prometheus URL {self.url!r} is not http(s)://HOST:PORT[/path]; "
                                   "fix --prometheus-url or [source] url")
        self.url = self.url.rstrip("/")
        self._ssl: ssl.SSLContext | None = None
        if parsed.scheme == "https":
            try:
                self._ssl = ssl.create_default_context(cafile=self.ca_file or None)
            except (OSError, ssl.SSLError) as exc:
                raise PromqlInputError(f"CA file {self.ca_file!r}: {exc}; fix [source] ca_file") from exc

    # -- endpoints -------------------------------------------------------------------------------
    def query(self, expr: str, at_s: float) -> list[Sample]:
        """Instant query at ``at_s`` (epoch seconds); vector answers only."""
        data = self._call("/api/v1/query", {"query": expr, "time": _fmt(at_s)}, expr)
        return _vector(data, self._where(expr))

    def query_range(self, expr: str, start_s: float, end_s: float, step_s: float) -> list[Sample]:
        """Range query; the caller keeps ``(end - start) / step`` within the server's points limit."""
        return self.query_range_matrix(expr, start_s, end_s, step_s).samples()

    def query_range_matrix(self, expr: str, start_s: float, end_s: float, step_s: float) -> Matrix:
        """:meth:`query_range` as flat arrays (no Python object per point)."""
        params = {"query": expr, "start": _fmt(start_s), "end": _fmt(end_s), "step": _fmt(step_s)}
        raw = self._fetch("/api/v1/query_range", params, expr)
        started = time.perf_counter()
        try:
            return decode_matrix(raw, self._where(expr))
        finally:
            self.timing.decoded(time.perf_counter() - started)

    def series(self, match: str, start_s: float, end_s: float) -> list[dict[str, str]]:
        """Label sets of the series matching ``match`` with samples between start and end."""
        data = self._call("/api/v1/series", {"match[]": match, "start": _fmt(start_s), "end": _fmt(end_s)}, match)
        if not isinstance(data, list):
            raise PromqlInputError(f"{self._where(match)}: /api/v1/series did not return a list")
        return [dict(d) for d in data]

    def labels(self) -> list[str]:
        """Label names the server knows (used to check it speaks the Prometheus API)."""
        data = self._call("/api/v1/labels", {}, "/api/v1/labels")
        if not isinstance(data, list):
            raise PromqlInputError(f"{self.url}/api/v1/labels did not return a list: not a Prometheus-compatible "
                                   "query API; check --prometheus-url")
        return [str(x) for x in data]

    # -- transport -------------------------------------------------------------------------------
    def _where(self, expr: str) -> str:
        return f"{self.url} query {expr!r}"

    def _request(self, path: str, params: Mapping[str, str]) -> urllib.request.Request:
        body = urllib.parse.urlencode(params).encode()
        req = urllib.request.Request(self.url + path, data=body, method="POST")
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
        auth = self.credentials.header()
        if auth:
            req.add_header("Authorization", auth)
        return req

    def _call(self, path: str, params: Mapping[str, str], what: str) -> Any:
        raw = self._fetch(path, params, what)
        started = time.perf_counter()
        try:
            return _envelope(raw, self._at(path, what))
        finally:
            self.timing.decoded(time.perf_counter() - started)

    def _at(self, path: str, what: str) -> str:
        return f"{self.url}{path} ({what!r})" if what != path else f"{self.url}{path}"

    def _fetch(self, path: str, params: Mapping[str, str], what: str) -> bytes:
        """The answer's body, with retries on transient failures."""
        attempt = 0
        while True:
            started = self.timing.begin()
            try:
                return self._once(path, params, what)
            except _Transient as exc:
                if attempt >= self.retries:
                    raise exc.final from None
                delay = self.backoff_s * (2 ** attempt)
                attempt += 1
                log.warning("%s; retry %d/%d in %.1fs", exc.final, attempt, self.retries, delay)
                self.sleep(delay)
            finally:
                self.timing.end(started)

    def _once(self, path: str, params: Mapping[str, str], what: str) -> bytes:
        where = self._at(path, what)
        try:
            with urllib.request.urlopen(self._request(path, params), timeout=self.timeout_s,
                                        context=self._ssl) as resp:
                raw: bytes = resp.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            if exc.code in (401, 403):
                raise PromqlInputError(f"{where}: HTTP {exc.code} {exc.reason}; check the bearer token or basic "
                                       "auth in [source]") from exc
            if exc.code in _RETRY_STATUS:
                raise _Transient(PromqlError(f"{where}: HTTP {exc.code} {exc.reason}")) from exc
            detail = _error_text(raw)
            if exc.code in (400, 422) and detail:
                raise PromqlInputError(f"{where}: the server refused the query: {detail}") from exc
            raise PromqlInputError(f"{where}: HTTP {exc.code} {exc.reason}{': ' + detail if detail else ''}; "
                                   "is this a Prometheus-compatible query API?") from exc
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise _Transient(PromqlInputError(f"{where}: cannot reach the server ({reason}); check "
                                              "--prometheus-url and that it is running")) from exc
        return raw


def _envelope(raw: bytes, where: str) -> Any:
    """The ``data`` of a JSON answer; PromqlInputError when it is not the API's envelope or not a success."""
    try:
        doc = json_loads(raw)
    except ValueError as exc:
        raise PromqlInputError(f"{where}: the answer is not JSON; not a Prometheus-compatible query API, "
                               "check --prometheus-url") from exc
    if not isinstance(doc, dict) or "status" not in doc:
        raise PromqlInputError(f"{where}: the answer has no 'status'; not a Prometheus-compatible query API")
    if doc["status"] != "success":
        raise PromqlInputError(f"{where}: the server refused the query: {doc.get('error', doc)}")
    return doc.get("data")


class _Transient(Exception):  # noqa: N818 - internal signal, never escapes _call
    def __init__(self, final: Exception) -> None:
        super().__init__(str(final))
        self.final = final


def _error_text(raw: bytes) -> str:
    try:
        doc = json_loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace").strip()[:200]
    return str(doc.get("error", "")) if isinstance(doc, dict) else ""


def _fmt(ts_s: float) -> str:
    return f"{ts_s:.3f}"


def _vector(data: Any, where: str) -> list[Sample]:
    if not isinstance(data, dict) or data.get("resultType") != "vector":
        raise PromqlInputError(f"{where}: expected a vector answer, got {str(data)[:120]!r}")
    return [Sample(r["metric"], (float(r["value"][0]),), (float(r["value"][1]),)) for r in data["result"]]


_VALUES_KEY = b'"values":['
#: ``[ts,"v"],[ts,"v"]`` with the brackets removed is a JSON list of numbers and numeric strings; lax mode turns
#: the strings (``"0.5"``, ``"NaN"``, ``"Inf"``) into floats
_FLAT = msgspec.json.Decoder(list[float], strict=False)


def decode_matrix(raw: bytes, where: str) -> Matrix:
    """A ``query_range`` answer as a :class:`Matrix`; PromqlInputError when it is not a success or not a matrix."""
    spans: list[bytes] = []
    pieces: list[bytes] = []
    pos = 0
    while (i := raw.find(_VALUES_KEY, pos)) >= 0:
        j = i + len(_VALUES_KEY)
        k = j if raw[j:j + 1] == b"]" else raw.find(b"]]", j) + 1
        if k <= 0:
            return _matrix_slow(raw, where)
        pieces.append(raw[pos:j])
        spans.append(raw[j:k])
        pos = k
    pieces.append(raw[pos:])
    data = _envelope(b"".join(pieces), where)  # the labels; every "values" is [] now
    result = _matrix_result(data, where)
    if len(result) != len(spans) or any(r.get("values") != [] for r in result):
        return _matrix_slow(raw, where)
    counts = np.array([s.count(b"[") for s in spans], dtype=np.int64)
    text = b"[" + b",".join(s for s in spans if s).translate(None, b"[]") + b"]"
    try:
        flat = np.asarray(_FLAT.decode(text.replace(b'"+Inf"', b'"Inf"')), dtype=np.float64)
    except msgspec.DecodeError:
        return _matrix_slow(raw, where)
    if flat.size != 2 * int(counts.sum()):
        return _matrix_slow(raw, where)
    offsets = np.concatenate(([0], np.cumsum(counts)))
    return Matrix([dict(r["metric"]) for r in result], offsets, flat[0::2].copy(), flat[1::2].copy())


def _matrix_result(data: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(data, dict) or data.get("resultType") != "matrix" or not isinstance(data.get("result"), list):
        raise PromqlInputError(f"{where}: expected a matrix answer, got {str(data)[:120]!r}")
    result: list[dict[str, Any]] = data["result"]
    return result


def _matrix_slow(raw: bytes, where: str) -> Matrix:
    """The plain decoder: one Python object per point (used when the answer is not laid out as expected)."""
    result = _matrix_result(_envelope(raw, where), where)
    pts = [r.get("values") or [] for r in result]
    ts = np.array([float(p[0]) for series in pts for p in series], dtype=np.float64)
    values = np.array([float(p[1]) for series in pts for p in series], dtype=np.float64)
    offsets = np.concatenate(([0], np.cumsum([len(series) for series in pts]))).astype(np.int64)
    return Matrix([dict(r["metric"]) for r in result], offsets, ts, values)
