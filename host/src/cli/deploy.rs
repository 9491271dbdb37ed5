//! `kappa deploy|promote|rollback|retire`: a version's lifecycle. A deploy
//! with `--wait` follows the replay until the version has caught up (or
//! failed), with the rate measured between polls (`crate::render::Meter`).

use std::io::Write;
use std::time::{Duration, Instant};

use super::status::{bar_style, update_bar};
use super::{DeployArgs, Failure, failed, print_json, usage};
use crate::client::Client;
use crate::model::{DeployReport, State, VersionStatus};
use crate::registry::{Settings, VersionId};
use crate::render::{Meter, alias_text, failure_text, group, progress_line, short_digest};

/// `kappa deploy FILE --name --version --topic... [--wait]`.
pub(super) async fn deploy(client: &Client, args: DeployArgs, json: bool) -> Result<(), Failure> {
    let id = VersionId::new(&args.name, &args.version).map_err(|e| usage(e.to_string()))?;
    let bytes = std::fs::read(&args.file)
        .map_err(|e| usage(format!("cannot read {}: {e}", args.file.display())))?;
    let settings = settings(&args)?;
    let report = client
        .deploy_topics(
            &id.name,
            &id.version.to_string(),
            &args.topic,
            bytes,
            &settings,
        )
        .await?;
    if !json {
        print_deployed(&report, &args.topic);
    }
    if args.wait {
        let status = wait_caught_up(client, &id, json).await?;
        if json {
            return print_json(&status);
        }
        if status.state == State::Failed {
            return Err(failed(format!(
                "{} failed: {}",
                status.id,
                failure_text(&status)
            )));
        }
        return Ok(());
    }
    if json {
        return print_json(&report);
    }
    Ok(())
}

/// The settings the options of `kappa deploy` ask for.
fn settings(args: &DeployArgs) -> Result<Settings, Failure> {
    let config = match (&args.config, &args.config_file) {
        (Some(c), _) => c.clone(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?,
        (None, None) => String::new(),
    };
    Ok(Settings {
        config,
        auto_promote: args.auto_promote,
        batch_timeout_ms: args.batch_timeout_ms,
        memory_limit_bytes: args.memory_limit_mb.saturating_mul(1 << 20),
        on_error: args.on_error,
        threads: args.threads,
        topic_idle_ms: args.topic_idle_ms,
    })
}

fn print_deployed(report: &DeployReport, topics: &[String]) {
    if report.created {
        let reading = match topics {
            [_, _, ..] => format!("topics {}", topics.join(", ")),
            _ => format!("topic {}", report.topic),
        };
        println!(
            "deployed {} (sha256 {}), reading {reading}; {} ({} ms); replaying {} events",
            report.id,
            short_digest(&report.digest),
            if report.compiled_from_cache {
                "machine code from cache"
            } else {
                "compiled"
            },
            group(report.compile_ms),
            group(report.events_to_replay)
        );
    } else {
        println!(
            "{} is already deployed with these bytes; nothing changed",
            report.id
        );
    }
}

/// Polls a version until it is no longer replaying, showing progress on
/// stderr unless `quiet`: a live bar (done/total, rate, ETA) on a terminal,
/// else one plain line a second. Ctrl-C stops waiting (the version goes on
/// replaying on the server) with exit code 130.
async fn wait_caught_up(
    client: &Client,
    id: &VersionId,
    quiet: bool,
) -> Result<VersionStatus, Failure> {
    use std::io::IsTerminal;
    let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
        let bar =
            indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
        bar.set_style(bar_style());
        bar.set_prefix(id.to_string());
        bar
    });
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut last_print = Instant::now() - Duration::from_secs(10);
    let version = id.version.to_string();
    let mut meter = Meter::default();
    let mut last: Option<VersionStatus> = None;
    loop {
        let v = tokio::select! {
            v = client.version(&id.name, &version) => v?,
            _ = &mut ctrl_c => return Err(interrupted(bar.as_ref(), id, last.as_ref(), &meter)),
        };
        let rate = meter.observe(Instant::now(), &v);
        if v.state != State::Replaying {
            if let Some(bar) = &bar {
                update_bar(bar, &v, rate);
                bar.finish();
            }
            if !quiet {
                eprintln!(
                    "{}: {} ({} events applied)",
                    v.id,
                    v.state,
                    group(applied_events(&v))
                );
            }
            return Ok(v);
        }
        match &bar {
            Some(bar) => update_bar(bar, &v, rate),
            None if !quiet && last_print.elapsed() >= Duration::from_secs(1) => {
                eprintln!("{}", progress_line(&v, rate));
                let _ = std::io::stderr().flush();
                last_print = Instant::now();
            }
            None => {}
        }
        last = Some(v);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = &mut ctrl_c => return Err(interrupted(bar.as_ref(), id, last.as_ref(), &meter)),
        }
    }
}

/// The events `v` has applied: of every topic, when it reads several.
fn applied_events(v: &VersionStatus) -> u64 {
    if v.inputs.is_empty() {
        return v.applied_offsets.iter().sum();
    }
    v.inputs.iter().flat_map(|i| &i.applied_offsets).sum()
}

fn interrupted(
    bar: Option<&indicatif::ProgressBar>,
    id: &VersionId,
    last: Option<&VersionStatus>,
    meter: &Meter,
) -> Failure {
    if let Some(bar) = bar {
        // Cleared, then said once as a plain line: redrawing the bar after
        // the terminal echoed ^C would show it twice.
        bar.finish_and_clear();
        if let Some(v) = last {
            eprintln!("{}", progress_line(v, meter.last()));
        }
    }
    Failure {
        code: 130,
        message: format!(
            "interrupted: stopped waiting; {id} goes on replaying on the server \
             (follow it with `kappa status {} --watch`)",
            id.name
        ),
    }
}

/// `kappa promote NAME@VERSION [--force]`.
pub(super) async fn promote(
    client: &Client,
    version: &str,
    force: bool,
    json: bool,
) -> Result<(), Failure> {
    let id = VersionId::parse(version).map_err(|e| usage(e.to_string()))?;
    let p = client
        .promote(&id.name, &id.version.to_string(), force)
        .await?;
    if json {
        return print_json(&p);
    }
    println!("{}: alias now points to {}", p.name, alias_text(&p));
    Ok(())
}

/// `kappa rollback NAME`.
pub(super) async fn rollback(client: &Client, name: &str, json: bool) -> Result<(), Failure> {
    let p = client.rollback(name).await?;
    if json {
        return print_json(&p);
    }
    println!(
        "{}: rolled back; alias now points to {}",
        p.name,
        alias_text(&p)
    );
    Ok(())
}

/// `kappa retire NAME@VERSION`.
pub(super) async fn retire(client: &Client, version: &str, json: bool) -> Result<(), Failure> {
    let id = VersionId::parse(version).map_err(|e| usage(e.to_string()))?;
    let v = client.retire(&id.name, &id.version.to_string()).await?;
    if json {
        return print_json(&v);
    }
    println!("retired {}; its view was dropped", v.id);
    Ok(())
}
