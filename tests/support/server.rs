//! The server harness: runs the real `kappa` binary as a server on a
//! loopback port with its own data directory, and runs the CLI against it
//! exactly as a user would.

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
