//! Changing what the host runs and serves: deploying a version, pointing the
//! alias at one (promote, rollback) and retiring one. These are serialized
//! by the host's admin lock, and each change to the registry is one atomic
//! update.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::{Host, unknown_version};
use crate::clock::now_ms;
use crate::error::{Error, Result, io};
use crate::model::{DeployReport, ProcessorStatus, VersionStatus};
use crate::registry::{ProcessorRecord, Settings, Stored, VersionId, VersionRecord};
use crate::store::Layout;

impl Host {
    /// Deploys `bytes` as `id`, reading `topic`. Validates the component and
    /// runs its `init` before anything is stored, so a bad plugin or a bad
    /// configuration is refused with nothing changed.
    pub fn deploy(
        self: &Arc<Self>,
        id: &VersionId,
        topic: &str,
        bytes: &[u8],
        settings: Settings,
    ) -> Result<DeployReport> {
        self.deploy_topics(id, &[topic.to_owned()], bytes, settings)
    }

    /// [`deploy`](Self::deploy) of a version reading `topics` (the first is
    /// topic index 0). Several topics need a component of contract 0.3.0
    /// (whose batch says each event's topic) and topics of one partition
    /// count: partition P of each is processed together, into shard P.
    pub fn deploy_topics(
        self: &Arc<Self>,
        id: &VersionId,
        topics: &[String],
        bytes: &[u8],
        settings: Settings,
    ) -> Result<DeployReport> {
        let _admin = self.admin_lock.lock();
        let Some((topic, more)) = topics.split_first() else {
            return Err(Error::invalid(format!(
                "{id}: no topic given: a version reads at least one (--topic NAME)"
            )));
        };
        let info = self.log.topic(topic)?;
        self.check_more_topics(topic, info.partitions, more)?;
        let digest = hex::encode(Sha256::digest(bytes));
        if let Some(existing) = self.registry.version(id)? {
            return deployed_again(id, existing, topics, digest, &settings);
        }
        self.check_same_topic(id, topic)?;

        let plugin = self.plugin(&digest, Some(bytes)).map_err(|e| match e {
            Error::Invalid(m) => Error::Invalid(format!("{id}: {m}")),
            other => other,
        })?;
        if more.is_empty() && settings.topic_idle_ms > 0 {
            return Err(Error::invalid(format!(
                "{id}: --topic-idle-ms is for a version of several topics (it waits for one at \
                 its end before going on with the others); {id} reads `{topic}` alone"
            )));
        }
        if !more.is_empty() && !plugin.contract().has_timers() {
            return Err(Error::invalid(format!(
                "{id} is a component of contract {}, whose batch has no topic column: a \
                 version reads several topics (--topic given {} times) from contract 0.3.0 \
                 on; deploy it with one --topic, or build it for kappa:processor@0.3.0",
                plugin.contract().version(),
                topics.len()
            )));
        }
        let label = id.to_string();
        let instance = self
            .runtime
            .instantiate(&plugin, &label, &settings)
            .map_err(|f| Error::invalid(format!("{id}: {}", f.message)))?;

        // Bytes first, then the record naming them: a crash in between leaves
        // only an unreferenced file.
        let blob = self.blob_path(&digest);
        if !blob.exists() {
            let tmp = blob.with_extension("tmp");
            std::fs::write(&tmp, bytes)
                .and_then(|()| std::fs::rename(&tmp, &blob))
                .map_err(io(format!("storing plugin {}", blob.display())))?;
        }
        let record = VersionRecord {
            name: id.name.clone(),
            version: id.version.clone(),
            digest: digest.clone(),
            topic: topic.to_owned(),
            more_topics: more.to_vec(),
            settings,
            deployed_at_ms: now_ms(),
            caught_up: false,
            dead_letters: Vec::new(),
            dead_letter_count: 0,
            stored: Stored::Active,
        };
        self.registry.update(id, |slot, _| {
            *slot = Some(record.clone());
            Ok(())
        })?;
        tracing::info!(version = %id, topics = topics.join(","), digest = short(&digest), "deployed");
        self.start(record, plugin.clone(), Some(instance))?;
        Ok(DeployReport {
            id: id.to_string(),
            digest,
            topic: topic.to_owned(),
            created: true,
            compiled_from_cache: plugin.from_cache,
            compile_ms: crate::clock::millis(plugin.load_time),
            events_to_replay: self.events_to_replay(topics),
        })
    }

    /// The events of `topics` a new version replays (from each partition's
    /// start).
    fn events_to_replay(&self, topics: &[String]) -> u64 {
        let mut events = 0;
        for t in topics {
            let ends = self.log.end_offsets(t).unwrap_or_default();
            let start = self.log.start_offsets(t).unwrap_or_default();
            events += ends
                .iter()
                .enumerate()
                .map(|(p, e)| e.saturating_sub(start.get(p).copied().unwrap_or(0)))
                .sum::<u64>();
        }
        events
    }

    /// Refuses topics past the first (`more`) that do not exist, repeat one,
    /// or have another partition count than the first (`partitions`).
    fn check_more_topics(&self, first: &str, partitions: u32, more: &[String]) -> Result<()> {
        for (i, t) in more.iter().enumerate() {
            if t == first || more[..i].contains(t) {
                return Err(Error::invalid(format!(
                    "topic `{t}` is given twice: give each input topic once"
                )));
            }
            let info = self.log.topic(t)?;
            if info.partitions != partitions {
                return Err(Error::invalid(format!(
                    "topic `{t}` has {} partitions and `{first}` {partitions}: the topics of \
                     a version must have the same number of partitions (co-partitioned), \
                     since partition P of each is processed together, into shard P of the view",
                    info.partitions
                )));
            }
        }
        Ok(())
    }

    /// Refuses a new version of a processor whose versions read another
    /// (first) topic: their views could not be compared.
    fn check_same_topic(&self, id: &VersionId, topic: &str) -> Result<()> {
        if let Some(other) = self.registry.versions()?.into_iter().find(|r| {
            r.name == id.name && r.topic != topic && !matches!(r.stored, Stored::Retired { .. })
        }) {
            return Err(Error::invalid(format!(
                "{} reads topic `{}`; every version of `{}` must read the same topic so that \
                 their views can be compared (asked for `{topic}`)",
                other.id(),
                other.topic,
                id.name
            )));
        }
        Ok(())
    }

    /// Points the alias `id.name` at `id`. Refuses a version that has not
    /// caught up (its view is partial) unless `force`.
    pub fn promote(&self, id: &VersionId, force: bool) -> Result<ProcessorStatus> {
        let _admin = self.admin_lock.lock();
        let status = self.version_status(id)?;
        self.registry.update(id, |rec, alias| {
            let rec = rec.as_ref().ok_or_else(|| unknown_version(id))?;
            match &rec.stored {
                Stored::Active => {}
                Stored::Failed(f) => {
                    return Err(Error::conflict(format!(
                        "{id} failed ({}); it cannot be promoted",
                        f.message
                    )));
                }
                Stored::Retired { .. } => {
                    return Err(Error::conflict(format!(
                        "{id} was retired; it cannot be promoted"
                    )));
                }
            }
            if !rec.caught_up && !force {
                return Err(Error::conflict(format!(
                    "{id} is still replaying ({}); promoting it now would serve a \
                     partial view: wait until `kappa status` shows it caught up, or force it \
                     (use --force)",
                    replay_progress(&status)
                )));
            }
            if alias.promoted.as_ref() == Some(&id.version) {
                return Ok(());
            }
            swap_alias(alias, &id.version);
            Ok(())
        })?;
        tracing::info!(version = %id, "promoted");
        self.processor_status(&id.name)
    }

    /// Points the alias back at the version promoted before the current one.
    pub fn rollback(&self, name: &str) -> Result<ProcessorStatus> {
        let _admin = self.admin_lock.lock();
        crate::registry::validate_name(name)?;
        self.registry.update_processor(name, |versions, alias| {
            let current = alias.promoted.clone().ok_or_else(|| {
                Error::not_found(format!(
                    "`{name}` has no promoted version to roll back from"
                ))
            })?;
            let previous = alias.previous.clone().ok_or_else(|| {
                Error::conflict(match &alias.retired_previous {
                    Some(retired) => format!(
                        "`{name}` has no previous version to roll back to: {name}@{retired}, \
                         promoted before {name}@{current}, was retired; promote another \
                         version instead (kappa promote {name}@VERSION)"
                    ),
                    None => format!(
                        "`{name}` has no previous version to roll back to ({name}@{current} is \
                         the only one ever promoted)"
                    ),
                })
            })?;
            let prev = versions.get(&format!("{name}@{previous}")).ok_or_else(|| {
                Error::conflict(format!(
                    "the previous version {name}@{previous} no longer exists"
                ))
            })?;
            if !matches!(prev.stored, Stored::Active) {
                return Err(Error::conflict(format!(
                    "the previous version {name}@{previous} is not active (failed or retired); \
                     promote another version instead"
                )));
            }
            alias.promoted = Some(previous);
            alias.previous = Some(current);
            Ok(())
        })?;
        tracing::info!(processor = name, "rolled back");
        self.processor_status(name)
    }

    /// Stops `id` and drops its view. Never the promoted version.
    pub fn retire(&self, id: &VersionId) -> Result<VersionStatus> {
        let _admin = self.admin_lock.lock();
        self.registry.update(id, |rec, alias| {
            let rec = rec.as_ref().ok_or_else(|| unknown_version(id))?;
            if matches!(rec.stored, Stored::Retired { .. }) {
                return Err(Error::conflict(format!("{id} is already retired")));
            }
            if alias.promoted.as_ref() == Some(&id.version) {
                return Err(Error::conflict(format!(
                    "{id} is the promoted version of `{}`; promote another version (or roll \
                     back) before retiring it",
                    id.name
                )));
            }
            Ok(())
        })?;
        let run = self.running.lock().remove(id);
        if let Some(run) = run {
            run.stop_and_join();
        }
        self.stopped_views.lock().remove(id);
        self.registry.update(id, |rec, alias| {
            if let Some(rec) = rec {
                rec.stored = Stored::Retired { at_ms: now_ms() };
            }
            if alias.previous.as_ref() == Some(&id.version) {
                alias.previous = None;
                alias.retired_previous = Some(id.version.clone());
            }
            Ok(())
        })?;
        let file = self.view_path(id, Layout::Shared);
        if file.exists() {
            std::fs::remove_file(&file)
                .map_err(io(format!("dropping the view {}", file.display())))?;
        }
        let shards = self.view_path(id, Layout::PerPartition);
        if shards.exists() {
            std::fs::remove_dir_all(&shards)
                .map_err(io(format!("dropping the view {}", shards.display())))?;
        }
        tracing::info!(version = %id, "retired");
        self.version_status(id)
    }
}

/// The answer to a deploy of a version that exists: the same bytes and
/// settings of an active version are a no-op, anything else is refused.
fn deployed_again(
    id: &VersionId,
    existing: VersionRecord,
    topics: &[String],
    digest: String,
    settings: &Settings,
) -> Result<DeployReport> {
    if existing.digest != digest {
        return Err(Error::conflict(format!(
            "{id} is already deployed with other bytes (sha256 {}, this file is {}); \
             a version is immutable: deploy the change under a new version",
            short(&existing.digest),
            short(&digest)
        )));
    }
    let differing = differing_settings(&existing, topics, settings);
    if matches!(existing.stored, Stored::Active) && !differing.is_empty() {
        return Err(Error::conflict(format!(
            "{id} is already deployed with these bytes but other settings ({}); the \
             settings are part of a version: deploy them under a new version, or \
             deploy again with the same settings",
            differing.join(", ")
        )));
    }
    match existing.stored {
        Stored::Active => Ok(DeployReport {
            id: id.to_string(),
            digest,
            topic: existing.topic,
            created: false,
            compiled_from_cache: true,
            compile_ms: 0,
            events_to_replay: 0,
        }),
        Stored::Failed(f) => Err(Error::conflict(format!(
            "{id} failed ({}); fix the plugin and deploy it as a new version",
            f.message
        ))),
        Stored::Retired { .. } => Err(Error::conflict(format!(
            "{id} was retired; deploy the plugin as a new version"
        ))),
    }
}

/// How far a replaying version is, as in "40% done, about 3 s to go".
pub(super) fn replay_progress(status: &VersionStatus) -> String {
    format!(
        "{:.0}% done{}",
        status.progress.unwrap_or(0.0) * 100.0,
        status
            .eta_seconds
            .map(|s| format!(", about {s:.0} s to go"))
            .unwrap_or_default()
    )
}

/// Points `alias` at `version`, keeping the one it replaces as the target of
/// a rollback.
pub(super) fn swap_alias(alias: &mut ProcessorRecord, version: &semver::Version) {
    if alias.promoted.as_ref() != Some(version) {
        alias.previous = alias.promoted.take();
        alias.promoted = Some(version.clone());
        alias.retired_previous = None;
    }
}

/// The settings of a deploy that differ from those `existing` was deployed
/// with, each as `--flag OLD (asked: NEW)`.
fn differing_settings(
    existing: &VersionRecord,
    topics: &[String],
    asked: &Settings,
) -> Vec<String> {
    let was = &existing.settings;
    let mut out = Vec::new();
    let mut differ = |flag: &str, old: String, new: String| {
        if old != new {
            out.push(format!("{flag} {old} (asked: {new})"));
        }
    };
    differ(
        "--topic",
        existing.topics().join(" --topic "),
        topics.join(" --topic "),
    );
    differ(
        "--config",
        format!("{:?}", was.config),
        format!("{:?}", asked.config),
    );
    differ(
        "--on-error",
        was.on_error.to_string(),
        asked.on_error.to_string(),
    );
    differ(
        "--auto-promote",
        was.auto_promote.to_string(),
        asked.auto_promote.to_string(),
    );
    differ(
        "--batch-timeout-ms",
        was.batch_timeout_ms.to_string(),
        asked.batch_timeout_ms.to_string(),
    );
    differ(
        "--topic-idle-ms",
        was.topic_idle_ms.to_string(),
        asked.topic_idle_ms.to_string(),
    );
    differ(
        "--memory-limit-mb",
        (was.memory_limit_bytes >> 20).to_string(),
        (asked.memory_limit_bytes >> 20).to_string(),
    );
    out
}

/// The first 12 hex digits of a digest, enough to tell two apart.
fn short(digest: &str) -> &str {
    &digest[..digest.len().min(12)]
}
