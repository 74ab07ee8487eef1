"""stemnb._json: the compact JSON of the Redis broker and backend, as the standard library makes it."""

from __future__ import annotations

import json
import threading

import pytest

from stemnb._json import compact_json, parse_json

VALUES = [
    {"id": "t", "state": "queued", "payload": None, "meta": {"task": "noop"}, "attempt": 0, "updated_at": 1.5e9},
    [1, 2.5, -0.0, 1e300, None, True, False, "caf\u00e9 \u2713 \U0001f600", {"": []}],
    "plain text",
    12345678901234567890123,
    {"nan": float("nan"), "inf": float("inf")},
    (1, (2, 3)),
]


@pytest.mark.parametrize("value", VALUES)
def test_compact_json_writes_what_json_dumps_writes(value):
    assert compact_json(value) == json.dumps(value, separators=(",", ":"))


@pytest.mark.parametrize("value", VALUES[:4])
def test_parse_json_reads_stored_bytes_and_text_alike(value):
    assert parse_json(compact_json(value).encode()) == value
    assert parse_json(compact_json(value)) == value
    assert parse_json(bytearray(compact_json(value).encode())) == value


def test_values_that_are_not_json_data_raise_as_the_standard_library_does():
    with pytest.raises(TypeError, match="not JSON serializable"):
        compact_json({"a": object()})
    looped: list = []
    looped.append(looped)
    with pytest.raises(ValueError, match="Circular reference"):
        compact_json(looped)
    with pytest.raises(ValueError):
        parse_json(b'{"a": ')
    with pytest.raises(ValueError):
        parse_json(b'\xff\xfe{"a": 1}')  # not UTF-8


def test_a_failed_encode_leaves_no_trace_on_the_next_one():
    outer = [{"a": object()}]
    with pytest.raises(TypeError):
        compact_json(outer)  # fails inside both containers
    outer[0]["a"] = 1
    assert compact_json(outer) == '[{"a":1}]'  # not mistaken for a circular reference


def test_threads_encoding_one_shared_value_at_once_each_get_it_whole():
    shared = {"meta": {"k": list(range(200))}, "s": "x" * 1000}
    expected = json.dumps(shared, separators=(",", ":"))
    results: list[bool] = []
    start = threading.Barrier(4)

    def encode() -> None:
        start.wait()
        results.append(all(compact_json(shared) == expected for _ in range(300)))

    threads = [threading.Thread(target=encode) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == [True] * 4
