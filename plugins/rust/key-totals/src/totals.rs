//! The logic of key-totals: [`Totals`] and [`process_batch`], which need no
//! bindings. `key-totals-v3` includes this file as it is, so that both
//! write the same rows.

use payments_core::{Failure, Input, View, parse_payment};
use serde::{Deserialize, Serialize};

/// The row of one key.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Totals {
    /// Payments seen with this key.
    pub events: u64,
    /// Sum of their amounts, in cents.
    pub total_cents: u64,
}

/// Applies one batch of payments to `view`: for each event, one read and one
/// write of its key's row.
pub fn process_batch<'a>(
    view: &mut impl View,
    events: impl IntoIterator<Item = Input<'a>>,
) -> Result<(), Failure> {
    let mut encoded = Vec::new();
    for event in events {
        let key = event.key.ok_or_else(|| {
            Failure::event(event.offset, "an event without a key: totals are per key")
        })?;
        let checked = parse_payment(event.value).map_err(|m| Failure::event(event.offset, m))?;
        let mut totals: Totals = match view.get(key) {
            None => Totals::default(),
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Failure::Internal(format!(
                    "row {} of the view is corrupt: {e}",
                    String::from_utf8_lossy(key)
                ))
            })?,
        };
        totals.events += 1;
        totals.total_cents = totals
            .total_cents
            .checked_add(checked.amount_cents)
            .ok_or_else(|| Failure::event(event.offset, "the key's total_cents would overflow"))?;
        encoded.clear();
        serde_json::to_writer(&mut encoded, &totals)
            .map_err(|e| Failure::Internal(format!("cannot encode a row: {e}")))?;
        view.put(key, &encoded);
    }
    Ok(())
}
