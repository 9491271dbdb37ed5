"""The range probe of tests/polyglot.rs in Python: the app.py of a starter of
`kappa plugin new --lang python --contract 0.3.0-rc.1`, reading the view with
that starter's ranges.py. It runs the view commands its events spell, as
plugins/rust/range-probe does (keys and values in hex):

- `put KEY VALUE`, `del KEY`: a write or a deletion;
- `range START END LIMIT`: one `view.range` call (`END` is `-` for none);
- `prefix PREFIX PAGE`: every row under PREFIX, read with `ranges.prefix` in
  pages of PAGE rows.

A read writes what it returned under `out/<offset as 20 digits>`:
`KEY=VALUE` pairs in hex, comma-separated, in the order returned.
"""

import wit_world
from componentize_py_types import Err
from wit_world.imports import view
from wit_world.imports.types import Error_Internal, Error_InvalidEvent, EventError

import columns
import ranges


def _unhex(text):
    try:
        return bytes.fromhex(text) if len(text) % 2 == 0 else None
    except ValueError:
        return None


def _run(words):
    """The rows a read returned, None for a write; raises ValueError."""
    args = [_unhex(w) for w in words[1:]]
    if words[0] == "put" and len(words) == 3 and None not in args:
        view.put(args[0], args[1])
        return None
    if words[0] == "del" and len(words) == 2 and None not in args:
        view.delete(args[0])
        return None
    if words[0] == "range" and len(words) == 4 and args[0] is not None:
        end = None if words[2] == "-" else args[1]
        if end is not None or words[2] == "-":
            return [(r.key, r.value) for r in view.range(args[0], end, int(words[3]))]
    if words[0] == "prefix" and len(words) == 3 and args[0] is not None:
        return list(ranges.prefix(view.range, args[0], int(words[2])))
    raise ValueError("unknown command")


class WitWorld(wit_world.WitWorld):
    def init(self, config: str) -> None:
        pass

    def process(self, batch) -> None:
        try:
            events = list(columns.events(batch))
        except columns.Malformed as e:
            raise Err(Error_Internal(str(e))) from None
        for event in events:
            command = event.value.decode("utf-8", "replace")
            try:
                rows = _run(command.split())
            except (ValueError, IndexError):
                raise Err(
                    Error_InvalidEvent(EventError(event.offset, f"unknown command {command!r}"))
                ) from None
            if rows is not None:
                listed = ",".join(f"{k.hex()}={v.hex()}" for k, v in rows)
                view.put(f"out/{event.offset:020}".encode(), listed.encode())
