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
    """Parses a payment payload (bytes). Returns (txn_bytes, account, amount);
    raises Invalid."""
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
    txn_bytes = _utf8(txn, "txn")
    _utf8(account, "account")
    amount = _integer(amount, I64_MIN, I64_MAX, "amount_cents")
    if amount < 0:
        raise Invalid(f"amount_cents is negative: {amount}")
    return txn_bytes, account, amount


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


def _load(view, key, default):
    raw = view.get(key)
    if raw is None:
        return default()
    try:
        return json.loads(raw)
    except ValueError as e:
        raise Corrupt(f"row {key.decode('utf-8', 'replace')} of the view is corrupt: {e}") from None


def process_batch(config, view, events):
    """Applies a batch of (offset, timestamp, key, value) to `view` (an object
    with get(bytes) and put(bytes, bytes)). Raises (offset, Invalid) as
    EventFailure, Corrupt for a bad row."""
    large_cents, window_ms, max_txns = config
    # account -> [account_key, window_key, [txns, total, flagged], times],
    # in first-touch order (dicts keep insertion order).
    accounts = {}
    for offset, timestamp, key, value in events:
        try:
            txn, account, amount = parse_payment(value)
            if key is not None:
                try:
                    account = key.decode("utf-8")
                except UnicodeDecodeError:
                    raise Invalid("key is not UTF-8") from None
        except Invalid as e:
            raise EventFailure(offset, str(e)) from None
        state = accounts.get(account)
        if state is None:
            id_bytes = account.encode("utf-8")
            account_key = ACCOUNT_PREFIX + id_bytes
            window_key = WINDOW_PREFIX + id_bytes
            row = _load(view, account_key, lambda: None)
            totals = [0, 0, 0] if row is None else [row["txns"], row["total_cents"], row["flagged"]]
            state = accounts[account] = [account_key, window_key, totals, _load(view, window_key, list)]
        recent = record(state[3], timestamp, window_ms)
        if amount >= large_cents:
            rule = "large-amount"
        elif recent >= max_txns:
            rule = "velocity"
        else:
            rule = None
        totals = state[2]
        if totals[1] + amount > U64_MAX:
            raise EventFailure(offset, "total_cents would overflow a 64-bit integer")
        totals[0] += 1
        totals[1] += amount
        if rule is not None:
            totals[2] += 1
            flag = (
                f'{{"account":{json.dumps(account, ensure_ascii=False)},'
                f'"amount_cents":{amount},"rule":"{rule}","timestamp":{timestamp}}}'
            )
            view.put(FLAG_PREFIX + txn, flag.encode("utf-8"))
    for account_key, window_key, totals, times in accounts.values():
        row = f'{{"txns":{totals[0]},"total_cents":{totals[1]},"flagged":{totals[2]}}}'
        view.put(account_key, row.encode("utf-8"))
        view.put(window_key, ("[" + ",".join(map(str, times)) + "]").encode("utf-8"))


class EventFailure(Exception):
    """The event at `offset` cannot be processed."""

    def __init__(self, offset, message):
        super().__init__(message)
        self.offset = offset
        self.message = message
