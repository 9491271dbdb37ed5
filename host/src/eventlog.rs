//! The log interface the host runs on, and its backends: the embedded log
//! ([`crate::log::EmbeddedLog`], the default) and a Kafka topic
//! ([`crate::kafka::KafkaLog`]). The lifecycle, diff, promote and rollback
//! only ever see [`EventLog`], so every feature works the same on both.
//!
//! What a backend must provide, beyond reading and appending:
//! - Offsets are per partition and only grow; a partition may start above 0
//!   (Kafka retention), so a version with no stored offset starts at
//!   [`EventLog::start_offsets`], and progress counts from there.
//! - Partition `partition_for(key)` is Kafka's default partitioner on every
//!   backend, so the same keyed events land on the same partitions.
//! - A backend that cannot reach its storage (a broker down) returns
//!   [`LogError::Unavailable`]; callers retry rather than fail.

use std::time::Duration;

use crate::log::{
    Appended, AppendedRange, EmbeddedLog, LogError, NewRecord, Record, RequestTag, TopicInfo,
};

/// Which log a host runs on.
#[derive(Debug, Clone, Default)]
pub enum LogBackend {
    /// The embedded log in the data directory.
    #[default]
    Embedded,
    /// Topics of a Kafka cluster.
    Kafka(crate::kafka::KafkaConfig),
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

impl LogReader for crate::log::PartitionReader {
    fn next_offset(&self) -> u64 {
        crate::log::PartitionReader::next_offset(self)
    }

    fn read_batch(
        &mut self,
        max_records: usize,
        max_bytes: usize,
        out: &mut Vec<Record>,
    ) -> Result<usize, LogError> {
        crate::log::PartitionReader::read_batch(self, max_records, max_bytes, out)
    }
}

impl EventLog for EmbeddedLog {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    fn create_topic(&self, name: &str, partitions: u32) -> Result<TopicInfo, LogError> {
        EmbeddedLog::create_topic(self, name, partitions)
    }

    fn topics(&self) -> Result<Vec<TopicInfo>, LogError> {
        Ok(EmbeddedLog::topics(self))
    }

    fn topic(&self, name: &str) -> Result<TopicInfo, LogError> {
        EmbeddedLog::topic(self, name)
    }

    fn partitions(&self, topic: &str) -> Result<u32, LogError> {
        Ok(EmbeddedLog::topic(self, topic)?.partitions)
    }

    fn end_offsets(&self, topic: &str) -> Result<Vec<u64>, LogError> {
        EmbeddedLog::end_offsets(self, topic)
    }

    fn start_offsets(&self, topic: &str) -> Result<Vec<u64>, LogError> {
        Ok(vec![
            0;
            EmbeddedLog::topic(self, topic)?.partitions as usize
        ])
    }

    fn partition_for(&self, topic: &str, key: Option<&[u8]>) -> Result<u32, LogError> {
        EmbeddedLog::partition_for(self, topic, key)
    }

    fn append(
        &self,
        topic: &str,
        records: Vec<(u32, NewRecord)>,
    ) -> Result<Vec<AppendedRange>, LogError> {
        EmbeddedLog::append(self, topic, records)
    }

    fn append_request(
        &self,
        topic: &str,
        records: Vec<(u32, NewRecord)>,
        tag: Option<&RequestTag>,
    ) -> Result<Appended, LogError> {
        EmbeddedLog::append_request(self, topic, records, tag)
    }

    fn reader(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
    ) -> Result<Box<dyn LogReader>, LogError> {
        Ok(Box::new(EmbeddedLog::reader(self, topic, partition, from)?))
    }

    fn append_count(&self) -> u64 {
        *EmbeddedLog::subscribe(self).borrow()
    }

    fn wait_for_append(&self, seen: u64, timeout: Duration) -> u64 {
        EmbeddedLog::wait_for_append(self, seen, timeout)
    }
}

/// `kappa serve` options that choose the log.
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// The log: `embedded` (files in the data directory) or `kafka`.
    #[arg(long = "log", env = "KAPPA_LOG_BACKEND", default_value = "embedded",
          value_parser = ["embedded", "kafka"])]
    pub log: String,
    /// Kafka bootstrap servers, HOST:PORT[,HOST:PORT...] (with --log kafka).
    #[arg(long, env = "KAPPA_KAFKA_BOOTSTRAP", value_name = "HOST:PORT")]
    pub kafka_bootstrap: Option<String>,
    /// A librdkafka property for every Kafka client, KEY=VALUE; repeat it.
    /// Security settings go here: security.protocol=SASL_SSL,
    /// sasl.mechanism=PLAIN, sasl.username=..., ssl.ca.location=...
    #[arg(long = "kafka-option", value_name = "KEY=VALUE")]
    pub kafka_options: Vec<String>,
    /// Replication factor of topics created by `kappa topic create` on
    /// Kafka (-1: the broker's default).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub kafka_replication_factor: i32,
    /// Scale-out: the partitions this host processes, e.g. `0,1` (default:
    /// all). Hosts sharing a topic own disjoint sets; each keeps the views
    /// of its partitions.
    #[arg(long, value_delimiter = ',', value_name = "P,P,...")]
    pub kafka_partitions: Option<Vec<u32>>,
    /// Scale-out: another host sharing the topic (its API URL); keys not
    /// found here are asked of the peers. Repeat it for each peer.
    #[arg(long = "peer", value_name = "URL")]
    pub peers: Vec<String>,
}

impl LogArgs {
    /// The backend these options select, or why they are wrong.
    pub fn backend(&self) -> Result<LogBackend, String> {
        for peer in &self.peers {
            if !(peer.starts_with("http://") || peer.starts_with("https://")) {
                return Err(format!(
                    "--peer {peer:?} is not a URL such as http://10.0.0.2:7070"
                ));
            }
        }
        if self.log == "embedded" {
            if self.kafka_bootstrap.is_some()
                || !self.kafka_options.is_empty()
                || self.kafka_partitions.is_some()
            {
                return Err(
                    "--kafka-bootstrap, --kafka-option and --kafka-partitions need --log kafka \
                     (the log is embedded by default)"
                        .to_owned(),
                );
            }
            return Ok(LogBackend::Embedded);
        }
        let bootstrap = self
            .kafka_bootstrap
            .clone()
            .filter(|b| !b.trim().is_empty())
            .ok_or("--log kafka needs --kafka-bootstrap HOST:PORT (or KAPPA_KAFKA_BOOTSTRAP)")?;
        let mut config = crate::kafka::KafkaConfig::new(bootstrap);
        config.replication_factor = self.kafka_replication_factor;
        for option in &self.kafka_options {
            let (key, value) = option
                .split_once('=')
                .filter(|(k, _)| !k.trim().is_empty())
                .ok_or_else(|| format!("--kafka-option {option:?} is not KEY=VALUE"))?;
            config
                .options
                .push((key.trim().to_owned(), value.to_owned()));
        }
        Ok(LogBackend::Kafka(config))
    }
}
