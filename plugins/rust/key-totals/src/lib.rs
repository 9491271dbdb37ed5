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

mod totals;

pub use totals::{Totals, process_batch};

/// The component: the bindings of the contract and its exports, built for
/// the guest target only. Natively the crate is the logic alone, so the
/// benchmark can link it beside other plugins' logic without their exports
/// clashing.
#[cfg(target_family = "wasm")]
mod component {
    // The generated export of `process` takes the 13 flattened fields of
    // `event-batch` as parameters, as the canonical ABI passes them.
    #![allow(clippy::too_many_arguments)]

    wit_bindgen::generate!({
        path: "../../../wit/processor-0.2.0",
        world: "processor",
    });

    include!("component.rs");
}

#[cfg(test)]
mod tests {
    use payments_core::{Failure, Input, MemoryView};

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
