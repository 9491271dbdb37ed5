"""Reads a key range of the view of kappa:processor@0.3.0-rc.1 in pages.

`view.range(start, end, limit)` returns at most `limit` rows, and the rows it
returns count against the instance's memory limit: a plugin that asks for a
whole large range at once fails. `rows` and `prefix` read a range page by page
instead, and yield its rows one by one as `(key, value)`: each page starts
right after the last key of the one before (`after`), and a prefix ends at
`prefix_end`. They take the function that reads a page, `view.range`:

    for key, value in ranges.prefix(view.range, b"w/acct-1/", 256):
        ...

A page is read when the one before it is used up, so the plugin's own writes
of keys after the current page (and before `end`) are seen, and writes of keys
within the current page are not. Written by `kappa plugin new`; it mirrors the
Rust crate `kappa-guest`.
"""

from typing import Callable, Iterator, Optional, Sequence, Tuple

# `view.range`: (start, end or None, limit) -> rows with `key` and `value`.
ReadPage = Callable[[bytes, Optional[bytes], int], Sequence]


def after(key: bytes) -> bytes:
    """The first key after `key` in key order: `key` followed by a zero byte,
    the `start` that reads on after a page whose last key is `key`."""
    return bytes(key) + b"\0"


def prefix_end(prefix: bytes) -> Optional[bytes]:
    """The `end` of the range of every key that starts with `prefix`: the
    prefix with its last byte below 255 raised by one and the bytes after it
    dropped; None (no upper bound) when there is no such byte (an empty
    prefix, or one of 255s only)."""
    end = bytearray(prefix)
    while end:
        last = end.pop()
        if last < 255:
            end.append(last + 1)
            return bytes(end)
    return None


def rows(
    read: ReadPage, start: bytes, end: Optional[bytes], page: int
) -> Iterator[Tuple[bytes, bytes]]:
    """The rows of the keys at or after `start` and before `end` (no upper
    bound when None), in key order, read `page` rows at a time (at least
    one)."""
    page = max(page, 1)
    while True:
        found = read(start, end, page)
        for row in found:
            yield row.key, row.value
        # A full page may have rows after it; a short one is the last.
        if len(found) < page:
            return
        start = after(found[-1].key)


def prefix(read: ReadPage, prefix: bytes, page: int) -> Iterator[Tuple[bytes, bytes]]:
    """The rows of the keys that start with `prefix`, in key order, read
    `page` rows at a time (at least one)."""
    return rows(read, prefix, prefix_end(prefix), page)
