//! The payments v2 rules written in Rust, Python, JavaScript and C, deployed as
//! versions of one processor over one log: their views are byte-identical and
//! equal to the rules computed here; each language replays deterministically,
//! also across a SIGKILL; and a malformed event stops each of them at the same
//! partition and offset with an `invalid-event` error. All four speak
//! contract 0.2.0 (the batch in columns).
//!
//! A second test builds the range probe (`plugins/rust/range-probe`) again in
//! Python, JavaScript and C from the starters of contract 0.3.0-rc.1 (their
//! plugin source replaced by `tests/guest/range_probe.*`, their range readers
//! as `kappa plugin new` writes them) and checks that each builds exactly the
//! view the Rust probe builds and this file computes from the probe's
//! commands. It uses the tools `plugins/build-polyglot.sh` installed into
//! `${KAPPA_TOOLS_DIR:-$HOME/.cache/kappa-tools}`.
//!
//! The Python, JavaScript and C components are built by
//! `plugins/build-polyglot.sh DIR` (which `scripts/test` runs), found through
//! `KAPPA_POLYGLOT_DIR=DIR`. Without it the test is skipped with a notice,
//! unless `CI` is set, where it fails.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::PathBuf;

use kappa::workload::{Payment, PaymentGenerator};
use serde_json::Value;
use support::*;

/// One implementation of the payments v2 rules.
struct Plugin {
    language: &'static str,
    path: String,
}

/// The four implementations, or `None` (after a notice) when the
/// polyglot components were not built.
fn plugins() -> Option<Vec<Plugin>> {
    let Some(dir) = std::env::var_os("KAPPA_POLYGLOT_DIR") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "KAPPA_POLYGLOT_DIR is not set: run plugins/build-polyglot.sh DIR and set it to DIR"
        );
        eprintln!(
            "notice: polyglot test skipped: KAPPA_POLYGLOT_DIR is not set \
             (scripts/test builds the components with plugins/build-polyglot.sh and sets it)"
        );
        return None;
    };
    let dir = PathBuf::from(dir);
    let built = |file: &str| {
        let path = dir.join(file);
        assert!(
            path.is_file(),
            "{} is missing: run plugins/build-polyglot.sh {}",
            path.display(),
            dir.display()
        );
        path.to_str().unwrap().to_owned()
    };
    Some(vec![
        Plugin {
            language: "rust",
            path: kappa_plugins::PAYMENTS_V2.path.to_owned(),
        },
        Plugin {
            language: "python",
            path: built("payments-v2-python.wasm"),
        },
        Plugin {
            language: "js",
            path: built("payments-v2-js.wasm"),
        },
        Plugin {
            language: "c",
            path: built("payments-v2-c.wasm"),
        },
    ])
}

fn deploy(server: &Server, path: &str, id: &str, topic: &str, extra: &[&str]) -> Value {
    let (name, version) = id.split_once('@').unwrap();
    let mut args = vec![
        "deploy",
        path,
        "--name",
        name,
        "--version",
        version,
        "--topic",
        topic,
    ];
    args.extend(extra);
    server.json(&args)
}

fn produce(server: &Server, topic: &str, payments: &[Payment]) {
    let file = server.data_dir.join("produce.jsonl");
    write_jsonl(&file, payments);
    let report = server.json(&["produce", topic, "--file", file.to_str().unwrap()]);
    assert_eq!(report["appended"], payments.len());
}

fn digest(server: &Server, id: &str) -> String {
    server.json(&["digest", id])["sha256"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn rust_python_js_and_c_build_identical_views_and_fail_alike() {
    let Some(plugins) = plugins() else {
        return;
    };
    // Every example speaks contract 0.2.0, the batch in columns.
    for plugin in &plugins {
        let out = std::process::Command::new(KAPPA)
            .args(["plugin", "check", &plugin.path, "--json"])
            .output()
            .unwrap();
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["contract"], "0.2.0", "{}: {report}", plugin.language);
    }
    // The JavaScript example is compiled ahead of time (`build.mjs --aot`):
    // weval leaves this name in what it has processed.
    let js = std::fs::read(&plugins[2].path).unwrap();
    let mark = b"weval.is.wevaled";
    assert_eq!(plugins[2].language, "js");
    assert!(
        js.windows(mark.len()).any(|w| w == mark),
        "{} was not built with --aot",
        plugins[2].path
    );
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());

    // History, then one version per language replaying it side by side.
    server.json(&["topic", "create", "payments", "--partitions", "4"]);
    let mut generator = PaymentGenerator::new(23, 80, 1_767_225_600_000);
    let mut payments = generator.take(3000);
    produce(&server, "payments", &payments);
    let ids: Vec<String> = (0..plugins.len())
        .map(|i| format!("payments@2.{i}.0"))
        .collect();
    for (plugin, id) in plugins.iter().zip(&ids) {
        let report = deploy(&server, &plugin.path, id, "payments", &[]);
        assert_eq!(report["created"], true, "{}: {report}", plugin.language);
    }
    // More events while they replay.
    let more = generator.take(400);
    produce(&server, "payments", &more);
    payments.extend(more);
    for id in &ids {
        server.wait_applied(id);
    }

    // Byte-identical views, equal to the rules computed here.
    let want = digest_of(&expected_view(&payments, V2_RULES));
    for (plugin, id) in plugins.iter().zip(&ids) {
        assert_eq!(digest(&server, id), want, "{} view", plugin.language);
    }
    for (i, a) in ids.iter().enumerate() {
        for b in &ids[i + 1..] {
            let diff = server.json(&["diff", a, b, "--limit", "5"]);
            let [added, removed, changed, unchanged] = diff_counts(&diff);
            assert_eq!((added, removed, changed), (0, 0, 0), "{a} vs {b}: {diff}");
            assert!(unchanged > 0, "{diff}");
        }
    }

    // Determinism: the same bytes as another version build the same view.
    let again: Vec<String> = (0..plugins.len())
        .map(|i| format!("payments@2.{i}.1"))
        .collect();
    for (plugin, id) in plugins.iter().zip(&again) {
        let report = deploy(&server, &plugin.path, id, "payments", &["--wait"]);
        assert_eq!(report["lag"], 0, "{}: {report}", plugin.language);
        assert_eq!(
            digest(&server, id),
            want,
            "{} replayed again",
            plugin.language
        );
    }

    // SIGKILL and restart: views unchanged, then new events applied exactly once.
    server.kill();
    server = Server::start(dir.path());
    // Commits since a view's last fsync roll back with their offsets and are
    // applied again: once caught up, each view is exactly what it was.
    for id in ids.iter().chain(&again) {
        server.wait_applied(id);
        assert_eq!(digest(&server, id), want, "{id} after SIGKILL");
    }
    let last = generator.take(300);
    produce(&server, "payments", &last);
    payments.extend(last);
    let want = digest_of(&expected_view(&payments, V2_RULES));
    for id in ids.iter().chain(&again) {
        server.wait_applied(id);
        assert_eq!(
            digest(&server, id),
            want,
            "{id} after restart and new events"
        );
    }

    // The same configuration is refused by every language, as invalid-config.
    for (i, plugin) in plugins.iter().enumerate() {
        let version = format!("3.{i}.0");
        for config in [r#"{"max_txns":0}"#, r#"{"window_ms":1.5}"#, "[1,2,3,4]"] {
            let err = server.fails(
                &[
                    "deploy",
                    &plugin.path,
                    "--name",
                    "payments",
                    "--version",
                    &version,
                    "--topic",
                    "payments",
                    "--config",
                    config,
                ],
                2,
            );
            assert!(
                err.contains("invalid configuration"),
                "{} with {config}: {err}",
                plugin.language
            );
        }
    }

    // A malformed event (not JSON) on a topic of its own: every language
    // stops at that event, with an invalid-event error naming its offset,
    // after applying the events before it.
    server.json(&["topic", "create", "mixed", "--partitions", "2"]);
    produce(&server, "mixed", &generator.take(200));
    let poison = r#"{"key":"acct-0001","value":"boom","partition":1}"#;
    let out = server.run_stdin(
        &["produce", "mixed", "--json"],
        Some(&format!("{poison}\n")),
    );
    assert!(out.status.success());
    let poison_offset =
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["partitions"][0]["first_offset"]
            .as_u64()
            .unwrap();
    produce(&server, "mixed", &generator.take(50));
    for (plugin, id) in plugins.iter().zip(&ids) {
        let id = id.replace("payments@", "mixed@");
        deploy(&server, &plugin.path, &id, "mixed", &[]);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        let failed = loop {
            let v = server.version(&id);
            if v["state"] == "failed" {
                break v;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} never failed: {v}",
                plugin.language
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let f = &failed["failure"];
        assert_eq!(
            (f["partition"].as_u64(), f["offset"].as_u64()),
            (Some(1), Some(poison_offset)),
            "{}: {f}",
            plugin.language
        );
        let message = f["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("invalid event at offset {poison_offset}")),
            "{}: {message}",
            plugin.language
        );
        assert_eq!(
            failed["applied_offsets"][1].as_u64(),
            Some(poison_offset),
            "{}",
            plugin.language
        );
    }
}

/// The versions `plugins/build-polyglot.sh` installs.
const COMPONENTIZE_PY_VERSION: &str = "0.25.1";
const COMPONENTIZE_JS_VERSION: &str = "0.23.0";
const WIT_BINDGEN_VERSION: &str = "0.63.0";

/// Where `plugins/build-polyglot.sh` installs its tools.
fn tools_dir() -> PathBuf {
    std::env::var_os("KAPPA_TOOLS_DIR").map_or_else(
        || {
            PathBuf::from(std::env::var_os("HOME").unwrap())
                .join(".cache")
                .join("kappa-tools")
        },
        PathBuf::from,
    )
}

fn run_ok(command: &mut std::process::Command) {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Builds the range probe in `lang` from a starter of contract 0.3.0-rc.1:
/// `kappa plugin new`, then the starter's plugin source replaced by
/// `tests/guest/range_probe.*` (which reads with the starter's own range
/// reader, left as written), built with the starter's build script.
fn build_range_probe(lang: &str, scratch: &std::path::Path) -> String {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let project = scratch.join(format!("probe-{lang}"));
    run_ok(std::process::Command::new(KAPPA).args([
        "plugin",
        "new",
        "range-probe",
        "--lang",
        lang,
        "--contract",
        "0.3.0-rc.1",
        "--dir",
        project.to_str().unwrap(),
    ]));
    let (source, replaced, reader) = match lang {
        "python" => ("range_probe.py", "app.py", "ranges.py"),
        "js" => ("range_probe.js", "index.js", "range.js"),
        _ => ("range_probe.c", "plugin.c", "range.c"),
    };
    assert!(
        project.join(reader).is_file(),
        "the {lang} starter has no {reader}"
    );
    std::fs::copy(
        repo.join("tests").join("guest").join(source),
        project.join(replaced),
    )
    .unwrap();
    let out = scratch.join(format!("range-probe-{lang}.wasm"));
    let tools = tools_dir();
    let mut command = match lang {
        "python" => {
            let tool = tools
                .join(format!("componentize-py-{COMPONENTIZE_PY_VERSION}"))
                .join("bin")
                .join("componentize-py");
            assert!(tool.is_file(), "{} is missing", tool.display());
            let mut c = std::process::Command::new("python3");
            c.env("KAPPA_COMPONENTIZE_PY", tool).arg("build.py");
            c
        }
        "js" => {
            let tool = tools
                .join(format!("componentize-js-{COMPONENTIZE_JS_VERSION}"))
                .join("node_modules")
                .join("@bytecodealliance")
                .join("componentize-js");
            assert!(tool.is_dir(), "{} is missing", tool.display());
            let mut c = std::process::Command::new("node");
            c.env("KAPPA_COMPONENTIZE_JS", tool).arg("build.mjs");
            c
        }
        _ => {
            let tool = tools
                .join(format!("wit-bindgen-cli-{WIT_BINDGEN_VERSION}"))
                .join("bin")
                .join("wit-bindgen");
            assert!(tool.is_file(), "{} is missing", tool.display());
            let mut c = std::process::Command::new("sh");
            c.env("WIT_BINDGEN", tool).arg("build.sh");
            c
        }
    };
    run_ok(command.current_dir(&project).arg(&out));
    out.to_str().unwrap().to_owned()
}

/// A view's rows, key to value, as bytes.
type Bytes = std::collections::BTreeMap<Vec<u8>, Vec<u8>>;

fn hex_of(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// What the range probe's commands leave in its view, computed here from
/// the commands alone: a prefix read is every key that starts with the
/// prefix, in key order, whatever the page size.
fn probe_model(commands: &[String]) -> Bytes {
    let mut view = Bytes::new();
    for (offset, command) in commands.iter().enumerate() {
        let words: Vec<&str> = command.split_whitespace().collect();
        let unhex = |w: &str| hex::decode(w).unwrap();
        let rows: Vec<(Vec<u8>, Vec<u8>)> = match words.as_slice() {
            ["put", key, value] => {
                view.insert(unhex(key), unhex(value));
                continue;
            }
            ["del", key] => {
                view.remove(&unhex(key));
                continue;
            }
            ["range", start, end, limit] => {
                let start = unhex(start);
                let end = (*end != "-").then(|| unhex(end));
                view.iter()
                    .filter(|(k, _)| **k >= start && end.as_ref().is_none_or(|e| *k < e))
                    .take(limit.parse().unwrap())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            }
            ["prefix", prefix, _page] => {
                let prefix = unhex(prefix);
                view.iter()
                    .filter(|(k, _)| k.starts_with(&prefix))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            }
            _ => panic!("no command {command:?}"),
        };
        let listed: Vec<String> = rows
            .iter()
            .map(|(k, v)| format!("{}={}", hex_of(k), hex_of(v)))
            .collect();
        view.insert(
            format!("out/{offset:020}").into_bytes(),
            listed.join(",").into_bytes(),
        );
    }
    view
}

/// `rows` as `Server::rows` gives them: keys that are not UTF-8 as `0x` and
/// hex, values (all UTF-8 here, none of them JSON) as JSON strings.
fn as_scanned(rows: &Bytes) -> std::collections::BTreeMap<String, String> {
    rows.iter()
        .map(|(k, v)| {
            let key =
                std::str::from_utf8(k).map_or_else(|_| format!("0x{}", hex_of(k)), str::to_owned);
            let value = std::str::from_utf8(v).unwrap();
            assert!(serde_json::from_str::<Value>(value).is_err(), "{value}");
            (key, Value::from(value).to_string())
        })
        .collect()
}

/// The digest `kappa digest` prints for a view with exactly these rows.
fn digest_of_bytes(rows: &Bytes) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for (k, v) in rows {
        h.update((k.len() as u64).to_le_bytes());
        h.update(k);
        h.update((v.len() as u64).to_le_bytes());
        h.update(v);
    }
    hex::encode(h.finalize())
}

fn probe_put(key: &[u8], value: &str) -> String {
    format!("put {} {}", hex_of(key), hex_of(value.as_bytes()))
}

fn probe_del(key: &[u8]) -> String {
    format!("del {}", hex_of(key))
}

fn probe_prefix(prefix: &[u8], page: u32) -> String {
    format!("prefix {} {page}", hex_of(prefix))
}

/// The commands of the range probe test, one batch (one produce) each:
/// rows under prefixes whose end needs a carry (`k\xff`) or does not exist
/// (`\xff\xff`), keys right after a page's last key (`a/` then `a/\0`),
/// neighbours just outside each prefix; then prefix reads in pages of 0 (read
/// as 1), 1, 2, 3 (the rows an exact multiple of it), 9 and 100 with the
/// batch's own writes and deletions pending, and reads of the reads' own
/// output rows.
fn probe_batches() -> Vec<Vec<String>> {
    let stored: &[&[u8]] = &[
        b"a/",
        b"a/\0",
        b"a/\0\0",
        b"a/1",
        b"a/3",
        b"a/5",
        b"a/7",
        b"a/\xff",
        b"a/\xff\xff",
        b"a",
        b"a.",
        b"a0",
        b"b/1",
        b"k",
        b"k\xfe\xff",
        b"k\xff",
        b"k\xff\0",
        b"k\xff\xff\xff",
        b"l",
        b"\xff\xfe",
        b"\xff\xff",
        b"\xff\xff\x01",
        b"\xff\xff\xff",
    ];
    let first: Vec<String> = stored
        .iter()
        .enumerate()
        .map(|(i, key)| probe_put(key, &format!("v{i}")))
        .chain([probe_prefix(b"a/", 3)])
        .collect();
    let mut second = vec![
        probe_put(b"a/4", "pending"),
        probe_put(b"a/3", "replaced"),
        probe_del(b"a/1"),
        probe_put(b"a/6", "gone"),
        probe_del(b"a/6"),
        probe_put(b"a/8", "pending"),
        probe_del(b"a/\xff"),
        probe_put(b"k\xff\x01", "pending"),
    ];
    for page in [0, 1, 2, 3, 9, 100] {
        second.push(probe_prefix(b"a/", page));
    }
    second.extend([
        probe_prefix(b"k\xff", 2),
        probe_prefix(b"\xff\xff", 1),
        probe_prefix(b"\xff", 2),
        format!("range {} {} 2", hex_of(b"a/"), hex_of(b"a0")),
        probe_prefix(b"out/", 2),
    ]);
    let third = vec![
        probe_del(b"a/"),
        probe_del(b"a/\0\0"),
        probe_prefix(b"a/", 2),
        probe_prefix(b"a/\0", 1),
        probe_prefix(b"out/", 3),
    ];
    vec![first, second, third]
}

/// The range readers of the Python, JavaScript and C starters of contract
/// 0.3.0-rc.1 (`ranges.py`, `range.js`, `range.c`), inside real components
/// on a real host: the same commands give exactly the view the Rust probe
/// (`kappa_guest::prefix`) gives, and the view computed here from the
/// commands alone.
#[test]
fn the_range_readers_of_the_starters_read_the_real_view_as_rust_does() {
    let Some(_) = plugins() else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let mut probes = vec![("rust", kappa_plugins::RANGE_PROBE.path.to_owned())];
    for lang in ["python", "js", "c"] {
        probes.push((lang, build_range_probe(lang, scratch.path())));
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    server.json(&["topic", "create", "commands", "--partitions", "1"]);
    for (lang, path) in &probes {
        let report = deploy(
            &server,
            path,
            &format!("probe-{lang}@1.0.0"),
            "commands",
            &[],
        );
        assert_eq!(report["created"], true, "{lang}: {report}");
    }
    let mut commands = Vec::new();
    for batch in probe_batches() {
        let lines: String = batch
            .iter()
            .map(|c| serde_json::json!({ "value": c }).to_string() + "\n")
            .collect();
        let file = dir.path().join("commands.jsonl");
        std::fs::write(&file, lines).unwrap();
        server.json(&["produce", "commands", "--file", file.to_str().unwrap()]);
        commands.extend(batch);
        for (lang, _) in &probes {
            server.wait_applied(&format!("probe-{lang}@1.0.0"));
        }
    }
    let want = probe_model(&commands);
    // The model reads what it should: all 9 rows under a/ after the second
    // batch's writes, paged or not.
    let first = commands
        .iter()
        .position(|c| *c == probe_prefix(b"a/", 0))
        .unwrap();
    let out = |offset: usize| want[format!("out/{offset:020}").as_bytes()].clone();
    let nine = out(first);
    assert_eq!(nine.iter().filter(|b| **b == b'=').count(), 9);
    for offset in first + 1..first + 6 {
        assert_eq!(out(offset), nine);
    }
    for (lang, _) in &probes {
        let id = format!("probe-{lang}@1.0.0");
        assert_eq!(server.rows(&id), as_scanned(&want), "{lang} range probe");
        assert_eq!(digest(&server, &id), digest_of_bytes(&want), "{lang}");
    }
}
