//! View values are shown as the plugin stored them: a JSON value keeps its
//! key order and number formatting (only whitespace between tokens is left
//! out) in `kappa get`/`kappa scan` and in the API, and `raw` gives the
//! stored bytes exactly. The values are written
//! by a real plugin (`faulty` in `store` mode puts each event's value, byte
//! for byte, under its key).

#![allow(clippy::unwrap_used)]

mod support;

use serde_json::Value;
use support::*;

/// The events: key, the bytes as a produce line gives them.
const EVENTS: &str = concat!(
    r#"{"key":"obj","value":"{\"b\":1,\"a\":2.50}"}"#,
    "\n",
    r#"{"key":"exp","value":"1e3"}"#,
    "\n",
    r#"{"key":"spaced","value":" {\"z\": [1, 2.0]} "}"#,
    "\n",
    r#"{"key":"text","value":"not json {"}"#,
    "\n",
    r#"{"key":"bin","value_base64":"/wA="}"#,
    "\n",
);

fn stdout(server: &Server, args: &[&str]) -> Vec<u8> {
    let out = server.run(args);
    assert!(
        out.status.success(),
        "kappa {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn text(server: &Server, args: &[&str]) -> String {
    String::from_utf8(stdout(server, args)).unwrap()
}

#[test]
fn values_are_shown_as_stored_and_raw_gives_the_stored_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    server.json(&["topic", "create", "v", "--partitions", "1"]);
    let produced = server.run_stdin(&["produce", "v"], Some(EVENTS));
    assert!(produced.status.success(), "{produced:?}");
    server.json(&[
        "deploy",
        kappa_plugins::FAULTY.path,
        "--name",
        "store",
        "--version",
        "1.0.0",
        "--topic",
        "v",
        "--config",
        r#"{"mode":"store"}"#,
        "--wait",
    ]);

    // `kappa get`: JSON as stored; other UTF-8 as text; other bytes base64.
    assert_eq!(
        text(&server, &["get", "store", "obj"]),
        "{\"b\":1,\"a\":2.50}\n"
    );
    assert_eq!(text(&server, &["get", "store", "exp"]), "1e3\n");
    assert_eq!(
        text(&server, &["get", "store", "spaced"]),
        "{\"z\":[1,2.0]}\n"
    );
    assert_eq!(text(&server, &["get", "store", "text"]), "not json {\n");
    assert_eq!(text(&server, &["get", "store", "bin"]), "/wA=\n");

    // `kappa get --raw`: the stored bytes exactly.
    for (key, bytes) in [
        ("obj", &br#"{"b":1,"a":2.50}"#[..]),
        ("exp", b"1e3"),
        ("spaced", br#" {"z": [1, 2.0]} "#),
        ("text", b"not json {"),
        ("bin", &[0xff, 0x00]),
    ] {
        assert_eq!(
            stdout(&server, &["get", "store", key, "--raw"]),
            bytes,
            "{key}"
        );
    }

    // `--json`: the value as stored inside the answer, and with `--raw` the
    // bytes in `value_base64`.
    let json = text(&server, &["get", "store", "obj", "--json"]);
    assert!(json.contains(r#""value": {"b":1,"a":2.50}"#), "{json}");
    assert!(!json.contains("value_base64"), "{json}");
    let json: Value = serde_json::from_str(&text(
        &server,
        &["get", "store", "spaced", "--json", "--raw"],
    ))
    .unwrap();
    assert_eq!(json["row"]["value_base64"], "IHsieiI6IFsxLCAyLjBdfSA=");
    assert_eq!(json["row"]["value_encoding"], "json");

    // `kappa scan`: one row a line, the value as `kappa get` prints it; with
    // `--raw`, the stored bytes base64.
    assert_eq!(
        text(&server, &["scan", "store"]),
        "bin\t/wA=\nexp\t1e3\nobj\t{\"b\":1,\"a\":2.50}\nspaced\t{\"z\":[1,2.0]}\n\
         text\tnot json {\n"
    );
    assert_eq!(
        text(&server, &["scan", "store", "--raw"]),
        "bin\t/wA=\nexp\tMWUz\nobj\teyJiIjoxLCJhIjoyLjUwfQ==\nspaced\tIHsieiI6IFsxLCAyLjBdfSA=\n\
         text\tbm90IGpzb24gew==\n"
    );
    let json = text(&server, &["scan", "store", "--prefix", "o", "--json"]);
    assert!(json.contains(r#""value": {"b":1,"a":2.50}"#), "{json}");
    let page: Value =
        serde_json::from_str(&text(&server, &["scan", "store", "--json", "--raw"])).unwrap();
    assert_eq!(page["rows"][2]["key"], "obj");
    assert_eq!(page["rows"][2]["value_base64"], "eyJiIjoxLCJhIjoyLjUwfQ==");

    // The API, over HTTP.
    let (status, body) = http(&server.url, "GET", "/v1/views/store/keys/obj", b"");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""value":{"b":1,"a":2.50}"#), "{body}");
    assert!(!body.contains("value_base64"), "{body}");
    let (status, body) = http(&server.url, "GET", "/v1/views/store/keys/bin?raw=true", b"");
    assert_eq!(status, 200, "{body}");
    let reply: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reply["row"]["value"], "/wA=");
    assert_eq!(reply["row"]["value_encoding"], "base64");
    assert_eq!(reply["row"]["value_base64"], "/wA=");
    let (status, body) = http(
        &server.url,
        "GET",
        "/v1/views/store/scan?prefix=o&raw=true",
        b"",
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(r#""value":{"b":1,"a":2.50},"value_encoding":"json","value_base64":"eyJiIjoxLCJhIjoyLjUwfQ==""#),
        "{body}"
    );
}
