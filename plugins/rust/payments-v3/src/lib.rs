//! Version 3 of the example payments processor, on contract
//! `kappa:processor@0.3.0`: what the contract's range reads, event-time
//! timers and several input topics are for.
//!
//! It reads two topics, co-partitioned by account: `payments` (topic 0,
//! payments v1 and v2's payload) and `limits` (topic 1, keyed by account,
//! `{"limit_cents":N}`). Its rows:
//! - `account/<account>` → `{"txns":N,"total_cents":S,"flagged":F}`, as v2;
//! - `flag/<txn>` → `{"account":..,"amount_cents":..,"rule":..,"timestamp":..}`;
//! - `recent/<account>/<timestamp as 20 digits>/<txn>` → the amount, one row
//!   per payment still in the account's window, read back with a **range
//!   read** (in pages) and removed by an **event-time timer** set for the
//!   payment's timestamp plus `window_ms`, named by the row;
//! - `limit/<account>` → `{"limit_cents":N}`, the latest event of the
//!   **limits topic** for the account.
//!
//! A payment is flagged `large-amount` (an amount of at least `large_cents`),
//! else `velocity` (the account's `max_txns`-th payment with a timestamp in
//! `(timestamp - window_ms, timestamp]`, this one included), else
//! `over-limit` (those payments' amounts add up to more than the account's
//! limit). The configuration is v2's. Unlike v2's window row, which grows
//! with the account's burst of payments in one value, each payment is a row
//! of its own and the timer removes it: the state an account holds is what
//! its window holds.
//!
//! The rules are in `rules.rs`, which needs no bindings, so they are tested
//! natively.

// The generated export of `process` takes the flattened fields of
// `event-batch` as parameters, as the canonical ABI passes them.
#![allow(clippy::too_many_arguments)]

mod rules;

pub use rules::{
    Config, Event, LIMIT_PREFIX, Limit, MAX_WINDOW_MS, PAGE, RECENT_PREFIX, Shard, expire, limit,
    payment,
};

/// The component, built for the guest target only.
#[cfg(target_family = "wasm")]
mod component {
    #![allow(clippy::too_many_arguments)]

    use std::cell::Cell;

    wit_bindgen::generate!({
        path: "../../../wit/processor-0.3.0",
        world: "processor",
    });

    use kappa::processor::types::EventError;
    use kappa::processor::{timers, view};
    use payments_core::{Failure, View};

    use super::{Config, Event, Shard, expire, limit, payment};

    thread_local! {
        /// Set by `init`; plain configuration, never state.
        static CONFIG: Cell<Option<Config>> = const { Cell::new(None) };
    }

    /// The partition's shard, through the imported `view` and `timers`.
    struct HostShard;

    impl View for HostShard {
        fn get(&mut self, key: &[u8]) -> Option<Vec<u8>> {
            view::get(key)
        }

        fn put(&mut self, key: &[u8], value: &[u8]) {
            view::put(key, value);
        }
    }

    impl Shard for HostShard {
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

        fn set_timer(&mut self, event: u32, name: &[u8], at: i64) {
            timers::set(event, name, at);
        }
    }

    fn error(failure: Failure, topic: u32) -> Error {
        match failure {
            Failure::Event { offset, message } => Error::InvalidEvent(EventError {
                topic,
                offset,
                message,
            }),
            Failure::Internal(message) => Error::Internal(message),
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
            let columns = kappa_guest::columns_topics!(batch);
            let events = columns
                .events()
                .map_err(|e| Error::Internal(e.to_string()))?;
            for event in events {
                let e = event.map_err(|e| Error::Internal(e.to_string()))?;
                let input = Event {
                    index: e.index,
                    offset: e.offset,
                    timestamp: e.timestamp,
                    key: e.key,
                    value: e.value,
                };
                let applied = match e.topic {
                    0 => payment(&config, &mut HostShard, input),
                    1 => limit(&mut HostShard, input),
                    other => Err(Failure::event(
                        e.offset,
                        format!(
                            "an event of topic {other}: payments v3 reads two topics, payments \
                             then limits"
                        ),
                    )),
                };
                applied.map_err(|f| error(f, e.topic))?;
            }
            Ok(())
        }

        fn fire(_partition: u32, _time: i64, fired: Vec<Timer>) -> Result<(), Error> {
            expire(&mut HostShard, fired.iter().map(|t| t.key.as_slice())).map_err(|f| error(f, 0))
        }
    }

    export!(Component);
}
