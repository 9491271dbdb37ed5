// {{name}}: a kappa processor plugin that counts the events of each key.
//
// For every event it adds one to the count of the event's key: the view maps
// the key bytes (or `(no key)` for events without a key) to the count, as
// ASCII decimal. Replace the body of `process` with your own logic.
//
// The contract is wit/processor.wit (the frozen kappa:processor@0.2.0):
// - imports are ES modules named after the interfaces, below;
// - `init` and `process` are the exports of this module;
// - a `result<_, error>` export returns normally for `ok` and throws the error
//   variant, `{ tag, val }`, for `err`.
// The batch arrives in columns; columns.js reads it event by event.

import { log } from 'kappa:processor/logging@0.2.0';
import { get, put } from 'kappa:processor/view@0.2.0';
import { events, Malformed } from './columns.js';

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

// Called with a batch of events of one partition, in offset order, in columns:
// `events(batch)` yields each event as { index, partition, offset, timestamp,
// key, value } (see columns.js); `batch.headers` holds the headers of all of
// them, as { event: index, name, value }.
//
// All the writes of a batch reach the view together with the batch's offsets,
// or none do: after a thrown error nothing of the batch is kept and the
// version stops there. A payload this plugin cannot handle is refused with
// `throw { tag: 'invalid-event', val: { offset: event.offset, message } }`.
//
// Replays must rebuild the same view, so the outcome may depend only on the
// events and the view: no clock (use `event.timestamp`), no Math.random, no
// fetch.
export function process(batch) {
  try {
    for (const event of events(batch)) {
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
  } catch (e) {
    // Columns that disagree are a host bug, never the event's fault.
    if (e instanceof Malformed) throw { tag: 'internal', val: e.message };
    throw e;
  }
}
