"""Version 3 of the example payments processor, in Python: the same rules and
byte-identical rows (timers included) as the Rust `plugins/rust/payments-v3`,
on contract 0.3.0.

It reads two topics, co-partitioned by account: payments (topic 0, the
payload of v1 and v2) and limits (topic 1, keyed by account,
{"limit_cents":N}). Rows (compact JSON, fields in this order, integers only):
- `account/<account>`: {"txns":N,"total_cents":S,"flagged":F}, as v2
- `flag/<txn>`: {"account":"..","amount_cents":N,"rule":"..","timestamp":T}
- `recent/<account>/<timestamp as 20 digits>/<txn>`: the amount, one row per
  payment still in the account's window, read back with a range read in pages
  of 256 rows and removed by an event-time timer named by the row, set for
  the payment's timestamp plus window_ms
- `limit/<account>`: {"limit_cents":N}, the latest limit of the account

Rules: `large-amount` when amount_cents >= large_cents; else `velocity` when
the account has max_txns payments, this one included, with a timestamp in
(timestamp - window_ms, timestamp]; else `over-limit` when those payments add
up to more than the account's limit. The configuration is v2's.

Payloads are parsed by payments v2's code (its payments.py, on the module
path beside this directory), so they are accepted and refused exactly as the
Rust versions do; only the error messages differ. This module has no bindings: `process` and `expire` take the
view and the timers as objects, so it runs with plain CPython.
"""

import json
import re

import payments as v2
import ranges
from payments import U64_MAX, Invalid

ACCOUNT_PREFIX = v2.ACCOUNT_PREFIX
FLAG_PREFIX = v2.FLAG_PREFIX
RECENT_PREFIX = b"recent/"
LIMIT_PREFIX = b"limit/"
# Rows read per range call.
PAGE = 256
I64_MAX = v2.I64_MAX

parse_config = v2.parse_config


class EventFailure(Exception):
    """The event at `offset` of topic `topic` cannot be processed."""

    def __init__(self, topic, offset, message):
        super().__init__(message)
        self.topic = topic
        self.offset = offset
        self.message = message


class Internal(Exception):
    """A failure that is no event's fault: a corrupt row, a timer this
    processor never sets."""


_DIGITS = rb"(?:0|[1-9][0-9]{0,19})"
_ACCOUNT_ROW = re.compile(
    rb'\{"txns":(' + _DIGITS + rb'),"total_cents":(' + _DIGITS + rb'),"flagged":(' + _DIGITS + rb")\}"
)
_LIMIT_ROW = re.compile(rb'\{"limit_cents":(' + _DIGITS + rb")\}")
# What Rust's `str::parse::<u64>` reads.
_AMOUNT_ROW = re.compile(rb"\+?[0-9]+")


def _corrupt(key, why=""):
    return Internal(f"row {key.decode('utf-8', 'replace')} of the view is corrupt{why}")


def _row(raw, key, pattern, fields):
    """The integer fields of a row this plugin wrote, matched without the
    JSON decoder when it is in the form written, else decoded."""
    m = pattern.fullmatch(raw)
    if m is not None:
        return [int(g) for g in m.groups()]
    try:
        row = json.loads(raw)
        values = [row[f] for f in fields]
    except (ValueError, KeyError, TypeError) as e:
        raise _corrupt(key, f": {e}") from None
    if not all(type(v) is int and 0 <= v <= U64_MAX for v in values):
        raise _corrupt(key)
    return values


def _check_account(account):
    if "/" in account:
        raise Invalid("an account must not contain '/'")


def _recent_at(account, timestamp):
    """`recent/<account>/<timestamp as 20 digits>/`."""
    return b"%s%s/%020d/" % (RECENT_PREFIX, account, timestamp)


def payment(config, view, timers, index, offset, timestamp, txn, account, amount):
    """Applies one payment (already parsed: `account` is its key or its
    payload's account, `amount` non-negative): counts the account's payments
    and their amounts in the window with a range read of its recent rows,
    flags the payment, records it, and sets the timer that expires its recent
    row once event time reaches timestamp + window_ms. Raises Invalid for a
    refused event, Internal for a corrupt row."""
    large_cents, window_ms, max_txns = config
    _check_account(account)
    if timestamp < 0:
        raise Invalid(f"a payment's timestamp must not be negative: {timestamp}")
    account_id = account.encode("utf-8")
    start = _recent_at(account_id, max(timestamp - window_ms + 1, 0))
    end = _recent_at(account_id, timestamp + 1)
    count, total = 1, amount
    for key, value in ranges.rows(view.range, start, end, PAGE):
        if _AMOUNT_ROW.fullmatch(value) is None or int(value) > U64_MAX:
            raise _corrupt(key)
        count += 1
        total += int(value)
    limit_key = LIMIT_PREFIX + account_id
    raw = view.get(limit_key)
    limit = None if raw is None else _row(raw, limit_key, _LIMIT_ROW, ("limit_cents",))[0]
    if amount >= large_cents:
        rule = "large-amount"
    elif count >= max_txns:
        rule = "velocity"
    elif limit is not None and total > limit:
        rule = "over-limit"
    else:
        rule = None
    account_key = ACCOUNT_PREFIX + account_id
    raw = view.get(account_key)
    if raw is None:
        txns = total_cents = flagged = 0
    else:
        txns, total_cents, flagged = _row(
            raw, account_key, _ACCOUNT_ROW, ("txns", "total_cents", "flagged")
        )
    total_cents += amount
    if total_cents > U64_MAX:
        raise Invalid("total_cents would overflow a 64-bit integer")
    txns += 1
    if rule is not None:
        flagged += 1
    put = view.put
    put(account_key, b'{"txns":%d,"total_cents":%d,"flagged":%d}' % (txns, total_cents, flagged))
    if rule is not None:
        flag = (
            f'{{"account":{json.dumps(account, ensure_ascii=False)},'
            f'"amount_cents":{amount},"rule":"{rule}","timestamp":{timestamp}}}'
        )
        put(FLAG_PREFIX + txn.encode("utf-8"), flag.encode("utf-8"))
    recent = _recent_at(account_id, timestamp) + txn.encode("utf-8")
    put(recent, b"%d" % amount)
    timers.set(index, recent, min(timestamp + window_ms, I64_MAX))


_MISSING = object()


def parse_limit(value):
    """The limit_cents of a limit payload (bytes), read as serde_json reads
    the Rust version's `Limit` struct: an object with the field limit_cents
    (others ignored) or an array of that one field. Raises Invalid."""
    limit = v2._json(value.decode("utf-8", "surrogateescape"), "value")
    if type(limit) is tuple:
        found = _MISSING
        for name, field in limit:
            if name == "limit_cents":
                if found is not _MISSING:
                    raise Invalid("duplicate field `limit_cents`")
                found = field
            elif not name.isascii():
                v2._utf8(name, "a field name")
        if found is _MISSING:
            raise Invalid("missing field `limit_cents`")
    elif type(limit) is list:
        if len(limit) != 1:
            raise Invalid(f"a limit array holds one field, not {len(limit)}")
        found = limit[0]
    else:
        raise Invalid(f"expected a limit object, not {v2._describe(limit)}")
    return v2._integer(found, 0, U64_MAX, "limit_cents")


def limit(view, key, value):
    """Applies one event of the limits topic: keyed by account, valued
    {"limit_cents":N}; the account's limit from now on. Raises Invalid."""
    if key is None:
        raise Invalid("a limit without a key: limits are per account")
    try:
        account = key.decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid("key is not UTF-8") from None
    _check_account(account)
    cents = parse_limit(value)
    view.put(LIMIT_PREFIX + key, b'{"limit_cents":%d}' % cents)


def process(config, view, timers, topics, offsets, timestamps, key_lengths, value_lengths, data):
    """Applies a batch in the columns of contract 0.3.0 (checked beforehand
    with columns.check) to `view` (get, put, delete, range as the contract's
    `view`) and `timers` (set as the contract's `timers`). Raises
    EventFailure for a refused event, Internal for a corrupt row."""
    # An all-ASCII batch (the usual one) is decoded once, so that a compact
    # payment matches payments v2's patterns in C.
    text = data.decode("ascii") if data.isascii() else None
    canonical = v2._canonical
    pos = 0
    index = 0
    if not topics:
        topics = [0] * len(offsets)
    for topic, offset, timestamp, key_length, value_length in zip(
        topics, offsets, timestamps, key_lengths, value_lengths
    ):
        key_end = pos + key_length if key_length > 0 else pos
        end = key_end + value_length
        try:
            if topic == 0:
                m = None if text is None else canonical(text, key_end, end)
                if m is None:
                    try:
                        txn, account, amount = v2._payment(
                            offset, data, pos, key_end, end, key_length
                        )
                    except v2.EventFailure as e:
                        raise Invalid(e.message) from None
                else:
                    txn, account, amount = m[0], m[1], int(m[2])
                    if key_length >= 0:
                        account = text[pos:key_end]
                payment(config, view, timers, index, offset, timestamp, txn, account, amount)
            elif topic == 1:
                key = None if key_length < 0 else data[pos:key_end]
                limit(view, key, data[key_end:end])
            else:
                raise Invalid(
                    f"an event of topic {topic}: payments v3 reads two topics, "
                    "payments then limits"
                )
        except Invalid as e:
            raise EventFailure(topic, offset, str(e)) from None
        pos = end
        index += 1


def expire(view, fired):
    """Deletes the recent rows whose timers fired (`fired`: the timers'
    names): each timer is named by the row it expires. Raises Internal for a
    timer this processor never sets."""
    for name in fired:
        if not name.startswith(RECENT_PREFIX):
            raise Internal(
                "a timer this processor never sets fired: "
                + name.decode("utf-8", "replace")
            )
        view.delete(name)
