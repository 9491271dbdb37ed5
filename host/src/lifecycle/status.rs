//! What `kappa status` shows: every processor with its versions, each with
//! its state, progress, rate, lag and failure, and the topics with their
//! end offsets. Figures come from the running worker when there is one,
//! else from the view as it was left.

use super::{Host, unknown_version};
use crate::error::{Error, Result};
use crate::model::{ProcessorStatus, State, StatusReport, VersionStatus};
use crate::registry::{Stored, VersionId, VersionRecord};

/// Where a version is in each partition, and how fast it moves.
struct Position {
    applied: Vec<u64>,
    threads: usize,
    start: Vec<u64>,
    rate: f64,
    processed: u64,
}

impl Host {
    /// Status of every processor and version, and of every topic.
    pub fn status(&self) -> Result<StatusReport> {
        let mut names: Vec<String> = self
            .registry
            .versions()?
            .into_iter()
            .map(|r| r.name)
            .collect();
        names.dedup();
        let processors = names
            .iter()
            .map(|n| self.processor_status(n))
            .collect::<Result<Vec<_>>>()?;
        // The log being unreachable shows in each version's `log_error`;
        // the topics are then left out rather than failing the status.
        let topics = self.topics().unwrap_or_else(|e| {
            tracing::warn!("listing topics for the status: {e}");
            Vec::new()
        });
        Ok(StatusReport { processors, topics })
    }

    /// Status of one processor.
    pub fn processor_status(&self, name: &str) -> Result<ProcessorStatus> {
        crate::registry::validate_name(name)?;
        let alias = self.registry.processor(name)?;
        let versions: Vec<VersionStatus> = self
            .registry
            .versions()?
            .into_iter()
            .filter(|r| r.name == name)
            .map(|r| self.describe(&r, alias.promoted.as_ref()))
            .collect();
        if versions.is_empty() {
            return Err(Error::not_found(format!("no processor named `{name}`")));
        }
        Ok(ProcessorStatus {
            name: name.to_owned(),
            topic: versions
                .first()
                .map(|v| v.topic.clone())
                .unwrap_or_default(),
            promoted: alias.promoted.map(|v| v.to_string()),
            previous: alias.previous.map(|v| v.to_string()),
            versions,
        })
    }

    /// Status of one version.
    pub fn version_status(&self, id: &VersionId) -> Result<VersionStatus> {
        let rec = self
            .registry
            .version(id)?
            .ok_or_else(|| unknown_version(id))?;
        let alias = self.registry.processor(&id.name)?;
        Ok(self.describe(&rec, alias.promoted.as_ref()))
    }

    /// Where `rec` is: its worker's figures while it runs (and the log
    /// error it meets, into `log_error`), else its view's committed offsets.
    fn position(
        &self,
        rec: &VersionRecord,
        id: &VersionId,
        partitions: usize,
        log_error: &mut Option<String>,
    ) -> Position {
        let running = self.running.lock().get(id).cloned();
        if let Some(run) = running {
            let p = run.progress.lock();
            if p.log_error.is_some() {
                log_error.clone_from(&p.log_error);
            }
            return Position {
                threads: run.lanes.load(std::sync::atomic::Ordering::Relaxed),
                applied: p.applied.clone(),
                start: p.start.clone(),
                rate: p.rate(),
                processed: p.processed,
            };
        }
        let start = if matches!(rec.stored, Stored::Retired { .. }) {
            Vec::new()
        } else {
            self.log.start_offsets(&rec.topic).unwrap_or_default()
        };
        let offsets = self
            .stopped_views
            .lock()
            .get(id)
            .and_then(|v| v.offsets().ok())
            .unwrap_or_default();
        #[expect(
            clippy::cast_possible_truncation,
            reason = "`partitions` is the topic's partition count, which a u32 holds"
        )]
        let applied = (0..partitions as u32)
            .map(|p| {
                offsets
                    .get(&p)
                    .copied()
                    .unwrap_or_else(|| start.get(p as usize).copied().unwrap_or(0))
            })
            .collect();
        Position {
            applied,
            threads: 0,
            start,
            rate: 0.0,
            processed: 0,
        }
    }

    fn describe(&self, rec: &VersionRecord, promoted: Option<&semver::Version>) -> VersionStatus {
        let id = rec.id();
        let (ends, mut log_error) = match self.log.end_offsets(&rec.topic) {
            Ok(ends) => (ends, None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
        let Position {
            applied,
            threads,
            start,
            rate,
            processed,
        } = self.position(rec, &id, ends.len(), &mut log_error);
        let start_of = |p: usize| start.get(p).copied().unwrap_or(0);
        // Progress counts from where the version started reading, over the
        // partitions this host processes.
        let total: u64 = ends
            .iter()
            .enumerate()
            .filter(|(p, _)| self.owns(*p))
            .map(|(p, e)| e.saturating_sub(start_of(p)))
            .sum();
        let done: u64 = applied
            .iter()
            .zip(&ends)
            .enumerate()
            .filter(|(p, _)| self.owns(*p))
            .map(|(p, (a, e))| (*a).min(*e).saturating_sub(start_of(p)))
            .sum();
        let lag = total.saturating_sub(done);
        let state = match &rec.stored {
            Stored::Retired { .. } => State::Retired,
            Stored::Failed(_) => State::Failed,
            Stored::Active if promoted == Some(&rec.version) => State::Promoted,
            Stored::Active if rec.caught_up => State::CaughtUp,
            Stored::Active => State::Replaying,
        };
        let eta_seconds = (state == State::Replaying && rate > 0.0).then(|| lag as f64 / rate);
        // A retired version has no view: no progress, lag or offsets applied.
        let retired = state == State::Retired;
        VersionStatus {
            id: id.to_string(),
            name: rec.name.clone(),
            version: rec.version.to_string(),
            digest: rec.digest.clone(),
            topic: rec.topic.clone(),
            state,
            caught_up: rec.caught_up && !retired,
            applied_offsets: if retired { Vec::new() } else { applied },
            end_offsets: ends,
            lag: (!retired).then_some(lag),
            progress: (!retired).then(|| {
                if total == 0 {
                    1.0
                } else {
                    done as f64 / total as f64
                }
            }),
            threads,
            events_per_second: if retired { 0.0 } else { rate },
            eta_seconds,
            processed_since_start: processed,
            failure: match &rec.stored {
                Stored::Failed(f) => Some(f.clone()),
                _ => None,
            },
            settings: rec.settings.clone(),
            deployed_at_ms: rec.deployed_at_ms,
            dead_letter_count: rec.dead_letter_count,
            log_error,
            dead_letters: rec
                .dead_letters
                .iter()
                .rev()
                .take(100)
                .rev()
                .cloned()
                .collect(),
        }
    }
}
