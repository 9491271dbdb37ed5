//! The replay benchmark (`benches/replay/`) at tiny sizes, so that it
//! cannot rot: every section runs, prints finite figures with their
//! baselines, and every way of computing a view (native rules, the Wasm
//! plugin in the benchmark's loop, the host's own worker, one thread per
//! partition) gives the byte-identical view. It asserts nothing about speed.
//! The key cardinality section runs at a few thousand keys.

#![allow(clippy::unwrap_used)]

#[path = "../benches/replay/main.rs"]
#[allow(dead_code)]
mod replay;

#[test]
fn every_section_runs_and_views_match_the_native_baseline() {
    let options = replay::Options {
        events: 3_000,
        polyglot_events: 300,
        keys: 100,
        runs: 1,
        polyglot: None,
        live_rate: 2_000,
        live_seconds: 0.3,
        ingest_events: 2_000,
        memory_versions: 1,
        batch_sweep: vec![256],
        card_keys: vec![1_000, 3_000],
        card_events: 3_000,
        zipf_keys: 3_000,
        card_runs: 1,
        ..replay::Options::quick()
    };
    // `run` panics if two views differ.
    let report = replay::run(&options);
    let ids: Vec<u8> = report.sections.iter().map(|s| s.id).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert!(report.machine.contains("cores"), "{}", report.machine);
    for section in &report.sections {
        assert!(section.figures.len() >= 2, "{section:?}");
        // The first figure of each section is its baseline (memory growth
        // may be too small to divide by at these sizes: then no ratio).
        let baseline = section.figures[0].ratio;
        if section.id == 7 {
            assert!(matches!(baseline, Some(1.0) | None), "{section:?}");
        } else {
            assert_eq!(baseline, Some(1.0), "{section:?}");
        }
        for f in &section.figures {
            assert!(f.value.is_finite() && f.value >= 0.0, "{f:?}");
            assert!(f.ratio.is_none_or(f64::is_finite), "{f:?}");
        }
    }
    for id in [1, 2, 3] {
        let section = &report.sections[id - 1];
        assert!(
            section
                .notes
                .iter()
                .any(|n| n.starts_with("views identical")),
            "{section:?}"
        );
        for f in &section.figures {
            let ratio = f.ratio.unwrap();
            assert!(ratio.is_finite() && ratio > 0.0, "{f:?}");
        }
    }
    // Key cardinality: for each of the 3 mixes (1 k and 3 k keys, skewed),
    // events/s, events per CPU-second, bytes written per event, the view's
    // size and its row cache, native and Wasm, and Wasm's events/s without
    // the row cache, each native view identical to the Wasm ones; for each
    // mix after the first, native and Wasm, its rate over the first mix's
    // replayed beside each of its runs.
    let cardinality = &report.sections[7];
    assert_eq!(
        cardinality.figures.len(),
        3 * 5 * 2 + 3 + 2 * 2,
        "{cardinality:?}"
    );
    let paired: Vec<_> = cardinality
        .figures
        .iter()
        .filter(|f| f.name.ends_with("beside each run"))
        .collect();
    assert_eq!(paired.len(), 4, "{cardinality:?}");
    let identical = cardinality
        .notes
        .iter()
        .filter(|n| n.starts_with("views identical"))
        .count();
    assert_eq!(identical, 3, "{cardinality:?}");
    for f in &cardinality.figures {
        assert!(f.value > 0.0, "{f:?}");
        assert!(f.ratio.is_some_and(|r| r > 0.0), "{f:?}");
    }
    // Every produce call of the latency section was seen applied.
    let latency = &report.sections[3];
    assert!(
        latency
            .figures
            .iter()
            .any(|f| f.name.starts_with("p99") && f.unit == "ms")
    );
}

/// `--view-write-buffer-mb 0`: every view the benchmark writes, its own
/// replays' and the product worker's, commits each batch as its own
/// transaction, and all of them still give the same view.
#[test]
fn section_1_without_a_view_write_buffer_gives_the_same_views() {
    let options = replay::Options {
        events: 3_000,
        keys: 100,
        runs: 1,
        polyglot: None,
        batch_sweep: vec![256],
        sections: vec![1],
        view_write_buffer_bytes: 0,
        ..replay::Options::quick()
    };
    let report = replay::run(&options);
    assert!(
        report.setup.contains("view write buffer 0 MiB"),
        "{}",
        report.setup
    );
    let section = &report.sections[0];
    assert!(
        section
            .notes
            .iter()
            .any(|n| n.starts_with("views identical (sha256") && n.contains("host")),
        "{section:?}"
    );
}
