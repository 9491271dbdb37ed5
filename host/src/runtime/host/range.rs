//! `view.range` of contract 0.3.0-rc.1: the rows of a key range in key
//! order, the stored rows of the batch's snapshot with the batch's pending
//! writes laid over them (a pending value replaces the stored one, a pending
//! deletion hides it), at most `limit` of them.
//!
//! The rows returned are held by the host until they are copied into the
//! guest, so they count against the instance's memory limit beside its
//! linear memories, tables and pending writes ([`super::super::budget`]): a
//! range over a huge shard stops the call with a memory-limit failure that
//! says to read in pages, instead of exhausting the host. The work of one
//! call is bounded too: it reads the rows it returns plus at most the stored
//! rows the batch's own deletions hide.

use std::iter::Peekable;

use super::super::budget::{ROW_OVERHEAD, mib};
use super::super::call::{FailureKind, HostTrap};
use super::HostState;
use crate::store::{KeyValue, Snapshot, StoreError};

/// Rows returned by one range read, in key order.
pub(super) type Rows = Vec<KeyValue>;

impl HostState {
    pub(super) fn view_range(
        &mut self,
        start: Vec<u8>,
        end: Option<Vec<u8>>,
        limit: u32,
    ) -> wasmtime::Result<Rows> {
        let memory = &self.memory;
        let (memory_limit, allowed) = (memory.limit, memory.allowed_for_reads());
        let (instance, pending) = (memory.linear + memory.tables, memory.pending);
        let batch = self.batch()?;
        let end = end.as_deref();
        if limit == 0 || end.is_some_and(|end| end <= start.as_slice()) {
            return Ok(Vec::new());
        }
        let failed = |e: StoreError| -> wasmtime::Error {
            HostTrap::new(
                FailureKind::Host,
                format!(
                    "reading the view failed in a range read from {}: {e}",
                    show(&start)
                ),
            )
            .into()
        };
        let stored = stored_from(&batch.snapshot, &start)
            .map_err(failed)?
            .take_while(|row| match (row, end) {
                (Ok((key, _)), Some(end)) => key.as_slice() < end,
                _ => true,
            });
        let merged = Merged {
            stored: stored.peekable(),
            pending: batch.writes.range(&start, end).peekable(),
        };
        let mut rows = Vec::new();
        let mut cost = 0usize;
        for row in merged {
            let (key, value) = row.map_err(failed)?;
            cost = cost.saturating_add(ROW_OVERHEAD + key.len() + value.len());
            if cost > allowed {
                return Err(HostTrap::new(
                    FailureKind::MemoryLimit,
                    format!(
                        "exceeded its memory limit of {} (raise it with --memory-limit-mb): a \
                         view range read from {} would hold over {} rows, {} of host memory, \
                         beside {} of linear memory and tables and {} of pending view writes; \
                         read a large range in pages (a smaller limit)",
                        mib(memory_limit),
                        show(&start),
                        rows.len(),
                        mib(cost),
                        mib(instance),
                        mib(pending)
                    ),
                )
                .into());
            }
            rows.push((key, value));
            if rows.len() >= limit as usize {
                break;
            }
        }
        Ok(rows)
    }
}

/// The stored rows at or after `start`, in key order: the snapshot's row
/// under `start` itself, then its rows after it.
fn stored_from(
    snapshot: &Snapshot,
    start: &[u8],
) -> Result<impl Iterator<Item = Result<KeyValue, StoreError>>, StoreError> {
    let first = snapshot
        .get(start)?
        .map(|value| Ok((start.to_vec(), value)));
    let after = snapshot.rows(b"", Some(start))?;
    Ok(first.into_iter().chain(after))
}

/// Stored rows with pending writes laid over them.
struct Merged<'a, S: Iterator<Item = Result<KeyValue, StoreError>>, P>
where
    P: Iterator<Item = (&'a Vec<u8>, &'a Option<Vec<u8>>)>,
{
    stored: Peekable<S>,
    pending: Peekable<P>,
}

impl<'a, S, P> Iterator for Merged<'a, S, P>
where
    S: Iterator<Item = Result<KeyValue, StoreError>>,
    P: Iterator<Item = (&'a Vec<u8>, &'a Option<Vec<u8>>)>,
{
    type Item = Result<KeyValue, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let take_pending = match (self.stored.peek(), self.pending.peek()) {
                (_, None) | (Some(Err(_)), _) => return self.stored.next(),
                (None, Some(_)) => true,
                (Some(Ok((stored, _))), Some((pending, _))) => *pending <= stored,
            };
            if !take_pending {
                return self.stored.next();
            }
            let (key, value) = self.pending.next()?;
            if matches!(self.stored.peek(), Some(Ok((stored, _))) if stored == key) {
                self.stored.next();
            }
            if let Some(value) = value {
                return Some(Ok((key.clone(), value.clone())));
            }
        }
    }
}

/// A key for a message: its bytes with non-printable ones escaped, cut to
/// 64 bytes.
fn show(key: &[u8]) -> String {
    const SHOWN: usize = 64;
    let shown = &key[..key.len().min(SHOWN)];
    let more = if key.len() > SHOWN {
        format!("… ({} bytes)", key.len())
    } else {
        String::new()
    };
    format!("\"{}\"{more}", shown.escape_ascii())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;

    #[test]
    fn keys_are_shown_escaped_and_cut() {
        assert_eq!(show(b"w/a\x00\xff"), r#""w/a\x00\xff""#);
        let long = show(&[b'k'; 100]);
        assert!(long.ends_with("\"… (100 bytes)"), "{long}");
    }
}
