"""Reads a batch of kappa:processor@0.2.0 event by event.

Contract 0.2.0 hands `process` its events in columns (`event-batch`): one list
per field, and the keys and values of all events back to back in `data`.
`events(batch)` walks the columns and yields one `EventRef` per event.
Written by `kappa plugin new`; it mirrors the Rust crate `kappa-guest`.
"""

from typing import Iterator, NamedTuple, Optional


class EventRef(NamedTuple):
    """One event of a batch."""

    index: int  # index in the batch (the `event` of its headers)
    partition: int
    offset: int
    timestamp: int  # event time, ms since the Unix epoch
    key: Optional[bytes]  # None when the event has no key
    value: bytes


class Malformed(Exception):
    """A batch whose columns disagree: a host bug, never the event's fault."""


def events(batch) -> Iterator[EventRef]:
    """The events of `batch`, in order. Raises `Malformed` when the columns
    have different lengths or a key or value reaches past `data`."""
    offsets = batch.offsets
    timestamps = batch.timestamps
    key_lengths = batch.key_lengths
    value_lengths = batch.value_lengths
    data = batch.data
    n = len(offsets)
    if not (len(timestamps) == len(key_lengths) == len(value_lengths) == n):
        raise Malformed(
            f"malformed event batch: columns of different lengths: {n} offsets, "
            f"{len(timestamps)} timestamps, {len(key_lengths)} key lengths, "
            f"{len(value_lengths)} value lengths"
        )
    position = 0

    def take(length: int, what: str, i: int) -> bytes:
        nonlocal position
        end = position + length
        if end > len(data):
            raise Malformed(
                f"malformed event batch: the {what} of event {i} ({length} bytes at "
                f"{position}) reaches past the {len(data)} bytes of data"
            )
        part = data[position:end]
        position = end
        return bytes(part)

    for i in range(n):
        key_length = key_lengths[i]
        if key_length == -1:
            key = None
        elif key_length < 0:
            raise Malformed(f"malformed event batch: event {i} has key length {key_length}")
        else:
            key = take(key_length, "key", i)
        value = take(value_lengths[i], "value", i)
        yield EventRef(i, batch.partition, offsets[i], timestamps[i], key, value)
