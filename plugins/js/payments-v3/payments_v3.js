// Version 3 of the example payments processor, in JavaScript: the same rules
// and byte-identical rows (timers included) as the Rust
// `plugins/rust/payments-v3`, on contract 0.3.0.
//
// It reads two topics, co-partitioned by account: payments (topic 0, the
// payload of v1 and v2) and limits (topic 1, keyed by account,
// {"limit_cents":N}). Rows (compact JSON, fields in this order, integers only):
// - `account/<account>`: {"txns":N,"total_cents":S,"flagged":F}, as v2
// - `flag/<txn>`: {"account":"..","amount_cents":N,"rule":"..","timestamp":T}
// - `recent/<account>/<timestamp as 20 digits>/<txn>`: the amount, one row per
//   payment still in the account's window, read back with a range read in
//   pages of 256 rows and removed by an event-time timer named by the row,
//   set for the payment's timestamp plus window_ms
// - `limit/<account>`: {"limit_cents":N}, the latest limit of the account
//
// Rules: `large-amount` when amount_cents >= large_cents; else `velocity` when
// the account has max_txns payments, this one included, with a timestamp in
// (timestamp - window_ms, timestamp]; else `over-limit` when those payments
// add up to more than the account's limit. The configuration is v2's.
//
// Payloads and the configuration are read by payments v2's payments.js, so
// they are accepted and refused exactly as the Rust versions do; only the
// error messages differ. Every integer here is a BigInt: exact at 64 bits.
// This module imports no bindings: `processBatch` and `expire` take the view
// and the timers as objects, so it runs with plain Node.

import { Invalid, Reader, U64_MAX, decodeUtf8, parseCheckedPayment } from '../payments-v2/payments.js';
import { rows } from './range.js';

export { parseConfig, Invalid } from '../payments-v2/payments.js';

/** Rows read per range call. */
const PAGE = 256;
const I64_MAX = (1n << 63n) - 1n;
const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8');
const RECENT_PREFIX = encoder.encode('recent/');

/** The event at `offset` (a BigInt) of topic `topic` cannot be processed. */
export class EventFailure extends Error {
  constructor(topic, offset, message) {
    super(message);
    this.topic = topic;
    this.offset = offset;
  }
}

/** A failure that is no event's fault: a corrupt row, a timer this processor never sets. */
export class Internal extends Error {}

const ACCOUNT_ROW = /^\{"txns":(\d+),"total_cents":(\d+),"flagged":(\d+)\}$/;
const LIMIT_ROW = /^\{"limit_cents":(\d+)\}$/;
// What Rust's `str::parse::<u64>` reads.
const AMOUNT_ROW = /^\+?[0-9]+$/;

function corrupt(key) {
  return new Internal(`row ${decoder.decode(key)} of the view is corrupt`);
}

/** The integers of a row in the form this processor writes, or Internal. */
function row(raw, key, pattern) {
  const m = pattern.exec(decoder.decode(raw));
  if (m === null) throw corrupt(key);
  const values = m.slice(1).map(BigInt);
  if (values.some((v) => v > U64_MAX)) throw corrupt(key);
  return values;
}

function checkAccount(account) {
  if (account.includes('/')) throw new Invalid("an account must not contain '/'");
}

/** `recent/<account>/<timestamp as 20 digits>/`. */
function recentAt(account, timestamp) {
  return `recent/${account}/${timestamp.toString().padStart(20, '0')}/`;
}

/**
 * Applies one payment (key: a Uint8Array or undefined; value: a Uint8Array;
 * offset and timestamp BigInts): counts the account's payments and their
 * amounts in the window with a range read of its recent rows, flags the
 * payment, records it, and sets the timer that expires its recent row once
 * event time reaches timestamp + window_ms. Throws Invalid for a refused
 * event, Internal for a corrupt row.
 */
function payment(config, view, timers, index, timestamp, key, value) {
  const p = parseCheckedPayment(value);
  const amount = p.amount_cents;
  const account = key === undefined ? p.account : decodeUtf8(key, 'the key');
  checkAccount(account);
  if (timestamp < 0n) throw new Invalid(`a payment's timestamp must not be negative: ${timestamp}`);
  const { large_cents: largeCents, window_ms: windowMs, max_txns: maxTxns } = config;
  let from = timestamp - windowMs + 1n;
  if (from < 0n) from = 0n;
  const start = encoder.encode(recentAt(account, from));
  const end = encoder.encode(recentAt(account, timestamp + 1n));
  let count = 1n;
  let total = amount;
  for (const r of rows(view.range, start, end, PAGE)) {
    const text = decoder.decode(r.value);
    if (!AMOUNT_ROW.test(text) || BigInt(text) > U64_MAX) throw corrupt(r.key);
    count += 1n;
    total += BigInt(text);
  }
  const limitKey = encoder.encode(`limit/${account}`);
  const limitRaw = view.get(limitKey);
  const limit = limitRaw === undefined || limitRaw === null ? null : row(limitRaw, limitKey, LIMIT_ROW)[0];
  let rule = null;
  if (amount >= largeCents) rule = 'large-amount';
  else if (count >= maxTxns) rule = 'velocity';
  else if (limit !== null && total > limit) rule = 'over-limit';
  const accountKey = encoder.encode(`account/${account}`);
  const accountRaw = view.get(accountKey);
  let [txns, totalCents, flagged] =
    accountRaw === undefined || accountRaw === null ? [0n, 0n, 0n] : row(accountRaw, accountKey, ACCOUNT_ROW);
  totalCents += amount;
  if (totalCents > U64_MAX) throw new Invalid('total_cents would overflow a 64-bit integer');
  txns += 1n;
  if (rule !== null) flagged += 1n;
  view.put(accountKey, encoder.encode(`{"txns":${txns},"total_cents":${totalCents},"flagged":${flagged}}`));
  if (rule !== null) {
    const flag = `{"account":${JSON.stringify(account)},"amount_cents":${amount},"rule":"${rule}","timestamp":${timestamp}}`;
    view.put(encoder.encode(`flag/${p.txn}`), encoder.encode(flag));
  }
  const recent = encoder.encode(recentAt(account, timestamp) + p.txn);
  view.put(recent, encoder.encode(`${amount}`));
  let at = timestamp + windowMs;
  if (at > I64_MAX) at = I64_MAX;
  timers.set(index, recent, at);
}

/**
 * The limit_cents of a limit payload (a Uint8Array), read as serde_json reads
 * the Rust version's `Limit` struct: an object with the field limit_cents
 * (others ignored) or an array of that one field. Throws Invalid.
 */
export function parseLimit(bytes) {
  const r = new Reader(bytes, 'value');
  const c = r.ws();
  let text;
  let found = false;
  if (c === 0x7b) {
    r.i++;
    if (r.ws() === 0x7d) r.i++;
    else {
      for (;;) {
        r.expect(0x22);
        const name = r.string(true);
        r.expect(0x3a);
        if (name === 'limit_cents') {
          if (found) throw new Invalid('duplicate field `limit_cents`');
          found = true;
          text = r.integerOrNull();
        } else {
          r.skip();
        }
        const d = r.ws();
        r.i++;
        if (d === 0x7d) break;
        if (d !== 0x2c) r.fail('expected , or }');
      }
    }
    if (!found) throw new Invalid('missing field `limit_cents`');
  } else if (c === 0x5b) {
    r.i++;
    if (r.ws() === 0x5d) throw new Invalid('a limit array holds one field, not 0');
    text = r.integerOrNull();
    r.expect(0x5d);
  } else {
    r.skip();
    r.end();
    throw new Invalid('expected a limit object');
  }
  r.end();
  if (text === null) throw new Invalid('limit_cents must be an integer');
  const n = BigInt(text);
  if (n < 0n || n > U64_MAX) throw new Invalid(`limit_cents is out of range: ${text}`);
  return n;
}

/** Applies one event of the limits topic: keyed by account; the account's limit from now on. */
function limit(view, key, value) {
  if (key === undefined) throw new Invalid('a limit without a key: limits are per account');
  const account = decodeUtf8(key, 'the key');
  checkAccount(account);
  const cents = parseLimit(value);
  view.put(encoder.encode(`limit/${account}`), encoder.encode(`{"limit_cents":${cents}}`));
}

/**
 * Applies a batch in the columns of contract 0.3.0 (checked beforehand with
 * columns.js `check`) to `view` ({get, put, range} as the contract's view)
 * and `timers` ({set}), with a configuration from payments v2's
 * `parseConfig` (BigInts). Throws EventFailure or Internal.
 */
export function processBatch(config, view, timers, batch) {
  const { topics, offsets, timestamps, keyLengths, valueLengths, data } = batch;
  let pos = 0;
  for (let i = 0; i < offsets.length; i++) {
    const topic = topics.length === 0 ? 0 : topics[i];
    const keyLength = keyLengths[i];
    const key = keyLength < 0 ? undefined : data.subarray(pos, pos + keyLength);
    const keyEnd = keyLength > 0 ? pos + keyLength : pos;
    const end = keyEnd + valueLengths[i];
    const value = data.subarray(keyEnd, end);
    pos = end;
    try {
      if (topic === 0) payment(config, view, timers, i, timestamps[i], key, value);
      else if (topic === 1) limit(view, key, value);
      else throw new Invalid(`an event of topic ${topic}: payments v3 reads two topics, payments then limits`);
    } catch (e) {
      if (e instanceof Invalid) throw new EventFailure(topic, offsets[i], e.message);
      throw e;
    }
  }
}

/**
 * Deletes the recent rows whose timers fired (`fired`: the timers' names,
 * Uint8Arrays): each timer is named by the row it expires. Throws Internal
 * for a timer this processor never sets.
 */
export function expire(view, fired) {
  for (const name of fired) {
    if (name.length < RECENT_PREFIX.length || RECENT_PREFIX.some((b, i) => name[i] !== b)) {
      throw new Internal(`a timer this processor never sets fired: ${decoder.decode(name)}`);
    }
    view.delete(name);
  }
}
