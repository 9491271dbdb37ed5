//! Snapshots of a view: the file as of one commit with the write buffer of
//! the same moment laid over it, read as one table of rows and offsets.

use std::collections::BTreeMap;
use std::iter::Peekable;
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::Arc;

use redb::{ReadableTable, ReadableTableMetadata};
use sha2::{Digest, Sha256};

use crate::{Rows, StoreError, ViewDigest};

/// A read-only snapshot of a view, consistent across rows and offsets.
pub struct Snapshot {
    rows: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
    offsets: redb::ReadOnlyTable<u32, u64>,
    /// Buffered rows not yet in the file, newest first.
    layers: Vec<Arc<Rows>>,
    /// Buffered offsets, over the file's.
    buffered_offsets: BTreeMap<u32, u64>,
    path: PathBuf,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("path", &self.path)
            .finish()
    }
}

/// A row: key and value bytes.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// An iterator over the rows of a snapshot, in key order.
pub type RowIter = Box<dyn Iterator<Item = Result<KeyValue, StoreError>>>;

impl Snapshot {
    pub(crate) fn new(
        rows: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
        offsets: redb::ReadOnlyTable<u32, u64>,
        layers: Vec<Arc<Rows>>,
        buffered_offsets: BTreeMap<u32, u64>,
        path: PathBuf,
    ) -> Self {
        Snapshot {
            rows,
            offsets,
            layers,
            buffered_offsets,
            path,
        }
    }

    fn err(&self, e: impl Into<redb::Error>) -> StoreError {
        StoreError::Db {
            path: self.path.clone(),
            source: Box::new(e.into()),
        }
    }

    /// The value under `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        for layer in &self.layers {
            if let Some(value) = layer.get(key) {
                return Ok(value.clone());
            }
        }
        Ok(self
            .rows
            .get(key)
            .map_err(|e| self.err(e))?
            .map(|v| v.value().to_vec()))
    }

    /// Next offset to apply, per partition that has seen events.
    pub fn offsets(&self) -> Result<BTreeMap<u32, u64>, StoreError> {
        let mut out = BTreeMap::new();
        for entry in self.offsets.iter().map_err(|e| self.err(e))? {
            let (p, o) = entry.map_err(|e| self.err(e))?;
            out.insert(p.value(), o.value());
        }
        out.extend(self.buffered_offsets.iter().map(|(p, o)| (*p, *o)));
        Ok(out)
    }

    /// Number of rows (counted by a scan while commits are buffered).
    pub fn len(&self) -> Result<u64, StoreError> {
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

    /// Whether the view has no rows.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }

    /// Rows whose key starts with `prefix`, after `start_after` (exclusive)
    /// when given, in key order.
    pub fn rows(&self, prefix: &[u8], start_after: Option<&[u8]>) -> Result<RowIter, StoreError> {
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
                    .map(|layer| Cursor {
                        layer: Arc::clone(layer),
                        after: match lower {
                            Bound::Excluded(k) => Bound::Excluded(k.to_vec()),
                            _ => Bound::Included(prefix.to_vec()),
                        },
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

    /// Up to `limit` rows with `prefix`, after `start_after`.
    pub fn scan(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        self.rows(prefix, start_after)?.take(limit).collect()
    }

    /// The digest of the whole snapshot.
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

/// Walks one buffered layer in key order, owning its share of the layer.
struct Cursor {
    layer: Arc<Rows>,
    after: Bound<Vec<u8>>,
}

impl Cursor {
    fn peek(&self) -> Option<(&Vec<u8>, &Option<Vec<u8>>)> {
        let lower = match &self.after {
            Bound::Included(k) => Bound::Included(k.as_slice()),
            Bound::Excluded(k) => Bound::Excluded(k.as_slice()),
            Bound::Unbounded => Bound::Unbounded,
        };
        self.layer
            .range::<[u8], _>((lower, Bound::Unbounded))
            .next()
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
        let mut best: Option<(&Vec<u8>, &Option<Vec<u8>>)> = None;
        for cursor in &self.layers {
            if let Some((k, v)) = cursor.peek()
                && best.is_none_or(|(bk, _)| k < bk)
            {
                best = Some((k, v));
            }
        }
        let (key, value) = best?;
        let (key, value) = (key.clone(), value.clone());
        for cursor in &mut self.layers {
            if cursor.peek().is_some_and(|(k, _)| *k == key) {
                cursor.after = Bound::Excluded(key.clone());
            }
        }
        Some((key, value))
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
