//! `docs/api.md` against a running server: every JSON shape the page
//! documents is parsed from the page itself and compared, field by field
//! and nested object by nested object, with real answers of the API and of
//! the CLI's `--json`. A field the server sends that the page does not
//! document fails, and so does a documented field the server does not send,
//! so the page and the server cannot drift apart.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use support::*;

/// A shape as `docs/api.md` writes it.
#[derive(Debug, Clone)]
enum Doc {
    /// An object: its fields, whether each is optional (`"name"?`), and the
    /// shape of the value when the page gives one.
    Object(Vec<(String, bool, Option<Doc>)>),
    /// An array of this.
    Array(Box<Doc>),
    /// Another shape of the page, by name.
    Ref(String),
    /// A map (keys are partitions or names): its keys are data.
    Map,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Str(String),
    Word(String),
    Punct(char),
    Ellipsis,
}

fn tokenize(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' {
            let mut s = String::new();
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                s.push(chars[i]);
                i += 1;
            }
            i += 1;
            out.push(Token::Str(s));
        } else if "{}[],:|?".contains(c) {
            out.push(Token::Punct(c));
            i += 1;
        } else if chars[i..].starts_with(&['.', '.', '.']) {
            out.push(Token::Ellipsis);
            i += 3;
        } else {
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() && !"{}[],:|\"".contains(chars[i]) {
                i += 1;
            }
            out.push(Token::Word(chars[start..i].iter().collect()));
        }
    }
    out
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }
    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    /// `{ "key"[?][: value], ... }`
    fn object(&mut self) -> Doc {
        assert_eq!(self.next(), Some(Token::Punct('{')));
        let mut fields = Vec::new();
        let mut map = false;
        loop {
            match self.next() {
                Some(Token::Punct('}')) => break,
                Some(Token::Punct(',')) => {}
                Some(Token::Ellipsis) => map = true,
                Some(Token::Str(key)) => {
                    let optional = self.peek() == Some(&Token::Punct('?'));
                    if optional {
                        self.next();
                    }
                    let value = if self.peek() == Some(&Token::Punct(':')) {
                        self.next();
                        self.value()
                    } else {
                        None
                    };
                    fields.push((key, optional, value));
                }
                other => panic!("unexpected {other:?} in an object at token {}", self.at),
            }
        }
        if map
            || (!fields.is_empty()
                && fields
                    .iter()
                    .all(|(k, _, _)| k.chars().all(|c| c.is_ascii_digit())))
        {
            return Doc::Map;
        }
        Doc::Object(fields)
    }

    /// A value up to the next `,`, `}` or `]`: the first object, array or
    /// shape name among its alternatives (`a | b`), if any.
    fn value(&mut self) -> Option<Doc> {
        let mut found = None;
        loop {
            match self.peek() {
                None | Some(Token::Punct(',' | '}' | ']')) => return found,
                Some(Token::Punct('{')) => {
                    let o = self.object();
                    found.get_or_insert(o);
                }
                Some(Token::Punct('[')) => {
                    self.next();
                    let inner = self.value();
                    // `[EventLine, ...]`: the rest repeats the first.
                    let mut depth = 0;
                    loop {
                        match self.next() {
                            Some(Token::Punct('[')) => depth += 1,
                            Some(Token::Punct(']')) if depth == 0 => break,
                            Some(Token::Punct(']')) => depth -= 1,
                            None => panic!("unclosed ["),
                            _ => {}
                        }
                    }
                    if let Some(inner) = inner {
                        found.get_or_insert(Doc::Array(Box::new(inner)));
                    }
                }
                Some(Token::Word(w)) if w.starts_with(|c: char| c.is_ascii_uppercase()) => {
                    let name = w.trim_end_matches('.').to_owned();
                    self.next();
                    found.get_or_insert(Doc::Ref(name));
                }
                Some(_) => {
                    self.next();
                }
            }
        }
    }
}

/// Every `**Name**` of the Shapes section with its shape: the inline
/// `` `{...}` `` after it, or the code block that follows it.
fn documented_shapes(page: &str) -> BTreeMap<String, Doc> {
    let shapes = &page[page.find("## Shapes").expect("a Shapes section")..];
    let mut out = BTreeMap::new();
    let mut rest = shapes;
    while let Some(start) = rest.find("**") {
        let after = &rest[start + 2..];
        let end = after.find("**").unwrap();
        let name = after[..end].to_owned();
        let body = &after[end + 2..];
        rest = body;
        if !name.chars().all(|c| c.is_ascii_alphanumeric()) {
            continue;
        }
        let inline = body.find("`{");
        let block = body.find("```");
        let text = match (inline, block) {
            (Some(i), b) if b.is_none_or(|b| i < b) => {
                let t = &body[i + 1..];
                &t[..t.find('`').unwrap()]
            }
            (_, Some(b)) => {
                let t = &body[b + 3..];
                let t = &t[t.find('\n').unwrap()..];
                &t[..t.find("```").unwrap()]
            }
            _ => panic!("no shape after **{name}**"),
        };
        let mut parser = Parser {
            tokens: tokenize(text),
            at: 0,
        };
        out.insert(name, parser.object());
    }
    out
}

/// Paths of every object of a shape (`VersionStatus.settings`), which the
/// real answers must have exercised.
fn object_paths(doc: &Doc, path: &str, out: &mut BTreeSet<String>) {
    match doc {
        Doc::Object(fields) => {
            out.insert(path.to_owned());
            for (key, _, value) in fields {
                if let Some(v) = value {
                    object_paths(v, &format!("{path}.{key}"), out);
                }
            }
        }
        Doc::Array(inner) => object_paths(inner, path, out),
        Doc::Ref(_) | Doc::Map => {}
    }
}

struct Checker<'a> {
    shapes: &'a BTreeMap<String, Doc>,
    covered: BTreeSet<String>,
    errors: Vec<String>,
}

impl Checker<'_> {
    fn check(&mut self, doc: &Doc, real: &Value, path: &str) {
        match (doc, real) {
            (_, Value::Null) | (Doc::Map, _) => {}
            (Doc::Ref(name), _) => {
                let Some(shape) = self.shapes.get(name) else {
                    self.errors
                        .push(format!("{path} refers to {name}, which is not documented"));
                    return;
                };
                self.check(&shape.clone(), real, name);
            }
            (Doc::Array(inner), Value::Array(items)) => {
                for item in items {
                    self.check(inner, item, path);
                }
            }
            (Doc::Object(fields), Value::Object(real_fields)) => {
                self.covered.insert(path.to_owned());
                let documented: BTreeSet<&str> =
                    fields.iter().map(|(k, _, _)| k.as_str()).collect();
                for key in real_fields.keys() {
                    if !documented.contains(key.as_str()) {
                        self.errors.push(format!(
                            "{path}.{key} is sent by the server but not documented: {real}"
                        ));
                    }
                }
                for (key, optional, value) in fields {
                    match real_fields.get(key) {
                        None if !optional => self
                            .errors
                            .push(format!("{path}.{key} is documented but not sent: {real}")),
                        None => {}
                        Some(v) => {
                            if let Some(doc) = value {
                                self.check(doc, v, &format!("{path}.{key}"));
                            }
                        }
                    }
                }
            }
            (doc, real) => self
                .errors
                .push(format!("{path}: documented as {doc:?}, sent {real}")),
        }
    }
}

fn get(server: &Server, path: &str) -> Value {
    let (status, body) = http(&server.url, "GET", path, b"");
    assert!(status == 200, "GET {path}: {status} {body}");
    serde_json::from_str(&body).unwrap()
}

/// Drives a server through every endpoint and returns, per shape name,
/// real answers of that shape.
fn real_answers(server: &Server, dir: &std::path::Path) -> BTreeMap<&'static str, Vec<Value>> {
    let mut real: BTreeMap<&'static str, Vec<Value>> = BTreeMap::new();
    let mut add = |name: &'static str, v: Value| real.entry(name).or_default().push(v);

    add(
        "TopicStatus",
        server.json(&["topic", "create", "payments", "--partitions", "2"]),
    );
    let mut generator = kappa::workload::PaymentGenerator::new(3, 20, 1_767_225_600_000);
    let file = dir.join("payments.jsonl");
    write_jsonl(&file, &generator.take(300));
    add(
        "ProduceReport",
        server.json(&["produce", "payments", "--file", file.to_str().unwrap()]),
    );
    let v1 = kappa_plugins::PAYMENTS_V1.path;
    let v2 = kappa_plugins::PAYMENTS_V2.path;
    add("DeployReport", server.deploy_payments(v1, "1.0.0", &[]));
    server.wait_applied("payments@1.0.0");
    add(
        "VersionStatus",
        server.deploy_payments(v2, "2.0.0", &["--wait"]),
    );

    // A version that fails, and one that skips poison events.
    server.json(&["topic", "create", "other", "--partitions", "1"]);
    let poison = "{\"key\":\"a\",\"value\":1}\n{\"key\":\"a\",\"value\":\"boom\"}\n";
    assert!(
        server
            .run_stdin(&["produce", "other"], Some(poison))
            .status
            .success()
    );
    let faulty = |version: &str, on_error: &str| {
        server.json(&[
            "deploy",
            kappa_plugins::FAULTY.path,
            "--name",
            "faulty",
            "--version",
            version,
            "--topic",
            "other",
            "--config",
            r#"{"mode":"trap","fail_on":"boom"}"#,
            "--on-error",
            on_error,
            "--wait",
        ])
    };
    add("VersionStatus", faulty("0.1.0", "stop"));
    add("VersionStatus", faulty("0.2.0", "skip"));
    // A version of two topics (its `inputs`).
    server.json(&["topic", "create", "extra", "--partitions", "1"]);
    add(
        "VersionStatus",
        server.json(&[
            "deploy",
            kappa_plugins::TOPIC_PROBE.path,
            "--name",
            "probe",
            "--version",
            "1.0.0",
            "--topic",
            "other",
            "--topic",
            "extra",
            "--wait",
        ]),
    );

    add("StatusReport", get(server, "/v1/status"));
    add("StatusReport", server.json(&["status", "payments"]));
    add("ProcessorStatus", get(server, "/v1/processors/payments"));
    add(
        "VersionStatus",
        get(server, "/v1/processors/faulty/versions/0.2.0"),
    );
    for t in get(server, "/v1/topics").as_array().unwrap() {
        add("TopicStatus", t.clone());
    }
    add(
        "ConsumePage",
        get(
            server,
            "/v1/topics/payments/events?partition=1&from=0&limit=3",
        ),
    );
    for e in server
        .json(&["consume", "payments", "--limit", "2"])
        .as_array()
        .unwrap()
    {
        add("LogEvent", e.clone());
    }
    add(
        "GetReply",
        get(server, "/v1/views/payments/keys/account/acct-0001"),
    );
    add(
        "GetReply",
        get(server, "/v1/views/payments/keys/nothing-here"),
    );
    add(
        "GetReply",
        get(server, "/v1/views/payments/keys/account/acct-0001?raw=true"),
    );
    add(
        "GetReply",
        server.json(&["get", "payments", "account/acct-0001", "--raw"]),
    );
    add(
        "ScanPage",
        server.json(&["scan", "payments", "--prefix", "account/", "--raw"]),
    );
    add(
        "ScanPage",
        get(
            server,
            "/v1/views/payments@2.0.0/scan?prefix=account/&limit=2",
        ),
    );
    // A limit over the page cap: the page says it was capped.
    add(
        "ScanPage",
        get(
            server,
            "/v1/views/payments/scan?prefix=account/&limit=20000",
        ),
    );
    add("DigestReply", get(server, "/v1/views/payments/digest"));
    add(
        "DiffReport",
        get(
            server,
            "/v1/diff?a=payments@1.0.0&b=payments@2.0.0&prefix=account/&limit=3",
        ),
    );
    add(
        "DiffReport",
        get(
            server,
            "/v1/diff?a=payments@1.0.0&b=payments@2.0.0&prefix=account/&limit=20000",
        ),
    );
    add(
        "ProcessorStatus",
        server.json(&["promote", "payments@2.0.0"]),
    );
    add("ProcessorStatus", server.json(&["rollback", "payments"]));
    add("VersionStatus", server.json(&["retire", "payments@2.0.0"]));
    add("StatusReport", get(server, "/v1/status"));
    let (status, body) = http(&server.url, "GET", "/v1/processors/ghost", b"");
    assert_eq!(status, 404);
    add("ErrorReply", serde_json::from_str(&body).unwrap());
    real
}

#[test]
fn every_documented_shape_matches_what_the_server_sends() {
    let page =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/api.md")).unwrap();
    let shapes = documented_shapes(&page);
    for name in [
        "StatusReport",
        "VersionStatus",
        "ProcessorStatus",
        "ConsumePage",
        "LogEvent",
        "DiffReport",
    ] {
        assert!(shapes.contains_key(name), "{name} not parsed: {shapes:?}");
    }

    // Every answer the endpoint table names is a documented shape.
    let table = &page[page.find("## Endpoints").unwrap()..page.find("## Shapes").unwrap()];
    for line in table.lines().filter(|l| l.starts_with("| `")) {
        let answer = line.trim_end_matches('|').rsplit('|').next().unwrap();
        for name in answer.split('`').skip(1).step_by(2) {
            let name = name.trim_matches(|c| c == '[' || c == ']');
            if name.starts_with(|c: char| c.is_ascii_uppercase()) {
                assert!(
                    shapes.contains_key(name),
                    "the endpoint table answers {name}, which is not documented: {line}"
                );
            }
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let real = real_answers(&server, dir.path());
    let mut checker = Checker {
        shapes: &shapes,
        covered: BTreeSet::new(),
        errors: Vec::new(),
    };
    for (name, answers) in &real {
        let doc = shapes
            .get(*name)
            .unwrap_or_else(|| panic!("{name} is not documented in docs/api.md"));
        for answer in answers {
            checker.check(doc, answer, name);
        }
    }
    assert!(
        checker.errors.is_empty(),
        "docs/api.md and the server disagree:\n{}",
        checker.errors.join("\n")
    );

    // Every documented shape (but the inputs of produce: its line and its
    // request body) and every object inside it was compared with a real answer.
    let mut paths = BTreeSet::new();
    for (name, doc) in &shapes {
        if name != "EventLine" && name != "ProduceRequest" {
            object_paths(doc, name, &mut paths);
        }
    }
    let missed: Vec<&String> = paths.difference(&checker.covered).collect();
    assert!(
        missed.is_empty(),
        "documented but never compared with a real answer: {missed:?}"
    );
}

/// A scan or diff page refuses a limit of 0 (an empty page would look like
/// an empty view) and says when it served fewer rows than asked: over 10,000.
#[test]
fn a_zero_limit_is_refused_and_a_capped_page_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    server.json(&["topic", "create", "keys", "--partitions", "1"]);
    let rows = 10_001;
    let mut lines = String::new();
    for i in 0..rows {
        lines.push_str(&format!("{{\"key\":\"k{i:05}\",\"value\":1}}\n"));
    }
    let file = dir.path().join("keys.jsonl");
    std::fs::write(&file, lines).unwrap();
    server.json(&["produce", "keys", "--file", file.to_str().unwrap()]);
    server.deploy_starter("1.0.0", "keys");
    // Another plugin under the same name: every row differs.
    server.json(&[
        "deploy",
        kappa_plugins::ECHO_V1.path,
        "--name",
        "counts",
        "--version",
        "2.0.0",
        "--topic",
        "keys",
        "--wait",
    ]);

    let diff = "/v1/diff?a=counts@1.0.0&b=counts@2.0.0";
    let path = "/v1/views/counts/scan?limit=0";
    let (status, body) = http(&server.url, "GET", path, b"");
    assert_eq!(status, 400, "{path}: {body}");
    let reply: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reply["error"]["kind"], "invalid", "{body}");
    let message = reply["error"]["message"].as_str().unwrap();
    assert!(message.contains("limit must be at least 1"), "{message}");
    server.fails(&["scan", "counts", "--limit", "0"], 2);
    // A diff with limit 0 is the counts alone: every key counted, no rows.
    let counts = get(&server, &format!("{diff}&limit=0"));
    assert_eq!(counts["rows"].as_array().unwrap().len(), 0, "{counts}");
    let full = get(&server, &format!("{diff}&limit=20000"));
    assert_eq!(counts["counts"], full["counts"], "{counts}");
    assert_ne!(counts["counts"]["unchanged"], rows, "{counts}");
    let cli = server.json(&["diff", "counts@1.0.0", "counts@2.0.0", "--limit", "0"]);
    assert_eq!(cli["counts"], full["counts"], "{cli}");

    // Within the cap nothing is said; over it, a full page and `capped_at`.
    let page = get(&server, "/v1/views/counts/scan?limit=10000");
    assert_eq!(page["rows"].as_array().unwrap().len(), 10_000);
    assert!(page.get("capped_at").is_none(), "{}", page["next_after"]);
    let page = get(&server, "/v1/views/counts/scan?limit=20000");
    assert_eq!(page["rows"].as_array().unwrap().len(), 10_000);
    assert_eq!(page["capped_at"], 10_000);
    assert_eq!(page["next_after"], "k09999");
    let report = get(&server, &format!("{diff}&limit=20000"));
    assert_eq!(report["rows"].as_array().unwrap().len(), 10_000);
    assert_eq!(report["capped_at"], 10_000);
    assert!(report["next_after"].is_string(), "{}", report["counts"]);
    let small = get(&server, &format!("{diff}&limit=3"));
    assert!(small.get("capped_at").is_none(), "{}", small["counts"]);

    // The CLI says so on stderr, and its --json page carries the field.
    for args in [
        &["scan", "counts", "--limit", "20000"][..],
        &["diff", "counts@1.0.0", "counts@2.0.0", "--limit", "20000"][..],
    ] {
        let out = server.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {stderr}");
        assert!(
            stderr.contains("--limit 20000 capped: the server puts at most 10000 rows in a page"),
            "{args:?}: {stderr}"
        );
        let page = server.json(args);
        assert_eq!(page["capped_at"], 10_000, "{args:?}");
    }
    let out = server.run(&["scan", "counts", "--limit", "5"]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("capped"));
}
