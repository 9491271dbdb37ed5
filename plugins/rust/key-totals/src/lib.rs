//! A plain per-key aggregation: the totals of the payments of each key.
//!
//! The view maps each event key to `{"events":N,"total_cents":S}`: how many
//! payments the key had and the sum of their `amount_cents`. For every event
//! it reads its key's row, adds the payment and writes the row back: one
//! view read and one view write per event, with no cache over a batch (the
//! payments plugins read and write an account once per batch). So its cost
//! per event is the view's cost per key, which is what the key cardinality
//! benchmark measures with it (BENCHMARKS.md, "Key cardinality"), from a
//! thousand keys to ten million.
//!
//! Payloads are payments, parsed and checked as the payments plugins do
//! (`payments-core`); the rows are read and written with serde_json. An
//! event without a key is refused, naming its offset. The logic is
//! [`process_batch`], which needs no bindings: the benchmark links this
//! crate natively as its baseline, and its tests run natively.
//!
//! It speaks contract `kappa:processor@0.2.0` (the batch in columns, read in
//! place with `kappa-guest`) and takes no configuration.

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

/// The component: the bindings of the contract and its exports, built for
/// the guest target only. Natively the crate is the logic alone, so the
/// benchmark can link it beside other plugins' logic without their exports
/// clashing.
#[cfg(target_family = "wasm")]
mod component {
    // The generated export of `process` takes the 13 flattened fields of
    // `event-batch` as parameters, as the canonical ABI passes them.
    #![allow(clippy::too_many_arguments)]

    use payments_core::{Failure, Input, View};

    wit_bindgen::generate!({
        path: "../../../wit/processor-0.2.0",
        world: "processor",
    });

    use kappa::processor::types::EventError;
    use kappa::processor::view;

    use super::process_batch;

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
            // Refuse a configuration rather than silently ignore what the
            // operator meant to set.
            if !config.trim().is_empty() {
                return Err(Error::InvalidConfig(
                    "key-totals takes no configuration".into(),
                ));
            }
            Ok(())
        }

        fn process(batch: EventBatch) -> Result<(), Error> {
            let columns = kappa_guest::columns!(batch);
            let events = columns
                .events()
                .map_err(|e| Error::Internal(e.to_string()))?;
            // A malformed batch (a host bug) is kept aside and reported once
            // the iteration stops at it.
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
            let result = process_batch(&mut HostView, inputs);
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
}

#[cfg(test)]
mod tests {
    use payments_core::MemoryView;

    use super::*;

    fn payment(
        offset: u64,
        key: Option<&'static str>,
        amount_cents: i64,
    ) -> (u64, Option<&'static str>, String) {
        let json = format!(
            r#"{{"txn":"t-{offset}","account":"a","amount_cents":{amount_cents},"merchant":"m"}}"#
        );
        (offset, key, json)
    }

    fn run(view: &mut MemoryView, events: &[(u64, Option<&str>, String)]) -> Result<(), Failure> {
        process_batch(
            view,
            events.iter().map(|(offset, key, value)| Input {
                offset: *offset,
                timestamp: 0,
                key: key.map(str::as_bytes),
                value: value.as_bytes(),
            }),
        )
    }

    fn get(view: &MemoryView, key: &str) -> Option<String> {
        view.0
            .get(key.as_bytes())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    #[test]
    fn each_key_totals_its_payments_across_batches() {
        let mut view = MemoryView::default();
        run(
            &mut view,
            &[
                payment(0, Some("k1"), 100),
                payment(1, Some("k2"), 5),
                // Seen twice in one batch: the second read sees the first write.
                payment(2, Some("k1"), 20),
            ],
        )
        .expect("valid");
        run(&mut view, &[payment(3, Some("k1"), 3)]).expect("valid");
        assert_eq!(
            get(&view, "k1").as_deref(),
            Some(r#"{"events":3,"total_cents":123}"#)
        );
        assert_eq!(
            get(&view, "k2").as_deref(),
            Some(r#"{"events":1,"total_cents":5}"#)
        );
        assert_eq!(view.0.len(), 2);
    }

    #[test]
    fn a_bad_event_names_its_offset() {
        let mut view = MemoryView::default();
        assert_eq!(
            run(&mut view, &[payment(0, Some("k"), 1), payment(1, None, 1)]),
            Err(Failure::event(
                1,
                "an event without a key: totals are per key"
            ))
        );
        assert_eq!(
            run(&mut view, &[payment(7, Some("k"), -1)]),
            Err(Failure::event(7, "amount_cents is negative: -1"))
        );
        view.0.insert(b"bad".to_vec(), b"{}".to_vec());
        assert!(matches!(
            run(&mut view, &[payment(8, Some("bad"), 1)]),
            Err(Failure::Internal(m)) if m.starts_with("row bad of the view is corrupt")
        ));
    }
}
