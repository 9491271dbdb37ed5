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
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("partition 7"));
    assert_eq!(ends(), before);

    // Unknown topic, unknown view, bad names.
    let out = server.run_stdin(&["produce", "nope"], Some(good));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
    assert!(
        server
            .fails(&["get", "ghost", "k"], 1)
            .contains("no processor named `ghost`")
    );
    assert!(
        server
            .fails(&["scan", "ghost@1.0.0"], 1)
            .contains("ghost@1.0.0")
    );
    assert!(
        server
            .fails(&["get", "Bad Name", "k"], 1)
            .contains("not a valid processor name")
    );
    assert!(
        server
            .fails(&["promote", "p@one"], 2)
            .contains("not a semantic version")
    );
    assert!(
        server
            .fails(&["topic", "create", "../etc"], 1)
            .contains("../etc")
    );

    // Files that are not plugins for this host.
    let text = dir.path().join("notes.wasm");
    std::fs::write(&text, "hello").unwrap();
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let empty_component = dir.path().join("empty.wasm");
    std::fs::write(&empty_component, b"\0asm\x0d\0\x01\0").unwrap();
    let deploy = |file: &std::path::Path, extra: &[&str]| {
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
        server.fails(&args, 1)
    };
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
        1,
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
    let err = deploy(v1, &[]);
    assert!(err.contains("immutable"), "{err}");
    // Promotion of a version that does not exist, diff across processors.
    assert!(
        server
            .fails(&["promote", "p@9.0.0"], 1)
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
            .fails(&["diff", "p@1.0.0", "q@1.0.0"], 1)
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
