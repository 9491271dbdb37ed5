//! The embedded log ([`EmbeddedLog`], the `kappa-log` crate) as an
//! implementation of the log interface: every call is the crate's own, its
//! errors wrapped in the interface's [`LogError`].

use std::time::Duration;

use super::{
    Appended, AppendedRange, EventLog, LogError, LogReader, NewRecord, Record, RequestTag,
    TopicInfo,
};
use crate::log::{EmbeddedLog, PartitionReader};

impl LogReader for PartitionReader {
    fn next_offset(&self) -> u64 {
        PartitionReader::next_offset(self)
    }

    fn read_batch(
        &mut self,
        max_records: usize,
        max_bytes: usize,
        out: &mut Vec<Record>,
    ) -> Result<usize, LogError> {
        Ok(PartitionReader::read_batch(
            self,
            max_records,
            max_bytes,
            out,
        )?)
    }
}

impl EventLog for EmbeddedLog {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    fn create_topic(&self, name: &str, partitions: u32) -> Result<TopicInfo, LogError> {
        Ok(EmbeddedLog::create_topic(self, name, partitions)?)
    }

    fn topics(&self) -> Result<Vec<TopicInfo>, LogError> {
        Ok(EmbeddedLog::topics(self))
    }

    fn topic(&self, name: &str) -> Result<TopicInfo, LogError> {
        Ok(EmbeddedLog::topic(self, name)?)
    }

    fn partitions(&self, topic: &str) -> Result<u32, LogError> {
        Ok(EmbeddedLog::topic(self, topic)?.partitions)
    }

    fn end_offsets(&self, topic: &str) -> Result<Vec<u64>, LogError> {
        Ok(EmbeddedLog::end_offsets(self, topic)?)
    }

    fn start_offsets(&self, topic: &str) -> Result<Vec<u64>, LogError> {
        Ok(vec![
            0;
            EmbeddedLog::topic(self, topic)?.partitions as usize
        ])
    }

    fn partition_for(&self, topic: &str, key: Option<&[u8]>) -> Result<u32, LogError> {
        Ok(EmbeddedLog::partition_for(self, topic, key)?)
    }

    fn append(
        &self,
        topic: &str,
        records: Vec<(u32, NewRecord)>,
    ) -> Result<Vec<AppendedRange>, LogError> {
        Ok(EmbeddedLog::append(self, topic, records)?)
    }

    fn append_request(
        &self,
        topic: &str,
        records: Vec<(u32, NewRecord)>,
        tag: Option<&RequestTag>,
    ) -> Result<Appended, LogError> {
        Ok(EmbeddedLog::append_request(self, topic, records, tag)?)
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
