// Reads a key range of the view of kappa:processor@0.3.0-rc.1 in pages.
//
// `range(start, end, limit)` of the view returns at most `limit` rows, and the
// rows it returns count against the instance's memory limit: a plugin that
// asks for a whole large range at once fails. `rows` and `prefix` read a range
// page by page instead, and yield its rows one by one as { key, value }: each
// page starts right after the last key of the one before (`after`), and a
// prefix ends at `prefixEnd`. They take the function that reads a page, the
// view's `range`:
//
//   import { range } from 'kappa:processor/view@0.3.0-rc.1';
//   for (const { key, value } of prefix(range, encoder.encode('w/acct-1/'), 256)) { ... }
//
// A page is read when the one before it is used up, so the plugin's own writes
// of keys after the current page (and before `end`) are seen, and writes of
// keys within the current page are not. Written by `kappa plugin new`; it
// mirrors the Rust crate `kappa-guest`.

// The first key after `key` in key order: `key` followed by a zero byte, the
// `start` that reads on after a page whose last key is `key`.
export function after(key) {
  const next = new Uint8Array(key.length + 1);
  next.set(key);
  return next;
}

// The `end` of the range of every key that starts with `prefix`: the prefix
// with its last byte below 255 raised by one and the bytes after it dropped;
// undefined (no upper bound) when there is no such byte (an empty prefix, or
// one of 255s only).
export function prefixEnd(prefix) {
  for (let i = prefix.length - 1; i >= 0; i--) {
    if (prefix[i] < 255) {
      const end = Uint8Array.from(prefix.subarray(0, i + 1));
      end[i] += 1;
      return end;
    }
  }
  return undefined;
}

// The rows of the keys at or after `start` and before `end` (no upper bound
// when undefined), in key order, read `page` rows at a time (at least one).
export function* rows(read, start, end, page) {
  page = Math.max(page, 1);
  for (;;) {
    const found = read(start, end, page);
    yield* found;
    // A full page may have rows after it; a short one is the last.
    if (found.length < page) return;
    start = after(found[found.length - 1].key);
  }
}

// The rows of the keys that start with `prefix`, in key order, read `page`
// rows at a time (at least one).
export function prefix(read, prefix, page) {
  return rows(read, prefix, prefixEnd(prefix), page);
}
