//! The log interface the host runs on: the [`EventLog`] and [`LogReader`]
//! traits, the record types, the error type ([`LogError`]) and the
//! partitioner. The lifecycle, diff, promote and rollback only ever see
//! these, so every feature works the same on each backend. This module
//! names no backend; the two implementations sit beside it:
//! [`embedded`] (the embedded log of the `kappa-log` crate, the default) and
//! [`kafka`] (a Kafka cluster), and [`LogBackend`] and its command-line
//! options ([`LogArgs`], in `backend.rs`) choose between them.
//!
//! What a backend must provide, beyond reading and appending:
//! - Offsets are per partition and only grow; a partition may start above 0
//!   (Kafka retention), so a version with no stored offset starts at
//!   [`EventLog::start_offsets`], and progress counts from there.
//! - Partition `partition_for(key)` is Kafka's default partitioner
//!   ([`partition_for_key`]) on every backend, so the same keyed events land
//!   on the same partitions.
//! - A backend that cannot reach its storage (a broker down) returns
//!   [`LogError::Unavailable`]; callers retry rather than fail.
//!
//! The record types and the partitioner are defined in the `kappa-log`
//! crate's data modules (`record.rs`, `partitioner.rs`, `journal.rs` for
//! [`RequestTag`]), which depend on nothing else, because the embedded log
//! encodes them; they are re-exported here so that no caller of the
//! interface names that crate for them.

mod backend;
pub mod embedded;
pub mod kafka;

use std::time::Duration;

pub use crate::log::{
    Appended, AppendedRange, NewRecord, Record, RequestTag, TopicInfo, partition_for_key,
};
// The flags of `kappa serve` that choose the log, and the choice, under the
// paths the command line and the lifecycle use.
pub use backend::{LogArgs, LogBackend};

/// The log errors of the data model both backends share (an unknown topic
/// or partition, an invalid topic name or partition count), and the embedded
/// log's own: the `kappa-log` crate's error type, wrapped in [`LogError`].
pub use crate::log::LogError as ModelError;

/// What can go wrong in a log, whichever the backend.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// An error of the log's data model, or of the embedded log's storage.
    #[error(transparent)]
    Log(#[from] ModelError),
    /// The log's storage cannot be reached right now (a Kafka broker is down
    /// or unreachable); the operation may succeed when retried.
    #[error("{0}")]
    Unavailable(String),
    /// Another backend failure (a Kafka broker refused the request).
    #[error("{0}")]
    Backend(String),
}

impl LogError {
    /// Whether this is [`LogError::Unavailable`]: retrying later may succeed.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, LogError::Unavailable(_))
    }

    /// Whether the topic does not exist.
    pub fn is_unknown_topic(&self) -> bool {
        matches!(self, LogError::Log(ModelError::UnknownTopic(_)))
    }

    /// Topic `name` does not exist.
    pub fn unknown_topic(name: &str) -> Self {
        LogError::Log(ModelError::UnknownTopic(name.to_owned()))
    }

    /// `topic` has no partition `partition` (it has `partitions`).
    pub fn unknown_partition(topic: &str, partition: u32, partitions: u32) -> Self {
        LogError::Log(ModelError::UnknownPartition {
            topic: topic.to_owned(),
            partition,
            partitions,
        })
    }
}

/// Reads one partition in offset order from a start offset onwards.
pub trait LogReader: Send {
    /// Offset of the next record [`read_batch`](Self::read_batch) returns
    /// (on Kafka, the offset after the last one returned: offsets may have
    /// gaps there).
    fn next_offset(&self) -> u64;
    /// Appends up to `max_records` records (and, past the first, at most
    /// about `max_bytes`) to `out`; returns how many. 0 means nothing is
    /// available right now.
    fn read_batch(
        &mut self,
        max_records: usize,
        max_bytes: usize,
        out: &mut Vec<Record>,
    ) -> Result<usize, LogError>;
}

/// A partitioned, replayable event log.
pub trait EventLog: Send + Sync + std::fmt::Debug {
    /// "embedded" or "kafka", for status and errors.
    fn backend(&self) -> &'static str;
    /// Creates a topic with `partitions` partitions.
    fn create_topic(&self, name: &str, partitions: u32) -> Result<TopicInfo, LogError>;
    /// Every topic, sorted by name.
    fn topics(&self) -> Result<Vec<TopicInfo>, LogError>;
    /// One topic.
    fn topic(&self, name: &str) -> Result<TopicInfo, LogError>;
    /// The number of partitions of `topic` (cached by remote backends, so
    /// producing needs no round trip for it).
    fn partitions(&self, topic: &str) -> Result<u32, LogError>;
    /// Next offset of each partition, indexed by partition.
    fn end_offsets(&self, topic: &str) -> Result<Vec<u64>, LogError>;
    /// First offset still readable in each partition (0 on the embedded
    /// log; Kafka's low watermark).
    fn start_offsets(&self, topic: &str) -> Result<Vec<u64>, LogError>;
    /// The partition of a keyed event (Kafka's murmur2 partitioner), or the
    /// next one round-robin for an event without a key.
    fn partition_for(&self, topic: &str, key: Option<&[u8]>) -> Result<u32, LogError>;
    /// Appends `(partition, record)` pairs, in order within each partition,
    /// and returns once they are durable.
    fn append(
        &self,
        topic: &str,
        records: Vec<(u32, NewRecord)>,
    ) -> Result<Vec<AppendedRange>, LogError>;
    /// [`append`](Self::append), all or nothing across crashes, with an
    /// optional request id stored at most once. Backends without request
    /// ids refuse a tag (the host refuses it earlier with a clearer error).
    fn append_request(
        &self,
        topic: &str,
        records: Vec<(u32, NewRecord)>,
        tag: Option<&RequestTag>,
    ) -> Result<Appended, LogError> {
        if tag.is_some() {
            return Err(LogError::Backend(format!(
                "the {} log does not support request ids",
                self.backend()
            )));
        }
        Ok(Appended {
            ranges: self.append(topic, records)?,
            duplicate: false,
        })
    }
    /// A reader of one partition from offset `from`.
    fn reader(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
    ) -> Result<Box<dyn LogReader>, LogError>;
    /// A counter of appends seen by this process, for [`wait_for_append`](Self::wait_for_append).
    fn append_count(&self) -> u64;
    /// Waits until the counter differs from `seen` or `timeout` passes.
    /// Backends that cannot be notified of appends by other writers (Kafka)
    /// return after at most `timeout`, so callers poll.
    fn wait_for_append(&self, seen: u64, timeout: Duration) -> u64;
}
