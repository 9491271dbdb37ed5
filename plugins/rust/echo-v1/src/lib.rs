//! A test plugin that writes every field of every event it receives to its
//! view, one row per event (see `describe.rs`), through contract
//! `kappa:processor@0.1.0`. `echo-v2` does the same through 0.2.0: equal
//! views prove that both contracts hand a plugin the same events.

mod describe;

wit_bindgen::generate!({
    path: "../../../wit/processor-0.1.0",
    world: "processor",
});

use kappa::processor::view;

struct Echo;

impl Guest for Echo {
    fn init(_config: String) -> Result<(), Error> {
        Ok(())
    }

    fn process(events: Vec<Event>) -> Result<(), Error> {
        for event in &events {
            let row = describe::describe(
                event.timestamp,
                event.key.as_deref(),
                &event.value,
                event
                    .headers
                    .iter()
                    .map(|h| (h.name.as_str(), h.value.as_slice())),
            );
            view::put(
                describe::row_key(event.partition, event.offset).as_bytes(),
                row.as_bytes(),
            );
        }
        Ok(())
    }
}

export!(Echo);
