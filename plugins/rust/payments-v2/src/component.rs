// The component of the payments v2 rules: its configuration and its view,
// through the bindings generated where this file is included (payments-v2
// for contract 0.2.0, payments-v2-shards for 0.3.0-rc.1, whose `get`, `put` and
// batch are the same).

use std::cell::Cell;

use kappa::processor::types::EventError;
use kappa::processor::view;
use payments_core::{Failure, Input, View};

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
