//! A test plugin of contract `kappa:processor@0.3.0-rc.1` that breaks its
//! rule on purpose: it counts every event of every partition in one row,
//! `count` (ASCII decimal). Under 0.3.0-rc.1 a key belongs to one partition,
//! so once two partitions have events the host must refuse the batch of the
//! second one, naming the key and both partitions. (The pattern that works
//! keeps one row per partition, `count/<partition>`.)

// The generated export of `process` takes the 13 flattened fields of
// `event-batch` as parameters, as the canonical ABI passes them.
#![allow(clippy::too_many_arguments)]

wit_bindgen::generate!({
    path: "../../../wit/processor-0.3.0-rc.1",
    world: "processor",
});

use kappa::processor::view;

/// The one row every partition writes.
const KEY: &[u8] = b"count";

struct GlobalCount;

impl Guest for GlobalCount {
    fn init(_config: String) -> Result<(), Error> {
        Ok(())
    }

    fn process(batch: EventBatch) -> Result<(), Error> {
        let count: u64 = match view::get(KEY) {
            None => 0,
            Some(bytes) => std::str::from_utf8(&bytes)
                .ok()
                .and_then(|text| text.parse().ok())
                .ok_or_else(|| Error::Internal("the stored count is not a number".into()))?,
        };
        let count = count + batch.offsets.len() as u64;
        view::put(KEY, count.to_string().as_bytes());
        Ok(())
    }
}

export!(GlobalCount);
