//! A test plugin of contract `kappa:processor@0.3.0` that records the order
//! in which the host delivers the events of its topics, so that a test can
//! compare it with a merge it computes itself.
//!
//! For the `n`-th event (counted from 0) of partition `P` it writes the row
//! `seq/<P>/<n as 8 digits>` = `<topic index>:<offset>:<timestamp>`, and
//! keeps `n` in the row `count/<P>`. An event whose value is `poison` is
//! refused as an invalid event, naming its topic and offset.

// The generated export of `process` takes the flattened fields of
// `event-batch` as parameters, as the canonical ABI passes them.
#![allow(clippy::too_many_arguments)]

wit_bindgen::generate!({
    path: "../../../wit/processor-0.3.0",
    world: "processor",
});

use kappa::processor::types::EventError;
use kappa::processor::view;

struct Probe;

impl Guest for Probe {
    fn init(_config: String) -> Result<(), Error> {
        Ok(())
    }

    fn process(batch: EventBatch) -> Result<(), Error> {
        let count_key = format!("count/{}", batch.partition);
        let mut n: u64 = view::get(count_key.as_bytes())
            .and_then(|v| String::from_utf8(v).ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut at = 0usize;
        for i in 0..batch.offsets.len() {
            let key_len = usize::try_from(batch.key_lengths[i]).unwrap_or(0);
            let value_len = batch.value_lengths[i] as usize;
            let value = batch
                .data
                .get(at + key_len..at + key_len + value_len)
                .unwrap_or_default();
            at += key_len + value_len;
            let (topic, offset) = (batch.topics[i], batch.offsets[i]);
            if value == b"poison" {
                return Err(Error::InvalidEvent(EventError {
                    topic,
                    offset,
                    message: format!("poison event in topic {topic}"),
                }));
            }
            let key = format!("seq/{}/{n:08}", batch.partition);
            let row = format!("{topic}:{offset}:{}", batch.timestamps[i]);
            view::put(key.as_bytes(), row.as_bytes());
            n += 1;
        }
        view::put(count_key.as_bytes(), n.to_string().as_bytes());
        Ok(())
    }

    fn fire(_partition: u32, _time: i64, _fired: Vec<Timer>) -> Result<(), Error> {
        Ok(())
    }
}

export!(Probe);
