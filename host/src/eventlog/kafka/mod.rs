//! The Kafka log backend: [`KafkaLog`] keeps a host's events in Kafka topics
//! (through librdkafka, via the `rdkafka` crate) behind the same
//! [`EventLog`] interface as the embedded log (`super::embedded`).
//!
//! How it maps onto Kafka, and why:
//! - Reading: every reader is its own consumer, `assign`ed to one partition
//!   at an explicit offset. No consumer group, no offset commits: each
//!   version's offsets live in its view and are committed in the same
//!   transaction as the view's rows, so the effect on a view is exactly once
//!   whatever happens to the broker or the host. `auto.offset.reset=error`
//!   makes a reader fail loudly, rather than skip, when retention deleted
//!   events a version had not read yet.
//! - Start: a new version starts at each partition's low watermark (the
//!   earliest retained offset), the promoted one simply keeps tailing.
//! - Writing: the host picks the partition with Kafka's default partitioner
//!   (murmur2, as the Java client and kafka-python do), so our events and
//!   an outside producer's land alike. `acks=all` and idempotence are on, and
//!   `append` returns only once Kafka acknowledged every record. Without
//!   Kafka transactions a batch cannot be all-or-nothing: if some records
//!   fail, the error says how many were stored, and a retry may store
//!   those twice. Request ids (idempotent produce) are refused by the host
//!   on this backend for the same reason (docs/kafka.md).
//! - Broker down: calls fail with [`LogError::Unavailable`] naming the
//!   bootstrap servers; librdkafka reconnects by itself, and callers retry.
//!
//! Files: this one ([`KafkaLog`]: topics, offsets, appends), `client.rs`
//! ([`KafkaConfig`], the client context, transient errors) and `reader.rs`
//! (a partition's consumer).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

mod client;
mod reader;

pub use client::KafkaConfig;
use client::{Context, Delivered, code_of, meta_client, transient};
use reader::KafkaReader;

use super::{
    AppendedRange, EventLog, LogError, LogReader, ModelError, NewRecord, TopicInfo,
    partition_for_key,
};

/// The log on a Kafka cluster. Share it as `Arc<KafkaLog>`.
pub struct KafkaLog {
    config: KafkaConfig,
    producer: ThreadedProducer<Context>,
    /// Metadata and watermark requests.
    /// Replaced by a fresh client after a failure: librdkafka can take
    /// minutes to query a restarted broker's offsets again with the old one.
    meta: RwLock<Arc<BaseConsumer<Context>>>,
    admin: AdminClient<Context>,
    /// Partition counts seen, so that hot paths need no metadata request.
    partitions: RwLock<HashMap<String, u32>>,
    round_robin: Mutex<HashMap<String, u32>>,
    /// Appends through this host, to wake its own workers early.
    appends: Mutex<u64>,
    appended: Condvar,
    /// How long `append` waits for acknowledgements.
    delivery_wait: Duration,
    /// When and why offsets could last not be read: for a second after a
    /// failure, offset requests fail at once instead of each waiting for
    /// `request_timeout`, so status pages stay fast while Kafka is down.
    down: Mutex<Option<(Instant, String)>>,
}

/// How long a failed offset request is reported without asking again.
const DOWN_MEMORY: Duration = Duration::from_secs(1);

impl fmt::Debug for KafkaLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaLog")
            .field("bootstrap", &self.config.bootstrap)
            .finish_non_exhaustive()
    }
}

impl KafkaLog {
    /// Connects to the cluster (lazily: clients are created now, connections
    /// are made on first use, so a host starts even while Kafka is down).
    pub fn open(config: KafkaConfig) -> Result<Self, LogError> {
        let invalid = |what: &str, e: KafkaError| {
            LogError::Backend(format!(
                "cannot create the Kafka {what} for {}: {e} (check --kafka-option values)",
                config.bootstrap
            ))
        };
        let producer_config = config.client(&[
            ("acks", "all"),
            ("enable.idempotence", "true"),
            ("message.timeout.ms", "10000"),
            ("linger.ms", "2"),
        ]);
        let delivery_wait = producer_config
            .get("message.timeout.ms")
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(Duration::from_secs(10), Duration::from_millis)
            + Duration::from_secs(5);
        let producer = ThreadedProducer::from_config_and_context(&producer_config, Context)
            .map_err(|e| invalid("producer", e))?;
        let meta = Arc::new(meta_client(&config).map_err(|e| invalid("metadata client", e))?);
        let admin = AdminClient::from_config_and_context(&config.client(&[]), Context)
            .map_err(|e| invalid("admin client", e))?;
        Ok(KafkaLog {
            config,
            producer,
            meta: RwLock::new(meta),
            admin,
            partitions: RwLock::new(HashMap::new()),
            round_robin: Mutex::new(HashMap::new()),
            appends: Mutex::new(0),
            appended: Condvar::new(),
            delivery_wait,
            down: Mutex::new(None),
        })
    }

    /// The bootstrap servers, for messages.
    pub fn bootstrap(&self) -> &str {
        &self.config.bootstrap
    }

    fn error(&self, doing: &str, e: &KafkaError) -> LogError {
        match code_of(e) {
            Some(code) if transient(code) => LogError::Unavailable(format!(
                "Kafka at {} is unavailable ({doing}: {e}); kappa retries when it is back",
                self.config.bootstrap
            )),
            _ => LogError::Backend(format!(
                "Kafka at {} refused {doing}: {e}",
                self.config.bootstrap
            )),
        }
    }

    /// Partition count of `topic`, from the cache or the cluster.
    fn partition_count(&self, topic: &str) -> Result<u32, LogError> {
        if let Some(&n) = self.partitions.read().get(topic) {
            return Ok(n);
        }
        let n = self.fetch_partition_count(topic)?;
        self.partitions.write().insert(topic.to_owned(), n);
        Ok(n)
    }

    #[expect(
        clippy::cast_possible_truncation,
        reason = "Kafka counts a topic's partitions in an i32"
    )]
    fn fetch_partition_count(&self, topic: &str) -> Result<u32, LogError> {
        let metadata = self
            .meta()
            .fetch_metadata(Some(topic), self.config.request_timeout)
            .map_err(|e| self.error(&format!("reading the metadata of topic `{topic}`"), &e))?;
        let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
            return Err(LogError::unknown_topic(topic));
        };
        match t.error().map(RDKafkaErrorCode::from) {
            Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
                return Err(LogError::unknown_topic(topic));
            }
            Some(code) if transient(code) => {
                return Err(LogError::Unavailable(format!(
                    "Kafka at {} cannot serve topic `{topic}` right now: {code}",
                    self.config.bootstrap
                )));
            }
            Some(code) => {
                return Err(LogError::Backend(format!(
                    "Kafka at {} refused the metadata of topic `{topic}`: {code}",
                    self.config.bootstrap
                )));
            }
            None => {}
        }
        match t.partitions().len() {
            0 => Err(LogError::unknown_topic(topic)),
            n => Ok(n as u32),
        }
    }

    fn watermarks(&self, topic: &str) -> Result<Vec<(u64, u64)>, LogError> {
        if let Some((at, message)) = &*self.down.lock()
            && at.elapsed() < DOWN_MEMORY
        {
            return Err(LogError::Unavailable(message.clone()));
        }
        let result = self.fetch_watermarks(topic);
        let mut down = self.down.lock();
        match &result {
            Err(e @ LogError::Unavailable(_)) => {
                *down = Some((Instant::now(), e.to_string()));
                match meta_client(&self.config) {
                    Ok(fresh) => *self.meta.write() = Arc::new(fresh),
                    Err(e) => tracing::warn!("recreating the Kafka metadata client: {e}"),
                }
            }
            _ => *down = None,
        }
        result
    }

    fn fetch_watermarks(&self, topic: &str) -> Result<Vec<(u64, u64)>, LogError> {
        let n = self.partition_count(topic)?;
        (0..n)
            .map(|p| {
                self.meta()
                    .fetch_watermarks(topic, kafka_partition(p), self.config.request_timeout)
                    .map(|(low, high)| (log_offset(low), log_offset(high)))
                    .map_err(|e| {
                        self.error(
                            &format!("reading the offsets of topic `{topic}` partition {p}"),
                            &e,
                        )
                    })
            })
            .collect()
    }
}

impl KafkaLog {
    fn meta(&self) -> Arc<BaseConsumer<Context>> {
        self.meta.read().clone()
    }
}

impl EventLog for KafkaLog {
    fn backend(&self) -> &'static str {
        "kafka"
    }

    fn create_topic(&self, name: &str, partitions: u32) -> Result<TopicInfo, LogError> {
        if name.is_empty()
            || name.len() > 249
            || name == "."
            || name == ".."
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(LogError::Log(ModelError::InvalidTopicName {
                name: name.to_owned(),
                reason: "a Kafka topic name is 1 to 249 characters of ASCII letters, digits, \
                         '.', '_' and '-', other than \".\" and \"..\""
                    .to_owned(),
            }));
        }
        if !(1..=1024).contains(&partitions) {
            return Err(LogError::Log(ModelError::InvalidPartitionCount(partitions)));
        }
        let topic = NewTopic::new(
            name,
            kafka_partition(partitions),
            TopicReplication::Fixed(self.config.replication_factor),
        );
        let options = AdminOptions::new()
            .request_timeout(Some(self.config.request_timeout))
            .operation_timeout(Some(self.config.request_timeout));
        // The admin client answers with a future, completed by its own
        // thread; a private current-thread runtime on a fresh thread waits
        // for it whether or not the caller runs inside a tokio runtime.
        let admin = &self.admin;
        let outcome = std::thread::scope(|s| {
            s.spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .build()
                    .map_err(|e| LogError::Backend(format!("starting a runtime: {e}")))
                    .map(|rt| rt.block_on(admin.create_topics([&topic], &options)))
            })
            .join()
        })
        .map_err(|_| LogError::Backend("creating the topic panicked".to_owned()))??;
        let results = outcome.map_err(|e| self.error(&format!("creating topic `{name}`"), &e))?;
        for result in results {
            match result {
                Ok(_) => {}
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {
                    return Err(LogError::Log(ModelError::TopicExists(name.to_owned())));
                }
                Err((_, code)) => {
                    return Err(LogError::Backend(format!(
                        "Kafka at {} refused to create topic `{name}` with {partitions} \
                         partitions: {code}",
                        self.config.bootstrap
                    )));
                }
            }
        }
        // The topic takes a moment to show up in every broker's metadata.
        let deadline = Instant::now() + self.config.request_timeout;
        loop {
            match self.fetch_partition_count(name) {
                Ok(n) if n == partitions => break,
                Ok(_)
                | Err(LogError::Log(ModelError::UnknownTopic(_)) | LogError::Unavailable(_))
                    if Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Ok(n) => {
                    return Err(LogError::Backend(format!(
                        "topic `{name}` was created but Kafka reports {n} partitions"
                    )));
                }
                Err(e) => return Err(e),
            }
        }
        self.partitions.write().insert(name.to_owned(), partitions);
        self.topic(name)
    }

    fn topics(&self) -> Result<Vec<TopicInfo>, LogError> {
        let metadata = self
            .meta()
            .fetch_metadata(None, self.config.request_timeout)
            .map_err(|e| self.error("listing topics", &e))?;
        let mut names: Vec<String> = metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none() && !t.name().starts_with("__"))
            .map(|t| t.name().to_owned())
            .collect();
        names.sort();
        names.iter().map(|n| self.topic(n)).collect()
    }

    #[expect(
        clippy::cast_possible_truncation,
        reason = "one end offset per partition, and a u32 counts them"
    )]
    fn topic(&self, name: &str) -> Result<TopicInfo, LogError> {
        let end_offsets = self.end_offsets(name)?;
        Ok(TopicInfo {
            name: name.to_owned(),
            partitions: end_offsets.len() as u32,
            end_offsets,
        })
    }

    fn partitions(&self, topic: &str) -> Result<u32, LogError> {
        self.partition_count(topic)
    }

    fn end_offsets(&self, topic: &str) -> Result<Vec<u64>, LogError> {
        Ok(self.watermarks(topic)?.into_iter().map(|w| w.1).collect())
    }

    fn start_offsets(&self, topic: &str) -> Result<Vec<u64>, LogError> {
        Ok(self.watermarks(topic)?.into_iter().map(|w| w.0).collect())
    }

    fn partition_for(&self, topic: &str, key: Option<&[u8]>) -> Result<u32, LogError> {
        let n = self.partition_count(topic)?;
        Ok(match key {
            Some(key) => partition_for_key(key, n),
            None => {
                let mut rr = self.round_robin.lock();
                let next = rr.entry(topic.to_owned()).or_insert(0);
                let p = *next % n;
                *next = next.wrapping_add(1);
                p
            }
        })
    }

    fn append(
        &self,
        topic: &str,
        records: Vec<(u32, NewRecord)>,
    ) -> Result<Vec<AppendedRange>, LogError> {
        let partitions = self.partition_count(topic)?;
        if let Some(&(partition, _)) = records.iter().find(|(p, _)| *p >= partitions) {
            return Err(LogError::unknown_partition(topic, partition, partitions));
        }
        let total = records.len();
        let deadline = Instant::now() + self.delivery_wait;
        let (tx, rx) = mpsc::channel::<Delivered>();
        let mut sent = 0;
        let mut send_error = None;
        'records: for (i, (partition, r)) in records.iter().enumerate() {
            let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
            for (name, value) in &r.headers {
                headers = headers.insert(Header {
                    key: name.as_str(),
                    value: Some(value.as_slice()),
                });
            }
            let mut record =
                BaseRecord::<[u8], [u8], _>::with_opaque_to(topic, Box::new((i, tx.clone())))
                    .partition(kafka_partition(*partition))
                    .payload(r.value.as_slice())
                    .timestamp(r.timestamp)
                    .headers(headers);
            if let Some(key) = &r.key {
                record = record.key(key.as_slice());
            }
            loop {
                match self.producer.send(record) {
                    Ok(()) => {
                        sent += 1;
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                        if Instant::now() < deadline =>
                    {
                        record = back;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err((e, _)) => {
                        send_error = Some(e);
                        break 'records;
                    }
                }
            }
        }
        drop(tx);
        let mut offsets: Vec<Option<i64>> = vec![None; total];
        let mut first_error: Option<KafkaError> = send_error;
        let mut received = 0;
        while received < sent {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((i, Ok(offset))) => {
                    offsets[i] = Some(offset);
                    received += 1;
                }
                Ok((_, Err(e))) => {
                    first_error.get_or_insert(e);
                    received += 1;
                }
                Err(_) => break,
            }
        }
        let stored = offsets.iter().filter(|o| o.is_some()).count();
        if stored < total {
            let cause = match &first_error {
                Some(e) => e.to_string(),
                None => "no acknowledgement in time".to_owned(),
            };
            let message = format!(
                "Kafka at {} is unavailable or refused the events: it did not acknowledge {} of \
                 {total} events ({cause}); {stored} were stored, so retrying the whole batch may \
                 store those twice",
                self.config.bootstrap,
                total - stored,
            );
            let transient_cause = first_error.as_ref().and_then(code_of).is_none_or(transient);
            return Err(if transient_cause {
                LogError::Unavailable(message)
            } else {
                LogError::Backend(message)
            });
        }
        let mut ranges: BTreeMap<u32, AppendedRange> = BTreeMap::new();
        for ((partition, _), offset) in records.iter().zip(offsets) {
            let offset = log_offset(offset.unwrap_or_default());
            let range = ranges.entry(*partition).or_insert(AppendedRange {
                partition: *partition,
                first_offset: offset,
                last_offset: offset,
                count: 0,
            });
            range.first_offset = range.first_offset.min(offset);
            range.last_offset = range.last_offset.max(offset);
            range.count += 1;
        }
        let mut count = self.appends.lock();
        *count += 1;
        self.appended.notify_all();
        Ok(ranges.into_values().collect())
    }

    fn reader(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
    ) -> Result<Box<dyn LogReader>, LogError> {
        let partitions = self.partition_count(topic)?;
        if partition >= partitions {
            return Err(LogError::unknown_partition(topic, partition, partitions));
        }
        let consumer: BaseConsumer<Context> = BaseConsumer::from_config_and_context(
            &self.config.client(&[
                // librdkafka wants a group for `assign`, but the reader
                // never joins it (no `subscribe`) and never commits to it:
                // offsets are kept in the views.
                ("group.id", "kappa-reader"),
                ("enable.auto.commit", "false"),
                ("enable.auto.offset.store", "false"),
                ("auto.offset.reset", "error"),
                ("enable.partition.eof", "false"),
                ("fetch.wait.max.ms", "100"),
                ("queued.max.messages.kbytes", "16384"),
                ("allow.auto.create.topics", "false"),
            ]),
            Context,
        )
        .map_err(|e| self.error("creating a consumer", &e))?;
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(
                topic,
                kafka_partition(partition),
                // Kafka offsets are i64s: a start beyond them is past the
                // end, as i64::MAX is.
                Offset::Offset(i64::try_from(from).unwrap_or(i64::MAX)),
            )
            .map_err(|e| self.error("assigning a partition", &e))?;
        consumer
            .assign(&assignment)
            .map_err(|e| self.error("assigning a partition", &e))?;
        Ok(Box::new(KafkaReader::new(
            consumer,
            topic,
            partition,
            from,
            &self.config.bootstrap,
        )))
    }

    fn append_count(&self) -> u64 {
        *self.appends.lock()
    }

    fn wait_for_append(&self, seen: u64, timeout: Duration) -> u64 {
        let mut count = self.appends.lock();
        if *count == seen {
            let _ = self.appended.wait_for(&mut count, timeout);
        }
        *count
    }
}

/// A partition number or count as Kafka's client takes it.
#[expect(
    clippy::cast_possible_wrap,
    reason = "counts are at most 1024 and numbers are checked against the topic's count, which Kafka keeps in an i32"
)]
fn kafka_partition(p: u32) -> i32 {
    p as i32
}

/// An offset as Kafka reports it (an `i64`, negative for none) as the
/// log's: a negative one is 0.
pub(crate) fn log_offset(offset: i64) -> u64 {
    u64::try_from(offset).unwrap_or(0)
}
