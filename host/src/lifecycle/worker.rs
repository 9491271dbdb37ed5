//! One version's worker: the loop that reads the log, runs the events
//! through the version's plugin in batches and commits the writes to its
//! view with the offsets they bring it to.
//!
//! A [`Worker`] owns everything that changes as it runs: its plugin
//! instance, one reader and next offset per partition, its batch size and
//! its backoff while the log is unreachable (see `super::pacing`). What it uses of the host comes
//! in an [`Env`], passed to every call, and what it shares with the host is
//! its [`Running`] handle (view, stop flag, diff hold, progress). Nothing is
//! global, so several workers (one per partition, say) can share one `Env`.
//!
//! A worker processes one [`Lane`] of its version's partitions: all of them
//! for a version of contract 0.1.0 or 0.2.0 (one shared view, one thread),
//! every `count`-th for a version whose state is per partition (0.3.0-rc.1),
//! whose lanes run on threads of their own (see `super::running`). It
//! round-robins its partitions, one batch each, so they progress evenly, and
//! sleeps on the log's append notification when it has nothing to do.
//! Replays and live tailing are the same loop: a new version simply starts
//! at offset 0. It returns why it stopped ([`Stop`]) instead of recording a
//! failure itself; the host records it once. A replaying worker also stops
//! when its partitions have caught up ([`Stop::CaughtUp`]), so that its
//! work moves to a thread of normal priority (see `super::priority`).
//!
//! A version that reads several topics has, per partition, a merge of that
//! partition of every topic (`super::inputs`) in place of one reader; its
//! batches, their commits and their pinpointing are in `worker_topics.rs`.
//! (About 700 lines: the loop, the reads, the commits and the pinpointing of
//! one topic share the worker's state, and read best together.)
//!
//! Why one file of some 700 lines: the loop, the reading of a batch, its
//! commit and the pinpointing of a failed batch are one state machine over
//! the same [`Worker`]; what several topics add is in `super::worker_topics`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::env::Env;
use super::inputs::Merge;
use super::pacing::{Backoff, BatchSize, wait_out};
use super::running::Running;
use crate::eventlog::LogError;
use crate::eventlog::LogReader;
use crate::log::Record;
use crate::registry::{OnError, Place, VersionId};
use crate::runtime::{CallFailure, Instance, Plugin};
use crate::store::{Layout, StoreError, View, Writes};

// Several input topics: the worker's side of `super::inputs`.
#[path = "worker_topics.rs"]
mod topics;
use topics::MergeStart;

/// Why a worker stopped.
pub(super) enum Stop {
    /// It was asked to (the version is being retired or the host shut down).
    Requested,
    /// The version failed; the caller records it.
    Failed(Fault),
    /// A replaying worker's partitions reached the end of the log: the
    /// worker, to carry on live (on a thread of normal priority).
    CaughtUp(Box<Worker>),
}

/// Which of its version's partitions a worker processes: of the partitions
/// this host processes, in order, those whose rank is `index` modulo `count`
/// (so that a host given partitions 0 and 2 of four splits them over two
/// lanes too).
#[derive(Debug, Clone, Copy)]
pub(super) struct Lane {
    /// This lane's number, below `count`.
    pub(super) index: usize,
    /// How many lanes the version's partitions are split into.
    pub(super) count: usize,
}

impl Lane {
    /// Whether `partition` is this lane's: processed by it when this host
    /// processes the partition, else only reported by it (its offsets).
    fn has(self, env: &Env<'_>, partition: usize) -> bool {
        env.rank(partition).unwrap_or(partition) % self.count == self.index
    }
}

/// Where and why a version failed.
#[derive(Debug)]
pub(super) struct Fault {
    pub(super) place: Place,
    /// The topic of the event, named for a version that reads several.
    pub(super) topic: Option<String>,
    pub(super) message: String,
}

impl Fault {
    /// A failure at no particular event.
    pub(super) fn unplaced(message: String) -> Self {
        Fault {
            place: Place::default(),
            topic: None,
            message,
        }
    }

    /// A failure at the event at `offset` of `partition`.
    fn at(partition: u32, offset: u64, message: String) -> Self {
        Fault {
            place: Place::event(partition, offset),
            topic: None,
            message,
        }
    }

    /// A failure at the event at `offset` of `partition` of `topic`.
    fn in_topic(topic: &str, partition: u32, offset: u64, message: String) -> Self {
        Fault {
            topic: Some(topic.to_owned()),
            ..Fault::at(partition, offset, message)
        }
    }
}

/// One partition as the worker reads it.
#[derive(Default)]
struct Partition {
    /// The next offset to apply (everything before it is in the view).
    next: u64,
    /// A reader positioned at `next`, kept from batch to batch.
    reader: Option<Box<dyn LogReader>>,
    /// For a version that reads several topics, this partition of every
    /// topic, merged (`next` is then topic 0's next offset); `None` for one
    /// topic, or a partition this lane does not process.
    merge: Option<Merge>,
}

/// What a round over the partitions gave.
enum Round {
    /// Whether any batch was applied.
    Done { worked: bool },
    /// The log cannot be reached right now.
    Unavailable(LogError),
}

/// What reading one partition gave.
enum Read {
    /// Events to apply (possibly none: nothing new below the limit).
    Events(Vec<Record>),
    /// The log cannot be reached right now.
    Unavailable(LogError),
}

/// The events of a failed batch after running them one at a time.
struct Pinpointed {
    /// The instance to carry on with.
    instance: Instance,
    /// The partition's next offset.
    next: u64,
    /// Whether every event succeeded alone.
    every_event_passed: bool,
}

/// One version's worker (see the module documentation).
pub(super) struct Worker {
    run: Arc<Running>,
    plugin: Arc<Plugin>,
    id: VersionId,
    /// `id` as text, the label of its plugin instances.
    label: String,
    /// `None` only while a failed batch is pinpointed: the failed instance
    /// is dropped before a fresh one is made, so the two never hold memory
    /// at once.
    instance: Option<Instance>,
    /// Indexed by partition number (every partition of the topic; only
    /// this lane's are read).
    partitions: Vec<Partition>,
    lane: Lane,
    /// Whether the version has yet to catch up: then the worker stops, with
    /// [`Stop::CaughtUp`], once its partitions are at the end of the log.
    replaying: bool,
    /// Whether `partitions` was read from the view and the log.
    started: bool,
    batch: BatchSize,
    buf: Vec<Record>,
    /// The topics the version reads, by topic index.
    topics: Vec<String>,
    /// With several topics: each topic's end offsets, read at the start of
    /// each round.
    ends: Vec<Vec<u64>>,
}

impl Worker {
    /// A worker of `lane` for `run`, with `instance` or a new instance of
    /// `plugin`; `replaying` while the version has yet to catch up.
    pub(super) fn start(
        env: &Env<'_>,
        run: Arc<Running>,
        plugin: Arc<Plugin>,
        lane: Lane,
        replaying: bool,
        instance: Option<Instance>,
    ) -> Result<Self, Fault> {
        let id = run.record.id();
        let batch = BatchSize::new(env.batch_size);
        let mut worker = Worker {
            label: id.to_string(),
            id,
            plugin,
            instance,
            partitions: Vec::new(),
            lane,
            replaying,
            started: false,
            buf: Vec::with_capacity(batch.limit),
            batch,
            topics: run.record.topics(),
            ends: Vec::new(),
            run,
        };
        if worker.instance.is_none() {
            let instance = worker.instantiate(env).map_err(|f| Fault {
                place: Place {
                    partition: None,
                    offset: f.offset,
                },
                topic: None,
                message: f.message,
            })?;
            worker.instance = Some(instance);
        }
        Ok(worker)
    }

    /// The lane's number.
    pub(super) fn lane(&self) -> Lane {
        self.lane
    }

    /// Carries on as a worker of a version that has caught up.
    pub(super) fn go_live(&mut self) {
        self.replaying = false;
    }

    /// Runs until asked to stop, failed, or (replaying) caught up.
    pub(super) fn run(mut self, env: &Env<'_>) -> Stop {
        if !self.started {
            match self.initial_offsets(env) {
                Ok(true) => self.started = true,
                Ok(false) => return Stop::Requested,
                Err(fault) => return Stop::Failed(fault),
            }
        }
        match self.tail(env) {
            Ok(true) => return Stop::CaughtUp(Box::new(self)),
            Ok(false) => {}
            Err(fault) => return Stop::Failed(fault),
        }
        if let Err(e) = self.sync_shards(env, View::sync) {
            tracing::warn!(version = %self.id, "syncing the view on stop: {e}");
        }
        Stop::Requested
    }

    /// Whether this worker processes `partition`.
    fn processes(&self, env: &Env<'_>, partition: usize) -> bool {
        env.owns(partition) && self.lane.has(env, partition)
    }

    /// Calls `sync` on the view (the shard of each of this lane's partitions,
    /// when the state is per partition).
    fn sync_shards(
        &self,
        env: &Env<'_>,
        sync: fn(&View) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        if self.run.view.layout() == Layout::Shared {
            return sync(&*self.run.view.shard(0)?);
        }
        for p in (0..self.partitions.len()).filter(|p| self.processes(env, *p)) {
            #[expect(
                clippy::cast_possible_truncation,
                reason = "`p` indexes the topic's partitions, which a u32 counts"
            )]
            sync(&*self.run.view.shard(p as u32)?)?;
        }
        Ok(())
    }

    fn instantiate(&self, env: &Env<'_>) -> Result<Instance, CallFailure> {
        env.runtime
            .instantiate(&self.plugin, &self.label, &self.run.record.settings)
    }

    /// Where the worker starts: the offsets committed in the view, or the
    /// log's start offsets for partitions this version has not read yet.
    /// Retries while the log is unavailable; `false` when asked to stop
    /// before it could start.
    fn initial_offsets(&mut self, env: &Env<'_>) -> Result<bool, Fault> {
        let run = self.run.clone();
        let topic = &run.record.topic;
        let mut backoff = Backoff::default();
        while !run.stopping() {
            match env.log.start_offsets(topic) {
                Ok(start) => {
                    let offsets = run
                        .view
                        .offsets()
                        .map_err(|e| Fault::unplaced(format!("reading the view's offsets: {e}")))?;
                    self.partitions = start
                        .iter()
                        .zip(0u32..)
                        .map(|(s, p)| Partition {
                            next: offsets.get(&p).copied().unwrap_or(*s),
                            reader: None,
                            merge: None,
                        })
                        .collect();
                    if self.topics.len() > 1 {
                        match self.start_merges(env) {
                            Ok(()) => {}
                            Err(MergeStart::Unavailable(e)) => {
                                wait_out(&run, &e, &mut backoff);
                                continue;
                            }
                            Err(MergeStart::Failed(fault)) => return Err(fault),
                        }
                    }
                    let mut progress = run.progress.lock();
                    progress.start = start;
                    self.report_applied(env, &mut progress.applied);
                    self.report_applied_more(env, &mut progress.applied_more);
                    progress.log_error = None;
                    return Ok(true);
                }
                Err(e) if e.is_unavailable() => wait_out(&run, &e, &mut backoff),
                Err(e) => {
                    return Err(Fault::unplaced(format!("reading topic `{topic}`: {e}")));
                }
            }
        }
        Ok(false)
    }

    /// The main loop: a batch of every partition in turn, then a wait for
    /// new events when there was nothing to do. Returns when asked to stop
    /// (`false`) or, replaying, when caught up (`true`).
    fn tail(&mut self, env: &Env<'_>) -> Result<bool, Fault> {
        let run = self.run.clone();
        let topic = &run.record.topic;
        let mut backoff = Backoff::default();
        while !run.stopping() {
            let seen = env.log.append_count();
            let ends = match env.log.end_offsets(topic) {
                Ok(e) => e,
                Err(e) if e.is_unavailable() => {
                    wait_out(&run, &e, &mut backoff);
                    continue;
                }
                Err(e) => {
                    return Err(Fault::unplaced(format!("reading topic `{topic}`: {e}")));
                }
            };
            // Partitions added to a Kafka topic start at offset 0.
            if self.partitions.len() < ends.len() {
                self.partitions.resize_with(ends.len(), Partition::default);
            }
            if self.topics.len() > 1 {
                match self.read_ends(env, &ends) {
                    Ok(()) => {}
                    Err(MergeStart::Unavailable(e)) => {
                        wait_out(&run, &e, &mut backoff);
                        continue;
                    }
                    Err(MergeStart::Failed(fault)) => return Err(fault),
                }
            }
            let worked = match self.round(env, &ends)? {
                Round::Done { worked } => worked,
                Round::Unavailable(unavailable) => {
                    wait_out(&run, &unavailable, &mut backoff);
                    continue;
                }
            };
            if backoff.reset() && run.progress.lock().log_error.take().is_some() {
                tracing::info!(version = %self.id, "the log is reachable again; resuming");
            }
            if !worked && self.idle(env, &ends, seen) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// One batch of each partition this host processes that has events
    /// below `ends`.
    fn round(&mut self, env: &Env<'_>, ends: &[u64]) -> Result<Round, Fault> {
        let mut worked = false;
        for (p, &end) in ends.iter().enumerate() {
            if !self.processes(env, p) {
                continue;
            }
            #[expect(
                clippy::cast_possible_truncation,
                reason = "`p` indexes the topic's partitions, which a u32 counts"
            )]
            let partition = p as u32;
            if self.partitions[p].merge.is_some() {
                match self.step_merged(env, partition)? {
                    Ok(w) => worked |= w,
                    Err(unavailable) => return Ok(Round::Unavailable(unavailable)),
                }
                continue;
            }
            // Read right before each batch: the diff barrier may have been
            // raised since the previous one.
            let hold = self
                .run
                .hold
                .lock()
                .as_ref()
                .and_then(|h| h.first()?.get(p).copied());
            let limit = hold.map_or(end, |h| h.min(end));
            let next = self.partitions[p].next;
            if next >= limit {
                continue;
            }
            let events = match self.read(env, partition, next, limit)? {
                Read::Events(events) => events,
                Read::Unavailable(e) => return Ok(Round::Unavailable(e)),
            };
            let Some(last) = events.last().map(|r| r.offset) else {
                continue;
            };
            let count = events.len() as u64;
            let batch_started = Instant::now();
            self.apply(env, partition, next, last, events)?;
            env.metrics.batch(&self.id, count, batch_started.elapsed());
            let mut progress = self.run.progress.lock();
            progress.record(count);
            self.report_applied(env, &mut progress.applied);
            worked = true;
        }
        Ok(Round::Done { worked })
    }

    /// Reads the next batch of `partition`, from `next` (its next offset)
    /// and below `limit`.
    fn read(
        &mut self,
        env: &Env<'_>,
        partition: u32,
        next: u64,
        limit: u64,
    ) -> Result<Read, Fault> {
        let read_failed = |e: LogError| Fault::at(partition, next, format!("reading the log: {e}"));
        let slot = &mut self.partitions[partition as usize].reader;
        let reader = match slot {
            Some(r) if r.next_offset() == next => r,
            _ => match env.log.reader(&self.run.record.topic, partition, next) {
                Ok(r) => slot.insert(r),
                Err(e) if e.is_unavailable() => return Ok(Read::Unavailable(e)),
                Err(e) => return Err(read_failed(e)),
            },
        };
        self.buf.clear();
        let want = usize::try_from(limit - next)
            .unwrap_or(usize::MAX)
            .min(self.batch.limit);
        if let Err(e) = reader.read_batch(want, env.batch_bytes, &mut self.buf) {
            if e.is_unavailable() {
                // A fresh reader after the outage: librdkafka can take
                // minutes to fetch from a restarted broker with the old one.
                *slot = None;
                return Ok(Read::Unavailable(e));
            }
            return Err(read_failed(e));
        }
        // Offsets may have gaps on Kafka: never apply past the hold.
        if self.buf.last().is_some_and(|r| r.offset >= limit) {
            self.buf.retain(|r| r.offset < limit);
            *slot = None;
        }
        Ok(Read::Events(std::mem::take(&mut self.buf)))
    }

    /// Runs `events` (offsets `first..=last` of `partition`) through the
    /// plugin and commits their writes, in one batch; a batch that fails is
    /// pinpointed (see [`pinpoint`](Self::pinpoint)).
    fn apply(
        &mut self,
        env: &Env<'_>,
        partition: u32,
        first: u64,
        last: u64,
        events: Vec<Record>,
    ) -> Result<(), Fault> {
        let count = events.len();
        let view = &self.run.view;
        let shard = view
            .shard(partition)
            .map_err(|e| Fault::at(partition, first, format!("opening the view: {e}")))?;
        let outcome = match self.instance.as_mut() {
            Some(instance) => shard
                .snapshot()
                .map_err(|e| CallFailure::host(e.to_string()))
                .and_then(|snap| instance.process(snap, events)),
            // Not reached (an instance is put back after pinpointing, or the
            // worker stops); pinpointing starts a fresh one.
            None => Err(CallFailure::host("the plugin has no instance".to_owned())),
        };
        let p = partition as usize;
        match outcome {
            Ok(writes) => {
                view.commit(partition, last + 1, &writes, false)
                    .map_err(|e| {
                        Fault::at(partition, first, format!("committing the view: {e}"))
                    })?;
                self.partitions[p].next = last + 1;
                self.batch.succeeded(count);
            }
            Err(failure) => {
                // Find the exact event on a fresh instance, applying the
                // good events before it.
                self.instance = None;
                let pinned = self.pinpoint(env, partition, first, last, failure)?;
                self.instance = Some(pinned.instance);
                self.partitions[p].next = pinned.next;
                if pinned.every_event_passed {
                    self.batch.too_large(count);
                }
            }
        }
        Ok(())
    }

    /// After a failed batch `first..=last` of `partition`: replays its events
    /// one at a time on a fresh instance to name the exact event, committing
    /// each one's writes with its offset (so that the host holds the pending
    /// writes of one event at a time, as in any batch within the memory
    /// limit). Under the `stop` policy it returns the failure, the events
    /// before it applied; under `skip` it records the event as a dead letter,
    /// commits past it and goes on. If every event succeeds alone (a time or
    /// memory limit hit by a large batch, say), they are all applied.
    fn pinpoint(
        &self,
        env: &Env<'_>,
        partition: u32,
        first: u64,
        last: u64,
        failure: CallFailure,
    ) -> Result<Pinpointed, Fault> {
        let view = &self.run.view;
        let on_error = self.run.record.settings.on_error;
        if first == last && on_error == OnError::Stop {
            // A single event: it is the culprit, no need to run it again.
            let offset = failure.offset.unwrap_or(first);
            return Err(Fault::at(partition, offset, failure.message));
        }
        let instantiate = |context: &str| {
            self.instantiate(env).map_err(|f| {
                Fault::at(
                    partition,
                    failure.offset.unwrap_or(first),
                    format!("{context}; re-instantiating failed: {}", f.message),
                )
            })
        };
        let mut fresh = instantiate(&failure.message)?;
        let events = self.reread(env, partition, first, last, &failure.message)?;
        let shard = view
            .shard(partition)
            .map_err(|e| Fault::at(partition, first, format!("opening the view: {e}")))?;
        let commit_err = |next: u64| {
            move |e: StoreError| Fault::at(partition, next, format!("committing the view: {e}"))
        };
        let mut next = first;
        let mut failed_alone = false;
        for event in events {
            let offset = event.offset;
            let snapshot = shard
                .snapshot()
                .map_err(|e| Fault::at(partition, offset, e.to_string()))?;
            match fresh.process(snapshot, vec![event]) {
                Ok(writes) => {
                    next = offset + 1;
                    view.commit(partition, next, &writes, false)
                        .map_err(commit_err(next))?;
                }
                Err(f) => {
                    failed_alone = true;
                    let offset = f.offset.unwrap_or(offset);
                    if on_error == OnError::Stop {
                        shard.sync().map_err(commit_err(next))?;
                        return Err(Fault::at(partition, offset, f.message));
                    }
                    tracing::warn!(
                        version = %self.label, partition, offset,
                        "skipping a poison event (dead letter): {}", f.message
                    );
                    env.dead_letter(&self.id, None, partition, offset, &f.message);
                    next = offset + 1;
                    view.commit(partition, next, &Writes::new(), true)
                        .map_err(commit_err(next))?;
                    drop(fresh);
                    fresh = instantiate(&f.message)?;
                }
            }
        }
        if !failed_alone {
            tracing::warn!(
                version = %self.label, partition, first, last,
                "a batch failed ({}) but each of its events succeeded alone; continuing",
                failure.message
            );
        }
        Ok(Pinpointed {
            instance: fresh,
            next,
            every_event_passed: !failed_alone,
        })
    }

    /// The events `first..=last` of `partition` once more, to pinpoint the
    /// failure (`failed`: its message) of their batch.
    fn reread(
        &self,
        env: &Env<'_>,
        partition: u32,
        first: u64,
        last: u64,
        failed: &str,
    ) -> Result<Vec<Record>, Fault> {
        let reread_failed = |e: LogError| {
            Fault::at(
                partition,
                first,
                format!("{failed}; re-reading the log failed: {e}"),
            )
        };
        let mut reader = env
            .log
            .reader(&self.run.record.topic, partition, first)
            .map_err(reread_failed)?;
        let mut events = Vec::new();
        let count = usize::try_from(last - first + 1).unwrap_or(usize::MAX);
        let mut empty_reads = 0;
        while events.len() < count && reader.next_offset() <= last && empty_reads < 10 {
            let before = events.len();
            reader
                .read_batch(count - events.len(), usize::MAX, &mut events)
                .map_err(reread_failed)?;
            if events.len() == before {
                empty_reads += 1;
            }
        }
        // Kafka may hand back records past `last` (the batch was cut by the
        // diff hold or by gaps); only the failed batch is retried here.
        events.retain(|e| e.offset <= last);
        Ok(events)
    }

    /// Nothing to do: lets the rate decay and makes the view durable; then,
    /// replaying, says whether every partition of the lane is at its end
    /// (`true`: the caller stops with [`Stop::CaughtUp`]); otherwise waits
    /// for an append after `seen`.
    fn idle(&mut self, env: &Env<'_>, ends: &[u64], seen: u64) -> bool {
        self.run.progress.lock().idle();
        if let Err(e) = self.sync_shards(env, View::sync_if_dirty) {
            tracing::warn!(version = %self.id, "syncing the view: {e}");
        }
        if self.replaying
            && self
                .partitions
                .iter()
                .zip(ends)
                .enumerate()
                .all(|(p, (s, e))| {
                    !self.processes(env, p)
                        || match &s.merge {
                            Some(merge) => merge.at_end(&self.ends, p),
                            None => s.next >= *e,
                        }
                })
        {
            return true;
        }
        env.log.wait_for_append(seen, Duration::from_millis(100));
        false
    }

    /// Writes this lane's partitions' next offsets into `applied` (the other
    /// lanes write theirs).
    fn report_applied(&self, env: &Env<'_>, applied: &mut Vec<u64>) {
        if applied.len() < self.partitions.len() {
            applied.resize(self.partitions.len(), 0);
        }
        for (p, s) in self.partitions.iter().enumerate() {
            if self.lane.has(env, p) {
                applied[p] = s.next;
            }
        }
    }
}
