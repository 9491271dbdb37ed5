//! The JSON shapes of the HTTP API and of every `--json` output of the CLI.
//! One definition serves the server (which serializes) and the client (which
//! deserializes), so the two cannot drift. These shapes are documented in
//! `docs/api.md`; fields are only ever added, never renamed or removed.
//!
//! Why one file of some 650 lines: the shapes are plain data that a client
//! and `docs/api.md` read together, and one place keeps them from drifting.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

pub use crate::log::event::EventLine;
use crate::log::{AppendedRange, TopicInfo};

use crate::registry::{Failure, Settings};

/// Where a version is in its life, as status shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Applying the log from its beginning; not yet at the live end.
    Replaying,
    /// At the live end (it reached it at least once), not promoted.
    CaughtUp,
    /// The version the processor's alias points to.
    Promoted,
    /// Stopped by a plugin failure.
    Failed,
    /// Stopped on request; view dropped.
    Retired,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::Replaying => "replaying",
            State::CaughtUp => "caught up",
            State::Promoted => "promoted",
            State::Failed => "failed",
            State::Retired => "retired",
        })
    }
}

/// A topic and how far each partition has been written.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TopicStatus {
    /// Topic name.
    pub name: String,
    /// Number of partitions.
    pub partitions: u32,
    /// Per partition, the offset the next event will get.
    pub end_offsets: Vec<u64>,
}

impl From<TopicInfo> for TopicStatus {
    fn from(t: TopicInfo) -> Self {
        TopicStatus {
            name: t.name,
            partitions: t.partitions,
            end_offsets: t.end_offsets,
        }
    }
}

/// One input topic of a version that reads several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputStatus {
    /// The topic.
    pub topic: String,
    /// Next offset the view will apply, per partition.
    pub applied_offsets: Vec<u64>,
    /// The topic's end offsets, per partition.
    pub end_offsets: Vec<u64>,
}

/// Status of one version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionStatus {
    /// `name@version`.
    pub id: String,
    /// Processor name.
    pub name: String,
    /// Semantic version.
    pub version: String,
    /// sha256 of the component.
    pub digest: String,
    /// Topic it reads.
    pub topic: String,
    /// Lifecycle state.
    pub state: State,
    /// Whether it has reached the live end at least once (always false once
    /// retired).
    pub caught_up: bool,
    /// Per partition, the next offset the view will apply (empty once
    /// retired).
    pub applied_offsets: Vec<u64>,
    /// Per partition, the log's end offset.
    pub end_offsets: Vec<u64>,
    /// Events in the log not yet applied to the view; `null` for a retired
    /// version (it has no view any more).
    pub lag: Option<u64>,
    /// Share of the log applied, 0 to 1; `null` for a retired version.
    pub progress: Option<f64>,
    /// How many threads process the version's partitions (1 for a shared
    /// view; 0 when not running).
    #[serde(default)]
    pub threads: usize,
    /// Recent processing rate.
    pub events_per_second: f64,
    /// Estimated seconds until caught up, while replaying.
    pub eta_seconds: Option<f64>,
    /// Events processed since this host process started.
    pub processed_since_start: u64,
    /// Why and where it failed, when failed.
    pub failure: Option<Failure>,
    /// Deploy settings.
    pub settings: Settings,
    /// When it was deployed, ms since the Unix epoch.
    pub deployed_at_ms: i64,
    /// Events skipped under the `skip` policy, in all.
    #[serde(default)]
    pub dead_letter_count: u64,
    /// The latest skipped events (at most 100), oldest first.
    #[serde(default)]
    pub dead_letters: Vec<crate::registry::DeadLetter>,
    /// Why the log cannot be read right now (a Kafka broker down or
    /// unreachable); the worker retries and resumes where it stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_error: Option<String>,
    /// For a version that reads several topics: each topic's offsets, by
    /// topic index (absent for a version of one topic).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<InputStatus>,
    /// For a version that reads several topics: how many events this host
    /// delivered late since it started (an event of one topic with an
    /// earlier timestamp than an event of another topic delivered before
    /// it), so that an operator sees when live interleaving differed from
    /// timestamp order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_events: Option<u64>,
}

/// Status of one processor: its alias and versions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessorStatus {
    /// Processor name.
    pub name: String,
    /// Topic its versions read.
    pub topic: String,
    /// The promoted version (what `NAME` reads).
    pub promoted: Option<String>,
    /// The version a rollback returns to.
    pub previous: Option<String>,
    /// Every version, oldest first.
    pub versions: Vec<VersionStatus>,
}

/// Status of the whole host.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReport {
    /// Every processor.
    pub processors: Vec<ProcessorStatus>,
    /// Every topic.
    pub topics: Vec<TopicStatus>,
}

/// What a deploy did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeployReport {
    /// `name@version`.
    pub id: String,
    /// sha256 of the component.
    pub digest: String,
    /// Topic it reads.
    pub topic: String,
    /// False when the same bytes were already deployed (nothing changed).
    pub created: bool,
    /// Whether the machine code came from the compiled-code cache.
    pub compiled_from_cache: bool,
    /// Time spent compiling or loading, ms.
    pub compile_ms: u64,
    /// Events in the log when the replay started.
    pub events_to_replay: u64,
}

/// What a produce appended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProduceReport {
    /// Topic.
    pub topic: String,
    /// Number of events appended.
    pub appended: u64,
    /// Offsets assigned, per partition.
    pub partitions: Vec<PartitionRange>,
    /// The request id, when the request carried one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// True when a request with this id had been stored before: nothing
    /// was stored now, and the offsets are those it got then.
    #[serde(default)]
    pub duplicate: bool,
}

/// Offsets appended to one partition.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartitionRange {
    /// The partition.
    pub partition: u32,
    /// Offset of the first event appended.
    pub first_offset: u64,
    /// Offset of the last event appended.
    pub last_offset: u64,
    /// Number of events appended.
    pub count: u64,
}

impl From<AppendedRange> for PartitionRange {
    fn from(r: AppendedRange) -> Self {
        PartitionRange {
            partition: r.partition,
            first_offset: r.first_offset,
            last_offset: r.last_offset,
            count: r.count,
        }
    }
}

/// One row of a view, with its value rendered for people and JSON tools.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The key, as text (see `key_encoding`).
    pub key: String,
    /// `utf8` (omitted) or `hex` for keys that are not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_encoding: Option<String>,
    /// The value: the JSON text as stored when the bytes are JSON, else a
    /// string.
    pub value: StoredJson,
    /// `json`, `utf8` or `base64`: how `value` renders the bytes.
    pub value_encoding: String,
    /// The stored bytes, base64, when asked for (`raw=true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_base64: Option<String>,
}

impl Row {
    /// Renders raw key and value bytes.
    pub fn new(key: &[u8], value: &[u8]) -> Self {
        let (value, value_encoding) = StoredJson::render(value);
        Row {
            key: display_key(key),
            key_encoding: std::str::from_utf8(key).is_err().then(|| "hex".to_owned()),
            value,
            value_encoding: value_encoding.to_owned(),
            value_base64: None,
        }
    }

    /// [`Row::new`], with the stored bytes in `value_base64` when `raw`.
    pub fn with_raw(key: &[u8], value: &[u8], raw: bool) -> Self {
        Row {
            value_base64: raw.then(|| base64::engine::general_purpose::STANDARD.encode(value)),
            ..Row::new(key, value)
        }
    }

    /// The stored bytes from `value_base64` (present when asked for with
    /// `raw=true`).
    pub fn raw_bytes(&self) -> Result<Option<Vec<u8>>, String> {
        self.value_base64
            .as_deref()
            .map(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .map_err(|e| {
                        format!("the server sent a `value_base64` that is not base64: {e}")
                    })
            })
            .transpose()
    }
}

/// A view value as JSON text: the stored text when the bytes are JSON (key
/// order and number formatting kept, whitespace between tokens left out so
/// that it stays on one line), else a JSON string.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StoredJson(Box<serde_json::value::RawValue>);

impl StoredJson {
    /// Renders value bytes: the JSON text when they are JSON, else UTF-8
    /// text, else base64, as a JSON string.
    pub fn render(value: &[u8]) -> (StoredJson, &'static str) {
        if let Ok(raw) = serde_json::from_slice::<Box<serde_json::value::RawValue>>(value) {
            return (StoredJson(compact(raw)), "json");
        }
        let (text, encoding) = match std::str::from_utf8(value) {
            Ok(s) => (s.to_owned(), "utf8"),
            Err(_) => (
                base64::engine::general_purpose::STANDARD.encode(value),
                "base64",
            ),
        };
        (StoredJson::string(&text), encoding)
    }

    /// `text` as a JSON string.
    fn string(text: &str) -> StoredJson {
        StoredJson(serde_json::value::to_raw_value(text).expect("a string serializes as JSON"))
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// The text a person reads: a JSON string's contents, else the JSON text
    /// as stored.
    pub fn display(&self) -> String {
        self.as_string().unwrap_or_else(|| self.get().to_owned())
    }

    /// The contents when the value is a JSON string.
    pub fn as_string(&self) -> Option<String> {
        let text = self.get();
        text.starts_with('"')
            .then(|| serde_json::from_str::<String>(text).ok())
            .flatten()
    }

    /// The value parsed (keys sorted: for comparing, not for showing).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(self.get()).unwrap_or(serde_json::Value::Null)
    }
}

/// `raw` without the whitespace between its tokens (strings untouched).
fn compact(raw: Box<serde_json::value::RawValue>) -> Box<serde_json::value::RawValue> {
    let text = raw.get();
    if !text.contains([' ', '\t', '\n', '\r']) {
        return raw;
    }
    let (mut out, mut in_string, mut escaped) = (String::with_capacity(text.len()), false, false);
    for c in text.chars() {
        if in_string {
            (escaped, in_string) = (!escaped && c == '\\', escaped || c != '"');
        } else if matches!(c, ' ' | '\t' | '\n' | '\r') {
            continue;
        } else {
            in_string = c == '"';
        }
        out.push(c);
    }
    // Valid JSON stays valid without whitespace between tokens; keep the
    // text as it was should that ever not hold.
    serde_json::value::RawValue::from_string(out).unwrap_or(raw)
}

impl PartialEq for StoredJson {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl std::fmt::Display for StoredJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.get())
    }
}

/// A key as text: itself when UTF-8, else `0x` and hex.
pub fn display_key(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(s) => s.to_owned(),
        Err(_) => format!("0x{}", hex::encode(key)),
    }
}

/// Parses a key given on the command line or in a URL: `0x...` hex only when
/// the caller marks it as hex, otherwise the UTF-8 bytes.
pub fn parse_key(key: &str, hex_key: bool) -> Result<Vec<u8>, String> {
    if hex_key {
        hex::decode(key.trim_start_matches("0x")).map_err(|e| format!("key is not hex: {e}"))
    } else {
        Ok(key.as_bytes().to_vec())
    }
}

/// Renders value bytes: JSON when they parse as JSON, else UTF-8 text, else
/// base64.
pub fn render_value(value: &[u8]) -> (serde_json::Value, &'static str) {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(value) {
        return (v, "json");
    }
    match std::str::from_utf8(value) {
        Ok(s) => (serde_json::Value::String(s.to_owned()), "utf8"),
        Err(_) => (
            serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(value)),
            "base64",
        ),
    }
}

/// One event read back from the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEvent {
    /// Partition.
    pub partition: u32,
    /// Offset within the partition.
    pub offset: u64,
    /// Event time, ms since the Unix epoch.
    pub timestamp: i64,
    /// The key as text (see `key_encoding`), or null.
    pub key: Option<String>,
    /// `hex` when the key is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_encoding: Option<String>,
    /// The value, rendered like `Row::value`.
    pub value: StoredJson,
    /// `json`, `utf8` or `base64`.
    pub value_encoding: String,
    /// Headers, name to value (lossy UTF-8).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

impl From<crate::log::Record> for LogEvent {
    fn from(r: crate::log::Record) -> Self {
        let (value, encoding) = StoredJson::render(&r.value);
        LogEvent {
            partition: r.partition,
            offset: r.offset,
            timestamp: r.timestamp,
            key: r.key.as_deref().map(display_key),
            key_encoding: r
                .key
                .as_deref()
                .filter(|k| std::str::from_utf8(k).is_err())
                .map(|_| "hex".to_owned()),
            value,
            value_encoding: encoding.to_owned(),
            headers: r
                .headers
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
                .collect(),
        }
    }
}

/// A page of events of one partition.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsumePage {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Events in offset order.
    pub events: Vec<LogEvent>,
    /// Offset to read from next.
    pub next_offset: u64,
    /// The partition's end offset when read.
    pub end_offset: u64,
}

/// Answer to a point lookup.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetReply {
    /// The version that answered (the promoted one when none was named).
    pub id: String,
    /// Whether the key exists.
    pub found: bool,
    /// The row, when found.
    pub row: Option<Row>,
}

/// A page of a scan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScanPage {
    /// The version that answered.
    pub id: String,
    /// Rows in key order.
    pub rows: Vec<Row>,
    /// Pass as `after` to get the next page; absent on the last page.
    pub next_after: Option<String>,
}

/// A scan or diff page with the row cap the server applied, when it did: a
/// request for more rows than a page holds gets a full page and `capped_at`.
/// (Deserialized by hand: serde's `flatten` cannot read the partition keys of
/// a page's `offsets`, and would sort the keys of a row's value.)
#[derive(Debug, Clone, Serialize)]
pub struct Capped<T> {
    /// The page.
    #[serde(flatten)]
    pub page: T,
    /// The most rows the server puts in a page, present only when the
    /// request asked for more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capped_at: Option<usize>,
}

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for Capped<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        // Read as text, not as a `Value`: a row's value keeps its key order
        // and number formatting.
        #[derive(Deserialize)]
        struct Cap {
            capped_at: Option<usize>,
        }
        let raw = Box::<serde_json::value::RawValue>::deserialize(deserializer)?;
        let Cap { capped_at } = serde_json::from_str(raw.get()).map_err(D::Error::custom)?;
        let page = serde_json::from_str(raw.get()).map_err(D::Error::custom)?;
        Ok(Capped { page, capped_at })
    }
}

/// A view's digest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DigestReply {
    /// The version.
    pub id: String,
    /// sha256 over the rows in key order.
    pub sha256: String,
    /// Number of rows.
    pub rows: u64,
    /// Applied offsets (next to apply) per partition.
    pub offsets: BTreeMap<u32, u64>,
}

/// An error answer of the API.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorReply {
    /// The error.
    pub error: ErrorDetail,
}

/// Kind and message of an error.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable kind: invalid, not_found, conflict, too_large, storage, internal.
    pub kind: String,
    /// What went wrong and what to do.
    pub message: String,
}

/// Body of `POST /v1/topics`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTopic {
    /// Topic name.
    pub name: String,
    /// Number of partitions (1 to 1024).
    pub partitions: u32,
}

/// Body of `POST /v1/topics/{topic}/events`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProduceRequest {
    /// The events, appended all or nothing.
    pub events: Vec<EventLine>,
    /// Makes the request idempotent: a request with an id already stored
    /// is not stored again (1 to 128 visible ASCII characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// Body of `POST /v1/processors/{name}/promote`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteRequest {
    /// The version to promote.
    pub version: String,
    /// Promote even if it has not caught up.
    #[serde(default)]
    pub force: bool,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;

    #[test]
    fn event_lines_convert_as_documented() {
        let (p, r) =
            EventLine::parse_line(r#"{"key":"a","value":{"x": 1, "y":[1, 2]},"timestamp":5}"#)
                .unwrap()
                .into_record(99)
                .unwrap();
        assert_eq!(p, None);
        assert_eq!(r.key.as_deref(), Some(&b"a"[..]));
        assert_eq!(r.value, br#"{"x":1,"y":[1,2]}"#);
        assert_eq!(r.timestamp, 5);
        let (_, r) = EventLine::parse_line(r#"{"key":7,"value":"plain text"}"#)
            .unwrap()
            .into_record(99)
            .unwrap();
        assert_eq!(r.key.as_deref(), Some(&b"7"[..]));
        assert_eq!(r.value, b"plain text");
        assert_eq!(r.timestamp, 99);
        let (p, r) =
            EventLine::parse_line(r#"{"value_base64":"AAE=","partition":2,"headers":{"h":"v"}}"#)
                .unwrap()
                .into_record(0)
                .unwrap();
        assert_eq!((p, r.value, r.key), (Some(2), vec![0, 1], None));
        assert_eq!(r.headers, vec![("h".to_owned(), b"v".to_vec())]);
    }

    #[test]
    fn bad_event_lines_say_why() {
        let err = |line: &str| match EventLine::parse_line(line) {
            Err(e) => e,
            Ok(l) => l.into_record(0).unwrap_err(),
        };
        assert!(
            err("{not json").contains("key must be a string")
                || err("{not json").contains("line 1")
        );
        assert!(err(r#"{"key":"a"}"#).contains("missing `value`"));
        assert!(err(r#"{"key":[1],"value":1}"#).contains("`key` must be a string or a number"));
        assert!(err(r#"{"value":1,"tiemstamp":3}"#).contains("unknown field `tiemstamp`"));
        assert!(err(r#"{"value":1,"timestamp":"x"}"#).contains("invalid type"));
        assert!(err(r#"{"value_base64":"!!"}"#).contains("not base64"));
    }

    #[test]
    fn rows_render_json_text_and_binary() {
        assert_eq!(Row::new(b"k", br#"{"a":1}"#).value_encoding, "json");
        let text = Row::new(b"k", b"hello");
        assert_eq!(
            (text.value.to_value(), text.value_encoding.as_str()),
            (serde_json::json!("hello"), "utf8")
        );
        let bin = Row::new(&[0xff], &[0xff, 0x00]);
        assert_eq!(bin.key, "0xff");
        assert_eq!(bin.key_encoding.as_deref(), Some("hex"));
        assert_eq!(bin.value_encoding, "base64");
    }

    #[test]
    fn a_json_value_keeps_its_text_and_raw_adds_the_bytes() {
        let row = Row::with_raw(b"k", b" {\"b\":1,\n \"a\": 2.50} ", true);
        assert_eq!(row.value.get(), r#"{"b":1,"a":2.50}"#);
        assert_eq!(row.value.display(), r#"{"b":1,"a":2.50}"#);
        assert_eq!(
            row.raw_bytes().unwrap().unwrap(),
            b" {\"b\":1,\n \"a\": 2.50} "
        );
        let spaced = Row::new(b"k", br#"[ "a \" b\\", {"c" : 1e3} ]"#);
        assert_eq!(spaced.value.get(), r#"["a \" b\\",{"c":1e3}]"#);
        let text = serde_json::to_string(&row).unwrap();
        assert!(text.contains(r#""value":{"b":1,"a":2.50},"#), "{text}");
        let back: Row = serde_json::from_str(&text).unwrap();
        assert_eq!(back, row);
        let quoted = Row::new(b"k", br#""a \"q\"""#);
        assert_eq!(quoted.value.display(), r#"a "q""#);
        assert!(Row::new(b"k", b"x").value_base64.is_none());
    }
}
