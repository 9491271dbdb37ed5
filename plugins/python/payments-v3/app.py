"""The payments v3 processor as a component: binds the `processor` world of
wit/processor-0.3.0 (timers, `fire`, the topic of each event) to the rules
in payments_v3.py (which reads payloads with payments v2's payments.py).

Build (the second path is where payments.py is):
    componentize-py -d wit -w processor componentize app -p . -p ../payments-v2 \\
        -o payments-v3-python.wasm
"""

import wit_world
from componentize_py_types import Err
from wit_world.imports import timers, view
from wit_world.imports.types import (
    Error_Internal,
    Error_InvalidConfig,
    Error_InvalidEvent,
    EventError,
)

import columns
import payments_v3

# Set by `init`: plain configuration, never state the view should hold.
_config = None


class WitWorld(wit_world.WitWorld):
    def init(self, config: str) -> None:
        global _config
        try:
            _config = payments_v3.parse_config(config)
        except payments_v3.Invalid as e:
            raise Err(Error_InvalidConfig(str(e))) from None

    def process(self, batch) -> None:
        if _config is None:
            raise Err(Error_Internal("process called before init"))
        try:
            columns.check(batch)
        except columns.Malformed as e:
            # Columns that disagree are a host bug, never the event's fault.
            raise Err(Error_Internal(str(e))) from None
        try:
            payments_v3.process(
                _config,
                view,
                timers,
                batch.topics,
                batch.offsets,
                batch.timestamps,
                batch.key_lengths,
                batch.value_lengths,
                batch.data,
            )
        except payments_v3.EventFailure as e:
            raise Err(Error_InvalidEvent(EventError(e.topic, e.offset, e.message))) from None
        except payments_v3.Internal as e:
            raise Err(Error_Internal(str(e))) from None

    def fire(self, partition: int, time: int, fired) -> None:
        try:
            payments_v3.expire(view, [timer.key for timer in fired])
        except payments_v3.Internal as e:
            raise Err(Error_Internal(str(e))) from None
