//! Several input topics, end to end: a version of contract 0.3.0 deployed
//! with `--topic orders --topic limits` (two topics of two partitions,
//! events with interleaved timestamps) run by the real host over the
//! `topic-probe` plugin built from source, which records the order it sees
//! (`seq/<partition>/<n>` = `<topic index>:<offset>:<timestamp>`).
//!
//! - the order is exactly the merge this test computes on its own, by
//!   (timestamp, topic index, offset) of each topic's next event;
//! - a clean restart and a SIGKILL resume every topic exactly: the same
//!   digest as an uninterrupted run;
//! - deploy refuses a topic of another partition count, a topic given
//!   twice, and several topics for an older contract;
//! - a poison event of the second topic is named with its topic and offset,
//!   the events before it in the merged order applied; under `skip` it is a
//!   dead letter naming its topic;
//! - an event that arrives after events of the other topic with later
//!   timestamps were delivered is counted late;
//! - a diff of two such versions holds both topics at one position, also
//!   while both topics grow.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;

const PROBE: &str = kappa_plugins::TOPIC_PROBE.path;
const PARTITIONS: u32 = 2;

/// One event as the test produces it: (partition, timestamp, value).
type Event = (u32, i64, String);

/// A small deterministic generator.
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

/// `count` events of each partition with timestamps from `base` on,
/// jittered so that they interleave with another topic's and sometimes go
/// back in time within the topic.
fn events(rng: &mut Rng, count: usize, base: i64) -> Vec<Event> {
    let mut out = Vec::new();
    for partition in 0..PARTITIONS {
        for i in 0..count {
            let ts = base + 10 * i as i64 + rng.below(40) as i64 - 10;
            out.push((partition, ts, format!("e{partition}-{i}")));
        }
    }
    out
}

fn produce(server: &Server, topic: &str, events: &[Event]) {
    let lines: String = events
        .iter()
        .map(|(p, ts, v)| {
            json!({"key": v, "value": v, "timestamp": ts, "partition": p}).to_string() + "\n"
        })
        .collect();
    let out = server.run_stdin(&["produce", topic], Some(&lines));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn create_topics(server: &Server, topics: &[(&str, u32)]) {
    for (name, partitions) in topics {
        server.json(&[
            "topic",
            "create",
            name,
            "--partitions",
            &partitions.to_string(),
        ]);
    }
}

fn deploy_args<'a>(version: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "deploy",
        PROBE,
        "--name",
        "probe",
        "--version",
        version,
        "--topic",
        "orders",
        "--topic",
        "limits",
    ];
    args.extend(extra);
    args
}

/// The order an independent merge of `topics` (each in offset order, by
/// partition) gives: by (timestamp, topic index, offset) of each topic's
/// next event. Per partition: `(topic, offset, timestamp)`.
fn merged(topics: &[&[Event]]) -> BTreeMap<u32, Vec<(u32, u64, i64)>> {
    let mut out = BTreeMap::new();
    for partition in 0..PARTITIONS {
        let mut queues: Vec<Vec<(u64, i64)>> = topics
            .iter()
            .map(|events| {
                let mine: Vec<i64> = events
                    .iter()
                    .filter(|e| e.0 == partition)
                    .map(|e| e.1)
                    .collect();
                let mut queue: Vec<(u64, i64)> = (0u64..).zip(mine).collect();
                queue.reverse();
                queue
            })
            .collect();
        let mut order = Vec::new();
        loop {
            let next = (0u32..)
                .zip(&queues)
                .filter_map(|(t, q)| q.last().map(|&(o, ts)| (ts, t, o)))
                .min();
            let Some((ts, t, o)) = next else { break };
            queues[t as usize].pop();
            order.push((t, o, ts));
        }
        out.insert(partition, order);
    }
    out
}

/// The order the probe recorded, per partition.
fn seen(server: &Server, view: &str) -> BTreeMap<u32, Vec<(u32, u64, i64)>> {
    let mut out: BTreeMap<u32, Vec<(u32, u64, i64)>> = BTreeMap::new();
    for (key, value) in server.rows(view) {
        let Some(rest) = key.strip_prefix("seq/") else {
            continue;
        };
        let partition: u32 = rest.split('/').next().unwrap().parse().unwrap();
        let value: String = serde_json::from_str(&value).unwrap();
        let parts: Vec<&str> = value.split(':').collect();
        out.entry(partition).or_default().push((
            parts[0].parse().unwrap(),
            parts[1].parse().unwrap(),
            parts[2].parse().unwrap(),
        ));
    }
    out
}

fn digest(server: &Server, view: &str) -> Value {
    server.json(&["digest", view])["sha256"].clone()
}

/// Waits until `id` has applied every event of every topic.
fn wait_all(server: &Server, id: &str) -> Value {
    let v = server.wait_applied(id);
    for input in v["inputs"].as_array().unwrap() {
        assert_eq!(input["applied_offsets"], input["end_offsets"], "{v}");
    }
    v
}

#[test]
fn a_version_of_two_topics_sees_them_in_merge_order_and_status_shows_both() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    create_topics(&server, &[("orders", PARTITIONS), ("limits", PARTITIONS)]);
    let mut rng = Rng(7);
    let (orders, limits) = (events(&mut rng, 300, 1000), events(&mut rng, 200, 1005));
    produce(&server, "orders", &orders);
    produce(&server, "limits", &limits);

    let out = server.run(&deploy_args("1.0.0", &["--wait"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("reading topics orders, limits")
            && printed.contains("replaying 1,000 events"),
        "{printed}"
    );
    let waited = String::from_utf8_lossy(&out.stderr);
    assert!(waited.contains("(1,000 events applied)"), "{waited}");
    let v = wait_all(&server, "probe@1.0.0");

    assert_eq!(seen(&server, "probe@1.0.0"), merged(&[&orders, &limits]));
    assert_eq!(v["topic"], "orders");
    assert_eq!(v["late_events"], 0);
    assert_eq!(v["lag"], 0);
    let inputs = v["inputs"].as_array().unwrap();
    assert_eq!(inputs.len(), 2);
    assert_eq!(inputs[0]["topic"], "orders");
    assert_eq!(inputs[1]["topic"], "limits");
    assert_eq!(inputs[1]["end_offsets"], json!([200, 200]));
    let table = String::from_utf8_lossy(&server.run(&["status", "probe"]).stdout).into_owned();
    assert!(table.contains("limits"), "{table}");

    // Lag counts the events of every topic.
    produce(&server, "limits", &[(0, 99_999, "x".into())]);
    produce(&server, "orders", &[(1, 99_999, "y".into())]);
    let v = wait_all(&server, "probe@1.0.0");
    assert_eq!(v["inputs"][1]["applied_offsets"], json!([201, 200]));

    // A second version of the same bytes builds the same view, and a diff
    // holds both topics at one position.
    server.json(&deploy_args("2.0.0", &["--wait"]));
    let diff = server.json(&["diff", "probe@1.0.0", "probe@2.0.0"]);
    assert_eq!(diff["counts"]["added"], 0, "{diff}");
    assert_eq!(diff["counts"]["removed"], 0, "{diff}");
    assert_eq!(diff["counts"]["changed"], 0, "{diff}");
    assert_eq!(
        digest(&server, "probe@1.0.0"),
        digest(&server, "probe@2.0.0")
    );
}

/// Phase 1 interleaved; phase 2 later than all of it, orders' before
/// limits' (so that producing orders first gives the merge order live too).
fn phases() -> (Vec<Event>, Vec<Event>, Vec<Event>, Vec<Event>) {
    let mut rng = Rng(11);
    (
        events(&mut rng, 1500, 1000),
        events(&mut rng, 1500, 1003),
        events(&mut rng, 400, 100_000),
        events(&mut rng, 400, 200_000),
    )
}

/// The order a probe saw, by partition: (topic, offset, timestamp) of each
/// event.
type SeenOrder = BTreeMap<u32, Vec<(u32, u64, i64)>>;

/// Produces phase 1, deploys, interrupts the host with `interrupt` (after
/// `wait`ing for the replay, or right away), produces phase 2 and returns
/// the final digest and order.
fn interrupted_run(interrupt: fn(Server), wait: bool) -> (Value, SeenOrder) {
    let dir = tempfile::tempdir().unwrap();
    let (o1, l1, o2, l2) = phases();
    let server = Server::start(dir.path());
    create_topics(&server, &[("orders", PARTITIONS), ("limits", PARTITIONS)]);
    produce(&server, "orders", &o1);
    produce(&server, "limits", &l1);
    if wait {
        server.json(&deploy_args("1.0.0", &["--wait"]));
    } else {
        server.json(&deploy_args("1.0.0", &[]));
        // Killed as soon as it has applied something (mid-replay when the
        // host is slow enough: not asserted, the replay takes milliseconds).
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let v = server.version("probe@1.0.0");
            if v["processed_since_start"].as_u64().unwrap_or(0) > 0 || v["lag"] == 0 {
                eprintln!("killed with a lag of {} events", v["lag"]);
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    interrupt(server);
    let server = Server::start(dir.path());
    produce(&server, "orders", &o2);
    produce(&server, "limits", &l2);
    let v = wait_all(&server, "probe@1.0.0");
    assert_eq!(v["late_events"], 0, "{v}");
    (digest(&server, "probe@1.0.0"), seen(&server, "probe@1.0.0"))
}

#[test]
fn a_restart_and_a_kill_resume_every_topic_exactly() {
    let (o1, l1, o2, l2) = phases();
    let want = {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(dir.path());
        create_topics(&server, &[("orders", PARTITIONS), ("limits", PARTITIONS)]);
        for (topic, events) in [
            ("orders", &o1),
            ("limits", &l1),
            ("orders", &o2),
            ("limits", &l2),
        ] {
            produce(&server, topic, events);
        }
        server.json(&deploy_args("1.0.0", &["--wait"]));
        wait_all(&server, "probe@1.0.0");
        let order = seen(&server, "probe@1.0.0");
        let all_orders: Vec<Event> = o1.iter().chain(&o2).cloned().collect();
        let all_limits: Vec<Event> = l1.iter().chain(&l2).cloned().collect();
        assert_eq!(order, merged(&[&all_orders, &all_limits]));
        (digest(&server, "probe@1.0.0"), order)
    };
    assert_eq!(interrupted_run(Server::stop, true), want, "a clean restart");
    assert_eq!(
        interrupted_run(Server::kill, true),
        want,
        "a kill -9 caught up"
    );
    assert_eq!(
        interrupted_run(Server::kill, false),
        want,
        "a kill -9 replaying"
    );
}

#[test]
fn deploy_refuses_topics_that_are_not_co_partitioned_or_an_older_contract() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    create_topics(&server, &[("orders", 2), ("limits", 2), ("wide", 3)]);

    let mut args = deploy_args("1.0.0", &[]);
    args[9] = "wide";
    let err = server.fails(&args, 2);
    assert!(
        err.contains("`wide` has 3 partitions and `orders` 2") && err.contains("co-partitioned"),
        "{err}"
    );
    args[9] = "orders";
    let err = server.fails(&args, 2);
    assert!(err.contains("topic `orders` is given twice"), "{err}");
    args[9] = "ghost";
    server.fails(&args, 2);

    for older in [kappa_plugins::STARTER.path, kappa_plugins::RANGE_PROBE.path] {
        let mut args = deploy_args("1.0.0", &[]);
        args[1] = older;
        let err = server.fails(&args, 2);
        assert!(
            err.contains("whose batch has no topic column") && err.contains("0.3.0"),
            "{err}"
        );
    }
    // Nothing was deployed.
    let status = server.json(&["status"]);
    assert_eq!(status["processors"], json!([]), "{status}");
    // The topics are settings of a version: a deploy again with others is
    // refused, naming them.
    server.json(&deploy_args("1.0.0", &[]));
    let err = server.fails(
        &[
            "deploy",
            PROBE,
            "--name",
            "probe",
            "--version",
            "1.0.0",
            "--topic",
            "orders",
        ],
        1,
    );
    assert!(
        err.contains("--topic orders --topic limits (asked: orders)"),
        "{err}"
    );
}

#[test]
fn a_poison_event_of_the_second_topic_is_named_with_its_topic_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    create_topics(&server, &[("orders", PARTITIONS), ("limits", PARTITIONS)]);
    let mut rng = Rng(3);
    let orders = events(&mut rng, 50, 1000);
    let mut limits = events(&mut rng, 50, 1002);
    // Partition 1's event at offset 12 of limits.
    let poisoned = limits.iter().position(|e| e.0 == 1).unwrap() + 12;
    limits[poisoned].2 = "poison".into();
    produce(&server, "orders", &orders);
    produce(&server, "limits", &limits);

    let err = server.fails(&deploy_args("1.0.0", &["--wait"]), 1);
    assert!(
        err.contains("at topic limits partition 1 offset 12: ")
            && err.contains("poison event in topic 1"),
        "{err}"
    );
    let v = server.version("probe@1.0.0");
    assert_eq!(v["state"], "failed");
    assert_eq!(v["failure"]["event_topic"], "limits", "{v}");
    assert_eq!(v["failure"]["partition"], 1);
    assert_eq!(v["failure"]["offset"], 12);
    assert_eq!(v["inputs"][1]["topic"], "limits");
    assert_eq!(v["inputs"][1]["applied_offsets"][1], 12, "{v}");
    // Its lag counts the events of both topics not applied.
    let pending: u64 = v["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| {
            let applied = i["applied_offsets"].as_array().unwrap().clone();
            let ends = i["end_offsets"].as_array().unwrap().clone();
            ends.into_iter()
                .zip(applied)
                .map(|(e, a)| e.as_u64().unwrap() - a.as_u64().unwrap())
        })
        .sum();
    assert!(pending >= 50 - 12, "{v}");
    assert_eq!(v["lag"], pending, "{v}");
    // The events before it in the merged order are applied, none after.
    let want = merged(&[&orders, &limits]);
    let got = seen(&server, "probe@1.0.0");
    let cut = want[&1].iter().position(|e| e.0 == 1 && e.1 == 12).unwrap();
    assert_eq!(got[&1], want[&1][..cut]);
    // Partition 0 runs on a lane of its own, stopped with the version.
    let zero = got.get(&0).cloned().unwrap_or_default();
    assert_eq!(zero, want[&0][..zero.len()]);

    // Under `skip` it is a dead letter of that topic, and the rest applied.
    server.json(&deploy_args("2.0.0", &["--on-error", "skip", "--wait"]));
    let v = wait_all(&server, "probe@2.0.0");
    assert_eq!(v["dead_letter_count"], 1, "{v}");
    let letter = &v["dead_letters"][0];
    assert_eq!(
        (&letter["topic"], &letter["partition"], &letter["offset"]),
        (&json!("limits"), &json!(1), &json!(12)),
        "{v}"
    );
    let mut rest = want[&1].clone();
    rest.remove(cut);
    assert_eq!(seen(&server, "probe@2.0.0")[&1], rest);
}

#[test]
fn an_event_older_than_what_the_other_topic_delivered_is_counted_late() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    create_topics(&server, &[("orders", PARTITIONS), ("limits", PARTITIONS)]);
    server.json(&deploy_args("1.0.0", &["--wait"]));
    // limits is at its end: the host delivers orders without waiting.
    produce(
        &server,
        "orders",
        &[(0, 5000, "a".into()), (0, 6000, "b".into())],
    );
    wait_all(&server, "probe@1.0.0");
    // Two older events of limits, one newer, then arrive.
    let later = [
        (0, 4000, "c".into()),
        (0, 5500, "d".into()),
        (0, 7000, "e".into()),
    ];
    produce(&server, "limits", &later);
    let v = wait_all(&server, "probe@1.0.0");
    assert_eq!(v["late_events"], 2, "{v}");
    let order: Vec<(u32, u64)> = seen(&server, "probe@1.0.0")[&0]
        .iter()
        .map(|e| (e.0, e.1))
        .collect();
    assert_eq!(order, [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2)]);
    let (status, metrics) = http(&server.url, "GET", "/metrics", b"");
    assert_eq!(status, 200);
    assert!(
        metrics
            .contains("kappa_version_late_events_total{processor=\"probe\",version=\"1.0.0\"} 2"),
        "{metrics}"
    );
    let table = String::from_utf8_lossy(&server.run(&["status", "probe"]).stdout).into_owned();
    assert!(table.contains("2 late events"), "{table}");
}

#[test]
fn with_a_topic_idle_wait_a_topic_at_its_end_is_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    create_topics(&server, &[("orders", PARTITIONS), ("limits", PARTITIONS)]);
    let v = server.json(&deploy_args(
        "1.0.0",
        &["--topic-idle-ms", "600000", "--wait"],
    ));
    assert_eq!(v["settings"]["topic_idle_ms"], 600_000, "{v}");
    // limits is at its end: the host waits for it (ten minutes at most)
    // rather than deliver orders without it, so nothing is late.
    produce(
        &server,
        "orders",
        &[(0, 5000, "a".into()), (0, 6000, "b".into())],
    );
    let later = [
        (0, 4000, "c".into()),
        (0, 5500, "d".into()),
        (0, 7000, "e".into()),
    ];
    produce(&server, "limits", &later);
    // limits' last event waits in turn for orders' next.
    produce(&server, "orders", &[(0, 8000, "f".into())]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let v = loop {
        let v = server.version("probe@1.0.0");
        if v["inputs"][1]["applied_offsets"][0] == 3 {
            break v;
        }
        assert!(Instant::now() < deadline, "limits was not applied: {v}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(v["late_events"], 0, "{v}");
    assert_eq!(v["lag"], 1, "orders' last event waits for limits: {v}");
    let order: Vec<(u32, u64)> = seen(&server, "probe@1.0.0")[&0]
        .iter()
        .map(|e| (e.0, e.1))
        .collect();
    assert_eq!(order, [(1, 0), (0, 0), (1, 1), (0, 1), (1, 2)]);

    // It is a setting of several topics only.
    let err = server.fails(
        &[
            "deploy",
            PROBE,
            "--name",
            "probe",
            "--version",
            "2.0.0",
            "--topic",
            "orders",
            "--topic-idle-ms",
            "5",
        ],
        2,
    );
    assert!(
        err.contains("--topic-idle-ms is for a version of several topics"),
        "{err}"
    );
}

#[test]
fn a_diff_holds_both_topics_of_two_live_versions_at_one_position() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    create_topics(&server, &[("orders", PARTITIONS), ("limits", PARTITIONS)]);
    server.json(&deploy_args("1.0.0", &["--wait"]));
    server.json(&deploy_args("2.0.0", &["--wait"]));
    // Timestamps grow across every append, so that live delivery is the
    // merge order whatever the timing: two versions at one position of
    // both topics hold the same rows, and one topic left unheld would show.
    let url = server.url.clone();
    let producer = std::thread::spawn(move || {
        let mut ts = 1000;
        for round in 0..60 {
            let topic = if round % 2 == 0 { "orders" } else { "limits" };
            let events: Vec<Value> = (0..20)
                .map(|i| {
                    ts += 1;
                    json!({"value": format!("r{round}-{i}"), "timestamp": ts, "partition": i % 2})
                })
                .collect();
            let body = json!({ "events": events }).to_string();
            let (status, answer) = http(
                &url,
                "POST",
                &format!("/v1/topics/{topic}/events"),
                body.as_bytes(),
            );
            assert_eq!(status, 200, "{answer}");
        }
    });
    let mut diffs = 0;
    while !producer.is_finished() || diffs == 0 {
        let diff = server.json(&["diff", "probe@1.0.0", "probe@2.0.0", "--limit", "0"]);
        let counts = &diff["counts"];
        assert_eq!(
            (&counts["added"], &counts["removed"], &counts["changed"]),
            (&json!(0), &json!(0), &json!(0)),
            "{diff}"
        );
        diffs += 1;
    }
    producer.join().unwrap();
    wait_all(&server, "probe@1.0.0");
    assert_eq!(server.version("probe@1.0.0")["late_events"], 0);
}
