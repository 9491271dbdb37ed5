"""Checks columns.py of the Python starter of contract 0.3.0 with CPython,
over batches of its own: each event's topic from the `topics` column, topic 0
without one, and a `topics` column of another length refused. Run by
tests/plugin_tooling.rs with the project on sys.path:
`python3 columns_topics_test.py PROJECT`. Prints "ok"."""

import sys
from types import SimpleNamespace

sys.path.insert(0, sys.argv[1])
import columns  # noqa: E402


def batch(topics):
    return SimpleNamespace(
        partition=4,
        topics=topics,
        offsets=[7, 8, 9],
        timestamps=[100, -5, 300],
        key_lengths=[1, -1, 0],
        value_lengths=[2, 3, 0],
        data=b"kv1nok",
        headers=[],
    )


events = list(columns.events(batch([1, 0, 2])))
assert [(e.index, e.topic, e.offset) for e in events] == [(0, 1, 7), (1, 0, 8), (2, 2, 9)]
assert (events[0].key, events[0].value) == (b"k", b"v1")
assert (events[1].key, events[1].value) == (None, b"nok")
assert events[2].partition == 4 and events[2].key == b""
assert [e.topic for e in columns.events(batch([]))] == [0, 0, 0]
try:
    list(columns.events(batch([1, 0])))
    raise AssertionError("a topics column of another length was read")
except columns.Malformed as e:
    assert "3 offsets, 2 topics, 3 timestamps" in str(e), e
print("ok")
