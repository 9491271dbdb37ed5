//! A processor written against `kappa:processor@0.99.0` (a copy of the 0.1.0
//! contract with another version): its imports name a contract version the
//! host does not support.

wit_bindgen::generate!({
    path: "wit",
    world: "processor",
});

use kappa::processor::logging::{self, Level};
use kappa::processor::view;

struct Plugin;

impl Guest for Plugin {
    fn init(_config: String) -> Result<(), Error> {
        logging::log(Level::Info, "ready");
        Ok(())
    }

    fn process(events: Vec<Event>) -> Result<(), Error> {
        for event in events {
            view::put(&event.offset.to_be_bytes(), &event.value);
        }
        Ok(())
    }
}

export!(Plugin);
