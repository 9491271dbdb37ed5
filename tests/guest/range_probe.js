// The range probe of tests/polyglot.rs in JavaScript: the index.js of a
// starter of `kappa plugin new --lang js --contract 0.3.0-rc.1`, reading the
// view with that starter's range.js. It runs the view commands its events
// spell, as plugins/rust/range-probe does (keys and values in hex):
//
// - `put KEY VALUE`, `del KEY`: a write or a deletion;
// - `range START END LIMIT`: one `view.range` call (`END` is `-` for none);
// - `prefix PREFIX PAGE`: every row under PREFIX, read with range.js
//   `prefix` in pages of PAGE rows.
//
// A read writes what it returned under `out/<offset as 20 digits>`:
// `KEY=VALUE` pairs in hex, comma-separated, in the order returned.

import { delete as del, put, range } from 'kappa:processor/view@0.3.0-rc.1';
import { events, Malformed } from './columns.js';
import { prefix } from './range.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function hex(bytes) {
  let text = '';
  for (const b of bytes) text += b.toString(16).padStart(2, '0');
  return text;
}

function unhex(text) {
  if (text.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(text)) throw new Error('not hex');
  const bytes = new Uint8Array(text.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

function number(text) {
  if (!/^[0-9]+$/.test(text)) throw new Error('not a number');
  return Number(text);
}

// The rows a read returned, null for a write.
function run(words) {
  const [verb, ...args] = words;
  if (verb === 'put' && args.length === 2) {
    put(unhex(args[0]), unhex(args[1]));
    return null;
  }
  if (verb === 'del' && args.length === 1) {
    del(unhex(args[0]));
    return null;
  }
  if (verb === 'range' && args.length === 3) {
    const end = args[1] === '-' ? undefined : unhex(args[1]);
    return range(unhex(args[0]), end, number(args[2]));
  }
  if (verb === 'prefix' && args.length === 2) {
    return [...prefix(range, unhex(args[0]), number(args[1]))];
  }
  throw new Error('unknown command');
}

export function init(config) {}

export function process(batch) {
  let all;
  try {
    all = [...events(batch)];
  } catch (e) {
    if (e instanceof Malformed) throw { tag: 'internal', val: e.message };
    throw e;
  }
  for (const event of all) {
    const command = decoder.decode(event.value);
    let rows;
    try {
      rows = run(command.split(/\s+/).filter((w) => w !== ''));
    } catch {
      throw { tag: 'invalid-event', val: { offset: event.offset, message: `unknown command ${JSON.stringify(command)}` } };
    }
    if (rows !== null) {
      const listed = rows.map(({ key, value }) => `${hex(key)}=${hex(value)}`).join(',');
      put(encoder.encode(`out/${String(event.offset).padStart(20, '0')}`), encoder.encode(listed));
    }
  }
}
