//! The rules of payments v3, which need no bindings: [`payment`] for an
//! event of the payments topic, [`limit`] for one of the limits topic, and
//! [`expire`] for the timers that fire.

use payments_core::{
    ACCOUNT_PREFIX, AccountRow, FLAG_PREFIX, Failure, Flag, Rule, View, Writer, account_of, load,
    parse_payment,
};
pub use payments_core::{MAX_WINDOW_MS, WindowConfig as Config};
use serde::{Deserialize, Serialize};

/// Prefix of the payments still in an account's window:
/// `recent/<account>/<timestamp as 20 digits>/<txn>`, valued with the amount
/// in cents as decimal digits.
pub const RECENT_PREFIX: &str = "recent/";
/// Prefix of an account's limit: `limit/<account>` → `{"limit_cents":N}`.
pub const LIMIT_PREFIX: &str = "limit/";

/// Rows read per range call.
pub const PAGE: u32 = 256;

/// The partition's shard as the rules use it: contract 0.3.0's `view` and
/// `timers`.
pub trait Shard: View {
    /// Removes `key`.
    fn delete(&mut self, key: &[u8]);
    /// `view.range`: at most `limit` rows at or after `start`, before `end`.
    fn range(&mut self, start: &[u8], end: Option<&[u8]>, limit: u32) -> Vec<(Vec<u8>, Vec<u8>)>;
    /// `timers.set`: the timer `name` at event time `at`, counting from the
    /// batch's event `event`.
    fn set_timer(&mut self, event: u32, name: &[u8], at: i64);
}

/// An event as the rules read it.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    /// Index in the batch.
    pub index: u32,
    /// Offset in its topic's partition.
    pub offset: u64,
    /// Event time, in milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// The key: the account.
    pub key: Option<&'a [u8]>,
    /// The JSON payload.
    pub value: &'a [u8],
}

/// An account's limit, under `limit/<account>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limit {
    /// The most an account may pay within the window, in cents.
    pub limit_cents: u64,
}

fn checked_account(account: &str, offset: u64) -> Result<&str, Failure> {
    if account.contains('/') {
        return Err(Failure::event(offset, "an account must not contain '/'"));
    }
    Ok(account)
}

/// `recent/<account>/<timestamp as 20 digits>/`, the start of an account's
/// payments at `timestamp`.
fn recent_at(account: &str, timestamp: i128) -> Vec<u8> {
    format!("{RECENT_PREFIX}{account}/{timestamp:020}/").into_bytes()
}

/// Applies one payment: counts the account's payments and their amounts in
/// the window `(timestamp - window_ms, timestamp]` with a range read of its
/// recent rows, flags the payment, records it, and sets the timer that
/// expires its recent row once event time reaches `timestamp + window_ms`.
pub fn payment(config: &Config, shard: &mut impl Shard, event: Event<'_>) -> Result<(), Failure> {
    let offset = event.offset;
    let checked = parse_payment(event.value).map_err(|m| Failure::event(offset, m))?;
    let account = account_of(event.key, &checked.payment).map_err(|m| Failure::event(offset, m))?;
    let account = checked_account(account, offset)?;
    if event.timestamp < 0 {
        return Err(Failure::event(
            offset,
            format!(
                "a payment's timestamp must not be negative: {}",
                event.timestamp
            ),
        ));
    }
    let timestamp = i128::from(event.timestamp);
    let start = recent_at(
        account,
        (timestamp - i128::from(config.window_ms) + 1).max(0),
    );
    let end = recent_at(account, timestamp + 1);
    let (mut count, mut sum) = (1u64, u128::from(checked.amount_cents));
    for (key, value) in kappa_guest::range(
        |s: &[u8], e: Option<&[u8]>, l: u32| shard.range(s, e, l),
        &start,
        Some(&end),
        PAGE,
    ) {
        let amount = std::str::from_utf8(&value)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| {
                Failure::Internal(format!(
                    "row {} of the view is corrupt",
                    String::from_utf8_lossy(&key)
                ))
            })?;
        count += 1;
        sum += u128::from(amount);
    }
    let mut writer = Writer::default();
    let limit: Option<Limit> = load(shard, writer.key(LIMIT_PREFIX, account))?;
    let rule = if checked.amount_cents >= config.large_cents {
        Some(Rule::LargeAmount)
    } else if count >= u64::from(config.max_txns) {
        Some(Rule::Velocity)
    } else if limit.is_some_and(|l| sum > u128::from(l.limit_cents)) {
        Some(Rule::OverLimit)
    } else {
        None
    };
    let mut row: AccountRow = load(shard, writer.key(ACCOUNT_PREFIX, account))?.unwrap_or_default();
    row.record(checked.amount_cents, rule.is_some())
        .map_err(|m| Failure::event(offset, m))?;
    writer.put(shard, ACCOUNT_PREFIX, account, &row)?;
    if let Some(rule) = rule {
        let flag = Flag {
            account,
            amount_cents: checked.amount_cents,
            rule,
            timestamp: event.timestamp,
        };
        writer.put(shard, FLAG_PREFIX, &checked.payment.txn, &flag)?;
    }
    let mut recent = recent_at(account, timestamp);
    recent.extend_from_slice(checked.payment.txn.as_bytes());
    shard.put(&recent, checked.amount_cents.to_string().as_bytes());
    let window = i64::try_from(config.window_ms).unwrap_or(i64::MAX);
    shard.set_timer(event.index, &recent, event.timestamp.saturating_add(window));
    Ok(())
}

/// Applies one event of the limits topic: keyed by account, valued
/// `{"limit_cents":N}`; the account's limit from now on.
pub fn limit(shard: &mut impl Shard, event: Event<'_>) -> Result<(), Failure> {
    let offset = event.offset;
    let key = event
        .key
        .ok_or_else(|| Failure::event(offset, "a limit without a key: limits are per account"))?;
    let account = std::str::from_utf8(key)
        .map_err(|e| Failure::event(offset, format!("key is not UTF-8: {e}")))?;
    let account = checked_account(account, offset)?;
    let limit: Limit = serde_json::from_slice(event.value)
        .map_err(|e| Failure::event(offset, format!("not a limit: {e}")))?;
    Writer::default().put(shard, LIMIT_PREFIX, account, &limit)
}

/// Expires the recent rows whose timers fired: each timer is named by the
/// row it expires.
pub fn expire<'a>(
    shard: &mut impl Shard,
    fired: impl IntoIterator<Item = &'a [u8]>,
) -> Result<(), Failure> {
    for name in fired {
        if !name.starts_with(RECENT_PREFIX.as_bytes()) {
            return Err(Failure::Internal(format!(
                "a timer this processor never sets fired: {}",
                String::from_utf8_lossy(name)
            )));
        }
        shard.delete(name);
    }
    Ok(())
}
