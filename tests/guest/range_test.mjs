// Checks range.js of the JavaScript starter of contract 0.3.0-rc.1 with node,
// over a view `range` of its own: prefix ends, and pages that read every row
// of a prefix once, in order. Run by tests/plugin_tooling.rs:
// `node range_test.mjs PROJECT/range.js`. Prints "ok".
import assert from 'node:assert/strict';
import { pathToFileURL } from 'node:url';

const { after, prefix, prefixEnd, rows } = await import(pathToFileURL(process.argv[2]).href);
const b = (...bytes) => Uint8Array.from(bytes);
const s = (text) => new TextEncoder().encode(text);
const cmp = (x, y) => {
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
};

function reader(all, calls) {
  const sorted = [...all].sort(cmp);
  return (start, end, limit) => {
    calls.push([start, limit]);
    return sorted
      .filter((k) => cmp(k, start) >= 0 && (end === undefined || cmp(k, end) < 0))
      .slice(0, limit)
      .map((k) => ({ key: k, value: k }));
  };
}

assert.deepEqual(prefixEnd(s('w/a/')), s('w/a0'));
assert.deepEqual(prefixEnd(b(0x61, 255, 255)), s('b'));
assert.equal(prefixEnd(b(255, 255)), undefined);
assert.equal(prefixEnd(b()), undefined);
assert.deepEqual(after(s('k')), b(0x6b, 0));

const keys = [s('a'), s('p'), b(0x70, 0), s('p/1'), s('p/2'), s('p/3'), b(0x70, 255), s('q')];
let calls = [];
const found = [...prefix(reader(keys, calls), s('p'), 2)].map((r) => r.key);
assert.deepEqual(found, [s('p'), b(0x70, 0), s('p/1'), s('p/2'), s('p/3'), b(0x70, 255)]);
// Three full pages, then an empty one that says there are no more.
assert.deepEqual(
  calls.map(([start]) => start),
  [s('p'), b(0x70, 0, 0), b(0x70, 0x2f, 0x32, 0), b(0x70, 255, 0)],
);
// A page shorter than asked for is the last: no call after it.
calls = [];
assert.equal([...prefix(reader(keys, calls), s('p'), 4)].length, 6);
assert.equal(calls.length, 2);
calls = [];
assert.equal([...rows(reader(keys, calls), b(), undefined, 0)].length, keys.length);
assert.ok(calls.every(([, limit]) => limit === 1), 'a page of 0 reads 1');
console.log('ok');
