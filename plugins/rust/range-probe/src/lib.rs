//! A test plugin of contract `kappa:processor@0.3.0-rc.1` that runs the view
//! commands its events spell, so that a test can drive `view.range` (and the
//! writes it must see) from outside the component.
//!
//! Each event's value is one command, keys and values in hex (so any byte,
//! a zero byte included, can be written):
//!
//! - `put KEY VALUE`, `del KEY`: a write or a deletion;
//! - `range START END LIMIT`: one `view.range` call (`END` is `-` for no
//!   upper bound);
//! - `prefix PREFIX PAGE`: every row under `PREFIX`, read in pages of `PAGE`
//!   rows with `kappa_guest::prefix`.
//!
//! A read writes what it returned under `out/<offset as 20 digits>`:
//! `KEY=VALUE` pairs in hex, comma-separated, in the order returned. A
//! command it cannot read is refused as an invalid event.

// The generated export of `process` takes the 13 flattened fields of
// `event-batch` as parameters, as the canonical ABI passes them.
#![allow(clippy::too_many_arguments)]

wit_bindgen::generate!({
    path: "../../../wit/processor-0.3.0-rc.1",
    world: "processor",
});

use kappa::processor::types::EventError;
use kappa::processor::view;

struct Probe;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Result<Vec<u8>, String> {
    if !text.len().is_multiple_of(2) {
        return Err(format!("{text:?} is not hex"));
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| format!("{text:?} is not hex"))
        })
        .collect()
}

fn number(text: &str) -> Result<u32, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not a number"))
}

/// Rows a read returned, as `(key, value)`.
type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// Runs one command; the rows a read returned, if it was one.
fn run(command: &str) -> Result<Option<Rows>, String> {
    let words: Vec<&str> = command.split_whitespace().collect();
    match words.as_slice() {
        ["put", key, value] => {
            view::put(&unhex(key)?, &unhex(value)?);
            Ok(None)
        }
        ["del", key] => {
            view::delete(&unhex(key)?);
            Ok(None)
        }
        ["range", start, end, limit] => {
            let end = match *end {
                "-" => None,
                end => Some(unhex(end)?),
            };
            let rows = view::range(&unhex(start)?, end.as_deref(), number(limit)?);
            Ok(Some(rows.into_iter().map(|r| (r.key, r.value)).collect()))
        }
        ["prefix", prefix, page] => {
            let read = kappa_guest::view_range!(view);
            let rows = kappa_guest::prefix(read, &unhex(prefix)?, number(page)?).collect();
            Ok(Some(rows))
        }
        _ => Err(format!("unknown command {command:?}")),
    }
}

impl Guest for Probe {
    fn init(_config: String) -> Result<(), Error> {
        Ok(())
    }

    fn process(batch: EventBatch) -> Result<(), Error> {
        let columns = kappa_guest::columns!(batch);
        let events = columns
            .events()
            .map_err(|e| Error::Internal(e.to_string()))?;
        for event in events {
            let event = event.map_err(|e| Error::Internal(e.to_string()))?;
            let refuse = |message: String| {
                Error::InvalidEvent(EventError {
                    offset: event.offset,
                    message,
                })
            };
            let command = std::str::from_utf8(event.value).map_err(|e| refuse(e.to_string()))?;
            if let Some(rows) = run(command).map_err(refuse)? {
                let listed: Vec<String> = rows
                    .iter()
                    .map(|(k, v)| format!("{}={}", hex(k), hex(v)))
                    .collect();
                let key = format!("out/{:020}", event.offset);
                view::put(key.as_bytes(), listed.join(",").as_bytes());
            }
        }
        Ok(())
    }
}

export!(Probe);
