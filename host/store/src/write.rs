//! Writing the write buffer to the file: a full buffer in the background (if
//! the view writes so, `View::with_background_writes`), on a thread of its
//! own, while the committing thread fills a fresh buffer;
//! everything at once, on the caller's thread, for a sync (or a commit that
//! asks to be durable) and when the view is dropped.
//!
//! The thread is spawned for one write and ends with it, rather than kept for
//! the view's life: a buffer fills after tens of megabytes of commits, so the
//! cost of starting a thread (tens of microseconds) is nothing beside the
//! write, while a thread kept per view would sit idle in every view that
//! never fills its buffer (a view per version, or per partition of a version,
//! all of them on one host). A scoped thread is no use here: the commit that
//! fills the buffer returns before the write ends.
//!
//! The rows being written stay readable as `Buffer::writing` until their
//! transaction has committed, so snapshots and gets see every commit whatever
//! is being written. If the write fails, nothing of it reached the file: the
//! writing thread puts its rows and offsets back into the active buffer,
//! under the commits made since, and the failure is returned to the next
//! caller that waits for the write (the next commit, a sync).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use redb::{Durability, ReadableTable as _};

use crate::runs::{RowRef, Runs};
use crate::{Core, StoreError, View};

/// The write of a full buffer in the background: the thread's result.
pub(crate) type Background = JoinHandle<Result<(), StoreError>>;

/// A buffer taken for writing: its rows and offsets, and how many of the
/// view's commits it completes.
struct Taken {
    rows: Runs,
    offsets: BTreeMap<u32, u64>,
    commits: u64,
}

impl View {
    /// Writes the buffer now, on this thread, after waiting for a write in
    /// the background (whose failure is returned, the buffer then left for
    /// the next write).
    pub(crate) fn write_now(&self, force_durable: bool) -> Result<(), StoreError> {
        let mut writer = self.writer.lock();
        self.wait(&mut writer)?;
        self.core.write(&self.core.take(), force_durable, false)
    }

    /// Writes the buffer when dropped: waits for a write in the background,
    /// then writes whatever is buffered (a failed background write's rows
    /// included), durably.
    pub(crate) fn write_on_drop(&self) {
        // A test failing while it holds a background write ends, not hangs.
        #[cfg(test)]
        self.core.hooks.release();
        let mut writer = self.writer.lock();
        let _ = self.wait(&mut writer);
        let _ = self.core.write(&self.core.take(), true, false);
    }

    /// Writes a full buffer: in the background when the view writes so (see
    /// [`View::with_background_writes`]), once the previous background write
    /// has ended, so that at most one buffer is being written.
    pub(crate) fn write_full(&self) -> Result<(), StoreError> {
        let mut writer = self.writer.lock();
        self.wait(&mut writer)?;
        let taken = self.core.take();
        if !self.background {
            return self.core.write(&taken, false, false);
        }
        let core = Arc::clone(&self.core);
        let spawned = std::thread::Builder::new()
            .name("kappa-view-write".to_owned())
            .spawn(move || core.write(&taken, false, true));
        match spawned {
            Ok(handle) => {
                *writer = Some(handle);
                Ok(())
            }
            Err(_) => {
                // No thread to be had: write here, as without background writes.
                self.core.settle(false);
                self.core.write(&self.core.take(), false, false)
            }
        }
    }

    /// Waits for the background write, if any; its failure is returned as a
    /// [`StoreError::Background`], its commits being back in the buffer.
    fn wait(&self, writer: &mut Option<Background>) -> Result<(), StoreError> {
        let Some(handle) = writer.take() else {
            return Ok(());
        };
        let source = match handle.join() {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => e,
            Err(_) => {
                // The thread died before it could put the rows back.
                self.core.settle(false);
                self.core.err(std::io::Error::other(
                    "the thread writing the buffer panicked",
                ))
            }
        };
        Err(StoreError::Background {
            path: self.core.path.clone(),
            source: Box::new(source),
        })
    }

    /// Forgets the buffered commits, as a crash would: a background write
    /// held by [`crate::hooks::Hooks::hold`] is dropped before it commits,
    /// one not held is let finish first.
    #[cfg(test)]
    pub(crate) fn lose_buffer(&self) {
        let mut writer = self.writer.lock();
        self.core.hooks.crash();
        if let Some(handle) = writer.take() {
            let _ = handle.join();
        }
        let mut buffer = self.core.buffer.lock();
        let commits = buffer.commits;
        *buffer = crate::Buffer {
            commits,
            ..crate::Buffer::default()
        };
        if let Some(cache) = &self.core.row_cache {
            cache.lock().forget(commits);
        }
    }

    /// The hooks into this view's background writes.
    #[cfg(test)]
    pub(crate) fn hooks(&self) -> &crate::hooks::Hooks {
        &self.core.hooks
    }
}

impl Core {
    pub(crate) fn err(&self, e: impl Into<redb::Error>) -> StoreError {
        StoreError::Db {
            path: self.path.clone(),
            source: Box::new(e.into()),
        }
    }

    /// Takes the active buffer for writing: it becomes the buffer being
    /// written, still read by snapshots, and a fresh one takes the commits.
    fn take(&self) -> Taken {
        let mut buffer = self.buffer.lock();
        let rows = std::mem::take(&mut buffer.active);
        let offsets = std::mem::take(&mut buffer.offsets);
        buffer.writing_offsets.clone_from(&offsets);
        buffer.writing = Some(rows.clone());
        Taken {
            rows,
            offsets,
            commits: buffer.commits,
        }
    }

    /// Ends the write of the buffer being written: forgets it once in the
    /// file (`written`); otherwise puts its rows and offsets back into the
    /// active buffer, older than the commits made since, in one step, so
    /// readers never miss them.
    fn settle(&self, written: bool) {
        let mut buffer = self.buffer.lock();
        let buffer = &mut *buffer;
        let writing = buffer.writing.take();
        let offsets = std::mem::take(&mut buffer.writing_offsets);
        if written {
            return;
        }
        let Some(rows) = writing else {
            return;
        };
        buffer.active.put_under(rows);
        let mut all = offsets;
        all.extend(std::mem::take(&mut buffer.offsets));
        buffer.offsets = all;
    }

    /// Writes a taken buffer to the file in one transaction, durable if
    /// `force_durable` or the sync interval has passed, then settles it.
    fn write(
        &self,
        taken: &Taken,
        force_durable: bool,
        background: bool,
    ) -> Result<(), StoreError> {
        let result = self.write_rows(taken, force_durable, background);
        self.settle(result.is_ok());
        result
    }

    fn write_rows(
        &self,
        taken: &Taken,
        force_durable: bool,
        background: bool,
    ) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let durable = {
            let mut sync = self.sync.lock();
            let due = force_durable || sync.last_durable.elapsed() >= self.options.sync_interval;
            if due {
                sync.last_durable = Instant::now();
            }
            due
        };
        if !durable {
            txn.set_durability(Durability::None)
                .map_err(|e| self.err(e))?;
        }
        {
            let mut table = txn.open_table(crate::ROWS).map_err(|e| self.err(e))?;
            write_in_key_order(&mut table, taken.rows.merged()).map_err(|e| self.err(e))?;
            let mut table = txn.open_table(crate::OFFSETS).map_err(|e| self.err(e))?;
            for (partition, next) in &taken.offsets {
                table.insert(partition, next).map_err(|e| self.err(e))?;
            }
        }
        self.before_commit(background)?;
        txn.commit().map_err(|e| self.err(e))?;
        if durable {
            let mut sync = self.sync.lock();
            sync.durable_commits = sync.durable_commits.max(taken.commits);
        }
        Ok(())
    }

    /// Where tests hold, fail or crash a background write, its rows in the
    /// transaction but not committed.
    #[cfg(test)]
    fn before_commit(&self, background: bool) -> Result<(), StoreError> {
        if background {
            self.hooks.before_commit().map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    #[cfg(not(test))]
    #[inline]
    fn before_commit(&self, _background: bool) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Writes rows in key order (a deletion as `None`) into `table`: by key up
/// to the file's last key, then, for the rows past it, through one cursor at
/// the end of the file.
///
/// An `insert` descends the tree from its root and rewrites the leaf it
/// lands in, for every row: most of the microsecond a row costs (a profile:
/// 28% comparing keys in branch and leaf pages, 10% moving bytes within
/// them). A cursor buffers the rows it is given at one gap and packs them
/// into full leaves with one update of their parents; the rows past the
/// file's last key all go to one gap, which is every row of a replay's first
/// write into its empty file, and every new key of a view whose keys grow
/// (ids in time order). Between the file's keys, a cursor was measured
/// slower than `insert` (`BENCHMARKS.md`, "What a row costs to write"): a new
/// key between two of the file's ends its run, and a key the file holds is
/// a removal then an insert.
fn write_in_key_order<'r>(
    table: &mut redb::Table<&'static [u8], &'static [u8]>,
    rows: impl Iterator<Item = RowRef<'r>>,
) -> Result<(), redb::Error> {
    let last = table.last()?.map(|(key, _)| key.value().to_vec());
    let mut rows = rows.peekable();
    if let Some(last) = &last {
        while let Some((key, value)) = rows.next_if(|(key, _)| *key <= last.as_slice()) {
            match value {
                Some(value) => drop(table.insert(key, value)?),
                None => drop(table.remove(key)?),
            }
        }
    }
    let mut end = table.upper_bound_mut(Bound::<&[u8]>::Unbounded)?;
    for (key, value) in rows {
        // Past the file's last key, a deletion has nothing to delete.
        if let Some(value) = value {
            end.insert_before(key, value)?;
        }
    }
    end.close()?;
    Ok(())
}

#[cfg(test)]
#[path = "write_tests.rs"]
mod tests;
