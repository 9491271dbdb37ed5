//! `kappa demo`: the whole story on the embedded default, in a temporary
//! data directory, explained step by step. It runs a real host in-process
//! with its HTTP API on a loopback port and drives it through the same client
//! the CLI uses, so what it shows is exactly what a user would get. It prints
//! the server's address, so its dashboard can be watched while the story
//! runs (and, with `--keep`, afterwards).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::client::Client;
use crate::lifecycle::{Host, HostOptions};
use crate::model::State;
use crate::registry::{Settings, VersionId};
use crate::render::{Meter, group, progress_line, render_diff, render_status, short_digest};
use crate::workload::PaymentGenerator;

const TOPIC: &str = "payments";
const ACCOUNT: &str = "account/acct-0007";

fn step(n: u32, text: &str) {
    println!("\n== {n}. {text}");
}

fn say(text: &str) {
    for line in text.lines() {
        println!("   {line}");
    }
}

/// Runs the demo. With `json`, prints only a JSON summary at the end; with
/// `keep`, leaves the server running afterwards until Ctrl-C.
pub async fn run(
    data_dir: Option<PathBuf>,
    events: usize,
    json: bool,
    keep: bool,
) -> anyhow::Result<()> {
    let temp = tempfile::tempdir().context("creating a temporary directory")?;
    let dir = data_dir.unwrap_or_else(|| temp.path().to_owned());
    let quiet = json;
    let out = |f: &dyn Fn()| {
        if !quiet {
            f();
        }
    };
    out(&|| {
        println!("kappa demo: one event log, two versions of a fraud-detection processor,");
        println!("replay on deploy, a side-by-side diff, promotion and an instant rollback.");
        println!("data directory: {}", dir.display());
    });

    let open_dir = dir.clone();
    // The host's message alone: it already names its cause, which `{:#}`
    // would print again.
    let host = tokio::task::spawn_blocking(move || Host::open(&open_dir, HostOptions::default()))
        .await?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::api::serve(host.clone(), listener, async {
        let _ = stop_rx.await;
    }));
    out(&|| {
        println!("server: {url} (open {url}/ to watch the dashboard while the demo runs)");
    });
    let client = Client::new(&url)?;
    let result = story(&client, events, quiet).await;
    if keep && result.is_ok() {
        if !quiet {
            println!(
                "\nThe server stays up at {url} (dashboard {url}/; `kappa status --server {url}`).\n\
                 Ctrl-C to stop it."
            );
        }
        let _ = tokio::signal::ctrl_c().await;
    }
    let _ = stop_tx.send(());
    let _ = server.await;
    tokio::task::spawn_blocking(move || host.shutdown()).await?;
    let summary = result?;
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!("\nDone. Run it by hand with `kappa serve` and the quickstart in the README.");
    }
    drop(temp);
    Ok(())
}

#[expect(
    clippy::too_many_lines,
    reason = "the tour's steps, one after another, read best in the order it tells them"
)]
async fn story(client: &Client, events: usize, quiet: bool) -> anyhow::Result<serde_json::Value> {
    let say = |t: &str| {
        if !quiet {
            say(t);
        }
    };
    let step = |n: u32, t: &str| {
        if !quiet {
            step(n, t);
        }
    };
    let v1 = VersionId::parse("payments@1.0.0")?;
    let v2 = VersionId::parse("payments@2.0.0")?;

    step(1, "An event log with history");
    client.create_topic(TOPIC, 4).await?;
    let mut generator = PaymentGenerator::new(42, 500, 1_767_225_600_000);
    let mut produced = 0usize;
    let mut shown = std::time::Instant::now();
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
    while produced < events {
        let n = (events - produced).min(10_000);
        let lines = generator
            .take(n)
            .iter()
            .map(|p| p.to_event_line())
            .collect();
        client.produce(TOPIC, lines).await?;
        produced += n;
        if !quiet && shown.elapsed() >= Duration::from_secs(1) && produced < events {
            appending(produced, events, terminal);
            shown = std::time::Instant::now();
        }
    }
    if !quiet && terminal {
        // Over the progress line, kept on one line on a terminal.
        print!("\r\x1b[2K");
    }
    say(&format!(
        "Topic `{TOPIC}` (4 partitions) holds {} card payments, keyed by account.\n\
         Appends are acknowledged only after fsync: they survive a crash.",
        group(produced as u64)
    ));

    step(
        2,
        "Deploy payments@1.0.0: per-account totals, flags payments over 5,000.00",
    );
    let report = client
        .deploy(
            &v1.name,
            "1.0.0",
            TOPIC,
            kappa_plugins::PAYMENTS_V1.bytes.to_vec(),
            &Settings::default(),
        )
        .await?;
    say(&format!(
        "Component validated and compiled in {} ms (sha256 {}). It replays the log from offset 0\n\
         into its own view; being the first version of `payments`, it is promoted when it catches up.",
        group(report.compile_ms),
        short_digest(&report.digest)
    ));
    let s1 = watch(client, &v1, quiet).await?;
    if s1.state != State::Promoted {
        bail!("payments@1.0.0 ended {} instead of promoted", s1.state);
    }
    let row = client.get("payments", ACCOUNT, false).await?;
    say(&format!(
        "`kappa get payments {ACCOUNT}` reads the promoted version ({}):\n  {}",
        row.id,
        row.row.map(|r| r.value.to_string()).unwrap_or_default()
    ));

    step(3, "Events keep arriving while payments@2.0.0 is deployed");
    let live = Arc::new(AtomicBool::new(true));
    let live_count = Arc::new(AtomicU64::new(0));
    let producer = {
        let (client, live, count) = (client.clone(), live.clone(), live_count.clone());
        let mut generator = generator.clone();
        tokio::spawn(async move {
            while live.load(Ordering::Relaxed) {
                let lines = generator
                    .take(250)
                    .iter()
                    .map(|p| p.to_event_line())
                    .collect();
                if client.produce(TOPIC, lines).await.is_ok() {
                    count.fetch_add(250, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    say(
        "A producer appends ~5,000 payments/s. v2 changes the fraud rule: a higher amount\n\
         threshold (10,000.00) plus a velocity rule (4 payments within 60 s of event time).",
    );
    let report = client
        .deploy(
            &v2.name,
            "2.0.0",
            TOPIC,
            kappa_plugins::PAYMENTS_V2.bytes.to_vec(),
            &Settings::default(),
        )
        .await?;
    say(&format!(
        "Deployed payments@2.0.0 ({} events to replay). v1 keeps serving and tailing the live log:",
        group(report.events_to_replay)
    ));
    let s2 = watch(client, &v2, quiet).await?;
    if s2.state != State::CaughtUp {
        bail!("payments@2.0.0 ended {} instead of caught up", s2.state);
    }
    let s1 = client.version("payments", "1.0.0").await?;
    say(&format!(
        "payments@2.0.0 caught up; it waits for a promotion. Meanwhile payments@1.0.0 stayed {} \
         with a lag of {} events.",
        s1.state,
        group(s1.lag.unwrap_or(0))
    ));

    step(4, "Diff the two views at the same log position");
    let accounts = client
        .diff(
            "payments@1.0.0",
            "payments@2.0.0",
            "account/",
            None,
            4,
            30_000,
        )
        .await?;
    let flags = client
        .diff("payments@1.0.0", "payments@2.0.0", "flag/", None, 4, 30_000)
        .await?;
    if !quiet {
        print!("{}", indent(&render_diff(&accounts)));
        print!("{}", indent(&render_diff(&flags)));
    }
    say(&format!(
        "Accounts whose flag count differs: {}. Flags only v1 raised (small amounts v2 no longer\n\
         flags): {}. Flags only v2 raised (velocity): {}.",
        group(accounts.counts.changed),
        group(flags.counts.removed),
        group(flags.counts.added)
    ));

    step(5, "Promote payments@2.0.0");
    client.promote("payments", "2.0.0", false).await?;
    let row = client.get("payments", ACCOUNT, false).await?;
    say(&format!(
        "One atomic pointer swap: `payments` now reads {}:\n  {}",
        row.id,
        row.row.map(|r| r.value.to_string()).unwrap_or_default()
    ));

    step(6, "Roll back");
    let started = std::time::Instant::now();
    let p = client.rollback("payments").await?;
    let rollback_ms = started.elapsed().as_secs_f64() * 1000.0;
    say(&format!(
        "`kappa rollback payments` took {rollback_ms:.1} ms: the alias points to {}@{} again.\n\
         Its view was kept current all along, so nothing is recomputed.",
        p.name,
        p.promoted.as_deref().unwrap_or("?")
    ));

    live.store(false, Ordering::Relaxed);
    let _ = producer.await;
    let d1 = client.digest("payments@1.0.0").await?;
    let d2 = client.digest("payments@2.0.0").await?;

    step(7, "Retire payments@2.0.0");
    let retired = client.retire("payments", "2.0.0").await?;
    say(&format!(
        "`kappa retire payments@2.0.0` stopped {} and dropped its view (digest was {}).\n\
         The promoted version can never be retired: promote or roll back first.",
        retired.id,
        short_digest(&d2.sha256)
    ));

    step(8, "Where things stand");
    let status = client.status().await?;
    if !quiet {
        print!("{}", indent(&render_status(&status)));
    }
    Ok(serde_json::json!({
        "events_history": produced,
        "events_live": live_count.load(Ordering::Relaxed),
        "diff_accounts": accounts.counts,
        "diff_accounts_offsets": accounts.offsets,
        "diff_flags": flags.counts,
        "diff_flags_offsets": flags.offsets,
        "rollback_ms": rollback_ms,
        "promoted": p.promoted,
        "digests": { d1.id: d1.sha256, d2.id: d2.sha256 },
    }))
}

/// Polls a version until it stops replaying, printing a progress line every
/// 200 ms.
async fn watch(
    client: &Client,
    id: &VersionId,
    quiet: bool,
) -> anyhow::Result<crate::model::VersionStatus> {
    let mut meter = Meter::default();
    loop {
        let v = client.version(&id.name, &id.version.to_string()).await?;
        let rate = meter.observe(std::time::Instant::now(), &v);
        if v.state == State::Failed {
            bail!("{} failed: {:?}", v.id, v.failure);
        }
        if v.state != State::Replaying {
            if !quiet {
                say(&format!(
                    "{}: {} after applying {} events",
                    v.id,
                    v.state,
                    group(v.applied_offsets.iter().sum::<u64>())
                ));
            }
            return Ok(v);
        }
        if !quiet {
            say(&progress_line(&v, rate));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How far the history is appended: one line rewritten in place on a
/// terminal, else a line each time.
fn appending(done: usize, total: usize, terminal: bool) {
    use std::io::Write;
    let line = format!(
        "   appending: {}/{} payments",
        group(done as u64),
        group(total as u64)
    );
    if terminal {
        print!("\r\x1b[2K{line}");
        let _ = std::io::stdout().flush();
    } else {
        println!("{line}");
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("   {l}\n")).collect()
}
