//! Crash safety, tried rather than assumed: the host is killed with SIGKILL
//! at chosen moments while a producer appends multi-partition batches with
//! request ids, versions are deployed and replay, and the alias is swapped;
//! then restarted. After every restart:
//! - every acknowledged event is in the log, each partition holds its events
//!   in the order they were produced, and no event appears twice;
//! - a produce whose connection broke left its events all present or all
//!   absent, and its retry with the same request id stores nothing twice
//!   (an answer `duplicate: true` exactly when the events were present, with
//!   their offsets); an acknowledged request sent again is a duplicate too;
//! - the alias is what the last acknowledged swap made it.
//!
//! At the end, each view must be byte-identical to the view a crash-free run
//! builds over the same log (the rules recomputed here): no event lost, none
//! applied twice.
//!
//! Rounds cycle through four phases, each aiming its kill inside one kind of
//! work: a produce, a replay, a deploy, a promote or rollback. Replays
//! alternate between a version with one shared view (contract 0.1.0, one
//! thread) and one whose state is per partition (0.3.0-rc.1), replaying its
//! four partitions on four threads, and each kind must be killed mid-replay. A kill counts
//! for a phase only when it really landed there (a request counts when it was
//! sent and not answered; a replay when the version was replaying just before
//! the kill), and every seed must reach a minimum per phase.
//!
//! `KAPPA_CRASH_ROUNDS` sets the rounds per seed (default 16: a few minutes in
//! CI); `KAPPA_CRASH_SEED` runs one seed only. A soak run:
//! `KAPPA_CRASH_ROUNDS=1000 cargo test --release -p kappa --test crash -- --nocapture`.
//! Seeds that once failed are kept in `REGRESSION_SEEDS`; each run adds one
//! fresh seed (printed).
//!
//! (One file of about 700 lines: the harness's producer, its incremental
//! checks and its phases share the state of a run.)

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kappa::workload::{Payment, PaymentGenerator};
use support::*;

/// Fixed seeds run every time (so every run covers known kill points); a
/// seed that ever fails is added here.
const REGRESSION_SEEDS: &[u64] = &[1];
const PARTITIONS: u32 = 4;
/// Kills each phase must get in every seed.
const MIN_PER_PHASE: usize = 2;

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n.max(1)
    }
}

/// What became of one HTTP request.
enum Sent {
    /// No connection: nothing was sent.
    Refused,
    /// Sent (at least in part), no answer: the outcome is unknown.
    Broken,
    Answered(u16, String),
}

fn post(url: &str, method: &str, path: &str, body: &[u8]) -> Sent {
    let addr = url.trim_start_matches("http://");
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return Sent::Refused;
    };
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut response = Vec::new();
    let ok = stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body))
        .and_then(|()| stream.read_to_end(&mut response))
        .is_ok();
    if !ok || response.len() < 12 {
        return Sent::Broken;
    }
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response[9..12].parse().unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Sent::Answered(status, body)
}

/// A produce request and how it ended.
struct Produced {
    id: String,
    batch: Vec<Payment>,
    /// The answer's `partitions`, when it was acknowledged.
    acked: Option<serde_json::Value>,
    /// Sent, and cut off by the kill before the answer.
    unknown: bool,
}

fn produce_body(id: &str, batch: &[Payment]) -> Vec<u8> {
    let events: Vec<_> = batch.iter().map(Payment::to_event_line).collect();
    serde_json::to_vec(&serde_json::json!({ "events": events, "request_id": id })).unwrap()
}

/// Appends batches of 20 to 300 events (over all partitions) until the
/// server stops answering.
fn produce_until_killed(
    url: String,
    mut generator: PaymentGenerator,
    stop: Arc<AtomicBool>,
    mut rng: Rng,
    first_id: usize,
) -> (PaymentGenerator, Vec<Produced>) {
    let mut out = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let batch = generator.take(20 + rng.below(280) as usize);
        let id = format!("crash-{}", first_id + out.len());
        let sent = post(
            &url,
            "POST",
            "/v1/topics/payments/events",
            &produce_body(&id, &batch),
        );
        let (acked, unknown, last) = match sent {
            Sent::Answered(200, answer) => {
                let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
                assert_eq!(v["duplicate"], false, "{answer}");
                (Some(v["partitions"].clone()), false, false)
            }
            Sent::Answered(other, answer) => panic!("produce answered {other}: {answer}"),
            Sent::Broken => (None, true, true),
            Sent::Refused => (None, false, true),
        };
        out.push(Produced {
            id,
            batch,
            acked,
            unknown,
        });
        if last {
            break;
        }
    }
    (generator, out)
}

/// Events of one partition from offset `from`: (offset, payment).
fn read_partition(server: &Server, p: u32, mut from: u64) -> Vec<(u64, Payment)> {
    let mut out = Vec::new();
    loop {
        let path = format!("/v1/topics/payments/events?partition={p}&from={from}&limit=10000");
        let (status, body) = http(&server.url, "GET", &path, b"");
        assert_eq!(status, 200, "{body}");
        let page: serde_json::Value = serde_json::from_str(&body).unwrap();
        let events = page["events"].as_array().unwrap();
        for e in events {
            let offset = e["offset"].as_u64().unwrap();
            assert_eq!(offset, from, "offsets are gapless");
            from += 1;
            let v = &e["value"];
            out.push((
                offset,
                Payment {
                    txn: v["txn"].as_str().unwrap().to_owned(),
                    account: v["account"].as_str().unwrap().to_owned(),
                    amount_cents: v["amount_cents"].as_i64().unwrap(),
                    merchant: v["merchant"].as_str().unwrap().to_owned(),
                    timestamp: e["timestamp"].as_i64().unwrap(),
                },
            ));
        }
        if events.is_empty() {
            return out;
        }
    }
}

fn alias(server: &Server) -> Option<String> {
    let (status, body) = http(&server.url, "GET", "/v1/processors/payments", b"");
    assert_eq!(status, 200, "{body}");
    let p: serde_json::Value = serde_json::from_str(&body).unwrap();
    p["promoted"].as_str().map(str::to_owned)
}

fn version_state(server: &Server, version: &str) -> String {
    let path = format!("/v1/processors/payments/versions/{version}");
    let (status, body) = http(&server.url, "GET", &path, b"");
    if status != 200 {
        return String::new();
    }
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["state"].as_str().unwrap_or_default().to_owned()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Produce,
    Replay,
    Deploy,
    Swap,
}

/// Kills that landed inside each kind of work, and what was checked.
#[derive(Debug, Default)]
struct Tally {
    rounds: usize,
    produce: usize,
    replay: usize,
    /// Of `replay`, the kills inside a parallel replay.
    parallel_replay: usize,
    deploy: usize,
    swap: usize,
    /// Broken produce calls found all present / all absent after restart.
    unknown_present: usize,
    unknown_absent: usize,
    acked_events: usize,
    views: usize,
    /// Of `views`, those of versions replayed on several threads.
    parallel_views: usize,
}

impl Tally {
    fn of(&self, phase: Phase) -> usize {
        match phase {
            Phase::Produce => self.produce,
            // Kills must land in both kinds of replay.
            Phase::Replay => self.parallel_replay.min(self.replay - self.parallel_replay),
            Phase::Deploy => self.deploy,
            Phase::Swap => self.swap,
        }
    }
}

/// What the harness knows about the log, checked incrementally.
#[derive(Default)]
struct Known {
    /// Per partition, the events read so far, in offset order.
    contents: Vec<Vec<Payment>>,
    /// Production order of every event sent.
    seq: HashMap<String, u64>,
    /// Where each event read so far is.
    at: HashMap<String, (u32, u64)>,
    acked: Vec<String>,
    /// Sent to nobody: must never appear.
    never: HashSet<String>,
}

impl Known {
    /// Reads what is new in the log and checks order and uniqueness.
    fn refresh(&mut self, server: &Server, seed: u64, round: usize) {
        self.contents.resize(PARTITIONS as usize, Vec::new());
        let (status, topics) = http(&server.url, "GET", "/v1/topics", b"");
        assert_eq!(status, 200, "{topics}");
        let topics: serde_json::Value = serde_json::from_str(&topics).unwrap();
        for p in 0..PARTITIONS {
            let have = self.contents[p as usize].len() as u64;
            let end = topics[0]["end_offsets"][p as usize].as_u64().unwrap();
            assert!(
                end >= have,
                "seed {seed}, round {round}: partition {p} shrank from {have} to {end}"
            );
            for (offset, payment) in read_partition(server, p, have) {
                let seq = self.seq[&payment.txn];
                if let Some(prev) = self.contents[p as usize].last() {
                    assert!(
                        self.seq[&prev.txn] < seq,
                        "seed {seed}, round {round}: partition {p} is out of order at offset {offset}"
                    );
                }
                assert!(
                    !self.never.contains(&payment.txn),
                    "seed {seed}, round {round}: {} was never sent but is stored",
                    payment.txn
                );
                let dup = self.at.insert(payment.txn.clone(), (p, offset));
                assert!(
                    dup.is_none(),
                    "seed {seed}, round {round}: {} is stored twice",
                    payment.txn
                );
                self.contents[p as usize].push(payment);
            }
        }
        let lost: Vec<&String> = self
            .acked
            .iter()
            .filter(|t| !self.at.contains_key(*t))
            .collect();
        assert!(
            lost.is_empty(),
            "seed {seed}, round {round}: acknowledged events lost: {lost:?}"
        );
    }
}

/// After a restart: a produce cut off by the kill is all there or not at
/// all, and its retry with the same id says which, storing nothing twice.
fn resolve_unknown(server: &Server, known: &mut Known, p: &Produced, tally: &mut Tally, seed: u64) {
    let present = p
        .batch
        .iter()
        .filter(|e| known.at.contains_key(&e.txn))
        .count();
    assert!(
        present == 0 || present == p.batch.len(),
        "seed {seed}: request {} was partly stored: {present} of {} events",
        p.id,
        p.batch.len()
    );
    let (status, answer) = http(
        &server.url,
        "POST",
        "/v1/topics/payments/events",
        &produce_body(&p.id, &p.batch),
    );
    assert_eq!(status, 200, "seed {seed}: retry of {}: {answer}", p.id);
    let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(
        v["duplicate"],
        present > 0,
        "seed {seed}: retry of {}: {answer}",
        p.id
    );
    if present > 0 {
        tally.unknown_present += 1;
        check_ranges(known, p, &v["partitions"], seed);
    } else {
        tally.unknown_absent += 1;
    }
    known.acked.extend(p.batch.iter().map(|e| e.txn.clone()));
}

/// The ranges an answer gives are where the request's events are.
fn check_ranges(known: &Known, p: &Produced, ranges: &serde_json::Value, seed: u64) {
    let mut want: BTreeMap<u32, (u64, u64, u64)> = BTreeMap::new();
    for e in &p.batch {
        let (part, offset) = known.at[&e.txn];
        let r = want.entry(part).or_insert((offset, offset, 0));
        r.0 = r.0.min(offset);
        r.1 = r.1.max(offset);
        r.2 += 1;
    }
    let got: BTreeMap<u32, (u64, u64, u64)> = ranges
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let n = |f: &str| r[f].as_u64().unwrap();
            (
                n("partition") as u32,
                (n("first_offset"), n("last_offset"), n("count")),
            )
        })
        .collect();
    assert_eq!(got, want, "seed {seed}: the offsets answered for {}", p.id);
}

/// A request on its own thread (and the version it deploys).
type InFlight = Option<(String, std::thread::JoinHandle<Sent>)>;

struct Run {
    seed: u64,
    rng: Rng,
    dir: tempfile::TempDir,
    generator: PaymentGenerator,
    known: Known,
    next_id: usize,
    /// The alias after a restart: `None` while the last swap was cut off.
    expected_alias: Option<Option<String>>,
    v2_deployed: bool,
    /// Versions 3.0.N (the v1 component again) alive, deployed late.
    replays: Vec<String>,
    deployed_replays: usize,
    /// A deploy cut off by the kill, registered or not.
    pending_deploy: Option<String>,
    last_acked: Option<Produced>,
    /// The replay versions whose state is per partition (payments v2's
    /// rules on contract 0.3.0-rc.1), replayed on several threads.
    parallel: HashSet<String>,
    /// Replay phases so far (they alternate the two kinds of version).
    replay_phases: usize,
}

/// Starts the host on `dir`, with up to four threads per version.
fn start_server(dir: &std::path::Path) -> Server {
    Server::start_with(dir, &["--threads-per-version", "4"], &[])
}

impl Run {
    /// A deploy of a new 3.0.N version (at most three alive: the oldest is
    /// retired, unless it is the last alive that replayed on several
    /// threads, which the end of the seed checks; then the next oldest).
    fn next_replay_version(&mut self, server: &Server) -> String {
        if self.replays.len() >= 3 {
            let parallel = &self.parallel;
            let alive = self
                .replays
                .iter()
                .filter(|v| parallel.contains(*v))
                .count();
            let i = self
                .replays
                .iter()
                .position(|v| alive > 1 || !parallel.contains(v))
                .unwrap_or(0);
            let old = self.replays.remove(i);
            let path = format!("/v1/processors/payments/versions/{old}");
            let (status, body) = http(&server.url, "DELETE", &path, b"");
            assert_eq!(status, 200, "retire {old}: {body}");
        }
        self.deployed_replays += 1;
        format!("3.0.{}", self.deployed_replays)
    }

    /// Starts the work a round's kill aims at: the request in flight (if
    /// any), the delay before the kill, and a version expected to replay.
    fn start(&mut self, server: &Server, phase: Phase) -> (InFlight, u64, Option<String>) {
        let spawn = |method: &'static str, path: String, body: &'static [u8]| {
            let url = server.url.clone();
            std::thread::spawn(move || post(&url, method, &path, body))
        };
        match phase {
            Phase::Produce => (None, self.rng.below(40), None),
            Phase::Replay => {
                let version = self.next_replay_version(server);
                let path = format!("/v1/processors/payments/versions/{version}?topic=payments");
                self.replay_phases += 1;
                let plugin = if self.replay_phases.is_multiple_of(2) {
                    self.parallel.insert(version.clone());
                    &kappa_plugins::PAYMENTS_V2_SHARDS
                } else {
                    &kappa_plugins::PAYMENTS_V1
                };
                let (status, body) = http(&server.url, "POST", &path, plugin.bytes);
                assert!(
                    matches!(status, 200 | 201),
                    "deploy {version}: {status} {body}"
                );
                self.replays.push(version.clone());
                (None, self.rng.below(20), Some(version))
            }
            Phase::Deploy if !self.v2_deployed => {
                let path = "/v1/processors/payments/versions/2.0.0?topic=payments".to_owned();
                // Compiling a component takes hundreds of milliseconds.
                (
                    Some((
                        "2.0.0".to_owned(),
                        spawn("POST", path, kappa_plugins::PAYMENTS_V2.bytes),
                    )),
                    self.rng.below(600),
                    None,
                )
            }
            Phase::Deploy => {
                let version = self.next_replay_version(server);
                let path = format!("/v1/processors/payments/versions/{version}?topic=payments");
                (
                    Some((
                        version,
                        spawn("POST", path, kappa_plugins::PAYMENTS_V1.bytes),
                    )),
                    self.rng.below(15),
                    None,
                )
            }
            Phase::Swap => {
                let swap = if self.rng.below(2) == 0 {
                    spawn(
                        "POST",
                        "/v1/processors/payments/promote".into(),
                        br#"{"version":"2.0.0"}"#,
                    )
                } else {
                    spawn("POST", "/v1/processors/payments/rollback".into(), b"")
                };
                (Some((String::new(), swap)), self.rng.below(3), None)
            }
        }
    }

    /// Takes note of the producer's requests; returns the one cut off.
    fn record(&mut self, produced: Vec<Produced>) -> Option<Produced> {
        let mut unknown = None;
        for p in produced {
            for e in &p.batch {
                let n = self.known.seq.len() as u64;
                self.known.seq.insert(e.txn.clone(), n);
            }
            if p.acked.is_some() {
                self.known
                    .acked
                    .extend(p.batch.iter().map(|e| e.txn.clone()));
                self.last_acked = Some(p);
            } else if p.unknown {
                unknown = Some(p);
            } else {
                self.known
                    .never
                    .extend(p.batch.iter().map(|e| e.txn.clone()));
            }
        }
        unknown
    }

    /// Takes note of how the deploy, promote or rollback of a round ended.
    fn settle(&mut self, phase: Phase, in_flight: InFlight, tally: &mut Tally) {
        if let Some((version, thread)) = in_flight {
            match (phase, thread.join().unwrap()) {
                (Phase::Deploy, Sent::Broken) => tally.deploy += 1,
                (Phase::Deploy, Sent::Answered(200 | 201, _)) => {
                    if version == "2.0.0" {
                        self.v2_deployed = true;
                    } else {
                        self.replays.push(version.clone());
                    }
                }
                (Phase::Swap, Sent::Answered(200, answer)) => {
                    let p: serde_json::Value = serde_json::from_str(&answer).unwrap();
                    self.expected_alias = Some(p["promoted"].as_str().map(str::to_owned));
                }
                // Cut off by the kill: either outcome is correct.
                (Phase::Swap, Sent::Broken) => {
                    tally.swap += 1;
                    self.expected_alias = None;
                }
                // Refused (still replaying, nothing to roll back to), or
                // never sent: no acknowledged change.
                _ => {}
            }
            if phase == Phase::Deploy && version != "2.0.0" && !self.replays.contains(&version) {
                // A deploy cut off may or may not have been registered.
                self.pending_deploy = Some(version);
            }
        }
    }

    fn round(&mut self, mut server: Server, phase: Phase, tally: &mut Tally) -> Server {
        let phase = match phase {
            Phase::Swap if !self.v2_deployed => Phase::Deploy,
            other => other,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let producer = {
            let (url, stop, generator) = (server.url.clone(), stop.clone(), self.generator.clone());
            let (rng, first_id) = (Rng(self.rng.below(u64::MAX)), self.next_id);
            std::thread::spawn(move || produce_until_killed(url, generator, stop, rng, first_id))
        };
        std::thread::sleep(Duration::from_millis(self.rng.below(30)));
        let (in_flight, delay, watched_replay) = self.start(&server, phase);
        std::thread::sleep(Duration::from_millis(delay));
        let parallel = watched_replay
            .as_ref()
            .is_some_and(|v| self.parallel.contains(v));
        let replaying = watched_replay.is_some_and(|v| version_state(&server, &v) == "replaying");
        server.kill();
        tally.rounds += 1;
        tally.replay += usize::from(replaying);
        tally.parallel_replay += usize::from(replaying && parallel);

        stop.store(true, Ordering::Relaxed);
        let (advanced, produced) = producer.join().unwrap();
        self.generator = advanced;
        self.next_id += produced.len();
        let unknown = self.record(produced);
        tally.produce += usize::from(unknown.is_some());
        self.settle(phase, in_flight, tally);

        server = start_server(self.dir.path());
        if let Some(version) = self.pending_deploy.take() {
            let path = format!("/v1/processors/payments/versions/{version}");
            if http(&server.url, "GET", &path, b"").0 == 200 {
                self.replays.push(version);
            }
        }
        if !self.v2_deployed {
            self.v2_deployed = http(
                &server.url,
                "GET",
                "/v1/processors/payments/versions/2.0.0",
                b"",
            )
            .0 == 200;
        }
        if !self.v2_deployed && tally.deploy >= MIN_PER_PHASE {
            // Enough kills landed inside deploys; on a loaded machine the
            // compile can outlast every kill delay, so deploy v2 whole now
            // for the swap phase to have something to swap.
            let path = "/v1/processors/payments/versions/2.0.0?topic=payments";
            let (status, body) = http(&server.url, "POST", path, kappa_plugins::PAYMENTS_V2.bytes);
            assert!(matches!(status, 200 | 201), "deploy 2.0.0: {status} {body}");
            self.v2_deployed = true;
        }
        self.check(&server, unknown, tally);
        server
    }

    fn check(&mut self, server: &Server, unknown: Option<Produced>, tally: &mut Tally) {
        let (seed, round) = (self.seed, tally.rounds);
        self.known.refresh(server, seed, round);
        if let Some(p) = &unknown {
            resolve_unknown(server, &mut self.known, p, tally, seed);
            self.known.refresh(server, seed, round);
        }
        // An acknowledged request sent again after the restart is a duplicate.
        if let Some(p) = &self.last_acked {
            let (status, answer) = http(
                &server.url,
                "POST",
                "/v1/topics/payments/events",
                &produce_body(&p.id, &p.batch),
            );
            assert_eq!(status, 200, "{answer}");
            let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
            assert_eq!(
                v["duplicate"], true,
                "seed {seed}, round {round}: resend of {}: {answer}",
                p.id
            );
            assert_eq!(&v["partitions"], p.acked.as_ref().unwrap());
            check_ranges(&self.known, p, &v["partitions"], seed);
        }
        if let Some(want) = &self.expected_alias {
            assert_eq!(
                &alias(server),
                want,
                "seed {seed}, round {round}: the alias swap was acknowledged"
            );
        }
    }
}

fn run_seed(seed: u64, rounds: usize, tally: &mut Tally) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start_server(dir.path());
    server.json(&[
        "topic",
        "create",
        "payments",
        "--partitions",
        &PARTITIONS.to_string(),
    ]);
    server.json(&[
        "deploy",
        kappa_plugins::PAYMENTS_V1.path,
        "--name",
        "payments",
        "--version",
        "1.0.0",
        "--topic",
        "payments",
    ]);
    let mut run = Run {
        seed,
        rng: Rng(seed),
        dir,
        generator: PaymentGenerator::new(seed, 30, 1_767_225_600_000),
        known: Known::default(),
        next_id: 0,
        expected_alias: None,
        v2_deployed: false,
        replays: Vec::new(),
        deployed_replays: 0,
        pending_deploy: None,
        last_acked: None,
        parallel: HashSet::new(),
        replay_phases: 0,
    };
    const PHASES: [Phase; 4] = [Phase::Produce, Phase::Replay, Phase::Deploy, Phase::Swap];
    let mut seed_tally = Tally::default();
    // Past the rounds asked for, only the phases still short of their
    // minimum run, up to a bound.
    let limit = 4 * rounds + 40;
    let mut round = 0;
    loop {
        let short: Vec<Phase> = PHASES
            .into_iter()
            .filter(|&p| seed_tally.of(p) < MIN_PER_PHASE)
            .collect();
        if round >= rounds && short.is_empty() {
            break;
        }
        assert!(
            round < limit,
            "seed {seed}: after {round} rounds, too few kills landed in {short:?}: {seed_tally:?}"
        );
        let phase = if round < rounds {
            PHASES[round % 4]
        } else {
            short[round % short.len()]
        };
        server = run.round(server, phase, &mut seed_tally);
        round += 1;
    }

    // Crash-free reference: the views of the log as it now stands.
    let mut versions = vec!["1.0.0".to_owned()];
    if run.v2_deployed {
        versions.push("2.0.0".to_owned());
    }
    versions.extend(run.replays.iter().cloned());
    let log: Vec<Payment> = run.known.contents.iter().flatten().cloned().collect();
    for version in &versions {
        let id = format!("payments@{version}");
        server.wait_applied(&id);
        let rules = if version == "2.0.0" || run.parallel.contains(version) {
            V2_RULES
        } else {
            V1_RULES
        };
        let want = expected_view(&log, rules);
        let got = server.json(&["digest", &id]);
        assert_eq!(
            got["sha256"].as_str(),
            Some(digest_of(&want).as_str()),
            "seed {seed}: {id} differs from a crash-free run over the same {} events",
            log.len()
        );
        seed_tally.views += 1;
        seed_tally.parallel_views += usize::from(run.parallel.contains(version));
    }
    assert!(
        seed_tally.parallel_views >= 1,
        "seed {seed}: no version replayed on several threads was left to check: {seed_tally:?}"
    );
    seed_tally.acked_events = run.known.acked.len();
    assert!(
        seed_tally.acked_events > 100,
        "seed {seed}: too few acknowledged events ({}) to mean anything",
        seed_tally.acked_events
    );
    eprintln!("crash test: seed {seed}: {seed_tally:?}");
    tally.rounds += seed_tally.rounds;
    tally.produce += seed_tally.produce;
    tally.replay += seed_tally.replay;
    tally.parallel_replay += seed_tally.parallel_replay;
    tally.deploy += seed_tally.deploy;
    tally.swap += seed_tally.swap;
    tally.unknown_present += seed_tally.unknown_present;
    tally.unknown_absent += seed_tally.unknown_absent;
    tally.acked_events += seed_tally.acked_events;
    tally.views += seed_tally.views;
    tally.parallel_views += seed_tally.parallel_views;
}

#[test]
fn sigkill_at_random_points_loses_no_acknowledged_event_and_applies_none_twice() {
    let rounds = std::env::var("KAPPA_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    let seeds: Vec<u64> = match std::env::var("KAPPA_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(seed) => vec![seed],
        None => {
            let fresh = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(7);
            REGRESSION_SEEDS.iter().copied().chain([fresh]).collect()
        }
    };
    let mut tally = Tally::default();
    for seed in seeds {
        eprintln!("crash test: seed {seed} (rerun with KAPPA_CRASH_SEED={seed})");
        run_seed(seed, rounds, &mut tally);
    }
    println!(
        "crash test: {} rounds, each a SIGKILL; kills inside a produce {}, a replay {} ({} of them \
         parallel), a deploy {}, \
         a promote or rollback {}; cut-off produce calls found all stored {} and all absent {} \
         (each retried with its id); {} events acknowledged; {} views ({} of them parallel) equal to \
         a crash-free run",
        tally.rounds,
        tally.produce,
        tally.replay,
        tally.parallel_replay,
        tally.deploy,
        tally.swap,
        tally.unknown_present,
        tally.unknown_absent,
        tally.acked_events,
        tally.views,
        tally.parallel_views
    );
}
