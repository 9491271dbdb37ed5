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

/// Checks `file` expecting it to be accepted, returning the report.
fn accepted(file: &Path) -> Value {
    let (report, code, stderr) = check(file);
    assert_eq!(
        code,
        0,
        "{} should be valid: {report} {stderr}",
        file.display()
    );
    assert_eq!(report["valid"], true, "{report}");
    assert_eq!(report["reasons"], serde_json::json!([]));
    assert_eq!(report["contract"], "0.1.0");
    // Language runtimes may export more (componentize-py does), never less.
    let exports: Vec<(&str, &str)> = report["exports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["type"].as_str().unwrap()))
        .collect();
    for export in [
        ("init", "func(config: string) -> result<_, error>"),
        ("process", "func(events: list<event>) -> result<_, error>"),
    ] {
        assert!(exports.contains(&export), "{export:?} not in {report}");
    }
    let kappa_imports = report["imports"]["kappa"].as_array().unwrap();
    assert!(
        kappa_imports.contains(&Value::from("kappa:processor/view@0.1.0")),
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
        "kappa:processor@0.1.0",
        "process: func(events: list<event>) -> result<_, error>",
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
        let report = accepted(Path::new(plugin.path));
        assert!(report["compile_ms"].is_u64(), "{report}");
    }
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
        ) && reasons[0]
            .ends_with("but this host supports only kappa:processor@0.1.0, kappa:processor@0.2.0"),
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

/// `kappa plugin new NAME --lang LANG --dir DIR --json`: the files written.
fn plugin_new(name: &str, lang: &str, dir: &Path) -> Vec<String> {
    let out = kappa(&[
        "plugin",
        "new",
        name,
        "--lang",
        lang,
        "--dir",
        dir.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let written: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(written["lang"], lang);
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
        std::fs::read_to_string(repo().join("wit/processor-0.1.0/processor.wit")).unwrap()
    );
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(readme.contains(&format!("# {name}")), "{readme}");
    files
}

/// Deploys `component` over a topic of keyed and unkeyed events and checks
/// that the view counts the events of each key.
fn deploy_and_count(component: &Path, name: &str) {
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
    let rows = server.rows(name);
    let expected: Vec<(String, String)> = [("(no key)", "1"), ("a", "3"), ("b", "2"), ("c", "2")]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    assert_eq!(rows.into_iter().collect::<Vec<_>>(), expected, "{name}");
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

#[test]
fn a_new_rust_project_builds_passes_the_check_and_counts_events() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("counter");
    let mut files = plugin_new("tally-counter", "rust", &project);
    files.sort();
    assert_eq!(
        files,
        [
            ".gitignore",
            "Cargo.toml",
            "README.md",
            "src/lib.rs",
            "wit/processor.wit"
        ]
    );

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
    // A bad name writes nothing.
    let bad = dir.path().join("bad");
    let out = kappa(&[
        "plugin",
        "new",
        "Bad Name",
        "--lang",
        "rust",
        "--dir",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!bad.exists());

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
        "cargo build --release --target wasm32-wasip2",
        "kappa plugin check target/wasm32-wasip2/release/other.wasm",
        "kappa deploy",
    ] {
        assert!(stdout.contains(step), "{step} missing from {stdout}");
    }

    let release = cargo_build_wasm(&project.join("Cargo.toml"));
    let component = release.join("tally_counter.wasm");
    accepted(&component);
    deploy_and_count(&component, "tally-counter");
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
    let project = dir.path().join("py-counter");
    let mut files = plugin_new("py-counter", "python", &project);
    files.sort();
    assert_eq!(
        files,
        [
            ".gitignore",
            "README.md",
            "app.py",
            "build.py",
            "requirements.txt",
            "wit/processor.wit"
        ]
    );
    assert_eq!(
        std::fs::read_to_string(project.join("requirements.txt")).unwrap(),
        format!("componentize-py=={COMPONENTIZE_PY_VERSION}\n")
    );
    // Both scripts compile; the bytecode goes to a directory of its own.
    run_ok(
        Command::new("python3")
            .env("PYTHONPYCACHEPREFIX", dir.path().join("pycache"))
            .args(["-m", "py_compile"])
            .arg(project.join("build.py"))
            .arg(project.join("app.py")),
    );

    let Some(tools) = polyglot_tools() else {
        return;
    };
    let componentize_py = tools
        .join(format!("componentize-py-{COMPONENTIZE_PY_VERSION}"))
        .join("bin")
        .join("componentize-py");
    assert!(componentize_py.is_file(), "{}", componentize_py.display());
    let component = dir.path().join("py-counter.wasm");
    run_ok(
        Command::new("python3")
            .current_dir(&project)
            .env("KAPPA_COMPONENTIZE_PY", &componentize_py)
            .arg("build.py")
            .arg(&component),
    );
    accepted(&component);
    deploy_and_count(&component, "py-counter");
}

#[test]
fn a_new_js_project_is_written_and_builds_with_componentize_js() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("js-counter");
    let mut files = plugin_new("js-counter", "js", &project);
    files.sort();
    assert_eq!(
        files,
        [
            ".gitignore",
            "README.md",
            "build.mjs",
            "index.js",
            "package.json",
            "wit/processor.wit"
        ]
    );
    let package: Value =
        serde_json::from_str(&std::fs::read_to_string(project.join("package.json")).unwrap())
            .unwrap();
    assert_eq!(package["name"], "js-counter");
    assert_eq!(
        package["devDependencies"]["@bytecodealliance/componentize-js"],
        COMPONENTIZE_JS_VERSION
    );
    for file in ["build.mjs", "index.js"] {
        run_ok(Command::new("node").arg("--check").arg(project.join(file)));
    }

    let Some(tools) = polyglot_tools() else {
        return;
    };
    let componentize_js = tools
        .join(format!("componentize-js-{COMPONENTIZE_JS_VERSION}"))
        .join("node_modules")
        .join("@bytecodealliance")
        .join("componentize-js");
    assert!(componentize_js.is_dir(), "{}", componentize_js.display());
    let component = dir.path().join("js-counter.wasm");
    run_ok(
        Command::new("node")
            .current_dir(&project)
            .env("KAPPA_COMPONENTIZE_JS", &componentize_js)
            .arg("build.mjs")
            .arg(&component),
    );
    accepted(&component);
    deploy_and_count(&component, "js-counter");
}

#[test]
fn a_new_c_project_is_written_and_builds_with_clang_and_wit_bindgen() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("c-counter");
    let mut files = plugin_new("c-counter", "c", &project);
    files.sort();
    assert_eq!(
        files,
        [
            ".gitignore",
            "README.md",
            "build.sh",
            "plugin.c",
            "wit/processor.wit"
        ]
    );
    // The README gives the build command, and the script is valid shell.
    let readme = std::fs::read_to_string(project.join("README.md")).unwrap();
    assert!(readme.contains("sh build.sh"), "{readme}");
    assert!(
        readme.contains(&format!("wit-bindgen-cli@{WIT_BINDGEN_VERSION}")),
        "{readme}"
    );
    run_ok(Command::new("sh").arg("-n").arg(project.join("build.sh")));

    let Some(tools) = polyglot_tools() else {
        return;
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
    accepted(&component);
    deploy_and_count(&component, "c-counter");
}
