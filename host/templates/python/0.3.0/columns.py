"""Reads a batch of kappa:processor@0.3.0 event by event.

Contract 0.3.0 hands `process` its events in columns (`event-batch`): one list
per field, and the keys and values of all events back to back in `data`, as
0.2.0 does, with one more column: `topics`, the index of each event's topic
among the version's topics (0 for the first given at deploy).
`events(batch)` walks the columns and yields one `EventRef` per event;
`check(batch)` only checks that the columns agree, for a plugin that walks
them itself (the fastest way: see docs/plugins-python.md). Written by `kappa plugin new`; it mirrors the Rust crate `kappa-guest`.
"""

from typing import Iterator, NamedTuple, Optional


class EventRef(NamedTuple):
    """One event of a batch."""

    index: int  # index in the batch (the `event` of its headers)
    topic: int  # index of its topic among the version's topics
    partition: int
    offset: int
    timestamp: int  # event time, ms since the Unix epoch
    key: Optional[bytes]  # None when the event has no key
    value: bytes


class Malformed(Exception):
    """A batch whose columns disagree: a host bug, never the event's fault."""


def check(batch) -> None:
    """Checks that the columns of `batch` agree: one entry per event in each
    list (the topic column may also be empty: every event of topic 0), no key
    length below -1, and every key and value within `data`. Raises
    `Malformed` naming the first event that does not fit. Runs in C (len,
    sum, count) whatever the batch's size."""
    offsets = batch.offsets
    key_lengths = batch.key_lengths
    value_lengths = batch.value_lengths
    n = len(offsets)
    topics = len(batch.topics)
    if not (
        len(batch.timestamps) == len(key_lengths) == len(value_lengths) == n
        and topics in (0, n)
    ):
        raise Malformed(
            f"malformed event batch: columns of different lengths: {n} offsets, "
            f"{topics} topics, {len(batch.timestamps)} timestamps, "
            f"{len(key_lengths)} key lengths, {len(value_lengths)} value lengths"
        )
    if n == 0:
        return
    size = len(batch.data)
    # Every length is at least -1, and a key length of -1 takes no bytes.
    if min(key_lengths) >= -1 and (
        sum(key_lengths) + key_lengths.count(-1) + sum(value_lengths) <= size
    ):
        return
    position = 0
    for i in range(n):
        key_length = key_lengths[i]
        if key_length < -1:
            raise Malformed(f"malformed event batch: event {i} has key length {key_length}")
        for length, what in ((max(key_length, 0), "key"), (value_lengths[i], "value")):
            if position + length > size:
                raise Malformed(
                    f"malformed event batch: the {what} of event {i} ({length} bytes at "
                    f"{position}) reaches past the {size} bytes of data"
                )
            position += length


def events(batch) -> Iterator[EventRef]:
    """The events of `batch`, in order. Raises `Malformed` (before the first
    event) when the columns disagree; see `check`."""
    check(batch)
    topics = batch.topics or [0] * len(batch.offsets)
    offsets = batch.offsets
    timestamps = batch.timestamps
    key_lengths = batch.key_lengths
    value_lengths = batch.value_lengths
    data = batch.data
    partition = batch.partition
    position = 0
    for i in range(len(offsets)):
        key_length = key_lengths[i]
        if key_length == -1:
            key = None
        else:
            key = data[position : position + key_length]
            position += key_length
        end = position + value_lengths[i]
        yield EventRef(
            i, topics[i], partition, offsets[i], timestamps[i], key, data[position:end]
        )
        position = end
