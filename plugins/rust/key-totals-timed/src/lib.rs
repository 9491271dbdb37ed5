//! The key-totals aggregation on contract `kappa:processor@0.3.0` (each
//! event key mapped to `{"events":N,"total_cents":S}`, as `key-totals`),
//! with what the replay benchmark adds per event to measure what each
//! capability of 0.3.0 costs, chosen by the configuration (JSON, all
//! optional):
//!
//! - `range` (rows): a range read of that many rows from the event's key on;
//! - `idle_ms`: a timer named by the event's key, moved to the event's
//!   timestamp plus `idle_ms` at every event of the key (a session timeout);
//! - `expire_ms`: a timer of its own per event, at its timestamp plus
//!   `expire_ms` (an expiry, as payments v3 sets), which fires after a later
//!   event of the partition.
//!
//! Timers that fire do nothing, so the rows are key-totals' whatever the
//! configuration: only the cost differs.

#[path = "../../key-totals/src/totals.rs"]
mod totals;

pub use totals::{Totals, process_batch};

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
    use payments_core::{Failure, Input, View};
    use serde::Deserialize;

    use super::process_batch;

    /// What is added per event.
    #[derive(Debug, Default, Clone, Copy, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Config {
        range: u32,
        idle_ms: Option<i64>,
        expire_ms: Option<i64>,
    }

    thread_local! {
        static CONFIG: Cell<Config> = const {
            Cell::new(Config { range: 0, idle_ms: None, expire_ms: None })
        };
    }

    /// The view, with the configured reads and timers around each write.
    struct HostView {
        config: Config,
        /// The event being processed: its index, offset and timestamp.
        event: (u32, u64, i64),
    }

    impl View for HostView {
        fn get(&mut self, key: &[u8]) -> Option<Vec<u8>> {
            if self.config.range > 0 {
                let rows = view::range(key, None, self.config.range);
                std::hint::black_box(rows);
            }
            view::get(key)
        }

        fn put(&mut self, key: &[u8], value: &[u8]) {
            view::put(key, value);
            let (index, offset, timestamp) = self.event;
            if let Some(idle) = self.config.idle_ms {
                timers::set(index, key, timestamp.saturating_add(idle));
            }
            if let Some(expire) = self.config.expire_ms {
                let name = [b"e/".as_slice(), &offset.to_be_bytes(), key].concat();
                timers::set(index, &name, timestamp.saturating_add(expire));
            }
        }
    }

    struct Component;

    impl Guest for Component {
        fn init(config: String) -> Result<(), Error> {
            let config: Config = if config.trim().is_empty() {
                Config::default()
            } else {
                serde_json::from_str(&config)
                    .map_err(|e| Error::InvalidConfig(format!("invalid config: {e}")))?
            };
            CONFIG.set(config);
            Ok(())
        }

        fn process(batch: EventBatch) -> Result<(), Error> {
            let columns = kappa_guest::columns_topics!(batch);
            let events = columns
                .events()
                .map_err(|e| Error::Internal(e.to_string()))?;
            let mut view = HostView {
                config: CONFIG.get(),
                event: (0, 0, 0),
            };
            for event in events {
                let e = event.map_err(|e| Error::Internal(e.to_string()))?;
                view.event = (e.index, e.offset, e.timestamp);
                let input = Input {
                    offset: e.offset,
                    timestamp: e.timestamp,
                    key: e.key,
                    value: e.value,
                };
                process_batch(&mut view, [input]).map_err(|failure| match failure {
                    Failure::Event { offset, message } => Error::InvalidEvent(EventError {
                        topic: e.topic,
                        offset,
                        message,
                    }),
                    Failure::Internal(message) => Error::Internal(message),
                })?;
            }
            Ok(())
        }

        fn fire(_partition: u32, _time: i64, _fired: Vec<Timer>) -> Result<(), Error> {
            Ok(())
        }
    }

    export!(Component);
}
