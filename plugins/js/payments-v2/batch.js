// The batch loop of the payments v2 processor: a batch of contract 0.2.0 in,
// the view's rows out, with the sliding window; payments.js parses payloads
// and the configuration. It imports no bindings, so it runs and is tested
// with plain Node.
//
// Counts, amounts and times are numbers while they are below 2^53 (exact, and
// without the allocation a BigInt costs) and BigInts beyond, so the rows are
// those of 64-bit integers either way. Comparisons of a number with a BigInt
// are exact; arithmetic mixes them only in `sum` and `minus`.

import { Corrupt, EventFailure, Invalid, U64_MAX, decodeUtf8, parseCheckedPayment, utf8 } from './payments.js';

const encoder = new TextEncoder();

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const TWO_32 = 4294967296;

/** `n` (a BigInt) as a number when that is exact, else `n`. */
function small(n) {
  return n >= 0n && n <= 9007199254740991n ? Number(n) : n;
}

/** A decimal integer's text (digits only) as a number when exact, else a BigInt. */
function integer(text) {
  return text.length < 16 ? +text : small(BigInt(text));
}

/** `a + b` for counts and amounts (numbers or BigInts), refused above 2^64 - 1. */
function sum(a, b) {
  if (typeof a === 'number' && typeof b === 'number') {
    const n = a + b;
    // Two integers below 2^53 add up exactly when the sum is below it too
    // (rounding never takes a sum at or above 2^53 below it).
    if (n <= MAX_SAFE) return n;
  }
  const n = BigInt(a) + BigInt(b);
  if (n > U64_MAX) return null;
  return n;
}

/** `n + 1` for a count (a number or a BigInt), unbounded. */
function inc(n) {
  return typeof n === 'number' && n < MAX_SAFE ? n + 1 : BigInt(n) + 1n;
}

/** `t - windowMs` for a time (a number in [0, 2^53) or a BigInt). */
function minus(t, windowMs) {
  // Both below 2^53 and t not negative: the difference is exact.
  return typeof t === 'number' ? t - windowMs : t - BigInt(windowMs);
}

/**
 * The configuration as the batch loop compares it: numbers where exact
 * (window_ms always is), else BigInts. Computed once, by `init`.
 */
export function loopConfig(config) {
  return {
    largeCents: small(config.large_cents),
    windowMs: Number(config.window_ms),
    maxTxns: Number(config.max_txns),
  };
}

/**
 * The two compact forms kappa writes: fields in declaration order (serde
 * serializing the struct, as the workload generator does) and in alphabetical
 * order (`kappa produce` reading a JSON line). A payload that matches one is
 * one serde_json accepts, with these values: strings without escapes or
 * control characters, an amount of at most 15 digits (an exact number). Any
 * other payload goes through the exact reader. Groups: txn, account, amount;
 * then account, amount, txn.
 */
const DECLARED =
  /\{"txn":"([^"\\\x00-\x1f]*)","account":"([^"\\\x00-\x1f]*)","amount_cents":(0|[1-9][0-9]{0,14}),"merchant":"[^"\\\x00-\x1f]*"\}/y;
const SORTED =
  /\{"account":"([^"\\\x00-\x1f]*)","amount_cents":(0|[1-9][0-9]{0,14}),"merchant":"[^"\\\x00-\x1f]*","txn":"([^"\\\x00-\x1f]*)"\}/y;

/**
 * [txn, account, amount text] when text[start, end) is in a compact form,
 * else null.
 */
function canonical(text, start, end) {
  DECLARED.lastIndex = start;
  let m = DECLARED.exec(text);
  if (m !== null && DECLARED.lastIndex === end) return [m[1], m[2], m[3]];
  SORTED.lastIndex = start;
  m = SORTED.exec(text);
  if (m !== null && SORTED.lastIndex === end) return [m[3], m[1], m[2]];
  return null;
}

const ACCOUNT_ROW = /^\{"txns":(\d+),"total_cents":(\d+),"flagged":(\d+)\}$/;
const WINDOW_ROW = /^\[-?\d+(,-?\d+)*\]$/;

function loadText(view, key) {
  const raw = view.get(key);
  return raw === undefined || raw === null ? null : utf8.decode(raw);
}

function corrupt(key, text) {
  return new Corrupt(`row ${key} of the view is corrupt: ${JSON.stringify(text)}`);
}

/** A stored time: a number when in [0, 2^53), else a BigInt. */
function storedTime(text) {
  const n = +text;
  return Number.isSafeInteger(n) && n >= 0 && text !== '-0' ? n : BigInt(text);
}

/** The state of an account, read from the view on its first event of a batch. */
function loadAccount(view, account) {
  const accountKey = `account/${account}`;
  const windowKey = `window/${account}`;
  // The keys' bytes serve the reads here and the writes at the end.
  const state = {
    accountKey: encoder.encode(accountKey),
    windowKey: encoder.encode(windowKey),
    txns: 0,
    total: 0,
    flagged: 0,
    times: [],
    json: null,
  };
  const row = loadText(view, state.accountKey);
  if (row !== null) {
    const m = ACCOUNT_ROW.exec(row);
    if (m === null) throw corrupt(accountKey, row);
    state.txns = integer(m[1]);
    state.total = integer(m[2]);
    state.flagged = integer(m[3]);
  }
  const times = loadText(view, state.windowKey);
  if (times !== null) {
    if (!WINDOW_ROW.test(times)) throw corrupt(windowKey, times);
    state.times = times.slice(1, -1).split(',').map(storedTime);
  }
  return state;
}

/** The payment of an event the fast path did not take: [txn, account, amount]. */
function slowPayment(data, start, keyEnd, end, keyLength) {
  const value = data.subarray(keyEnd, end);
  let m = null;
  let text = null;
  try {
    text = utf8.decode(value);
  } catch {
    // The exact reader names the error.
  }
  if (text !== null) m = canonical(text, 0, text.length);
  let txn;
  let account;
  let amount;
  if (m !== null) {
    [txn, account] = m;
    amount = +m[2];
  } else {
    const p = parseCheckedPayment(value);
    txn = p.txn;
    account = p.account;
    amount = small(p.amount_cents);
  }
  if (keyLength >= 0) account = decodeUtf8(data.subarray(start, keyEnd), 'the key');
  return [txn, account, amount];
}

/**
 * Applies a batch in the columns of contract 0.2.0 (checked beforehand with
 * columns.js `check`: one entry per event in each column, keys and values
 * within `data`) to `view` ({get(Uint8Array), put(Uint8Array, Uint8Array)}),
 * with a configuration from `loopConfig`. Throws EventFailure (its offset a
 * BigInt) or Corrupt.
 *
 * Per event it does only what the rules need: one regular-expression match
 * on a text decoded once per batch, a Map lookup, an append to an array.
 * Account rows and windows are read on first touch and written once at the
 * end of the batch, in first-touch order (Maps keep insertion order).
 */
export function processColumns(config, view, batch) {
  const { offsets, timestamps, keyLengths, valueLengths, data } = batch;
  const { largeCents, windowMs, maxTxns } = config;
  // The timestamps as 32-bit halves (little-endian), read without a BigInt.
  const halves = new Uint32Array(timestamps.buffer, timestamps.byteOffset, timestamps.length * 2);
  const text = asciiText(data);
  const accounts = new Map();
  const n = offsets.length;
  let sorted = false;
  let pos = 0;
  for (let i = 0; i < n; i++) {
    const keyLength = keyLengths[i];
    const keyEnd = keyLength > 0 ? pos + keyLength : pos;
    const end = keyEnd + valueLengths[i];
    let txn;
    let account;
    let amount;
    let m = null;
    if (text !== null) {
      // The form of the previous event first: a batch is usually all one.
      let form = sorted ? SORTED : DECLARED;
      form.lastIndex = keyEnd;
      m = form.exec(text);
      if (m === null || form.lastIndex !== end) {
        form = sorted ? DECLARED : SORTED;
        form.lastIndex = keyEnd;
        m = form.exec(text);
        if (m !== null && form.lastIndex === end) sorted = !sorted;
        else m = null;
      }
    }
    if (m !== null) {
      if (sorted) {
        txn = m[3];
        account = m[1];
        amount = m[2];
      } else {
        txn = m[1];
        account = m[2];
        amount = m[3];
      }
      if (keyLength >= 0) account = text.slice(pos, keyEnd);
      amount = +amount;
    } else {
      try {
        [txn, account, amount] = slowPayment(data, pos, keyEnd, end, keyLength);
      } catch (e) {
        if (e instanceof Invalid) throw new EventFailure(offsets[i], e.message);
        throw e;
      }
    }
    pos = end;
    let state = accounts.get(account);
    if (state === undefined) {
      state = loadAccount(view, account);
      accounts.set(account, state);
    }
    const high = halves[2 * i + 1];
    const timestamp = high < 0x200000 ? high * TWO_32 + halves[2 * i] : small(timestamps[i]);
    // Below, the common case of each step is written out rather than called:
    // a call costs the interpreter more than the arithmetic.
    const times = state.times;
    let recent;
    if (times.length > 0 && timestamp < times[times.length - 1]) {
      recent = record(times, timestamp, windowMs);
    } else {
      // In order: what `record` does. The stale times are the first few
      // (usually none or one), counted from the front.
      times.push(timestamp);
      const cutoff = typeof timestamp === 'number' ? timestamp - windowMs : minus(timestamp, windowMs);
      let stale = 0;
      while (times[stale] <= cutoff) stale++;
      if (stale === 1) times.shift();
      else if (stale > 1) times.splice(0, stale);
      recent = times.length;
    }
    // What `sum` does, for two numbers whose sum stays exact.
    let total = state.total;
    if (typeof total !== 'number' || typeof amount !== 'number' || (total += amount) > MAX_SAFE) {
      total = sum(state.total, amount);
      if (total === null) throw new EventFailure(offsets[i], 'total_cents would overflow a 64-bit integer');
    }
    state.total = total;
    const txns = state.txns;
    state.txns = typeof txns === 'number' && txns < MAX_SAFE ? txns + 1 : inc(txns);
    let rule;
    if (amount >= largeCents) rule = 'large-amount';
    else if (recent >= maxTxns) rule = 'velocity';
    else continue;
    state.flagged = inc(state.flagged);
    if (state.json === null) state.json = JSON.stringify(account);
    const flag = `{"account":${state.json},"amount_cents":${amount},"rule":"${rule}","timestamp":${timestamp}}`;
    view.put(encoder.encode(`flag/${txn}`), encoder.encode(flag));
  }
  writeAccounts(view, accounts);
}

/**
 * All of `data` as text when it is ASCII (the usual batch), else null: then
 * character positions are byte positions. A text as long as its UTF-8 bytes
 * has no character of more than one byte.
 */
function asciiText(data) {
  let text;
  try {
    text = utf8.decode(data);
  } catch {
    // Some key or value is not UTF-8: each event is decoded alone.
    return null;
  }
  return text.length === data.length ? text : null;
}

/** Writes the rows of the accounts of a batch, in first-touch order. */
function writeAccounts(view, accounts) {
  for (const s of accounts.values()) {
    const row = `{"txns":${s.txns},"total_cents":${s.total},"flagged":${s.flagged}}`;
    view.put(s.accountKey, encoder.encode(row));
    view.put(s.windowKey, encoder.encode(`[${s.times.join(',')}]`));
  }
}

/**
 * Records a payment at `timestamp` in the ascending array `times` (of
 * numbers below 2^53 and BigInts, as the batch loop keeps them) and returns how many recorded payments, this one included, fall in
 * (timestamp - windowMs, timestamp]. A late time is inserted in order (after
 * equal times); then every time at or before newest - windowMs is dropped.
 */
export function record(times, timestamp, windowMs) {
  const at = upperBound(times, timestamp);
  times.splice(at, 0, timestamp);
  const count = at + 1 - upperBound(times, minus(timestamp, windowMs));
  times.splice(0, upperBound(times, minus(times[times.length - 1], windowMs)));
  return count;
}

/** The index of the first element greater than `x` in the ascending `a`. */
function upperBound(a, x) {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid] <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

