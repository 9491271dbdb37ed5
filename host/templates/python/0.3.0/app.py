"""{{name}}: a kappa processor plugin that counts the events of each key and
forgets a key that has been quiet for an hour of event time.

For every event it adds one to the count of the event's key: the view maps
the key bytes to the count, as ASCII decimal. Events without a key are counted
per partition, under `(no key)/<partition>`. Each event also (re)sets a timer
named by the key for an hour after the event's timestamp; when it fires,
`fire` deletes the count. Replace the bodies of `process` and `fire` with your
own logic.

componentize-py generates the `wit_world` package from wit/processor.wit (the
contract kappa:processor@0.3.0) while building; see build.py. The batch
arrives in columns; columns.py reads it event by event, each event's topic
included.

Contract 0.3.0 gives each input partition a state of its own (its shard of the
view), range reads of it, event-time timers, and several input topics:
- A batch of partition P reads and writes P's shard only, so the host may
  process the partitions on several threads at once. A key belongs to one
  partition: a batch that writes a key another partition already holds is
  refused. Rows under the event's key are safe; a row for events of several
  partitions (a global count) is kept once per partition, as
  `(no key)/<partition>` is here, and the reader adds them up.
- A timer fires right after the first event, from the one that set it on,
  whose timestamp brings the partition's event time (the largest timestamp so
  far) to the timer's moment. Timers are kept in the shard and committed with
  the batch, so a replay fires them exactly as the first run did. Nothing
  fires while no event comes.
- A version deployed with several `--topic`s gets every topic's events of the
  partition in one batch, in (timestamp, topic, offset) order; `event.topic`
  says which (0 for the first topic given).

ranges.py reads the view by key range in pages. Every row under a prefix, the
batch's own writes included, in key order:

    for key, value in ranges.prefix(view.range, b"w/", 64): ...

`view.range` itself returns at most `limit` rows, which count against the
plugin's memory limit: read a large range in pages, as `ranges.prefix` does.
"""

import wit_world
from componentize_py_types import Err
from wit_world.imports import logging as log
from wit_world.imports import timers, view
from wit_world.imports.types import Error_Internal, Error_InvalidConfig

import columns
import ranges  # noqa: F401 (for range reads: see above)

# How long a key may stay quiet before it is forgotten, in milliseconds of
# event time.
IDLE_MS = 60 * 60 * 1000
# The latest moment a timer can be set for (an s64).
LATEST = 2**63 - 1


class WitWorld(wit_world.WitWorld):
    def init(self, config: str) -> None:
        """Called once per instance, before any batch, with the configuration
        string given at deploy (`kappa deploy --config`; empty when none).

        The host may create an instance per thread and create one again at
        any time, so anything that must survive belongs in the view, not in
        module globals. Raising
        `Err(Error_InvalidConfig(...))` fails the deploy with that message.
        """
        if config.strip():
            raise Err(Error_InvalidConfig("{{name}} takes no configuration"))
        log.log(log.Level.INFO, "{{name}} ready")

    def process(self, batch) -> None:
        """Called with a batch of events of one partition, in columns:
        `columns.events(batch)` yields each event (index, topic, partition,
        offset, timestamp, key or None, value); `batch.headers` holds the
        headers of all of them, by event index. Its reads and writes reach
        that partition's shard of the view only.

        All the writes and timer changes of a batch reach the shard together
        with the batch's offsets, or none do: after an error (raise
        `Err(...)`) or an uncaught exception nothing of the batch is kept and
        the version stops there. A payload this plugin cannot handle is
        refused with
        `Err(Error_InvalidEvent(EventError(event.topic, event.offset, "why")))`.

        Replays must rebuild the same view, so the outcome may depend only on
        the events and the view: no clock (use `event.timestamp`), no
        randomness, no files, no network. And it may not depend on where the
        host cuts the log into batches: process the events in order, each one
        from the events before it and the view, never from the events after it
        (the host may pass the first events of a batch again, alone, to fire a
        timer right after them).
        """
        try:
            events = list(columns.events(batch))
        except columns.Malformed as e:
            # Columns that disagree are a host bug, never the event's fault.
            raise Err(Error_Internal(str(e))) from None
        unkeyed = f"(no key)/{batch.partition}".encode("ascii")
        for event in events:
            key = event.key if event.key is not None else unkeyed
            # A write of this batch is visible to the reads that follow it,
            # so a key seen twice in one batch counts twice.
            stored = view.get(key)
            try:
                count = int(stored.decode("ascii")) if stored is not None else 0
            except ValueError:
                raise Err(Error_Internal("a stored count is not a number")) from None
            view.put(key, str(count + 1).encode("ascii"))
            # Setting a timer of the same name moves it: the key is forgotten
            # an hour after its last event. `event.index` is the event the
            # timer counts from.
            timers.set(event.index, key, min(event.timestamp + IDLE_MS, LATEST))

    def fire(self, partition: int, time: int, fired) -> None:
        """Called right after the event at which the timers in `fired` (each
        with its `key` and `at`) fell due, with the partition's event time.
        It reads and writes the shard like `process`, and its writes are
        committed with that event's batch."""
        for timer in fired:
            view.delete(timer.key)
