// {{name}}: a kappa processor plugin that counts the events of each key.
//
// For every event it adds one to the count of the event's key: the view maps
// the key bytes to the count, as ASCII decimal. Events without a key are
// counted per partition, under `(no key)/<partition>`. Replace the body of
// `process` with your own logic.
//
// The contract is wit/processor.wit (kappa:processor@0.3.0-rc.1, a release
// candidate):
// - imports are ES modules named after the interfaces, below;
// - `init` and `process` are the exports of this module;
// - a `result<_, error>` export returns normally for `ok` and throws the error
//   variant, `{ tag, val }`, for `err`.
// The batch arrives in columns; columns.js reads it event by event.
//
// Contract 0.3.0-rc.1 gives each input partition a state of its own: a batch
// of partition P reads and writes P's shard of the view only, so the host may
// process the partitions on several threads at once. A key belongs to one
// partition: a batch that writes a key another partition already holds is
// refused. The events of one key are all in one partition, so rows under the
// event's key are safe; a row for events of several partitions (a global
// count) is kept once per partition, as `(no key)/<partition>` is here, and
// the reader adds them up.
//
// range.js reads the view by key range in pages. Every row under a prefix,
// the batch's own writes included, in key order:
//
//   for (const { key, value } of prefix(range, encoder.encode('w/'), 64)) { ... }
//
// The view's `range` itself returns at most `limit` rows, which count against
// the plugin's memory limit: read a large range in pages, as `prefix` does.

import { log } from 'kappa:processor/logging@0.3.0-rc.1';
import { get, put } from 'kappa:processor/view@0.3.0-rc.1';
import { events, Malformed } from './columns.js';
// For range reads (see above): import { range } from the view, and
// import { prefix, rows } from './range.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// Called once per instance, before any batch, with the configuration string
// given at deploy (`kappa deploy --config`; empty when none). The host may
// create an instance per thread and create one again at any time, so anything
// that must survive belongs in the view, not in module variables. Throwing `invalid-config` fails the
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
// them, as { event: index, name, value }. Its reads and writes reach that
// partition's shard of the view only.
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
  const unkeyed = encoder.encode(`(no key)/${batch.partition}`);
  try {
    for (const event of events(batch)) {
      const key = event.key ?? unkeyed;
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
