//! Diff: two views of one processor compared at the same log position.
//!
//! The caller (`lifecycle::Host::diff`) brings both views to the same applied
//! offsets and hands over two snapshots; this module merge-joins their rows in
//! key order (both are sorted, so it is one pass with constant memory besides
//! the rows it reports) and, where both values are JSON objects, names the
//! fields that differ.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model::{display_key, render_value};
use crate::registry::VersionId;
use crate::store::Snapshot;

/// What to compare and how much to report.
#[derive(Debug, Clone, Default)]
pub struct DiffOptions {
    /// Only keys with this prefix.
    pub prefix: Vec<u8>,
    /// Most differing rows to report (counts always cover every key).
    pub limit: usize,
    /// Report rows only after this key (for paging).
    pub after: Option<Vec<u8>>,
}

/// How a key differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Only in the second view.
    Added,
    /// Only in the first view.
    Removed,
    /// In both, with different values.
    Changed,
}

/// One field of a JSON value that differs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    /// Dotted path of the field, e.g. `flagged` or `limits.daily`.
    pub path: String,
    /// Value in the first view (absent: no such field).
    pub a: Option<serde_json::Value>,
    /// Value in the second view.
    pub b: Option<serde_json::Value>,
}

/// One differing row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiffRow {
    /// The key.
    pub key: String,
    /// How it differs.
    pub change: Change,
    /// Value in the first view, rendered like `Row::value`.
    pub a: Option<serde_json::Value>,
    /// Value in the second view.
    pub b: Option<serde_json::Value>,
    /// Differing fields, when both values are JSON objects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldChange>,
}

/// Counts over every compared key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffCounts {
    /// Keys only in the second view.
    pub added: u64,
    /// Keys only in the first view.
    pub removed: u64,
    /// Keys in both with different values.
    pub changed: u64,
    /// Keys in both with equal values.
    pub unchanged: u64,
}

/// The result of a diff.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DiffReport {
    /// First version.
    pub a: String,
    /// Second version.
    pub b: String,
    /// The log position both views were compared at (next offset per partition).
    pub offsets: BTreeMap<u32, u64>,
    /// The key prefix compared (empty: all keys).
    pub prefix: String,
    /// Counts.
    pub counts: DiffCounts,
    /// Differing rows, in key order, at most `limit`.
    pub rows: Vec<DiffRow>,
    /// Pass as `after` for the next page of rows; absent when all are shown.
    pub next_after: Option<String>,
}

/// Compares two snapshots (taken at the same offsets).
pub fn compare(
    ida: &VersionId,
    idb: &VersionId,
    a: &Snapshot,
    b: &Snapshot,
    options: &DiffOptions,
) -> Result<DiffReport> {
    let mut left = a.rows(&options.prefix, None)?.peekable();
    let mut right = b.rows(&options.prefix, None)?.peekable();
    let mut counts = DiffCounts::default();
    let mut rows = Vec::new();
    let mut next_after = None;
    let mut report = |key: &[u8], change: Change, va: Option<&[u8]>, vb: Option<&[u8]>| {
        if options.after.as_deref().is_some_and(|after| key <= after) {
            return;
        }
        if rows.len() >= options.limit {
            if next_after.is_none() {
                next_after = rows.last().map(|r: &DiffRow| r.key.clone());
            }
            return;
        }
        let ra = va.map(|v| render_value(v).0);
        let rb = vb.map(|v| render_value(v).0);
        let fields = match (&ra, &rb) {
            (Some(x @ serde_json::Value::Object(_)), Some(y @ serde_json::Value::Object(_))) => {
                let mut out = Vec::new();
                field_changes("", x, y, &mut out);
                out
            }
            _ => Vec::new(),
        };
        rows.push(DiffRow {
            key: display_key(key),
            change,
            a: ra,
            b: rb,
            fields,
        });
    };
    loop {
        let order = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(Err(_)), _) => {
                return Err(left
                    .next()
                    .and_then(|r| r.err())
                    .map_or_else(|| crate::error::Error::Internal("diff".into()), Into::into));
            }
            (_, Some(Err(_))) => {
                return Err(right
                    .next()
                    .and_then(|r| r.err())
                    .map_or_else(|| crate::error::Error::Internal("diff".into()), Into::into));
            }
            (Some(Ok(_)), None) => std::cmp::Ordering::Less,
            (None, Some(Ok(_))) => std::cmp::Ordering::Greater,
            (Some(Ok((ka, _))), Some(Ok((kb, _)))) => ka.cmp(kb),
        };
        match order {
            std::cmp::Ordering::Less => {
                if let Some(Ok((k, v))) = left.next() {
                    counts.removed += 1;
                    report(&k, Change::Removed, Some(&v), None);
                }
            }
            std::cmp::Ordering::Greater => {
                if let Some(Ok((k, v))) = right.next() {
                    counts.added += 1;
                    report(&k, Change::Added, None, Some(&v));
                }
            }
            std::cmp::Ordering::Equal => {
                if let (Some(Ok((k, va))), Some(Ok((_, vb)))) = (left.next(), right.next()) {
                    if va == vb {
                        counts.unchanged += 1;
                    } else {
                        counts.changed += 1;
                        report(&k, Change::Changed, Some(&va), Some(&vb));
                    }
                }
            }
        }
    }
    Ok(DiffReport {
        a: ida.to_string(),
        b: idb.to_string(),
        offsets: a.offsets()?,
        prefix: display_key(&options.prefix),
        counts,
        rows,
        next_after,
    })
}

/// Collects the paths where two JSON values differ, descending into objects.
fn field_changes(
    path: &str,
    a: &serde_json::Value,
    b: &serde_json::Value,
    out: &mut Vec<FieldChange>,
) {
    use serde_json::Value::Object;
    match (a, b) {
        (Object(ma), Object(mb)) => {
            let keys: std::collections::BTreeSet<&String> = ma.keys().chain(mb.keys()).collect();
            for k in keys {
                let sub = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (ma.get(k), mb.get(k)) {
                    (Some(x), Some(y)) => field_changes(&sub, x, y, out),
                    (x, y) => out.push(FieldChange {
                        path: sub,
                        a: x.cloned(),
                        b: y.cloned(),
                    }),
                }
            }
        }
        _ if a != b => out.push(FieldChange {
            path: path.to_owned(),
            a: Some(a.clone()),
            b: Some(b.clone()),
        }),
        _ => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
#[allow(
    clippy::too_many_lines,
    reason = "test-only code: a test reads best as one scenario"
)]
mod tests {
    use super::*;
    use crate::store::{View, Writes};
    use std::time::Duration;

    fn view(dir: &std::path::Path, name: &str, rows: &[(&str, &str)]) -> View {
        let v = View::open(&dir.join(name), Duration::ZERO).unwrap();
        let w: Writes = rows
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), Some(v.as_bytes().to_vec())))
            .collect();
        v.commit(0, 10, &w, false).unwrap();
        v
    }

    #[test]
    fn counts_and_rows_cover_every_kind_of_change() {
        let dir = tempfile::tempdir().unwrap();
        let a = view(
            dir.path(),
            "a",
            &[("k1", r#"{"n":1,"s":"x"}"#), ("k2", "same"), ("k3", "gone")],
        );
        let b = view(
            dir.path(),
            "b",
            &[
                ("k1", r#"{"n":2,"s":"x","t":true}"#),
                ("k2", "same"),
                ("k4", "new"),
            ],
        );
        let (ida, idb) = (
            VersionId::parse("p@1.0.0").unwrap(),
            VersionId::parse("p@2.0.0").unwrap(),
        );
        let opts = DiffOptions {
            limit: 10,
            ..Default::default()
        };
        let r = compare(
            &ida,
            &idb,
            &a.snapshot().unwrap(),
            &b.snapshot().unwrap(),
            &opts,
        )
        .unwrap();
        assert_eq!(
            r.counts,
            DiffCounts {
                added: 1,
                removed: 1,
                changed: 1,
                unchanged: 1
            }
        );
        let kinds: Vec<_> = r.rows.iter().map(|r| (r.key.as_str(), r.change)).collect();
        assert_eq!(
            kinds,
            [
                ("k1", Change::Changed),
                ("k3", Change::Removed),
                ("k4", Change::Added)
            ]
        );
        let paths: Vec<_> = r.rows[0].fields.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["n", "t"]);
        assert_eq!(r.rows[0].fields[1].a, None);
        assert_eq!(r.offsets[&0], 10);
        assert!(r.next_after.is_none());

        // Paging: the counts stay whole while rows come a page at a time.
        let page = DiffOptions {
            limit: 1,
            ..Default::default()
        };
        let r1 = compare(
            &ida,
            &idb,
            &a.snapshot().unwrap(),
            &b.snapshot().unwrap(),
            &page,
        )
        .unwrap();
        assert_eq!((r1.rows.len(), r1.next_after.as_deref()), (1, Some("k1")));
        let page2 = DiffOptions {
            limit: 1,
            after: Some(b"k1".to_vec()),
            ..Default::default()
        };
        let r2 = compare(
            &ida,
            &idb,
            &a.snapshot().unwrap(),
            &b.snapshot().unwrap(),
            &page2,
        )
        .unwrap();
        assert_eq!(r2.rows[0].key, "k3");
        assert_eq!(r2.counts, r.counts);

        // Prefix restricts the comparison itself.
        let pre = DiffOptions {
            limit: 10,
            prefix: b"k4".to_vec(),
            ..Default::default()
        };
        let r3 = compare(
            &ida,
            &idb,
            &a.snapshot().unwrap(),
            &b.snapshot().unwrap(),
            &pre,
        )
        .unwrap();
        assert_eq!(
            r3.counts,
            DiffCounts {
                added: 1,
                ..Default::default()
            }
        );
    }
}
