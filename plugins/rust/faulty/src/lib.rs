//! A processor that misbehaves on demand, so that the host's tests can check
//! that a plugin cannot hurt it: traps, errors, endless loops, unbounded
//! memory, huge writes, a panicking `init`, and reads of the clock and of
//! randomness, which the host must make deterministic.
//!
//! Configuration: `{"mode": "...", "fail_on": "boom"}`, both optional. It
//! counts events per key like the starter (ASCII decimal under the key, or
//! `(no key)`); an event whose value contains `fail_on` (default `boom`)
//! triggers the mode:
//! - `none` (default): nothing, it only counts;
//! - `trap`: panics with `poison event at offset N`;
//! - `error`: returns `invalid-event` for that offset (its message followed
//!   by `message_bytes` bytes of `x`, default none);
//! - `loop`: never returns;
//! - `grow-memory`: allocates and touches memory without bound;
//! - `huge-output`: puts one 64 MiB value under `huge`;
//! - `tiny-writes`: puts `writes` distinct 4-byte keys with empty values, all
//!   in the one call (default: 2^32, more than any memory limit lets a batch
//!   hold); the keys are big-endian counters from `offset * writes`, so that
//!   each event writes keys of its own;
//! - `put`: puts, `puts` times (default 1), a value of `value_bytes` bytes
//!   (default 1) under a key of `key_bytes` bytes (default 1), all in the
//!   batch of that event (the same key each time, or with `"distinct": true`
//!   a key each): to try the host's limits on writes.
//!
//! These act on every event instead, whatever its value:
//! - `clock`: writes the nanoseconds since the Unix epoch that
//!   `SystemTime::now()` returns under `clock`;
//! - `random`: writes 8 bytes drawn from std's random source (through
//!   `RandomState`), as hex, under `random`;
//! - `monotonic`: writes the nanoseconds the monotonic clock
//!   (`Instant`) advanced since `init`, under `monotonic`.
//!
//! - `escape`: tries to leave the sandbox and writes what happened under
//!   `escape/...`: reads the file `read`, lists `/`, writes the file `write`,
//!   reads the environment and the arguments, connects to the TCP address
//!   `connect` and resolves `localhost` (the paths and address come from the
//!   configuration). Each value starts with `denied: ` and the error, or
//!   `allowed: ` and what it got.
//! - `store`: puts each event's value, byte for byte, under its key instead
//!   of counting (to check that the host shows values as stored).
//!
//! And `init-panic` panics in `init`.

use std::cell::RefCell;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

wit_bindgen::generate!({
    path: "../../../wit/processor-0.1.0",
    world: "processor",
});

use kappa::processor::types::EventError;
use kappa::processor::view;

/// How to misbehave.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Mode {
    #[default]
    None,
    Trap,
    Error,
    Loop,
    GrowMemory,
    HugeOutput,
    TinyWrites,
    Put,
    InitPanic,
    Monotonic,
    Clock,
    Random,
    Escape,
    Store,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Config {
    mode: Mode,
    fail_on: String,
    /// `escape`: a file to read.
    read: String,
    /// `escape`: a file to create.
    write: String,
    /// `escape`: a TCP address to connect to.
    connect: String,
    /// `tiny-writes`: how many.
    writes: u64,
    /// `error`: bytes appended to the message.
    message_bytes: usize,
    /// `put`: size of the key.
    key_bytes: usize,
    /// `put`: size of the value.
    value_bytes: usize,
    /// `put`: how many times to put it.
    puts: usize,
    /// `put`: a key of its own for each put (its number in the key's last
    /// bytes) instead of the same key again.
    distinct: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::None,
            fail_on: "boom".into(),
            read: "/etc/hostname".into(),
            write: "/tmp/kappa-escape".into(),
            connect: "127.0.0.1:7070".into(),
            writes: 1 << 32,
            message_bytes: 0,
            key_bytes: 1,
            value_bytes: 1,
            puts: 1,
            distinct: false,
        }
    }
}

thread_local! {
    static CONFIG: RefCell<Config> = RefCell::new(Config::default());
    /// When `init` ran, by the monotonic clock.
    static STARTED: RefCell<Option<Instant>> = const { RefCell::new(None) };
}

/// Size of the `huge-output` value: far past any sane row.
const HUGE: usize = 64 << 20;

struct Faulty;

impl Guest for Faulty {
    fn init(config: String) -> Result<(), Error> {
        let config: Config = if config.trim().is_empty() {
            Config::default()
        } else {
            serde_json::from_str(&config)
                .map_err(|e| Error::InvalidConfig(format!("invalid config: {e}")))?
        };
        if config.mode == Mode::InitPanic {
            panic!("init-panic mode: panicking in init");
        }
        CONFIG.set(config);
        STARTED.set(Some(Instant::now()));
        Ok(())
    }

    fn process(events: Vec<Event>) -> Result<(), Error> {
        CONFIG.with_borrow(|config| {
            for event in &events {
                if contains(&event.value, config.fail_on.as_bytes()) {
                    misbehave(config, event.offset)?;
                }
                match config.mode {
                    Mode::Clock => view::put(b"clock", clock().as_bytes()),
                    Mode::Random => view::put(b"random", random().as_bytes()),
                    Mode::Monotonic => view::put(b"monotonic", monotonic().as_bytes()),
                    Mode::Escape => escape(config),
                    _ => {}
                }
                let key = event.key.as_deref().unwrap_or(b"(no key)");
                if config.mode == Mode::Store {
                    view::put(key, &event.value);
                    continue;
                }
                let count = view::get(key)
                    .and_then(|v| std::str::from_utf8(&v).ok()?.parse::<u64>().ok())
                    .unwrap_or(0);
                view::put(key, (count + 1).to_string().as_bytes());
            }
            Ok(())
        })
    }
}

/// Does what the configured mode says to the poison event at `offset`.
fn misbehave(config: &Config, offset: u64) -> Result<(), Error> {
    match config.mode {
        Mode::Trap => panic!("poison event at offset {offset}"),
        Mode::Error => Err(Error::InvalidEvent(EventError {
            offset,
            message: format!(
                "poison event at offset {offset}{}",
                "x".repeat(config.message_bytes)
            ),
        })),
        Mode::Loop => {
            // black_box keeps the optimizer from reasoning the loop away.
            let mut n = 0u64;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        Mode::GrowMemory => {
            let mut held = Vec::new();
            loop {
                let mut chunk = vec![0u8; 1 << 20];
                // Write every page so the memory is really committed, not
                // just reserved.
                for page in chunk.chunks_mut(4096) {
                    page[0] = 1;
                }
                held.push(std::hint::black_box(chunk));
            }
        }
        Mode::HugeOutput => {
            view::put(b"huge", &vec![b'x'; HUGE]);
            Ok(())
        }
        Mode::TinyWrites => {
            // Keys wrap past 2^32 writes: they stay 4 bytes.
            let from = offset.wrapping_mul(config.writes);
            for n in 0..config.writes {
                view::put(&(from.wrapping_add(n) as u32).to_be_bytes(), b"");
            }
            Ok(())
        }
        Mode::Put => {
            let (mut key, value) = (vec![b'k'; config.key_bytes], vec![b'v'; config.value_bytes]);
            for n in 0..config.puts {
                if config.distinct {
                    // The put's number in the key's last bytes: a key each.
                    let n = (n as u64).to_be_bytes();
                    let tail = key.len().min(n.len());
                    let at = key.len() - tail;
                    key[at..].copy_from_slice(&n[n.len() - tail..]);
                }
                view::put(&key, &value);
            }
            Ok(())
        }
        Mode::None
        | Mode::InitPanic
        | Mode::Clock
        | Mode::Random
        | Mode::Monotonic
        | Mode::Escape
        | Mode::Store => Ok(()),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// Wall-clock time as signed nanoseconds since the Unix epoch.
fn clock() -> String {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_nanos().to_string(),
        Err(before) => format!("-{}", before.duration().as_nanos()),
    }
}

/// Nanoseconds the monotonic clock advanced since `init`.
fn monotonic() -> String {
    STARTED
        .with_borrow(|started| started.map(|s| s.elapsed().as_nanos()))
        .map_or_else(|| "init did not run".to_owned(), |n| n.to_string())
}

/// 8 bytes from std's random source as hex. Each `RandomState` takes fresh
/// keys (seeded once per thread from the system's randomness), so hashing the
/// same input gives a new value each time.
fn random() -> String {
    format!("{:016x}", RandomState::new().hash_one(0u8))
}

/// Tries every way out of the sandbox that std offers, recording each
/// outcome under `escape/...`.
fn escape(config: &Config) {
    fn outcome<T: std::fmt::Debug>(r: std::io::Result<T>) -> String {
        match r {
            Ok(v) => format!("allowed: {v:?}"),
            Err(e) => format!("denied: {e}"),
        }
    }
    let read = outcome(std::fs::read_to_string(&config.read));
    let list = outcome(std::fs::read_dir("/").map(|d| {
        d.filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect::<Vec<_>>()
    }));
    let write = outcome(std::fs::write(&config.write, b"escaped"));
    let vars: Vec<(String, String)> = std::env::vars().collect();
    let args: Vec<String> = std::env::args().collect();
    let env = if vars.is_empty() && args.is_empty() {
        "denied: no variables, no arguments".to_owned()
    } else {
        format!("allowed: variables {vars:?}, arguments {args:?}")
    };
    let connect = outcome(std::net::TcpStream::connect(&config.connect).map(|s| s.peer_addr()));
    let resolve = outcome(
        std::net::ToSocketAddrs::to_socket_addrs(&("localhost", 80))
            .map(Iterator::collect::<Vec<_>>),
    );
    for (key, value) in [
        ("escape/read", read),
        ("escape/list", list),
        ("escape/write", write),
        ("escape/env", env),
        ("escape/connect", connect),
        ("escape/resolve", resolve),
    ] {
        view::put(key.as_bytes(), value.as_bytes());
    }
}

export!(Faulty);
