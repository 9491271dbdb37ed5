// Checks a batch of kappa:processor@0.3.0 before it is walked.
//
// Contract 0.3.0 hands `process` its events in columns (`event-batch`), as
// 0.2.0 does, with one more column: `topics`, the index of each event's topic
// among the version's topics. `check(batch)` checks that the columns agree,
// for a plugin that walks them itself; it mirrors the Rust crate
// `kappa-guest` (`columns_topics!`).

// A batch whose columns disagree: a host bug, never the event's fault.
export class Malformed extends Error {}

// Checks that the columns of `batch` agree: one entry per event in each
// column (the topic column may also be empty: every event of topic 0), no key
// length below -1, and every key and value within `data`. Throws `Malformed`
// naming the first event that does not fit.
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
