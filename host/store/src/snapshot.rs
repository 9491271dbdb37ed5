//! Snapshots of a view: the file as of one commit with the write buffer of
//! the same moment laid over it, read as one table of rows and offsets.
//!
//! A snapshot is made of parts: one for a view of one file, one per shard for
//! a view kept per partition ([`crate::Shards`]). Readers (queries, diffs,
//! digests) see one table either way: the rows of the parts are merged in key
//! order, and a key that two parts hold is reported as an error rather than
//! one of the rows being picked, so a broken "one key, one partition" rule is
//! never hidden by a read.

use std::cmp::Ordering;
use std::collections::binary_heap::PeekMut;
use std::collections::{BTreeMap, BinaryHeap};
use std::iter::Peekable;
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;
use redb::{ReadableTable, ReadableTableMetadata};
use sha2::{Digest, Sha256};

use crate::cache::{self, Cached, RowCache};
use crate::runs::{Probe, RowRef, Run};
use crate::{StoreError, ViewDigest};

/// A read-only snapshot of a view, consistent across rows and offsets.
///
/// Merged from shards ([`Snapshot::merge`]), each shard's part is consistent
/// with its own offsets; the parts may be of slightly different moments,
/// which is right for state kept per partition: no batch reads two shards.
pub struct Snapshot {
    /// The file snapshots read together; one unless merged from shards.
    parts: Vec<Part>,
}

/// The snapshot of one view file.
pub(crate) struct Part {
    /// The partition whose shard this is, when merged from shards.
    pub(crate) shard: Option<u32>,
    pub(crate) rows: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
    pub(crate) offsets: redb::ReadOnlyTable<u32, u64>,
    /// Buffered rows not yet in the file, newest first.
    pub(crate) layers: Vec<Arc<Run>>,
    /// Buffered offsets, over the file's.
    pub(crate) buffered_offsets: BTreeMap<u32, u64>,
    /// The view's row cache and the commit this snapshot is of: point reads
    /// ask the cache first, which answers only while it is of that commit.
    pub(crate) cache: Option<(Arc<Mutex<RowCache>>, u64)>,
    pub(crate) path: PathBuf,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field(
                "paths",
                &self.parts.iter().map(|p| &p.path).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A row: key and value bytes.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// An iterator over the rows of a snapshot, in key order.
pub type RowIter = Box<dyn Iterator<Item = Result<KeyValue, StoreError>>>;

impl Snapshot {
    pub(crate) fn new(part: Part) -> Self {
        Snapshot { parts: vec![part] }
    }

    /// One snapshot of several shards, each given with the partition it
    /// belongs to (named by a [`StoreError::Conflict`] if two hold a key).
    /// Reads see the union of the shards: rows merged in key order, offsets
    /// united. No shards make an empty snapshot.
    pub fn merge(shards: impl IntoIterator<Item = (u32, Snapshot)>) -> Snapshot {
        let mut parts = Vec::new();
        for (partition, snapshot) in shards {
            for mut part in snapshot.parts {
                part.shard.get_or_insert(partition);
                parts.push(part);
            }
        }
        Snapshot { parts }
    }

    /// The value under `key` (the first shard holding it, when merged).
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        for part in &self.parts {
            if let Some(value) = part.get(key)? {
                return Ok(Some(value));
            }
        }
        Ok(None)
    }

    /// Next offset to apply, per partition that has seen events.
    pub fn offsets(&self) -> Result<BTreeMap<u32, u64>, StoreError> {
        let mut out = BTreeMap::new();
        for part in &self.parts {
            out.extend(part.offsets()?);
        }
        Ok(out)
    }

    /// Number of rows (counted by a scan while commits are buffered; when
    /// merged, the sum over the shards, which is exact as long as no two
    /// shards hold a key, the rule their commits enforce).
    pub fn len(&self) -> Result<u64, StoreError> {
        let mut sum = 0;
        for part in &self.parts {
            sum += part.len()?;
        }
        Ok(sum)
    }

    /// Whether the view has no rows.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }

    /// Rows whose key starts with `prefix`, after `start_after` (exclusive)
    /// when given, in key order. Merged from shards, a key two shards hold
    /// is an error ([`StoreError::Conflict`]), never one of the two rows.
    pub fn rows(&self, prefix: &[u8], start_after: Option<&[u8]>) -> Result<RowIter, StoreError> {
        if let [one] = self.parts.as_slice() {
            return one.rows(prefix, start_after);
        }
        let mut merge = Sharded {
            heads: BinaryHeap::with_capacity(self.parts.len()),
            parts: Vec::with_capacity(self.parts.len()),
            shards: Vec::with_capacity(self.parts.len()),
            pending: None,
            done: false,
        };
        for (i, part) in self.parts.iter().enumerate() {
            let mut rows = part.rows(prefix, start_after)?;
            if let Some(row) = rows.next() {
                let (key, value) = row?;
                merge.heads.push(Head {
                    key,
                    value,
                    part: i,
                });
            }
            merge.parts.push(rows);
            merge
                .shards
                .push(part.shard.unwrap_or(u32::try_from(i).unwrap_or(u32::MAX)));
        }
        Ok(Box::new(merge))
    }

    /// Up to `limit` rows with `prefix`, after `start_after`.
    pub fn scan(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        self.rows(prefix, start_after)?.take(limit).collect()
    }

    /// The digest of the whole snapshot: over the rows in key order, so a
    /// view kept in shards digests equal to a view of one file holding the
    /// same rows.
    pub fn digest(&self) -> Result<ViewDigest, StoreError> {
        let mut hasher = Sha256::new();
        let mut rows = 0u64;
        for entry in self.rows(b"", None)? {
            let (k, v) = entry?;
            hasher.update((k.len() as u64).to_le_bytes());
            hasher.update(&k);
            hasher.update((v.len() as u64).to_le_bytes());
            hasher.update(&v);
            rows += 1;
        }
        Ok(ViewDigest {
            sha256: hex::encode(hasher.finalize()),
            rows,
            offsets: self.offsets()?,
        })
    }
}

impl Part {
    fn err(&self, e: impl Into<redb::Error>) -> StoreError {
        StoreError::Db {
            path: self.path.clone(),
            source: Box::new(e.into()),
        }
    }

    /// The value under `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let known = match &self.cache {
            Some((cache, generation)) => cache::lookup(cache, *generation, key),
            None => Cached::Unknown,
        };
        if let Cached::Known(value) = known {
            return Ok(value);
        }
        let probe = Probe::new(key);
        for layer in &self.layers {
            if let Some(value) = layer.get(probe) {
                return Ok(value.map(<[u8]>::to_vec));
            }
        }
        let value = self
            .rows
            .get(key)
            .map_err(|e| self.err(e))?
            .map(|v| v.value().to_vec());
        if let Some((cache, generation)) = &self.cache {
            cache::try_fill(cache, *generation, key, value.as_deref());
        }
        Ok(value)
    }

    /// Next offset to apply, per partition that has seen events.
    fn offsets(&self) -> Result<BTreeMap<u32, u64>, StoreError> {
        let mut out = BTreeMap::new();
        for entry in self.offsets.iter().map_err(|e| self.err(e))? {
            let (p, o) = entry.map_err(|e| self.err(e))?;
            out.insert(p.value(), o.value());
        }
        out.extend(self.buffered_offsets.iter().map(|(p, o)| (*p, *o)));
        Ok(out)
    }

    /// Number of rows (counted by a scan while commits are buffered).
    fn len(&self) -> Result<u64, StoreError> {
        if self.layers.is_empty() {
            return self.rows.len().map_err(|e| self.err(e));
        }
        let mut count = 0;
        for row in self.rows(b"", None)? {
            row?;
            count += 1;
        }
        Ok(count)
    }

    /// Rows whose key starts with `prefix`, after `start_after` (exclusive)
    /// when given, in key order.
    fn rows(&self, prefix: &[u8], start_after: Option<&[u8]>) -> Result<RowIter, StoreError> {
        let lower: Bound<&[u8]> = match start_after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        let range = self
            .rows
            .range::<&[u8]>((lower, Bound::Unbounded))
            .map_err(|e| self.err(e))?;
        let path = self.path.clone();
        let file: RowIter = Box::new(range.map(move |entry| {
            entry
                .map(|(k, v)| (k.value().to_vec(), v.value().to_vec()))
                .map_err(|e| StoreError::Db {
                    path: path.clone(),
                    source: Box::new(e.into()),
                })
        }));
        let merged: RowIter = if self.layers.is_empty() {
            file
        } else {
            let buffered = Buffered {
                layers: self
                    .layers
                    .iter()
                    .map(|layer| {
                        let at = layer.partition_point(|k| match lower {
                            Bound::Excluded(after) => k <= after,
                            _ => k < prefix,
                        });
                        Cursor {
                            layer: Arc::clone(layer),
                            at,
                        }
                    })
                    .collect(),
            };
            Box::new(Merge {
                file: file.peekable(),
                buffered: buffered.peekable(),
            })
        };
        let prefix = prefix.to_vec();
        Ok(Box::new(merged.take_while(move |entry| match entry {
            Ok((k, _)) => k.starts_with(&prefix),
            Err(_) => true,
        })))
    }
}

/// Walks one buffered layer in key order, owning its share of the layer.
struct Cursor {
    layer: Arc<Run>,
    /// Position of the next row.
    at: usize,
}

impl Cursor {
    fn peek(&self) -> Option<RowRef<'_>> {
        self.layer.row(self.at)
    }
}

/// The buffered layers merged, newest first winning: key and value, `None`
/// for a deletion not yet in the file.
struct Buffered {
    layers: Vec<Cursor>,
}

impl Iterator for Buffered {
    type Item = (Vec<u8>, Option<Vec<u8>>);

    fn next(&mut self) -> Option<Self::Item> {
        // The smallest key over the layers; on a tie the first (newest) layer.
        let mut best: Option<RowRef<'_>> = None;
        for cursor in &self.layers {
            if let Some(row) = cursor.peek()
                && best.is_none_or(|best| row.0 < best.0)
            {
                best = Some(row);
            }
        }
        let (key, value) = best?;
        let row = (key.to_vec(), value.map(<[u8]>::to_vec));
        for cursor in &mut self.layers {
            if cursor.peek().is_some_and(|(k, _)| k == row.0) {
                cursor.at += 1;
            }
        }
        Some(row)
    }
}

/// The file's rows with the buffered ones laid over them.
struct Merge {
    file: Peekable<RowIter>,
    buffered: Peekable<Buffered>,
}

impl Iterator for Merge {
    type Item = Result<KeyValue, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let take_buffered = match (self.file.peek(), self.buffered.peek()) {
                (_, None) => return self.file.next(),
                (Some(Err(_)), _) => return self.file.next(),
                (None, Some(_)) => true,
                (Some(Ok((fk, _))), Some((bk, _))) => bk <= fk,
            };
            if !take_buffered {
                return self.file.next();
            }
            let (key, value) = self.buffered.next()?;
            if matches!(self.file.peek(), Some(Ok((fk, _))) if *fk == key) {
                self.file.next();
            }
            if let Some(value) = value {
                return Some(Ok((key, value)));
            }
        }
    }
}

/// The next row of one shard, ordered so that the heap's top is the
/// smallest key (then the first shard).
struct Head {
    key: Vec<u8>,
    value: Vec<u8>,
    part: usize,
}

impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        (&other.key, other.part).cmp(&(&self.key, self.part))
    }
}

impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Head {}

/// The rows of several shards merged in key order (a k-way merge over each
/// shard's own merge of buffer and file). Stops at the first error, and
/// reports a key two shards hold as one.
struct Sharded {
    /// The next row of every shard that has one.
    heads: BinaryHeap<Head>,
    parts: Vec<RowIter>,
    /// The partition of each part, for errors.
    shards: Vec<u32>,
    /// An error met while reading ahead, reported after the row before it.
    pending: Option<StoreError>,
    done: bool,
}

impl Iterator for Sharded {
    type Item = Result<KeyValue, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if let Some(e) = self.pending.take() {
            self.done = true;
            return Some(Err(e));
        }
        // The smallest row is replaced in place by its shard's next row, so
        // the heap sifts once per row, not twice (pop and push).
        let mut top = self.heads.peek_mut()?;
        let part = top.part;
        let (key, value) = match self.parts[part].next() {
            Some(Ok((key, value))) => {
                let row = (
                    std::mem::replace(&mut top.key, key),
                    std::mem::replace(&mut top.value, value),
                );
                // Sifts the shard's next row into place.
                drop(top);
                row
            }
            end => {
                if let Some(Err(e)) = end {
                    self.pending = Some(e);
                }
                let head = PeekMut::pop(top);
                (head.key, head.value)
            }
        };
        if let Some(next) = self.heads.peek()
            && next.key == key
        {
            self.done = true;
            // Heads of equal keys sort in shard order: `part` is the first.
            return Some(Err(StoreError::Conflict {
                key,
                holder: self.shards[part],
                writer: self.shards[next.part],
            }));
        }
        Some(Ok((key, value)))
    }
}
