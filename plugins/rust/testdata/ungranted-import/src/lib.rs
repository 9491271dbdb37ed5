//! The processor world plus an import of `acme:secrets/vault`: the host must
//! refuse it, naming that import.

wit_bindgen::generate!({
    path: "wit",
    world: "plugin",
    generate_all,
});

use acme::secrets::vault;
use kappa::processor::view;

struct Plugin;

impl Guest for Plugin {
    fn init(_config: String) -> Result<(), Error> {
        Ok(())
    }

    fn process(events: Vec<Event>) -> Result<(), Error> {
        let salt = vault::secret("salt").unwrap_or_default();
        for event in events {
            view::put(&event.offset.to_be_bytes(), salt.as_bytes());
        }
        Ok(())
    }
}

export!(Plugin);
