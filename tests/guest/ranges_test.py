"""Checks ranges.py of the Python starter of contract 0.3.0-rc.1 with CPython,
over a view.range of its own: prefix ends, and pages that read every row of a
prefix once, in order. Run by tests/plugin_tooling.rs with the project on
sys.path: `python3 ranges_test.py PROJECT`. Prints "ok"."""

import sys
from collections import namedtuple

sys.path.insert(0, sys.argv[1])
import ranges  # noqa: E402

Row = namedtuple("Row", "key value")


def reader(rows, calls):
    def read(start, end, limit):
        calls.append((start, limit))
        keys = sorted(k for k in rows if k >= start and (end is None or k < end))
        return [Row(k, rows[k]) for k in keys[:limit]]

    return read


assert ranges.prefix_end(b"w/a/") == b"w/a0"
assert ranges.prefix_end(b"a\xff\xff") == b"b"
assert ranges.prefix_end(b"\xff\xff") is None
assert ranges.prefix_end(b"") is None
assert ranges.after(b"k") == b"k\0"

rows = {k: k for k in [b"a", b"p", b"p\0", b"p/1", b"p/2", b"p/3", b"p\xff", b"q"]}
calls = []
keys = [k for k, _ in ranges.prefix(reader(rows, calls), b"p", 2)]
assert keys == [b"p", b"p\0", b"p/1", b"p/2", b"p/3", b"p\xff"], keys
# Three full pages, then an empty one that says there are no more.
assert [s for s, _ in calls] == [b"p", b"p\0\0", b"p/2\0", b"p\xff\0"], calls
# A page shorter than asked for is the last: no call after it.
calls = []
assert len(list(ranges.prefix(reader(rows, calls), b"p", 4))) == 6 and len(calls) == 2
calls = []
everything = list(ranges.rows(reader(rows, calls), b"", None, 0))
assert everything == sorted(rows.items()), everything
assert all(limit == 1 for _, limit in calls), "a page of 0 reads 1"
print("ok")
