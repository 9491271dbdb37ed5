//! The host's side of the event log: creating and listing topics, appending
//! events (checked, durable, all or nothing, optionally idempotent) and
//! reading them back.

use crate::error::{Error, Result};
use crate::log::{AppendedRange, NewRecord};
use crate::model::{ProduceReport, TopicStatus};

use super::Host;

impl Host {
    /// Creates a topic.
    pub fn create_topic(&self, name: &str, partitions: u32) -> Result<TopicStatus> {
        Ok(self.log.create_topic(name, partitions)?.into())
    }

    /// Every topic with its end offsets.
    pub fn topics(&self) -> Result<Vec<TopicStatus>> {
        Ok(self.log.topics()?.into_iter().map(Into::into).collect())
    }

    /// Appends events to a topic, durably, all or nothing. Each event goes to
    /// its explicit partition, or the key's partition, or round-robin.
    pub fn produce(
        &self,
        topic: &str,
        events: Vec<(Option<u32>, NewRecord)>,
    ) -> Result<ProduceReport> {
        self.produce_request(topic, events, None)
    }

    /// [`produce`](Self::produce) with an optional request id: a request
    /// whose id was stored before is not stored again, and answers with the
    /// offsets it got then (`duplicate` set). Request ids need the embedded
    /// log ([`Error::Unsupported`] on Kafka).
    pub fn produce_request(
        &self,
        topic: &str,
        events: Vec<(Option<u32>, NewRecord)>,
        request: Option<crate::log::RequestTag>,
    ) -> Result<ProduceReport> {
        if request.is_some() && self.log.backend() != "embedded" {
            return Err(Error::Unsupported(format!(
                "request ids (idempotent produce) need the embedded log; this host runs on {}, \
                 where a request is sent without one (see docs/kafka.md); nothing was stored",
                self.log.backend()
            )));
        }
        let partitions = self.log.partitions(topic)?;
        let mut batch = Vec::with_capacity(events.len());
        for (i, (partition, record)) in events.into_iter().enumerate() {
            let size = record.value.len()
                + record.key.as_ref().map_or(0, Vec::len)
                + record
                    .headers
                    .iter()
                    .map(|(n, v)| n.len() + v.len())
                    .sum::<usize>();
            if size > self.options.max_event_bytes {
                return Err(Error::TooLarge(format!(
                    "event {} of the request (counting from 1) is {size} bytes, over the limit \
                     of {} bytes; nothing was appended",
                    i + 1,
                    self.options.max_event_bytes
                )));
            }
            let partition = match partition {
                Some(p) if p >= partitions => {
                    return Err(Error::invalid(format!(
                        "event {} of the request (counting from 1) names partition {p}, but \
                         topic `{topic}` has {} partitions (0..{}); nothing was appended",
                        i + 1,
                        partitions,
                        partitions - 1
                    )));
                }
                Some(p) => p,
                None => self.log.partition_for(topic, record.key.as_deref())?,
            };
            batch.push((partition, record));
        }
        let request_id = request.as_ref().map(|t| t.id.clone());
        let appended = self.log.append_request(topic, batch, request.as_ref())?;
        let ranges: Vec<AppendedRange> = appended.ranges;
        if !appended.duplicate {
            self.metrics
                .appended(topic, ranges.iter().map(|r| r.count).sum());
        }
        Ok(ProduceReport {
            topic: topic.to_owned(),
            appended: ranges.iter().map(|r| r.count).sum(),
            partitions: ranges.into_iter().map(Into::into).collect(),
            request_id,
            duplicate: appended.duplicate,
        })
    }

    /// Reads up to `limit` events of one partition from offset `from`.
    pub fn consume(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        limit: usize,
    ) -> Result<crate::model::ConsumePage> {
        let end = self
            .log
            .end_offsets(topic)?
            .get(partition as usize)
            .copied()
            .ok_or_else(|| {
                Error::not_found(format!("topic `{topic}` has no partition {partition}"))
            })?;
        let start = self
            .log
            .start_offsets(topic)?
            .get(partition as usize)
            .copied()
            .unwrap_or(0);
        let mut reader = self
            .log
            .reader(topic, partition, from.max(start).min(end))?;
        let mut records = Vec::new();
        // A read may come back empty before the end on a remote log (Kafka
        // still fetching), so a few empty reads are allowed.
        let mut empty_reads = 0;
        while records.len() < limit && reader.next_offset() < end && empty_reads < 10 {
            let before = records.len();
            reader.read_batch(limit - records.len(), 4 << 20, &mut records)?;
            if records.len() == before {
                empty_reads += 1;
            }
        }
        Ok(crate::model::ConsumePage {
            topic: topic.to_owned(),
            partition,
            next_offset: reader.next_offset(),
            end_offset: end,
            events: records.into_iter().map(Into::into).collect(),
        })
    }
}
