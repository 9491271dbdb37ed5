//! How a view uses memory and the disk ([`ViewOptions`]): the write
//! buffer's bound, the row cache's and redb's page cache's, the interval
//! between durable writes, and the rule by which the buffer borrows the row
//! cache's unused room.

use std::time::Duration;

/// How a view uses memory and the disk.
#[derive(Debug, Clone)]
pub struct ViewOptions {
    /// Longest time between durable writes of the view file while busy (zero
    /// makes every write durable).
    pub sync_interval: Duration,
    /// Most bytes of commits held in memory before they are written to the
    /// file as one transaction (the memory the buffer's runs hold: keys,
    /// values, 24 bytes a row for its slot and 1.33 for its run's key filter),
    /// and up to four times that while the row
    /// cache leaves as much of its bound unused
    /// ([`ViewOptions::buffer_bound`]). Zero writes every commit as its own
    /// transaction.
    pub write_buffer_bytes: usize,
    /// Bytes of the file's pages cached in memory (redb's cache).
    pub cache_bytes: usize,
    /// Most bytes of rows held in the row cache, a hash table of the latest
    /// value of recently used keys in front of the buffer and the file
    /// (`cache.rs`). Zero: no row cache.
    pub row_cache_bytes: usize,
}

/// Default of [`ViewOptions::write_buffer_bytes`]: 64 MiB.
pub const DEFAULT_WRITE_BUFFER_BYTES: usize = 64 << 20;
/// Default of [`ViewOptions::cache_bytes`]: 256 MiB.
pub const DEFAULT_CACHE_BYTES: usize = 256 << 20;
/// Default of [`ViewOptions::row_cache_bytes`]: 256 MiB, about 1.5M rows of
/// 12-byte keys and 60-byte values.
pub const DEFAULT_ROW_CACHE_BYTES: usize = 256 << 20;
/// How many times [`ViewOptions::write_buffer_bytes`] the write buffer may
/// hold while the row cache has the room unused (see
/// [`ViewOptions::buffer_bound`]).
pub const WRITE_BUFFER_BORROW_LIMIT: usize = 4;

impl ViewOptions {
    /// The bytes of runs at which the write buffer is written to the file,
    /// given the bytes the row cache holds (`None`: no cache):
    /// [`ViewOptions::write_buffer_bytes`], plus as much of the row cache's
    /// bound as the cache leaves unused, up to
    /// [`WRITE_BUFFER_BORROW_LIMIT`] times the buffer's own bound.
    ///
    /// The buffer and the cache together never hold more than their two
    /// bounds between commits; RocksDB's `WriteBufferManager` charges
    /// memtables to the block cache for the same reason: one memory budget,
    /// used where it is needed. (Within a commit, a merge of runs holds its
    /// output beside its inputs until it ends; docs/operating.md.) A view
    /// that fits in its cache, such as a new version's view filling from
    /// the log, is then written to its file less often, and each row fewer
    /// times: at 1M keys the default buffer was written to
    /// the file about six times in a replay (BENCHMARKS.md, section 8). The
    /// limit keeps what a crash makes the worker process again, and what a
    /// sync writes at once, within a known multiple of the buffer's bound.
    /// Zero still writes every commit as its own transaction.
    pub fn buffer_bound(&self, cached: Option<u64>) -> usize {
        if self.write_buffer_bytes == 0 {
            return 0;
        }
        let unused = cached.map_or(0, |cached| {
            let cached = usize::try_from(cached).unwrap_or(usize::MAX);
            self.row_cache_bytes.saturating_sub(cached)
        });
        let most = self
            .write_buffer_bytes
            .saturating_mul(WRITE_BUFFER_BORROW_LIMIT);
        self.write_buffer_bytes.saturating_add(unused).min(most)
    }
}

impl Default for ViewOptions {
    fn default() -> Self {
        ViewOptions {
            sync_interval: Duration::from_millis(200),
            write_buffer_bytes: DEFAULT_WRITE_BUFFER_BYTES,
            cache_bytes: DEFAULT_CACHE_BYTES,
            row_cache_bytes: DEFAULT_ROW_CACHE_BYTES,
        }
    }
}
