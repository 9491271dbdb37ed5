//! A test plugin of contract `kappa:processor@0.3.0` that runs the timer
//! commands its events spell and writes down, in order, every event it
//! processes and every timer that fires, so that a test can check where
//! timers fire against a model of the contract, whatever the batch sizes.
//!
//! Each event's value is a list of commands separated by `;` (or nothing):
//!
//! - `set NAME DELTA`: the timer NAME at the event's timestamp plus DELTA
//!   milliseconds (a negative DELTA: a moment already reached);
//! - `every NAME DELTA PERIOD`: the same, for a timer that sets itself again
//!   PERIOD milliseconds after the moment it fired for (its name then
//!   carries the period: `every/PERIOD/NAME`);
//! - `cancel NAME`: cancels it;
//! - `get NAME`: writes down the moment it is set for (or `none`);
//! - `poison NAME DELTA`: a timer whose firing fails the call;
//! - `peek`: writes down how many rows of the host (keys from 0xff 0xff on)
//!   a range read of the whole shard and a `get` of the partition's event
//!   time row return (both must be 0);
//! - `forge`: writes a row of the host, which must fail the call.
//!
//! The record is one row per line, `p<partition>/log/<n as 8 digits>`:
//! `event <offset> <topic>` per event, `get <name> <moment or none>` per
//! read, and `fire <name> <at> <time>` per timer fired, `time` being the
//! event time `fire` was given. `p<partition>/n` holds the next line number.

// The generated export of `process` takes the flattened fields of
// `event-batch` as parameters, as the canonical ABI passes them.
#![allow(clippy::too_many_arguments)]

wit_bindgen::generate!({
    path: "../../../wit/processor-0.3.0",
    world: "processor",
});

use kappa::processor::types::EventError;
use kappa::processor::{timers, view};

struct Probe;

/// Appends one line to the partition's record.
fn write_down(partition: u32, line: &str) {
    let counter = format!("p{partition}/n");
    let n: u64 = view::get(counter.as_bytes())
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    view::put(
        format!("p{partition}/log/{n:08}").as_bytes(),
        line.as_bytes(),
    );
    view::put(counter.as_bytes(), (n + 1).to_string().as_bytes());
}

/// The host's row of the partition's event time.
fn time_row(partition: u32) -> Vec<u8> {
    [
        b"\xff\xffkappa/p".as_slice(),
        partition.to_string().as_bytes(),
        b"/time",
    ]
    .concat()
}

fn number(text: Option<&str>) -> Result<i64, String> {
    let text = text.ok_or("a command lacks a number")?;
    text.parse()
        .map_err(|_| format!("{text:?} is not a number"))
}

/// Runs the commands of the event at `index` (timestamp `timestamp`).
fn run(partition: u32, index: u32, timestamp: i64, commands: &str) -> Result<(), String> {
    for command in commands.split(';').map(str::trim).filter(|c| !c.is_empty()) {
        match command {
            "peek" => {
                let hidden = view::range(b"", None, 10_000)
                    .iter()
                    .filter(|row| row.key.starts_with(b"\xff\xff"))
                    .count()
                    + usize::from(view::get(&time_row(partition)).is_some());
                write_down(partition, &format!("peek {hidden}"));
                continue;
            }
            "forge" => {
                view::put(&time_row(partition), b"forged");
                continue;
            }
            _ => {}
        }
        let mut words = command.split_whitespace();
        let (verb, name) = (words.next(), words.next().ok_or("a command lacks a name")?);
        match verb {
            Some("set") => {
                let delta = number(words.next())?;
                timers::set(index, name.as_bytes(), timestamp + delta);
            }
            Some("every") => {
                let delta = number(words.next())?;
                let period = number(words.next())?;
                let name = format!("every/{period}/{name}");
                timers::set(index, name.as_bytes(), timestamp + delta);
            }
            Some("poison") => {
                let delta = number(words.next())?;
                let name = format!("poison/{name}");
                timers::set(index, name.as_bytes(), timestamp + delta);
            }
            Some("cancel") => timers::cancel(name.as_bytes()),
            Some("get") => {
                let moment = timers::get(name.as_bytes())
                    .map_or_else(|| "none".to_owned(), |at| at.to_string());
                write_down(partition, &format!("get {name} {moment}"));
            }
            _ => return Err(format!("unknown command {command:?}")),
        }
    }
    Ok(())
}

impl Guest for Probe {
    fn init(_config: String) -> Result<(), Error> {
        Ok(())
    }

    fn process(batch: EventBatch) -> Result<(), Error> {
        let columns = kappa_guest::columns_topics!(batch);
        let events = columns
            .events()
            .map_err(|e| Error::Internal(e.to_string()))?;
        for event in events {
            let event = event.map_err(|e| Error::Internal(e.to_string()))?;
            write_down(
                batch.partition,
                &format!("event {} {}", event.offset, event.topic),
            );
            let refuse = |message: String| {
                Error::InvalidEvent(EventError {
                    topic: event.topic,
                    offset: event.offset,
                    message,
                })
            };
            let commands = std::str::from_utf8(event.value)
                .map_err(|_| refuse("commands are not UTF-8".into()))?;
            run(batch.partition, event.index, event.timestamp, commands).map_err(refuse)?;
        }
        Ok(())
    }

    fn fire(partition: u32, time: i64, fired: Vec<Timer>) -> Result<(), Error> {
        for timer in fired {
            let name = String::from_utf8_lossy(&timer.key).into_owned();
            if name.starts_with("poison/") {
                return Err(Error::Internal(format!("timer {name} is poisoned")));
            }
            write_down(partition, &format!("fire {name} {} {time}", timer.at));
            if let Some(rest) = name.strip_prefix("every/")
                && let Some((period, _)) = rest.split_once('/')
                && let Ok(period) = period.parse::<i64>()
            {
                // `event` is ignored while firing.
                timers::set(0, &timer.key, timer.at + period);
            }
        }
        Ok(())
    }
}

export!(Probe);
