//! `kappa serve`: opens the host on a data directory and serves its HTTP
//! API until Ctrl-C or SIGTERM, then stops the workers and syncs the views.
//! It refuses to listen beyond loopback without a token.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::{Failure, ServeArgs, failed, usage};
use crate::lifecycle::{Host, HostOptions};

/// Runs `kappa serve` with the token of the global options, if any.
pub(super) async fn run(args: ServeArgs, token: Option<String>) -> Result<(), Failure> {
    let ServeArgs {
        data_dir,
        listen,
        auth_reads,
        max_body_mb,
        max_event_bytes,
        view_cache_mb,
        view_write_buffer_mb,
        view_row_cache_mb,
        threads_per_version,
        log,
    } = args;
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
        view_write_buffer_bytes: usize::try_from(view_write_buffer_mb << 20).unwrap_or(usize::MAX),
        view_row_cache_bytes: usize::try_from(view_row_cache_mb << 20).unwrap_or(usize::MAX),
        threads_per_version: threads_per_version
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or_else(|| HostOptions::default().threads_per_version),
        backend: log.backend().map_err(usage)?,
        partitions: log.kafka_partitions.clone(),
        peers: log.peers.clone(),
        peer_token: token,
        ..HostOptions::default()
    };
    serve(data_dir, listen, options, host_options).await
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
        .map_err(|e| failed(format!("opening the data directory panicked: {e}")))??;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| failed(format!("cannot listen on {listen}: {e}")))?;
    let addr = listener.local_addr().map_err(|e| failed(e.to_string()))?;
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
        .map_err(|e| failed(format!("serving: {e}")))?;
    tracing::info!("shutting down: stopping workers and syncing views");
    tokio::task::spawn_blocking(move || host.shutdown())
        .await
        .map_err(|e| failed(e.to_string()))?;
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

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test fails loudly on a parse error")]
mod tests {
    use clap::Parser;

    use crate::cli::{Cli, Command};

    #[test]
    fn serve_takes_the_view_cache_write_buffer_and_row_cache_sizes() {
        let parse = |args: &[&str]| match Cli::try_parse_from(args).unwrap().command {
            Command::Serve(args) => (
                args.view_cache_mb,
                args.view_write_buffer_mb,
                args.view_row_cache_mb,
            ),
            _ => unreachable!("serve parses as serve"),
        };
        assert_eq!(parse(&["kappa", "serve"]), (256, 64, 256));
        assert_eq!(
            parse(&[
                "kappa",
                "serve",
                "--view-cache-mb",
                "8",
                "--view-write-buffer-mb",
                "0",
                "--view-row-cache-mb",
                "0"
            ]),
            (8, 0, 0)
        );
        assert!(Cli::try_parse_from(["kappa", "serve", "--view-cache-mb", "0"]).is_err());
        let threads = |args: &[&str]| match Cli::try_parse_from(args).unwrap().command {
            Command::Serve(args) => args.threads_per_version,
            _ => unreachable!("serve parses as serve"),
        };
        assert_eq!(threads(&["kappa", "serve"]), None);
        assert_eq!(
            threads(&["kappa", "serve", "--threads-per-version", "3"]),
            Some(3)
        );
        assert!(Cli::try_parse_from(["kappa", "serve", "--threads-per-version", "0"]).is_err());
        let defaults = kappa::HostOptions::default().view_options();
        assert_eq!(defaults.cache_bytes, 256 << 20);
        assert_eq!(defaults.write_buffer_bytes, 64 << 20);
        assert_eq!(defaults.row_cache_bytes, 256 << 20);
    }
}
