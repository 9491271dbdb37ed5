//! Access control, tried rather than assumed: with a token configured, every
//! request that changes something (create topic, produce, deploy, promote,
//! rollback, retire) without it, or with a wrong one, gets a 401 in the API's
//! JSON error shape and changes nothing; the right token works, from the CLI
//! (`--token`, `--token-file`, `KAPPA_TOKEN`) and over raw HTTP. With
//! `--auth-reads`, reads need it too. A server refuses to listen beyond
//! loopback without a token.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::process::Command;

use serde_json::Value;
use support::*;

const TOKEN: &str = "s3cret-token-for-tests";

/// A raw HTTP/1.1 request with extra headers: (status, response head, body).
fn request(
    url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, String) {
    let addr = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    (status, head.to_owned(), body.to_owned())
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Asserts a 401 in the API's error shape with a Bearer challenge.
fn assert_refused(what: &str, (status, head, body): (u16, String, String)) {
    assert_eq!(status, 401, "{what}: {head}\n{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("www-authenticate: bearer realm=\"kappa\""),
        "{what}: {head}"
    );
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["kind"], "unauthorized", "{what}: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nothing was changed"),
        "{what}: {body}"
    );
}

/// Everything a refused request could have changed.
fn state(server: &Server) -> Value {
    let (status, _, body) = request(&server.url, "GET", "/v1/status", &[], b"");
    assert_eq!(status, 200, "{body}");
    let mut status: Value = serde_json::from_str(&body).unwrap();
    // Rates and ETAs move on their own; what matters is what is stored.
    for p in status["processors"].as_array_mut().unwrap() {
        for v in p["versions"].as_array_mut().unwrap() {
            let v = v.as_object_mut().unwrap();
            for moving in ["events_per_second", "eta_seconds", "progress", "lag"] {
                v.remove(moving);
            }
        }
    }
    status
}

#[test]
fn changes_need_the_token_and_a_refused_request_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // The server takes its token from the environment.
    let server = Server::start_with(dir.path(), &[], &[("KAPPA_TOKEN", TOKEN)]);
    let url = server.url.clone();
    let with = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--token", TOKEN]);
        server.json(&all)
    };

    // Nothing exists yet, and nothing can be created without the token.
    let wrong = bearer("not-the-token");
    let right = bearer(TOKEN);
    let create = br#"{"name":"events","partitions":2}"#;
    assert_refused(
        "create topic, no token",
        request(&url, "POST", "/v1/topics", &[], create),
    );
    let (status, head, _) = request(
        &url,
        "POST",
        "/v1/topics",
        &[("Authorization", &wrong)],
        create,
    );
    assert_eq!(status, 401);
    assert!(head.contains("error=\"invalid_token\""), "{head}");
    assert_refused(
        "create topic, other scheme",
        request(
            &url,
            "POST",
            "/v1/topics",
            &[("Authorization", &format!("Basic {TOKEN}"))],
            create,
        ),
    );
    let err = server.fails(&["topic", "create", "events"], 1);
    assert!(err.contains("bearer token"), "{err}");
    assert_eq!(server.json(&["topic", "list"]), serde_json::json!([]));

    // With it: a topic, events, two versions (the first is promoted).
    let (status, _, body) = request(
        &url,
        "POST",
        "/v1/topics",
        &[("Authorization", &right)],
        create,
    );
    assert_eq!(status, 201, "{body}");
    let out = server.run_stdin(
        &["produce", "events", "--token", TOKEN],
        Some("{\"key\":\"a\",\"value\":\"x\"}\n{\"key\":\"b\",\"value\":\"y\"}\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let starter = kappa_plugins::STARTER.path;
    for version in ["1.0.0", "2.0.0"] {
        with(&[
            "deploy",
            starter,
            "--name",
            "counts",
            "--version",
            version,
            "--topic",
            "events",
            "--wait",
        ]);
    }
    assert_eq!(
        with(&["status", "counts"])["processors"][0]["promoted"],
        "1.0.0"
    );
    let before = state(&server);

    // Every change, without the token and with a wrong one: refused.
    let produce = br#"{"events":[{"key":"c","value":"z"}]}"#;
    let component = kappa_plugins::STARTER.bytes;
    let changes: [(&str, &str, &[u8]); 6] = [
        ("POST", "/v1/topics", br#"{"name":"more","partitions":1}"#),
        ("POST", "/v1/topics/events/events", produce),
        (
            "POST",
            "/v1/processors/counts/versions/3.0.0?topic=events",
            component,
        ),
        (
            "POST",
            "/v1/processors/counts/promote",
            br#"{"version":"2.0.0"}"#,
        ),
        ("POST", "/v1/processors/counts/rollback", b""),
        ("DELETE", "/v1/processors/counts/versions/2.0.0", b""),
    ];
    for (method, path, body) in changes {
        assert_refused(
            &format!("{method} {path} without a token"),
            request(&url, method, path, &[], body),
        );
        assert_refused(
            &format!("{method} {path} with a wrong token"),
            request(&url, method, path, &[("Authorization", &wrong)], body),
        );
    }
    // And from the CLI without a token.
    let out = server.run_stdin(&["produce", "events"], Some("{\"value\":\"z\"}\n"));
    assert_eq!(out.status.code(), Some(1));
    for args in [
        &["promote", "counts@2.0.0"][..],
        &["rollback", "counts"],
        &["retire", "counts@2.0.0"],
        &[
            "deploy",
            starter,
            "--name",
            "counts",
            "--version",
            "3.0.0",
            "--topic",
            "events",
        ],
    ] {
        let err = server.fails(args, 1);
        assert!(err.contains("bearer token"), "{args:?}: {err}");
    }
    assert_eq!(
        state(&server),
        before,
        "a refused request changed something"
    );
    let ends = server.json(&["topic", "list"])[0]["end_offsets"].clone();
    assert_eq!(
        ends.as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_u64().unwrap())
            .sum::<u64>(),
        2
    );

    // Reads stay open without --auth-reads.
    assert_eq!(server.json(&["get", "counts", "a"])["row"]["value"], 1);
    let (status, _, _) = request(&url, "GET", "/metrics", &[], b"");
    assert_eq!(status, 200);

    // The right token, from KAPPA_TOKEN and from a file, changes things.
    let out = Command::new(KAPPA)
        .args(["promote", "counts@2.0.0", "--json", "--server", &url])
        .env("KAPPA_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let p = server.json(&[
        "rollback",
        "counts",
        "--token-file",
        token_file.to_str().unwrap(),
    ]);
    assert_eq!(p["promoted"], "1.0.0");
    let (status, _, body) = request(
        &url,
        "POST",
        "/v1/topics/events/events",
        &[("Authorization", &right)],
        produce,
    );
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = request(
        &url,
        "DELETE",
        "/v1/processors/counts/versions/2.0.0",
        &[("Authorization", &right)],
        b"",
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(server.version("counts@2.0.0")["state"], "retired");
}

#[test]
fn reads_can_need_the_token_too() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let server = Server::start_with(
        &dir.path().join("data"),
        &["--auth-reads", "--token-file", token_file.to_str().unwrap()],
        &[],
    );
    let url = server.url.clone();
    let right = bearer(TOKEN);
    // With the token, each read gets its own answer (nothing is deployed,
    // so the named processor and views are not found).
    for (path, answer) in [
        ("/v1/status", 200),
        ("/v1/topics", 200),
        ("/v1/processors/p", 404),
        ("/v1/views/p/digest", 404),
        ("/v1/diff?a=p@1.0.0&b=p@2.0.0", 404),
        ("/metrics", 200),
    ] {
        assert_refused(path, request(&url, "GET", path, &[], b""));
        let (status, _, body) = request(&url, "GET", path, &[("Authorization", &right)], b"");
        assert_eq!(status, answer, "{path} with the token: {body}");
    }
    // Probes and the dashboard's page stay open: the page asks for the token.
    for path in ["/healthz", "/", "/dashboard/app.js"] {
        let (status, _, _) = request(&url, "GET", path, &[], b"");
        assert_eq!(status, 200, "{path}");
    }
    let err = server.fails(&["status"], 1);
    assert!(err.contains("bearer token"), "{err}");
    let status = server.json(&["status", "--token-file", token_file.to_str().unwrap()]);
    assert_eq!(status["processors"], serde_json::json!([]));
}

/// A change without the token is answered 401 from its headers alone: the
/// client announces a large body and sends none of it, and still reads the
/// answer (were the body read first, the server would wait for it and the
/// read below would time out).
#[test]
fn a_refused_request_is_answered_before_its_body_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--token", TOKEN], &[]);
    let addr = server.url.trim_start_matches("http://").to_owned();
    for path in [
        "/v1/topics",
        "/v1/topics/payments/events",
        "/v1/processors/p/versions/1.0.0?topic=payments",
    ] {
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        // A guard against a hang, not a timing assertion.
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(120)))
            .unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            64u64 << 20
        );
        stream.write_all(head.as_bytes()).unwrap();
        let mut response = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&response).contains("nothing was changed") {
            let n = stream
                .read(&mut buf)
                .unwrap_or_else(|e| panic!("{path}: no answer without the body: {e}"));
            assert!(n > 0, "{path}: closed without an answer");
            response.extend_from_slice(&buf[..n]);
        }
        let response = String::from_utf8_lossy(&response);
        assert!(response.starts_with("HTTP/1.1 401"), "{path}: {response}");
    }
    assert_eq!(server.json(&["topic", "list"]), serde_json::json!([]));
}

#[test]
fn a_server_refuses_unsafe_access_settings_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let serve = |args: &[&str], token: Option<&str>| {
        let mut cmd = Command::new(KAPPA);
        cmd.arg("serve").arg("--data-dir").arg(&data).args(args);
        cmd.env_remove("KAPPA_TOKEN");
        if let Some(t) = token {
            cmd.env("KAPPA_TOKEN", t);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // Beyond loopback without a token: refused before anything is opened.
    let (code, err) = serve(&["--listen", "0.0.0.0:0"], None);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("refusing to listen on 0.0.0.0:0 without a token"),
        "{err}"
    );
    let (code, err) = serve(&["--listen", "[::]:0"], None);
    assert_eq!(code, Some(2), "{err}");
    // Reads cannot need a token that is not there; a blank token is no token.
    let (code, err) = serve(&["--listen", "127.0.0.1:0", "--auth-reads"], None);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("needs a token"), "{err}");
    let (code, err) = serve(&["--listen", "127.0.0.1:0"], Some("  "));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("token is empty"), "{err}");
    assert!(!data.exists(), "a refused start created the data directory");
}
