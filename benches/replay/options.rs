//! The command line of the replay benchmark: what to run and how big.

use std::path::PathBuf;

/// What to run and how big.
#[derive(Debug, Clone)]
pub struct Options {
    /// Small sizes: seconds instead of minutes.
    pub quick: bool,
    /// Events of the replay logs (sections 1, 3 and the replay of 4).
    pub events: usize,
    /// Events of the Python/JS comparison (section 2).
    pub polyglot_events: usize,
    /// Distinct keys (accounts) of the generated payments.
    pub keys: u64,
    /// Runs per figure; the median is reported.
    pub runs: usize,
    /// Sections to run (1..=7).
    pub sections: Vec<u8>,
    /// Directory holding payments-v2-python.wasm and payments-v2-js.wasm.
    pub polyglot: Option<PathBuf>,
    /// Produce rate of the latency measurement, events/s.
    pub live_rate: u64,
    /// Length of each latency measurement.
    pub live_seconds: f64,
    /// Events appended by the ingest measurement.
    pub ingest_events: usize,
    /// Versions deployed by the memory measurement.
    pub memory_versions: usize,
    /// Batch sizes of the sweep in section 1.
    pub batch_sweep: Vec<usize>,
}

impl Options {
    /// The full run.
    pub fn full() -> Self {
        Options {
            quick: false,
            events: 500_000,
            polyglot_events: 20_000,
            keys: 1_000,
            runs: 5,
            sections: (1..=7).collect(),
            polyglot: None,
            live_rate: 10_000,
            live_seconds: 5.0,
            ingest_events: 500_000,
            memory_versions: 4,
            batch_sweep: vec![256, 1024, 4096, 16384],
        }
    }

    /// Small sizes, for a check that everything runs.
    pub fn quick() -> Self {
        Options {
            quick: true,
            events: 50_000,
            polyglot_events: 2_000,
            runs: 1,
            live_rate: 10_000,
            live_seconds: 1.0,
            ingest_events: 50_000,
            memory_versions: 2,
            batch_sweep: vec![256, 1024],
            ..Options::full()
        }
    }

    pub(crate) fn from_args() -> Result<Self, String> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mut options = if args.iter().any(|a| a == "--quick") {
            Options::quick()
        } else {
            Options::full()
        };
        options.polyglot = std::env::var_os("KAPPA_POLYGLOT_DIR").map(PathBuf::from);
        let mut json = None;
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            let number = |name: &str, v: String| {
                v.replace('_', "")
                    .parse::<usize>()
                    .map_err(|e| format!("{name} {v}: {e}"))
            };
            match arg.as_str() {
                "--quick" | "--bench" => {}
                "--events" => options.events = number(arg, value(arg)?)?,
                "--polyglot-events" => options.polyglot_events = number(arg, value(arg)?)?,
                "--keys" => options.keys = number(arg, value(arg)?)? as u64,
                "--runs" => options.runs = number(arg, value(arg)?)?.max(1),
                "--rate" => options.live_rate = number(arg, value(arg)?)? as u64,
                "--seconds" => {
                    options.live_seconds =
                        value(arg)?.parse().map_err(|e| format!("--seconds: {e}"))?
                }
                "--polyglot" => options.polyglot = Some(PathBuf::from(value(arg)?)),
                "--batches" => {
                    options.batch_sweep = value(arg)?
                        .split(',')
                        .map(|s| number("--batches", s.trim().to_owned()))
                        .collect::<Result<_, _>>()?;
                }
                "--json" => json = Some(PathBuf::from(value(arg)?)),
                "--only" => {
                    options.sections = value(arg)?
                        .split(',')
                        .map(|s| {
                            s.trim()
                                .parse::<u8>()
                                .map_err(|e| format!("--only {s}: {e}"))
                        })
                        .collect::<Result<_, _>>()?;
                }
                other => {
                    return Err(format!(
                        "unknown argument `{other}`; use --quick, --events N, --polyglot-events N, \
                         --keys N, --runs N, --rate N, --seconds S, --polyglot DIR, --only 1,2,.., \
                         --batches 256,1024,.. , --json FILE"
                    ));
                }
            }
        }
        if let Some(path) = json {
            JSON_OUT.set(path).ok();
        }
        Ok(options)
    }
}

pub(crate) static JSON_OUT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

