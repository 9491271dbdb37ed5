//! kappa over Kafka, against a real Kafka-protocol broker: `tansu`, started
//! here on a loopback port (KAPPA_TANSU names its binary; scripts/test
//! installs it and sets it). Events come both from `kappa produce` and from
//! kafka-python (KAPPA_KAFKA_PYTHON: a Python with the `kafka` package), a
//! client independent of librdkafka. Checked:
//! - the whole lifecycle over a topic of several partitions: replay, diff,
//!   promote, rollback, a host restart, and views byte-identical (same
//!   digest) to the ones an embedded-log host builds from the same events;
//! - a broker stopped and restarted under a running host: clear errors while
//!   it is down, then every event applied exactly once.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kappa::workload::{Payment, PaymentGenerator};
use serde_json::Value;
use support::*;

const V1: &str = "payments@1.0.0";
const V2: &str = "payments@2.0.0";

/// The tools, or `None` (with a loud message) when they are not set up;
/// under CI, a failure instead.
fn tools() -> Option<(PathBuf, PathBuf)> {
    match (
        std::env::var_os("KAPPA_TANSU"),
        std::env::var_os("KAPPA_KAFKA_PYTHON"),
    ) {
        (Some(tansu), Some(python)) => Some((tansu.into(), python.into())),
        _ => {
            cannot_run(
                "the Kafka tests (KAPPA_TANSU and KAPPA_KAFKA_PYTHON are not set)",
                "run scripts/test (it installs tansu and kafka-python and sets them), or \
                 eval \"$(scripts/kafka-tools.sh)\" first",
            );
            None
        }
    }
}

/// A tansu broker on a loopback port, storing in SQLite so that it keeps its
/// data across a restart.
struct Broker {
    tansu: PathBuf,
    /// Holds tansu.db, the broker's data.
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Broker {
    /// Starts tansu on a free port. tansu cannot report a port it chose
    /// itself, so a port is picked free and, should another process take it
    /// before tansu binds it (tansu then exits), another one is tried.
    fn start(tansu: &Path, dir: &Path) -> Broker {
        let mut broker = Broker {
            tansu: tansu.to_owned(),
            dir: dir.to_owned(),
            port: 0,
            child: None,
        };
        for _ in 0..10 {
            broker.port = free_port();
            if broker.try_start() {
                return broker;
            }
        }
        panic!("tansu could not listen on a free port in 10 tries");
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the stopped broker again, on its port (the hosts know it).
    fn restart(&mut self) {
        assert!(
            self.try_start(),
            "tansu could not listen on {} again",
            self.port
        );
    }

    /// Starts tansu on `self.port`: true once it listens there, false when
    /// it exited instead (the port was taken).
    fn try_start(&mut self) -> bool {
        assert!(self.child.is_none());
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let mut child = Command::new(&self.tansu)
            .args(["broker", "--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            // tansu opens a sqlite:// path relative to its working directory.
            .args(["--storage-engine", "sqlite://tansu.db"])
            .current_dir(&self.dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting tansu");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if child.try_wait().unwrap().is_some() {
                return false;
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                // Whoever answered, tansu is still up: it holds the port.
                std::thread::sleep(Duration::from_millis(200));
                if child.try_wait().unwrap().is_some() {
                    return false;
                }
                self.child = Some(child);
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

fn kafka_host(dir: &Path, broker: &Broker) -> Server {
    Server::start_with(
        dir,
        &["--log", "kafka", "--kafka-bootstrap", &broker.bootstrap()],
        &[],
    )
}

/// Produces payments with kafka-python (its default partitioner, murmur2
/// of the key, like Kafka's Java client), each with a `source` header.
fn python_produce(python: &Path, broker: &Broker, topic: &str, payments: &[Payment]) {
    const SCRIPT: &str = r#"
import json, sys
from kafka import KafkaProducer
producer = KafkaProducer(bootstrap_servers=sys.argv[1], acks="all", linger_ms=5)
sent = []
for line in sys.stdin:
    e = json.loads(line)
    sent.append(producer.send(sys.argv[2], key=e["key"].encode(), value=e["value"].encode(),
                              timestamp_ms=e["timestamp"], headers=[("source", b"kafka-python")]))
for f in sent:
    f.get(timeout=60)
producer.flush()
producer.close()
print(len(sent))
"#;
    let input: String = payments
        .iter()
        .map(|p| {
            let line = p.to_event_line();
            // The same bytes `kappa produce` stores for a JSON value:
            // compact JSON with sorted keys.
            serde_json::json!({
                "key": p.account,
                "value": line.value.unwrap().to_string(),
                "timestamp": p.timestamp,
            })
            .to_string()
                + "\n"
        })
        .collect();
    let mut child = Command::new(python)
        .args(["-c", SCRIPT, &broker.bootstrap(), topic])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running kafka-python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kafka-python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        payments.len().to_string()
    );
}

fn kappa_produce(server: &Server, dir: &Path, payments: &[Payment]) -> Value {
    let file = dir.join("batch.jsonl");
    write_jsonl(&file, payments);
    let produced = server.json(&["produce", "payments", "--file", file.to_str().unwrap()]);
    assert_eq!(produced["appended"], payments.len());
    produced
}

fn deploy(server: &Server, plugin: &kappa_plugins::Plugin, version: &str, extra: &[&str]) -> Value {
    server.deploy_payments(plugin.path, version, extra)
}

/// Copies every event of `from`'s topic into `to`'s, partition by
/// partition, in offset order, with the same keys, values, timestamps and
/// headers.
fn copy_topic(from: &Server, to: &Server, partitions: u32, dir: &Path) -> usize {
    let mut lines = String::new();
    let mut count = 0;
    for p in 0..partitions {
        let events = from.json(&[
            "consume",
            "payments",
            "--partition",
            &p.to_string(),
            "--limit",
            "1000000",
        ]);
        for (expected_offset, e) in events.as_array().unwrap().iter().enumerate() {
            // The broker assigns offsets without gaps here, as the embedded log does.
            assert_eq!(e["offset"], expected_offset, "{e}");
            assert_eq!(e["value_encoding"], "json", "{e}");
            let line = serde_json::json!({
                "key": e["key"],
                "value": e["value"],
                "timestamp": e["timestamp"],
                "partition": p,
                "headers": e.get("headers").cloned().unwrap_or(serde_json::json!({})),
            });
            lines.push_str(&line.to_string());
            lines.push('\n');
            count += 1;
        }
    }
    let file = dir.join("copy.jsonl");
    std::fs::write(&file, lines).unwrap();
    to.json(&["produce", "payments", "--file", file.to_str().unwrap()]);
    count
}

#[test]
fn lifecycle_over_kafka_matches_the_embedded_log() {
    let Some((tansu, python)) = tools() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&tansu, dir.path());
    let data = dir.path().join("kafka-host");
    let server = kafka_host(&data, &broker);
    let mut generator = PaymentGenerator::new(23, 40, 1_767_225_600_000);

    // The topic, created through kappa (Kafka's admin API).
    let created = server.json(&["topic", "create", "payments", "--partitions", "3"]);
    assert_eq!(created["partitions"], 3);
    let err = server.fails(&["topic", "create", "payments", "--partitions", "3"], 1);
    assert!(err.contains("already exists"), "{err}");

    // History from an outside producer and from kappa produce.
    let mut payments = generator.take(1200);
    python_produce(&python, &broker, "payments", &payments);
    let more = generator.take(800);
    let produced = kappa_produce(&server, dir.path(), &more);
    payments.extend(more);
    let ranges = produced["partitions"].as_array().unwrap();
    assert_eq!(ranges.len(), 3, "{produced}");

    // v1 replays from the earliest offsets and is promoted once caught up.
    let v1 = deploy(&server, &kappa_plugins::PAYMENTS_V1, "1.0.0", &["--wait"]);
    assert_eq!(v1["state"], "promoted", "{v1}");
    let want_v1 = expected_view(&payments, V1_RULES);
    assert_eq!(server.rows(V1), as_json_rows(&want_v1));

    // v1 tails live events from both producers while v2 replays beside it.
    let live = generator.take(300);
    python_produce(&python, &broker, "payments", &live);
    payments.extend(live);
    let live = generator.take(300);
    kappa_produce(&server, dir.path(), &live);
    payments.extend(live);
    deploy(&server, &kappa_plugins::PAYMENTS_V2, "2.0.0", &[]);
    server.wait_applied(V2);
    server.wait_applied(V1);
    let want_v1 = expected_view(&payments, V1_RULES);
    let want_v2 = expected_view(&payments, V2_RULES);
    assert_eq!(server.rows(V1), as_json_rows(&want_v1));
    assert_eq!(server.rows(V2), as_json_rows(&want_v2));
    assert_eq!(server.json(&["digest", V1])["sha256"], digest_of(&want_v1));

    // Diff, promote, rollback.
    let diff = server.json(&["diff", V1, V2, "--limit", "5"]);
    assert_eq!(diff_counts(&diff), expected_diff(&want_v1, &want_v2, ""));
    let p = server.json(&["promote", V2]);
    assert_eq!(p["promoted"], "2.0.0", "{p}");
    assert_eq!(
        server.json(&["get", "payments", "account/acct-0001"])["id"],
        V2
    );
    let r = server.json(&["rollback", "payments"]);
    assert_eq!(r["promoted"], "1.0.0", "{r}");
    assert_eq!(
        server.json(&["get", "payments", "account/acct-0001"])["id"],
        V1
    );

    // A host restart: both versions resume from the offsets in their views.
    server.stop();
    let server = kafka_host(&data, &broker);
    let after = generator.take(400);
    python_produce(&python, &broker, "payments", &after[..200]);
    kappa_produce(&server, dir.path(), &after[200..]);
    payments.extend(after);
    server.wait_applied(V1);
    server.wait_applied(V2);
    let want_v1 = expected_view(&payments, V1_RULES);
    let want_v2 = expected_view(&payments, V2_RULES);
    assert_eq!(server.json(&["digest", V1])["sha256"], digest_of(&want_v1));
    assert_eq!(server.json(&["digest", V2])["sha256"], digest_of(&want_v2));
    let status = server.json(&["status", "payments"]);
    assert_eq!(status["processors"][0]["promoted"], "1.0.0", "{status}");

    // The embedded log fed the same events (same partitions, same order)
    // builds byte-identical views.
    let embedded = Server::start(&dir.path().join("embedded-host"));
    embedded.json(&["topic", "create", "payments", "--partitions", "3"]);
    let copied = copy_topic(&server, &embedded, 3, dir.path());
    assert_eq!(copied, payments.len());
    deploy(&embedded, &kappa_plugins::PAYMENTS_V1, "1.0.0", &["--wait"]);
    deploy(&embedded, &kappa_plugins::PAYMENTS_V2, "2.0.0", &[]);
    embedded.wait_applied(V2);
    for id in [V1, V2] {
        let k = server.json(&["digest", id]);
        let e = embedded.json(&["digest", id]);
        assert_eq!(k["sha256"], e["sha256"], "{id}: kafka {k} embedded {e}");
        assert_eq!(k["offsets"], e["offsets"], "{id}: kafka {k} embedded {e}");
    }
}

#[test]
fn broker_down_and_back_loses_and_repeats_nothing() {
    let Some((tansu, python)) = tools() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start(&tansu, dir.path());
    // Produce gives up after 3 s without an acknowledgement.
    let server = Server::start_with(
        &dir.path().join("host"),
        &[
            "--log",
            "kafka",
            "--kafka-bootstrap",
            &broker.bootstrap(),
            "--kafka-option",
            "message.timeout.ms=3000",
            // tansu 0.6's SQLite engine panics ("more or less than one
            // row") when an idempotent producer comes back after messages
            // timed out during the outage; real Kafka does not.
            "--kafka-option",
            "enable.idempotence=false",
        ],
        &[],
    );
    let mut generator = PaymentGenerator::new(5, 30, 1_767_225_600_000);
    server.json(&["topic", "create", "payments", "--partitions", "2"]);
    let mut payments = generator.take(500);
    kappa_produce(&server, dir.path(), &payments);
    deploy(&server, &kappa_plugins::PAYMENTS_V2, "2.0.0", &["--wait"]);

    // Broker down: produce fails clearly (naming the broker), and the
    // version shows the problem instead of failing.
    broker.stop();
    let file = dir.path().join("down.jsonl");
    write_jsonl(&file, &generator.clone().take(3));
    let err = server.fails(
        &["produce", "payments", "--file", file.to_str().unwrap()],
        1,
    );
    assert!(
        err.contains(&broker.bootstrap()) && err.contains("unavailable"),
        "{err}"
    );
    // Over HTTP: a 503 in the API's error shape, naming the broker.
    let body = serde_json::json!({"events": [{"key": "acct-0001", "value": {"txn": "t-down"}}]});
    let (status, reply) = http(
        &server.url,
        "POST",
        "/v1/topics/payments/events",
        body.to_string().as_bytes(),
    );
    assert_eq!(status, 503, "{reply}");
    let reply: Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(reply["error"]["kind"], "unavailable", "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&broker.bootstrap()),
        "{reply}"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = server.version(V2);
        assert_ne!(v["state"], "failed", "{v}");
        if let Some(e) = v["log_error"].as_str() {
            assert!(e.contains(&broker.bootstrap()), "{e}");
            break;
        }
        assert!(Instant::now() < deadline, "no log_error shown: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Back (same data): everything resumes where it stopped.
    broker.restart();
    let more = generator.take(300);
    python_produce(&python, &broker, "payments", &more);
    payments.extend(more);
    let more = generator.take(300);
    kappa_produce(&server, dir.path(), &more);
    payments.extend(more);
    let v = server.wait_applied(V2);
    assert!(v.get("log_error").is_none_or(Value::is_null), "{v}");
    let want = expected_view(&payments, V2_RULES);
    assert_eq!(server.rows(V2), as_json_rows(&want));
    assert_eq!(server.json(&["digest", V2])["sha256"], digest_of(&want));
}

/// A free loopback port (bound then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Every row of one host's own view, without asking its peers.
fn local_rows(server: &Server, view: &str) -> std::collections::BTreeMap<String, String> {
    let (status, body) = http(
        &server.url,
        "GET",
        &format!("/v1/views/{view}/scan?limit=10000&local=true"),
        b"",
    );
    assert_eq!(status, 200, "{body}");
    let page: Value = serde_json::from_str(&body).unwrap();
    assert!(page["next_after"].is_null(), "more than one page: {page}");
    page["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap().to_owned(),
                r["value"].to_string(),
            )
        })
        .collect()
}

#[test]
fn two_hosts_share_the_partitions_and_answer_for_each_other() {
    let Some((tansu, python)) = tools() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&tansu, dir.path());
    let bootstrap = broker.bootstrap();
    let kafka = ["--log", "kafka", "--kafka-bootstrap", bootstrap.as_str()];
    // Each host needs the other's address at start, so the ports are picked
    // here: should another process take one before a host binds it (that
    // host then exits), both are picked again.
    let host = |name: &str, listen: &str, partitions: &str, peer: &str| {
        Server::try_start_with(
            &dir.path().join(name),
            &[
                &kafka[..],
                &[
                    "--listen",
                    listen,
                    "--kafka-partitions",
                    partitions,
                    "--peer",
                    peer,
                ],
            ]
            .concat(),
            &[],
        )
    };
    let (a, b) = (0..10)
        .find_map(|_| {
            let (port_a, port_b) = (free_port(), free_port());
            let (url_a, url_b) = (
                format!("http://127.0.0.1:{port_a}"),
                format!("http://127.0.0.1:{port_b}"),
            );
            let a = host("a", &format!("127.0.0.1:{port_a}"), "0,1", &url_b)?;
            let b = host("b", &format!("127.0.0.1:{port_b}"), "2,3", &url_a)?;
            Some((a, b))
        })
        .expect("two hosts could not listen on free ports in 10 tries");
    let single = kafka_host(&dir.path().join("single"), &broker);

    a.json(&["topic", "create", "payments", "--partitions", "4"]);
    let mut generator = PaymentGenerator::new(41, 50, 1_767_225_600_000);
    let mut payments = generator.take(600);
    python_produce(&python, &broker, "payments", &payments);
    let more = generator.take(600);
    kappa_produce(&b, dir.path(), &more);
    payments.extend(more);

    for host in [&a, &b, &single] {
        deploy(host, &kappa_plugins::PAYMENTS_V2, "2.0.0", &[]);
    }
    for host in [&a, &b, &single] {
        host.wait_applied(V2);
    }
    // Each host applied only its own partitions.
    let offsets_a = a.json(&["digest", V2])["offsets"].clone();
    let offsets_b = b.json(&["digest", V2])["offsets"].clone();
    let owned = |o: &Value| {
        let mut p: Vec<String> = o.as_object().unwrap().keys().cloned().collect();
        p.sort();
        p
    };
    assert_eq!(owned(&offsets_a), ["0", "1"], "{offsets_a}");
    assert_eq!(owned(&offsets_b), ["2", "3"], "{offsets_b}");

    // The union of the two hosts' views is the single host's view, and
    // they share no key.
    let (rows_a, rows_b) = (local_rows(&a, V2), local_rows(&b, V2));
    assert!(!rows_a.is_empty() && !rows_b.is_empty());
    assert!(rows_a.keys().all(|k| !rows_b.contains_key(k)));
    let mut union = rows_a.clone();
    union.extend(rows_b.clone());
    let whole = single.rows(V2);
    assert_eq!(union, whole);
    assert_eq!(whole, as_json_rows(&expected_view(&payments, V2_RULES)));

    // Either host answers for any key: gets forward to the owner, scans
    // gather every host's rows (paged).
    for (key, value) in rows_a.iter().take(20).chain(rows_b.iter().take(20)) {
        for host in [&a, &b] {
            let got = host.json(&["get", V2, key]);
            assert_eq!(
                got["row"]["value"].to_string(),
                *value,
                "{key} via {}",
                host.url
            );
        }
    }
    assert_eq!(a.rows(V2), whole);
    assert_eq!(paged_rows(&b, V2, 37), whole);
    let missing = a.run(&["get", V2, "account/nobody"]);
    assert_eq!(missing.status.code(), Some(1));
}

/// Every row of a view through `kappa scan`, `limit` rows a page.
fn paged_rows(
    server: &Server,
    view: &str,
    limit: usize,
) -> std::collections::BTreeMap<String, String> {
    let mut rows = std::collections::BTreeMap::new();
    let mut after: Option<String> = None;
    let limit = limit.to_string();
    for _ in 0..100_000 {
        let mut args = vec!["scan", view, "--limit", limit.as_str()];
        if let Some(a) = &after {
            args.extend(["--after", a.as_str()]);
        }
        let page = server.json(&args);
        for row in page["rows"].as_array().unwrap() {
            let key = row["key"].as_str().unwrap().to_owned();
            assert!(
                rows.insert(key.clone(), row["value"].to_string()).is_none(),
                "{key} twice"
            );
        }
        match page["next_after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return rows,
        }
    }
    panic!("scan did not end");
}
