//! Harness of the end-to-end tests: runs the real `kappa` binary as a server
//! on a loopback port with its own data directory, and runs the CLI against
//! it exactly as a user would. Also computes, independently of the plugins,
//! the views that the example payments plugins must build.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const KAPPA: &str = env!("CARGO_BIN_EXE_kappa");

/// A `kappa serve` process.
pub struct Server {
    pub data_dir: PathBuf,
    pub url: String,
    child: Child,
}

impl Server {
    /// Starts a server on a free loopback port over `data_dir`.
    pub fn start(data_dir: &Path) -> Server {
        Server::start_with(data_dir, &[], &[])
    }

    /// Same, with more `serve` arguments (`--log kafka ...`, `--token ...`, or a
    /// `--listen` address of its own) and environment variables.
    pub fn start_with(data_dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Server {
        Server::try_start_with(data_dir, args, envs).unwrap_or_else(|| {
            panic!("kappa serve {args:?} exited before listening (its stderr is above)")
        })
    }

    /// Same, or `None` when the server exited before listening (for a
    /// `--listen` port of the caller's that another process took).
    pub fn try_start_with(data_dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Option<Server> {
        let listen: &[&str] = if args.contains(&"--listen") {
            &[]
        } else {
            &["--listen", "127.0.0.1:0"]
        };
        let mut child = Command::new(KAPPA)
            .arg("serve")
            .args(listen)
            .args(["--log-level", "warn,kappa=info"])
            .arg("--data-dir")
            .arg(data_dir)
            .args(args)
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting kappa serve");
        // The first stdout line announces the bound address.
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("reading the address line");
        if line.is_empty() {
            let _ = child.wait();
            return None;
        }
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from kappa serve: {line:?}"))
            .to_owned();
        Some(Server {
            data_dir: data_dir.to_owned(),
            url,
            child,
        })
    }

    /// The process id of the server.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Deploys the starter plugin as `counts@VERSION` on `topic` and waits
    /// until it has caught up: the healthy version many tests run beside others.
    pub fn deploy_starter(&self, version: &str, topic: &str) -> Value {
        self.json(&[
            "deploy",
            kappa_plugins::STARTER.path,
            "--name",
            "counts",
            "--version",
            version,
            "--topic",
            topic,
            "--wait",
        ])
    }

    /// Runs `kappa ARGS --server URL`, returning its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_stdin(args, None)
    }

    /// Same, feeding `stdin`.
    pub fn run_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(KAPPA);
        cmd.args(args).args(["--server", &self.url]);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("running kappa");
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        child.wait_with_output().expect("waiting for kappa")
    }

    /// Runs a command that must succeed, with `--json`, and parses its output.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.run(&all);
        assert!(
            out.status.success(),
            "kappa {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "kappa {args:?} printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Runs a command that must fail with `code`, returning its stderr.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(code),
            "kappa {args:?}: stdout {} stderr {stderr}",
            String::from_utf8_lossy(&out.stdout)
        );
        stderr
    }

    /// Deploys the component at `path` as `payments@VERSION` on topic
    /// `payments`, with `extra` deploy arguments; the JSON report.
    pub fn deploy_payments(&self, path: &str, version: &str, extra: &[&str]) -> Value {
        let mut args = vec![
            "deploy",
            path,
            "--name",
            "payments",
            "--version",
            version,
            "--topic",
            "payments",
        ];
        args.extend(extra);
        self.json(&args)
    }

    /// Status of one version, as JSON.
    pub fn version(&self, id: &str) -> Value {
        let (name, version) = id.split_once('@').unwrap();
        let status = self.json(&["status", name]);
        status["processors"][0]["versions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["version"] == version)
            .unwrap_or_else(|| panic!("no {id} in {status}"))
            .clone()
    }

    /// Waits until `id` has applied every event of its topic.
    pub fn wait_applied(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let v = self.version(id);
            assert_ne!(v["state"], "failed", "{id} failed: {v}");
            if v["lag"] == 0 && v["state"] != "replaying" {
                return v;
            }
            assert!(Instant::now() < deadline, "{id} did not catch up: {v}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every row of a view, key to value (as JSON text, compact).
    pub fn rows(&self, view: &str) -> BTreeMap<String, String> {
        let mut rows = BTreeMap::new();
        let mut after: Option<String> = None;
        loop {
            let mut args = vec!["scan", view, "--limit", "5000"];
            if let Some(a) = &after {
                args.extend(["--after", a.as_str()]);
            }
            let page = self.json(&args);
            for row in page["rows"].as_array().unwrap() {
                rows.insert(
                    row["key"].as_str().unwrap().to_owned(),
                    row["value"].to_string(),
                );
            }
            match page["next_after"].as_str() {
                Some(next) => after = Some(next.to_owned()),
                None => return rows,
            }
        }
    }

    /// Kills the server with SIGKILL (no clean shutdown).
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Stops the server cleanly (SIGTERM) and waits for it.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.kill().unwrap();
        panic!("kappa serve did not stop on SIGTERM within 30 s");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether this is a CI run (`CI` set, as CI services do): there, a test
/// never skips itself.
pub fn under_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// For a test that cannot run on this machine: under CI it fails; elsewhere
/// it says loudly, past the harness's output capture, that `what` is
/// skipped and how to enable it. The caller then returns.
pub fn cannot_run(what: &str, how_to_enable: &str) {
    use std::io::Write;
    assert!(
        !under_ci(),
        "{what} cannot run, and under CI no test may skip: {how_to_enable}"
    );
    let _ = std::io::stderr().write_all(
        format!("\n\n*** SKIPPING {what}. To run it: {how_to_enable} ***\n\n").as_bytes(),
    );
}

/// Sends a raw HTTP/1.1 request to a server at `url` and returns (status,
/// body); status 0 when the server could not be reached or hung up.
pub fn http(url: &str, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://");
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return (0, String::new());
    };
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body))
        .is_err()
    {
        return (0, String::new());
    }
    let mut response = Vec::new();
    if stream.read_to_end(&mut response).is_err() || response.len() < 12 {
        return (0, String::new());
    }
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response[9..12].parse().unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Writes payments as a JSON-lines file for `kappa produce --file`.
pub fn write_jsonl(path: &Path, payments: &[kappa::workload::Payment]) {
    let text: String = payments
        .iter()
        .map(|p| serde_json::to_string(&p.to_event_line()).unwrap() + "\n")
        .collect();
    std::fs::write(path, text).unwrap();
}

/// The rules of the example payments plugins, written again here from their
/// specification (not from their code), to check the views they build.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub large_cents: i64,
    /// `Some((max_txns, window_ms))` enables the velocity rule.
    pub velocity: Option<(usize, i64)>,
}

pub const V1_RULES: Rules = Rules {
    large_cents: 500_000,
    velocity: None,
};
pub const V2_RULES: Rules = Rules {
    large_cents: 1_000_000,
    velocity: Some((4, 60_000)),
};

/// The view a payments plugin with `rules` builds from `payments` (in log
/// order per account, which is what key partitioning guarantees).
pub fn expected_view(
    payments: &[kappa::workload::Payment],
    rules: Rules,
) -> BTreeMap<String, String> {
    #[derive(Default)]
    struct Account {
        txns: u64,
        total: i64,
        flagged: u64,
        window: Vec<i64>,
    }
    let mut accounts: BTreeMap<String, Account> = BTreeMap::new();
    let mut view = BTreeMap::new();
    for p in payments {
        let acct = accounts.entry(p.account.clone()).or_default();
        acct.txns += 1;
        acct.total += p.amount_cents;
        let mut rule = None;
        if p.amount_cents >= rules.large_cents {
            rule = Some("large-amount");
        }
        if let Some((max_txns, window_ms)) = rules.velocity {
            acct.window
                .retain(|&t| t > p.timestamp - window_ms && t <= p.timestamp);
            acct.window.push(p.timestamp);
            acct.window.sort_unstable();
            if rule.is_none() && acct.window.len() >= max_txns {
                rule = Some("velocity");
            }
            view.insert(
                format!("window/{}", p.account),
                serde_json::json!(acct.window).to_string(),
            );
        }
        if let Some(rule) = rule {
            acct.flagged += 1;
            view.insert(
                format!("flag/{}", p.txn),
                format!(
                    r#"{{"account":"{}","amount_cents":{},"rule":"{rule}","timestamp":{}}}"#,
                    p.account, p.amount_cents, p.timestamp
                ),
            );
        }
        view.insert(
            format!("account/{}", p.account),
            format!(
                r#"{{"txns":{},"total_cents":{},"flagged":{}}}"#,
                acct.txns, acct.total, acct.flagged
            ),
        );
    }
    view
}

/// The digest `kappa digest` prints for a view with exactly these rows:
/// sha256 over each (key, value) in key order, each framed by its length.
pub fn digest_of(view: &BTreeMap<String, String>) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for (k, v) in view {
        h.update((k.len() as u64).to_le_bytes());
        h.update(k.as_bytes());
        h.update((v.len() as u64).to_le_bytes());
        h.update(v.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Parses every value of an expected view as JSON, the way `rows` returns them.
pub fn as_json_rows(view: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    view.iter()
        .map(|(k, v)| {
            (
                k.clone(),
                serde_json::from_str::<Value>(v).unwrap().to_string(),
            )
        })
        .collect()
}

/// Counts of a diff between two expected views: added, removed, changed, unchanged.
pub fn expected_diff(
    a: &BTreeMap<String, String>,
    b: &BTreeMap<String, String>,
    prefix: &str,
) -> [u64; 4] {
    let mut counts = [0u64; 4];
    let keys: std::collections::BTreeSet<&String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| k.starts_with(prefix))
        .collect();
    for k in keys {
        match (a.get(k), b.get(k)) {
            (None, Some(_)) => counts[0] += 1,
            (Some(_), None) => counts[1] += 1,
            (Some(x), Some(y)) if x != y => counts[2] += 1,
            _ => counts[3] += 1,
        }
    }
    counts
}

/// The counts of a `kappa diff --json` answer, in the same order.
pub fn diff_counts(report: &Value) -> [u64; 4] {
    let c = &report["counts"];
    ["added", "removed", "changed", "unchanged"].map(|k| c[k].as_u64().unwrap())
}
