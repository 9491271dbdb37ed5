//! What `kappa status` shows: every processor with its versions, each with
//! its state, progress, rate, lag and failure, and the topics with their
//! end offsets. Figures come from the running worker when there is one,
//! else from the view as it was left.

use super::{Host, unknown_version};
use crate::error::{Error, Result};
use crate::model::{InputStatus, ProcessorStatus, State, StatusReport, VersionStatus};
use crate::registry::{Stored, VersionId, VersionRecord};

/// Where a version is in each partition, and how fast it moves.
struct Position {
    applied: Vec<u64>,
    /// With several topics: the next offsets of the topics past the first,
    /// where known (by topic index less one, then partition).
    applied_more: Vec<Vec<u64>>,
    late: u64,
    threads: usize,
    start: Vec<u64>,
    rate: f64,
    processed: u64,
}

/// One input topic's figures, for the status of a version reading several.
struct Input {
    status: InputStatus,
    /// (events to apply in all, events applied), over the partitions this
    /// host processes, counted from the topic's start.
    counts: (u64, u64),
}

impl Host {
    /// Each topic of `rec`, when it reads several (none otherwise): topic 0
    /// as `first` (applied, ends) gives it, the others from `applied_more`
    /// (their start where unknown).
    fn inputs(
        &self,
        rec: &VersionRecord,
        first: (&[u64], &[u64]),
        applied_more: &[Vec<u64>],
    ) -> Vec<Input> {
        if rec.more_topics.is_empty() {
            return Vec::new();
        }
        let mut out = vec![Input {
            status: InputStatus {
                topic: rec.topic.clone(),
                applied_offsets: first.0.to_vec(),
                end_offsets: first.1.to_vec(),
            },
            counts: (0, 0),
        }];
        for (i, topic) in rec.more_topics.iter().enumerate() {
            let ends = self.log.end_offsets(topic).unwrap_or_default();
            let start = self.log.start_offsets(topic).unwrap_or_default();
            let start_of = |p: usize| start.get(p).copied().unwrap_or(0);
            let known = applied_more.get(i);
            let applied: Vec<u64> = (0..ends.len())
                .map(|p| {
                    known
                        .and_then(|k| k.get(p))
                        .copied()
                        .unwrap_or(0)
                        .max(start_of(p))
                })
                .collect();
            let owned = |p: &usize| self.owns(*p);
            let total = (0..ends.len())
                .filter(owned)
                .map(|p| ends[p].saturating_sub(start_of(p)))
                .sum();
            let done = (0..ends.len())
                .filter(owned)
                .map(|p| applied[p].min(ends[p]).saturating_sub(start_of(p)))
                .sum();
            out.push(Input {
                status: InputStatus {
                    topic: topic.clone(),
                    applied_offsets: applied,
                    end_offsets: ends,
                },
                counts: (total, done),
            });
        }
        out
    }

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
                applied_more: p.applied_more.clone(),
                late: p.late,
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
        let view = self.stopped_views.lock().get(id).cloned();
        let offsets = view
            .as_ref()
            .and_then(|v| v.offsets().ok())
            .unwrap_or_default();
        #[expect(
            clippy::cast_possible_truncation,
            reason = "`partitions` is the topic's partition count, which a u32 holds"
        )]
        let applied_more = (1..=rec.more_topics.len() as u32)
            .map(|t| {
                (0..partitions as u32)
                    .map(|p| {
                        let row = view.as_ref().and_then(|v| {
                            v.get(&crate::runtime::timers::Keys::new(p).offset(t), Some(p))
                                .ok()
                                .flatten()
                        });
                        row.as_deref()
                            .and_then(super::inputs::read_offset)
                            .unwrap_or(0)
                    })
                    .collect()
            })
            .collect();
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
            applied_more,
            late: 0,
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
            applied_more,
            late,
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
        let inputs = self.inputs(rec, (&applied, &ends), &applied_more);
        let (more_total, more_done) = inputs.iter().skip(1).fold((0, 0), |(t, d), i| {
            let (it, id) = i.counts;
            (t + it, d + id)
        });
        let (total, done) = (total + more_total, done + more_done);
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
            late_events: (!rec.more_topics.is_empty()).then_some(late),
            inputs: inputs.into_iter().map(|i| i.status).collect(),
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
