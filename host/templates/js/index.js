// {{name}}: a kappa processor plugin that counts the events of each key.
//
// For every event it adds one to the count of the event's key: the view maps
// the key bytes (or `(no key)` for events without a key) to the count, as
// ASCII decimal. Replace the body of `process` with your own logic.
//
// The contract is wit/processor.wit (the frozen kappa:processor@0.1.0):
// - imports are ES modules named after the interfaces, below;
// - `init` and `process` are the exports of this module;
// - a `result<_, error>` export returns normally for `ok` and throws the error
//   variant, `{ tag, val }`, for `err`.

import { log } from 'kappa:processor/logging@0.1.0';
import { get, put } from 'kappa:processor/view@0.1.0';

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const NO_KEY = encoder.encode('(no key)');

// Called once per instance, before any batch, with the configuration string
// given at deploy (`kappa deploy --config`; empty when none). Instances come
// and go (a restart, a new worker), so anything that must survive belongs in
// the view, not in module variables. Throwing `invalid-config` fails the
// deploy with that message.
export function init(config) {
  if (config.trim() !== '') {
    throw { tag: 'invalid-config', val: '{{name}} takes no configuration' };
  }
  log('info', '{{name}} ready');
}

// Called with a batch of events of one partition, in offset order. Each event
// is { partition, offset, timestamp, key, value, headers }: `offset` and
// `timestamp` are BigInts, `key` a Uint8Array or undefined, `value` a
// Uint8Array.
//
// All the writes of a batch reach the view together with the batch's offsets,
// or none do: after a thrown error nothing of the batch is kept and the
// version stops there. A payload this plugin cannot handle is refused with
// `throw { tag: 'invalid-event', val: { offset: event.offset, message } }`.
//
// Replays must rebuild the same view, so the outcome may depend only on the
// events and the view: no clock (use `event.timestamp`), no Math.random, no
// fetch.
export function process(events) {
  for (const event of events) {
    const key = event.key ?? NO_KEY;
    // A write of this batch is visible to the reads that follow it, so a key
    // seen twice in one batch counts twice.
    const stored = get(key);
    let count = 0n;
    if (stored !== undefined) {
      const text = decoder.decode(stored);
      if (!/^[0-9]+$/.test(text)) {
        throw { tag: 'internal', val: 'a stored count is not a number' };
      }
      count = BigInt(text);
    }
    put(key, encoder.encode(String(count + 1n)));
  }
}
