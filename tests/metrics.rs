//! `/metrics` after real processing: it parses as Prometheus text and its
//! series agree with what the host did. Also the operator's other views of a
//! running host: `kappa status --watch` and `--log-format json`.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use kappa::workload::PaymentGenerator;
use support::*;

/// One sample: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// Parses the Prometheus text format (0.0.4) strictly enough to catch a
/// malformed answer: HELP and TYPE comments, then samples of declared
/// families, label values quoted and escaped, values as floats.
fn parse_prometheus(text: &str) -> (BTreeMap<String, String>, Vec<Sample>) {
    let mut types = BTreeMap::new();
    let mut samples = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                        "line {n}: unknown type {kind}"
                    );
                    assert!(
                        types.insert(name.to_owned(), kind.to_owned()).is_none(),
                        "line {n}: {name} declared twice"
                    );
                }
                (Some("HELP"), Some(_), Some(_)) => {}
                _ => panic!("line {n}: malformed comment {line:?}"),
            }
            continue;
        }
        let name_end = line
            .find(['{', ' '])
            .unwrap_or_else(|| panic!("line {n}: no value: {line:?}"));
        let name = &line[..name_end];
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "line {n}: bad metric name {name:?}"
        );
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices().peekable();
            loop {
                let (start, c) = chars.next().unwrap();
                if c == '}' {
                    rest = &body[start + 1..];
                    break;
                }
                let eq = body[start..].find('=').unwrap() + start;
                let key = body[start..eq].trim_start_matches(',').to_owned();
                while chars.peek().is_some_and(|(i, _)| *i <= eq) {
                    chars.next();
                }
                assert_eq!(
                    chars.next().map(|(_, c)| c),
                    Some('"'),
                    "line {n}: {line:?}"
                );
                let mut value = String::new();
                loop {
                    match chars.next().unwrap().1 {
                        '\\' => match chars.next().unwrap().1 {
                            'n' => value.push('\n'),
                            c => value.push(c),
                        },
                        '"' => break,
                        c => value.push(c),
                    }
                }
                labels.insert(key, value);
                if chars.peek().is_some_and(|(_, c)| *c == ',') {
                    chars.next();
                }
            }
        }
        let value = rest.trim();
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|e| panic!("line {n}: bad value {v:?}: {e}")),
        };
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(name);
        assert!(
            types.contains_key(family),
            "line {n}: sample {name} before its TYPE"
        );
        samples.push((name.to_owned(), labels, value));
    }
    (types, samples)
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| *v)
}

fn scrape(server: &Server) -> String {
    let (status, body) = http(&server.url, "GET", "/metrics", b"");
    assert_eq!(status, 200, "{body}");
    body
}

#[test]
fn metrics_parse_as_prometheus_text_and_match_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    server.json(&["topic", "create", "payments", "--partitions", "2"]);
    let mut generator = PaymentGenerator::new(9, 30, 1_767_225_600_000);
    let file = dir.path().join("events.jsonl");
    write_jsonl(&file, &generator.take(2500));
    server.json(&["produce", "payments", "--file", file.to_str().unwrap()]);
    server.json(&[
        "deploy",
        kappa_plugins::PAYMENTS_V1.path,
        "--name",
        "payments",
        "--version",
        "1.0.0",
        "--topic",
        "payments",
        "--wait",
    ]);

    // A failing version on a topic of its own.
    server.json(&["topic", "create", "other", "--partitions", "1"]);
    let out = server.run_stdin(
        &["produce", "other"],
        Some("{\"key\":\"a\",\"value\":1}\n{\"key\":\"a\",\"value\":\"boom\"}\n"),
    );
    assert!(out.status.success());
    server.json(&[
        "deploy",
        kappa_plugins::FAULTY.path,
        "--name",
        "faulty",
        "--version",
        "0.1.0",
        "--topic",
        "other",
        "--config",
        r#"{"mode":"trap","fail_on":"boom"}"#,
        "--wait",
    ]);
    assert_eq!(server.version("faulty@0.1.0")["state"], "failed");

    let text = scrape(&server);
    let (types, samples) = parse_prometheus(&text);
    let v1 = [("processor", "payments"), ("version", "1.0.0")];
    let status = server.version("payments@1.0.0");
    let applied: u64 = status["applied_offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_u64().unwrap())
        .sum();
    assert_eq!(applied, 2500);

    // Per version: events processed, lag, progress, state.
    assert_eq!(types["kappa_version_events_processed_total"], "counter");
    assert_eq!(
        value(&samples, "kappa_version_events_processed_total", &v1),
        Some(applied as f64),
        "{text}"
    );
    assert_eq!(value(&samples, "kappa_version_lag_events", &v1), Some(0.0));
    assert_eq!(
        value(&samples, "kappa_version_progress_ratio", &v1),
        Some(1.0)
    );
    assert_eq!(
        value(
            &samples,
            "kappa_version_state",
            &[("processor", "payments"), ("state", "promoted")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &samples,
            "kappa_version_state",
            &[("processor", "faulty"), ("state", "failed")]
        ),
        Some(1.0)
    );

    // The batch latency histogram: cumulative buckets, +Inf equal to the count.
    assert_eq!(types["kappa_batch_duration_seconds"], "histogram");
    let count = value(&samples, "kappa_batch_duration_seconds_count", &v1).unwrap();
    assert!(count > 0.0, "{text}");
    let sum = value(&samples, "kappa_batch_duration_seconds_sum", &v1).unwrap();
    assert!(sum > 0.0 && sum < 600.0, "{text}");
    let buckets: Vec<(f64, f64)> = samples
        .iter()
        .filter(|(n, l, _)| {
            n == "kappa_batch_duration_seconds_bucket"
                && l.get("processor").map(String::as_str) == Some("payments")
        })
        .map(|(_, l, v)| {
            let le = match l["le"].as_str() {
                "+Inf" => f64::INFINITY,
                s => s.parse().unwrap(),
            };
            (le, *v)
        })
        .collect();
    assert!(buckets.len() >= 10, "{buckets:?}");
    assert!(
        buckets
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
        "buckets are cumulative and ordered: {buckets:?}"
    );
    assert_eq!(buckets.last().unwrap(), &(f64::INFINITY, count));
    // Every event went through some batch.
    assert_eq!(
        value(&samples, "kappa_batch_events_sum", &v1),
        Some(applied as f64)
    );

    // The failure was counted, for the failing version only.
    assert_eq!(
        value(
            &samples,
            "kappa_version_failures_total",
            &[("processor", "faulty"), ("action", "stopped")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &samples,
            "kappa_version_failures_total",
            &[("processor", "payments")]
        ),
        None
    );

    // Per topic: appends and end offsets.
    assert_eq!(
        value(
            &samples,
            "kappa_topic_events_appended_total",
            &[("topic", "payments")]
        ),
        Some(2500.0)
    );
    assert_eq!(
        value(
            &samples,
            "kappa_topic_events_appended_total",
            &[("topic", "other")]
        ),
        Some(2.0)
    );
    let end_offsets: f64 = samples
        .iter()
        .filter(|(n, l, _)| n == "kappa_topic_end_offset" && l["topic"] == "payments")
        .map(|(_, _, v)| v)
        .sum();
    assert_eq!(end_offsets, 2500.0);

    // What a scrape costs is measured by the benchmark, not asserted here.
    eprintln!("/metrics: {} bytes", text.len());
}

#[test]
fn status_watch_prints_plain_tables_without_a_terminal_and_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    server.json(&["topic", "create", "payments", "--partitions", "2"]);

    // Plain text: the table again at each refresh, no terminal escapes.
    let mut child = Command::new(KAPPA)
        .args([
            "status",
            "--watch",
            "--interval",
            "0.2",
            "--server",
            &server.url,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    while seen
        .iter()
        .filter(|l: &&String| l.starts_with("topic payments"))
        .count()
        < 3
    {
        seen.push(lines.next().unwrap().unwrap());
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        seen.iter().any(|l| l == "no processors deployed"),
        "{seen:?}"
    );
    assert!(
        seen.iter().all(|l| !l.contains('\u{1b}')),
        "no escape codes when stdout is not a terminal: {seen:?}"
    );

    // --json: one report a line.
    let mut child = Command::new(KAPPA)
        .args([
            "status",
            "--watch",
            "--json",
            "--interval",
            "0.2",
            "--server",
            &server.url,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for _ in 0..2 {
        let report: serde_json::Value =
            serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        assert_eq!(report["topics"][0]["name"], "payments");
    }
    child.kill().unwrap();
    child.wait().unwrap();

    // Without a terminal, `deploy --wait` prints plain progress lines too.
    let out = server.run(&[
        "deploy",
        kappa_plugins::STARTER.path,
        "--name",
        "counts",
        "--version",
        "1.0.0",
        "--topic",
        "payments",
        "--wait",
    ]);
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("counts@1.0.0: promoted"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "{stderr}");
}

#[test]
fn log_format_json_writes_one_json_object_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(KAPPA)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--log-level",
            "info",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = stderr.next().unwrap().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let log: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
    assert_eq!(log["level"], "INFO", "{log}");
    assert!(
        log["fields"]["message"]
            .as_str()
            .unwrap()
            .contains("kappa serving"),
        "{log}"
    );
}

#[test]
fn text_logs_have_no_colour_codes_when_stderr_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(KAPPA)
        .args(["serve", "--listen", "127.0.0.1:0", "--log-level", "info"])
        .arg("--data-dir")
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = stderr.next().unwrap().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(line.contains("kappa serving"), "{line:?}");
    assert!(
        !line.contains('\u{1b}'),
        "escape codes in a redirected log: {line:?}"
    );
}

#[test]
fn a_fresh_host_exposes_host_series_with_help_and_type() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (status, _) = http(&server.url, "GET", "/healthz", b"");
    assert_eq!(status, 200);
    let (status, _) = http(&server.url, "GET", "/v1/processors/ghost", b"");
    assert_eq!(status, 404);
    let text = scrape(&server);
    let (types, samples) = parse_prometheus(&text);

    // Every family has its HELP and TYPE lines.
    for name in types.keys() {
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "no HELP for {name}: {text}"
        );
    }
    let expected = [
        ("kappa_build_info", "gauge"),
        ("kappa_topics", "gauge"),
        ("kappa_http_requests_total", "counter"),
        ("kappa_http_request_duration_seconds", "histogram"),
        ("process_start_time_seconds", "gauge"),
        ("process_cpu_seconds_total", "counter"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_virtual_memory_bytes", "gauge"),
        ("process_threads", "gauge"),
        ("process_open_fds", "gauge"),
    ];
    for (name, kind) in expected {
        assert_eq!(
            types.get(name).map(String::as_str),
            Some(kind),
            "{name}: {text}"
        );
    }
    assert_eq!(
        value(
            &samples,
            "kappa_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    assert_eq!(value(&samples, "kappa_topics", &[]), Some(0.0));
    assert!(value(&samples, "process_resident_memory_bytes", &[]).unwrap() > 0.0);
    assert!(value(&samples, "process_threads", &[]).unwrap() >= 1.0);
    assert!(value(&samples, "process_open_fds", &[]).unwrap() >= 3.0);
    assert!(value(&samples, "process_start_time_seconds", &[]).unwrap() > 1.7e9);
    // The requests before this scrape, by route pattern and status.
    let requests = |route: &str, status: &str| {
        value(
            &samples,
            "kappa_http_requests_total",
            &[("method", "GET"), ("route", route), ("status", status)],
        )
    };
    assert_eq!(requests("/healthz", "200"), Some(1.0), "{text}");
    assert_eq!(
        requests("/v1/processors/{name}", "404"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &samples,
            "kappa_http_request_duration_seconds_count",
            &[("route", "/healthz")]
        ),
        Some(1.0)
    );

    // A topic appears with its end offsets and appends, zero at first.
    server.json(&["topic", "create", "events", "--partitions", "2"]);
    let (types, samples) = parse_prometheus(&scrape(&server));
    assert_eq!(types["kappa_topic_end_offset"], "gauge");
    assert_eq!(types["kappa_topic_events_appended_total"], "counter");
    assert_eq!(value(&samples, "kappa_topics", &[]), Some(1.0));
    assert_eq!(
        value(
            &samples,
            "kappa_topic_end_offset",
            &[("topic", "events"), ("partition", "1")]
        ),
        Some(0.0)
    );
    assert_eq!(
        value(
            &samples,
            "kappa_topic_events_appended_total",
            &[("topic", "events")]
        ),
        Some(0.0)
    );
}
