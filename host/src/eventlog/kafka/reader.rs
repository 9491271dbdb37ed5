//! Reading one partition: [`KafkaReader`], a consumer of its own `assign`ed
//! to the partition at an explicit offset, and how its errors read.

use std::time::Duration;

use rdkafka::consumer::BaseConsumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};

use super::client::{Context, code_of};
use crate::eventlog::{LogError, LogReader, Record};

/// One partition of a topic, read by a consumer of its own.
pub(super) struct KafkaReader {
    consumer: BaseConsumer<Context>,
    topic: String,
    partition: u32,
    next: u64,
    /// A record read but left out of the previous batch (over `max_bytes`).
    pending: Option<Record>,
    bootstrap: String,
}

/// How long a read waits for the first record of a batch.
const FIRST_RECORD_WAIT: Duration = Duration::from_millis(500);

impl KafkaReader {
    /// A reader of `topic` partition `partition` from offset `from`, by a
    /// consumer already assigned to it there.
    pub(super) fn new(
        consumer: BaseConsumer<Context>,
        topic: &str,
        partition: u32,
        from: u64,
        bootstrap: &str,
    ) -> Self {
        KafkaReader {
            consumer,
            topic: topic.to_owned(),
            partition,
            next: from,
            pending: None,
            bootstrap: bootstrap.to_owned(),
        }
    }

    fn to_record(&self, m: &rdkafka::message::BorrowedMessage<'_>) -> Record {
        Record {
            partition: self.partition,
            offset: super::log_offset(m.offset()),
            timestamp: m.timestamp().to_millis().unwrap_or(0),
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            headers: m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            (
                                h.key.to_owned(),
                                h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    fn error(&self, e: &KafkaError) -> LogError {
        match code_of(e) {
            Some(RDKafkaErrorCode::AutoOffsetReset | RDKafkaErrorCode::OffsetOutOfRange) => {
                LogError::Backend(format!(
                    "offset {} of topic `{}` partition {} is no longer in Kafka at {} (deleted by \
                     retention before it was read): {e}",
                    self.next, self.topic, self.partition, self.bootstrap
                ))
            }
            // Anything else a consumer reports (connections, leaders,
            // coordinators, authorization being fixed) is retried rather
            // than failing the version; the status shows it meanwhile.
            _ => LogError::Unavailable(format!(
                "Kafka at {} is unavailable (reading topic `{}` partition {}: {e}); kappa \
                 retries when it is back",
                self.bootstrap, self.topic, self.partition
            )),
        }
    }
}

impl LogReader for KafkaReader {
    fn next_offset(&self) -> u64 {
        self.next
    }

    fn read_batch(
        &mut self,
        max_records: usize,
        max_bytes: usize,
        out: &mut Vec<Record>,
    ) -> Result<usize, LogError> {
        let mut count = 0;
        let mut bytes = 0usize;
        if max_records == 0 {
            return Ok(0);
        }
        if let Some(r) = self.pending.take() {
            bytes += r.value.len() + r.key.as_ref().map_or(0, Vec::len);
            self.next = r.offset + 1;
            out.push(r);
            count += 1;
        }
        while count < max_records {
            let wait = if count == 0 {
                FIRST_RECORD_WAIT
            } else {
                Duration::ZERO
            };
            let message = match self.consumer.poll(wait) {
                None => break,
                Some(Ok(m)) => m,
                // A transient error after some records: return those, the
                // next call reports it if it persists.
                Some(Err(e)) if count > 0 && self.error(&e).is_unavailable() => break,
                Some(Err(e)) => return Err(self.error(&e)),
            };
            if u64::try_from(message.offset()).map_or(true, |offset| offset < self.next) {
                // Kafka may return records before the requested offset
                // (compressed batches are fetched whole).
                continue;
            }
            let record = self.to_record(&message);
            let size = record.value.len() + record.key.as_ref().map_or(0, Vec::len);
            if count > 0 && bytes.saturating_add(size) > max_bytes {
                self.pending = Some(record);
                break;
            }
            bytes += size;
            self.next = record.offset + 1;
            out.push(record);
            count += 1;
        }
        Ok(count)
    }
}
