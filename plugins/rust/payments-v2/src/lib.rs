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
//! The rules live in [`process_batch`] and [`Window::record`] (`rules.rs`),
//! which need no bindings, so they are tested natively; the component around
//! them is `component.rs`. `payments-v2-shards` is the same two files on contract
//! 0.3.0-rc.1.
//!
//! It speaks contract `kappa:processor@0.2.0`, which passes a batch in
//! columns (read in place with `kappa-guest`): its rules are cheap per event,
//! so the cost of passing events in would otherwise dominate. Version 1 speaks
//! 0.1.0; the host runs both side by side.

// The generated export of `process` takes the 13 flattened fields of
// `event-batch` as parameters, as the canonical ABI passes them.
#![allow(clippy::too_many_arguments)]

mod rules;

pub use rules::{Config, Window, process_batch};

wit_bindgen::generate!({
    path: "../../../wit/processor-0.2.0",
    world: "processor",
});

include!("component.rs");

#[cfg(test)]
mod tests {
    use payments_core::{Failure, Input, MemoryView};

    use super::*;
    use payments_core::MAX_WINDOW_MS;

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
