//! The embedded log's error type, [`LogError`]: what each way of failing
//! says to the operator, and which of them the host shares with its other
//! log backends.

use std::io;
use std::path::{Path, PathBuf};

use crate::{MAX_PARTITIONS, record};

/// What can go wrong in the embedded log. The errors of the log's data
/// model (an unknown topic or partition, an invalid name or count) are
/// shared with the host's other backends, which report them as these; what
/// only a remote backend has (a broker down) is the host's, not this crate's.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// No topic has this name.
    #[error("topic {0:?} does not exist; create it first")]
    UnknownTopic(String),
    /// A topic with this name exists already.
    #[error("topic {0:?} already exists")]
    TopicExists(String),
    /// The name cannot be a topic's name.
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName {
        /// The name given.
        name: String,
        /// Why it is not accepted.
        reason: String,
    },
    /// A topic was asked for with no partitions or more than the log allows.
    #[error("invalid partition count {0}: a topic has 1 to {MAX_PARTITIONS} partitions")]
    InvalidPartitionCount(u32),
    /// The topic exists but has no partition with this number.
    #[error(
        "topic {topic:?} has no partition {partition}; its {partitions} partitions are numbered from 0"
    )]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: u32,
        /// How many partitions the topic has.
        partitions: u32,
    },
    /// A read started past the partition's next offset.
    #[error(
        "offset {offset} is past the end of topic {topic:?} partition {partition}, whose next offset is {end}"
    )]
    OffsetOutOfRange {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The offset asked for.
        offset: u64,
        /// The partition's next offset, the largest a read may start at.
        end: u64,
    },
    /// `size` is the encoded record size in bytes and `max` the configured
    /// limit, or, when `max` is 65535, possibly the record's header count or
    /// a header name's length, which the format limits to 65535.
    #[error("{}", too_large_message(*.size, *.max))]
    RecordTooLarge {
        /// The size found.
        size: usize,
        /// The limit it exceeds.
        max: usize,
    },
    /// A file of the log holds bytes that are not what the log wrote.
    #[error("{} {} is corrupt at byte {position}: {reason}", corrupt_kind(file), file.display())]
    Corrupt {
        /// The damaged file.
        file: PathBuf,
        /// The byte offset in it where the damage was found.
        position: u64,
        /// What is wrong there.
        reason: String,
    },
    /// A file operation failed.
    #[error("{context}")]
    Io {
        /// What the log was doing, naming the file.
        context: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The request id is empty, too long or has characters an id may not have.
    #[error("invalid request id {id:?}: {reason} (an id is 1 to 128 visible ASCII characters)")]
    InvalidRequestId {
        /// The id given.
        id: String,
        /// Why it is not accepted.
        reason: String,
    },
    /// An earlier request with this id is still being stored; retrying
    /// in a moment gets its outcome.
    #[error(
        "a request with id {id:?} is still being stored; retry in a moment with the same id to get its outcome"
    )]
    RequestInFlight {
        /// The request id.
        id: String,
    },
    /// The id was stored before with other events.
    #[error(
        "request id {id:?} was already used for other events; nothing was stored (use a new id for a new request)"
    )]
    RequestIdReused {
        /// The request id.
        id: String,
    },
}

fn too_large_message(size: usize, max: usize) -> String {
    if max == record::HEADER_LIMIT {
        format!(
            "record exceeds a limit of {max}: it has {size} bytes, headers or bytes in a header name \
             (a record has at most {max} headers, with names of at most {max} bytes)"
        )
    } else {
        format!(
            "record of {size} bytes exceeds the maximum of {max} bytes (LogOptions::max_record_bytes)"
        )
    }
}

fn corrupt_kind(file: &Path) -> &'static str {
    if file.extension().is_some_and(|e| e == "seg") {
        "log segment"
    } else {
        "log file"
    }
}

impl LogError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        LogError::Io {
            context: context.into(),
            source,
        }
    }
}
