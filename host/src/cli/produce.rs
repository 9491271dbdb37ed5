//! `kappa produce`: sends JSON-lines events in batches, each batch one
//! request with its own request id (`BASE-N` for batch N), so the host
//! stores each batch at most once. After a broken connection or a 503 it
//! retries a batch by itself with the same id; when the outcome stays
//! unknown it says so, and how to retry safely, instead of guessing.

use std::io::BufRead;
use std::path::PathBuf;
use std::time::Duration;

use super::{Failure, exit_code, print_json, usage};
use crate::client::{Client, ClientError};
use crate::model::{EventLine, ProduceReport};
use crate::render::group;

/// How `kappa produce` sends.
pub(super) struct Options {
    pub batch: usize,
    /// The base of the request ids; `None`: a random one.
    pub request_id: Option<String>,
    /// Retries of one batch after a broken connection or a 503.
    pub retries: u32,
    pub json: bool,
}

/// A random base for request ids: two 64-bit values from the standard
/// library's per-process random hash keys, mixed with the time and pid.
fn random_base() -> String {
    use std::hash::{BuildHasher, Hasher};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut halves = [0u64; 2];
    for (i, half) in halves.iter_mut().enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(nanos);
        h.write_u32(std::process::id());
        h.write_usize(i);
        *half = h.finish();
    }
    format!("p{:016x}{:016x}", halves[0], halves[1])
}

/// Lines `first..=last` of the input, sent as one request.
struct Batch {
    events: Vec<EventLine>,
    first: usize,
    last: usize,
}

/// How a batch ended when it was not stored for sure.
enum Outcome {
    /// The server refused it, or it was never sent: nothing was stored.
    /// With the exit code the refusal calls for (see `EXIT_CODES`).
    NotStored(String, u8),
    /// It may have been stored.
    Unknown(String),
}

struct Sender<'a> {
    client: &'a Client,
    topic: &'a str,
    base: String,
    /// Whether ids are sent (false once a server said it has none).
    ids: bool,
    explicit_id: bool,
    retries: u32,
}

impl Sender<'_> {
    async fn send(&mut self, n: usize, batch: &Batch) -> Result<ProduceReport, Outcome> {
        let id = format!("{}-{n}", self.base);
        let mut unknown = false;
        let mut attempt = 0;
        loop {
            let request_id = self.ids.then(|| id.clone());
            let result = self
                .client
                .produce_request(self.topic, batch.events.clone(), request_id)
                .await;
            let mut code = 1;
            let (retryable, why) = match result {
                Ok(report) => {
                    if report.duplicate {
                        eprintln!(
                            "kappa produce: lines {}-{} had been stored before (request id {id}): \
                             not stored again",
                            batch.first, batch.last
                        );
                    }
                    return Ok(report);
                }
                Err(ClientError::Api { kind, message, .. })
                    if kind == "unsupported" && self.ids && !self.explicit_id =>
                {
                    // A refused request stored nothing: send it again without id.
                    eprintln!(
                        "kappa produce: {message}; sending without request ids, so a broken \
                         connection will not be retried"
                    );
                    self.ids = false;
                    continue;
                }
                Err(e @ ClientError::Unreachable { .. }) => (true, e.to_string()),
                Err(e @ ClientError::NoAnswer { .. }) => {
                    unknown = true;
                    (true, e.to_string())
                }
                Err(ClientError::Api {
                    status: 503,
                    message,
                    ..
                }) => {
                    // Without an id, a 503 from a broker may follow a partial write.
                    unknown |= !self.ids;
                    (true, message)
                }
                Err(e) => {
                    code = exit_code(&e);
                    (false, e.to_string())
                }
            };
            // Without an id, only a request that was surely not sent is resent.
            let safe = self.ids || !unknown;
            if !(retryable && safe && attempt < self.retries) {
                return Err(if unknown {
                    Outcome::Unknown(why)
                } else {
                    Outcome::NotStored(why, code)
                });
            }
            attempt += 1;
            let wait = Duration::from_millis(200 << (attempt - 1).min(4));
            eprintln!(
                "kappa produce: {why}; retrying lines {}-{} in {} ms{} (attempt {} of {})",
                batch.first,
                batch.last,
                wait.as_millis(),
                if self.ids {
                    format!(" with the same request id {id}")
                } else {
                    String::new()
                },
                attempt + 1,
                self.retries + 1
            );
            tokio::time::sleep(wait).await;
        }
    }
}

pub(super) async fn run(
    client: &Client,
    topic: &str,
    file: Option<PathBuf>,
    options: Options,
) -> Result<(), Failure> {
    let reader: Box<dyn BufRead> = match &file {
        Some(path) => Box::new(std::io::BufReader::new(
            std::fs::File::open(path)
                .map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?,
        )),
        None => Box::new(std::io::BufReader::new(std::io::stdin())),
    };
    let source = file
        .as_ref()
        .map_or_else(|| "stdin".to_owned(), |p| p.display().to_string());
    let batch_size = options.batch.max(1);
    let mut sender = Sender {
        client,
        topic,
        explicit_id: options.request_id.is_some(),
        base: options.request_id.unwrap_or_else(random_base),
        ids: true,
        retries: options.retries,
    };
    let mut total = ProduceReport {
        topic: topic.to_owned(),
        appended: 0,
        partitions: Vec::new(),
        request_id: None,
        duplicate: false,
    };
    let mut batch = Batch {
        events: Vec::with_capacity(batch_size),
        first: 1,
        last: 1,
    };
    let mut sent = 0;
    let mut lines = reader.lines().enumerate();
    loop {
        let next = lines.next();
        let done = next.is_none();
        if let Some((i, line)) = next {
            let n = i + 1;
            let line = line.map_err(|e| usage(format!("{source}: line {n}: {e}")))?;
            if line.trim().is_empty() {
                continue;
            }
            let event = EventLine::parse_line(&line)
                .and_then(|e| e.clone().into_record(0).map(|_| e))
                .map_err(|e| {
                    // One position, in lines: the JSON parser's own "line 1"
                    // is this line.
                    let e = e.replace(" at line 1 column ", " at column ");
                    usage(format!(
                        "{source}: line {n}: {e}; {} events before it were stored, nothing after",
                        group(total.appended)
                    ))
                })?;
            if batch.events.is_empty() {
                batch.first = n;
            }
            batch.last = n;
            batch.events.push(event);
        }
        if !batch.events.is_empty() && (batch.events.len() >= batch_size || done) {
            let report = sender
                .send(sent, &batch)
                .await
                .map_err(|outcome| failure(outcome, &batch, &sender, batch_size, &total))?;
            sent += 1;
            batch.events.clear();
            merge_ranges(&mut total, report);
        }
        if done {
            break;
        }
    }
    if options.json {
        return print_json(&total);
    }
    let ranges: Vec<String> = total
        .partitions
        .iter()
        .map(|r| {
            format!(
                "partition {} offsets {}..={}",
                r.partition, r.first_offset, r.last_offset
            )
        })
        .collect();
    println!(
        "appended {} events to {topic}: {}",
        group(total.appended),
        ranges.join(", ")
    );
    Ok(())
}

fn failure(
    outcome: Outcome,
    batch: &Batch,
    sender: &Sender<'_>,
    batch_size: usize,
    total: &ProduceReport,
) -> Failure {
    let before = format!("{} events before them were stored", group(total.appended));
    let mut code = 1;
    let message = match outcome {
        Outcome::NotStored(why, refused) => {
            code = refused;
            format!(
                "{why} (the events of line {} and after were not stored; {before})",
                batch.first
            )
        }
        Outcome::Unknown(why) if sender.ids => format!(
            "{why}. The host may or may not have stored the events of lines {}-{}; retry with \
             the same request id to be sure: the same command with --request-id {} --batch \
             {batch_size} (batches already stored are recognised by their id and not stored \
             again). {before}; nothing after line {} was sent",
            batch.first, batch.last, sender.base, batch.last
        ),
        Outcome::Unknown(why) => format!(
            "{why}. The host may or may not have stored the events of lines {}-{} (this server \
             takes no request ids, so a retry could store them twice). {before}; nothing after \
             line {} was sent",
            batch.first, batch.last, batch.last
        ),
    };
    Failure { code, message }
}

fn merge_ranges(total: &mut ProduceReport, report: ProduceReport) {
    total.appended += report.appended;
    for r in report.partitions {
        match total
            .partitions
            .iter_mut()
            .find(|t| t.partition == r.partition)
        {
            Some(t) => {
                t.last_offset = r.last_offset;
                t.count += r.count;
            }
            None => total.partitions.push(r),
        }
    }
    total.partitions.sort_by_key(|r| r.partition);
}
