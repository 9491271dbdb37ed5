//! Version 1 of the example payments processor.
//!
//! It reads the payments stream (JSON payloads keyed by account) and keeps,
//! per account, `account/<account>` → `{"txns":N,"total_cents":S,"flagged":F}`.
//! Its one fraud rule flags every payment of at least `large_cents` (config,
//! default 500000) and records it under `flag/<txn>` →
//! `{"account":..,"amount_cents":..,"rule":"large-amount","timestamp":..}`.
//!
//! The rule lives in [`process_batch`], which needs no bindings, so it is
//! tested natively; the component glue only adapts the WIT types to it.

use std::cell::Cell;

use payments_core::{
    ACCOUNT_PREFIX, AccountRow, Batch, FLAG_PREFIX, Failure, Flag, Input, Rule, View, Writer,
    account_of, load, parse_config, parse_payment,
};
use serde::Deserialize;

wit_bindgen::generate!({
    path: "../../../wit/processor-0.1.0",
    world: "processor",
});

use kappa::processor::types::EventError;
use kappa::processor::view;

/// The configuration given at deploy, as a JSON object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Smallest amount, in cents, flagged as `large-amount`.
    pub large_cents: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            large_cents: 500_000,
        }
    }
}

/// Applies one batch of payments to `view`.
///
/// Account rows are cached for the batch and written once at its end; flags
/// are written as they are raised, each under its own key.
pub fn process_batch<'a>(
    config: &Config,
    view: &mut impl View,
    events: impl IntoIterator<Item = Input<'a>>,
) -> Result<(), Failure> {
    let mut accounts: Batch<AccountRow> = Batch::default();
    let mut writer = Writer::default();
    for event in events {
        let checked = parse_payment(event.value).map_err(|m| Failure::event(event.offset, m))?;
        let account =
            account_of(event.key, &checked.payment).map_err(|m| Failure::event(event.offset, m))?;
        let row = accounts.get(account, || {
            Ok(load(view, writer.key(ACCOUNT_PREFIX, account))?.unwrap_or_default())
        })?;
        let large = checked.amount_cents >= config.large_cents;
        row.record(checked.amount_cents, large)
            .map_err(|m| Failure::event(event.offset, m))?;
        if large {
            let flag = Flag {
                account,
                amount_cents: checked.amount_cents,
                rule: Rule::LargeAmount,
                timestamp: event.timestamp,
            };
            writer.put(view, FLAG_PREFIX, &checked.payment.txn, &flag)?;
        }
    }
    for (account, row) in accounts.rows() {
        writer.put(view, ACCOUNT_PREFIX, account, row)?;
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
        let config = parse_config(&config).map_err(Error::InvalidConfig)?;
        CONFIG.set(Some(config));
        Ok(())
    }

    fn process(events: Vec<Event>) -> Result<(), Error> {
        let config = CONFIG
            .get()
            .ok_or_else(|| Error::Internal("process called before init".into()))?;
        let inputs = events.iter().map(|e| Input {
            offset: e.offset,
            timestamp: e.timestamp,
            key: e.key.as_deref(),
            value: &e.value,
        });
        process_batch(&config, &mut HostView, inputs).map_err(|failure| match failure {
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

    fn payment(offset: u64, key: Option<&'static str>, json: &'static str) -> Input<'static> {
        Input {
            offset,
            timestamp: 1_000 + offset as i64,
            key: key.map(str::as_bytes),
            value: json.as_bytes(),
        }
    }

    fn dump(view: &MemoryView) -> Vec<(String, String)> {
        view.0
            .iter()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn totals_and_large_amount_flags() {
        let mut view = MemoryView::default();
        let config = Config::default();
        process_batch(
            &config,
            &mut view,
            [
                payment(
                    0,
                    Some("acct-1"),
                    r#"{"txn":"t-1","account":"acct-1","amount_cents":1250,"merchant":"m-04"}"#,
                ),
                payment(
                    1,
                    Some("acct-1"),
                    r#"{"txn":"t-2","account":"acct-1","amount_cents":500000,"merchant":"m-01"}"#,
                ),
                // No key: the payload names the account.
                payment(
                    2,
                    None,
                    r#"{"txn":"t-3","account":"acct-2","amount_cents":499999,"merchant":"m-01"}"#,
                ),
            ],
        )
        .expect("valid batch");
        // A second batch starts from the rows of the first.
        process_batch(
            &config,
            &mut view,
            [payment(
                3,
                Some("acct-1"),
                r#"{"txn":"t-4","account":"acct-1","amount_cents":1,"merchant":"m"}"#,
            )],
        )
        .expect("valid batch");
        assert_eq!(
            dump(&view),
            [
                ("account/acct-1", r#"{"txns":3,"total_cents":501251,"flagged":1}"#),
                ("account/acct-2", r#"{"txns":1,"total_cents":499999,"flagged":0}"#),
                ("flag/t-2", r#"{"account":"acct-1","amount_cents":500000,"rule":"large-amount","timestamp":1001}"#),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
    }

    #[test]
    fn threshold_comes_from_config() {
        let config: Config = parse_config(r#"{"large_cents":100}"#).expect("valid config");
        let mut view = MemoryView::default();
        process_batch(
            &config,
            &mut view,
            [payment(
                0,
                None,
                r#"{"txn":"t-1","account":"a","amount_cents":100,"merchant":"m"}"#,
            )],
        )
        .expect("valid batch");
        assert!(view.0.contains_key(b"flag/t-1".as_slice()));
        assert_eq!(parse_config::<Config>(""), Ok(Config::default()));
        assert!(parse_config::<Config>(r#"{"large_cents":-1}"#).is_err());
        assert!(parse_config::<Config>(r#"{"window_ms":1}"#).is_err());
    }

    #[test]
    fn a_malformed_payload_names_its_offset() {
        let mut view = MemoryView::default();
        let err = process_batch(
            &Config::default(),
            &mut view,
            [
                payment(
                    7,
                    None,
                    r#"{"txn":"t-1","account":"a","amount_cents":1,"merchant":"m"}"#,
                ),
                payment(8, None, "not json"),
            ],
        )
        .expect_err("invalid payload");
        assert_eq!(
            err,
            Failure::event(8, "value is not JSON: expected ident at line 1 column 2")
        );
    }
}
