// Version 2 of the example payments processor, in JavaScript: the same rules
// and byte-identical rows as the Rust `plugins/rust/payments-v2`.
//
// Rows (compact JSON, fields in this order, integers only):
// - `account/<account>`: {"txns":N,"total_cents":S,"flagged":F}
// - `flag/<txn>`: {"account":"..","amount_cents":N,"rule":"..","timestamp":T}
// - `window/<account>`: the account's recent event times, ascending: [t1,t2,..]
//
// Rules: `large-amount` when amount_cents >= large_cents (default 1000000);
// else `velocity` when this is at least the max_txns-th payment (default 4) of
// the account with an event time in (timestamp - window_ms, timestamp]
// (default window 60000 ms).
//
// A JS number is exact only up to 2^53, and the Rust version counts in 64-bit
// integers: amounts, totals and times are numbers while below 2^53 and
// BigInts beyond (see batch.js, which holds the batch loop). Payloads are accepted and
// refused exactly as the Rust version does (serde_json into a struct with four
// required fields); only the error messages differ.
//
// This module imports no bindings, so it runs and is tested with plain Node.

const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;
export const U64_MAX = (1n << 64n) - 1n;
const U32_MAX = (1n << 32n) - 1n;
/** The largest window accepted: the largest integer every language of the examples represents exactly. */
export const MAX_WINDOW_MS = (1n << 53n) - 1n;

/** The configuration fields, in declaration order, and their largest values. */
const CONFIG_FIELDS = [
  ['large_cents', U64_MAX],
  ['window_ms', U64_MAX],
  ['max_txns', U32_MAX],
];
const DEFAULTS = { large_cents: 1000000n, window_ms: 60000n, max_txns: 4n };

/** What Rust's str::trim removes: a config made only of these is the empty config. */
const RUST_WHITESPACE =
  /^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$/;

/** A payload or configuration the rules refuse; the message is for the operator. */
export class Invalid extends Error {}
/** A row of the view that cannot be read back. */
export class Corrupt extends Error {}
/** The event at `offset` (a BigInt) cannot be processed. */
export class EventFailure extends Error {
  constructor(offset, message) {
    super(message);
    this.offset = offset;
  }
}

export const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const encoder = new TextEncoder();

export function decodeUtf8(bytes, what) {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new Invalid(`${what} is not UTF-8`);
  }
}

/** Whether a string has no lone surrogate (which UTF-8 cannot encode). */
function wellFormed(s) {
  return !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s);
}

// ---------------------------------------------------------------------------
// A JSON reader over bytes that accepts and refuses exactly what serde_json
// does for these structs: strings that are read are checked for UTF-8 and
// lone surrogates, ignored values only for JSON grammar; integers keep their
// text so that no 64-bit value goes through a float.

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const ESCAPES = { 0x22: '"', 0x5c: '\\', 0x2f: '/', 0x62: '\b', 0x66: '\f', 0x6e: '\n', 0x72: '\r', 0x74: '\t' };

export class Reader {
  constructor(bytes, what) {
    this.b = bytes;
    this.i = 0;
    this.what = what;
  }

  fail(message) {
    throw new Invalid(`${this.what} is not valid: ${message} at byte ${this.i}`);
  }

  ws() {
    const b = this.b;
    let i = this.i;
    while (i < b.length && (b[i] === 0x20 || b[i] === 0x0a || b[i] === 0x09 || b[i] === 0x0d)) i++;
    this.i = i;
    return i < b.length ? b[i] : -1;
  }

  expect(byte) {
    if (this.ws() !== byte) this.fail(`expected '${String.fromCharCode(byte)}'`);
    this.i++;
  }

  end() {
    if (this.ws() !== -1) this.fail('trailing characters');
  }

  /** Reads a string after its opening quote; decodes and checks it when `decode`. */
  string(decode) {
    const b = this.b;
    let i = this.i;
    let start = i;
    let out = '';
    for (;;) {
      if (i >= b.length) this.fail('unterminated string');
      const c = b[i];
      if (c === QUOTE) {
        if (decode) out += decodeUtf8(b.subarray(start, i), 'a string');
        this.i = i + 1;
        if (decode && !wellFormed(out)) this.fail('lone surrogate in a string');
        return out;
      }
      if (c === BACKSLASH) {
        if (decode) out += decodeUtf8(b.subarray(start, i), 'a string');
        const e = b[i + 1];
        if (e === 0x75) {
          let unit = 0;
          for (let k = i + 2; k < i + 6; k++) {
            const h = b[k];
            const v = h >= 0x30 && h <= 0x39 ? h - 0x30 : (h | 0x20) >= 0x61 && (h | 0x20) <= 0x66 ? (h | 0x20) - 0x57 : -1;
            if (h === undefined || v < 0) {
              this.i = k;
              this.fail('invalid \\u escape');
            }
            unit = unit * 16 + v;
          }
          if (decode) out += String.fromCharCode(unit);
          i += 6;
        } else if (e !== undefined && e in ESCAPES) {
          if (decode) out += ESCAPES[e];
          i += 2;
        } else {
          this.i = i;
          this.fail('invalid escape');
        }
        start = i;
        continue;
      }
      if (c < 0x20) {
        this.i = i;
        this.fail('control character in a string');
      }
      i++;
    }
  }

  /** Reads a number; returns its text when it is an integer to serde_json, else null. */
  number() {
    const b = this.b;
    const start = this.i;
    let i = start;
    const digit = (k) => b[k] >= 0x30 && b[k] <= 0x39;
    if (b[i] === 0x2d) i++;
    if (b[i] === 0x30) i++;
    else if (digit(i)) while (digit(i)) i++;
    else {
      this.i = i;
      this.fail('invalid number');
    }
    let integer = true;
    if (b[i] === 0x2e) {
      integer = false;
      i++;
      if (!digit(i)) {
        this.i = i;
        this.fail('invalid number');
      }
      while (digit(i)) i++;
    }
    if (b[i] === 0x65 || b[i] === 0x45) {
      integer = false;
      i++;
      if (b[i] === 0x2b || b[i] === 0x2d) i++;
      if (!digit(i)) {
        this.i = i;
        this.fail('invalid number');
      }
      while (digit(i)) i++;
    }
    this.i = i;
    let text = '';
    for (let k = start; k < i; k++) text += String.fromCharCode(b[k]);
    // serde_json reads -0 as a float.
    return integer && text !== '-0' ? text : null;
  }

  literal(word) {
    for (let k = 0; k < word.length; k++) {
      if (this.b[this.i + k] !== word.charCodeAt(k)) this.fail('expected a value');
    }
    this.i += word.length;
  }

  /** Skips one value of any depth, checking only its grammar (no recursion). */
  skip() {
    const stack = [];
    for (;;) {
      const c = this.ws();
      let open = false;
      if (c === 0x7b || c === 0x5b) {
        this.i++;
        const close = c === 0x7b ? 0x7d : 0x5d;
        if (this.ws() === close) this.i++;
        else {
          stack.push(close);
          open = true;
          if (close === 0x7d) this.key();
        }
      } else if (c === QUOTE) {
        this.i++;
        this.string(false);
      } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) this.number();
      else if (c === 0x74) this.literal('true');
      else if (c === 0x66) this.literal('false');
      else if (c === 0x6e) this.literal('null');
      else this.fail('expected a value');
      if (open) continue;
      // A value is complete: close what it completes, or go on to the next one.
      for (;;) {
        if (stack.length === 0) return;
        const top = stack[stack.length - 1];
        const d = this.ws();
        if (d === 0x2c) {
          this.i++;
          if (top === 0x7d) this.key();
          break;
        }
        if (d !== top) this.fail('expected , or a closing bracket');
        this.i++;
        stack.pop();
      }
    }
  }

  /** Skips `"key":` inside an ignored object. */
  key() {
    this.expect(QUOTE);
    this.string(false);
    this.expect(0x3a);
  }

  /** Reads an integer literal; null when the value is anything else. */
  integerOrNull() {
    const c = this.ws();
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) return this.number();
    this.skip();
    return null;
  }
}

function checkedInteger(text, lo, hi, what) {
  if (text === null) throw new Invalid(`${what} must be an integer`);
  const n = BigInt(text);
  if (n < lo || n > hi) throw new Invalid(`${what} is out of range: ${text}`);
  return n;
}

/**
 * Parses the `init` string: empty (or blank) for the defaults, else a JSON
 * object of known fields (or an array of them in declaration order). Returns
 * {large_cents, window_ms, max_txns} as BigInts; throws Invalid.
 */
export function parseConfig(text) {
  const config = { ...DEFAULTS };
  if (!RUST_WHITESPACE.test(text)) {
    const r = new Reader(encoder.encode(text), 'config');
    const c = r.ws();
    if (c === 0x7b) {
      r.i++;
      const limits = new Map(CONFIG_FIELDS);
      const seen = new Set();
      if (r.ws() === 0x7d) r.i++;
      else {
        for (;;) {
          r.expect(QUOTE);
          const name = r.string(true);
          r.expect(0x3a);
          if (!limits.has(name)) throw new Invalid(`invalid config: unknown field \`${name}\``);
          if (seen.has(name)) throw new Invalid(`invalid config: duplicate field \`${name}\``);
          seen.add(name);
          config[name] = checkedInteger(r.integerOrNull(), 0n, limits.get(name), `invalid config: ${name}`);
          const d = r.ws();
          r.i++;
          if (d === 0x7d) break;
          if (d !== 0x2c) r.fail('expected , or }');
        }
      }
    } else if (c === 0x5b) {
      r.i++;
      if (r.ws() === 0x5d) r.i++;
      else {
        for (let k = 0; ; k++) {
          if (k === CONFIG_FIELDS.length) throw new Invalid(`invalid config: at most ${k} fields`);
          const [name, limit] = CONFIG_FIELDS[k];
          config[name] = checkedInteger(r.integerOrNull(), 0n, limit, `invalid config: ${name}`);
          const d = r.ws();
          r.i++;
          if (d === 0x5d) break;
          if (d !== 0x2c) r.fail('expected , or ]');
        }
      }
    } else {
      throw new Invalid('invalid config: expected a JSON object');
    }
    r.end();
  }
  if (config.window_ms < 1n || config.window_ms > MAX_WINDOW_MS) {
    throw new Invalid(`invalid config: window_ms must be between 1 and ${MAX_WINDOW_MS}, not ${config.window_ms}`);
  }
  if (config.max_txns === 0n) throw new Invalid('invalid config: max_txns must be at least 1');
  return config;
}

const PAYMENT_FIELDS = ['txn', 'account', 'amount_cents', 'merchant'];

/** The exact path: any payload, byte by byte. */
function parsePaymentExact(bytes) {
  const r = new Reader(bytes, 'value');
  if (r.ws() !== 0x7b) {
    r.skip();
    r.end();
    throw new Invalid('expected a payment object');
  }
  r.i++;
  const fields = {};
  if (r.ws() === 0x7d) r.i++;
  else {
    for (;;) {
      r.expect(QUOTE);
      const name = r.string(true);
      r.expect(0x3a);
      if (PAYMENT_FIELDS.includes(name)) {
        if (name in fields) throw new Invalid(`duplicate field \`${name}\``);
        if (name === 'amount_cents') {
          fields[name] = checkedInteger(r.integerOrNull(), I64_MIN, I64_MAX, 'amount_cents');
        } else {
          if (r.ws() !== QUOTE) throw new Invalid(`${name} must be a string`);
          r.i++;
          fields[name] = r.string(true);
        }
      } else {
        r.skip();
      }
      const d = r.ws();
      r.i++;
      if (d === 0x7d) break;
      if (d !== 0x2c) r.fail('expected , or }');
    }
  }
  r.end();
  for (const name of PAYMENT_FIELDS) {
    if (!(name in fields)) throw new Invalid(`missing field \`${name}\``);
  }
  return fields;
}

const AMOUNT = /[ \t\n\r]*:[ \t\n\r]*(-?(?:0|[1-9][0-9]*))([.eE]?)/y;

function once(text, token) {
  const at = text.indexOf(token);
  return at >= 0 && text.indexOf(token, at + 1) < 0 ? at : -1;
}

/**
 * Parses a payment payload (a Uint8Array). Returns {txn, account,
 * amount_cents} (strings and a BigInt); throws Invalid. Does not check the
 * sign of the amount.
 *
 * The fast path (the native JSON.parse) takes the common payload: UTF-8, no
 * escapes, each field name once. Anything else goes through the exact reader.
 */
function parsePayment(bytes) {
  let text;
  try {
    text = utf8.decode(bytes);
  } catch {
    text = null;
  }
  if (text !== null && text.charCodeAt(0) === 0x7b && text.indexOf('\\') < 0) {
    const at = once(text, '"amount_cents"');
    if (at >= 0 && once(text, '"txn"') >= 0 && once(text, '"account"') >= 0 && once(text, '"merchant"') >= 0) {
      let o = null;
      try {
        o = JSON.parse(text);
      } catch {
        // Let the exact reader decide (and name the error).
      }
      if (o !== null) {
        if (typeof o.txn !== 'string' || typeof o.account !== 'string' || typeof o.merchant !== 'string') {
          throw new Invalid('txn, account and merchant must be strings');
        }
        // The one occurrence of the name may be in a nested object.
        if (o.amount_cents === undefined) throw new Invalid('missing field `amount_cents`');
        AMOUNT.lastIndex = at + 14;
        const m = AMOUNT.exec(text);
        if (m === null || m[2] !== '' || m[1] === '-0') throw new Invalid('amount_cents must be an integer');
        return { txn: o.txn, account: o.account, amount_cents: checkedInteger(m[1], I64_MIN, I64_MAX, 'amount_cents') };
      }
    }
  }
  return parsePaymentExact(bytes);
}

/** parsePayment, with a negative amount refused. */
export function parseCheckedPayment(bytes) {
  const payment = parsePayment(bytes);
  if (payment.amount_cents < 0n) throw new Invalid(`amount_cents is negative: ${payment.amount_cents}`);
  return payment;
}
