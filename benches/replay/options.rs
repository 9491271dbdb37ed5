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
    /// Sections to run (1..=9).
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
    /// Distinct keys of each uniform mix of section 8, ascending: the first
    /// is the baseline of the section's ratios.
    pub card_keys: Vec<u64>,
    /// Events of each log of section 8 (at least the mix's keys, so that
    /// every key is in the view).
    pub card_events: usize,
    /// Keys of the skewed (Zipf-like) mix of section 8; 0 for none.
    pub zipf_keys: u64,
    /// Exponent of the skewed mix: key of rank r has weight 1 / r^s.
    pub zipf_exponent: f64,
    /// Runs per figure of section 8 (its logs are large).
    pub card_runs: usize,
    /// Partitions of the topic of section 3, and so the most threads it
    /// measures (default 2; more on a machine with more cores).
    pub scaling_partitions: u32,
    /// Write buffer of every view the benchmark opens, its own replays' and
    /// the product worker's (`--view-write-buffer-mb`, as `kappa serve`); 0
    /// writes every batch's commit to the view file as its own transaction.
    pub view_write_buffer_bytes: usize,
    /// Per view: bytes of its row cache (`--view-row-cache-mb`).
    pub view_row_cache_bytes: usize,
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
            sections: (1..=9).collect(),
            polyglot: None,
            live_rate: 10_000,
            live_seconds: 5.0,
            ingest_events: 500_000,
            memory_versions: 4,
            batch_sweep: vec![256, 1024, 4096, 16384],
            card_keys: vec![1_000, 100_000, 1_000_000],
            card_events: 2_000_000,
            zipf_keys: 1_000_000,
            zipf_exponent: 0.99,
            card_runs: 3,
            scaling_partitions: 2,
            view_write_buffer_bytes: kappa::store::DEFAULT_WRITE_BUFFER_BYTES,
            view_row_cache_bytes: kappa::store::DEFAULT_ROW_CACHE_BYTES,
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
            card_keys: vec![1_000, 100_000],
            card_events: 200_000,
            zipf_keys: 100_000,
            card_runs: 1,
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
                "--card-keys" => {
                    options.card_keys = value(arg)?
                        .split(',')
                        .map(|s| count("--card-keys", s))
                        .collect::<Result<_, _>>()?;
                    options.card_keys.sort_unstable();
                    options.card_keys.dedup();
                    if options.card_keys.is_empty() || options.card_keys[0] == 0 {
                        return Err("--card-keys needs counts above 0".into());
                    }
                }
                "--card-events" => options.card_events = count(arg, &value(arg)?)? as usize,
                "--card-runs" => options.card_runs = number(arg, value(arg)?)?.max(1),
                "--scaling-partitions" => {
                    options.scaling_partitions = u32::try_from(number(arg, value(arg)?)?)
                        .ok()
                        .filter(|p| *p >= 1)
                        .ok_or("--scaling-partitions needs a partition count of 1 or more")?
                }
                "--zipf-keys" => options.zipf_keys = count(arg, &value(arg)?)?,
                "--zipf-s" => {
                    options.zipf_exponent = value(arg)?
                        .parse()
                        .ok()
                        .filter(|s: &f64| s.is_finite() && *s >= 0.0)
                        .ok_or("--zipf-s needs a number of 0 or more")?
                }
                "--view-write-buffer-mb" => {
                    let mb = number(arg, value(arg)?)?;
                    options.view_write_buffer_bytes = mb
                        .checked_mul(1 << 20)
                        .ok_or("--view-write-buffer-mb: too large")?;
                }
                "--view-row-cache-mb" => {
                    let mb = number(arg, value(arg)?)?;
                    options.view_row_cache_bytes = mb
                        .checked_mul(1 << 20)
                        .ok_or("--view-row-cache-mb: too large")?;
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
                         --batches 256,1024,.. , --card-keys 1k,100k,1M,10M, --card-events N, \
                         --card-runs N, --zipf-keys N (0: none), --zipf-s S, \
                         --scaling-partitions N, --view-write-buffer-mb N, --view-row-cache-mb N, \
                         --json FILE"
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

/// A count, with an optional suffix `k` (thousands) or `M` (millions):
/// `1k`, `100k`, `10M`, `2_000_000`.
fn count(name: &str, v: &str) -> Result<u64, String> {
    let v = v.trim().replace('_', "");
    let (digits, scale) = match v.strip_suffix(['k', 'K']) {
        Some(d) => (d, 1_000),
        None => match v.strip_suffix('M') {
            Some(d) => (d, 1_000_000),
            None => (v.as_str(), 1),
        },
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("{name} {v}: not a count (such as 1000, 100k or 10M)"))
}
