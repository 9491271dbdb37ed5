//! Durability seen in the host's system calls. A SIGKILL leaves the page
//! cache intact, so the crash test alone would pass with fsync turned off;
//! here strace watches a running `kappa serve` and the order of its system
//! calls proves that an acknowledged append was written to its segment file
//! and fsynced before the first byte of the HTTP answer was written, and
//! that a promotion's registry commit was fsynced before its answer.
//!
//! Needs `strace` (scripts/test installs it as root when missing). Without
//! it the test fails under CI and is skipped loudly elsewhere.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use support::*;

/// The system calls watched: reads of requests, writes of answers and of
/// files, and syncs.
const CALLS: &str = "read,recvfrom,recvmsg,readv,write,writev,pwrite64,pwritev,pwritev2,\
                     sendto,sendmsg,fsync,fdatasync";

/// strace attached to every thread of a running process, writing to a file.
struct Tracer {
    child: Child,
}

impl Tracer {
    fn attach(pid: u32, out: &Path) -> Option<Tracer> {
        let mut child = match Command::new("strace")
            .args(["-f", "-qq", "-y", "-s", "80", "-e"])
            .arg(format!("trace={CALLS}"))
            .arg("-o")
            .arg(out)
            .args(["-p", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(child) => child,
            Err(e) => {
                cannot_run(
                    &format!("tests/durability.rs (strace cannot be started: {e})"),
                    "install strace (`apt-get install -y strace`; scripts/test does it as root)",
                );
                return None;
            }
        };
        // With -qq strace prints nothing once attached: wait until every
        // thread of the host is traced (its status shows a tracer).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let tasks: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/task"))
                .unwrap()
                .map(|t| t.unwrap().path())
                .collect();
            let traced = tasks.iter().all(|t| {
                std::fs::read_to_string(t.join("status"))
                    .unwrap_or_default()
                    .lines()
                    .any(|l| l.starts_with("TracerPid:") && l.trim_end() != "TracerPid:\t0")
            });
            if traced {
                return Some(Tracer { child });
            }
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                panic!("strace could not attach ({status}): {err}");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "strace did not attach"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Detaches (SIGINT makes strace let go of the host and flush its file).
    fn detach(mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        self.child.wait().unwrap();
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One raw request on a connection of its own; the answer.
fn request(url: &str, method: &str, path: &str, body: &str) -> String {
    let addr = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{path}: {response}");
    response
}

/// One line of the trace: `PID NAME(FD<PATH>, ...) = RESULT`, or the two
/// halves of a call another thread interrupted.
#[derive(Debug)]
struct Call {
    pid: String,
    name: String,
    /// The first argument as strace shows it with -yy: `17</a/b.seg>` or
    /// `23<TCP:[127.0.0.1:7070->127.0.0.1:5555]>`.
    fd: String,
    rest: String,
    /// The trace line where the call started.
    line: usize,
    /// Where the call returned: this line, or its `resumed` line.
    done: usize,
    ok: bool,
}

fn parse(trace: &str) -> Vec<Call> {
    let lines: Vec<&str> = trace.lines().collect();
    let mut calls: Vec<Call> = Vec::new();
    // Unfinished calls by thread: index in `calls`.
    let mut open: std::collections::HashMap<String, usize> = Default::default();
    for (i, line) in lines.iter().enumerate() {
        let Some((pid, text)) = line.split_once(' ') else {
            continue;
        };
        let text = text.trim_start();
        if let Some(resumed) = text.strip_prefix("<... ") {
            if let Some(c) = open.remove(pid) {
                // What a read got is shown only when it returns.
                calls[c].rest.push_str(resumed);
                calls[c].done = i;
                calls[c].ok = !resumed.contains("= -1");
            }
            continue;
        }
        let (text, unfinished) = match text.strip_suffix("<unfinished ...>") {
            Some(start) => (start.trim_end(), true),
            None => (text, false),
        };
        let Some((name, args)) = text.split_once('(') else {
            continue;
        };
        let fd = args.split([',', ')']).next().unwrap_or_default().to_owned();
        calls.push(Call {
            pid: pid.to_owned(),
            name: name.to_owned(),
            fd,
            rest: args.to_owned(),
            line: i,
            done: i,
            ok: !unfinished && !text.contains("= -1"),
        });
        if unfinished {
            open.insert(pid.to_owned(), calls.len() - 1);
        }
    }
    calls
}

/// The number of a call's fd (`17` of `17</a/b.seg>`).
fn fd_number(c: &Call) -> &str {
    c.fd.split('<').next().unwrap_or_default()
}

/// The path of a call's fd, when it is a file.
fn path_of(c: &Call) -> Option<String> {
    c.fd.split_once('<')
        .map(|(_, p)| p.trim_end_matches('>').to_owned())
        .filter(|p| p.starts_with('/'))
}

/// Checks, for the request whose first line is `request_line`, that a sync
/// of a file whose path ends with `suffix` returned after the request was
/// read and before the first byte of its answer was written, and that a
/// write to that file came first. Returns the synced path.
fn synced_before_answer(calls: &[Call], request_line: &str, suffix: &str) -> String {
    let what = request_line;
    // The server may read the request in pieces (hyper reads 24 bytes
    // first): its start is enough to find it.
    let start = format!("\"{}", &request_line[..20]);
    let read = calls
        .iter()
        .position(|c| {
            (c.name.starts_with("read") || c.name.starts_with("recv")) && c.rest.contains(&start)
        })
        .unwrap_or_else(|| panic!("{what}: the request is never read"));
    let socket = fd_number(&calls[read]).to_owned();
    let answer = (read + 1..calls.len())
        .find(|&i| {
            let c = &calls[i];
            fd_number(c) == socket
                && (c.name.starts_with("write") || c.name.starts_with("send"))
                && c.rest.contains("HTTP/1.1 ")
        })
        .unwrap_or_else(|| panic!("{what}: no answer written on fd {socket}"));
    assert!(
        calls[answer].rest.contains("HTTP/1.1 200"),
        "{what}: {:?}",
        calls[answer]
    );
    // The line where the answer's write started: every sync counted must
    // have returned before it.
    let answer_line = calls[answer].line;
    let synced = calls[read..answer]
        .iter()
        .filter(|c| (c.name == "fsync" || c.name == "fdatasync") && c.ok && c.done < answer_line)
        .filter_map(|c| path_of(c).filter(|p| p.ends_with(suffix)).map(|p| (c, p)))
        .next_back();
    let Some((sync, path)) = synced else {
        let between: Vec<_> = calls[read..=answer]
            .iter()
            .map(|c| format!("{} {}({}", c.pid, c.name, c.fd))
            .collect();
        panic!(
            "{what}: no fsync of a file ending `{suffix}` returned between reading the request \
             and writing its answer; the calls between:\n{}",
            between.join("\n")
        );
    };
    let wrote = calls[read..answer].iter().any(|c| {
        c.name.contains("write")
            && path_of(c).as_deref() == Some(path.as_str())
            && c.done < sync.done
    });
    assert!(wrote, "{what}: {path} was synced but not written first");
    path
}

#[test]
fn acknowledged_appends_and_promotions_are_fsynced_before_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    server.json(&["topic", "create", "events", "--partitions", "2"]);
    for version in ["1.0.0", "2.0.0"] {
        server.deploy_starter(version, "events");
    }
    let trace_file = dir.path().join("trace");
    let Some(tracer) = Tracer::attach(server.pid(), &trace_file) else {
        return;
    };
    let answer = request(
        &server.url,
        "POST",
        "/v1/topics/events/events",
        r#"{"events":[{"key":"k","value":"acknowledged"}]}"#,
    );
    assert!(answer.contains(r#""appended":1"#), "{answer}");
    let answer = request(
        &server.url,
        "POST",
        "/v1/processors/counts/promote",
        r#"{"version":"2.0.0"}"#,
    );
    assert!(answer.contains(r#""promoted":"2.0.0""#), "{answer}");
    tracer.detach();

    let trace = std::fs::read_to_string(&trace_file).unwrap();
    let calls = parse(&trace);
    let segment = synced_before_answer(&calls, "POST /v1/topics/events/events HTTP/1.1", ".seg");
    assert!(
        segment.starts_with(data.to_str().unwrap()),
        "the segment synced is not the host's: {segment}"
    );
    let registry = synced_before_answer(
        &calls,
        "POST /v1/processors/counts/promote HTTP/1.1",
        "registry.redb",
    );
    eprintln!(
        "{} system calls traced; fsync of {segment} and of {registry} each returned before \
         the first byte of their answers was written",
        calls.len()
    );
    // Still serving after being traced.
    assert_eq!(server.json(&["get", "counts", "k"])["row"]["value"], 1);
}
