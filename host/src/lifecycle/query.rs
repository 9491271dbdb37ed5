//! Reading views: resolving `NAME` or `NAME@VERSION` to a version, and the
//! reads of its view (get, scan, digest) and the diff of two views.

use std::sync::Arc;
use std::time::Duration;

use super::running::Running;
use super::{Host, admin::replay_progress, barrier, unknown_version};
use crate::diff::{self, DiffOptions, DiffReport};
use crate::error::{Error, Result};
use crate::model::{Row, ScanPage, State};
use crate::registry::{Stored, VersionId};
use crate::store::{Layout, Shards};

impl Host {
    /// Resolves `name` (the promoted version) or `name@version`.
    pub fn resolve(&self, spec: &str) -> Result<VersionId> {
        if spec.contains('@') {
            return VersionId::parse(spec);
        }
        crate::registry::validate_name(spec)?;
        let alias = self.registry.processor(spec)?;
        match alias.promoted {
            Some(version) => Ok(VersionId {
                name: spec.to_owned(),
                version,
            }),
            None => {
                let known = self.registry.versions()?.iter().any(|r| r.name == spec);
                Err(Error::not_found(if known {
                    format!(
                        "`{spec}` has no promoted version yet (its first version is promoted \
                         when it catches up); name a version: {spec}@VERSION"
                    )
                } else {
                    format!("no processor named `{spec}`")
                }))
            }
        }
    }

    /// The view of `id`, running or stopped.
    fn view(&self, id: &VersionId) -> Result<Arc<Shards>> {
        if let Some(run) = self.running.lock().get(id) {
            return Ok(run.view.clone());
        }
        if let Some(view) = self.stopped_views.lock().get(id) {
            return Ok(view.clone());
        }
        match self.registry.version(id)? {
            Some(rec) if matches!(rec.stored, Stored::Retired { .. }) => Err(Error::not_found(
                format!("the view of {id} was dropped when the version was retired"),
            )),
            _ => Err(unknown_version(id)),
        }
    }

    /// The topic `id` reads: from its worker when it runs (no registry read
    /// on the path of every `get`), else from the registry.
    fn topic_of(&self, id: &VersionId) -> Result<Option<String>> {
        if let Some(run) = self.running.lock().get(id) {
            return Ok(Some(run.record.topic.clone()));
        }
        Ok(self.registry.version(id)?.map(|rec| rec.topic))
    }

    /// The value under `key` in the view of `spec`.
    pub fn get(&self, spec: &str, key: &[u8]) -> Result<(VersionId, Option<Vec<u8>>)> {
        let id = self.resolve(spec)?;
        let view = self.view(&id)?;
        // With state per partition, the shard of the partition the key's
        // events go to is asked first: where a processor keys its rows by its
        // events' keys, one shard read answers.
        let hint = match view.layout() {
            Layout::Shared => None,
            Layout::PerPartition => self
                .topic_of(&id)?
                .and_then(|topic| self.log.partition_for(&topic, Some(key)).ok()),
        };
        let value = view.get(key, hint)?;
        Ok((id, value))
    }

    /// A page of rows of the view of `spec`.
    pub fn scan(
        &self,
        spec: &str,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<ScanPage> {
        self.scan_with(spec, prefix, start_after, limit, false)
    }

    /// [`Host::scan`], with each row's stored bytes in `value_base64` when
    /// `raw`.
    pub fn scan_with(
        &self,
        spec: &str,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
        raw: bool,
    ) -> Result<ScanPage> {
        let id = self.resolve(spec)?;
        let snap = self.view(&id)?.snapshot()?;
        let mut rows = snap.scan(prefix, start_after, limit.saturating_add(1))?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_after = if more {
            rows.last().map(|(k, _)| crate::model::display_key(k))
        } else {
            None
        };
        Ok(ScanPage {
            id: id.to_string(),
            rows: rows.iter().map(|(k, v)| Row::with_raw(k, v, raw)).collect(),
            next_after,
        })
    }

    /// The digest of the view of `spec`.
    pub fn digest(&self, spec: &str) -> Result<(VersionId, crate::store::ViewDigest)> {
        let id = self.resolve(spec)?;
        let digest = self.view(&id)?.snapshot()?.digest()?;
        Ok((id, digest))
    }

    /// Compares the views of `a` and `b` at the same log position: holds both
    /// workers at the furthest offsets either has applied, waits (up to
    /// `wait`) until both have reached them, and compares the snapshots.
    pub fn diff(
        &self,
        a: &str,
        b: &str,
        options: &DiffOptions,
        wait: Duration,
    ) -> Result<DiffReport> {
        let (ida, idb) = (self.resolve(a)?, self.resolve(b)?);
        if ida.name != idb.name {
            return Err(Error::invalid(format!(
                "{ida} and {idb} are versions of different processors; a diff compares two \
                 versions of one processor"
            )));
        }
        let _one_at_a_time = self.diff_lock.lock();
        let (va, vb) = (self.view(&ida)?, self.view(&idb)?);
        let runs: Vec<Arc<Running>> = {
            let running = self.running.lock();
            [&ida, &idb]
                .iter()
                .filter_map(|id| running.get(*id).cloned())
                .collect()
        };
        let statuses = [
            (&ida, self.version_status(&ida)?),
            (&idb, self.version_status(&idb)?),
        ];
        for (id, status) in statuses {
            if status.state == State::Replaying && wait.is_zero() {
                return Err(Error::conflict(format!(
                    "{id} is still replaying ({}); a diff needs both views at the same \
                     log position: retry when it has caught up, or ask to wait \
                     (use --wait SECONDS)",
                    replay_progress(&status)
                )));
            }
        }
        let topics = |id: &VersionId| -> Result<Vec<String>> {
            Ok(self
                .registry
                .version(id)?
                .map(|r| r.topics())
                .unwrap_or_default())
        };
        let (ta, tb) = (topics(&ida)?, topics(&idb)?);
        let (sa, sb) = barrier::meet((&ida, &va, &ta), (&idb, &vb, &tb), runs, wait)?;
        diff::compare(&ida, &idb, &sa, &sb, options)
    }
}
