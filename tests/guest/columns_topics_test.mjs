// Checks columns.js of the JavaScript starter of contract 0.3.0 with node,
// over batches of its own: each event's topic from the `topics` column, topic
// 0 without one, and a `topics` column of another length refused. Run by
// tests/plugin_tooling.rs: `node columns_topics_test.mjs PROJECT/columns.js`.
// Prints "ok".
import assert from 'node:assert/strict';
import { pathToFileURL } from 'node:url';

const { events, Malformed } = await import(pathToFileURL(process.argv[2]).href);
const text = (bytes) => (bytes === undefined ? undefined : new TextDecoder().decode(bytes));
const batch = (topics) => ({
  partition: 4,
  topics: Uint32Array.from(topics),
  offsets: BigUint64Array.from([7n, 8n, 9n]),
  timestamps: BigInt64Array.from([100n, -5n, 300n]),
  keyLengths: Int32Array.from([1, -1, 0]),
  valueLengths: Uint32Array.from([2, 3, 0]),
  data: new TextEncoder().encode('kv1nok'),
  headers: [],
});

const all = [...events(batch([1, 0, 2]))];
assert.deepEqual(
  all.map((e) => [e.index, e.topic, e.offset, text(e.key), text(e.value)]),
  [
    [0, 1, 7n, 'k', 'v1'],
    [1, 0, 8n, undefined, 'nok'],
    [2, 2, 9n, '', ''],
  ],
);
assert.equal(all[2].partition, 4);
assert.deepEqual([...events(batch([]))].map((e) => e.topic), [0, 0, 0]);
assert.throws(
  () => [...events(batch([1, 0]))],
  (e) => e instanceof Malformed && e.message.includes('3 offsets, 2 topics, 3 timestamps'),
);
console.log('ok');
