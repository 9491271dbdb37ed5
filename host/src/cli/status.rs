//! `kappa status`: the processors, their versions (state, progress, lag,
//! rate, ETA) and the topics, once or refreshed with `--watch` (a live bar
//! per version on a terminal). The bars are `deploy --wait`'s too.

use std::io::Write;
use std::time::Duration;

use super::{Failure, StatusArgs, failed, print_json};
use crate::client::Client;
use crate::model::{State, StatusReport, VersionStatus};
use crate::render::{Rate, alias_text, bar_message, done_total, group, render_status};

/// `kappa status [NAME] [--watch]`.
pub(super) async fn status(client: &Client, args: StatusArgs, json: bool) -> Result<(), Failure> {
    if args.watch {
        let interval = Duration::from_secs_f64(args.interval.clamp(0.1, 3600.0));
        return watch_status(client, args.name.as_deref(), json, interval).await;
    }
    let report = fetch_status(client, args.name.as_deref()).await?;
    if json {
        return print_json(&report);
    }
    print!("{}", render_status(&report));
    Ok(())
}

/// Status of every processor, or of one with only its topics.
async fn fetch_status(client: &Client, name: Option<&str>) -> Result<StatusReport, Failure> {
    Ok(match name {
        Some(name) => {
            let p = client.processor(name).await?;
            // The topics are left out when the log cannot be reached (a
            // Kafka broker down): each version's `log_error` says why.
            let topics = client
                .topics()
                .await
                .unwrap_or_default()
                .into_iter()
                .filter(|t| {
                    t.name == p.topic
                        || p.versions
                            .iter()
                            .any(|v| v.inputs.iter().any(|i| i.topic == t.name))
                })
                .collect();
            StatusReport {
                processors: vec![p],
                topics,
            }
        }
        None => client.status().await?,
    })
}

/// `kappa status --watch`: refreshes every `interval` until Ctrl-C. On a
/// terminal, a live progress bar per version under a line per processor;
/// otherwise the status table again each time (with `--json`, one compact
/// JSON report a line). An unreachable server is reported and retried.
async fn watch_status(
    client: &Client,
    name: Option<&str>,
    json: bool,
    interval: Duration,
) -> Result<(), Failure> {
    use std::io::IsTerminal;
    let mut screen = (!json && std::io::stdout().is_terminal()).then(WatchScreen::new);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut last_error = None;
    loop {
        let fetched = tokio::select! {
            r = fetch_status(client, name) => r,
            _ = &mut ctrl_c => break,
        };
        match fetched {
            Ok(report) => {
                last_error = None;
                match &mut screen {
                    Some(screen) => screen.update(&report),
                    None if json => {
                        let line = serde_json::to_string(&report)
                            .map_err(|e| failed(format!("encoding JSON: {e}")))?;
                        println!("{line}");
                    }
                    None => println!("{}", render_status(&report)),
                }
                let _ = std::io::stdout().flush();
            }
            Err(f) => {
                if last_error.as_deref() != Some(f.message.as_str()) {
                    match &screen {
                        Some(screen) => screen.footer.set_message(format!("error: {}", f.message)),
                        None => eprintln!("error: {} (retrying)", f.message),
                    }
                }
                last_error = Some(f.message);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = &mut ctrl_c => break,
        }
    }
    if let Some(screen) = screen {
        screen.leave();
    }
    Ok(())
}

/// The live screen of `status --watch`: per processor a header line and a
/// bar per version, then a footer with the topics.
struct WatchScreen {
    multi: indicatif::MultiProgress,
    footer: indicatif::ProgressBar,
    /// Every processor shown, in order.
    processors: Vec<WatchedProcessor>,
}

/// A processor on the screen of `status --watch`.
struct WatchedProcessor {
    name: String,
    header: indicatif::ProgressBar,
    /// Its versions' bars, by id, in order.
    bars: Vec<(String, indicatif::ProgressBar)>,
}

impl WatchScreen {
    fn new() -> Self {
        let multi =
            indicatif::MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::stdout());
        let footer = multi.add(Self::line());
        WatchScreen {
            multi,
            footer,
            processors: Vec::new(),
        }
    }

    fn line() -> indicatif::ProgressBar {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    }

    fn update(&mut self, report: &StatusReport) {
        for p in &report.processors {
            let index = match self.processors.iter().position(|w| w.name == p.name) {
                Some(i) => i,
                None => {
                    let header = self.multi.insert_before(&self.footer, Self::line());
                    self.processors.push(WatchedProcessor {
                        name: p.name.clone(),
                        header,
                        bars: Vec::new(),
                    });
                    self.processors.len() - 1
                }
            };
            let WatchedProcessor { header, bars, .. } = &mut self.processors[index];
            header.set_message(format!(
                "{}  (topic {}; alias -> {})",
                p.name,
                p.topic,
                alias_text(p)
            ));
            for v in &p.versions {
                let bar = match bars.iter().find(|(id, _)| *id == v.id) {
                    Some((_, bar)) => bar.clone(),
                    None => {
                        let after = bars.last().map_or(&*header, |(_, b)| b);
                        let bar = self
                            .multi
                            .insert_after(after, indicatif::ProgressBar::new(0));
                        bar.set_style(bar_style());
                        bar.set_prefix(format!("  {}", v.version));
                        bars.push((v.id.clone(), bar.clone()));
                        bar
                    }
                };
                update_bar(&bar, v, Some(Rate::reported(v)));
            }
        }
        let topics: Vec<String> = report
            .topics
            .iter()
            .map(|t| {
                format!(
                    "topic {}: {} partitions, {} events",
                    t.name,
                    t.partitions,
                    group(t.end_offsets.iter().sum::<u64>())
                )
            })
            .collect();
        self.footer.set_message(if report.processors.is_empty() {
            format!("no processors deployed  {}", topics.join("  "))
        } else {
            topics.join("  ")
        });
    }

    /// Leaves the last screen as it is, for the terminal's scrollback, and
    /// the cursor on a line of its own below it. (Clearing it to print the
    /// table instead would move the cursor up by the screen's height, but
    /// the terminal's echo of ^C after a full-width line may have scrolled
    /// one line more, leaving a duplicated header.)
    fn leave(self) {
        // The bars, dropped after this, draw nothing more.
        self.multi
            .set_draw_target(indicatif::ProgressDrawTarget::hidden());
        println!();
    }
}

/// The style of a version's progress bar: id, bar, then a message with
/// done/total, state, rate, ETA and lag (see `bar_message`), all from one
/// status so that the count and the percentage always agree.
pub(super) fn bar_style() -> indicatif::ProgressStyle {
    indicatif::ProgressStyle::with_template("{prefix:18!} {bar:20.cyan/blue} {wide_msg}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("█▉▊▋▌▍▎▏ ")
}

/// Shows a version's status on its bar; `rate`: `None` while not measured.
pub(super) fn update_bar(bar: &indicatif::ProgressBar, v: &VersionStatus, rate: Option<Rate>) {
    if v.state == State::Retired {
        // No bar for a version without a view: only its state.
        bar.set_style(retired_style());
    }
    let (done, total) = done_total(v);
    bar.set_length(total);
    bar.set_position(done);
    bar.set_message(bar_message(v, rate));
}

/// The line of a retired version in `status --watch`: no bar, no counts.
fn retired_style() -> indicatif::ProgressStyle {
    indicatif::ProgressStyle::with_template("{prefix:18!} {wide_msg}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
}
