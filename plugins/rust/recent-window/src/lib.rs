//! An example plugin of contract `kappa:processor@0.3.0-rc.1` that reads
//! its view by key range: it keeps the last `keep` events of each account.
//!
//! Each event (keyed by its account) is stored under
//! `w/<account>/<offset as 20 digits>`, its value as the row's value; the
//! offsets are zero-padded so that key order is offset order. Then every row
//! under the account's prefix `w/<account>/` is read, in pages of `page`
//! rows (`kappa_guest::prefix`), the row just written included, and all but
//! the newest `keep` are deleted. An account's events are all in one
//! partition, and so are its rows: no key is written by two partitions.
//!
//! Configuration (JSON, all optional): `keep` (default 10, at least 1) and
//! `page` (default 64, at least 1). An event without a key, or whose key holds
//! a `/` (which would make one account's prefix cover another's rows), is
//! refused.
//!
//! The logic is [`record`], over the [`RangeView`] trait, so that it runs
//! and is tested natively.

use serde::Deserialize;

/// The configuration given at deploy, as a JSON object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Events kept per account.
    pub keep: u32,
    /// Rows read per range call.
    pub page: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config { keep: 10, page: 64 }
    }
}

impl Config {
    /// Parses the `init` string (empty: the defaults).
    pub fn parse(config: &str) -> Result<Config, String> {
        if config.trim().is_empty() {
            return Ok(Config::default());
        }
        let config: Config =
            serde_json::from_str(config).map_err(|e| format!("invalid config: {e}"))?;
        if config.keep == 0 || config.page == 0 {
            return Err("invalid config: keep and page must be at least 1".into());
        }
        Ok(config)
    }
}

/// The view as [`record`] uses it: contract 0.3.0-rc.1's `view`.
pub trait RangeView {
    /// Stores `value` under `key`.
    fn put(&mut self, key: &[u8], value: &[u8]);
    /// Removes `key`.
    fn delete(&mut self, key: &[u8]);
    /// `view.range`: at most `limit` rows at or after `start`, before `end`.
    fn range(&mut self, start: &[u8], end: Option<&[u8]>, limit: u32) -> Vec<(Vec<u8>, Vec<u8>)>;
}

/// The prefix of an account's rows, `w/<account>/`.
pub fn prefix(account: &[u8]) -> Vec<u8> {
    [b"w/", account, b"/"].concat()
}

/// The key of the event at `offset` of `account`.
pub fn row_key(account: &[u8], offset: u64) -> Vec<u8> {
    let mut key = prefix(account);
    key.extend_from_slice(format!("{offset:020}").as_bytes());
    key
}

/// Records the event at `offset` of `account` and expires the account's
/// rows past the newest `config.keep`. Refuses (with the message for the
/// operator) an account that holds a `/`.
pub fn record(
    config: &Config,
    view: &mut impl RangeView,
    account: &[u8],
    offset: u64,
    value: &[u8],
) -> Result<(), String> {
    if account.contains(&b'/') {
        return Err("an account key must not contain '/'".into());
    }
    view.put(&row_key(account, offset), value);
    let keys: Vec<Vec<u8>> = kappa_guest::prefix(
        |start: &[u8], end: Option<&[u8]>, limit: u32| view.range(start, end, limit),
        &prefix(account),
        config.page,
    )
    .map(|(key, _)| key)
    .collect();
    let stale = keys.len().saturating_sub(config.keep as usize);
    for key in &keys[..stale] {
        view.delete(key);
    }
    Ok(())
}

/// The component, built for the guest target only.
#[cfg(target_family = "wasm")]
mod component {
    // The generated export of `process` takes the 13 flattened fields of
    // `event-batch` as parameters, as the canonical ABI passes them.
    #![allow(clippy::too_many_arguments)]

    use std::cell::Cell;

    wit_bindgen::generate!({
        path: "../../../wit/processor-0.3.0-rc.1",
        world: "processor",
    });

    use kappa::processor::types::EventError;
    use kappa::processor::view;

    use super::{Config, RangeView, record};

    thread_local! {
        /// Set by `init`; plain configuration, never state.
        static CONFIG: Cell<Option<Config>> = const { Cell::new(None) };
    }

    /// This partition's shard of the view, through the imported `view`.
    struct HostView;

    impl RangeView for HostView {
        fn put(&mut self, key: &[u8], value: &[u8]) {
            view::put(key, value);
        }

        fn delete(&mut self, key: &[u8]) {
            view::delete(key);
        }

        fn range(
            &mut self,
            start: &[u8],
            end: Option<&[u8]>,
            limit: u32,
        ) -> Vec<(Vec<u8>, Vec<u8>)> {
            kappa_guest::view_range!(view)(start, end, limit)
        }
    }

    struct Component;

    impl Guest for Component {
        fn init(config: String) -> Result<(), Error> {
            CONFIG.set(Some(Config::parse(&config).map_err(Error::InvalidConfig)?));
            Ok(())
        }

        fn process(batch: EventBatch) -> Result<(), Error> {
            let config = CONFIG
                .get()
                .ok_or_else(|| Error::Internal("process called before init".into()))?;
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
                let account = event
                    .key
                    .ok_or_else(|| refuse("an event without a key: rows are per account".into()))?;
                record(&config, &mut HostView, account, event.offset, event.value)
                    .map_err(refuse)?;
            }
            Ok(())
        }
    }

    export!(Component);
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// A view in memory, counting its range calls.
    #[derive(Default)]
    struct Memory {
        rows: BTreeMap<Vec<u8>, Vec<u8>>,
        ranges: usize,
    }

    impl RangeView for Memory {
        fn put(&mut self, key: &[u8], value: &[u8]) {
            self.rows.insert(key.to_vec(), value.to_vec());
        }

        fn delete(&mut self, key: &[u8]) {
            self.rows.remove(key);
        }

        fn range(
            &mut self,
            start: &[u8],
            end: Option<&[u8]>,
            limit: u32,
        ) -> Vec<(Vec<u8>, Vec<u8>)> {
            self.ranges += 1;
            self.rows
                .iter()
                .filter(|(k, _)| k.as_slice() >= start && end.is_none_or(|e| k.as_slice() < e))
                .take(limit as usize)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        }
    }

    #[test]
    fn each_account_keeps_its_newest_events() {
        let config = Config { keep: 2, page: 1 };
        let mut view = Memory::default();
        for (offset, account) in [&b"a"[..], b"b", b"a", b"a", b"ab", b"a"]
            .iter()
            .enumerate()
        {
            record(
                &config,
                &mut view,
                account,
                offset as u64,
                format!("e{offset}").as_bytes(),
            )
            .expect("valid");
        }
        let rows: Vec<(String, String)> = view
            .rows
            .iter()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(k).into(),
                    String::from_utf8_lossy(v).into(),
                )
            })
            .collect();
        let row = |account: &str, offset: u64| {
            (
                String::from_utf8_lossy(&row_key(account.as_bytes(), offset)).into_owned(),
                format!("e{offset}"),
            )
        };
        assert_eq!(rows, [row("a", 3), row("a", 5), row("ab", 4), row("b", 1)]);
        assert_eq!(row("a", 3).0, "w/a/00000000000000000003");
        assert!(view.ranges > 6, "pages of one row: several reads per event");
        assert!(record(&config, &mut view, b"a/b", 9, b"").is_err());
    }

    #[test]
    fn config_is_checked() {
        assert_eq!(Config::parse(""), Ok(Config::default()));
        assert_eq!(
            Config::parse(r#"{"keep":3}"#),
            Ok(Config { keep: 3, page: 64 })
        );
        assert!(Config::parse(r#"{"keep":0}"#).is_err());
        assert!(Config::parse(r#"{"page":0}"#).is_err());
        assert!(Config::parse(r#"{"other":1}"#).is_err());
    }
}
