//! The `kappa` command line. `kappa serve` runs a host; every other
//! subcommand is a client of a running host's HTTP API (like `kubectl`), and
//! every subcommand that prints data takes `--json` (the shapes of
//! `crate::model`, documented in `docs/api.md`).
//!
//! Exit codes (`EXIT_CODES`, shown by `kappa --help`): 0 success, 1 the
//! operation failed, 2 bad usage or bad input (nothing was changed).
//!
//! This module holds the arguments (clap) and the dispatch; each command or
//! group of commands has a module of its own: [`serve`], [`topics`] (topics
//! and `consume`), [`produce`], [`deploy`] (deploy, promote, rollback,
//! retire), [`status`], [`views`] (get, scan, digest, diff) and [`plugin`].
//! What they print is rendered by `crate::render`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::LazyLock;

use clap::{Parser, Subcommand};

use crate::client::{Client, ClientError, DEFAULT_SERVER};
use crate::registry::Settings;

mod deploy;
mod plugin;
mod produce;
mod serve;
mod status;
mod topics;
mod views;

/// The settings of a version deployed without options: the defaults of
/// `kappa deploy`'s options.
static DEFAULT_SETTINGS: LazyLock<Settings> = LazyLock::new(Settings::default);

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
    Serve(ServeArgs),
    /// Create or list topics.
    #[command(subcommand)]
    Topic(TopicCommand),
    /// Append events to a topic from JSON lines (a file or stdin). Each line:
    /// {"key": ..., "value": ..., "timestamp": ms, "partition": n, "headers": {..}}.
    /// Blank lines are skipped; errors name lines counted from 1, blank ones
    /// included.
    Produce(ProduceArgs),
    /// Print events of one partition of a topic, one JSON object a line.
    Consume(ConsumeArgs),
    /// Deploy a component as NAME@VERSION; it replays the topic from the start.
    Deploy(DeployArgs),
    /// Show processors, versions (state, progress, lag, rate, ETA) and topics.
    Status(StatusArgs),
    /// Read one key of a view: NAME (the promoted version) or NAME@VERSION.
    ///
    /// Prints the value as stored: JSON as the plugin wrote it (key order and
    /// number formatting kept), other UTF-8 as text, other bytes as base64.
    Get {
        /// NAME or NAME@VERSION.
        view: String,
        /// The key.
        key: String,
        /// The key is hex (for binary keys).
        #[arg(long)]
        hex: bool,
        /// Print the stored bytes exactly, with no newline (with --json: add
        /// them as `value_base64`).
        #[arg(long)]
        raw: bool,
    },
    /// List rows of a view in key order.
    ///
    /// One row a line: the key, a tab and the value as `kappa get` prints it.
    Scan(ScanArgs),
    /// Print the digest of a view (sha256 over its rows), to compare replays.
    Digest {
        /// NAME or NAME@VERSION.
        view: String,
    },
    /// Compare two versions' views at the same log position.
    Diff(DiffArgs),
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
    Demo(DemoArgs),
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Write the example components built into this binary (payments-v1,
    /// payments-v2, starter, faulty, echo-v1, echo-v2, payments-v3) as .wasm
    /// files into a directory.
    Examples {
        /// Directory to write into (created if missing).
        dir: PathBuf,
    },
    /// Write a starter project for a new plugin: the contract, a processor
    /// that counts events per key, and how to build it.
    New {
        /// Plugin name (also the package name).
        name: String,
        #[command(flatten)]
        options: crate::scaffold::Options,
        /// Directory to write (default ./NAME); must be absent or empty.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Say whether a .wasm file is a valid plugin for this host, and if not
    /// exactly why (runs locally, no server). Exit 0 valid, 1 invalid.
    Check {
        /// The component (.wasm).
        file: PathBuf,
        /// The data directory of the `kappa serve` the file will be deployed
        /// to: the machine code compiled here goes into its compiled-code
        /// cache, so the deploy does not compile it again. Default: that of
        /// `serve` (kappa-data), if it exists.
        #[arg(long, env = "KAPPA_DATA_DIR")]
        data_dir: Option<PathBuf>,
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

// The arguments of `kappa serve` (its help is the variant's).
#[derive(Debug, clap::Args)]
struct ServeArgs {
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
    /// events are processed again), and up to four times that while the
    /// view's row cache leaves the room unused. 0 writes every batch at once.
    #[arg(long, env = "KAPPA_VIEW_WRITE_BUFFER_MB", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(0..=(1 << 20)))]
    view_write_buffer_mb: u64,
    /// Per view: MiB of rows kept in a hash table of the latest value of
    /// recently used keys, in front of the write buffer and the file (a
    /// replay into a new view reads nothing else while it fits). 0: none.
    #[arg(long, env = "KAPPA_VIEW_ROW_CACHE_MB", default_value_t = 256,
          value_parser = clap::value_parser!(u64).range(0..=(1 << 20)))]
    view_row_cache_mb: u64,
    /// Most threads one version processes its partitions on (versions of
    /// contract 0.3.0-rc.1 and later; earlier ones use one). Default: the
    /// machine's cores.
    #[arg(long, env = "KAPPA_THREADS_PER_VERSION",
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    threads_per_version: Option<u64>,
    #[command(flatten)]
    log: crate::eventlog::LogArgs,
}

// The arguments of `kappa produce` (its help is the variant's).
#[derive(Debug, clap::Args)]
struct ProduceArgs {
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
}

// The arguments of `kappa consume` (its help is the variant's).
#[derive(Debug, clap::Args)]
struct ConsumeArgs {
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
}

// The arguments of `kappa deploy` (its help is the variant's).
#[derive(Debug, clap::Args)]
struct DeployArgs {
    /// The component (.wasm).
    file: PathBuf,
    /// Processor name.
    #[arg(long)]
    name: String,
    /// Semantic version of this component.
    #[arg(long)]
    version: String,
    /// Topic to process. Repeat it for a version of contract 0.3.0 that
    /// reads several topics of one partition count: the first given is
    /// topic index 0.
    #[arg(long, required = true)]
    topic: Vec<String>,
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
    #[arg(long, default_value_t = DEFAULT_SETTINGS.batch_timeout_ms)]
    batch_timeout_ms: u64,
    /// Memory limit of the plugin, MiB: its linear memories and the view
    /// writes of its batch in progress.
    #[arg(long, default_value_t = DEFAULT_SETTINGS.memory_limit_bytes >> 20)]
    memory_limit_mb: u64,
    /// What to do with an event the plugin fails on: `stop` the version
    /// (it is marked failed), or `skip` it and list it as a dead letter.
    #[arg(long, default_value = "stop")]
    on_error: crate::registry::OnError,
    /// Most threads the version processes its partitions on, when its state
    /// is per partition (contract 0.3.0-rc.1): bounds what its replay takes
    /// of the machine. 0: the server's --threads-per-version.
    #[arg(long, default_value_t = 0)]
    threads: u32,
    /// With several topics: how long (ms) to wait for a topic at its end of
    /// the log before delivering the other topics' events without it, so
    /// that fewer events arrive late. 0: do not wait.
    #[arg(long, default_value_t = 0)]
    topic_idle_ms: u64,
    /// Wait until the version has caught up (or failed), showing progress.
    #[arg(long)]
    wait: bool,
}

// The arguments of `kappa status` (its help is the variant's).
#[derive(Debug, clap::Args)]
struct StatusArgs {
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
}

// The arguments of `kappa scan` (its help is the variant's).
#[derive(Debug, clap::Args)]
struct ScanArgs {
    /// NAME or NAME@VERSION.
    view: String,
    /// Only keys with this prefix.
    #[arg(long, default_value = "")]
    prefix: String,
    /// Most rows to print (at least 1; a page holds at most 10,000).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    limit: u64,
    /// Start after this key (the `next_after` of a previous page).
    #[arg(long)]
    after: Option<String>,
    /// Print each row's stored bytes, base64, after the key and a tab (with
    /// --json: add them as `value_base64`).
    #[arg(long)]
    raw: bool,
}

// The arguments of `kappa diff` (its help is the variant's).
#[derive(Debug, clap::Args)]
struct DiffArgs {
    /// First version, NAME@VERSION (or NAME for the promoted one).
    a: String,
    /// Second version.
    b: String,
    /// Only keys with this prefix.
    #[arg(long, default_value = "")]
    prefix: String,
    /// Most differing rows to print (0 for the counts alone; a page holds
    /// at most 10,000; the counts cover all keys).
    #[arg(long, default_value_t = 20)]
    limit: u64,
    /// Rows after this key (paging).
    #[arg(long)]
    after: Option<String>,
    /// Wait up to this many seconds for a replaying version to catch up.
    #[arg(long, default_value_t = 0)]
    wait: u64,
}

// The arguments of `kappa demo` (its help is the variant's).
#[derive(Debug, clap::Args)]
struct DemoArgs {
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

/// A failure of the operation itself (exit code 1).
fn failed(message: impl Into<String>) -> Failure {
    Failure {
        code: 1,
        message: message.into(),
    }
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<(), Failure> {
    let text =
        serde_json::to_string_pretty(value).map_err(|e| failed(format!("encoding JSON: {e}")))?;
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
        Command::Serve(args) => serve::run(args, token).await,
        Command::Demo(DemoArgs {
            data_dir,
            events,
            keep,
        }) => crate::demo::run(data_dir, events, json, keep)
            .await
            .map_err(|e| failed(format!("{e:#}"))),
        Command::Plugin(PluginCommand::Examples { dir }) => plugin::examples(&dir, json),
        Command::Plugin(PluginCommand::New { name, options, dir }) => {
            plugin::new(&name, &options, dir, json)
        }
        Command::Plugin(PluginCommand::Check { file, data_dir }) => {
            plugin::check(file, data_dir, json).await
        }
        Command::Topic(TopicCommand::Create { name, partitions }) => {
            topics::create(&client()?, &name, partitions, json).await
        }
        Command::Topic(TopicCommand::List) => topics::list(&client()?, json).await,
        Command::Consume(args) => topics::consume(&client()?, args, json).await,
        Command::Produce(ProduceArgs {
            topic,
            file,
            batch,
            request_id,
            retries,
        }) => {
            let options = produce::Options {
                batch,
                request_id,
                retries,
                json,
            };
            produce::run(&client()?, &topic, file, options).await
        }
        Command::Deploy(args) => deploy::deploy(&client()?, args, json).await,
        Command::Promote { version, force } => {
            deploy::promote(&client()?, &version, force, json).await
        }
        Command::Rollback { name } => deploy::rollback(&client()?, &name, json).await,
        Command::Retire { version } => deploy::retire(&client()?, &version, json).await,
        Command::Status(args) => status::status(&client()?, args, json).await,
        Command::Get {
            view,
            key,
            hex,
            raw,
        } => views::get(&client()?, &view, &key, (hex, raw), json).await,
        Command::Scan(args) => views::scan(&client()?, args, json).await,
        Command::Digest { view } => views::digest(&client()?, &view, json).await,
        Command::Diff(args) => views::diff(&client()?, args, json).await,
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
