//! A processor that imports `kappa:processor/view@0.1.0` and
//! `kappa:processor/logging@0.2.0`: the host must refuse it, naming both
//! versions.

wit_bindgen::generate!({
    path: "wit",
    world: "plugin",
    generate_all,
});

use kappa::processor0_2_0::logging::{self, Level};
use kappa::processor0_1_0::view;

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
