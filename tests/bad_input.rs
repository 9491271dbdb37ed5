//! Bad input gets a clear error naming the thing, and changes nothing: a
//! malformed event line, an unknown topic or view, files that are not plugins
//! for this host, a bad plugin configuration, a version reused with other
//! bytes, malformed API requests.

#![allow(clippy::unwrap_used)]

mod support;

use support::*;

#[test]
fn bad_input_is_refused_clearly_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    server.json(&["topic", "create", "events", "--partitions", "2"]);
    let good = r#"{"key":"a","value":{"n":1}}"#;
    server.run_stdin(&["produce", "events"], Some(&format!("{good}\n{good}\n")));
    let ends = || server.json(&["topic", "list"])[0]["end_offsets"].clone();
    let before = ends();

    // A malformed line: exit 2, the line is named, nothing of the input is appended.
    let input = format!("{good}\n{{\"key\": \"b\", \"value\": \n{good}\n");
    let out = server.run_stdin(&["produce", "events"], Some(&input));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2"), "{err}");
    assert_eq!(ends(), before);
    let out = server.run_stdin(&["produce", "events"], Some(r#"{"key":"a","vlaue":1}"#));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field `vlaue`"));
    let out = server.run_stdin(&["produce", "events"], Some(r#"{"value":1,"partition":7}"#));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("partition 7"));
    assert_eq!(ends(), before);

    // Unknown topic, unknown view, bad names.
    let out = server.run_stdin(&["produce", "nope"], Some(good));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
    assert!(
        server
            .fails(&["get", "ghost", "k"], 2)
            .contains("no processor named `ghost`")
    );
    assert!(
        server
            .fails(&["scan", "ghost@1.0.0"], 2)
            .contains("ghost@1.0.0")
    );
    assert!(
        server
            .fails(&["get", "Bad Name", "k"], 2)
            .contains("not a valid processor name")
    );
    assert!(
        server
            .fails(&["promote", "p@one"], 2)
            .contains("not a semantic version")
    );
    assert!(
        server
            .fails(&["topic", "create", "../etc"], 2)
            .contains("../etc")
    );

    // Files that are not plugins for this host.
    let text = dir.path().join("notes.wasm");
    std::fs::write(&text, "hello").unwrap();
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let empty_component = dir.path().join("empty.wasm");
    std::fs::write(&empty_component, b"\0asm\x0d\0\x01\0").unwrap();
    // Bad input exits 2; a conflict with what is deployed, 1.
    let deploy_code = |file: &std::path::Path, extra: &[&str], code: i32| {
        let mut args = vec![
            "deploy",
            file.to_str().unwrap(),
            "--name",
            "p",
            "--version",
            "1.0.0",
            "--topic",
            "events",
        ];
        args.extend(extra);
        server.fails(&args, code)
    };
    let deploy = |file: &std::path::Path, extra: &[&str]| deploy_code(file, extra, 2);
    assert!(deploy(&text, &[]).contains("not WebAssembly"));
    assert!(deploy(&core, &[]).contains("core WebAssembly module, not a component"));
    let err = deploy(&empty_component, &[]);
    assert!(
        err.contains("does not export the `processor` world"),
        "{err}"
    );
    let v1 = std::path::Path::new(kappa_plugins::PAYMENTS_V1.path);
    let err = server.fails(
        &[
            "deploy",
            v1.to_str().unwrap(),
            "--name",
            "p",
            "--version",
            "1.0.0",
            "--topic",
            "missing",
        ],
        2,
    );
    assert!(err.contains("missing"), "{err}");
    let err = deploy(v1, &["--config", r#"{"large_cents":"many"}"#]);
    assert!(err.contains("invalid configuration"), "{err}");
    assert!(
        String::from_utf8(server.run(&["status"]).stdout)
            .unwrap()
            .contains("no processors deployed")
    );

    // Same name and version with other bytes is refused; the same bytes are a no-op.
    let starter = std::path::Path::new(kappa_plugins::STARTER.path);
    server.json(&[
        "deploy",
        starter.to_str().unwrap(),
        "--name",
        "p",
        "--version",
        "1.0.0",
        "--topic",
        "events",
        "--wait",
    ]);
    let again = server.json(&[
        "deploy",
        starter.to_str().unwrap(),
        "--name",
        "p",
        "--version",
        "1.0.0",
        "--topic",
        "events",
    ]);
    assert_eq!(again["created"], false);
    let err = deploy_code(v1, &[], 1);
    assert!(err.contains("immutable"), "{err}");
    // Promotion of a version that does not exist, diff across processors.
    assert!(
        server
            .fails(&["promote", "p@9.0.0"], 2)
            .contains("no version p@9.0.0")
    );
    server.json(&[
        "deploy",
        starter.to_str().unwrap(),
        "--name",
        "q",
        "--version",
        "1.0.0",
        "--topic",
        "events",
        "--wait",
    ]);
    assert!(
        server
            .fails(&["diff", "p@1.0.0", "q@1.0.0"], 2)
            .contains("different processors")
    );

    // Malformed API requests get a JSON 4xx and change nothing.
    let (status, body) = http(
        &server.url,
        "POST",
        "/v1/topics/events/events",
        b"{not json",
    );
    assert_eq!(status, 400, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["kind"], "invalid");
    let (status, _) = http(
        &server.url,
        "POST",
        "/v1/topics/events/events",
        br#"{"events":[{"value":1},{"key":{},"value":2}]}"#,
    );
    assert_eq!(status, 400);
    let (status, _) = http(
        &server.url,
        "POST",
        "/v1/topics",
        br#"{"name":"t","partitions":"two"}"#,
    );
    assert_eq!(status, 400);
    let (status, _) = http(
        &server.url,
        "POST",
        "/v1/processors/p/promote",
        br#"{"version":"1.0.0","extra":1}"#,
    );
    assert_eq!(status, 400);
    let (status, _) = http(&server.url, "GET", "/v1/views/p@1.0.0/keys/a", b"");
    assert_eq!(status, 200);
    let (status, _) = http(
        &server.url,
        "GET",
        "/v1/views/..%2F..%2Fetc@1.0.0/keys/a",
        b"",
    );
    assert_eq!(status, 400);
    assert_eq!(ends(), before);
    assert_eq!(server.json(&["topic", "list"]).as_array().unwrap().len(), 1);
}

/// A raw request that tolerates the server answering before it has read
/// the whole body (as it does for a body over the limit): the answer is
/// read by a second thread while the body is written.
fn send_raw(url: &str, method: &str, path: &str, body: &[u8]) -> (u16, serde_json::Value) {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let mut reader = stream.try_clone().unwrap();
    let answer = std::thread::spawn(move || {
        let mut response = Vec::new();
        let mut chunk = [0u8; 8192];
        // Stops at the end or at a reset, keeping what arrived before it.
        while let Ok(n) = reader.read(&mut chunk) {
            if n == 0 {
                break;
            }
            response.extend_from_slice(&chunk[..n]);
        }
        response
    });
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body));
    let response = String::from_utf8_lossy(&answer.join().unwrap()).into_owned();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{method} {path}: no HTTP answer: {response:?}"));
    let status = head[9..12].parse().unwrap();
    let json = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("{method} {path}: {status} without a JSON body ({e}): {body}"));
    (status, json)
}

#[test]
fn api_refuses_oversized_malformed_and_tricky_requests_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start_with(
        &data,
        &["--max-body-mb", "1", "--max-event-bytes", "1000"],
        &[],
    );
    let url = server.url.clone();
    server.json(&["topic", "create", "events", "--partitions", "2"]);
    server.run_stdin(
        &["produce", "events"],
        Some("{\"key\":\"a\",\"value\":1}\n"),
    );
    let starter = kappa_plugins::STARTER.bytes;
    let snapshot = || {
        let (status, topics) = send_raw(&url, "GET", "/v1/topics", b"");
        assert_eq!(status, 200);
        let (status, report) = send_raw(&url, "GET", "/v1/status", b"");
        assert_eq!(status, 200);
        let mut files: Vec<String> = Vec::new();
        let mut stack = vec![data.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p.clone());
                }
                files.push(p.strip_prefix(&data).unwrap().display().to_string());
            }
        }
        files.sort();
        (topics, report["processors"].clone(), files)
    };
    let before = snapshot();

    let big_event = format!(r#"{{"events":[{{"value":"{}"}}]}}"#, "x".repeat(2000));
    let huge_body = format!(r#"{{"events":[{{"value":"{}"}}]}}"#, "x".repeat(1_100_000));
    let long = "n".repeat(5000);
    let cases: Vec<(&str, String, Vec<u8>, u16)> = vec![
        // Oversized: a body over --max-body-mb, an event over --max-event-bytes.
        (
            "POST",
            "/v1/topics/events/events".into(),
            huge_body.clone().into_bytes(),
            413,
        ),
        (
            "POST",
            "/v1/processors/p/versions/1.0.0?topic=events".into(),
            vec![b'x'; 1_100_000],
            413,
        ),
        (
            "POST",
            "/v1/topics/events/events".into(),
            big_event.into_bytes(),
            413,
        ),
        // Malformed JSON and wrong types.
        (
            "POST",
            "/v1/topics/events/events".into(),
            b"{\"events\":[".to_vec(),
            400,
        ),
        (
            "POST",
            "/v1/topics/events/events".into(),
            br#"{"events":"x"}"#.to_vec(),
            400,
        ),
        (
            "POST",
            "/v1/topics/events/events".into(),
            br#"{"events":[{"value":1,"timestamp":"now"}]}"#.to_vec(),
            400,
        ),
        (
            "POST",
            "/v1/topics/events/events".into(),
            br#"{"events":[{"value":1,"partition":-1}]}"#.to_vec(),
            400,
        ),
        (
            "POST",
            "/v1/topics".into(),
            br#"{"name":7,"partitions":1}"#.to_vec(),
            400,
        ),
        ("POST", "/v1/topics".into(), br#"["events"]"#.to_vec(), 400),
        (
            "POST",
            "/v1/processors/counts/promote".into(),
            br#"{"version":1}"#.to_vec(),
            400,
        ),
        (
            "POST",
            "/v1/processors/p/versions/1.0.0?topic=events&auto_promote=maybe".into(),
            starter.to_vec(),
            400,
        ),
        (
            "POST",
            "/v1/processors/p/versions/1.0.0?topic=events&on_error=retry".into(),
            starter.to_vec(),
            400,
        ),
        (
            "POST",
            "/v1/processors/p/versions/1.0.0?topic=events".into(),
            b"not a component".to_vec(),
            400,
        ),
        (
            "GET",
            "/v1/topics/events/events?partition=-1".into(),
            vec![],
            400,
        ),
        // Unknown names.
        (
            "POST",
            "/v1/topics/nope/events".into(),
            br#"{"events":[{"value":1}]}"#.to_vec(),
            404,
        ),
        (
            "POST",
            "/v1/processors/ghost/promote".into(),
            br#"{"version":"1.0.0"}"#.to_vec(),
            404,
        ),
        ("POST", "/v1/processors/ghost/rollback".into(), vec![], 404),
        (
            "DELETE",
            "/v1/processors/ghost/versions/1.0.0".into(),
            vec![],
            404,
        ),
        (
            "POST",
            "/v1/processors/p/versions/1.0.0?topic=nope".into(),
            starter.to_vec(),
            404,
        ),
        // Path tricks in topic, processor and version names.
        (
            "POST",
            "/v1/topics".into(),
            br#"{"name":"..","partitions":1}"#.to_vec(),
            400,
        ),
        (
            "POST",
            "/v1/topics".into(),
            br#"{"name":"a/../../b","partitions":1}"#.to_vec(),
            400,
        ),
        (
            "POST",
            "/v1/topics".into(),
            br#"{"name":"a\u0000b","partitions":1}"#.to_vec(),
            400,
        ),
        (
            "POST",
            "/v1/topics".into(),
            format!(r#"{{"name":"{long}","partitions":1}}"#).into_bytes(),
            400,
        ),
        (
            // A name that cannot exist is simply not found (no file is looked up).
            "POST",
            "/v1/topics/..%2F..%2Fetc/events".into(),
            br#"{"events":[{"value":1}]}"#.to_vec(),
            404,
        ),
        (
            "POST",
            "/v1/processors/..%2F..%2Fetc/versions/1.0.0?topic=events".into(),
            starter.to_vec(),
            400,
        ),
        (
            "POST",
            "/v1/processors/p%00/versions/1.0.0?topic=events".into(),
            starter.to_vec(),
            400,
        ),
        (
            "POST",
            format!("/v1/processors/{long}/versions/1.0.0?topic=events"),
            starter.to_vec(),
            400,
        ),
        (
            "POST",
            "/v1/processors/p/versions/..%2F..%2Fx?topic=events".into(),
            starter.to_vec(),
            400,
        ),
        (
            "POST",
            "/v1/processors/p/versions/1.0.0%00?topic=events".into(),
            starter.to_vec(),
            400,
        ),
        (
            "POST",
            "/v1/processors/p/versions/1.0.0%2F..?topic=events".into(),
            starter.to_vec(),
            400,
        ),
        (
            "DELETE",
            "/v1/processors/..%2Fp/versions/1.0.0".into(),
            vec![],
            400,
        ),
        ("GET", "/v1/views/..%2F..%2Fetc/digest".into(), vec![], 400),
        ("GET", "/v1/views/p@..%2F1.0.0/scan".into(), vec![], 400),
    ];
    for (method, path, body, want) in &cases {
        let shown = &path[..path.len().min(80)];
        let (status, json) = send_raw(&url, method, path, body);
        assert_eq!(status, *want, "{method} {shown}: {json}");
        let kind = json["error"]["kind"].as_str().unwrap_or_default();
        let message = json["error"]["message"].as_str().unwrap_or_default();
        assert!(
            !kind.is_empty() && !message.is_empty(),
            "{method} {shown}: no JSON error: {json}"
        );
        if *want == 413 {
            assert_eq!(kind, "too_large", "{method} {shown}: {json}");
        }
        assert_eq!(snapshot(), before, "{method} {shown} changed something");
    }
    // A body under the limit with events under the limit still works.
    let (status, _) = send_raw(
        &url,
        "POST",
        "/v1/topics/events/events",
        format!(r#"{{"events":[{{"value":"{}"}}]}}"#, "x".repeat(900)).as_bytes(),
    );
    assert_eq!(status, 200);
    eprintln!("{} bad requests refused, nothing changed", cases.len());
}

/// The README's text with its line breaks and indentation folded to single
/// spaces, so a phrase can be found whatever its wrapping.
fn folded(path: &str) -> String {
    let text =
        std::fs::read_to_string(format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The default limits are what the README and docs/guarantees.md state: a
/// server and a version started without any limit option have exactly
/// those, tried at the edges (the largest body and event are accepted, one
/// byte more is refused).
#[test]
fn default_limits_are_those_the_readme_states() {
    let readme = folded("README.md");
    let guarantees = folded("docs/guarantees.md");
    for (doc, text, phrase) in [
        (
            "README.md",
            &readme,
            "memory limit (default 512 MiB, `--memory-limit-mb`;",
        ),
        (
            "README.md",
            &readme,
            "time limit per batch (default 10 s, `--batch-timeout-ms`",
        ),
        (
            "README.md",
            &readme,
            "`--max-body-mb` (default 128: a component upload, a produce batch)",
        ),
        (
            "README.md",
            &readme,
            "`--max-event-bytes` (default 1 MiB: key + value + headers of one event)",
        ),
        (
            "docs/guarantees.md",
            &guarantees,
            "(`--memory-limit-mb`, default 512)",
        ),
        (
            "docs/guarantees.md",
            &guarantees,
            "(`--batch-timeout-ms`, default 10 000,",
        ),
    ] {
        assert!(text.contains(phrase), "{doc} no longer says: {phrase}");
    }
    const MEMORY: u64 = 512 << 20;
    const BATCH_MS: u64 = 10_000;
    const BODY: usize = 128 << 20;
    const EVENT: usize = 1 << 20;

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    server.json(&["topic", "create", "events", "--partitions", "1"]);
    server.deploy_starter("1.0.0", "events");
    let settings = &server.version("counts@1.0.0")["settings"];
    assert_eq!(settings["memory_limit_bytes"], MEMORY, "{settings}");
    assert_eq!(settings["batch_timeout_ms"], BATCH_MS, "{settings}");

    // An event of key + value = the limit is appended; one byte more is not.
    let event = |value_bytes: usize| {
        format!(
            r#"{{"events":[{{"key":"k","value":"{}"}}]}}"#,
            "x".repeat(value_bytes)
        )
    };
    let (status, json) = send_raw(
        &server.url,
        "POST",
        "/v1/topics/events/events",
        event(EVENT - 1).as_bytes(),
    );
    assert_eq!(status, 200, "{json}");
    let (status, json) = send_raw(
        &server.url,
        "POST",
        "/v1/topics/events/events",
        event(EVENT).as_bytes(),
    );
    assert_eq!(status, 413, "{json}");
    assert_eq!(json["error"]["kind"], "too_large", "{json}");

    // A body of the limit is read (and refused for what it is: not a
    // component); one byte more is refused for its size.
    let upload = "/v1/processors/p/versions/1.0.0?topic=events";
    let (status, json) = send_raw(&server.url, "POST", upload, &vec![b'x'; BODY]);
    assert_eq!(status, 400, "{json}");
    let message = json["error"]["message"].as_str().unwrap();
    assert!(message.contains("not WebAssembly"), "{json}");
    let (status, json) = send_raw(&server.url, "POST", upload, &vec![b'x'; BODY + 1]);
    assert_eq!(status, 413, "{json}");
    assert_eq!(json["error"]["kind"], "too_large", "{json}");
    let status = server.json(&["status"]);
    assert_eq!(
        status["processors"].as_array().unwrap().len(),
        1,
        "{status}"
    );
    assert_eq!(status["topics"][0]["end_offsets"][0], 1, "{status}");
}
