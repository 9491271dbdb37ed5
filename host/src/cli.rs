//! The `kappa` command line. `kappa serve` runs a host; every other
//! subcommand is a client of a running host's HTTP API (like `kubectl`), and
//! every subcommand that prints data takes `--json` (the shapes of
//! `crate::model`, documented in `docs/api.md`).
//!
//! Exit codes (`EXIT_CODES`, shown by `kappa --help`): 0 success, 1 the
//! operation failed, 2 bad usage or bad input (nothing was changed).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::client::{Client, ClientError, DEFAULT_SERVER};
use crate::diff::{Change, DiffReport};
use crate::lifecycle::{Host, HostOptions};
use crate::model::{ProcessorStatus, State, StatusReport, VersionStatus};

mod produce;
use crate::registry::{Settings, VersionId};

/// The heading of the options every subcommand takes, in `--help`.
const GLOBAL: &str = "Global options";

/// The exit codes, as `kappa --help` prints them.
const EXIT_CODES: &str = "\
Exit codes:
  0    success
  1    the operation failed: refused in the current state (HTTP 409), a key not found,
       a version that failed, the server unreachable or failing (5xx), a token refused (401)
  2    bad usage or bad input, nothing was changed: wrong arguments, an unreadable file,
       or a request the server refused as such (HTTP 400 invalid, 404 not found,
       413 too large)
  130  interrupted (Ctrl-C while waiting)";

/// kappa: versioned WebAssembly processors over one replayable event log.
#[derive(Debug, Parser)]
#[command(name = "kappa", version, about, long_about = None, after_help = EXIT_CODES)]
struct Cli {
    /// Address of the kappa server the client commands talk to.
    #[arg(long, global = true, help_heading = GLOBAL, env = "KAPPA_SERVER", default_value = DEFAULT_SERVER)]
    server: String,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true, help_heading = GLOBAL)]
    json: bool,
    /// Log level of `serve` and `demo` (error, warn, info, debug, trace), or
    /// a tracing filter like `kappa=debug`.
    /// [default: info; warn for `demo`, whose story is on stdout]
    #[arg(long, global = true, help_heading = GLOBAL, env = "KAPPA_LOG")]
    log_level: Option<String>,
    /// Format of the logs of `serve` and `demo` on stderr: `text` for people,
    /// `json` for one JSON object a line.
    #[arg(long, global = true, help_heading = GLOBAL, env = "KAPPA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Bearer token. `serve` then requires it of every request that changes
    /// something (and of reads with --auth-reads); the client commands send
    /// it. Prefer KAPPA_TOKEN or --token-file: other users can see a command
    /// line.
    #[arg(long, global = true, help_heading = GLOBAL, env = "KAPPA_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Read the bearer token from this file (surrounding white space is
    /// ignored); takes precedence over --token.
    #[arg(long, global = true, help_heading = GLOBAL, env = "KAPPA_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// Format of the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line (timestamp, level, target, fields).
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the host: embedded log, views and HTTP API under a data directory.
    Serve {
        /// Where the log, views, plugins and compiled code are kept.
        #[arg(long, env = "KAPPA_DATA_DIR", default_value = "kappa-data")]
        data_dir: PathBuf,
        /// Address to listen on (loopback by default). Any other address
        /// needs a token (--token, --token-file or KAPPA_TOKEN).
        #[arg(long, env = "KAPPA_LISTEN", default_value = "127.0.0.1:7070")]
        listen: SocketAddr,
        /// Require the token for reads too (status, topics, events, views,
        /// diff, /metrics); /healthz and the dashboard page stay open.
        #[arg(long, env = "KAPPA_AUTH_READS")]
        auth_reads: bool,
        /// Largest request body, MiB (a component upload, a produce batch).
        #[arg(long, env = "KAPPA_MAX_BODY_MB", default_value_t = 128,
              value_parser = clap::value_parser!(u64).range(1..=4096))]
        max_body_mb: u64,
        /// Largest event `produce` accepts: key + value + headers, bytes.
        #[arg(long, env = "KAPPA_MAX_EVENT_BYTES", default_value_t = 1 << 20,
              value_parser = clap::value_parser!(u64).range(1..=(8 << 20)))]
        max_event_bytes: u64,
        /// Per view: MiB of the view file's pages cached in memory.
        #[arg(long, env = "KAPPA_VIEW_CACHE_MB", default_value_t = 256,
              value_parser = clap::value_parser!(u64).range(1..=(1 << 20)))]
        view_cache_mb: u64,
        /// Per view: MiB of commits held in memory before they are written to
        /// the view file in one transaction (a crash loses them, and their
        /// events are processed again). 0 writes every batch at once.
        #[arg(long, env = "KAPPA_VIEW_WRITE_BUFFER_MB", default_value_t = 64,
              value_parser = clap::value_parser!(u64).range(0..=(1 << 20)))]
        view_write_buffer_mb: u64,
        #[command(flatten)]
        log: crate::eventlog::LogArgs,
    },
    /// Create or list topics.
    #[command(subcommand)]
    Topic(TopicCommand),
    /// Append events to a topic from JSON lines (a file or stdin). Each line:
    /// {"key": ..., "value": ..., "timestamp": ms, "partition": n, "headers": {..}}.
    /// Blank lines are skipped; errors name lines counted from 1, blank ones
    /// included.
    Produce {
        /// The topic.
        topic: String,
        /// Read from this file instead of stdin.
        #[arg(long, short)]
        file: Option<PathBuf>,
        /// Events sent per request (each request is appended all or nothing).
        #[arg(long, default_value_t = 5000)]
        batch: usize,
        /// Base of the request ids: batch N is sent with id BASE-N, so the
        /// host stores it at most once. Default: a random base. To retry a
        /// run whose outcome is unknown, give the base it printed.
        #[arg(long, value_name = "BASE")]
        request_id: Option<String>,
        /// Retries of a batch after a broken connection or a 503, with the
        /// same request id and a growing pause (0.2 s doubling to 3.2 s).
        #[arg(long, default_value_t = 5)]
        retries: u32,
    },
    /// Print events of one partition of a topic, one JSON object a line.
    Consume {
        /// The topic.
        topic: String,
        /// The partition.
        #[arg(long, default_value_t = 0)]
        partition: u32,
        /// First offset to print.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Most events to print.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Deploy a component as NAME@VERSION; it replays the topic from the start.
    Deploy {
        /// The component (.wasm).
        file: PathBuf,
        /// Processor name.
        #[arg(long)]
        name: String,
        /// Semantic version of this component.
        #[arg(long)]
        version: String,
        /// Topic to process.
        #[arg(long)]
        topic: String,
        /// Configuration string handed to the plugin's init.
        #[arg(long, conflicts_with = "config_file")]
        config: Option<String>,
        /// Read the configuration from a file.
        #[arg(long)]
        config_file: Option<PathBuf>,
        /// Promote automatically once caught up.
        #[arg(long)]
        auto_promote: bool,
        /// Time limit of one batch, ms.
        #[arg(long, default_value_t = Settings::default().batch_timeout_ms)]
        batch_timeout_ms: u64,
        /// Memory limit of the plugin, MiB: its linear memories and the view
        /// writes of its batch in progress.
        #[arg(long, default_value_t = Settings::default().memory_limit_bytes >> 20)]
        memory_limit_mb: u64,
        /// What to do with an event the plugin fails on: `stop` the version
        /// (it is marked failed), or `skip` it and list it as a dead letter.
        #[arg(long, default_value = "stop")]
        on_error: crate::registry::OnError,
        /// Wait until the version has caught up (or failed), showing progress.
        #[arg(long)]
        wait: bool,
    },
    /// Show processors, versions (state, progress, lag, rate, ETA) and topics.
    Status {
        /// Only this processor.
        name: Option<String>,
        /// Keep refreshing until Ctrl-C: a live progress bar per version on a
        /// terminal; else the table again each time (with --json, one report
        /// a line).
        #[arg(long)]
        watch: bool,
        /// Seconds between refreshes with --watch.
        #[arg(long, default_value_t = 1.0, requires = "watch")]
        interval: f64,
    },
    /// Read one key of a view: NAME (the promoted version) or NAME@VERSION.
    Get {
        /// NAME or NAME@VERSION.
        view: String,
        /// The key.
        key: String,
        /// The key is hex (for binary keys).
        #[arg(long)]
        hex: bool,
    },
    /// List rows of a view in key order.
    Scan {
        /// NAME or NAME@VERSION.
        view: String,
        /// Only keys with this prefix.
        #[arg(long, default_value = "")]
        prefix: String,
        /// Most rows to print (1 to 10,000).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=10_000))]
        limit: u64,
        /// Start after this key (the `next_after` of a previous page).
        #[arg(long)]
        after: Option<String>,
    },
    /// Print the digest of a view (sha256 over its rows), to compare replays.
    Digest {
        /// NAME or NAME@VERSION.
        view: String,
    },
    /// Compare two versions' views at the same log position.
    Diff {
        /// First version, NAME@VERSION (or NAME for the promoted one).
        a: String,
        /// Second version.
        b: String,
        /// Only keys with this prefix.
        #[arg(long, default_value = "")]
        prefix: String,
        /// Most differing rows to print (the counts cover all keys).
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Rows after this key (paging).
        #[arg(long)]
        after: Option<String>,
        /// Wait up to this many seconds for a replaying version to catch up.
        #[arg(long, default_value_t = 0)]
        wait: u64,
    },
    /// Point the alias NAME at NAME@VERSION (atomically).
    Promote {
        /// NAME@VERSION.
        version: String,
        /// Promote even if the version has not caught up.
        #[arg(long)]
        force: bool,
    },
    /// Point the alias NAME back at the previously promoted version.
    Rollback {
        /// Processor name.
        name: String,
    },
    /// Stop NAME@VERSION and drop its view (never the promoted version).
    Retire {
        /// NAME@VERSION.
        version: String,
    },
    /// Work with plugin files.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Run the whole story on the embedded default, explained step by step.
    Demo {
        /// Keep the data here instead of a temporary directory.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Events of history before the first deploy.
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
        /// Keep the demo's server running afterwards (its dashboard and API)
        /// until Ctrl-C.
        #[arg(long)]
        keep: bool,
    },
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Write the example components built into this binary (payments-v1,
    /// payments-v2, starter, faulty, echo-v1, echo-v2) as .wasm files into a
    /// directory.
    Examples {
        /// Directory to write into (created if missing).
        dir: PathBuf,
    },
    /// Write a starter project for a new plugin: the contract, a processor
    /// that counts events per key, and how to build it.
    New {
        /// Plugin name (also the package name).
        name: String,
        /// Language of the project.
        #[arg(long, value_enum)]
        lang: crate::scaffold::Lang,
        /// Directory to write (default ./NAME); must be absent or empty.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Say whether a .wasm file is a valid plugin for this host, and if not
    /// exactly why (runs locally, no server). Exit 0 valid, 1 invalid.
    Check {
        /// The component (.wasm).
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum TopicCommand {
    /// Create a topic.
    Create {
        /// Topic name.
        name: String,
        /// Number of partitions.
        #[arg(long, default_value_t = 4)]
        partitions: u32,
    },
    /// List topics.
    List,
}

/// A CLI failure: the message and the exit code.
struct Failure {
    code: u8,
    message: String,
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure {
            code: exit_code(&e),
            message: e.to_string(),
        }
    }
}

/// The exit code of a failed request (see `EXIT_CODES`): 2 when the server
/// refused the request as such (it is wrong whatever the state: 400, 404,
/// 413), else 1.
fn exit_code(e: &ClientError) -> u8 {
    match e {
        ClientError::Api {
            status: 400 | 404 | 413,
            ..
        } => 2,
        _ => 1,
    }
}

impl From<crate::error::Error> for Failure {
    fn from(e: crate::error::Error) -> Self {
        Failure {
            code: 1,
            message: e.to_string(),
        }
    }
}

fn usage(message: impl Into<String>) -> Failure {
    Failure {
        code: 2,
        message: message.into(),
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    use clap::{CommandFactory, FromArgMatches};
    // The exit codes under every subcommand's --help too.
    let matches = Cli::command()
        .mut_subcommands(|c| c.after_help(EXIT_CODES))
        .get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let level = cli.log_level.clone().unwrap_or_else(|| {
        match cli.command {
            Command::Demo { .. } => "warn",
            _ => "info",
        }
        .to_owned()
    });
    init_tracing(&level, cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn init_tracing(level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    // Colour only on a terminal: never escape codes in a redirected log.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Failure {
        code: 1,
        message: format!("encoding JSON: {e}"),
    })?;
    println!("{text}");
    Ok(())
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let json = cli.json;
    let token = resolve_token(cli.token.as_deref(), cli.token_file.as_deref())?;
    let client = || {
        Client::new(&cli.server)
            .map(|c| c.with_token(token.clone()))
            .map_err(|e| usage(e.to_string()))
    };
    match cli.command {
        Command::Serve {
            data_dir,
            listen,
            auth_reads,
            max_body_mb,
            max_event_bytes,
            view_cache_mb,
            view_write_buffer_mb,
            log,
        } => {
            let access = crate::access::Access::new(token.as_deref(), auth_reads)
                .map_err(|e| usage(e.to_string()))?;
            if !listen.ip().is_loopback() && !access.has_token() {
                return Err(usage(format!(
                    "refusing to listen on {listen} without a token: anyone who can reach it \
                     could produce, deploy, promote and retire. Set a token (--token-file \
                     FILE or KAPPA_TOKEN; clients then send it with --token or KAPPA_TOKEN), \
                     or listen on loopback (127.0.0.1)"
                )));
            }
            let options = crate::api::ServeOptions {
                access,
                max_body_bytes: usize::try_from(max_body_mb << 20).unwrap_or(usize::MAX),
            };
            let host_options = HostOptions {
                max_event_bytes: usize::try_from(max_event_bytes).unwrap_or(usize::MAX),
                view_cache_bytes: usize::try_from(view_cache_mb << 20).unwrap_or(usize::MAX),
                view_write_buffer_bytes: usize::try_from(view_write_buffer_mb << 20)
                    .unwrap_or(usize::MAX),
                backend: log.backend().map_err(usage)?,
                partitions: log.kafka_partitions.clone(),
                peers: log.peers.clone(),
                peer_token: token.clone(),
                ..HostOptions::default()
            };
            serve(data_dir, listen, options, host_options).await
        }
        Command::Demo {
            data_dir,
            events,
            keep,
        } => crate::demo::run(data_dir, events, json, keep)
            .await
            .map_err(|e| Failure {
                code: 1,
                message: format!("{e:#}"),
            }),
        Command::Plugin(PluginCommand::Examples { dir }) => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| usage(format!("cannot create {}: {e}", dir.display())))?;
            let mut written = Vec::new();
            for plugin in kappa_plugins::ALL {
                let path = dir.join(format!("{}.wasm", plugin.name));
                std::fs::write(&path, plugin.bytes).map_err(|e| Failure {
                    code: 1,
                    message: format!("cannot write {}: {e}", path.display()),
                })?;
                written.push(serde_json::json!({
                    "name": plugin.name,
                    "path": path,
                    "bytes": plugin.bytes.len(),
                }));
            }
            if json {
                return print_json(&written);
            }
            for w in &written {
                println!(
                    "{}  ({} bytes)",
                    w["path"].as_str().unwrap_or_default(),
                    w["bytes"]
                );
            }
            Ok(())
        }
        Command::Plugin(PluginCommand::New { name, lang, dir }) => {
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            let written = crate::scaffold::new_project(&name, lang, &dir).map_err(|e| match e {
                crate::error::Error::Invalid(message) => usage(message),
                other => Failure::from(other),
            })?;
            if json {
                return print_json(&written);
            }
            println!(
                "wrote a {} plugin project `{}` in {}:",
                written.lang,
                written.name,
                written.dir.display()
            );
            for file in &written.files {
                println!("  {}", file.display());
            }
            println!("\nnext steps (see {}):", dir.join("README.md").display());
            for step in written.next_steps() {
                println!("  {step}");
            }
            Ok(())
        }
        Command::Plugin(PluginCommand::Check { file }) => {
            let bytes = std::fs::read(&file)
                .map_err(|e| usage(format!("cannot read {}: {e}", file.display())))?;
            let report = tokio::task::spawn_blocking(move || crate::check::check(&bytes))
                .await
                .map_err(|e| Failure {
                    code: 1,
                    message: format!("the check panicked: {e}"),
                })??;
            if json {
                print_json(&report)?;
            } else {
                print!(
                    "{}",
                    crate::check::render(&file.display().to_string(), &report)
                );
            }
            if report.valid {
                Ok(())
            } else {
                // The text report above lists the reasons; say them once.
                Err(Failure {
                    code: 1,
                    message: if json {
                        format!(
                            "{} is not a valid plugin for this host: {}",
                            file.display(),
                            report.reasons.join("; ")
                        )
                    } else {
                        format!(
                            "{} is not a valid plugin for this host (the reasons are above)",
                            file.display()
                        )
                    },
                })
            }
        }
        Command::Topic(TopicCommand::Create { name, partitions }) => {
            let topic = client()?.create_topic(&name, partitions).await?;
            if json {
                return print_json(&topic);
            }
            println!(
                "created topic {} with {} partitions",
                topic.name, topic.partitions
            );
            Ok(())
        }
        Command::Topic(TopicCommand::List) => {
            let topics = client()?.topics().await?;
            if json {
                return print_json(&topics);
            }
            for t in topics {
                println!(
                    "{:<24} {:>3} partitions {:>12} events",
                    t.name,
                    t.partitions,
                    group(t.end_offsets.iter().sum::<u64>())
                );
            }
            Ok(())
        }
        Command::Consume {
            topic,
            partition,
            from,
            limit,
        } => {
            let client = client()?;
            let mut next = from;
            let mut left = limit;
            let mut events = Vec::new();
            let mut end = next;
            while left > 0 {
                let page = client
                    .consume(&topic, partition, next, left.min(10_000))
                    .await?;
                end = page.end_offset;
                if page.events.is_empty() {
                    break;
                }
                left -= page.events.len();
                next = page.next_offset;
                events.extend(page.events);
            }
            if json {
                print_json(&events)?;
            } else {
                for e in &events {
                    let line = serde_json::to_string(e).map_err(|e| Failure {
                        code: 1,
                        message: e.to_string(),
                    })?;
                    println!("{line}");
                }
            }
            if next < end {
                eprintln!(
                    "(stopped at --limit {limit}: partition {partition} has more, up to offset \
                     {}; next page: --from {next}, or a larger --limit)",
                    end - 1
                );
            }
            Ok(())
        }
        Command::Produce {
            topic,
            file,
            batch,
            request_id,
            retries,
        } => {
            let options = produce::Options {
                batch,
                request_id,
                retries,
                json,
            };
            produce::run(&client()?, &topic, file, options).await
        }
        Command::Deploy {
            file,
            name,
            version,
            topic,
            config,
            config_file,
            auto_promote,
            batch_timeout_ms,
            memory_limit_mb,
            on_error,
            wait,
        } => {
            let id = VersionId::new(&name, &version).map_err(|e| usage(e.to_string()))?;
            let bytes = std::fs::read(&file)
                .map_err(|e| usage(format!("cannot read {}: {e}", file.display())))?;
            let config = match (config, config_file) {
                (Some(c), _) => c,
                (None, Some(path)) => std::fs::read_to_string(&path)
                    .map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?,
                (None, None) => String::new(),
            };
            let settings = Settings {
                config,
                auto_promote,
                batch_timeout_ms,
                memory_limit_bytes: memory_limit_mb.saturating_mul(1 << 20),
                on_error,
            };
            let client = client()?;
            let report = client
                .deploy(&id.name, &id.version.to_string(), &topic, bytes, &settings)
                .await?;
            if !json {
                if report.created {
                    println!(
                        "deployed {} (sha256 {}), reading topic {}; {} ({} ms); replaying {} events",
                        report.id,
                        &report.digest[..12],
                        report.topic,
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
            if wait {
                let status = wait_caught_up(&client, &id, json).await?;
                if json {
                    return print_json(&status);
                }
                if status.state == State::Failed {
                    return Err(Failure {
                        code: 1,
                        message: format!("{} failed: {}", status.id, failure_text(&status)),
                    });
                }
                return Ok(());
            }
            if json {
                return print_json(&report);
            }
            Ok(())
        }
        Command::Status {
            name,
            watch,
            interval,
        } => {
            let client = client()?;
            if watch {
                let interval = Duration::from_secs_f64(interval.clamp(0.1, 3600.0));
                return watch_status(&client, name.as_deref(), json, interval).await;
            }
            let report = fetch_status(&client, name.as_deref()).await?;
            if json {
                return print_json(&report);
            }
            print!("{}", render_status(&report));
            Ok(())
        }
        Command::Get { view, key, hex } => {
            let reply = client()?.get(&view, &key, hex).await?;
            if json {
                print_json(&reply)?;
            } else if let Some(row) = &reply.row {
                println!("{}", render_json(&row.value));
            }
            if reply.found {
                Ok(())
            } else {
                Err(Failure {
                    code: 1,
                    message: format!("key `{key}` is not in the view of {}", reply.id),
                })
            }
        }
        Command::Scan {
            view,
            prefix,
            limit,
            after,
        } => {
            let page = client()?
                .scan(&view, &prefix, after.as_deref(), limit as usize)
                .await?;
            if json {
                return print_json(&page);
            }
            for row in &page.rows {
                println!("{}\t{}", row.key, render_json(&row.value));
            }
            if let Some(next) = &page.next_after {
                eprintln!("(more rows: --after '{next}')");
            }
            Ok(())
        }
        Command::Digest { view } => {
            let d = client()?.digest(&view).await?;
            if json {
                return print_json(&d);
            }
            println!(
                "{}  {}  ({} rows, offsets {:?})",
                d.sha256,
                d.id,
                group(d.rows),
                d.offsets
            );
            Ok(())
        }
        Command::Diff {
            a,
            b,
            prefix,
            limit,
            after,
            wait,
        } => {
            let report = client()?
                .diff(
                    &a,
                    &b,
                    &prefix,
                    after.as_deref(),
                    limit,
                    wait.saturating_mul(1000),
                )
                .await?;
            if json {
                return print_json(&report);
            }
            print!("{}", render_diff(&report));
            Ok(())
        }
        Command::Promote { version, force } => {
            let id = VersionId::parse(&version).map_err(|e| usage(e.to_string()))?;
            let p = client()?
                .promote(&id.name, &id.version.to_string(), force)
                .await?;
            if json {
                return print_json(&p);
            }
            println!("{}: alias now points to {}", p.name, alias_text(&p));
            Ok(())
        }
        Command::Rollback { name } => {
            let p = client()?.rollback(&name).await?;
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
        Command::Retire { version } => {
            let id = VersionId::parse(&version).map_err(|e| usage(e.to_string()))?;
            let v = client()?.retire(&id.name, &id.version.to_string()).await?;
            if json {
                return print_json(&v);
            }
            println!("retired {}; its view was dropped", v.id);
            Ok(())
        }
    }
}

fn alias_text(p: &ProcessorStatus) -> String {
    match (&p.promoted, &p.previous) {
        (Some(cur), Some(prev)) => format!("{}@{cur} (previous: {prev})", p.name),
        (Some(cur), None) => format!("{}@{cur}", p.name),
        (None, _) => "nothing".into(),
    }
}

/// The token from `--token-file` or else `--token`/`KAPPA_TOKEN`; a token
/// that cannot be sent is bad usage (exit 2).
fn resolve_token(
    token: Option<&str>,
    file: Option<&std::path::Path>,
) -> Result<Option<String>, Failure> {
    let token = match file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| {
                    usage(format!(
                        "cannot read the token file {}: {e}",
                        path.display()
                    ))
                })?
                .trim()
                .to_owned(),
        ),
        None => token.map(|t| t.trim().to_owned()),
    };
    if let Some(t) = &token {
        crate::access::validate_token(t).map_err(|e| usage(e.to_string()))?;
    }
    Ok(token)
}

async fn serve(
    data_dir: PathBuf,
    listen: SocketAddr,
    options: crate::api::ServeOptions,
    host_options: HostOptions,
) -> Result<(), Failure> {
    let dir = data_dir.clone();
    let host = tokio::task::spawn_blocking(move || Host::open(&dir, host_options))
        .await
        .map_err(|e| Failure {
            code: 1,
            message: format!("opening the data directory panicked: {e}"),
        })??;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| Failure {
            code: 1,
            message: format!("cannot listen on {listen}: {e}"),
        })?;
    let addr = listener.local_addr().map_err(|e| Failure {
        code: 1,
        message: e.to_string(),
    })?;
    // The first stdout line says where the API is, so scripts and tests can
    // listen on port 0 and read the port chosen.
    println!("listening on http://{addr}");
    tracing::info!(
        "kappa serving http://{addr} with data in {}",
        data_dir.display()
    );
    if options.access.has_token() {
        tracing::info!(
            reads_need_token = options.access.reads_need_token(),
            "a bearer token is required for every change{}",
            if options.access.reads_need_token() {
                " and every read"
            } else {
                ""
            }
        );
    }
    crate::api::serve_with(host.clone(), listener, &options, shutdown_signal())
        .await
        .map_err(|e| Failure {
            code: 1,
            message: format!("serving: {e}"),
        })?;
    tracing::info!("shutting down: stopping workers and syncing views");
    tokio::task::spawn_blocking(move || host.shutdown())
        .await
        .map_err(|e| Failure {
            code: 1,
            message: e.to_string(),
        })?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
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
    let mut last_print = std::time::Instant::now() - Duration::from_secs(10);
    let version = id.version.to_string();
    let mut last: Option<VersionStatus> = None;
    loop {
        let v = tokio::select! {
            v = client.version(&id.name, &version) => v?,
            _ = &mut ctrl_c => return Err(interrupted(bar.as_ref(), id, last.as_ref())),
        };
        if v.state != State::Replaying {
            if let Some(bar) = &bar {
                update_bar(bar, &v);
                bar.finish();
            }
            if !quiet {
                eprintln!(
                    "{}: {} ({} events applied)",
                    v.id,
                    v.state,
                    group(v.applied_offsets.iter().sum::<u64>())
                );
            }
            return Ok(v);
        }
        match &bar {
            Some(bar) => update_bar(bar, &v),
            None if !quiet && last_print.elapsed() >= Duration::from_secs(1) => {
                eprintln!("{}", progress_line(&v));
                let _ = std::io::stderr().flush();
                last_print = std::time::Instant::now();
            }
            None => {}
        }
        last = Some(v);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = &mut ctrl_c => return Err(interrupted(bar.as_ref(), id, last.as_ref())),
        }
    }
}

fn interrupted(
    bar: Option<&indicatif::ProgressBar>,
    id: &VersionId,
    last: Option<&VersionStatus>,
) -> Failure {
    if let Some(bar) = bar {
        // Cleared, then said once as a plain line: redrawing the bar after
        // the terminal echoed ^C would show it twice.
        bar.finish_and_clear();
        if let Some(v) = last {
            eprintln!("{}", progress_line(v));
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

/// One line of replay progress: done/total, percent, rate, ETA.
pub(crate) fn progress_line(v: &VersionStatus) -> String {
    let (done, total) = done_total(v);
    format!(
        "{}: replaying {}/{} events ({:.1}%), {} events/s, ETA {}",
        v.id,
        group(done),
        group(total),
        v.progress.unwrap_or(0.0) * 100.0,
        group_rate(v.events_per_second),
        v.eta_seconds
            .map_or_else(|| "-".to_owned(), |s| format!("{s:.1} s"))
    )
}

/// The style of a version's progress bar: id, bar, then a message with
/// done/total, state, rate, ETA and lag (see `bar_message`), all from one
/// status so that the count and the percentage always agree.
fn bar_style() -> indicatif::ProgressStyle {
    indicatif::ProgressStyle::with_template("{prefix:18!} {bar:20.cyan/blue} {wide_msg}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("█▉▊▋▌▍▎▏ ")
}

/// Events applied and events to apply in all, from where the version
/// started reading (0/0 once retired: it has no view).
fn done_total(v: &VersionStatus) -> (u64, u64) {
    let Some(lag) = v.lag else {
        return (0, 0);
    };
    let total: u64 = match v.progress {
        // The total counts from where the version started (the earliest
        // retained offsets on Kafka): done / total is the progress.
        Some(p) if p < 1.0 => (lag as f64 / (1.0 - p)).round() as u64,
        _ => v.end_offsets.iter().sum::<u64>().max(lag),
    };
    (total.saturating_sub(lag), total)
}

fn bar_message(v: &VersionStatus) -> String {
    let pct = v.progress.unwrap_or(0.0) * 100.0;
    let lag = v.lag.unwrap_or(0);
    let (done, total) = done_total(v);
    let counts = format!("{}/{}", group(done), group(total));
    let rest = match v.state {
        State::Replaying => format!(
            "{pct:.1}% · {} events/s · ETA {}",
            group_rate(v.events_per_second),
            v.eta_seconds
                .map_or_else(|| "-".to_owned(), |s| format!("{s:.1} s"))
        ),
        State::Failed => format!("failed {}", failure_text(v)),
        State::Retired => "retired · view dropped".to_owned(),
        _ if lag > 0 => format!(
            "{} · lag {} · {} events/s",
            v.state,
            group(lag),
            group_rate(v.events_per_second)
        ),
        _ => format!("{} · {} events/s", v.state, group_rate(v.events_per_second)),
    };
    match v.state {
        State::Retired => rest,
        _ => format!("{counts} {rest}"),
    }
}

fn update_bar(bar: &indicatif::ProgressBar, v: &VersionStatus) {
    if v.state == State::Retired {
        // No bar for a version without a view: only its state.
        bar.set_style(retired_style());
    }
    let (done, total) = done_total(v);
    bar.set_length(total);
    bar.set_position(done);
    bar.set_message(bar_message(v));
}

/// The line of a retired version in `status --watch`: no bar, no counts.
fn retired_style() -> indicatif::ProgressStyle {
    indicatif::ProgressStyle::with_template("{prefix:18!} {wide_msg}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
}

/// Status of every processor, or of one with only its topic.
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
                .filter(|t| t.name == p.topic)
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
                        let line = serde_json::to_string(&report).map_err(|e| Failure {
                            code: 1,
                            message: format!("encoding JSON: {e}"),
                        })?;
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
                update_bar(&bar, v);
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

fn failure_text(v: &VersionStatus) -> String {
    match &v.failure {
        Some(f) => {
            let place = match (f.partition, f.offset) {
                (Some(p), Some(o)) => format!("at partition {p} offset {o}: "),
                (Some(p), None) => format!("at partition {p}: "),
                _ => String::new(),
            };
            format!("{place}{}", f.message)
        }
        None => "unknown failure".into(),
    }
}

fn render_json(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Status as a table.
pub(crate) fn render_status(report: &StatusReport) -> String {
    let mut out = String::new();
    if report.processors.is_empty() {
        out.push_str("no processors deployed\n");
    }
    for p in &report.processors {
        out.push_str(&format!(
            "{}  (topic {}; alias -> {})\n",
            p.name,
            p.topic,
            alias_text(p)
        ));
        out.push_str(&format!(
            "  {:<12} {:<10} {:>8} {:>10} {:>12} {:>8}  {}\n",
            "VERSION", "STATE", "PROGRESS", "LAG", "EVENTS/S", "ETA", "DIGEST"
        ));
        for v in &p.versions {
            // A retired version has no view: no progress, lag or rate.
            let (progress, lag, rate) = match (v.progress, v.lag) {
                (Some(progress), Some(lag)) => (
                    format!("{:.1}%", progress * 100.0),
                    group(lag),
                    group_rate(v.events_per_second),
                ),
                _ => ("-".to_owned(), "-".to_owned(), "-".to_owned()),
            };
            out.push_str(&format!(
                "  {:<12} {:<10} {:>8} {:>10} {:>12} {:>8}  {}\n",
                v.version,
                v.state.to_string(),
                progress,
                lag,
                rate,
                v.eta_seconds
                    .map_or_else(|| "-".to_owned(), |s| format!("{s:.1}s")),
                &v.digest[..v.digest.len().min(12)]
            ));
            if v.state == State::Failed {
                out.push_str(&format!("      failed {}\n", failure_text(v)));
            }
            if let Some(e) = &v.log_error {
                out.push_str(&format!("      waiting for the log: {e}\n"));
            }
            if let Some(last) = v.dead_letters.last() {
                out.push_str(&format!(
                    "      {} dead letters; latest at partition {} offset {}: {}\n",
                    v.dead_letter_count, last.partition, last.offset, last.message
                ));
            }
        }
    }
    for t in &report.topics {
        out.push_str(&format!(
            "topic {}: {} partitions, {} events (end offsets {:?})\n",
            t.name,
            t.partitions,
            group(t.end_offsets.iter().sum::<u64>()),
            t.end_offsets
        ));
    }
    out
}

/// A diff as text: the counts, then each differing row side by side.
pub(crate) fn render_diff(r: &DiffReport) -> String {
    let mut out = format!(
        "{} vs {} at offsets {:?}{}\n  added {}  removed {}  changed {}  unchanged {}\n",
        r.a,
        r.b,
        r.offsets,
        if r.prefix.is_empty() {
            String::new()
        } else {
            format!(" (keys {}*)", r.prefix)
        },
        group(r.counts.added),
        group(r.counts.removed),
        group(r.counts.changed),
        group(r.counts.unchanged)
    );
    let show =
        |v: &Option<serde_json::Value>| v.as_ref().map_or_else(|| "-".to_owned(), render_json);
    for row in &r.rows {
        let mark = match row.change {
            Change::Added => "+",
            Change::Removed => "-",
            Change::Changed => "~",
        };
        out.push_str(&format!("{mark} {}\n", row.key));
        if row.fields.is_empty() {
            out.push_str(&format!(
                "    {:<8} {}\n    {:<8} {}\n",
                r.a_label(),
                show(&row.a),
                r.b_label(),
                show(&row.b)
            ));
        } else {
            for f in &row.fields {
                out.push_str(&format!(
                    "    {:<14} {:>14} -> {}\n",
                    f.path,
                    show(&f.a),
                    show(&f.b)
                ));
            }
        }
    }
    if let Some(next) = &r.next_after {
        out.push_str(&format!("(more differing rows: --after '{next}')\n"));
    }
    out
}

impl DiffReport {
    fn a_label(&self) -> &str {
        self.a.split_once('@').map_or(&self.a, |(_, v)| v)
    }
    fn b_label(&self) -> &str {
        self.b.split_once('@').map_or(&self.b, |(_, v)| v)
    }
}

/// `n` with thousands separators: `1234567` as `1,234,567`.
pub(crate) fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A rate rounded to a whole number, with thousands separators.
pub(crate) fn group_rate(rate: f64) -> String {
    group(rate.max(0.0).round() as u64)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use clap::Parser;

    #[test]
    fn serve_takes_the_view_cache_and_write_buffer_sizes() {
        let parse = |args: &[&str]| match super::Cli::try_parse_from(args).unwrap().command {
            super::Command::Serve {
                view_cache_mb,
                view_write_buffer_mb,
                ..
            } => (view_cache_mb, view_write_buffer_mb),
            _ => unreachable!("serve parses as serve"),
        };
        assert_eq!(parse(&["kappa", "serve"]), (256, 64));
        assert_eq!(
            parse(&[
                "kappa",
                "serve",
                "--view-cache-mb",
                "8",
                "--view-write-buffer-mb",
                "0"
            ]),
            (8, 0)
        );
        assert!(super::Cli::try_parse_from(["kappa", "serve", "--view-cache-mb", "0"]).is_err());
        let defaults = crate::HostOptions::default().view_options();
        assert_eq!(defaults.cache_bytes, 256 << 20);
        assert_eq!(defaults.write_buffer_bytes, 64 << 20);
    }

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(super::group(0), "0");
        assert_eq!(super::group(999), "999");
        assert_eq!(super::group(1000), "1,000");
        assert_eq!(super::group(89_237), "89,237");
        assert_eq!(super::group(1_234_567), "1,234,567");
        assert_eq!(super::group_rate(89_236.6), "89,237");
    }

    fn version(
        state: &str,
        lag: serde_json::Value,
        progress: serde_json::Value,
    ) -> super::VersionStatus {
        serde_json::from_value(serde_json::json!({
            "id": "p@1.0.0", "name": "p", "version": "1.0.0", "digest": "00", "topic": "t",
            "state": state, "caught_up": false, "applied_offsets": [],
            "end_offsets": [1_000_000, 2_200_000], "lag": lag, "progress": progress,
            "events_per_second": 89_237.4, "eta_seconds": 2.0, "processed_since_start": 0,
            "failure": null, "settings": {}, "deployed_at_ms": 0
        }))
        .unwrap()
    }

    #[test]
    fn progress_counts_and_percentages_agree_and_a_retired_version_has_none() {
        let v = version("replaying", 2_600_000.into(), 0.1875.into());
        assert_eq!(super::done_total(&v), (600_000, 3_200_000));
        assert_eq!(
            super::bar_message(&v),
            "600,000/3,200,000 18.8% · 89,237 events/s · ETA 2.0 s"
        );
        assert!(super::progress_line(&v).contains("600,000/3,200,000 events (18.8%)"));
        let retired = version("retired", serde_json::Value::Null, serde_json::Value::Null);
        assert_eq!(super::done_total(&retired), (0, 0));
        assert_eq!(super::bar_message(&retired), "retired · view dropped");
    }
}
