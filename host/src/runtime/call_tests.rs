//! Tests of the call path: each way a call fails is reported with its kind,
//! run against the `faulty` example plugin, which misbehaves on demand.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::time::Duration;

use super::*;
use crate::registry::Settings;
use crate::runtime::Runtime;
use crate::store::View;

#[test]
fn guest_strings_are_cut_to_the_limit() {
    let long = "é".repeat(MAX_GUEST_MESSAGE_BYTES);
    let described = describe_guest_error(&GuestError::InvalidEvent {
        topic: None,
        offset: 3,
        message: long.clone(),
    });
    assert!(
        described.len() < MAX_GUEST_MESSAGE_BYTES + 100,
        "{}",
        described.len()
    );
    assert!(described.ends_with(&format!("(cut; {} bytes in all)", long.len())));
    assert!(described.starts_with("invalid event at offset 3: éé"));
    assert_eq!(cut("short"), "short");
    let exact = "x".repeat(MAX_GUEST_MESSAGE_BYTES);
    assert_eq!(cut(&exact), exact.as_str());
}

#[test]
fn host_errors_are_classified_by_their_type() {
    let limit = wasmtime::Error::from(HostTrap::new(FailureKind::WriteLimit, "too big".into()));
    assert_eq!(classify(&limit), FailureKind::WriteLimit);
    let wrapped = limit.context("wasm backtrace");
    assert_eq!(classify(&wrapped), FailureKind::WriteLimit);
    let full = wasmtime::Error::from(ResourceTableError::Full);
    assert_eq!(classify(&full), FailureKind::HandleLimit);
    assert_eq!(
        classify(&wasmtime::Error::from(Trap::Interrupt)),
        FailureKind::TimeLimit
    );
    assert_eq!(
        classify(&wasmtime::Error::from(Trap::UnreachableCodeReached)),
        FailureKind::Trap
    );
    assert_eq!(
        classify(&wasmtime::format_err!("something else")),
        FailureKind::Trap
    );
    assert!(FailureKind::MemoryLimit.is_limit() && !FailureKind::GuestError.is_limit());
    assert_eq!(CallFailure::host("x").to_string(), "x");
}

/// Runs the faulty plugin in `mode` (with `extra` configuration) on one
/// event that triggers it, under a 64 MiB memory limit and a time limit of
/// 200 ms for `loop` (the default, 10 s, for the rest, so that a busy machine
/// cannot make a memory blow-up run out of time first), and returns how the
/// call failed.
fn faulty(runtime: &Runtime, view: &View, mode: &str, extra: &str) -> CallFailure {
    let plugin = runtime
        .load(kappa_plugins::FAULTY.bytes, "faulty-call-tests")
        .unwrap();
    let defaults = Settings::default();
    let settings = Settings {
        batch_timeout_ms: if mode == "loop" {
            200
        } else {
            defaults.batch_timeout_ms
        },
        config: format!(r#"{{"mode": "{mode}"{extra}}}"#),
        memory_limit_bytes: 64 << 20,
        ..defaults
    };
    let mut instance = match runtime.instantiate(&plugin, "faulty@1.0.0", &settings) {
        Ok(instance) => instance,
        Err(failure) => return failure,
    };
    let event = Record {
        partition: 0,
        offset: 5,
        timestamp: 0,
        key: Some(b"k".to_vec()),
        value: b"boom".to_vec(),
        headers: Vec::new(),
    };
    instance
        .process(view.snapshot().unwrap(), vec![event])
        .expect_err(mode)
}

#[test]
fn each_failure_says_which_limit_or_fault_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(&dir.path().join("compiled")).unwrap();
    let view = View::open(&dir.path().join("view.redb"), Duration::ZERO).unwrap();
    let cases: &[(&str, &str, FailureKind, &str)] = &[
        (
            "loop",
            "",
            FailureKind::TimeLimit,
            "exceeded the time limit of 200 ms",
        ),
        (
            "grow-memory",
            "",
            FailureKind::MemoryLimit,
            "exceeded its memory limit",
        ),
        (
            "tiny-writes",
            "",
            FailureKind::MemoryLimit,
            "pending view writes",
        ),
        (
            "put",
            r#", "key_bytes": 70000"#,
            FailureKind::WriteLimit,
            "view key of 70000 bytes",
        ),
        ("trap", "", FailureKind::Trap, "poison event at offset 5"),
        (
            "error",
            "",
            FailureKind::GuestError,
            "returned an error: invalid event at offset 5",
        ),
        ("init-panic", "", FailureKind::Trap, "trapped in init"),
        (
            "no-such-mode",
            "",
            FailureKind::GuestError,
            "init refused: invalid configuration",
        ),
    ];
    for (mode, extra, kind, text) in cases {
        let failure = faulty(&runtime, &view, mode, extra);
        assert_eq!(failure.kind, *kind, "{mode}: {failure}");
        assert!(failure.message.contains(text), "{mode}: {failure}");
        assert_eq!(failure.to_string(), failure.message);
    }
    assert_eq!(
        faulty(&runtime, &view, "error", "").offset,
        Some(5),
        "an invalid-event error names its event"
    );
}

/// An `invalid-event` of contract 0.3.0 names the event's topic as well as
/// its offset: payments v3 refusing a limit (topic 1) at an offset that is
/// also a payment's (topic 0) of the same batch.
#[test]
fn an_invalid_event_of_contract_0_3_0_names_its_topic() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(&dir.path().join("compiled")).unwrap();
    let view = View::open(&dir.path().join("view.redb"), Duration::ZERO).unwrap();
    let plugin = runtime
        .load(kappa_plugins::PAYMENTS_V3.bytes, "payments-v3-call-tests")
        .unwrap();
    let mut instance = runtime
        .instantiate(&plugin, "payments@3.0.0", &Settings::default())
        .unwrap();
    let event = |offset: u64, value: &str| Record {
        partition: 0,
        offset,
        timestamp: 1_000,
        key: Some(b"acct-1".to_vec()),
        value: value.as_bytes().to_vec(),
        headers: Vec::new(),
    };
    let payment = r#"{"txn":"t","account":"acct-1","amount_cents":5,"merchant":"m"}"#;
    let events = vec![event(0, payment), event(1, payment), event(1, "[]")];
    let failure = instance
        .process_topics(view.snapshot().unwrap(), events, &[0, 0, 1])
        .expect_err("a malformed limit");
    assert_eq!(
        (failure.kind, failure.topic, failure.offset),
        (FailureKind::GuestError, Some(1), Some(1)),
        "{failure}"
    );
    // Contracts before 0.3.0 name no topic.
    let older = faulty(&runtime, &view, "error", "");
    assert_eq!((older.offset, older.topic), (Some(5), None), "{older}");
}
