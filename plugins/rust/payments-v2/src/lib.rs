//! Version 2 of the example payments processor: version 1 with a new fraud
//! rule.
//!
//! It keeps the same rows as version 1 (`account/<account>` →
//! `{"txns":N,"total_cents":S,"flagged":F}`, `flag/<txn>` →
//! `{"account":..,"amount_cents":..,"rule":..,"timestamp":..}`) but flags:
//! - `large-amount`: an amount of at least `large_cents` (default 1000000);
//! - `velocity`: the account's `max_txns`-th payment (default 4), counting
//!   this one, with an event time in `(timestamp - window_ms, timestamp]`
//!   (default window 60000 ms).
//!
//! When both match, the rule written is `large-amount`. To count, it keeps the
//! account's recent event times under `window/<account>` as an ascending JSON
//! array of integers.
//!
//! The rules live in [`process_batch`] and [`Window::record`], which need no
//! bindings, so they are tested natively.
//!
//! It speaks contract `kappa:processor@0.2.0`, which passes a batch in
//! columns (read in place with `kappa-guest`): its rules are cheap per event,
//! so the cost of passing events in would otherwise dominate. Version 1 speaks
//! 0.1.0; the host runs both side by side.

// The generated export of `process` takes the 13 flattened fields of
// `event-batch` as parameters, as the canonical ABI passes them.
#![allow(clippy::too_many_arguments)]

use std::cell::Cell;
use std::collections::VecDeque;

use payments_core::{
    ACCOUNT_PREFIX, AccountRow, Batch, FLAG_PREFIX, Failure, Flag, Input, Rule, View,
    WINDOW_PREFIX, Writer, account_of, load, parse_config, parse_payment,
};
use serde::Deserialize;

wit_bindgen::generate!({
    path: "../../../wit/processor-0.2.0",
    world: "processor",
});

use kappa::processor::types::EventError;
use kappa::processor::view;

/// Largest `window_ms` accepted: the largest integer every language of the
/// examples represents exactly.
const MAX_WINDOW_MS: u64 = (1 << 53) - 1;

/// The configuration given at deploy, as a JSON object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Smallest amount, in cents, flagged as `large-amount`.
    pub large_cents: u64,
    /// Length of the velocity window, in milliseconds.
    pub window_ms: u64,
    /// Payments within the window, this one included, that flag it.
    pub max_txns: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            large_cents: 1_000_000,
            window_ms: 60_000,
            max_txns: 4,
        }
    }
}

impl Config {
    /// Parses the `init` string and checks the ranges serde cannot.
    pub fn parse(config: &str) -> Result<Config, String> {
        let config: Config = parse_config(config)?;
        if !(1..=MAX_WINDOW_MS).contains(&config.window_ms) {
            return Err(format!(
                "invalid config: window_ms must be between 1 and {MAX_WINDOW_MS}, not {}",
                config.window_ms
            ));
        }
        if config.max_txns == 0 {
            return Err("invalid config: max_txns must be at least 1".into());
        }
        Ok(config)
    }
}

/// The recent event times of one account, ascending, as stored under
/// `window/<account>`.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(transparent)]
pub struct Window(pub VecDeque<i64>);

impl Window {
    /// Records a payment at `timestamp` and returns how many recorded
    /// payments, this one included, fall in `(timestamp - window_ms,
    /// timestamp]`.
    ///
    /// A late event's time is inserted in order (after equal times). Then
    /// every time at or before `newest - window_ms` is dropped, `newest` being
    /// the largest time kept: no later event in order can count it again.
    pub fn record(&mut self, timestamp: i64, window_ms: u64) -> usize {
        let times = &mut self.0;
        let at = times.partition_point(|&t| t <= timestamp);
        times.insert(at, timestamp);
        // i128: exact for any i64 time and window, as in languages with big
        // integers.
        let start = i128::from(timestamp) - i128::from(window_ms);
        let first = times.partition_point(|&t| i128::from(t) <= start);
        let count = at + 1 - first;
        if let Some(&newest) = times.back() {
            let cutoff = i128::from(newest) - i128::from(window_ms);
            let stale = times.partition_point(|&t| i128::from(t) <= cutoff);
            times.drain(..stale);
        }
        count
    }
}

/// What a batch caches per account.
#[derive(Debug, Default)]
struct AccountState {
    row: AccountRow,
    window: Window,
}

/// Applies one batch of payments to `view`.
///
/// Account rows and windows are cached for the batch and written once at its
/// end; flags are written as they are raised, each under its own key.
pub fn process_batch<'a>(
    config: &Config,
    view: &mut impl View,
    events: impl IntoIterator<Item = Input<'a>>,
) -> Result<(), Failure> {
    let mut accounts: Batch<AccountState> = Batch::default();
    let mut writer = Writer::default();
    for event in events {
        let checked = parse_payment(event.value).map_err(|m| Failure::event(event.offset, m))?;
        let account =
            account_of(event.key, &checked.payment).map_err(|m| Failure::event(event.offset, m))?;
        let state = accounts.get(account, || {
            Ok(AccountState {
                row: load(view, writer.key(ACCOUNT_PREFIX, account))?.unwrap_or_default(),
                window: load(view, writer.key(WINDOW_PREFIX, account))?.unwrap_or_default(),
            })
        })?;
        let recent = state.window.record(event.timestamp, config.window_ms);
        let rule = if checked.amount_cents >= config.large_cents {
            Some(Rule::LargeAmount)
        } else if recent >= config.max_txns as usize {
            Some(Rule::Velocity)
        } else {
            None
        };
        state
            .row
            .record(checked.amount_cents, rule.is_some())
            .map_err(|m| Failure::event(event.offset, m))?;
        if let Some(rule) = rule {
            let flag = Flag {
                account,
                amount_cents: checked.amount_cents,
                rule,
                timestamp: event.timestamp,
            };
            writer.put(view, FLAG_PREFIX, &checked.payment.txn, &flag)?;
        }
    }
    for (account, state) in accounts.rows() {
        writer.put(view, ACCOUNT_PREFIX, account, &state.row)?;
        writer.put(view, WINDOW_PREFIX, account, &state.window)?;
    }
    Ok(())
}

thread_local! {
    /// Set by `init`; plain configuration, never state the view should hold.
    static CONFIG: Cell<Option<Config>> = const { Cell::new(None) };
}

/// The view of this version, through the imported `view` interface.
struct HostView;

impl View for HostView {
    fn get(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        view::get(key)
    }

    fn put(&mut self, key: &[u8], value: &[u8]) {
        view::put(key, value);
    }
}

struct Component;

impl Guest for Component {
    fn init(config: String) -> Result<(), Error> {
        let config = Config::parse(&config).map_err(Error::InvalidConfig)?;
        CONFIG.set(Some(config));
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
        // `process_batch` takes plain inputs; a malformed batch (a host bug)
        // is kept aside and reported once the iteration stops at it.
        let mut malformed = None;
        let inputs = events.map_while(|event| match event {
            Ok(e) => Some(Input {
                offset: e.offset,
                timestamp: e.timestamp,
                key: e.key,
                value: e.value,
            }),
            Err(e) => {
                malformed = Some(e);
                None
            }
        });
        let result = process_batch(&config, &mut HostView, inputs);
        if let Some(e) = malformed {
            return Err(Error::Internal(e.to_string()));
        }
        result.map_err(|failure| match failure {
            Failure::Event { offset, message } => {
                Error::InvalidEvent(EventError { offset, message })
            }
            Failure::Internal(message) => Error::Internal(message),
        })
    }
}

export!(Component);

#[cfg(test)]
mod tests {
    use payments_core::MemoryView;

    use super::*;

    fn payment(
        offset: u64,
        timestamp: i64,
        account: &str,
        amount_cents: u64,
    ) -> (u64, i64, Vec<u8>, Vec<u8>) {
        let json = format!(
            r#"{{"txn":"t-{offset}","account":"{account}","amount_cents":{amount_cents},"merchant":"m"}}"#
        );
        (
            offset,
            timestamp,
            account.as_bytes().to_vec(),
            json.into_bytes(),
        )
    }

    fn run(
        config: &Config,
        view: &mut MemoryView,
        events: &[(u64, i64, Vec<u8>, Vec<u8>)],
    ) -> Result<(), Failure> {
        process_batch(
            config,
            view,
            events.iter().map(|(offset, timestamp, key, value)| Input {
                offset: *offset,
                timestamp: *timestamp,
                key: Some(key),
                value,
            }),
        )
    }

    fn get(view: &MemoryView, key: &str) -> Option<String> {
        view.0
            .get(key.as_bytes())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    #[test]
    fn window_counts_the_half_open_interval() {
        let mut w = Window::default();
        assert_eq!(w.record(1_000, 100), 1);
        assert_eq!(w.record(1_050, 100), 2);
        // 1000 is at the open end of (1000, 1100]: not counted, and dropped.
        assert_eq!(w.record(1_100, 100), 2);
        assert_eq!(w.0, [1_050, 1_100]);
        assert_eq!(w.record(1_100, 100), 3);
        assert_eq!(w.0, [1_050, 1_100, 1_100]);
        // A late event is inserted in order and counts only what precedes it.
        assert_eq!(w.record(1_060, 100), 2);
        assert_eq!(w.0, [1_050, 1_060, 1_100, 1_100]);
        // A jump drops everything but itself.
        assert_eq!(w.record(5_000, 100), 1);
        assert_eq!(w.0, [5_000]);
        // No overflow at the edges of i64.
        let mut w = Window::default();
        assert_eq!(w.record(i64::MIN, MAX_WINDOW_MS), 1);
        assert_eq!(w.record(i64::MAX, MAX_WINDOW_MS), 1);
        assert_eq!(w.0, [i64::MAX]);
    }

    #[test]
    fn velocity_flags_the_fourth_payment_within_a_minute() {
        let config = Config::default();
        let mut view = MemoryView::default();
        // Split over two batches: the window is carried by the view.
        run(
            &config,
            &mut view,
            &[payment(0, 0, "a", 10), payment(1, 20_000, "a", 10)],
        )
        .expect("valid");
        assert_eq!(get(&view, "window/a").as_deref(), Some("[0,20000]"));
        run(
            &config,
            &mut view,
            &[
                payment(2, 40_000, "a", 10),
                payment(3, 59_999, "a", 10), // 4 in (-1, 59999]: flagged
                payment(4, 60_000, "b", 10), // another account
                payment(5, 70_000, "a", 2_000_000), // 4 in (10000, 70000], large wins
                payment(6, 200_000, "a", 10), // alone again
            ],
        )
        .expect("valid");
        assert_eq!(
            get(&view, "flag/t-3").as_deref(),
            Some(r#"{"account":"a","amount_cents":10,"rule":"velocity","timestamp":59999}"#)
        );
        assert_eq!(
            get(&view, "flag/t-5").as_deref(),
            Some(
                r#"{"account":"a","amount_cents":2000000,"rule":"large-amount","timestamp":70000}"#
            )
        );
        assert_eq!(get(&view, "flag/t-2"), None);
        assert_eq!(get(&view, "flag/t-6"), None);
        assert_eq!(
            get(&view, "account/a").as_deref(),
            Some(r#"{"txns":6,"total_cents":2000050,"flagged":2}"#)
        );
        assert_eq!(get(&view, "window/a").as_deref(), Some("[200000]"));
        assert_eq!(get(&view, "window/b").as_deref(), Some("[60000]"));
    }

    #[test]
    fn config_ranges_are_checked() {
        assert_eq!(Config::parse(""), Ok(Config::default()));
        assert_eq!(
            Config::parse(r#"{"max_txns":2,"window_ms":10}"#),
            Ok(Config {
                large_cents: 1_000_000,
                window_ms: 10,
                max_txns: 2
            })
        );
        assert_eq!(
            Config::parse(r#"{"max_txns":0}"#),
            Err("invalid config: max_txns must be at least 1".into())
        );
        assert!(Config::parse(r#"{"window_ms":0}"#).is_err());
        assert!(Config::parse(r#"{"window_ms":9007199254740992}"#).is_err());
        assert!(Config::parse(r#"{"max_txns":"4"}"#).is_err());
        assert!(Config::parse(r#"{"rules":[]}"#).is_err());
    }

    #[test]
    fn a_negative_amount_names_its_offset() {
        let mut view = MemoryView::default();
        let bad = (
            3,
            0,
            b"a".to_vec(),
            br#"{"txn":"t","account":"a","amount_cents":-1,"merchant":"m"}"#.to_vec(),
        );
        assert_eq!(
            run(&Config::default(), &mut view, &[payment(2, 0, "a", 1), bad]),
            Err(Failure::event(3, "amount_cents is negative: -1"))
        );
    }
}
