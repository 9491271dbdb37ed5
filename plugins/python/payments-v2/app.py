"""The payments v2 processor as a component: binds the `processor` world of
wit/processor-0.2.0 (the batch in columns) to the rules in payments.py.

columns.py is the column reader of `kappa plugin new --lang python`.

Build: componentize-py -d wit -w processor componentize app -p . -o payments-v2-python.wasm
"""

import wit_world
from componentize_py_types import Err
from wit_world.imports import view
from wit_world.imports.types import (
    Error_Internal,
    Error_InvalidConfig,
    Error_InvalidEvent,
    EventError,
)

import columns
import payments

# Set by `init`: plain configuration, never state the view should hold.
_config = None


class WitWorld(wit_world.WitWorld):
    def init(self, config: str) -> None:
        global _config
        try:
            _config = payments.parse_config(config)
        except payments.Invalid as e:
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
            payments.process_columns(
                _config,
                view,
                batch.offsets,
                batch.timestamps,
                batch.key_lengths,
                batch.value_lengths,
                batch.data,
            )
        except payments.EventFailure as e:
            raise Err(Error_InvalidEvent(EventError(e.offset, e.message))) from None
        except payments.Corrupt as e:
            raise Err(Error_Internal(str(e))) from None
