// The component of key-totals: its exports and its view, through the
// bindings generated where this file is included (key-totals for contract
// 0.2.0, key-totals-v3 for 0.3.0-rc.1, whose `get`, `put` and batch are the
// same).

use payments_core::{Failure, Input, View};

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
