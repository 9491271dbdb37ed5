//! Reading a key range of the view of `kappa:processor@0.3.0-rc.1` in pages.
//!
//! `view.range(start, end, limit)` returns at most `limit` rows, and the rows
//! it returns count against the instance's memory limit: a plugin that asks
//! for a whole large range at once fails. [`range`] and [`prefix`] read a
//! range page by page instead, and yield its rows one by one: each page
//! starts right after the last key of the one before ([`after`]), and a
//! prefix ends at [`prefix_end`].
//!
//! The crate knows nothing of the generated bindings, so the pages are read
//! through a function, which [`view_range!`](crate::view_range) makes from a
//! plugin's generated `view` module:
//!
//! ```ignore
//! for (key, value) in kappa_guest::prefix(kappa_guest::view_range!(view), b"w/acct-1/", 256) {
//!     // ...
//! }
//! ```
//!
//! A page is read when the one before it is used up, so the plugin's own
//! writes of keys after the current page (and before `end`) are seen, and
//! writes of keys within the current page are not.

/// A function that reads one page: `view.range(start, end, limit)` with its
/// rows as `(key, value)` pairs.
pub trait ReadPage: FnMut(&[u8], Option<&[u8]>, u32) -> Vec<(Vec<u8>, Vec<u8>)> {}

impl<F: FnMut(&[u8], Option<&[u8]>, u32) -> Vec<(Vec<u8>, Vec<u8>)>> ReadPage for F {}

/// The [`ReadPage`] function of a plugin's generated `view` module (its
/// path, such as `view` or `kappa::processor::view`), for [`range`] and
/// [`prefix`].
#[macro_export]
macro_rules! view_range {
    ($($view:ident)::+) => {
        |start: &[u8], end: ::core::option::Option<&[u8]>, limit: u32| {
            $($view)::+::range(start, end, limit)
                .into_iter()
                .map(|row| (row.key, row.value))
                .collect::<::std::vec::Vec<(::std::vec::Vec<u8>, ::std::vec::Vec<u8>)>>()
        }
    };
}

/// The first key after `key` in key order: `key` followed by a zero byte,
/// the `start` that reads on after a page whose last key is `key`.
pub fn after(key: &[u8]) -> Vec<u8> {
    let mut next = Vec::with_capacity(key.len() + 1);
    next.extend_from_slice(key);
    next.push(0);
    next
}

/// The `end` of the range of every key that starts with `prefix`: the prefix
/// with its last byte below 255 raised by one and the bytes after it
/// dropped; `None` (no upper bound) when there is no such byte (an empty
/// prefix, or one of 255s only).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The rows of the keys at or after `start` and before `end` (no upper bound
/// when `None`), in key order, read `page` rows at a time (at least one).
pub fn range<F: ReadPage>(read: F, start: &[u8], end: Option<&[u8]>, page: u32) -> Pages<F> {
    Pages {
        read,
        start: Some(start.to_vec()),
        end: end.map(<[u8]>::to_vec),
        page: page.max(1),
        rows: Vec::new().into_iter(),
    }
}

/// The rows of the keys that start with `prefix`, in key order, read `page`
/// rows at a time (at least one).
pub fn prefix<F: ReadPage>(read: F, prefix: &[u8], page: u32) -> Pages<F> {
    range(read, prefix, prefix_end(prefix).as_deref(), page)
}

/// Iterator over the rows of a range, read in pages; see [`range`].
pub struct Pages<F> {
    read: F,
    /// Where the next page starts; `None` once a page came back short.
    start: Option<Vec<u8>>,
    end: Option<Vec<u8>>,
    page: u32,
    rows: std::vec::IntoIter<(Vec<u8>, Vec<u8>)>,
}

impl<F> std::fmt::Debug for Pages<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pages")
            .field("start", &self.start)
            .field("end", &self.end)
            .field("page", &self.page)
            .finish_non_exhaustive()
    }
}

impl<F: ReadPage> Iterator for Pages<F> {
    type Item = (Vec<u8>, Vec<u8>);

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(row) = self.rows.next() {
            return Some(row);
        }
        let start = self.start.take()?;
        let rows = (self.read)(&start, self.end.as_deref(), self.page);
        // A full page may have rows after it; a short one is the last.
        if rows.len() >= self.page as usize
            && let Some((last, _)) = rows.last()
        {
            self.start = Some(after(last));
        }
        self.rows = rows.into_iter();
        self.rows.next()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// `view.range` over `rows`, counting the calls.
    fn reader<'a>(
        rows: &'a BTreeMap<Vec<u8>, Vec<u8>>,
        calls: &'a mut Vec<(Vec<u8>, u32)>,
    ) -> impl ReadPage + 'a {
        move |start: &[u8], end: Option<&[u8]>, limit: u32| {
            calls.push((start.to_vec(), limit));
            rows.iter()
                .filter(|(k, _)| k.as_slice() >= start && end.is_none_or(|e| k.as_slice() < e))
                .take(limit as usize)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        }
    }

    #[test]
    fn prefix_ends_raise_the_last_byte_below_255() {
        assert_eq!(prefix_end(b"w/a/"), Some(b"w/a0".to_vec()));
        assert_eq!(prefix_end(b"a\xff\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
        assert_eq!(after(b"k"), b"k\0");
    }

    #[test]
    fn pages_read_every_row_of_a_prefix_once_in_order() {
        let mut rows = BTreeMap::new();
        for key in [
            &b"a"[..],
            b"p",
            b"p\0",
            b"p/1",
            b"p/2",
            b"p/3",
            b"p\xff",
            b"q",
        ] {
            rows.insert(key.to_vec(), key.to_vec());
        }
        let mut calls = Vec::new();
        let keys: Vec<Vec<u8>> = prefix(reader(&rows, &mut calls), b"p", 2)
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, [&b"p"[..], b"p\0", b"p/1", b"p/2", b"p/3", b"p\xff"]);
        // Three full pages, then an empty one that says there are no more.
        let starts: Vec<&[u8]> = calls.iter().map(|(s, _)| s.as_slice()).collect();
        assert_eq!(starts, [&b"p"[..], b"p\0\0", b"p/2\0", b"p\xff\0"]);
        // A page shorter than asked for is the last: no call after it.
        let mut calls = Vec::new();
        let keys = prefix(reader(&rows, &mut calls), b"p", 4).count();
        assert_eq!((keys, calls.len()), (6, 2));
        let mut calls = Vec::new();
        let all: Vec<_> = range(reader(&rows, &mut calls), b"", None, 0).collect();
        assert_eq!(all.len(), rows.len());
        assert!(
            calls.iter().all(|&(_, limit)| limit == 1),
            "a page of 0 reads 1"
        );
    }
}
