"""Version 2 of the example payments processor, in Python: the same rules and
byte-identical rows as the Rust `plugins/rust/payments-v2`.

Rows (compact JSON, fields in this order, integers only):
- `account/<account>`: {"txns":N,"total_cents":S,"flagged":F}
- `flag/<txn>`: {"account":"..","amount_cents":N,"rule":"..","timestamp":T}
- `window/<account>`: the account's recent event times, ascending: [t1,t2,..]

Rules: `large-amount` when amount_cents >= large_cents (default 1000000);
else `velocity` when this is at least the max_txns-th payment (default 4) of
the account with an event time in (timestamp - window_ms, timestamp]
(default window 60000 ms).

Payloads are accepted and refused exactly as the Rust version does (serde_json
into a struct with four required fields); only the error messages differ.
This module has no bindings, so it runs and is tested with plain CPython.
"""

import json
import re
from bisect import bisect_right

ACCOUNT_PREFIX = b"account/"
FLAG_PREFIX = b"flag/"
WINDOW_PREFIX = b"window/"

I64_MIN = -(1 << 63)
I64_MAX = (1 << 63) - 1
U64_MAX = (1 << 64) - 1
U32_MAX = (1 << 32) - 1
# The largest window accepted: the largest integer every language of the
# examples represents exactly.
MAX_WINDOW_MS = (1 << 53) - 1

DEFAULTS = {"large_cents": 1_000_000, "window_ms": 60_000, "max_txns": 4}
# Field name -> largest value, in declaration order (a JSON array gives the
# fields in this order, as serde allows).
CONFIG_FIELDS = (("large_cents", U64_MAX), ("window_ms", U64_MAX), ("max_txns", U32_MAX))

# What Rust's str::trim removes (the Unicode White_Space property): a config
# made only of these is the empty config.
_RUST_WHITESPACE = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


class Invalid(Exception):
    """A payload or configuration the rules refuse; the message is for the operator."""


class Corrupt(Exception):
    """A row of the view that cannot be read back."""


class NotI64:
    """An integer literal that is not a 64-bit integer to serde_json: `-0`
    (which it reads as a float) or one with more than 20 characters."""

    __slots__ = ("text",)

    def __init__(self, text):
        self.text = text


def _parse_int(text):
    if len(text) > 20 or text == "-0":
        return NotI64(text)
    return int(text)


def _reject_constant(name):
    raise ValueError(f"{name} is not JSON")


# Objects decode to tuples of (key, value) pairs, so that duplicates are seen
# and an object is never confused with an array (a list).
_DECODER = json.JSONDecoder(
    object_pairs_hook=tuple, parse_int=_parse_int, parse_constant=_reject_constant
)


def _json(text, what):
    try:
        return _DECODER.decode(text)
    except RecursionError:
        raise Invalid(f"{what} is nested too deeply") from None
    except ValueError as e:
        raise Invalid(f"{what} is not JSON: {e}") from None


def _utf8(text, what):
    """The UTF-8 bytes of a decoded JSON string; lone surrogates (from a
    `\\ud800` escape or from invalid UTF-8 in the payload) are refused."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise Invalid(f"{what} is not valid Unicode") from None


def _integer(value, lo, hi, what):
    if type(value) is not int:
        raise Invalid(f"{what} must be an integer, not {_describe(value)}")
    if not lo <= value <= hi:
        raise Invalid(f"{what} is out of range: {value}")
    return value


def _describe(value):
    if isinstance(value, NotI64):
        return f"the number {value.text}"
    return {
        bool: "a boolean", float: "a float", str: "a string", tuple: "an object",
        list: "an array", type(None): "null",
    }.get(type(value), "a number")


def parse_config(text):
    """Parses the `init` string: empty (or blank) for the defaults, else a
    JSON object of known fields (or an array of them in declaration order).
    Returns (large_cents, window_ms, max_txns); raises Invalid."""
    config = dict(DEFAULTS)
    if all(c in _RUST_WHITESPACE for c in text):
        return config["large_cents"], config["window_ms"], config["max_txns"]
    value = _json(text, "config")
    if type(value) is tuple:
        limits = dict(CONFIG_FIELDS)
        seen = set()
        for name, field in value:
            if name not in limits:
                raise Invalid(f"invalid config: unknown field {name!r}")
            if name in seen:
                raise Invalid(f"invalid config: duplicate field {name!r}")
            seen.add(name)
            config[name] = _integer(field, 0, limits[name], f"invalid config: {name}")
    elif type(value) is list:
        if len(value) > len(CONFIG_FIELDS):
            raise Invalid(f"invalid config: at most {len(CONFIG_FIELDS)} fields")
        for (name, limit), field in zip(CONFIG_FIELDS, value):
            config[name] = _integer(field, 0, limit, f"invalid config: {name}")
    else:
        raise Invalid(f"invalid config: expected an object, not {_describe(value)}")
    if not 1 <= config["window_ms"] <= MAX_WINDOW_MS:
        raise Invalid(
            f"invalid config: window_ms must be between 1 and {MAX_WINDOW_MS}, "
            f"not {config['window_ms']}"
        )
    if config["max_txns"] == 0:
        raise Invalid("invalid config: max_txns must be at least 1")
    return config["large_cents"], config["window_ms"], config["max_txns"]


_MISSING = object()
_PAYMENT_FIELDS = ("txn", "account", "amount_cents", "merchant")


def parse_payment(value):
    """Parses a payment payload (bytes). Returns (txn, account, amount), the
    strings well-formed (they encode to UTF-8); raises Invalid."""
    # surrogateescape: invalid UTF-8 is refused only where serde_json refuses
    # it (in the strings read, not in ignored ones).
    payment = _json(value.decode("utf-8", "surrogateescape"), "value")
    if type(payment) is not tuple:
        raise Invalid(f"expected a payment object, not {_describe(payment)}")
    fields = dict.fromkeys(_PAYMENT_FIELDS, _MISSING)
    for name, field in payment:
        if name in fields:
            if fields[name] is not _MISSING:
                raise Invalid(f"duplicate field `{name}`")
            fields[name] = field
        elif not name.isascii():
            _utf8(name, "a field name")
    for name in _PAYMENT_FIELDS:
        if fields[name] is _MISSING:
            raise Invalid(f"missing field `{name}`")
    txn, account, amount, merchant = (fields[n] for n in _PAYMENT_FIELDS)
    for name, text in (("txn", txn), ("account", account), ("merchant", merchant)):
        if type(text) is not str:
            raise Invalid(f"{name} must be a string, not {_describe(text)}")
    _utf8(merchant, "merchant")
    _utf8(txn, "txn")
    _utf8(account, "account")
    amount = _integer(amount, I64_MIN, I64_MAX, "amount_cents")
    if amount < 0:
        raise Invalid(f"amount_cents is negative: {amount}")
    return txn, account, amount


def record(times, timestamp, window_ms):
    """Records a payment at `timestamp` in the ascending list `times` and
    returns how many recorded payments, this one included, fall in
    (timestamp - window_ms, timestamp]. A late time is inserted in order (after
    equal times); then every time at or before newest - window_ms is dropped."""
    at = bisect_right(times, timestamp)
    times.insert(at, timestamp)
    count = at + 1 - bisect_right(times, timestamp - window_ms)
    del times[: bisect_right(times, times[-1] - window_ms)]
    return count


def _decode_row(raw, key):
    """A row of the view that is not in the form this plugin writes, through
    the JSON decoder."""
    try:
        return json.loads(raw)
    except ValueError as e:
        raise Corrupt(f"row {key.decode('utf-8', 'replace')} of the view is corrupt: {e}") from None


# The two compact forms kappa writes: fields in declaration order (serde
# serializing the struct, as the workload generator does) and in alphabetical
# order (`kappa produce` reading a JSON line). A payload that matches one is
# one serde_json accepts, with these values: strings without escapes or
# control characters, an amount of at most 18 digits (below 2^63). Matching
# in C is most of the speed of this plugin; any other payload (another order,
# whitespace, escapes, more fields, a larger amount) goes through
# parse_payment.
_STRING = r'"([^"\\\x00-\x1f]*)"'
_AMOUNT = r"(0|[1-9][0-9]{0,17})"
_MERCHANT = r'"[^"\\\x00-\x1f]*"'
# Groups: txn, account, amount.
_DECLARED = re.compile(
    r'\{"txn":' + _STRING + r',"account":' + _STRING + r',"amount_cents":' + _AMOUNT
    + r',"merchant":' + _MERCHANT + r"\}"
)
# Groups: account, amount, txn.
_SORTED = re.compile(
    r'\{"account":' + _STRING + r',"amount_cents":' + _AMOUNT + r',"merchant":' + _MERCHANT
    + r',"txn":' + _STRING + r"\}"
)


def _canonical(text, start, end):
    """(txn, account, amount text) when text[start:end] is in a compact form,
    else None."""
    m = _DECLARED.fullmatch(text, start, end)
    if m is not None:
        return m.groups()
    m = _SORTED.fullmatch(text, start, end)
    if m is not None:
        account, amount, txn = m.groups()
        return txn, account, amount
    return None


# The rows as this plugin writes them, read without the JSON decoder; any
# other text goes through it.
_DIGITS = rb"(?:0|[1-9][0-9]{0,19})"
_ACCOUNT_ROW = re.compile(
    rb'\{"txns":(' + _DIGITS + rb'),"total_cents":(' + _DIGITS + rb'),"flagged":(' + _DIGITS + rb")\}"
)
_WINDOW_ROW = re.compile(rb"\[-?" + _DIGITS + rb"(?:,-?" + _DIGITS + rb")*\]")


def _account_state(view, account):
    """The cached state of an account, read from the view on first touch:
    [txns, total_cents, flagged, times, account_key, window_key, account as
    JSON (made on its first flag, then kept for the batch)]."""
    id_bytes = account.encode("utf-8")
    account_key = ACCOUNT_PREFIX + id_bytes
    window_key = WINDOW_PREFIX + id_bytes
    raw = view.get(account_key)
    m = None if raw is None else _ACCOUNT_ROW.fullmatch(raw)
    if raw is None:
        txns = total = flagged = 0
    elif m is not None:
        txns, total, flagged = int(m[1]), int(m[2]), int(m[3])
    else:
        row = _decode_row(raw, account_key)
        txns, total, flagged = row["txns"], row["total_cents"], row["flagged"]
    raw = view.get(window_key)
    if raw is None:
        times = []
    elif _WINDOW_ROW.fullmatch(raw) is not None:
        times = [int(t) for t in raw[1:-1].split(b",")]
    else:
        times = _decode_row(raw, window_key)
    return [txns, total, flagged, times, account_key, window_key, None]


def _payment(offset, data, start, key_end, end, key_length):
    """The (txn, account, amount) of one event whose payload the fast path did
    not take, the account being its key (UTF-8) when it has one. Raises
    EventFailure."""
    value = data[key_end:end]
    try:
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            m = None
        else:
            m = _canonical(text, 0, len(text))
        if m is None:
            txn, account, amount = parse_payment(value)
        else:
            txn, account, amount = m[0], m[1], int(m[2])
        if key_length >= 0:
            try:
                account = data[start:key_end].decode("utf-8")
            except UnicodeDecodeError:
                raise Invalid("key is not UTF-8") from None
    except Invalid as e:
        raise EventFailure(offset, str(e)) from None
    return txn, account, amount


def process_columns(config, view, offsets, timestamps, key_lengths, value_lengths, data):
    """Applies a batch in the columns of contract 0.2.0 (checked beforehand
    with columns.check: the lists have one entry per event, keys and values
    lie within `data`) to `view` (an object with get(bytes) and put(bytes,
    bytes)). Raises EventFailure for a refused event, Corrupt for a bad row.

    Per event this does only what the rules need: one C regex match for the
    payload, slices of one decoded text, a dict lookup, an append to a list.
    Account rows and windows are read on first touch and written once at the
    end of the batch, in first-touch order (dicts keep insertion order)."""
    large_cents, window_ms, max_txns = config
    accounts = {}
    state_of = accounts.get
    put = view.put
    # An all-ASCII batch (the usual one) is decoded once: its character
    # positions are its byte positions.
    text = data.decode("ascii") if data.isascii() else None
    declared = _DECLARED.fullmatch
    alphabetical = _SORTED.fullmatch
    sorted_form = False
    pos = 0
    for offset, timestamp, key_length, value_length in zip(
        offsets, timestamps, key_lengths, value_lengths
    ):
        key_end = pos + key_length if key_length > 0 else pos
        end = key_end + value_length
        if text is None:
            m = None
        else:
            # The form of the previous event first: a batch is usually all one.
            m = (alphabetical if sorted_form else declared)(text, key_end, end)
            if m is None:
                m = (declared if sorted_form else alphabetical)(text, key_end, end)
                if m is not None:
                    sorted_form = not sorted_form
            if m is not None:
                if sorted_form:
                    account, amount, txn = m.groups()
                else:
                    txn, account, amount = m.groups()
        if m is None:
            txn, account, amount = _payment(offset, data, pos, key_end, end, key_length)
        else:
            amount = int(amount)
            if key_length >= 0:
                account = text[pos:key_end]
        pos = end
        state = state_of(account)
        if state is None:
            state = accounts[account] = _account_state(view, account)
        times = state[3]
        if times and timestamp < times[-1]:
            recent = record(times, timestamp, window_ms)
        else:
            # In order: what `record` does, with one search.
            times.append(timestamp)
            stale = bisect_right(times, timestamp - window_ms)
            if stale:
                del times[:stale]
            recent = len(times)
        total = state[1] + amount
        if total > U64_MAX:
            raise EventFailure(offset, "total_cents would overflow a 64-bit integer")
        state[1] = total
        state[0] += 1
        if amount >= large_cents:
            rule = "large-amount"
        elif recent >= max_txns:
            rule = "velocity"
        else:
            continue
        state[2] += 1
        account_json = state[6]
        if account_json is None:
            account_json = state[6] = json.dumps(account, ensure_ascii=False)
        flag = (
            f'{{"account":{account_json},'
            f'"amount_cents":{amount},"rule":"{rule}","timestamp":{timestamp}}}'
        )
        put(FLAG_PREFIX + txn.encode("utf-8"), flag.encode("utf-8"))
    for txns, total, flagged, times, account_key, window_key, _ in accounts.values():
        put(account_key, f'{{"txns":{txns},"total_cents":{total},"flagged":{flagged}}}'.encode())
        put(window_key, ("[" + ",".join(map(str, times)) + "]").encode())


class EventFailure(Exception):
    """The event at `offset` cannot be processed."""

    def __init__(self, offset, message):
        super().__init__(message)
        self.offset = offset
        self.message = message
