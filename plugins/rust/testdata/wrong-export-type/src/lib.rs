//! A processor whose `process` returns `result<_, string>` instead of
//! `result<_, error>`: the host must refuse it, naming that export.

wit_bindgen::generate!({
    path: "wit",
    world: "processor",
});

use kappa::processor::view;

struct Plugin;

impl Guest for Plugin {
    fn init(_config: String) -> Result<(), Error> {
        Ok(())
    }

    fn process(events: Vec<Event>) -> Result<(), String> {
        for event in events {
            view::put(&event.offset.to_be_bytes(), &event.value);
        }
        Ok(())
    }
}

export!(Plugin);
