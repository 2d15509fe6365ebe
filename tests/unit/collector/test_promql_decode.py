"""Range answers decode to the same numbers as the plain JSON path, and hour frames assemble as before."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from collector.store.promql import _assemble, _Part
from collector.store.promql_http import PromqlInputError, _matrix_slow, decode_matrix

WHERE = "http://x query 'q'"


def _answer(series: list[dict[str, object]], **extra: object) -> bytes:
    return json.dumps({"status": "success", "data": {"resultType": "matrix", "result": series}, **extra},
                      separators=(",", ":")).encode()


def _plain(raw: bytes) -> list[tuple[dict[str, str], list[float], list[float]]]:
    doc = json.loads(raw)
    return [(r["metric"], [float(p[0]) for p in r["values"]], [float(p[1]) for p in r["values"]])
            for r in doc["data"]["result"]]


def _same(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b, strict=True))


def test_fast_decode_equals_float_of_every_string():
    rng = np.random.default_rng(7)
    texts = [repr(float(v)) for v in rng.lognormal(-3, 4, 2000)]
    texts += ["NaN", "+Inf", "-Inf", "0", "1e-05", "123456789012345.6", "0.30000000000000004", "5e-324"]
    series = [
        {"metric": {"uuid": f"u{i}", "odd": 'a"values":[[1,"2"]]}{'}, "values": [
            [1795751979.999 + 3600 * k, t] for k, t in enumerate(texts[i::3])]}
        for i in range(3)
    ] + [{"metric": {"uuid": "empty"}, "values": []}]
    raw = _answer(series, warnings=["x"])
    m = decode_matrix(raw, WHERE)
    got = m.samples()
    want = _plain(raw)
    assert [dict(s.labels) for s in got] == [w[0] for w in want]
    for s, (_lab, ts, vals) in zip(got, want, strict=True):
        assert _same(list(s.ts_s), ts) and _same(list(s.values), vals)
    assert m.offsets.tolist()[-1] == len(texts)


def test_unexpected_layout_falls_back_to_the_plain_decoder():
    raw = json.dumps({"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"uuid": "u"}, "values": [[1, "2.5"], [2, "3"]]}]}}, indent=1).encode()  # spaces after ':'
    assert decode_matrix(raw, WHERE).values.tolist() == [2.5, 3.0]
    assert _matrix_slow(raw, WHERE).ts_s.tolist() == [1.0, 2.0]


@pytest.mark.parametrize(("raw", "words"), [
    (b'{"status":"error","error":"bad"}', "refused"),
    (b'{"status":"success","data":{"resultType":"vector","result":[]}}', "expected a matrix"),
    (b"<html>", "not JSON"),
])
def test_bad_answers_name_the_query(raw, words):
    with pytest.raises(PromqlInputError, match=words):
        decode_matrix(raw, WHERE)


def _part(col: str, names: list[str], counts: list[int], hours: list[int], values: list[float]) -> _Part:
    return _Part(col, names, np.array(counts), np.array(hours, dtype=np.int64), np.array(values))


def test_assemble_rows_sorted_union_and_duplicates_keep_the_largest():
    h = 490_000
    frame = _assemble([
        _part("vcpus", ["b", "a"], [2, 1], [h, h + 1, h], [2.0, 2.0, 4.0]),
        _part("cpu_p95_vcpus", ["a"], [2], [h, h + 2], [0.5, 0.7]),
        _part("cpu_p95_vcpus", ["a"], [2], [h, h + 2], [float("nan"), 0.9]),  # a second chunk repeating hours
    ])
    assert frame["vm"].dtype == object
    hours = [int(t.timestamp()) // 3600 for t in frame["ts"]]
    assert list(zip(frame["vm"], hours, strict=True)) == [
        ("a", h), ("a", h + 2), ("b", h), ("b", h + 1)]
    assert frame["vcpus"].tolist()[:1] == [4.0] and np.isnan(frame["vcpus"].iloc[1])
    assert frame["cpu_p95_vcpus"].tolist()[:2] == [0.5, 0.9]
    assert frame["memory_bytes"].isna().all()
    assert list(frame.columns)[:3] == ["vm", "ts", "samples"]
    assert isinstance(frame["ts"].dtype, pd.DatetimeTZDtype)
