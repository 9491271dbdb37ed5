// {{name}}: a kappa processor plugin that counts the events of each key and
// forgets a key that has been quiet for an hour of event time.
//
// For every event it adds one to the count of the event's key: the view maps
// the key bytes to the count, as ASCII decimal. Events without a key are
// counted per partition, under `(no key)/<partition>`. Each event also
// (re)sets a timer named by the key for an hour after the event's timestamp;
// when it fires, `fire` deletes the count. Replace the bodies of `process` and
// `fire` with your own logic.
//
// The contract is wit/processor.wit (kappa:processor@0.3.0):
// - imports are ES modules named after the interfaces, below;
// - `init`, `process` and `fire` are the exports of this module;
// - a `result<_, error>` export returns normally for `ok` and throws the error
//   variant, `{ tag, val }`, for `err`.
// The batch arrives in columns; columns.js reads it event by event, each
// event's topic included.
//
// Contract 0.3.0 gives each input partition a state of its own (its shard of
// the view), range reads of it, event-time timers, and several input topics:
// - A batch of partition P reads and writes P's shard only, so the host may
//   process the partitions on several threads at once. A key belongs to one
//   partition: a batch that writes a key another partition already holds is
//   refused. Rows under the event's key are safe; a row for events of several
//   partitions (a global count) is kept once per partition, as
//   `(no key)/<partition>` is here, and the reader adds them up.
// - A timer fires right after the first event, from the one that set it on,
//   whose timestamp brings the partition's event time (the largest timestamp
//   so far) to the timer's moment. Timers are kept in the shard and committed
//   with the batch, so a replay fires them exactly as the first run did.
//   Nothing fires while no event comes.
// - A version deployed with several `--topic`s gets every topic's events of
//   the partition in one batch, in (timestamp, topic, offset) order;
//   `event.topic` says which (0 for the first topic given).
//
// range.js reads the view by key range in pages. Every row under a prefix,
// the batch's own writes included, in key order:
//
//   for (const { key, value } of prefix(range, encoder.encode('w/'), 64)) { ... }
//
// The view's `range` itself returns at most `limit` rows, which count against
// the plugin's memory limit: read a large range in pages, as `prefix` does.

import { log } from 'kappa:processor/logging@0.3.0';
import { get, put, delete as del } from 'kappa:processor/view@0.3.0';
import { set } from 'kappa:processor/timers@0.3.0';
import { events, Malformed } from './columns.js';
// For range reads (see above): import { range } from the view, and
// import { prefix, rows } from './range.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// How long a key may stay quiet before it is forgotten, in milliseconds of
// event time (a BigInt, as timestamps are).
const IDLE_MS = 60n * 60n * 1000n;
// The latest moment a timer can be set for (an s64).
const LATEST = (1n << 63n) - 1n;

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

// Called with a batch of events of one partition, in columns: `events(batch)`
// yields each event as { index, topic, partition, offset, timestamp, key,
// value } (see columns.js); `batch.headers` holds the headers of all of them,
// as { event: index, name, value }. Its reads and writes reach that
// partition's shard of the view only.
//
// All the writes and timer changes of a batch reach the shard together with
// the batch's offsets, or none do: after a thrown error nothing of the batch
// is kept and the version stops there. A payload this plugin cannot handle is
// refused with
// `throw { tag: 'invalid-event', val: { topic: event.topic, offset: event.offset, message } }`.
//
// Replays must rebuild the same view, so the outcome may depend only on the
// events and the view: no clock (use `event.timestamp`), no Math.random, no
// fetch. And it may not depend on where the host cuts the log into batches:
// process the events in order, each one from the events before it and the
// view, never from the events after it (the host may pass the first events of
// a batch again, alone, to fire a timer right after them).
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
      // Setting a timer of the same name moves it: the key is forgotten an
      // hour after its last event. `event.index` is the event the timer
      // counts from.
      const at = event.timestamp + IDLE_MS;
      set(event.index, key, at > LATEST ? LATEST : at);
    }
  } catch (e) {
    // Columns that disagree are a host bug, never the event's fault.
    if (e instanceof Malformed) throw { tag: 'internal', val: e.message };
    throw e;
  }
}

// Called right after the event at which the timers in `fired` (each
// { key, at }) fell due, with the partition's event time. It reads and writes
// the shard like `process`, and its writes are committed with that event's
// batch.
export function fire(partition, time, fired) {
  for (const timer of fired) {
    del(timer.key);
  }
}
