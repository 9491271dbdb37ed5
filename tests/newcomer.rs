//! What a new user meets in a first hour: the environment variables of
//! `kappa serve`, a deploy repeated with other settings, a retired version in
//! status, rollback after a retire, the exit codes of bad input, and
//! `kappa consume` stopping at its limit.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use support::*;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Creates topic `payments` (2 partitions) holding `n` payments.
fn with_payments(server: &Server, dir: &std::path::Path, n: usize) {
    server.json(&["topic", "create", "payments", "--partitions", "2"]);
    let mut generator = kappa::workload::PaymentGenerator::new(5, 20, 1_767_225_600_000);
    let file = dir.join("payments.jsonl");
    write_jsonl(&file, &generator.take(n));
    server.json(&["produce", "payments", "--file", file.to_str().unwrap()]);
}

#[test]
fn kappa_log_sets_the_log_level_of_serve_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    // As docs/operating.md recommends: no --log-level, the level from KAPPA_LOG.
    let mut child = Command::new(KAPPA)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("KAPPA_LOG", "debug")
        .env_remove("KAPPA_LOG_BACKEND")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(line.starts_with("listening on http://"), "{line:?}");

    // The backend has a variable of its own.
    let out = Command::new(KAPPA)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("KAPPA_LOG", "debug")
        .env("KAPPA_LOG_BACKEND", "kafka")
        .env_remove("KAPPA_KAFKA_BOOTSTRAP")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--log kafka needs --kafka-bootstrap"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn deploying_a_version_again_with_other_settings_is_refused_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    with_payments(&server, dir.path(), 50);
    server.json(&["topic", "create", "other", "--partitions", "1"]);
    let starter = kappa_plugins::STARTER.path;
    let deploy = |extra: &[&str]| {
        let mut args = vec!["deploy", starter, "--name", "counts", "--version", "1.0.0"];
        if !extra.contains(&"--topic") {
            args.extend(["--topic", "payments"]);
        }
        args.extend(extra);
        server.run(&args)
    };
    assert!(deploy(&["--wait"]).status.success());

    // The same bytes and settings: nothing changed, and it says so.
    let out = deploy(&[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("nothing changed"));

    for (extra, named) in [
        (&["--config", "x"][..], "--config \"\" (asked: \"x\")"),
        (&["--on-error", "skip"][..], "--on-error stop (asked: skip)"),
        (
            &["--auto-promote"][..],
            "--auto-promote false (asked: true)",
        ),
        (&["--topic", "other"][..], "--topic payments (asked: other)"),
        (
            &["--memory-limit-mb", "64"][..],
            "--memory-limit-mb 512 (asked: 64)",
        ),
    ] {
        let out = deploy(extra);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {err}");
        assert!(err.contains("other settings"), "{extra:?}: {err}");
        assert!(err.contains(named), "{extra:?}: {err}");
    }
    // Several at once are all named; and nothing was changed.
    let err = text(&deploy(&["--config", "x", "--on-error", "skip"]).stderr);
    assert!(
        err.contains("--config") && err.contains("--on-error"),
        "{err}"
    );
    let v = server.version("counts@1.0.0");
    assert_eq!(v["settings"]["config"], "");
    assert_eq!(v["settings"]["on_error"], "stop");
}

#[test]
fn a_retired_version_shows_as_retired_and_rollback_says_why_it_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    with_payments(&server, dir.path(), 400);
    server.deploy_payments(kappa_plugins::PAYMENTS_V1.path, "1.0.0", &["--wait"]);
    server.deploy_payments(kappa_plugins::PAYMENTS_V2.path, "2.0.0", &["--wait"]);
    server.json(&["promote", "payments@2.0.0"]);
    server.json(&["rollback", "payments"]);
    server.json(&["retire", "payments@2.0.0"]);

    // JSON: no lag, no progress, never caught up.
    let v = server.version("payments@2.0.0");
    assert_eq!(v["state"], "retired");
    assert!(v["lag"].is_null(), "{v}");
    assert!(v["progress"].is_null(), "{v}");
    assert_eq!(v["caught_up"], false, "{v}");
    assert_eq!(v["applied_offsets"], serde_json::json!([]), "{v}");

    // The table: dashes where the numbers were.
    let table = text(&server.run(&["status"]).stdout);
    let line = table
        .lines()
        .find(|l| l.trim_start().starts_with("2.0.0"))
        .unwrap();
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&cells[..5], ["2.0.0", "retired", "-", "-", "-"], "{table}");
    assert!(!line.contains('%'), "{table}");

    // Plain `status --watch` prints the same table.
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
    let watched = loop {
        let l = lines.next().unwrap().unwrap();
        if l.trim_start().starts_with("2.0.0") {
            break l;
        }
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(watched, line);

    // 2.0.0 was promoted before 1.0.0: a rollback says it was retired.
    let err = server.fails(&["rollback", "payments"], 1);
    assert!(err.contains("payments@2.0.0"), "{err}");
    assert!(err.contains("was retired"), "{err}");
    assert!(!err.contains("only one ever promoted"), "{err}");
}

#[test]
fn bad_input_exits_2_and_a_refusal_in_the_current_state_exits_1() {
    let help = Command::new(KAPPA).arg("--help").output().unwrap();
    let help = text(&help.stdout);
    assert!(help.contains("Exit codes:"), "{help}");
    assert!(help.contains("2    bad usage or bad input"), "{help}");

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    with_payments(&server, dir.path(), 30);
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "hello").unwrap();
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let deploy = |file: &std::path::Path, name: &str| {
        vec![
            "deploy".to_owned(),
            file.to_str().unwrap().to_owned(),
            "--name".to_owned(),
            name.to_owned(),
            "--version".to_owned(),
            "1.0.0".to_owned(),
            "--topic".to_owned(),
            "payments".to_owned(),
        ]
    };
    let starter = std::path::Path::new(kappa_plugins::STARTER.path);
    for args in [deploy(starter, "counts"), deploy(starter, "other")] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        server.json(&args);
    }
    let bad: Vec<(Vec<String>, &str)> = vec![
        (deploy(&notes, "p"), "not WebAssembly"),
        (deploy(&core, "p"), "not a component"),
        (
            ["topic", "create", "bad/name"].map(str::to_owned).to_vec(),
            "bad/name",
        ),
        (
            ["topic", "create", "zero", "--partitions", "0"]
                .map(str::to_owned)
                .to_vec(),
            "partitions",
        ),
        (
            ["consume", "payments", "--partition", "9"]
                .map(str::to_owned)
                .to_vec(),
            "9",
        ),
        (
            ["diff", "counts@1.0.0", "other@1.0.0"]
                .map(str::to_owned)
                .to_vec(),
            "different processors",
        ),
        (["get", "ghost", "k"].map(str::to_owned).to_vec(), "ghost"),
        (
            ["promote", "counts@9.0.0"].map(str::to_owned).to_vec(),
            "no version",
        ),
        (
            ["scan", "counts", "--limit", "0"]
                .map(str::to_owned)
                .to_vec(),
            "--limit",
        ),
    ];
    for (args, says) in &bad {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = server.fails(&args, 2);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // Refused in the current state: exit 1.
    assert!(
        server
            .fails(&["retire", "counts@1.0.0"], 1)
            .contains("promoted version")
    );
    // A key that is not there: exit 1.
    server.fails(&["get", "counts", "no-such-key"], 1);
}

#[test]
fn consume_says_when_it_stopped_at_its_limit_and_how_to_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    server.json(&["topic", "create", "events", "--partitions", "1"]);
    let input: String = (0..7)
        .map(|i| format!("{{\"key\":\"k\",\"value\":{i}}}\n"))
        .collect();
    assert!(
        server
            .run_stdin(&["produce", "events"], Some(&input))
            .status
            .success()
    );
    let out = server.run(&["consume", "events", "--limit", "5"]);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout).lines().count(), 5);
    let err = text(&out.stderr);
    assert!(err.contains("--from 5"), "{err}");
    assert!(err.contains("up to offset 6"), "{err}");

    // The rest, and then nothing more to say.
    let out = server.run(&["consume", "events", "--from", "5", "--limit", "5"]);
    assert_eq!(text(&out.stdout).lines().count(), 2);
    assert_eq!(text(&out.stderr), "");
    let out = server.run(&["consume", "events", "--limit", "7"]);
    assert_eq!(text(&out.stdout).lines().count(), 7);
    assert_eq!(text(&out.stderr), "");
}

#[test]
fn help_addresses_and_messages_say_things_once_and_plainly() {
    let kappa = |args: &[&str]| Command::new(KAPPA).args(args).output().unwrap();

    // Subcommand help: global options under their own heading, defaults shown.
    let help = text(&kappa(&["deploy", "--help"]).stdout);
    let global = help.find("Global options:").expect(&help);
    let own = &help[..global];
    assert!(own.contains("--topic"), "{help}");
    assert!(!own.contains("--server"), "{help}");
    assert!(help[global..].contains("--server"), "{help}");
    assert!(own.contains("[default: 10000]"), "{help}");
    assert!(own.contains("[default: 512]"), "{help}");
    assert!(help.contains("Exit codes:"), "{help}");
    // `plugin examples` names every plugin it writes.
    let help = text(&kappa(&["plugin", "examples", "--help"]).stdout);
    for plugin in kappa_plugins::ALL {
        assert!(help.contains(plugin.name), "{} not in {help}", plugin.name);
    }

    // An address without a scheme means http://.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let bare = server.url.trim_start_matches("http://");
    let out = kappa(&["topic", "list", "--server", bare]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = kappa(&["topic", "list", "--server", "http://"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("HOST:PORT"),
        "{}",
        text(&out.stderr)
    );

    // A refused configuration says "invalid configuration" once.
    server.json(&["topic", "create", "events", "--partitions", "1"]);
    let err = server.fails(
        &[
            "deploy",
            kappa_plugins::PAYMENTS_V1.path,
            "--name",
            "p",
            "--version",
            "1.0.0",
            "--topic",
            "events",
            "--config",
            r#"{"large_cents":"many"}"#,
        ],
        2,
    );
    assert_eq!(err.matches("invalid config").count(), 1, "{err}");

    // A malformed line is placed once, in lines.
    let out = server.run_stdin(
        &["produce", "events"],
        Some("{\"value\":1}\n\n{\"value\":1,,}\n"),
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("line 3") && err.contains("column"), "{err}");
    assert!(!err.contains("line 1"), "{err}");

    // `plugin check` on a bad file gives its reason once.
    let bad = dir.path().join("bad.wasm");
    std::fs::write(&bad, "hello").unwrap();
    let out = kappa(&["plugin", "check", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(stdout.contains("not WebAssembly"), "{stdout}");
    assert!(!stderr.contains("not WebAssembly"), "{stderr}");
    assert!(stderr.contains("not a valid plugin"), "{stderr}");
}
