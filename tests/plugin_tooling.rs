//! The plugin author's tools: `kappa plugin check` accepts the example
//! plugins and refuses each kind of wrong file with the precise reason, and
//! `kappa plugin new` writes starter projects that build, pass the check,
//! deploy and count events.
//!
//! The wrong components are built from `plugins/rust/testdata` and the Rust
//! starter project with cargo, into one target directory under `target/` so
//! that repeated runs are incremental. The Python, JavaScript and C starters
//! are built only when `KAPPA_POLYGLOT_DIR` is set (scripts/test sets it after
//! `plugins/build-polyglot.sh` installed componentize-py, componentize-js and
//! wit-bindgen-cli into `${KAPPA_TOOLS_DIR:-$HOME/.cache/kappa-tools}`, and
//! clang-14 with wasi-libc); otherwise that part is skipped with a notice,
//! unless `CI` is set, where it fails.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;
use support::*;

/// The versions `plugins/build-polyglot.sh` installs.
const COMPONENTIZE_PY_VERSION: &str = "0.25.1";
const COMPONENTIZE_JS_VERSION: &str = "0.23.0";
const WIT_BINDGEN_VERSION: &str = "0.63.0";
/// The weval `plugins/build-polyglot.sh` installs, for `node build.mjs --aot`.
const WEVAL_VERSION: &str = "0.5.0";
/// A name weval writes into the components it has compiled ahead of time.
const WEVALED: &str = "weval.is.wevaled";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The target directory shared by every guest this test builds.
fn guest_target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-tooling-target")
}

/// Runs `kappa ARGS` (no server).
fn kappa(args: &[&str]) -> Output {
    Command::new(KAPPA).args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `kappa plugin check FILE --json`: the report and the exit code.
fn check(file: &Path) -> (Value, i32, String) {
    let out = kappa(&["plugin", "check", file.to_str().unwrap(), "--json"]);
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "plugin check {} printed no JSON ({e}): {}{}",
            file.display(),
            text(&out.stdout),
            text(&out.stderr)
        )
    });
    (report, out.status.code().unwrap(), text(&out.stderr))
}

/// Checks `file` expecting it to be refused, returning its reasons.
fn refused(file: &Path) -> Vec<String> {
    let (report, code, stderr) = check(file);
    assert_eq!(code, 1, "{} should be refused: {report}", file.display());
    assert_eq!(report["valid"], false, "{report}");
    let reasons: Vec<String> = report["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    assert!(!reasons.is_empty(), "{report}");
    for reason in &reasons {
        assert!(stderr.contains(reason.as_str()), "{stderr}");
    }
    // The text form says the same.
    let out = kappa(&["plugin", "check", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("not a valid kappa plugin"), "{stdout}");
    for reason in &reasons {
        assert!(stdout.contains(reason.as_str()), "{stdout}");
    }
    reasons
}

/// The type of `process` in contract `version`.
fn process_type(version: &str) -> &'static str {
    match version {
        "0.1.0" => "func(events: list<event>) -> result<_, error>",
        "0.2.0" | "0.3.0-rc.1" | "0.3.0" => "func(batch: event-batch) -> result<_, error>",
        other => panic!("no contract {other}"),
    }
}

/// Checks `file` expecting it to be accepted as a plugin of contract
/// `version`, returning the report.
fn accepted(file: &Path, version: &str) -> Value {
    let (report, code, stderr) = check(file);
    assert_eq!(
        code,
        0,
        "{} should be valid: {report} {stderr}",
        file.display()
    );
    assert_eq!(report["valid"], true, "{report}");
    assert_eq!(report["reasons"], serde_json::json!([]));
    assert_eq!(report["contract"], version);
    // Language runtimes may export more (componentize-py does), never less.
    let exports: Vec<(&str, &str)> = report["exports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["type"].as_str().unwrap()))
        .collect();
    for export in [
        ("init", "func(config: string) -> result<_, error>"),
        ("process", process_type(version)),
    ] {
        assert!(exports.contains(&export), "{export:?} not in {report}");
    }
    let kappa_imports = report["imports"]["kappa"].as_array().unwrap();
    assert!(
        kappa_imports.contains(&Value::from(format!("kappa:processor/view@{version}"))),
        "{report}"
    );
    assert_eq!(report["imports"]["refused"], serde_json::json!([]));
    let bytes = std::fs::read(file).unwrap();
    assert_eq!(report["size"], bytes.len());
    use sha2::Digest;
    assert_eq!(
        report["digest"],
        hex::encode(sha2::Sha256::digest(&bytes)).as_str()
    );
    let out = kappa(&["plugin", "check", file.to_str().unwrap()]);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    for part in [
        "a valid kappa plugin",
        &format!("kappa:processor@{version}"),
        &format!("process: {}", process_type(version)),
        "inert WASI",
        "sha256:",
        "bytes",
        "compiled in",
    ] {
        assert!(stdout.contains(part), "{part} missing from {stdout}");
    }
    report
}

/// Builds the cargo project of `manifest` for wasm32-wasip2 (release) into
/// the shared guest target directory and returns its release directory.
fn cargo_build_wasm(manifest: &Path) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(manifest.parent().unwrap())
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .arg("--manifest-path")
        .arg(manifest)
        .arg("--target-dir")
        .arg(guest_target_dir());
    // Settings of the outer build that must not reach the guest one.
    for name in [
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        command.env_remove(name);
    }
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "building {} failed: {}",
        manifest.display(),
        text(&out.stderr)
    );
    guest_target_dir().join("wasm32-wasip2").join("release")
}

/// The components of `plugins/rust/testdata`, built once per test run.
fn testdata() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        cargo_build_wasm(
            &repo()
                .join("plugins")
                .join("rust")
                .join("testdata")
                .join("Cargo.toml"),
        )
    })
}

#[test]
fn check_accepts_the_example_plugins() {
    for plugin in [kappa_plugins::PAYMENTS_V1, kappa_plugins::STARTER] {
        let report = accepted(Path::new(plugin.path), "0.1.0");
        assert!(report["compile_ms"].is_u64(), "{report}");
    }
}

#[test]
fn check_accepts_a_plugin_of_the_release_candidate() {
    let report = accepted(Path::new(kappa_plugins::RANGE_PROBE.path), "0.3.0-rc.1");
    assert!(report["compile_ms"].is_u64(), "{report}");
}

/// `kappa plugin check --data-dir DIR` says it is compiling before it does,
/// and leaves the machine code in DIR's compiled-code cache, so that the
/// server on DIR deploys the same file without compiling it again.
#[test]
fn check_fills_the_compile_cache_a_later_deploy_loads() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let file = kappa_plugins::STARTER.path;
    let out = kappa(&["plugin", "check", file, "--data-dir", data_dir]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("compiling {file} (")), "{stderr}");
    use sha2::Digest;
    let digest = hex::encode(sha2::Sha256::digest(kappa_plugins::STARTER.bytes));
    let entries: Vec<String> = std::fs::read_dir(dir.path().join("compiled"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        entries
            .iter()
            .any(|name| name.starts_with(&digest) && name.ends_with(".cwasm")),
        "no cache entry for {digest}: {entries:?}"
    );

    // A second check finds it: nothing to compile.
    let again = kappa(&["plugin", "check", file, "--data-dir", data_dir]);
    assert!(again.status.success());
    assert!(
        !text(&again.stderr).contains("compiling"),
        "{}",
        text(&again.stderr)
    );

    // Without a data directory (none given, no ./kappa-data), the check still
    // says it compiles, into a cache of its own.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = Command::new(KAPPA)
        .args(["plugin", "check", file])
        .current_dir(elsewhere.path())
        .env_remove("KAPPA_DATA_DIR")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        text(&out.stderr).contains("compiling"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
    // With a ./kappa-data, `kappa serve`'s default, it uses that one.
    std::fs::create_dir(elsewhere.path().join("kappa-data")).unwrap();
    let out = Command::new(KAPPA)
        .args(["plugin", "check", file])
        .current_dir(elsewhere.path())
        .env_remove("KAPPA_DATA_DIR")
        .output()
        .unwrap();
    assert!(out.status.success());
    let cached = std::fs::read_dir(elsewhere.path().join("kappa-data").join("compiled"))
        .unwrap()
        .count();
    assert_eq!(cached, 1, "one cache entry in ./kappa-data/compiled");

    let server = Server::start(dir.path());
    let out = server.run(&["topic", "create", "events", "--partitions", "1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let deploy = server.json(&[
        "deploy",
        file,
        "--name",
        "counts",
        "--version",
        "1.0.0",
        "--topic",
        "events",
    ]);
    assert_eq!(deploy["compiled_from_cache"], true, "{deploy}");
}

#[test]
fn check_refuses_each_wrong_file_with_the_precise_reason() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };

    let reasons = refused(&write("notes.wasm", b"hello, world"));
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(reasons[0].contains("not WebAssembly"), "{reasons:?}");

    let reasons = refused(&write("core.wasm", b"\0asm\x01\0\0\0"));
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0].contains("core WebAssembly module, not a component"),
        "{reasons:?}"
    );

    let reasons = refused(&write("empty.wasm", b"\0asm\x0d\0\x01\0"));
    assert_eq!(
        reasons,
        [
            "missing export `init`: the world kappa:processor/processor@0.1.0 exports \
             `init: func(config: string) -> result<_, error>`",
            "missing export `process`: the world kappa:processor/processor@0.1.0 exports \
             `process: func(events: list<event>) -> result<_, error>`",
        ]
    );

    let built = testdata();
    let reasons = refused(&built.join("wasi-command.wasm"));
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0].starts_with(
            "the component implements another world: it is a WASI command (a program with a \
             `main`), exporting `wasi:cli/run@0.2."
        ) && reasons[0].ends_with(
            "instead of the `init` and `process` functions of the world \
             kappa:processor/processor@0.1.0"
        ),
        "{reasons:?}"
    );

    let (report, _, _) = check(&built.join("contract_v0_99_0.wasm"));
    assert_eq!(report["contract"], "0.99.0", "{report}");
    let reasons = refused(&built.join("contract_v0_99_0.wasm"));
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0].starts_with(
            "unsupported contract version: the component was built against \
             kappa:processor@0.99.0 (it imports `kappa:processor/view@0.99.0`, \
             `kappa:processor/logging@0.99.0`"
        ) && reasons[0].ends_with(
            "but this host supports only kappa:processor@0.1.0, kappa:processor@0.2.0, \
                 kappa:processor@0.3.0-rc.1, kappa:processor@0.3.0"
        ),
        "{reasons:?}"
    );

    let reasons = refused(&built.join("mixed_contracts.wasm"));
    assert_eq!(
        reasons,
        [
            "the component mixes contract versions: it imports both kappa:processor@0.1.0 and \
          kappa:processor@0.2.0 (import `kappa:processor/logging@0.2.0`); build it against \
          one WIT package"
        ]
    );

    let (report, _, _) = check(&built.join("ungranted_import.wasm"));
    assert_eq!(
        report["imports"]["refused"],
        serde_json::json!(["acme:secrets/vault"])
    );
    let reasons = refused(&built.join("ungranted_import.wasm"));
    assert_eq!(
        reasons,
        [
            "the component imports `acme:secrets/vault`, which this host does not grant to \
          plugins: a processor may import only kappa:processor/view and \
          kappa:processor/logging (plus WASI 0.2, linked inert)"
        ]
    );

    let reasons = refused(&built.join("wrong_export_type.wasm"));
    assert_eq!(
        reasons,
        ["export `process` has the wrong type: \
          `func(events: list<event>) -> result<_, string>`, but the world \
          kappa:processor/processor@0.1.0 expects \
          `func(events: list<event>) -> result<_, error>`"]
    );

    // A file that cannot be read is bad usage.
    let out = kappa(&["plugin", "check", "/nonexistent/plugin.wasm"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("/nonexistent/plugin.wasm"));
}

/// The contracts `kappa plugin new --contract` writes, the default first.
const CONTRACTS: [&str; 2] = ["0.2.0", "0.1.0"];
/// Those of a Rust, Python, JavaScript or C starter: the same, the release
/// candidate and 0.3.0.
const ALL_CONTRACTS: [&str; 4] = ["0.2.0", "0.1.0", "0.3.0-rc.1", "0.3.0"];

/// Whether a starter of `contract` keeps a state per partition and has a
/// range reader: 0.3.0-rc.1 and 0.3.0.
fn per_partition(contract: &str) -> bool {
    contract.starts_with("0.3.0")
}

/// Whether a starter of `contract` sets a timer per key: 0.3.0.
fn timed(contract: &str) -> bool {
    contract == "0.3.0"
}

/// The row `deploy_and_count` expects for events without a key.
fn no_key(contract: &str) -> &'static str {
    if per_partition(contract) {
        "(no key)/1"
    } else {
        "(no key)"
    }
}

/// `kappa plugin new NAME --lang LANG --contract C --dir DIR --json` (no
/// `--contract` for the default, the newest): the files written.
fn plugin_new(name: &str, lang: &str, contract: &str, dir: &Path) -> Vec<String> {
    let mut args = vec![
        "plugin",
        "new",
        name,
        "--lang",
        lang,
        "--dir",
        dir.to_str().unwrap(),
        "--json",
    ];
    if contract != CONTRACTS[0] {
        args.extend(["--contract", contract]);
    }
    let out = kappa(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let written: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(written["lang"], lang);
    assert_eq!(written["contract"], contract);
    let files: Vec<String> = written["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let path = Path::new(f.as_str().unwrap());
            assert!(path.is_file(), "{}", path.display());
            path.strip_prefix(dir).unwrap().to_str().unwrap().to_owned()
        })
        .collect();
    // The contract is the one this host speaks, byte for byte.
    assert_eq!(
        std::fs::read_to_string(dir.join("wit/processor.wit")).unwrap(),
        std::fs::read_to_string(repo().join(format!("wit/processor-{contract}/processor.wit")))
            .unwrap()
    );
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(readme.contains(&format!("# {name}")), "{readme}");
    assert!(
        readme.contains(&format!("`kappa:processor@{contract}`")),
        "{readme}"
    );
    files
}

/// Deploys `component` over a topic of keyed and unkeyed events and checks
/// that the view counts the events of each key (those without one under
/// `no_key`: `(no key)`, or `(no key)/1` for a starter of 0.3.0-rc.1, whose
/// rows not under an event key are per partition). With `rebuilt` (another
/// build of the same project, other bytes), checks that it is refused under
/// the deployed version, and builds the same view as a new version.
fn deploy_and_count(component: &Path, name: &str, no_key: &str, rebuilt: Option<&Path>) {
    deploy_and_count_timed(component, name, no_key, rebuilt, false);
}

/// The key of a host row in a scan: 0xff 0xff "kappa/" in hex.
const HOST_ROWS: &str = "0xffff6b617070612f";
/// `/timer/` in hex: in the key of a timer's row.
const TIMER_ROW: &str = "2f74696d65722f";

/// [`deploy_and_count`] of a starter that sets a timer per key (`timed`),
/// as the 0.3.0 starters do: one timer row per counted row, and then
/// [`timers_fire_and_forget_the_quiet_keys`].
fn deploy_and_count_timed(
    component: &Path,
    name: &str,
    no_key: &str,
    rebuilt: Option<&Path>,
    timed: bool,
) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    server.json(&["topic", "create", "events", "--partitions", "3"]);
    let mut lines = String::new();
    for (i, key) in ["a", "b", "a", "c", "a", "b"].iter().enumerate() {
        lines.push_str(&format!(r#"{{"key":"{key}","value":{{"n":{i}}}}}"#));
        lines.push('\n');
    }
    lines.push_str("{\"value\":\"no key here\",\"partition\":1}\n");
    let events = dir.path().join("events.jsonl");
    std::fs::write(&events, lines).unwrap();
    server.json(&["produce", "events", "--file", events.to_str().unwrap()]);
    server.json(&[
        "deploy",
        component.to_str().unwrap(),
        "--name",
        name,
        "--version",
        "0.1.0",
        "--topic",
        "events",
        "--wait",
    ]);
    let v = server.wait_applied(&format!("{name}@0.1.0"));
    assert_eq!(v["state"], "promoted", "{v}");
    // More events after the replay are counted too.
    server.run_stdin(
        &["produce", "events"],
        Some("{\"key\":\"c\",\"value\":1}\n"),
    );
    server.wait_applied(&format!("{name}@0.1.0"));
    // A starter of 0.3.0 sets a timer per key: the host's rows of the shard
    // (keys from 0xff 0xff "kappa/" on, shown in hex) hold them.
    let (host_rows, rows): (Vec<_>, Vec<_>) = server
        .rows(name)
        .into_iter()
        .partition(|(k, _)| k.starts_with(HOST_ROWS));
    let expected: Vec<(String, String)> = [(no_key, "1"), ("a", "3"), ("b", "2"), ("c", "2")]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    assert_eq!(rows, expected, "{name}");
    let timers = host_rows
        .iter()
        .filter(|(k, _)| k.contains(TIMER_ROW))
        .count();
    assert_eq!(timers, if timed { 4 } else { 0 }, "{host_rows:?}");
    if timed {
        timers_fire_and_forget_the_quiet_keys(&server, name);
    }
    if let Some(rebuilt) = rebuilt {
        rebuilt_is_a_new_version(&server, component, rebuilt, name);
    }
    // A configuration it does not take is refused at deploy, with its message.
    let err = server.fails(
        &[
            "deploy",
            component.to_str().unwrap(),
            "--name",
            name,
            "--version",
            "0.2.0",
            "--topic",
            "events",
            "--config",
            "{\"x\":1}",
            "--wait",
        ],
        2,
    );
    assert!(err.contains("takes no configuration"), "{err}");
}

/// An event without a key in each of the 3 partitions, at event time 2100
/// (hours past the others): in each partition it counts under `(no key)/P`
/// and sets that row's timer (moving partition 1's), and the timers of the
/// keys, an hour after their last events, fire and delete their rows.
fn timers_fire_and_forget_the_quiet_keys(server: &Server, name: &str) {
    const YEAR_2100_MS: i64 = 4_102_444_800_000;
    let lines: String = (0..3)
        .map(|p| format!("{{\"value\":\"late\",\"partition\":{p},\"timestamp\":{YEAR_2100_MS}}}\n"))
        .collect();
    server.run_stdin(&["produce", "events"], Some(&lines));
    server.wait_applied(&format!("{name}@0.1.0"));
    let (host_rows, rows): (Vec<_>, Vec<_>) = server
        .rows(name)
        .into_iter()
        .partition(|(k, _)| k.starts_with(HOST_ROWS));
    let expected: Vec<(String, String)> = [
        ("(no key)/0", "1"),
        ("(no key)/1", "2"),
        ("(no key)/2", "1"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    assert_eq!(rows, expected, "{name}");
    let timers = host_rows
        .iter()
        .filter(|(k, _)| k.contains(TIMER_ROW))
        .count();
    assert_eq!(timers, 3, "{host_rows:?}");
}

/// The files a starter writes besides the common ones, per contract.
fn contract_files<'a>(contract: &str, v0_1_0: &[&'a str], v0_2_0: &[&'a str]) -> Vec<&'a str> {
    match contract {
        "0.1.0" => v0_1_0.to_vec(),
        _ => v0_2_0.to_vec(),
    }
}

fn sorted(mut files: Vec<String>) -> Vec<String> {
    files.sort();
    files
}

/// `rebuilt` (the bytes of a rebuild of `deployed`'s project) under the
/// deployed version is refused; `deployed` again is a no-op; `rebuilt` as a
/// new version builds a byte-identical view.
fn rebuilt_is_a_new_version(server: &Server, deployed: &Path, rebuilt: &Path, name: &str) {
    let deploy = |file: &Path, version: &str| {
        let mut args = vec!["deploy", file.to_str().unwrap(), "--name", name];
        args.extend(["--version", version, "--topic", "events", "--wait"]);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let args = deploy(rebuilt, "0.1.0");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = server.fails(&args, 1);
    assert!(err.contains("already deployed with other bytes"), "{err}");
    // Without --wait the answer is the deploy report.
    let args = deploy(deployed, "0.1.0");
    let args: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| *a != "--wait")
        .collect();
    let report = server.json(&args);
    assert_eq!(report["created"], false, "{report}");
    let args = deploy(rebuilt, "0.1.1");
    server.json(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let first = server.json(&["digest", &format!("{name}@0.1.0")]);
    let second = server.json(&["digest", &format!("{name}@0.1.1")]);
    assert_eq!(first["sha256"], second["sha256"], "{first} {second}");
    assert_eq!(first["offsets"], second["offsets"], "{first} {second}");
}

#[test]
fn a_new_rust_project_builds_passes_the_check_and_counts_events() {
    let dir = tempfile::tempdir().unwrap();
    for contract in ALL_CONTRACTS {
        let project = dir.path().join(format!("counter-{contract}"));
        let files = sorted(plugin_new("tally-counter", "rust", contract, &project));
        let mut expected = vec![".gitignore", "Cargo.toml", "README.md"];
        // State per partition, range reads (and, 0.3.0, timers).
        let candidate = contract.starts_with("0.3.0");
        let (own, no_key) = if candidate {
            (
                &["src/columns.rs", "src/lib.rs", "src/range.rs"][..],
                "(no key)/1",
            )
        } else {
            (&["src/columns.rs", "src/lib.rs"][..], "(no key)")
        };
        expected.extend(contract_files(contract, &["src/lib.rs"], own));
        expected.push("wit/processor.wit");
        assert_eq!(files, expected);
        // Outside a Cargo workspace, a project of its own.
        let manifest = std::fs::read_to_string(project.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("\n[workspace]\n"), "{manifest}");

        let release = cargo_build_wasm(&project.join("Cargo.toml"));
        let component = release.join("tally_counter.wasm");
        accepted(&component, contract);
        deploy_and_count_timed(&component, "tally-counter", no_key, None, timed(contract));
    }
    let project = dir.path().join("counter-0.2.0");

    // It refuses to write over a non-empty directory, and says so.
    let out = kappa(&[
        "plugin",
        "new",
        "tally-counter",
        "--lang",
        "rust",
        "--dir",
        project.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("not empty"),
        "{}",
        text(&out.stderr)
    );
    // A bad name or contract writes nothing.
    let bad = dir.path().join("bad");
    for args in [
        &["Bad Name", "--lang", "rust"][..],
        &["good", "--lang", "rust", "--contract", "0.4.0"][..],
    ] {
        let out = kappa(
            &[
                &["plugin", "new"][..],
                args,
                &["--dir", bad.to_str().unwrap()],
            ]
            .concat(),
        );
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!bad.exists());
    }

    // The default directory is ./NAME, and the next steps are printed.
    let out = Command::new(KAPPA)
        .current_dir(dir.path())
        .args(["plugin", "new", "other", "--lang", "rust"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(dir.path().join("other/src/lib.rs").is_file());
    let stdout = text(&out.stdout);
    for step in [
        "(contract 0.2.0)",
        "cargo build --release --target wasm32-wasip2",
        "kappa plugin check target/wasm32-wasip2/release/other.wasm",
        "kappa deploy",
    ] {
        assert!(stdout.contains(step), "{step} missing from {stdout}");
    }
}

/// Two Rust starters created inside a Cargo workspace join it and build
/// together; `--standalone` keeps a third one on its own.
#[test]
fn rust_projects_created_in_a_workspace_join_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("my-plugins");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(
        root.join("Cargo.toml"),
        "[workspace]\nmembers = [\"plugins/*\"]\nresolver = \"3\"\n\n\
         [profile.release]\nopt-level = 3\nlto = true\ncodegen-units = 1\nstrip = true\n\
         panic = \"abort\"\n",
    )
    .unwrap();
    for (name, contract) in [("first-counter", "0.2.0"), ("second-counter", "0.1.0")] {
        let project = root.join("plugins").join(name);
        plugin_new(name, "rust", contract, &project);
        let manifest = std::fs::read_to_string(project.join("Cargo.toml")).unwrap();
        assert!(!manifest.contains("[workspace]"), "{manifest}");
        assert!(!manifest.contains("[profile"), "{manifest}");
        let readme = std::fs::read_to_string(project.join("README.md")).unwrap();
        let crate_name = name.replace('-', "_");
        assert!(
            readme.contains(&format!(
                "kappa plugin check ../../target/wasm32-wasip2/release/{crate_name}.wasm"
            )),
            "{readme}"
        );
    }
    // The JSON report and the next steps name the workspace.
    let out = kappa(&[
        "plugin",
        "new",
        "third",
        "--lang",
        "rust",
        "--dir",
        root.join("plugins/third").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("the project joined the workspace of")
            && stdout.contains("kappa plugin check ../../target/wasm32-wasip2/release/third.wasm"),
        "{stdout}"
    );
    std::fs::remove_dir_all(root.join("plugins/third")).unwrap();
    let alone = root.join("alone");
    let out = kappa(&[
        "plugin",
        "new",
        "alone",
        "--lang",
        "rust",
        "--standalone",
        "--dir",
        alone.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let written: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(written.get("workspace").is_none(), "{written}");
    let manifest = std::fs::read_to_string(alone.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("\n[workspace]\n"), "{manifest}");

    // One build of the workspace builds both members.
    let release = cargo_build_wasm(&root.join("Cargo.toml"));
    accepted(&release.join("first_counter.wasm"), "0.2.0");
    accepted(&release.join("second_counter.wasm"), "0.1.0");
}

/// Where `plugins/build-polyglot.sh` installed the tools, or `None` (after
/// a notice) when it has not run.
fn polyglot_tools() -> Option<PathBuf> {
    if std::env::var_os("KAPPA_POLYGLOT_DIR").is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "KAPPA_POLYGLOT_DIR is not set: run plugins/build-polyglot.sh DIR and set it to DIR"
        );
        eprintln!(
            "notice: building the Python, JavaScript and C starter projects skipped: \
             KAPPA_POLYGLOT_DIR is not set (scripts/test installs the tools with \
             plugins/build-polyglot.sh and sets it)"
        );
        return None;
    }
    let tools = std::env::var_os("KAPPA_TOOLS_DIR").map_or_else(
        || {
            Path::new(&std::env::var_os("HOME").unwrap())
                .join(".cache")
                .join("kappa-tools")
        },
        PathBuf::from,
    );
    Some(tools)
}

fn run_ok(command: &mut Command) -> Output {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?} failed: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

#[test]
fn a_new_python_project_is_written_and_builds_with_componentize_py() {
    let dir = tempfile::tempdir().unwrap();
    let tools = polyglot_tools();
    for contract in ALL_CONTRACTS {
        let project = dir.path().join(format!("py-counter-{contract}"));
        let files = sorted(plugin_new("py-counter", "python", contract, &project));
        let mut expected = vec![".gitignore", "README.md", "app.py", "build.py"];
        expected.extend(contract_files(contract, &[], &["columns.py"]));
        if per_partition(contract) {
            expected.push("ranges.py");
        }
        expected.extend(["requirements.txt", "wit/processor.wit"]);
        assert_eq!(
            files,
            sorted(expected.iter().map(|f| (*f).to_owned()).collect())
        );
        assert_eq!(
            std::fs::read_to_string(project.join("requirements.txt")).unwrap(),
            format!("componentize-py=={COMPONENTIZE_PY_VERSION}\n")
        );
        // The scripts compile; the bytecode goes to a directory of its own.
        let mut compile = Command::new("python3");
        compile
            .env("PYTHONPYCACHEPREFIX", dir.path().join("pycache"))
            .args(["-m", "py_compile"]);
        for file in ["build.py", "app.py", "columns.py", "ranges.py"] {
            if project.join(file).exists() {
                compile.arg(project.join(file));
            }
        }
        run_ok(&mut compile);
        if per_partition(contract) {
            // The range reader pages as the Rust one does, under CPython.
            let out = run_ok(
                Command::new("python3")
                    .env("PYTHONDONTWRITEBYTECODE", "1")
                    .arg(repo().join("tests").join("guest").join("ranges_test.py"))
                    .arg(&project),
            );
            assert_eq!(text(&out.stdout), "ok\n");
        }
        if timed(contract) {
            // The column reader gives each event's topic, under CPython.
            let out = run_ok(
                Command::new("python3")
                    .env("PYTHONDONTWRITEBYTECODE", "1")
                    .arg(
                        repo()
                            .join("tests")
                            .join("guest")
                            .join("columns_topics_test.py"),
                    )
                    .arg(&project),
            );
            assert_eq!(text(&out.stdout), "ok\n");
        }

        let Some(tools) = &tools else {
            continue;
        };
        let componentize_py = tools
            .join(format!("componentize-py-{COMPONENTIZE_PY_VERSION}"))
            .join("bin")
            .join("componentize-py");
        assert!(componentize_py.is_file(), "{}", componentize_py.display());
        let build = |out: &Path| {
            run_ok(
                Command::new("python3")
                    .current_dir(&project)
                    .env("KAPPA_COMPONENTIZE_PY", &componentize_py)
                    .arg("build.py")
                    .arg(out),
            );
            std::fs::read(out).unwrap()
        };
        let component = dir.path().join(format!("py-counter-{contract}.wasm"));
        let bytes = build(&component);
        accepted(&component, contract);
        if contract != CONTRACTS[0] {
            deploy_and_count_timed(
                &component,
                "py-counter",
                no_key(contract),
                None,
                timed(contract),
            );
            continue;
        }
        // The pinned componentize-py does not build the same bytes
        // twice (docs/plugins-python.md): a rebuild is a new version, with the same view.
        let rebuilt = dir.path().join("rebuilt.wasm");
        let again = build(&rebuilt);
        assert!(
            bytes != again,
            "two builds gave the same bytes: update docs/plugins-python.md"
        );
        deploy_and_count(&component, "py-counter", "(no key)", Some(&rebuilt));
    }
}

#[test]
fn a_new_js_project_is_written_and_builds_with_componentize_js() {
    let dir = tempfile::tempdir().unwrap();
    let tools = polyglot_tools();
    for contract in ALL_CONTRACTS {
        let project = dir.path().join(format!("js-counter-{contract}"));
        let files = sorted(plugin_new("js-counter", "js", contract, &project));
        let mut expected = vec![".gitignore", "README.md", "build.mjs", "index.js"];
        expected.extend(contract_files(contract, &[], &["columns.js"]));
        if per_partition(contract) {
            expected.push("range.js");
        }
        expected.extend(["package.json", "wit/processor.wit"]);
        assert_eq!(
            files,
            sorted(expected.iter().map(|f| (*f).to_owned()).collect())
        );
        let package: Value =
            serde_json::from_str(&std::fs::read_to_string(project.join("package.json")).unwrap())
                .unwrap();
        assert_eq!(package["name"], "js-counter");
        // What the README's `npm run build` and `npm run build:aot` run.
        assert_eq!(package["scripts"]["build"], "node build.mjs");
        assert_eq!(package["scripts"]["build:aot"], "node build.mjs --aot");
        assert_eq!(
            package["devDependencies"]["@bytecodealliance/componentize-js"],
            COMPONENTIZE_JS_VERSION
        );
        for file in ["build.mjs", "index.js", "columns.js", "range.js"] {
            if project.join(file).exists() {
                run_ok(Command::new("node").arg("--check").arg(project.join(file)));
            }
        }
        if per_partition(contract) {
            // The range reader pages as the Rust one does, under node.
            let out = run_ok(
                Command::new("node")
                    .arg(repo().join("tests").join("guest").join("range_test.mjs"))
                    .arg(project.join("range.js")),
            );
            assert_eq!(text(&out.stdout), "ok\n");
        }
        if timed(contract) {
            // The column reader gives each event's topic, under node.
            let out = run_ok(
                Command::new("node")
                    .arg(
                        repo()
                            .join("tests")
                            .join("guest")
                            .join("columns_topics_test.mjs"),
                    )
                    .arg(project.join("columns.js")),
            );
            assert_eq!(text(&out.stdout), "ok\n");
        }

        let Some(tools) = &tools else {
            continue;
        };
        let componentize_js = tools
            .join(format!("componentize-js-{COMPONENTIZE_JS_VERSION}"))
            .join("node_modules")
            .join("@bytecodealliance")
            .join("componentize-js");
        assert!(componentize_js.is_dir(), "{}", componentize_js.display());
        let weval = tools
            .join(format!("weval-{WEVAL_VERSION}"))
            .join("bin")
            .join("weval");
        assert!(weval.is_file(), "{}", weval.display());
        // The starter of 0.3.0 is built ahead of time (`--aot`, with the
        // weval in WEVAL_BIN), the others as `npm run build` does.
        let aot = contract == "0.3.0";
        let build = |out: &Path| {
            let mut node = Command::new("node");
            node.current_dir(&project)
                .env("KAPPA_COMPONENTIZE_JS", &componentize_js)
                .arg("build.mjs");
            if aot {
                node.env("WEVAL_BIN", &weval).arg("--aot");
            }
            let printed = text(&run_ok(node.arg(out)).stdout);
            assert_eq!(printed.contains("compiled ahead of time"), aot, "{printed}");
            let bytes = std::fs::read(out).unwrap();
            // weval leaves this mark in the components it has processed.
            let marked = bytes
                .windows(WEVALED.len())
                .any(|w| w == WEVALED.as_bytes());
            assert_eq!(marked, aot, "{} processed by weval", out.display());
            bytes
        };
        let component = dir.path().join(format!("js-counter-{contract}.wasm"));
        let bytes = build(&component);
        accepted(&component, contract);
        if contract != CONTRACTS[0] {
            deploy_and_count_timed(
                &component,
                "js-counter",
                no_key(contract),
                None,
                timed(contract),
            );
            continue;
        }
        // The pinned componentize-js does not build the same bytes
        // twice (docs/plugins-js.md): a rebuild is a new version, with the same view.
        let rebuilt = dir.path().join("rebuilt.wasm");
        let again = build(&rebuilt);
        assert!(
            bytes != again,
            "two builds gave the same bytes: update docs/plugins-js.md"
        );
        deploy_and_count(&component, "js-counter", "(no key)", Some(&rebuilt));
    }
}

#[test]
fn a_new_c_project_is_written_and_builds_with_clang_and_wit_bindgen() {
    let dir = tempfile::tempdir().unwrap();
    let tools = polyglot_tools();
    for contract in ALL_CONTRACTS {
        let project = dir.path().join(format!("c-counter-{contract}"));
        let files = sorted(plugin_new("c-counter", "c", contract, &project));
        let mut expected = vec![".gitignore", "README.md", "build.sh", "plugin.c"];
        expected.extend(contract_files(contract, &[], &["columns.c", "columns.h"]));
        if per_partition(contract) {
            expected.extend(["range.c", "range.h"]);
        }
        expected.push("wit/processor.wit");
        assert_eq!(
            files,
            sorted(expected.iter().map(|f| (*f).to_owned()).collect())
        );
        // The README gives the build command, and the script is valid shell.
        let readme = std::fs::read_to_string(project.join("README.md")).unwrap();
        assert!(readme.contains("sh build.sh"), "{readme}");
        assert!(
            readme.contains(&format!("wit-bindgen-cli@{WIT_BINDGEN_VERSION}")),
            "{readme}"
        );
        run_ok(Command::new("sh").arg("-n").arg(project.join("build.sh")));

        let Some(tools) = &tools else {
            continue;
        };
        let wit_bindgen = tools
            .join(format!("wit-bindgen-cli-{WIT_BINDGEN_VERSION}"))
            .join("bin")
            .join("wit-bindgen");
        assert!(wit_bindgen.is_file(), "{}", wit_bindgen.display());
        // The documented command, run from the project, with the pinned tool.
        run_ok(
            Command::new("sh")
                .current_dir(&project)
                .env("WIT_BINDGEN", &wit_bindgen)
                .arg("build.sh"),
        );
        let component = project.join("c-counter.wasm");
        accepted(&component, contract);
        if timed(contract) {
            // The names docs/plugins-c.md gives for timers, `fire` and topics.
            let header = std::fs::read_to_string(project.join("bindings/processor.h")).unwrap();
            for declaration in [
                "extern void kappa_processor_timers_set(uint32_t event, processor_list_u8_t *key, \
                 int64_t at);",
                "extern void kappa_processor_timers_cancel(processor_list_u8_t *key);",
                "extern bool kappa_processor_timers_get(processor_list_u8_t *key, int64_t *ret);",
                "bool exports_processor_fire(uint32_t partition, int64_t time, \
                 processor_list_timer_t *fired, processor_error_t *err);",
                "void processor_list_timer_free(processor_list_timer_t *ptr);",
                "processor_list_u32_t   topics;",
                "uint32_t   topic;",
                "typedef kappa_processor_types_timer_t processor_timer_t;",
            ] {
                assert!(
                    header.contains(declaration),
                    "{declaration} not in processor.h"
                );
            }
        }
        if contract != "0.1.0" {
            // The reader of 0.3.0 gives each event's topic, and says so.
            let expected = if timed(contract) {
                "ok (topics)\n"
            } else {
                "ok\n"
            };
            passes_native_test(&project, "columns", dir.path(), expected);
        }
        if per_partition(contract) {
            passes_native_test(&project, "range", dir.path(), "ok\n");
        }
        deploy_and_count_timed(
            &component,
            "c-counter",
            no_key(contract),
            None,
            timed(contract),
        );
    }
}

/// Compiles `READER.c` of the C starter in `project` (after its build wrote
/// the bindings) natively with `tests/guest/READER_test.c`, and runs that:
/// for `columns`, events with and without keys, headers, and malformed
/// batches (and, for 0.3.0, each event's topic); for `range`, the pages of a
/// range over a view of its own. It must print `expected`.
fn passes_native_test(project: &Path, reader: &str, scratch: &Path, expected: &str) {
    let program = scratch.join(format!("{reader}_test"));
    run_ok(
        Command::new("clang-14")
            .args(["-Wall", "-Wextra", "-Werror", "-I"])
            .arg(project)
            .arg("-I")
            .arg(project.join("bindings"))
            .arg("-o")
            .arg(&program)
            .arg(
                repo()
                    .join("tests")
                    .join("guest")
                    .join(format!("{reader}_test.c")),
            )
            .arg(project.join(format!("{reader}.c"))),
    );
    let out = run_ok(&mut Command::new(&program));
    assert_eq!(text(&out.stdout), expected, "{reader}_test");
}
