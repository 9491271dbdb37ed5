// Reads a batch of kappa:processor@0.3.0 event by event.
//
// Contract 0.3.0 hands `process` its events in columns (`event-batch`): one
// list per field, and the keys and values of all events back to back in
// `data`, as 0.2.0 does, with one more column: `topics`, the index of each
// event's topic among the version's topics (0 for the first given at
// deploy). `events(batch)` walks the columns and yields one event per entry,
// its key and value views into `data` (no copy); `check(batch)` only checks
// that the columns agree. Written by
// `kappa plugin new`; it mirrors the Rust crate `kappa-guest`.

// A batch whose columns disagree: a host bug, never the event's fault.
export class Malformed extends Error {}

// Checks that the columns of `batch` agree: one entry per event in each
// column (the topic column may also be empty: every event of topic 0), no
// key length below -1, and every key and value within `data`.
// Throws `Malformed` naming the first event that does not fit. For a plugin
// that walks the columns itself (the fastest way: see docs/plugins-js.md).
export function check(batch) {
  const { topics, offsets, timestamps, keyLengths, valueLengths, data } = batch;
  const n = offsets.length;
  if (
    timestamps.length !== n ||
    keyLengths.length !== n ||
    valueLengths.length !== n ||
    (topics.length !== 0 && topics.length !== n)
  ) {
    throw new Malformed(
      `malformed event batch: columns of different lengths: ${n} offsets, ` +
        `${topics.length} topics, ${timestamps.length} timestamps, ` +
        `${keyLengths.length} key lengths, ${valueLengths.length} value lengths`,
    );
  }
  // One pass without calls (each costs the interpreter more than the sum);
  // a second one only to name what does not fit.
  let size = 0;
  let lowest = 0;
  for (let i = 0; i < n; i++) {
    const keyLength = keyLengths[i];
    if (keyLength > 0) size += keyLength;
    else if (keyLength < lowest) lowest = keyLength;
    size += valueLengths[i];
  }
  if (lowest >= -1 && size <= data.length) return;
  let position = 0;
  for (let i = 0; i < n; i++) {
    const keyLength = keyLengths[i];
    if (keyLength < -1) {
      throw new Malformed(`malformed event batch: event ${i} has key length ${keyLength}`);
    }
    for (const [length, what] of [[Math.max(keyLength, 0), 'key'], [valueLengths[i], 'value']]) {
      if (position + length > data.length) {
        throw new Malformed(
          `malformed event batch: the ${what} of event ${i} (${length} bytes at ` +
            `${position}) reaches past the ${data.length} bytes of data`,
        );
      }
      position += length;
    }
  }
}

// The events of `batch`, in order: { index, topic, partition, offset,
// timestamp, key, value }. `offset` and `timestamp` are BigInts, `key` a Uint8Array or
// undefined (no key), `value` a Uint8Array (views into `data`, no copy).
// Throws `Malformed` (before the first event) when the columns disagree; see
// `check`.
export function* events(batch) {
  check(batch);
  const { topics, offsets, timestamps, keyLengths, valueLengths, data } = batch;
  let position = 0;
  for (let i = 0; i < offsets.length; i++) {
    const keyLength = keyLengths[i];
    let key;
    if (keyLength === -1) {
      key = undefined;
    } else {
      key = data.subarray(position, position + keyLength);
      position += keyLength;
    }
    const end = position + valueLengths[i];
    const value = data.subarray(position, end);
    position = end;
    yield {
      index: i,
      topic: topics.length === 0 ? 0 : topics[i],
      partition: batch.partition,
      offset: offsets[i],
      timestamp: timestamps[i],
      key,
      value,
    };
  }
}
