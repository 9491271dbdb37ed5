//! The JSON form of an event as a producer writes it: a line of
//! `kappa produce` input, or an element of a produce request's `events`.
//! It lives with the log, beside [`NewRecord`], so that the parser of these
//! untrusted bytes is fuzzed without building the rest of the host.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::NewRecord;

/// One event as produced: a line of `kappa produce` input, or an element of
/// a produce request.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventLine {
    /// Key: a string, or a number (its decimal text). Absent or null: no key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<serde_json::Value>,
    /// Value: a string is stored as its UTF-8 bytes; any other JSON value as
    /// its compact JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
    /// Value as base64, for binary payloads (instead of `value`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_base64: Option<String>,
    /// Event time, ms since the Unix epoch. Absent: the append time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
    /// Explicit partition. Absent: by key hash, or round-robin without key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
    /// Headers, name to UTF-8 value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

impl EventLine {
    /// Converts to a log record; `now_ms` stands in for a missing timestamp.
    pub fn into_record(self, now_ms: i64) -> Result<(Option<u32>, NewRecord), String> {
        let key = match self.key {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s.into_bytes()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string().into_bytes()),
            Some(other) => {
                return Err(format!(
                    "`key` must be a string or a number, not {}",
                    json_kind(&other)
                ));
            }
        };
        let value = match (self.value, self.value_base64) {
            (Some(_), Some(_)) => return Err("give `value` or `value_base64`, not both".into()),
            (None, None) | (Some(serde_json::Value::Null), None) => {
                return Err("missing `value` (use \"\" for an empty value)".into());
            }
            (Some(serde_json::Value::String(s)), None) => s.into_bytes(),
            (Some(v), None) => serde_json::to_vec(&v).map_err(|e| e.to_string())?,
            (None, Some(b64)) => base64::engine::general_purpose::STANDARD
                .decode(b64.as_bytes())
                .map_err(|e| format!("`value_base64` is not base64: {e}"))?,
        };
        Ok((
            self.partition,
            NewRecord {
                timestamp: self.timestamp.unwrap_or(now_ms),
                key,
                value,
                headers: self
                    .headers
                    .into_iter()
                    .map(|(k, v)| (k, v.into_bytes()))
                    .collect(),
            },
        ))
    }

    /// Parses one line of `kappa produce` input.
    pub fn parse_line(line: &str) -> Result<Self, String> {
        serde_json::from_str(line).map_err(|e| e.to_string())
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}
