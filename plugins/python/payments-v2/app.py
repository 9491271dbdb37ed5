"""The payments v2 processor as a component: binds the `processor` world of
wit/processor-0.1.0 to the rules in payments.py.

Build: componentize-py -d wit -w processor componentize app -o payments-v2-python.wasm
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

import payments

# Set by `init`: plain configuration, never state the view should hold.
_config = None


class _HostView:
    """The view of this version, through the imported `view` interface."""

    get = staticmethod(view.get)
    put = staticmethod(view.put)


class WitWorld(wit_world.WitWorld):
    def init(self, config: str) -> None:
        global _config
        try:
            _config = payments.parse_config(config)
        except payments.Invalid as e:
            raise Err(Error_InvalidConfig(str(e))) from None

    def process(self, events) -> None:
        if _config is None:
            raise Err(Error_Internal("process called before init"))
        try:
            payments.process_batch(
                _config,
                _HostView,
                ((e.offset, e.timestamp, e.key, e.value) for e in events),
            )
        except payments.EventFailure as e:
            raise Err(Error_InvalidEvent(EventError(e.offset, e.message))) from None
        except payments.Corrupt as e:
            raise Err(Error_Internal(str(e))) from None
