//! Several input topics: partition P of every topic of a version, merged
//! into one deterministic sequence of events ([`Merge`]), and where the
//! next offset of each topic is kept.
//!
//! Order. The merge delivers the events of partition P of every topic in
//! the order of (timestamp, topic index, offset) of the next event of each
//! topic (the head of each topic's buffer): an event is delivered only when
//! every other topic's partition has a next event buffered, so the order is
//! known, or is at its end of the log, in which case the merge does not wait
//! for it (Kafka Streams' `max.task.idle.ms = 0`). Over a log whose events
//! are all there (a replay), the sequence depends on the log alone. An event
//! that arrives later, in a topic that was at its end, with an earlier
//! timestamp than an event of another topic already delivered, is *late*:
//! it is delivered when it arrives, and counted, so that status shows when
//! live interleaving differed from the order a replay gives.
//!
//! Offsets. Topic 0's next offset of each partition is the store's own
//! offset of the shard (progress, status and the diff barrier read it as
//! for a version of one topic). Topic `i >= 1`'s is a host row of the shard,
//! [`Keys::offset`], written with every batch's rows ([`offset_rows`]), so
//! that it is committed atomically with them: exactly-once per topic, and a
//! restart resumes every topic exactly where its view left off.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::eventlog::{EventLog, LogError, LogReader};
use crate::log::Record;
use crate::runtime::timers::Keys;
use crate::store::Writes;

/// One topic's partition, as the merge reads it.
struct Input {
    /// The next offset to deliver: everything before it is in the view.
    next: u64,
    /// The offset after the last one read from the log (buffered or
    /// delivered).
    read: u64,
    /// A reader positioned at `read`, kept from batch to batch.
    reader: Option<Box<dyn LogReader>>,
    /// Events read and not yet delivered, from `next` on.
    buf: VecDeque<Record>,
    /// The furthest (timestamp, topic index) of the events of other topics
    /// delivered while this topic was at its end and not waited for, since
    /// this topic last delivered an event after it: an event of this topic
    /// before it in the order is late.
    passed: Option<(i64, usize)>,
    /// When the merge first found this topic at its end while another had
    /// an event to deliver (with `--topic-idle-ms`), until it reads an event.
    idle_since: Option<Instant>,
    /// Whether the merge waited out `--topic-idle-ms` for this topic and
    /// goes on without it, until it reads an event.
    waived: bool,
}

/// Partition P of every topic of a version (see the module documentation).
pub(super) struct Merge {
    inputs: Vec<Input>,
}

/// Events the merge delivers, in order, with their topics.
pub(super) struct Merged {
    pub(super) events: Vec<Record>,
    /// The topic index of each event.
    pub(super) topics: Vec<u32>,
    /// How many of them are late.
    pub(super) late: u64,
}

/// Why the merge could not read a topic.
pub(super) enum FillError {
    /// The log cannot be reached right now.
    Unavailable(LogError),
    /// Reading topic index `topic` at `offset` failed.
    Failed {
        topic: u32,
        offset: u64,
        error: LogError,
    },
}

impl Merge {
    /// A merge starting at `nexts` (the next offset of each topic).
    pub(super) fn new(nexts: &[u64]) -> Self {
        Merge {
            inputs: nexts
                .iter()
                .map(|&next| Input {
                    next,
                    read: next,
                    reader: None,
                    buf: VecDeque::new(),
                    passed: None,
                    idle_since: None,
                    waived: false,
                })
                .collect(),
        }
    }

    /// The next offset of each topic.
    pub(super) fn nexts(&self) -> Vec<u64> {
        self.inputs.iter().map(|i| i.next).collect()
    }

    /// Whether every topic's partition is at `ends` (by topic, then
    /// partition) with nothing buffered.
    pub(super) fn at_end(&self, ends: &[Vec<u64>], partition: usize) -> bool {
        self.inputs
            .iter()
            .zip(ends)
            .all(|(i, e)| i.buf.is_empty() && e.get(partition).is_none_or(|e| i.next >= *e))
    }

    /// Reads up to `max` events (about `max_bytes`) of each topic whose
    /// buffer is empty and whose partition has events below `ends`.
    pub(super) fn fill(
        &mut self,
        log: &dyn EventLog,
        topics: &[String],
        partition: u32,
        ends: &[Vec<u64>],
        (max, max_bytes): (usize, usize),
    ) -> Result<(), FillError> {
        for ((t, input), topic) in (0u32..).zip(&mut self.inputs).zip(topics) {
            let end = ends
                .get(t as usize)
                .and_then(|e| e.get(partition as usize))
                .copied()
                .unwrap_or(0);
            if !input.buf.is_empty() || input.read >= end {
                continue;
            }
            let failed = |error: LogError| FillError::Failed {
                topic: t,
                offset: input.read,
                error,
            };
            let reader = match &mut input.reader {
                Some(r) if r.next_offset() == input.read => r,
                slot => match log.reader(topic, partition, input.read) {
                    Ok(r) => slot.insert(r),
                    Err(e) if e.is_unavailable() => return Err(FillError::Unavailable(e)),
                    Err(e) => return Err(failed(e)),
                },
            };
            let mut out = Vec::new();
            // Never past the ends the merge decides by: an event appended
            // since is read with the other topics' events of its moment.
            let want = usize::try_from(end - input.read)
                .unwrap_or(usize::MAX)
                .min(max);
            if let Err(e) = reader.read_batch(want, max_bytes, &mut out) {
                if e.is_unavailable() {
                    input.reader = None;
                    return Err(FillError::Unavailable(e));
                }
                return Err(failed(e));
            }
            input.read = reader.next_offset();
            // Offsets may have gaps on Kafka, so a read may still pass them.
            if out.last().is_some_and(|r| r.offset >= end) {
                out.retain(|r| r.offset < end);
                input.read = out.last().map_or(end, |r| r.offset + 1);
                input.reader = None;
            }
            if !out.is_empty() {
                input.idle_since = None;
                input.waived = false;
            }
            input.buf.extend(out);
        }
        Ok(())
    }

    /// Takes up to `max` events in merge order, none of topic `t` at or past
    /// `holds[t]` (the diff barrier; `None`: no hold). Stops before an event
    /// whose place in the order is not known yet: when a topic has nothing
    /// buffered but more in the log below `ends`, or, for `idle_wait`, when
    /// a topic at its end has not been waited for that long yet.
    pub(super) fn take(
        &mut self,
        ends: &[Vec<u64>],
        (partition, holds): (usize, &[Option<u64>]),
        max: usize,
        idle_wait: Duration,
    ) -> Merged {
        let mut merged = Merged {
            events: Vec::new(),
            topics: Vec::new(),
            late: 0,
        };
        while merged.events.len() < max {
            let mut best: Option<(i64, usize, u64)> = None;
            let mut idle = Vec::new();
            for (t, input) in self.inputs.iter().enumerate() {
                match input.buf.front() {
                    Some(r) => {
                        let head = (r.timestamp, t, r.offset);
                        if best.is_none_or(|b| head < b) {
                            best = Some(head);
                        }
                    }
                    None => {
                        let end = ends.get(t).and_then(|e| e.get(partition)).copied();
                        if end.is_some_and(|end| input.read < end) {
                            // Its next event is in the log, not read yet.
                            return merged;
                        }
                        // At its end: not waited for.
                        idle.push(t);
                    }
                }
            }
            let Some((timestamp, t, offset)) = best else {
                return merged;
            };
            if !idle_wait.is_zero() && self.still_waiting(&idle, idle_wait) {
                return merged;
            }
            if holds.get(t).copied().flatten().is_some_and(|h| offset >= h) {
                return merged;
            }
            let input = &mut self.inputs[t];
            let Some(event) = input.buf.pop_front() else {
                return merged;
            };
            input.next = offset + 1;
            match input.passed {
                Some(passed) if (timestamp, t) < passed => merged.late += 1,
                _ => input.passed = None,
            }
            for u in idle {
                let passed = &mut self.inputs[u].passed;
                *passed = (*passed).max(Some((timestamp, t)));
            }
            merged.events.push(event);
            #[expect(
                clippy::cast_possible_truncation,
                reason = "`t` indexes the version's topics, which a u32 counts"
            )]
            merged.topics.push(t as u32);
        }
        merged
    }

    /// Whether one of the topics `idle` (at their end) has been waited for
    /// less than `wait` since the merge first found it so.
    fn still_waiting(&mut self, idle: &[usize], wait: Duration) -> bool {
        let now = Instant::now();
        let mut waiting = false;
        for &u in idle {
            let input = &mut self.inputs[u];
            if input.waived {
                continue;
            }
            let since = *input.idle_since.get_or_insert(now);
            if now.duration_since(since) < wait {
                waiting = true;
            } else {
                input.waived = true;
            }
        }
        waiting
    }
}

/// Adds to `writes` the host rows of the next offsets `nexts` of topics 1
/// on in `partition`'s shard (topic 0's is the store's offset).
pub(super) fn offset_rows(partition: u32, nexts: &[u64], writes: &mut Writes) {
    let keys = Keys::new(partition);
    for (t, next) in (0u32..).zip(nexts).skip(1) {
        writes.insert(keys.offset(t), Some(next.to_be_bytes().to_vec()));
    }
}

/// The offset a row of [`offset_rows`] holds, if it is one.
pub(super) fn read_offset(value: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(value.try_into().ok()?))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;

    fn record(offset: u64, timestamp: i64) -> Record {
        Record {
            partition: 0,
            offset,
            timestamp,
            key: None,
            value: Vec::new(),
            headers: Vec::new(),
        }
    }

    fn merge_of(topics: &[&[i64]]) -> Merge {
        let mut merge = Merge::new(&vec![0; topics.len()]);
        for (input, times) in merge.inputs.iter_mut().zip(topics) {
            input.buf = (0u64..)
                .zip(times.iter())
                .map(|(o, t)| record(o, *t))
                .collect();
            input.read = times.len() as u64;
        }
        merge
    }

    fn order(m: &Merged) -> Vec<(u32, u64)> {
        m.topics
            .iter()
            .zip(&m.events)
            .map(|(t, e)| (*t, e.offset))
            .collect()
    }

    #[test]
    fn events_merge_by_timestamp_then_topic_then_offset() {
        let mut merge = merge_of(&[&[10, 20, 20], &[5, 20, 30]]);
        let ends = vec![vec![3], vec![3]];
        let m = merge.take(&ends, (0, &[]), 100, Duration::ZERO);
        assert_eq!(order(&m), [(1, 0), (0, 0), (0, 1), (0, 2), (1, 1), (1, 2)]);
        assert_eq!(m.late, 0);
        assert_eq!(merge.nexts(), [3, 3]);
        assert!(merge.at_end(&ends, 0));
    }

    #[test]
    fn the_merge_waits_for_a_topic_with_events_not_read_yet_but_not_for_one_at_its_end() {
        let mut merge = merge_of(&[&[10, 20], &[]]);
        // Topic 1 has an event in the log not read yet: nothing is known.
        let m = merge.take(&[vec![2], vec![1]], (0, &[]), 100, Duration::ZERO);
        assert!(m.events.is_empty());
        // Topic 1 is at its end: topic 0 goes on.
        let m = merge.take(&[vec![2], vec![0]], (0, &[]), 100, Duration::ZERO);
        assert_eq!(order(&m), [(0, 0), (0, 1)]);
        // Events of topic 1 arriving now with an earlier timestamp than 20
        // are late; one after it is not, nor one going back in time within
        // topic 1 after that.
        merge.inputs[1]
            .buf
            .extend([record(0, 15), record(1, 18), record(2, 25), record(3, 5)]);
        merge.inputs[1].read = 4;
        let m = merge.take(&[vec![2], vec![4]], (0, &[]), 100, Duration::ZERO);
        assert_eq!(order(&m), [(1, 0), (1, 1), (1, 2), (1, 3)]);
        assert_eq!(m.late, 2);
        // Disorder within a topic whose events are all there is not late.
        let mut merge = merge_of(&[&[10, 30, 12], &[20, 25]]);
        let m = merge.take(&[vec![3], vec![2]], (0, &[]), 100, Duration::ZERO);
        assert_eq!(m.late, 0);
    }

    #[test]
    fn with_an_idle_wait_the_merge_waits_for_a_topic_at_its_end_then_goes_on() {
        let mut merge = merge_of(&[&[10, 20], &[]]);
        let ends = [vec![2], vec![0]];
        let wait = Duration::from_secs(3600);
        assert!(merge.take(&ends, (0, &[]), 100, wait).events.is_empty());
        // Once waited out it goes on; an event read resets the wait.
        merge.inputs[1].idle_since = Instant::now().checked_sub(wait);
        assert_eq!(order(&merge.take(&ends, (0, &[]), 1, wait)), [(0, 0)]);
        assert!(merge.inputs[1].waived);
        assert_eq!(order(&merge.take(&ends, (0, &[]), 1, wait)), [(0, 1)]);
    }

    #[test]
    fn a_hold_stops_the_merge_at_the_first_held_event_in_order() {
        let mut merge = merge_of(&[&[10, 30], &[20, 40]]);
        let ends = vec![vec![2], vec![2]];
        let m = merge.take(&ends, (0, &[Some(1), None]), 100, Duration::ZERO);
        // (0,1) at 30 is held, so (1,1) at 40, after it, is not delivered.
        assert_eq!(order(&m), [(0, 0), (1, 0)]);
        assert_eq!(merge.nexts(), [1, 1]);
        let m = merge.take(&ends, (0, &[]), 1, Duration::ZERO);
        assert_eq!(order(&m), [(0, 1)], "at most `max`");
    }

    #[test]
    fn offset_rows_hold_topics_past_the_first() {
        let mut writes = Writes::new();
        offset_rows(3, &[7, 9, 11], &mut writes);
        assert_eq!(writes.len(), 2);
        let row = writes.get(&Keys::new(3).offset(2)).cloned().flatten();
        assert_eq!(row.as_deref().and_then(read_offset), Some(11));
        assert_eq!(read_offset(b"short"), None);
    }
}
