//! The worker of a version that reads several topics: where each topic of
//! each partition starts, a merged batch (`super::super::inputs`) run and
//! committed with every topic's next offset, and a failed merged batch
//! pinpointed from the copy of its events kept in memory (a re-read of one
//! topic could not give the merged order back), naming the failing event's
//! topic.

use std::time::{Duration, Instant};

use super::super::env::Env;
use super::super::inputs::{FillError, Merge, Merged, offset_rows, read_offset};
use super::{Fault, Pinpointed, Worker};
use crate::eventlog::LogError;
use crate::log::Record;
use crate::registry::OnError;
use crate::runtime::CallFailure;
use crate::runtime::timers::Keys;
use crate::store::{StoreError, Writes};

/// Why the merges of a version reading several topics could not start or
/// read the topics' ends.
pub(super) enum MergeStart {
    /// The log cannot be reached right now.
    Unavailable(LogError),
    /// The version fails.
    Failed(Fault),
}

/// Readings of every topic's ends at most, waiting for two in a row to agree
/// (see `Worker::read_ends`).
const ENDS_READINGS: usize = 8;

impl Worker {
    /// [`report_applied`](Self::report_applied) of the topics past the
    /// first, of a version that reads several, into `applied` (by topic
    /// index less one, then partition).
    pub(super) fn report_applied_more(&self, env: &Env<'_>, applied: &mut Vec<Vec<u64>>) {
        applied.resize(self.topics.len().saturating_sub(1), Vec::new());
        for (p, s) in self.partitions.iter().enumerate() {
            let Some(merge) = s.merge.as_ref().filter(|_| self.lane.has(env, p)) else {
                continue;
            };
            for (topic, next) in applied.iter_mut().zip(merge.nexts().into_iter().skip(1)) {
                if topic.len() <= p {
                    topic.resize(p + 1, 0);
                }
                topic[p] = next;
            }
        }
    }
    /// A merge for each partition this worker processes, starting at topic
    /// 0's next offset (already in `partitions`) and at the next offset of
    /// each other topic committed in the shard, or that topic's start.
    pub(super) fn start_merges(&mut self, env: &Env<'_>) -> Result<(), MergeStart> {
        let mut starts = Vec::new();
        for topic in &self.topics[1..] {
            match env.log.start_offsets(topic) {
                Ok(s) => starts.push(s),
                Err(e) if e.is_unavailable() => return Err(MergeStart::Unavailable(e)),
                Err(e) => {
                    return Err(MergeStart::Failed(Fault::unplaced(format!(
                        "reading topic `{topic}`: {e}"
                    ))));
                }
            }
        }
        for p in 0..self.partitions.len() {
            if !self.processes(env, p) {
                continue;
            }
            #[expect(
                clippy::cast_possible_truncation,
                reason = "`p` indexes the topic's partitions, which a u32 counts"
            )]
            let partition = p as u32;
            let keys = Keys::new(partition);
            let mut nexts = vec![self.partitions[p].next];
            for (t, start) in (1u32..).zip(&starts) {
                let committed = self
                    .run
                    .view
                    .get(&keys.offset(t), Some(partition))
                    .map_err(|e| {
                        MergeStart::Failed(Fault::unplaced(format!(
                            "reading the view's offsets: {e}"
                        )))
                    })?;
                let next = committed.as_deref().and_then(read_offset);
                nexts.push(next.unwrap_or_else(|| start.get(p).copied().unwrap_or(0)));
            }
            self.partitions[p].merge = Some(Merge::new(&nexts));
        }
        Ok(())
    }

    /// Reads the end offsets of every topic into `self.ends` (`first`, topic
    /// 0's, as a first reading), and starts a merge for a partition added
    /// since.
    ///
    /// The ends must be a cut of one moment: read one topic after another,
    /// a later reading could see an event appended after one of another
    /// topic that an earlier reading missed, and the merge would take the
    /// other topic for at its end and deliver the later event first. Two
    /// readings in a row that agree are the ends of a moment between them
    /// (ends only grow), so the host reads again until they agree, a few
    /// times at most.
    pub(super) fn read_ends(&mut self, env: &Env<'_>, first: &[u64]) -> Result<(), MergeStart> {
        let read = |topics: &[String], ends: &mut Vec<Vec<u64>>| -> Result<(), MergeStart> {
            for topic in topics {
                match env.log.end_offsets(topic) {
                    Ok(e) => ends.push(e),
                    Err(e) if e.is_unavailable() => return Err(MergeStart::Unavailable(e)),
                    Err(e) => {
                        return Err(MergeStart::Failed(Fault::unplaced(format!(
                            "reading topic `{topic}`: {e}"
                        ))));
                    }
                }
            }
            Ok(())
        };
        let mut ends = vec![first.to_vec()];
        read(&self.topics[1..], &mut ends)?;
        for _ in 0..ENDS_READINGS {
            let mut again = Vec::with_capacity(self.topics.len());
            read(&self.topics, &mut again)?;
            let agree = again == ends;
            ends = again;
            if agree {
                break;
            }
        }
        self.ends = ends;
        let count = self.topics.len();
        for p in 0..self.partitions.len() {
            if self.partitions[p].merge.is_none() && self.processes(env, p) {
                // A partition added to the topics (on Kafka) starts at 0.
                self.partitions[p].merge = Some(Merge::new(&vec![0; count]));
            }
        }
        Ok(())
    }

    /// One merged batch of `partition`, if it has events to deliver:
    /// `Ok(true)` when one was applied, `Err` when the log cannot be reached.
    pub(super) fn step_merged(
        &mut self,
        env: &Env<'_>,
        partition: u32,
    ) -> Result<Result<bool, LogError>, Fault> {
        let p = partition as usize;
        // Read right before each batch: the diff barrier may have been
        // raised since the previous one.
        let holds: Vec<Option<u64>> = match self.run.hold.lock().as_ref() {
            Some(h) => h.iter().map(|t| t.get(p).copied()).collect(),
            None => Vec::new(),
        };
        let limits = (self.batch.limit, env.batch_bytes);
        let Some(merge) = self.partitions[p].merge.as_mut() else {
            return Ok(Ok(false));
        };
        match merge.fill(env.log, &self.topics, partition, &self.ends, limits) {
            Ok(()) => {}
            Err(FillError::Unavailable(e)) => return Ok(Err(e)),
            Err(FillError::Failed {
                topic,
                offset,
                error,
            }) => {
                return Err(Fault::in_topic(
                    self.run.record.topic_name(topic),
                    partition,
                    offset,
                    format!("reading the log: {error}"),
                ));
            }
        }
        let before = merge.nexts();
        let idle = Duration::from_millis(self.run.record.settings.topic_idle_ms);
        let merged = merge.take(&self.ends, (p, &holds), self.batch.limit, idle);
        if merged.events.is_empty() {
            return Ok(Ok(false));
        }
        let after = merge.nexts();
        let (count, late) = (merged.events.len() as u64, merged.late);
        let batch_started = Instant::now();
        self.apply_merged(env, partition, merged, before, &after)?;
        self.partitions[p].next = after[0];
        env.metrics.batch(&self.id, count, batch_started.elapsed());
        let mut progress = self.run.progress.lock();
        progress.record(count);
        progress.late += late;
        self.report_applied(env, &mut progress.applied);
        self.report_applied_more(env, &mut progress.applied_more);
        Ok(Ok(true))
    }

    /// Runs a merged batch of `partition` (each topic from `before` to
    /// `after`) through the plugin and commits its writes with every topic's
    /// next offset; a batch that fails is pinpointed.
    fn apply_merged(
        &mut self,
        env: &Env<'_>,
        partition: u32,
        merged: Merged,
        before: Vec<u64>,
        after: &[u64],
    ) -> Result<(), Fault> {
        let Merged { events, topics, .. } = merged;
        let count = events.len();
        let (name, offset) = self.place_of(&events, &topics, 0);
        // Owned: the instance is borrowed mutably below.
        let first_topic = name.to_owned();
        let first = (first_topic.as_str(), offset);
        let run = self.run.clone();
        let view = &run.view;
        let shard = view.shard(partition).map_err(|e| {
            Fault::in_topic(
                first.0,
                partition,
                first.1,
                format!("opening the view: {e}"),
            )
        })?;
        let kept = events.clone();
        let outcome = match self.instance.as_mut() {
            Some(instance) => shard
                .snapshot()
                .map_err(|e| CallFailure::host(e.to_string()))
                .and_then(|snap| instance.process_topics(snap, events, &topics)),
            None => Err(CallFailure::host("the plugin has no instance".to_owned())),
        };
        match outcome {
            Ok(mut writes) => {
                offset_rows(partition, after, &mut writes);
                view.commit(partition, after[0], &writes, false)
                    .map_err(|e| {
                        Fault::in_topic(
                            first.0,
                            partition,
                            first.1,
                            format!("committing the view: {e}"),
                        )
                    })?;
                self.batch.succeeded(count);
            }
            Err(failure) => {
                self.instance = None;
                let pinned =
                    self.pinpoint_merged(env, partition, kept, &topics, before, failure)?;
                self.instance = Some(pinned.instance);
                if pinned.every_event_passed {
                    self.batch.too_large(count);
                }
            }
        }
        Ok(())
    }

    /// The topic name and offset of event `i` of a merged batch.
    fn place_of(&self, events: &[Record], topics: &[u32], i: usize) -> (&str, u64) {
        let topic = topics.get(i).copied().unwrap_or(0);
        let offset = events.get(i).map_or(0, |e| e.offset);
        (self.run.record.topic_name(topic), offset)
    }

    /// [`pinpoint`](Self::pinpoint) of a merged batch, from `events` (of
    /// `topics`), each topic starting at `nexts`: runs them one at a time
    /// on a fresh instance, committing each with every topic's next offset.
    fn pinpoint_merged(
        &self,
        env: &Env<'_>,
        partition: u32,
        events: Vec<Record>,
        topics: &[u32],
        mut nexts: Vec<u64>,
        failure: CallFailure,
    ) -> Result<Pinpointed, Fault> {
        let view = &self.run.view;
        let on_error = self.run.record.settings.on_error;
        let (first_topic, first) = self.place_of(&events, topics, 0);
        if events.len() == 1 && on_error == OnError::Stop {
            let offset = failure.offset.unwrap_or(first);
            return Err(Fault::in_topic(
                first_topic,
                partition,
                offset,
                failure.message,
            ));
        }
        let instantiate = |context: &str| {
            self.instantiate(env).map_err(|f| {
                Fault::in_topic(
                    first_topic,
                    partition,
                    first,
                    format!("{context}; re-instantiating failed: {}", f.message),
                )
            })
        };
        let mut fresh = instantiate(&failure.message)?;
        let shard = view.shard(partition).map_err(|e| {
            Fault::in_topic(
                first_topic,
                partition,
                first,
                format!("opening the view: {e}"),
            )
        })?;
        let mut failed_alone = false;
        for (event, &t) in events.into_iter().zip(topics) {
            let (offset, name) = (event.offset, self.run.record.topic_name(t));
            let commit_err = |e: StoreError| {
                Fault::in_topic(name, partition, offset, format!("committing the view: {e}"))
            };
            let snapshot = shard
                .snapshot()
                .map_err(|e| Fault::in_topic(name, partition, offset, e.to_string()))?;
            let outcome = fresh.process_topics(snapshot, vec![event], &[t]);
            let (mut writes, skipped) = match outcome {
                Ok(writes) => (writes, false),
                Err(f) => {
                    failed_alone = true;
                    let offset = f.offset.unwrap_or(offset);
                    if on_error == OnError::Stop {
                        shard.sync().map_err(commit_err)?;
                        return Err(Fault::in_topic(name, partition, offset, f.message));
                    }
                    tracing::warn!(
                        version = %self.label, topic = name, partition, offset,
                        "skipping a poison event (dead letter): {}", f.message
                    );
                    env.dead_letter(&self.id, Some(name), partition, offset, &f.message);
                    drop(fresh);
                    fresh = instantiate(&f.message)?;
                    (Writes::new(), true)
                }
            };
            if let Some(next) = nexts.get_mut(t as usize) {
                *next = offset + 1;
            }
            offset_rows(partition, &nexts, &mut writes);
            view.commit(partition, nexts[0], &writes, skipped)
                .map_err(commit_err)?;
        }
        if !failed_alone {
            tracing::warn!(
                version = %self.label, partition,
                "a batch failed ({}) but each of its events succeeded alone; continuing",
                failure.message
            );
        }
        Ok(Pinpointed {
            instance: fresh,
            next: nexts[0],
            every_event_passed: !failed_alone,
        })
    }
}
