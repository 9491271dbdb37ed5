//! `kappa produce` and request ids end to end: the CLI retries a broken
//! connection with the same request id and says when an outcome is unknown
//! (against a stand-in server that hangs up or refuses on cue), a request id
//! given twice stores the events once, and a host on Kafka refuses request
//! ids before contacting the broker.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::sync::Arc;

use support::*;

/// A stand-in server: for each connection, reads one HTTP request and
/// hands it to `answer`, which returns the response to write, or `None` to
/// hang up without answering. Returns its URL and the bodies received.
fn fake_server(
    answer: impl Fn(usize) -> Option<String> + Send + 'static,
) -> (String, Arc<std::sync::Mutex<Vec<serde_json::Value>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let bodies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = bodies.clone();
    std::thread::spawn(move || {
        for (i, stream) in listener.incoming().enumerate() {
            let mut stream = stream.unwrap();
            let mut data = Vec::new();
            let mut buf = [0u8; 65536];
            let body = loop {
                let n = stream.read(&mut buf).unwrap();
                assert!(n > 0, "the client hung up mid-request");
                data.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&data).into_owned();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        break body.to_owned();
                    }
                }
            };
            seen.lock()
                .unwrap()
                .push(serde_json::from_str(&body).unwrap());
            if let Some(response) = answer(i) {
                let _ = stream.write_all(response.as_bytes());
            }
        }
    });
    (url, bodies)
}

fn respond(status: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn produce_cli(url: &str, args: &[&str], input: &str) -> std::process::Output {
    let mut child = std::process::Command::new(KAPPA)
        .args(["produce", "payments", "--server", url])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn kappa_produce_retries_with_the_same_id_and_says_when_the_outcome_is_unknown() {
    let input = "{\"key\":\"a\",\"value\":1}\n{\"key\":\"b\",\"value\":2}\n";
    let stored = r#"{"topic":"payments","appended":2,"partitions":[{"partition":0,"first_offset":0,"last_offset":1,"count":2}],"duplicate":false}"#;

    // Two broken connections, then an answer: retried with the same id.
    let (url, bodies) = fake_server(move |i| (i >= 2).then(|| respond("200 OK", stored)));
    let out = produce_cli(&url, &[], input);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("with the same request id"), "{stderr}");
    let ids: Vec<String> = bodies
        .lock()
        .unwrap()
        .iter()
        .map(|b| b["request_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(ids.iter().all(|id| id == &ids[0]), "{ids:?}");

    // Always broken: the outcome is unknown, and the CLI says so and how to
    // retry safely, never that nothing was stored.
    let (url, bodies) = fake_server(|_| None);
    let out = produce_cli(&url, &["--retries", "1", "--request-id", "run-7"], input);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("may or may not have stored the events of lines 1-2"),
        "{stderr}"
    );
    assert!(stderr.contains("--request-id run-7"), "{stderr}");
    assert!(!stderr.contains("were not stored"), "{stderr}");
    assert_eq!(bodies.lock().unwrap().len(), 2);
    assert_eq!(bodies.lock().unwrap()[0]["request_id"], "run-7-0");

    // A refusal is a known outcome: not stored, and not retried.
    let refused = r#"{"error":{"kind":"conflict","message":"request id \"x\" was already used for other events; nothing was stored"}}"#;
    let (url, bodies) = fake_server(move |_| Some(respond("409 Conflict", refused)));
    let out = produce_cli(&url, &[], input);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("were not stored"), "{stderr}");
    assert_eq!(bodies.lock().unwrap().len(), 1);
}

#[test]
fn a_request_id_given_twice_stores_the_events_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    server.json(&["topic", "create", "payments", "--partitions", "4"]);
    let input: String = (0..40)
        .map(|i| format!("{{\"key\":\"k{i}\",\"value\":{i}}}\n"))
        .collect();
    let first = produce_cli(
        &server.url,
        &["--request-id", "once", "--batch", "15", "--json"],
        &input,
    );
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let again = produce_cli(
        &server.url,
        &["--request-id", "once", "--batch", "15", "--json"],
        &input,
    );
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{stderr}");
    assert_eq!(
        stderr.matches("had been stored before").count(),
        3,
        "{stderr}"
    );
    assert_eq!(first.stdout, again.stdout, "the same offsets are answered");
    let topics = server.json(&["topic", "list"]);
    let total: u64 = topics[0]["end_offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, 40);
}

#[test]
fn a_request_id_is_refused_on_kafka_and_nothing_is_stored() {
    // No broker is needed: the host refuses before contacting one.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        &["--log", "kafka", "--kafka-bootstrap", "127.0.0.1:9"],
        &[],
    );
    let body = br#"{"events":[{"key":"a","value":1}],"request_id":"r-1"}"#;
    let (status, answer) = http(&server.url, "POST", "/v1/topics/payments/events", body);
    assert_eq!(status, 400, "{answer}");
    let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(v["error"]["kind"], "unsupported", "{answer}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nothing was stored"),
        "{answer}"
    );
}

/// The last `openat` of each fd number before line `upto`, as a path.
fn fd_path(trace: &[&str], upto: usize, fd: &str) -> Option<String> {
    trace[..upto].iter().rev().find_map(|line| {
        let (_, rest) = line.split_once("openat(")?;
        let ret = rest.rsplit_once(" = ")?.1.trim();
        (ret == fd).then(|| rest.split('"').nth(1).unwrap_or_default().to_owned())
    })
}

/// Paths fdatasync'ed successfully between lines `from` and `to`, each with
/// the line where the call returned.
fn synced_between(trace: &[&str], from: usize, to: usize) -> Vec<String> {
    let mut pending: std::collections::HashMap<&str, &str> = Default::default();
    let mut out = Vec::new();
    for (i, line) in trace.iter().enumerate().take(to).skip(from) {
        let pid = line.split_whitespace().next().unwrap_or_default();
        let fd = if let Some((_, rest)) = line.split_once("fdatasync(") {
            let fd = rest.split([')', ' ']).next().unwrap_or_default();
            if line.contains("<unfinished") {
                pending.insert(pid, fd);
                continue;
            }
            fd
        } else if line.contains("<... fdatasync resumed>") {
            match pending.remove(pid) {
                Some(fd) => fd,
                None => continue,
            }
        } else {
            continue;
        };
        if line.trim_end().ends_with("= 0")
            && let Some(path) = fd_path(trace, i, fd)
        {
            out.push(path);
        }
    }
    out
}

#[test]
fn an_append_is_fsynced_before_it_is_acknowledged() {
    // SIGKILL leaves the page cache intact, so the crash harness alone
    // would pass with fsync off: here the host's system calls show that the
    // segments and the request journal are fdatasync'ed before the answer.
    assert!(
        std::process::Command::new("strace")
            .arg("-V")
            .output()
            .is_ok(),
        "this test needs strace (apt-get install strace)"
    );
    let dir = tempfile::tempdir().unwrap();
    let trace_path = dir.path().join("trace");
    let data = dir.path().join("data");
    let mut child = std::process::Command::new("strace")
        .args([
            "-f",
            "-s",
            "120",
            "-e",
            "trace=openat,fdatasync,read,recvfrom,write,writev,sendto",
            "-o",
        ])
        .arg(&trace_path)
        .args([
            KAPPA,
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--log-level",
            "warn",
            "--data-dir",
        ])
        .arg(&data)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();
    let (status, body) = http(
        &url,
        "POST",
        "/v1/topics",
        br#"{"name":"payments","partitions":3}"#,
    );
    assert_eq!(status, 201, "{body}");
    let body = br#"{"events":[{"value":1,"partition":0},{"value":2,"partition":2}],"request_id":"fsync-1"}"#;
    let (status, answer) = http(&url, "POST", "/v1/topics/payments/events", body);
    assert_eq!(status, 200, "{answer}");
    // Stop the traced host (SIGKILL of strace alone would leave it running):
    // its pid opens the trace.
    let pid = std::fs::read_to_string(&trace_path)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let _ = std::process::Command::new("kill").arg(&pid).status();
    let _ = child.wait();

    let text = std::fs::read_to_string(&trace_path).unwrap();
    let trace: Vec<&str> = text.lines().collect();
    let request = trace
        .iter()
        // The server reads the request head in small pieces.
        .position(|l| l.contains("\"POST /v1/topics/payments"))
        .expect("the produce request in the trace");
    let response = trace
        .iter()
        .skip(request)
        .position(|l| l.contains("HTTP/1.1 200"))
        .map(|i| i + request)
        .expect("the produce answer in the trace");
    let synced = synced_between(&trace, request, response);
    let topic = data.join("log").join("payments");
    for file in [
        topic.join("requests.log"),
        topic.join("0").join("00000000000000000000.seg"),
        topic.join("2").join("00000000000000000000.seg"),
    ] {
        let file = file.display().to_string();
        assert!(
            synced
                .iter()
                .any(|s| s.ends_with(&file) || file.ends_with(s.as_str())),
            "{file} was not fdatasync'ed between the request and its answer; synced: {synced:?}"
        );
    }
}
