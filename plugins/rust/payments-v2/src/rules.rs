//! The rules of payments v2: the configuration, the velocity window and
//! [`process_batch`], which need no bindings. `payments-v2-shards` includes this
//! file as it is, so that both versions write the same rows.

use std::collections::VecDeque;

pub use payments_core::WindowConfig as Config;
use payments_core::{
    ACCOUNT_PREFIX, AccountRow, Batch, FLAG_PREFIX, Failure, Flag, Input, Rule, View,
    WINDOW_PREFIX, Writer, account_of, load, parse_payment,
};
use serde::Deserialize;

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
