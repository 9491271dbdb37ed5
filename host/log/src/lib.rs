//! The embedded event log, kappa's default log backend: topics split into
//! partitions of offset-ordered, replayable events, kept in plain files in
//! one directory, with no server to run.
//!
//! Guarantees:
//! - Offsets are assigned per partition from 0 without gaps.
//! - [`EmbeddedLog::append`] returns `Ok` only after the records are fsynced
//!   (unless [`LogOptions::fsync`] is off), and readers see them only from then on.
//! - After a crash, [`EmbeddedLog::open`] keeps every acknowledged record:
//!   a torn write at the tail of a partition is cut off, while damage
//!   anywhere else (including a last record the request journal proves was
//!   acknowledged) makes `open` fail with [`LogError::Corrupt`] rather than
//!   serve or silently drop data.
//! - An append is all or nothing, also across a crash: one spanning several
//!   partitions is recorded in the topic's request journal first and cut
//!   back on open if it was not completely written (`journal.rs`). With a
//!   [`RequestTag`], it is stored at most once.
//!
//! Each partition has a single writer (a mutex) and any number of
//! [`PartitionReader`]s, each with its own file handle, that never block the
//! writer. The byte format is specified (and frozen) in `record.rs`.
//!
//! (This file is long, about 900 lines, because it holds the log's whole
//! public API and its open-time recovery in one place.)

// Strict lints for product code (not tests or benches): documented items, explained allows, no silent lossy casts.
#![warn(
    missing_docs,
    clippy::allow_attributes_without_reason,
    clippy::too_many_lines,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

mod error;
pub use error::LogError;
mod topic;
use topic::{Topic, load_topic, validate_topic_name, write_topic_meta};
pub mod event;
#[doc(hidden)]
pub mod fuzzing;
mod journal;
pub use journal::{MAX_REQUEST_ID_LEN, RequestTag};
mod partition;
mod partitioner;
pub use partitioner::partition_for_key;
mod reader;
mod record;
#[cfg(test)]
mod request_tests;
mod segment;
#[cfg(test)]
mod tests;

/// The record codec for [`fuzzing`] (and the fuzz targets through it):
/// the same functions the log's readers and writers use, on bytes in memory.
pub(crate) mod fuzz_support {
    use super::record::{self, FRAME_HEADER_LEN};
    use super::{NewRecord, Record};

    pub(crate) use super::record::SEGMENT_HEADER;

    /// Decodes the framed record at the start of `bytes` exactly as a reader
    /// does (length, checksum, body structure, UTF-8 header names); returns
    /// it with the number of bytes it took.
    pub(crate) fn decode_framed(bytes: &[u8]) -> Result<(Record, usize), String> {
        let header = bytes
            .first_chunk::<FRAME_HEADER_LEN>()
            .ok_or("incomplete record header")?;
        let (len, crc) = record::frame_header(header);
        let total = FRAME_HEADER_LEN
            .checked_add(len as usize)
            .ok_or("record length overflows")?;
        let body = bytes
            .get(FRAME_HEADER_LEN..total)
            .ok_or("incomplete record")?;
        if crc32fast::hash(body) != crc {
            return Err("checksum mismatch".into());
        }
        let record = record::parse_body(body).and_then(|view| view.to_record(0))?;
        Ok((record, total))
    }

    /// Encodes a record at `offset` with its frame, as an append does.
    pub(crate) fn encode_framed(offset: u64, r: &NewRecord) -> Vec<u8> {
        let mut out = Vec::new();
        record::encode(&mut out, offset, r);
        out
    }
}

use journal::{Journal, Part};
use partition::Partition;
pub use reader::PartitionReader;
pub use record::{NewRecord, Record};

const MAX_PARTITIONS: u32 = 1024;
const MAX_TOPIC_NAME_LEN: usize = 200;
const TOPIC_META_FILE: &str = "topic.json";
const TOPIC_META_TMP_FILE: &str = "topic.json.tmp";
const LOCK_FILE: &str = "LOCK";
/// Version of the directory layout and of `topic.json`.
const FORMAT_VERSION: u32 = 1;

/// A topic and how far each of its partitions has been written.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TopicInfo {
    /// The topic's name.
    pub name: String,
    /// How many partitions the topic has, numbered from 0.
    pub partitions: u32,
    /// `end_offsets[p]`: the offset the next record of partition `p` gets,
    /// which is also its number of durable records.
    pub end_offsets: Vec<u64>,
}

/// The offsets one append assigned in one partition.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppendedRange {
    /// The partition the records went to.
    pub partition: u32,
    /// The offset of the first record appended.
    pub first_offset: u64,
    /// The offset of the last record appended (inclusive).
    pub last_offset: u64,
    /// How many records were appended: `last_offset - first_offset + 1`.
    pub count: u64,
}

/// What [`EmbeddedLog::append_request`] did.
#[derive(Debug, Clone)]
pub struct Appended {
    /// One range per touched partition, sorted by partition.
    pub ranges: Vec<AppendedRange>,
    /// The request id was already stored: nothing was appended now, and
    /// `ranges` are those the first request got.
    pub duplicate: bool,
}

/// Tuning of the embedded log.
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// A segment that would grow past this many bytes is closed and a new one
    /// started (a single record larger than this still gets a segment).
    pub segment_bytes: u64,
    /// Largest accepted record, measured as its encoded body: key, value,
    /// header names and values, plus 26 bytes of fixed fields and 6 per
    /// header; never more than 2 GiB - 1. The recovery scan treats longer
    /// length fields as damage, so do not lower this below records already
    /// stored.
    pub max_record_bytes: usize,
    /// fsync on every append. Turning it off loses the durability guarantee
    /// and is meant for benchmarks and tests only.
    pub fsync: bool,
    /// How many of the most recent request ids each topic remembers (across
    /// restarts) to answer a retry with its first offsets; an older id is
    /// forgotten and its retry would be stored again.
    pub request_ids_kept: usize,
}

/// The default of [`LogOptions::request_ids_kept`].
pub const DEFAULT_REQUEST_IDS_KEPT: usize = 10_000;

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_bytes: 64 * 1024 * 1024,
            max_record_bytes: 8 * 1024 * 1024,
            fsync: true,
            request_ids_kept: DEFAULT_REQUEST_IDS_KEPT,
        }
    }
}

impl LogOptions {
    /// The body length limit actually enforced: key lengths are stored as
    /// `i32`, so records stay below 2 GiB whatever the options say.
    fn max_body_len(&self) -> usize {
        self.max_record_bytes.min(i32::MAX as usize)
    }
}

/// The log. Share it as `Arc<EmbeddedLog>`; every method takes `&self`.
pub struct EmbeddedLog {
    dir: PathBuf,
    options: LogOptions,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Serializes topic creation so it can do file I/O without holding `topics`.
    create_lock: Mutex<()>,
    /// Number of durable appends so far, for [`EmbeddedLog::wait_for_append`].
    appends: Mutex<u64>,
    appended: Condvar,
    /// The same counter for async code.
    notify: watch::Sender<u64>,
    /// Holds the directory's advisory lock for as long as the log is open.
    _lock: File,
}

impl fmt::Debug for EmbeddedLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedLog")
            .field("dir", &self.dir)
            .field("options", &self.options)
            .field("topics", &self.topics.read().keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl EmbeddedLog {
    /// Opens (creating if missing) the log in `dir` and recovers every
    /// partition: each segment is scanned and its checksums verified, a torn
    /// tail left by a crash is cut off (with a warning), and any other damage
    /// fails with [`LogError::Corrupt`]. Only one `EmbeddedLog` may have a
    /// directory open at a time, across processes too.
    pub fn open(dir: &Path, options: LogOptions) -> Result<Self, LogError> {
        fs::create_dir_all(dir).map_err(|e| {
            LogError::io(format!("cannot create log directory {}", dir.display()), e)
        })?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| LogError::io(format!("cannot open {}", lock_path.display()), e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(LogError::io(
                    format!(
                        "log directory {} is already open in another process or another EmbeddedLog",
                        dir.display()
                    ),
                    io::ErrorKind::WouldBlock.into(),
                ));
            }
            Err(fs::TryLockError::Error(e)) => {
                return Err(LogError::io(
                    format!("cannot lock {}", lock_path.display()),
                    e,
                ));
            }
        }

        let list_err = |e| LogError::io(format!("cannot list log directory {}", dir.display()), e);
        let mut topics = BTreeMap::new();
        for entry in fs::read_dir(dir).map_err(list_err)? {
            let entry = entry.map_err(list_err)?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if validate_topic_name(&name).is_err() || !entry.file_type().map_err(list_err)?.is_dir()
            {
                continue;
            }
            if let Some(topic) = load_topic(&entry.path(), &name, &options)? {
                topics.insert(name, Arc::new(topic));
            }
        }

        let (notify, _) = watch::channel(0);
        Ok(EmbeddedLog {
            dir: dir.to_path_buf(),
            options,
            topics: RwLock::new(topics),
            create_lock: Mutex::new(()),
            appends: Mutex::new(0),
            appended: Condvar::new(),
            notify,
            _lock: lock,
        })
    }

    /// Creates a topic with `partitions` (1 to 1024) empty partitions. Names
    /// are 1 to 200 characters of `[A-Za-z0-9._-]`, other than `.`, `..` and
    /// `LOCK` (in any case).
    pub fn create_topic(&self, name: &str, partitions: u32) -> Result<TopicInfo, LogError> {
        validate_topic_name(name).map_err(|reason| LogError::InvalidTopicName {
            name: name.to_owned(),
            reason: reason.to_owned(),
        })?;
        if !(1..=MAX_PARTITIONS).contains(&partitions) {
            return Err(LogError::InvalidPartitionCount(partitions));
        }
        let _creating = self.create_lock.lock();
        if self.topics.read().contains_key(name) {
            return Err(LogError::TopicExists(name.to_owned()));
        }
        let topic_dir = self.dir.join(name);
        if topic_dir.exists() {
            // Left by a creation that never finished (no topic.json, or open
            // would have loaded it): it holds no records.
            tracing::warn!(dir = %topic_dir.display(), "removing unfinished topic directory {}", topic_dir.display());
            fs::remove_dir_all(&topic_dir).map_err(|e| {
                LogError::io(
                    format!(
                        "cannot remove unfinished topic directory {}",
                        topic_dir.display()
                    ),
                    e,
                )
            })?;
        }
        let topic = self
            .create_topic_files(&topic_dir, name, partitions)
            .inspect_err(|_| {
                let _ = fs::remove_dir_all(&topic_dir);
            })?;
        let info = topic.info();
        self.topics.write().insert(name.to_owned(), Arc::new(topic));
        Ok(info)
    }

    fn create_topic_files(
        &self,
        topic_dir: &Path,
        name: &str,
        partitions: u32,
    ) -> Result<Topic, LogError> {
        let fsync = self.options.fsync;
        fs::create_dir(topic_dir).map_err(|e| {
            LogError::io(
                format!("cannot create topic directory {}", topic_dir.display()),
                e,
            )
        })?;
        let parts = (0..partitions)
            .map(|p| {
                Partition::create(name, p, topic_dir.join(p.to_string()), &self.options)
                    .map(Arc::new)
            })
            .collect::<Result<Vec<_>, _>>()?;
        if fsync {
            segment::sync_dir(topic_dir)?;
        }
        // Written last: its presence marks the topic as complete.
        write_topic_meta(topic_dir, partitions, fsync)?;
        if fsync {
            segment::sync_dir(&self.dir)?;
        }
        let ends = vec![0; parts.len()];
        let journal = Journal::open(
            topic_dir,
            false,
            Vec::new(),
            &ends,
            fsync,
            self.options.request_ids_kept,
        )?;
        Ok(Topic {
            name: name.to_owned(),
            partitions: parts,
            round_robin: AtomicU32::new(0),
            journal: Mutex::new(journal),
        })
    }

    /// All topics, sorted by name.
    pub fn topics(&self) -> Vec<TopicInfo> {
        self.topics.read().values().map(|t| t.info()).collect()
    }

    /// The topic named `name` and its partitions' next offsets.
    pub fn topic(&self, name: &str) -> Result<TopicInfo, LogError> {
        Ok(self.get(name)?.info())
    }

    /// Next offset of each partition of `topic`, indexed by partition.
    pub fn end_offsets(&self, topic: &str) -> Result<Vec<u64>, LogError> {
        Ok(self.get(topic)?.end_offsets())
    }

    /// The partition an event with this key belongs to: Kafka's default
    /// partitioner (`toPositive(murmur2(key)) % partitions`, identical to the
    /// Java client's) for keyed events, round-robin per topic otherwise.
    pub fn partition_for(&self, topic: &str, key: Option<&[u8]>) -> Result<u32, LogError> {
        let topic = self.get(topic)?;
        let n = topic.partition_count();
        Ok(match key {
            Some(key) => partition_for_key(key, n),
            None => topic.round_robin.fetch_add(1, Ordering::Relaxed) % n,
        })
    }

    /// Appends `(partition, record)` pairs, in order within each partition:
    /// [`append_request`](Self::append_request) without a request id.
    pub fn append(
        &self,
        topic: &str,
        records: Vec<(u32, NewRecord)>,
    ) -> Result<Vec<AppendedRange>, LogError> {
        Ok(self.append_request(topic, records, None)?.ranges)
    }

    /// Appends `(partition, record)` pairs, in order within each partition,
    /// all or nothing, also across a crash.
    ///
    /// Everything is validated first and nothing is appended if any record is
    /// refused. Each touched partition is fsynced once for the whole call;
    /// the records become readable, and `Ok` is returned, only after that.
    /// Returns one range per touched partition, sorted by partition. If a
    /// write fails, none of the records become readable.
    ///
    /// A request that touches several partitions, or that carries a `tag`,
    /// is first recorded in the topic's request journal (one more fsync), so
    /// that a crash in the middle leaves none of it after [`open`](Self::open).
    /// With a tag, a request whose id was stored before is not stored again:
    /// the answer is the first one's ranges with `duplicate` set, or
    /// [`LogError::RequestIdReused`] when its fingerprint differs, or
    /// [`LogError::RequestInFlight`] while the first is still being stored.
    pub fn append_request(
        &self,
        topic: &str,
        records: Vec<(u32, NewRecord)>,
        tag: Option<&RequestTag>,
    ) -> Result<Appended, LogError> {
        let topic = self.get(topic)?;
        let max = self.options.max_body_len();
        if let Some(tag) = tag {
            journal::validate_id(&tag.id)?;
        }
        for (partition, r) in &records {
            topic.partition(*partition)?;
            let size = record::body_len(r).map_err(|size| LogError::RecordTooLarge {
                size,
                max: record::HEADER_LIMIT,
            })?;
            if size > max {
                return Err(LogError::RecordTooLarge { size, max });
            }
        }
        let mut groups: BTreeMap<u32, Vec<NewRecord>> = BTreeMap::new();
        for (partition, r) in records {
            groups.entry(partition).or_default().push(r);
        }
        let appended = |ranges| Appended {
            ranges,
            duplicate: false,
        };
        if groups.is_empty() {
            return Ok(appended(Vec::new()));
        }
        let Some(tag) = tag else {
            return self.append_groups(&topic, groups, None).map(appended);
        };
        let begun = topic.journal.lock().begin(tag);
        match begun {
            Ok(()) => {}
            Err(journal::Refusal::Duplicate(ranges)) => {
                return Ok(Appended {
                    ranges,
                    duplicate: true,
                });
            }
            Err(journal::Refusal::InFlight) => {
                return Err(LogError::RequestInFlight { id: tag.id.clone() });
            }
            Err(journal::Refusal::Reused) => {
                return Err(LogError::RequestIdReused { id: tag.id.clone() });
            }
        }
        let result = self.append_groups(&topic, groups, Some(tag));
        topic.journal.lock().end(&tag.id);
        result.map(appended)
    }

    fn append_groups(
        &self,
        topic: &Topic,
        groups: BTreeMap<u32, Vec<NewRecord>>,
        tag: Option<&RequestTag>,
    ) -> Result<Vec<AppendedRange>, LogError> {
        let groups: Vec<(&Arc<Partition>, Vec<NewRecord>)> = groups
            .into_iter()
            .map(|(p, rs)| (&topic.partitions[p as usize], rs))
            .collect();

        // Locked in ascending partition order, so concurrent appends cannot deadlock.
        let mut writers: Vec<_> = groups.iter().map(|(p, _)| p.writer.lock()).collect();
        let intent = if groups.len() > 1 || tag.is_some() {
            let parts = groups
                .iter()
                .zip(&writers)
                .map(|((p, rs), w)| Part {
                    partition: p.index,
                    first: w.next_offset(),
                    count: rs.len() as u64,
                })
                .collect();
            Some(topic.journal.lock().write_intent(tag, parts)?)
        } else {
            None
        };
        let mut staged = Vec::with_capacity(groups.len());
        for (i, (partition, rs)) in groups.iter().enumerate() {
            match partition.stage(&mut writers[i], rs, &self.options) {
                Ok(s) => staged.push(s),
                Err(e) => {
                    for (j, s) in staged.into_iter().enumerate() {
                        groups[j].0.rollback(&mut writers[j], s);
                    }
                    if let Some(intent) = intent {
                        // The intent must not outlive its rolled-back records
                        // unless no append can follow it before a reopen.
                        let clean = writers.iter().all(|w| !w.poisoned());
                        let aborted = topic.journal.lock().abort(intent.seq, clean);
                        if !aborted {
                            for (j, (p, _)) in groups.iter().enumerate() {
                                p.poison(&mut writers[j], "a failed request could not be cancelled in the request journal");
                            }
                        }
                    }
                    return Err(e);
                }
            }
        }
        let ranges = staged
            .into_iter()
            .enumerate()
            .map(|(i, s)| groups[i].0.commit(&mut writers[i], s))
            .collect();
        if let Some(intent) = intent {
            topic.journal.lock().done(intent, || topic.end_offsets());
        }
        drop(writers);
        self.notify_append();
        Ok(ranges)
    }

    /// A reader of one partition starting at `from_offset`, which may equal
    /// the end (the reader then returns records as they are appended).
    pub fn reader(
        &self,
        topic: &str,
        partition: u32,
        from_offset: u64,
    ) -> Result<PartitionReader, LogError> {
        let topic = self.get(topic)?;
        let partition = topic.partition(partition)?.clone();
        PartitionReader::open(partition, from_offset, self.options.max_body_len())
    }

    /// A counter bumped after every durable append to any topic. Async code
    /// awaits `changed()` on it; plain threads should use
    /// [`wait_for_append`](Self::wait_for_append) instead of polling.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.notify.subscribe()
    }

    /// Blocks until the append counter differs from `seen` or `timeout`
    /// passes, and returns the counter. A thread tailing the log takes the
    /// counter before reading to the end, then waits with it, so an append
    /// during the read wakes it at once:
    ///
    /// ```ignore
    /// let mut seen = log.wait_for_append(u64::MAX, Duration::ZERO); // current value
    /// loop {
    ///     while reader.read_batch(1000, 1 << 20, &mut batch)? > 0 { /* process */ }
    ///     seen = log.wait_for_append(seen, Duration::from_secs(1));
    /// }
    /// ```
    pub fn wait_for_append(&self, seen: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now().checked_add(timeout);
        let mut count = self.appends.lock();
        while *count == seen {
            match deadline {
                Some(deadline) => {
                    if self.appended.wait_until(&mut count, deadline).timed_out() {
                        break;
                    }
                }
                None => self.appended.wait(&mut count),
            }
        }
        *count
    }

    fn notify_append(&self) {
        let mut count = self.appends.lock();
        *count += 1;
        // Updated under the same lock, so a value read from a watch receiver
        // is always a valid `seen` for `wait_for_append`.
        self.notify.send_replace(*count);
        self.appended.notify_all();
    }

    fn get(&self, topic: &str) -> Result<Arc<Topic>, LogError> {
        self.topics
            .read()
            .get(topic)
            .cloned()
            .ok_or_else(|| LogError::UnknownTopic(topic.to_owned()))
    }
}
