"""{{name}}: a kappa processor plugin that counts the events of each key.

For every event it adds one to the count of the event's key: the view maps
the key bytes (or `(no key)` for events without a key) to the count, as ASCII
decimal. Replace the body of `process` with your own logic.

componentize-py generates the `wit_world` package from wit/processor.wit (the
frozen contract kappa:processor@0.2.0) while building; see build.py. The
batch arrives in columns; columns.py reads it event by event.
"""

import wit_world
from componentize_py_types import Err
from wit_world.imports import logging as log
from wit_world.imports import view
from wit_world.imports.types import Error_Internal, Error_InvalidConfig

import columns

NO_KEY = b"(no key)"


class WitWorld(wit_world.WitWorld):
    def init(self, config: str) -> None:
        """Called once per instance, before any batch, with the configuration
        string given at deploy (`kappa deploy --config`; empty when none).

        Instances come and go (a restart, a new worker), so anything that must
        survive belongs in the view, not in module globals. Raising
        `Err(Error_InvalidConfig(...))` fails the deploy with that message.
        """
        if config.strip():
            raise Err(Error_InvalidConfig("{{name}} takes no configuration"))
        log.log(log.Level.INFO, "{{name}} ready")

    def process(self, batch) -> None:
        """Called with a batch of events of one partition, in offset order, in
        columns: `columns.events(batch)` yields each event (index, partition,
        offset, timestamp, key or None, value); `batch.headers` holds the
        headers of all of them, by event index.

        All the writes of a batch reach the view together with the batch's
        offsets, or none do: after an error (raise `Err(...)`) or an uncaught
        exception nothing of the batch is kept and the version stops there.
        A payload this plugin cannot handle is refused with
        `Err(Error_InvalidEvent(EventError(event.offset, "why")))`.

        Replays must rebuild the same view, so the outcome may depend only on
        the events and the view: no clock (use `event.timestamp`), no
        randomness, no files, no network.
        """
        try:
            events = list(columns.events(batch))
        except columns.Malformed as e:
            # Columns that disagree are a host bug, never the event's fault.
            raise Err(Error_Internal(str(e))) from None
        for event in events:
            key = event.key if event.key is not None else NO_KEY
            # A write of this batch is visible to the reads that follow it,
            # so a key seen twice in one batch counts twice.
            stored = view.get(key)
            try:
                count = int(stored.decode("ascii")) if stored is not None else 0
            except ValueError:
                raise Err(Error_Internal("a stored count is not a number")) from None
            view.put(key, str(count + 1).encode("ascii"))
