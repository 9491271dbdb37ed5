//! A test plugin that writes every field of every event it receives to its
//! view, one row per event, through contract `kappa:processor@0.2.0` (the
//! batch in columns). It writes exactly what `echo-v1` writes through 0.1.0.

// The generated export of `process` takes the 13 flattened fields of
// `event-batch` as parameters, as the canonical ABI passes them.
#![allow(clippy::too_many_arguments)]

#[path = "../../echo-v1/src/describe.rs"]
mod describe;

wit_bindgen::generate!({
    path: "../../../wit/processor-0.2.0",
    world: "processor",
});

use kappa::processor::view;

struct Echo;

impl Guest for Echo {
    fn init(_config: String) -> Result<(), Error> {
        Ok(())
    }

    fn process(batch: EventBatch) -> Result<(), Error> {
        let columns = kappa_guest::columns!(batch);
        let events = columns
            .events()
            .map_err(|e| Error::Internal(e.to_string()))?;
        // Headers are ordered by event: walk them alongside.
        let mut headers = batch.headers.iter().peekable();
        for event in events {
            let event = event.map_err(|e| Error::Internal(e.to_string()))?;
            let mut own = Vec::new();
            while let Some(h) = headers.next_if(|h| h.event == event.index) {
                own.push((h.name.as_str(), h.value.as_slice()));
            }
            let row = describe::describe(event.timestamp, event.key, event.value, own.into_iter());
            view::put(
                describe::row_key(event.partition, event.offset).as_bytes(),
                row.as_bytes(),
            );
        }
        if let Some(h) = headers.next() {
            return Err(Error::Internal(format!(
                "a header names event {}, which is not in the batch or out of order",
                h.event
            )));
        }
        Ok(())
    }
}

export!(Echo);
