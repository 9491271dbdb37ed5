//! The registry: which processors and versions exist, what state each version
//! is in, and which version the alias of each processor points to.
//!
//! It lives in one redb file (`registry.redb`) with every commit durable, so
//! a promotion or rollback is a single atomic, fsynced pointer swap: readers of
//! the alias see the old version or the new one, never a half state. Records
//! are stored as JSON so that the file stays readable and forward compatible
//! (unknown fields are ignored, new ones take defaults).
//!
//! The component bytes themselves are content-addressed files
//! (`plugins/<sha256>.wasm`), written before the version record that names
//! them, so a crash between the two leaves at worst an unreferenced file.
//!
//! Why one file of some 650 lines: the records, their stored form and the
//! transactions over them change together; a third of it is their tests.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Version records, keyed by `name@version`.
const VERSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("versions");
/// Processor records (the alias), keyed by name.
const PROCESSORS: TableDefinition<&str, &[u8]> = TableDefinition::new("processors");

/// `name@version`: the identity of a processor version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VersionId {
    /// Processor name, e.g. `payments`.
    pub name: String,
    /// Semantic version, e.g. `2.0.0`.
    pub version: semver::Version,
}

impl std::fmt::Display for VersionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.name, self.version)
    }
}

impl VersionId {
    /// Builds an id from a name and a version string, validating both: they end
    /// up in file paths and URLs, so only a safe alphabet is accepted.
    pub fn new(name: &str, version: &str) -> Result<Self> {
        validate_name(name)?;
        let parsed = semver::Version::parse(version).map_err(|e| {
            Error::invalid(format!(
                "version `{version}` of `{name}` is not a semantic version (like 1.2.0): {e}"
            ))
        })?;
        if !parsed.build.is_empty() {
            return Err(Error::invalid(format!(
                "version `{version}` has build metadata (`+{}`), which semver ignores for identity; \
                 use a pre-release like 1.0.0-rc.1 instead",
                parsed.build
            )));
        }
        Ok(VersionId {
            name: name.to_owned(),
            version: parsed,
        })
    }

    /// Parses `name@version`.
    pub fn parse(spec: &str) -> Result<Self> {
        let (name, version) = spec.split_once('@').ok_or_else(|| {
            Error::invalid(format!(
                "`{spec}` does not name a version: expected NAME@VERSION, like payments@2.0.0"
            ))
        })?;
        Self::new(name, version)
    }
}

/// Checks a processor name: lowercase letters, digits, `-` and `_`, starting
/// with a letter or digit, at most 64 characters.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "`{name}` is not a valid processor name: use 1 to 64 lowercase letters, digits, \
             `-` or `_`, starting with a letter or digit"
        )))
    }
}

/// Where a version is in its life, as stored. What status shows is derived
/// from this, the `caught_up` flag and the alias (see `crate::lifecycle`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Stored {
    /// Processing: replaying history or tailing the live log.
    Active,
    /// Stopped by a failure of the plugin; the view is kept as it was.
    Failed(Failure),
    /// Stopped on request; its view was dropped.
    Retired {
        /// When, in ms since the Unix epoch.
        at_ms: i64,
    },
}

/// Why and where a version stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// Topic of the event being processed, named for a version that reads
    /// several topics (absent otherwise). Not `topic`: a failure is stored
    /// inside its version's record, beside the version's own `topic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_topic: Option<String>,
    /// Partition of the event being processed, when known.
    pub partition: Option<u32>,
    /// Offset of the event being processed, when known.
    pub offset: Option<u64>,
    /// What happened, including the guest's own message.
    pub message: String,
    /// When, in ms since the Unix epoch.
    pub at_ms: i64,
}

impl Failure {
    /// Where it happened, as far as known.
    pub fn place(&self) -> Place {
        Place {
            partition: self.partition,
            offset: self.offset,
        }
    }
}

/// Where in the log something happened: shown as `at partition P offset O`,
/// `at partition P` when the offset is unknown, and as nothing when the
/// partition is (the one wording of a failure's location).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Place {
    /// The partition, when known.
    pub partition: Option<u32>,
    /// The offset, when known (shown only with a partition).
    pub offset: Option<u64>,
}

impl Place {
    /// The event at `offset` of `partition`.
    pub fn event(partition: u32, offset: u64) -> Self {
        Place {
            partition: Some(partition),
            offset: Some(offset),
        }
    }

    /// Whether the place shows as anything (a partition is known).
    pub fn is_known(&self) -> bool {
        self.partition.is_some()
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.partition, self.offset) {
            (Some(p), Some(o)) => write!(f, "at partition {p} offset {o}"),
            (Some(p), None) => write!(f, "at partition {p}"),
            (None, _) => Ok(()),
        }
    }
}

/// Per-version settings given at deploy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Configuration string handed to the plugin's `init`.
    #[serde(default)]
    pub config: String,
    /// Promote automatically once caught up.
    #[serde(default)]
    pub auto_promote: bool,
    /// Longest time one `process` call may run before the version fails.
    #[serde(default = "default_batch_timeout_ms")]
    pub batch_timeout_ms: u64,
    /// The plugin's memory limit: all its linear memories and tables, and
    /// the view writes the host holds for its batch in progress.
    #[serde(default = "default_memory_limit")]
    pub memory_limit_bytes: u64,
    /// What to do with an event the plugin fails on.
    #[serde(default)]
    pub on_error: OnError,
    /// Most threads this version processes its partitions on, when its
    /// state is per partition; 0: the host's `--threads-per-version`.
    /// Bounds what a replay takes of the machine.
    #[serde(default)]
    pub threads: u32,
    /// With several input topics: how long, in ms, the merge waits for a
    /// topic at its end of the log before it delivers the other topics'
    /// events without it; 0: it does not wait. Absent when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub topic_idle_ms: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The poison-event policy of a version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Stop the version at the event (it is marked failed).
    #[default]
    Stop,
    /// Skip the event, record it as a dead letter, and go on.
    Skip,
}

impl std::str::FromStr for OnError {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "stop" => Ok(OnError::Stop),
            "skip" => Ok(OnError::Skip),
            other => Err(format!(
                "`{other}` is not a poison-event policy: use stop or skip"
            )),
        }
    }
}

impl std::fmt::Display for OnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OnError::Stop => "stop",
            OnError::Skip => "skip",
        })
    }
}

/// An event a version skipped under the `skip` policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Topic of the event, named for a version that reads several topics
    /// (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Partition of the event.
    pub partition: u32,
    /// Offset of the event.
    pub offset: u64,
    /// Why the plugin failed on it.
    pub message: String,
    /// When, in ms since the Unix epoch.
    pub at_ms: i64,
}

impl DeadLetter {
    /// The event's place in the log.
    pub fn place(&self) -> Place {
        Place::event(self.partition, self.offset)
    }
}

/// Dead letters kept per version (the count goes on beyond it).
pub const DEAD_LETTERS_KEPT: usize = 1000;

fn default_batch_timeout_ms() -> u64 {
    10_000
}
fn default_memory_limit() -> u64 {
    512 << 20
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            config: String::new(),
            auto_promote: false,
            batch_timeout_ms: default_batch_timeout_ms(),
            memory_limit_bytes: default_memory_limit(),
            on_error: OnError::Stop,
            threads: 0,
            topic_idle_ms: 0,
        }
    }
}

/// Everything the registry knows about one version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionRecord {
    /// Processor name.
    pub name: String,
    /// Semantic version.
    pub version: semver::Version,
    /// sha256 of the component bytes, hex.
    pub digest: String,
    /// The topic it reads (the first, index 0, when it reads several).
    pub topic: String,
    /// The other topics it reads, in the order given at deploy (index 1
    /// on); absent when it reads one, so that records of one topic read and
    /// write as before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_topics: Vec<String>,
    /// Deploy settings.
    pub settings: Settings,
    /// When it was deployed, in ms since the Unix epoch.
    pub deployed_at_ms: i64,
    /// Whether it has reached the end of the log at least once.
    #[serde(default)]
    pub caught_up: bool,
    /// Events skipped under the `skip` policy, oldest first (the latest
    /// `DEAD_LETTERS_KEPT`).
    #[serde(default)]
    pub dead_letters: Vec<DeadLetter>,
    /// How many events were skipped in all.
    #[serde(default)]
    pub dead_letter_count: u64,
    /// Active, failed or retired.
    #[serde(flatten)]
    pub stored: Stored,
}

impl VersionRecord {
    /// The version's id.
    pub fn id(&self) -> VersionId {
        VersionId {
            name: self.name.clone(),
            version: self.version.clone(),
        }
    }

    /// Every topic it reads, by topic index: `topic`, then `more_topics`.
    pub fn topics(&self) -> Vec<String> {
        std::iter::once(self.topic.clone())
            .chain(self.more_topics.iter().cloned())
            .collect()
    }

    /// The name of topic `index` (the first topic past the end).
    pub fn topic_name(&self, index: u32) -> &str {
        match index.checked_sub(1) {
            Some(i) => self.more_topics.get(i as usize).unwrap_or(&self.topic),
            None => &self.topic,
        }
    }
}

/// The alias of one processor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessorRecord {
    /// The promoted version, which `NAME` (without a version) reads.
    pub promoted: Option<semver::Version>,
    /// The version promoted before it: the target of a rollback.
    pub previous: Option<semver::Version>,
    /// The version that was `previous` until it was retired (there is then
    /// nothing to roll back to, and a rollback says why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_previous: Option<semver::Version>,
}

/// The registry file.
#[derive(Debug)]
pub struct Registry {
    db: Database,
    path: PathBuf,
}

fn db_err(path: &Path, e: impl Into<redb::Error>) -> Error {
    Error::Registry {
        path: path.to_owned(),
        source: Box::new(e.into()),
    }
}

fn decode<T: for<'de> Deserialize<'de>>(path: &Path, key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| Error::Record {
        path: path.to_owned(),
        key: key.to_owned(),
        source,
    })
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(Error::Encode)
}

impl Registry {
    /// Opens or creates the registry at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let db = Database::create(path).map_err(|e| db_err(path, e))?;
        let txn = db.begin_write().map_err(|e| db_err(path, e))?;
        txn.open_table(VERSIONS).map_err(|e| db_err(path, e))?;
        txn.open_table(PROCESSORS).map_err(|e| db_err(path, e))?;
        txn.commit().map_err(|e| db_err(path, e))?;
        Ok(Registry {
            db,
            path: path.to_owned(),
        })
    }

    /// Every version record, ordered by name then version.
    pub fn versions(&self) -> Result<Vec<VersionRecord>> {
        let txn = self.db.begin_read().map_err(|e| db_err(&self.path, e))?;
        let table = txn
            .open_table(VERSIONS)
            .map_err(|e| db_err(&self.path, e))?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(|e| db_err(&self.path, e))? {
            let (k, v) = entry.map_err(|e| db_err(&self.path, e))?;
            out.push(decode::<VersionRecord>(&self.path, k.value(), v.value())?);
        }
        out.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
        Ok(out)
    }

    /// One version record, if it exists.
    pub fn version(&self, id: &VersionId) -> Result<Option<VersionRecord>> {
        let txn = self.db.begin_read().map_err(|e| db_err(&self.path, e))?;
        let table = txn
            .open_table(VERSIONS)
            .map_err(|e| db_err(&self.path, e))?;
        let key = id.to_string();
        match table.get(key.as_str()).map_err(|e| db_err(&self.path, e))? {
            Some(v) => Ok(Some(decode(&self.path, &key, v.value())?)),
            None => Ok(None),
        }
    }

    /// The alias record of a processor (default when it has none yet).
    pub fn processor(&self, name: &str) -> Result<ProcessorRecord> {
        let txn = self.db.begin_read().map_err(|e| db_err(&self.path, e))?;
        let table = txn
            .open_table(PROCESSORS)
            .map_err(|e| db_err(&self.path, e))?;
        match table.get(name).map_err(|e| db_err(&self.path, e))? {
            Some(v) => decode(&self.path, name, v.value()),
            None => Ok(ProcessorRecord::default()),
        }
    }

    /// Runs `f` on the current version record and alias of `id`'s processor in
    /// one durable transaction, storing what `f` leaves in them. `f` may
    /// refuse by returning an error, in which case nothing changes.
    pub fn update<R>(
        &self,
        id: &VersionId,
        f: impl FnOnce(&mut Option<VersionRecord>, &mut ProcessorRecord) -> Result<R>,
    ) -> Result<R> {
        self.update_processor(&id.name, |versions, alias| {
            let key = id.to_string();
            let mut record = versions.remove(&key);
            let out = f(&mut record, alias);
            if let Some(record) = record {
                versions.insert(key, record);
            }
            out
        })
    }

    /// Runs `f` on every version record of processor `name` (keyed by
    /// `name@version`) and its alias, in one durable transaction.
    pub fn update_processor<R>(
        &self,
        name: &str,
        f: impl FnOnce(
            &mut std::collections::BTreeMap<String, VersionRecord>,
            &mut ProcessorRecord,
        ) -> Result<R>,
    ) -> Result<R> {
        let txn = self.db.begin_write().map_err(|e| db_err(&self.path, e))?;
        let out = {
            let mut versions = txn
                .open_table(VERSIONS)
                .map_err(|e| db_err(&self.path, e))?;
            let mut processors = txn
                .open_table(PROCESSORS)
                .map_err(|e| db_err(&self.path, e))?;
            let prefix = format!("{name}@");
            let mut records = std::collections::BTreeMap::new();
            for entry in versions
                .range(prefix.as_str()..)
                .map_err(|e| db_err(&self.path, e))?
            {
                let (k, v) = entry.map_err(|e| db_err(&self.path, e))?;
                if !k.value().starts_with(&prefix) {
                    break;
                }
                records.insert(
                    k.value().to_owned(),
                    decode::<VersionRecord>(&self.path, k.value(), v.value())?,
                );
            }
            let mut alias = match processors.get(name).map_err(|e| db_err(&self.path, e))? {
                Some(v) => decode(&self.path, name, v.value())?,
                None => ProcessorRecord::default(),
            };
            let before: Vec<String> = records.keys().cloned().collect();
            let out = f(&mut records, &mut alias)?;
            for key in before {
                if !records.contains_key(&key) {
                    versions
                        .remove(key.as_str())
                        .map_err(|e| db_err(&self.path, e))?;
                }
            }
            for (key, record) in &records {
                versions
                    .insert(key.as_str(), encode(record)?.as_slice())
                    .map_err(|e| db_err(&self.path, e))?;
            }
            processors
                .insert(name, encode(&alias)?.as_slice())
                .map_err(|e| db_err(&self.path, e))?;
            out
        };
        txn.commit().map_err(|e| db_err(&self.path, e))?;
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;

    fn record(name: &str, version: &str) -> VersionRecord {
        VersionRecord {
            name: name.into(),
            version: semver::Version::parse(version).unwrap(),
            digest: "00".into(),
            topic: "t".into(),
            more_topics: Vec::new(),
            settings: Settings::default(),
            deployed_at_ms: 0,
            caught_up: false,
            dead_letters: Vec::new(),
            dead_letter_count: 0,
            stored: Stored::Active,
        }
    }

    #[test]
    fn a_place_reads_at_partition_p_offset_o() {
        assert_eq!(Place::event(1, 42).to_string(), "at partition 1 offset 42");
        let partition_only = Place {
            partition: Some(3),
            offset: None,
        };
        assert_eq!(partition_only.to_string(), "at partition 3");
        let offset_only = Place {
            partition: None,
            offset: Some(7),
        };
        assert_eq!(offset_only.to_string(), "");
        assert!(!offset_only.is_known() && partition_only.is_known());
    }

    #[test]
    fn a_record_of_one_topic_reads_and_writes_as_before() {
        let one = record("p", "1.0.0");
        let json = serde_json::to_value(&one).unwrap();
        assert!(json.get("more_topics").is_none(), "{json}");
        let mut two = one.clone();
        two.more_topics = vec!["limits".into()];
        let back: VersionRecord =
            serde_json::from_value(serde_json::to_value(&two).unwrap()).unwrap();
        assert_eq!(back.topics(), ["t", "limits"]);
        assert_eq!(back.topic_name(1), "limits");
        assert_eq!(back.topic_name(0), "t");
        let old: VersionRecord = serde_json::from_value(json).unwrap();
        assert_eq!(old.topics(), ["t"]);
        // A failure naming its event's topic is stored beside the version's.
        two.stored = Stored::Failed(Failure {
            event_topic: Some("limits".into()),
            partition: Some(0),
            offset: Some(12),
            message: "boom".into(),
            at_ms: 0,
        });
        let back: VersionRecord = serde_json::from_slice(&encode(&two).unwrap()).unwrap();
        assert_eq!((back.topic.as_str(), back.stored), ("t", two.stored));
    }

    #[test]
    fn ids_are_validated() {
        assert_eq!(
            VersionId::parse("payments@2.0.0").unwrap().to_string(),
            "payments@2.0.0"
        );
        for bad in [
            "payments",
            "Pay@1.0.0",
            "../x@1.0.0",
            "p@1.0",
            "p@1.0.0+build",
            "@1.0.0",
        ] {
            assert!(VersionId::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn updates_are_atomic_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.redb");
        let id = VersionId::parse("p@1.0.0").unwrap();
        {
            let reg = Registry::open(&path).unwrap();
            reg.update(&id, |rec, alias| {
                *rec = Some(record("p", "1.0.0"));
                alias.promoted = Some(id.version.clone());
                Ok(())
            })
            .unwrap();
            // A refused update changes nothing.
            let refused: Result<()> = reg.update(&id, |rec, alias| {
                rec.as_mut().unwrap().caught_up = true;
                alias.promoted = None;
                Err(Error::invalid("no"))
            });
            assert!(refused.is_err());
        }
        let reg = Registry::open(&path).unwrap();
        let rec = reg.version(&id).unwrap().unwrap();
        assert!(!rec.caught_up);
        assert_eq!(reg.processor("p").unwrap().promoted, Some(id.version));
        assert_eq!(reg.versions().unwrap().len(), 1);
        // Another processor whose name shares a prefix is not touched.
        let other = VersionId::parse("p2@1.0.0").unwrap();
        reg.update(&other, |rec, _| {
            *rec = Some(record("p2", "1.0.0"));
            Ok(())
        })
        .unwrap();
        let n = reg.update_processor("p", |recs, _| Ok(recs.len())).unwrap();
        assert_eq!(n, 1);
    }
}
