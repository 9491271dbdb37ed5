//! What a worker uses of the host ([`Env`]), passed to it explicitly, and
//! the two records a worker makes in the registry as it runs: a dead letter
//! per skipped event, and its version's catch-up.

use super::Host;
use super::running::Running;
use crate::clock::now_ms;
use crate::eventlog::EventLog;
use crate::metrics::Metrics;
use crate::registry::{DEAD_LETTERS_KEPT, DeadLetter, Registry, VersionId};
use crate::runtime::Runtime;

/// What a worker uses of the host, borrowed for the whole run. Shared, not
/// owned: workers of several versions (or of several partitions of one)
/// can use one.
pub(super) struct Env<'h> {
    pub(super) log: &'h dyn EventLog,
    pub(super) runtime: &'h Runtime,
    pub(super) registry: &'h Registry,
    pub(super) metrics: &'h Metrics,
    /// See `HostOptions::batch_size`.
    pub(super) batch_size: usize,
    /// See `HostOptions::batch_bytes`.
    pub(super) batch_bytes: usize,
    /// See `HostOptions::lower_replay_priority`.
    pub(super) lower_replay_priority: bool,
    /// The partitions this host processes; `None`: all of them.
    partitions: Option<&'h [u32]>,
}

impl Host {
    /// What the host's workers use of it.
    pub(super) fn env(&self) -> Env<'_> {
        Env {
            log: &*self.log,
            runtime: &self.runtime,
            registry: &self.registry,
            metrics: &self.metrics,
            batch_size: self.options.batch_size,
            batch_bytes: self.options.batch_bytes,
            lower_replay_priority: self.options.lower_replay_priority,
            partitions: self.options.partitions.as_deref(),
        }
    }
}

impl Env<'_> {
    /// Whether this host processes `partition`.
    pub(super) fn owns(&self, partition: usize) -> bool {
        super::owns(self.partitions, partition)
    }

    /// The rank of `partition` among those this host processes, if it
    /// processes it (see `super::rank`).
    pub(super) fn rank(&self, partition: usize) -> Option<usize> {
        super::rank(self.partitions, partition)
    }

    /// Records the event at `offset` of `partition` (of `topic`, named for
    /// a version reading several) as a dead letter of `id` (once, even if a
    /// crash makes the worker meet it again).
    pub(super) fn dead_letter(
        &self,
        id: &VersionId,
        topic: Option<&str>,
        partition: u32,
        offset: u64,
        message: &str,
    ) {
        self.metrics.failure(id, true);
        let topic = topic.map(str::to_owned);
        let letter = DeadLetter {
            topic: topic.clone(),
            partition,
            offset,
            message: message.to_owned(),
            at_ms: now_ms(),
        };
        let result = self.registry.update(id, |rec, _| {
            if let Some(rec) = rec {
                // A crash between recording and committing past the event
                // replays it: record each event once.
                if !rec
                    .dead_letters
                    .iter()
                    .any(|d| d.partition == partition && d.offset == offset && d.topic == topic)
                {
                    rec.dead_letters.push(letter.clone());
                    rec.dead_letter_count += 1;
                    let excess = rec.dead_letters.len().saturating_sub(DEAD_LETTERS_KEPT);
                    rec.dead_letters.drain(..excess);
                }
            }
            Ok(())
        });
        if let Err(e) = result {
            tracing::error!(version = %id, "recording a dead letter: {e}");
        }
    }

    /// Records that the version of `run` has caught up, promoting it if it
    /// is its processor's first or was deployed with `auto_promote`.
    pub(super) fn caught_up(&self, run: &Running) {
        let id = run.record.id();
        if let Err(e) = run.view.sync() {
            tracing::warn!(version = %id, "syncing the view: {e}");
        }
        let auto = run.record.settings.auto_promote;
        let result = self.registry.update(&id, |rec, alias| {
            if let Some(rec) = rec {
                rec.caught_up = true;
            }
            if alias.promoted.is_none() || auto {
                super::admin::swap_alias(alias, &id.version);
                return Ok(true);
            }
            Ok(false)
        });
        match result {
            Ok(true) => tracing::info!(version = %id, "caught up and promoted"),
            Ok(false) => tracing::info!(version = %id, "caught up"),
            Err(e) => tracing::error!(version = %id, "recording catch-up: {e}"),
        }
    }
}
