// Reads a batch of kappa:processor@0.2.0 event by event.
//
// Contract 0.2.0 hands `process` its events in columns (`event-batch`): one
// list per field, and the keys and values of all events back to back in
// `data`. `events(batch)` walks the columns and yields one event per entry,
// its key and value views into `data` (no copy). Written by
// `kappa plugin new`; it mirrors the Rust crate `kappa-guest`.

// A batch whose columns disagree: a host bug, never the event's fault.
export class Malformed extends Error {}

// The events of `batch`, in order: { index, partition, offset, timestamp,
// key, value }. `offset` and `timestamp` are BigInts, `key` a Uint8Array or
// undefined (no key), `value` a Uint8Array. Throws `Malformed` when the
// columns have different lengths or a key or value reaches past `data`.
export function* events(batch) {
  const { offsets, timestamps, keyLengths, valueLengths, data } = batch;
  const n = offsets.length;
  if (timestamps.length !== n || keyLengths.length !== n || valueLengths.length !== n) {
    throw new Malformed(
      `malformed event batch: columns of different lengths: ${n} offsets, ` +
        `${timestamps.length} timestamps, ${keyLengths.length} key lengths, ` +
        `${valueLengths.length} value lengths`,
    );
  }
  let position = 0;
  const take = (length, what, i) => {
    const end = position + length;
    if (end > data.length) {
      throw new Malformed(
        `malformed event batch: the ${what} of event ${i} (${length} bytes at ` +
          `${position}) reaches past the ${data.length} bytes of data`,
      );
    }
    const part = data.subarray(position, end);
    position = end;
    return part;
  };
  for (let i = 0; i < n; i++) {
    const keyLength = keyLengths[i];
    let key;
    if (keyLength === -1) {
      key = undefined;
    } else if (keyLength < 0) {
      throw new Malformed(`malformed event batch: event ${i} has key length ${keyLength}`);
    } else {
      key = take(keyLength, 'key', i);
    }
    const value = take(valueLengths[i], 'value', i);
    yield { index: i, partition: batch.partition, offset: offsets[i], timestamp: timestamps[i], key, value };
  }
}
