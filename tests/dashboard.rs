//! The web dashboard in a real headless browser: Debian's chromium, driven
//! through chromedriver's WebDriver API (plain HTTP and JSON, so no client
//! crate). The page is loaded from `kappa serve`, read through the DOM, and
//! clicked like a person would: the diff form, its paging, promote buttons.
//!
//! Needs `chromium` and `chromedriver` on PATH (`scripts/test` installs them
//! when missing); set `KAPPA_SKIP_BROWSER_TESTS=1` to skip on a machine
//! without them, never under CI (`CI` set), where a missing browser fails.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kappa::workload::PaymentGenerator;
use serde_json::{Value, json};
use support::*;

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// One HTTP/1.1 request to chromedriver, which keeps the connection open
/// whatever the request says: the body is read by its Content-Length.
/// Returns (status, body); status 0 when chromedriver cannot be reached.
fn request(base: &str, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return (0, String::new());
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut data = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let headers = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            let length: usize = headers
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if data.len() >= end + 4 + length {
                let status = headers[9..12].parse().unwrap_or(0);
                let text = String::from_utf8_lossy(&data[end + 4..end + 4 + length]);
                return (status, text.into_owned());
            }
        }
        let n = stream.read(&mut buf).unwrap_or(0);
        if n == 0 {
            return (0, String::from_utf8_lossy(&data).into_owned());
        }
        data.extend_from_slice(&buf[..n]);
    }
}

/// Starts chromedriver on a free port: the process and its base URL once it
/// is ready, or `None` when it exited (the port was taken).
fn start_driver(chromedriver: &std::path::Path) -> Option<(Child, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut driver = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting chromedriver");
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if driver.try_wait().unwrap().is_some() {
            return None;
        }
        let (status, body) = request(&base, "GET", "/status", b"");
        if status == 200 && body.contains("\"ready\":true") {
            // Ours only if it is still running (not another one's answer).
            if driver.try_wait().unwrap().is_some() {
                return None;
            }
            return Some((driver, base));
        }
        assert!(
            Instant::now() < deadline,
            "chromedriver did not start: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A chromedriver process with one headless chromium session.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Option<Browser> {
        let chromium = find_program(&["chromium", "chromium-browser"]);
        let chromedriver = find_program(&["chromedriver"]);
        let (Some(chromium), Some(chromedriver)) = (chromium, chromedriver) else {
            if std::env::var_os("KAPPA_SKIP_BROWSER_TESTS").is_some() {
                cannot_run(
                    "the dashboard test (chromium or chromedriver is not installed, and \
                     KAPPA_SKIP_BROWSER_TESTS is set)",
                    "`apt-get install -y chromium chromium-driver` (scripts/test does it as root) \
                     and unset KAPPA_SKIP_BROWSER_TESTS",
                );
                return None;
            }
            panic!(
                "the dashboard test needs chromium and chromedriver on PATH: \
                 `apt-get install -y chromium chromium-driver` (scripts/test does it), \
                 or set KAPPA_SKIP_BROWSER_TESTS=1 (never under CI)"
            );
        };
        let profile = tempfile::tempdir().unwrap();
        // A port picked free; should another process take it before
        // chromedriver binds it (chromedriver then exits), another is tried.
        let (driver, base) = (0..10)
            .find_map(|_| start_driver(&chromedriver))
            .expect("chromedriver could not listen on a free port in 10 tries");
        let mut browser = Browser {
            driver,
            base,
            session: String::new(),
            _profile: profile,
        };
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,1000",
            &format!("--user-data-dir={}", browser._profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "goog:chromeOptions": {"binary": chromium, "args": args}
        }}});
        let reply = browser.call("POST", "/session", &caps);
        browser.session = reply["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {reply}"))
            .to_owned();
        Some(browser)
    }

    /// A WebDriver command; returns its `value`.
    fn call(&self, method: &str, path: &str, body: &Value) -> Value {
        let bytes = if method == "GET" {
            Vec::new()
        } else {
            serde_json::to_vec(body).unwrap()
        };
        let (status, text) = request(&self.base, method, path, &bytes);
        let reply: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {status} {e}: {text}"));
        assert_eq!(status, 200, "WebDriver {method} {path}: {reply}");
        reply["value"].clone()
    }

    fn session(&self, method: &str, path: &str, body: &Value) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    fn open(&self, url: &str) {
        self.session("POST", "/url", &json!({ "url": url }));
    }

    /// Runs `script` (a function body) in the page with `args`.
    fn eval(&self, script: &str, args: &[Value]) -> Value {
        self.session(
            "POST",
            "/execute/sync",
            &json!({ "script": script, "args": args }),
        )
    }

    /// Waits until `script` returns something truthy; returns it.
    fn wait_for(&self, what: &str, script: &str, args: &[Value]) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self.eval(script, args);
            if !(v.is_null() || v == false || v == "" || v == 0) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; page text: {}",
                self.eval("return document.body.innerText", &[])
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Saves a PNG of the page as `DIR/dashboard-NAME.png` when
    /// `KAPPA_DASHBOARD_SCREENSHOTS=DIR` is set (to look at the page; never
    /// kept in the repository).
    fn screenshot(&self, name: &str) {
        use base64::Engine as _;
        let Some(dir) = std::env::var_os("KAPPA_DASHBOARD_SCREENSHOTS") else {
            return;
        };
        let png = self.session("GET", "/screenshot", &Value::Null);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        let path = PathBuf::from(dir).join(format!("dashboard-{name}.png"));
        std::fs::write(&path, bytes).unwrap();
        eprintln!("screenshot: {}", path.display());
    }

    /// Clicks the element matching `css` with a real WebDriver click.
    fn click(&self, css: &str) {
        let found = self.session(
            "POST",
            "/element",
            &json!({ "using": "css selector", "value": css }),
        );
        let id = found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_owned();
        self.session("POST", &format!("/element/{id}/click"), &json!({}));
    }

    /// Types `text` into the input matching `css`, replacing its value.
    fn fill(&self, css: &str, text: &str) {
        let found = self.session(
            "POST",
            "/element",
            &json!({ "using": "css selector", "value": css }),
        );
        let id = found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap()
            .to_owned();
        self.session("POST", &format!("/element/{id}/clear"), &json!({}));
        self.session(
            "POST",
            &format!("/element/{id}/value"),
            &json!({ "text": text }),
        );
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = request(
                &self.base,
                "DELETE",
                &format!("/session/{}", self.session),
                b"",
            );
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn deploy(server: &Server, path: &str, name: &str, version: &str, topic: &str, extra: &[&str]) {
    let mut args = vec![
        "deploy",
        path,
        "--name",
        name,
        "--version",
        version,
        "--topic",
        topic,
    ];
    args.extend(extra);
    server.json(&args);
}

#[test]
fn dashboard_shows_versions_progress_diff_and_promotes_in_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());

    // payments v1 and v2 over the same history, with one account whose name
    // is markup: it must show up as text, never as HTML.
    server.json(&["topic", "create", "payments", "--partitions", "3"]);
    let mut generator = PaymentGenerator::new(7, 40, 1_767_225_600_000);
    let file = dir.path().join("events.jsonl");
    write_jsonl(&file, &generator.take(1500));
    server.json(&["produce", "payments", "--file", file.to_str().unwrap()]);
    let evil = r#"<img id="xss" src="x">"#;
    let line = json!({"key": evil, "value": {"txn": "t-evil", "account": evil,
        "amount_cents": 100, "merchant": "m-01"}, "timestamp": 1_767_225_700_000_i64});
    let out = server.run_stdin(&["produce", "payments"], Some(&format!("{line}\n")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v1 = kappa_plugins::PAYMENTS_V1.path;
    let v2 = kappa_plugins::PAYMENTS_V2.path;
    deploy(&server, v1, "payments", "1.0.0", "payments", &["--wait"]);
    deploy(&server, v2, "payments", "2.0.0", "payments", &["--wait"]);

    // A version whose replay stalls halfway, so the page shows a replay in
    // progress: its plugin spins on the last event of its own topic (for up
    // to its batch time limit, longer than this test).
    server.json(&["topic", "create", "audit", "--partitions", "1"]);
    let audit: String = (0..2000)
        .map(|i| format!("{}\n", json!({"key": format!("k{}", i % 7), "value": i})))
        .chain(std::iter::once(
            json!({"key": "k0", "value": "boom"}).to_string() + "\n",
        ))
        .collect();
    let out = server.run_stdin(&["produce", "audit"], Some(&audit));
    assert!(out.status.success());
    deploy(
        &server,
        kappa_plugins::FAULTY.path,
        "stalled",
        "0.1.0",
        "audit",
        &[
            "--config",
            r#"{"mode":"loop","fail_on":"boom"}"#,
            "--batch-timeout-ms",
            "600000",
        ],
    );

    let Some(browser) = Browser::start() else {
        return;
    };
    browser.open(&format!("{}/", server.url));

    // Every processor with its versions and states.
    let states = browser.wait_for(
        "the versions' states",
        r#"const rows = document.querySelectorAll('tr[data-version]');
           if (rows.length < 3) return null;
           return Object.fromEntries([...rows].map(r => [r.dataset.version, r.dataset.state]));"#,
        &[],
    );
    assert_eq!(states["payments@1.0.0"], "promoted", "{states}");
    assert_eq!(states["payments@2.0.0"], "caught_up", "{states}");
    assert_eq!(states["stalled@0.1.0"], "replaying", "{states}");
    let alias = browser.eval(
        "return document.querySelector('[data-processor=payments] .alias-current').textContent",
        &[],
    );
    assert_eq!(alias, "payments@1.0.0");

    // Live replay progress: the stalled version's bar is part way.
    let progress = browser.wait_for(
        "the replay progress of stalled@0.1.0",
        r#"const p = document.querySelector('tr[data-version="stalled@0.1.0"] progress.replay');
           const t = document.querySelector('tr[data-version="stalled@0.1.0"] .progress-text');
           return p && p.value > 0 ? {value: p.value, max: p.max, text: t.textContent} : null;"#,
        &[],
    );
    assert_eq!(progress["max"], 2001, "{progress}");
    let done = progress["value"].as_f64().unwrap();
    assert!((1.0..2001.0).contains(&done), "{progress}");
    assert!(
        progress["text"].as_str().unwrap().contains("/ 2,001"),
        "{progress}"
    );
    let full = browser.eval(
        r#"const p = document.querySelector('tr[data-version="payments@2.0.0"] progress.replay');
           return [p.value, p.max];"#,
        &[],
    );
    assert_eq!(full, json!([1501, 1501]));

    // A version that is still replaying cannot be promoted (its view is
    // partial): its Promote button is disabled and says why; a caught-up one
    // is offered.
    let promote = browser.eval(
        r#"const b = document.querySelector('tr[data-version="stalled@0.1.0"] button.promote');
           const c = document.querySelector('tr[data-version="payments@2.0.0"] button.promote');
           return {disabled: b.disabled, title: b.title, caught_up: c.disabled};"#,
        &[],
    );
    assert_eq!(promote["disabled"], true, "{promote}");
    assert!(
        promote["title"]
            .as_str()
            .unwrap()
            .contains("Still replaying"),
        "{promote}"
    );
    assert_eq!(promote["caught_up"], false, "{promote}");

    // Charts: events/s and lag of each version over the last minutes, from
    // one point a poll; a replaying version's progress per partition.
    let chart = browser.wait_for(
        "a chart of two polls",
        r#"const c = document.querySelector('tr[data-version="stalled@0.1.0"] svg.chart');
           if (!c || Number(c.dataset.points) < 2) return null;
           return {lines: [...c.querySelectorAll('polyline')].map(l => l.getAttribute('class')),
                   points: c.querySelector('polyline.rate-line').getAttribute('points').split(' ').length,
                   label: c.getAttribute('aria-label')};"#,
        &[],
    );
    assert_eq!(chart["lines"], json!(["rate-line", "lag-line"]), "{chart}");
    assert!(chart["points"].as_u64().unwrap() >= 2, "{chart}");
    assert!(
        chart["label"].as_str().unwrap().contains("lag now"),
        "{chart}"
    );
    let partitions = browser.eval(
        r#"const box = document.querySelector('tr[data-version="stalled@0.1.0"] .partitions');
           const done = document.querySelector('tr[data-version="payments@2.0.0"] .partitions');
           return {bars: [...box.querySelectorAll('progress.partition')].map(p => p.max),
                   hidden_when_caught_up: done.hidden};"#,
        &[],
    );
    assert_eq!(
        partitions,
        json!({"bars": [2001], "hidden_when_caught_up": true})
    );

    // Each version says when it was deployed, and with which settings.
    let deployed = browser.eval(
        r#"const d = document.querySelector('tr[data-version="stalled@0.1.0"] .deployed');
           return {text: d.textContent, title: d.title};"#,
        &[],
    );
    assert!(
        deployed["text"].as_str().unwrap().starts_with("deployed "),
        "{deployed}"
    );
    assert!(
        deployed["title"]
            .as_str()
            .unwrap()
            .contains("--batch-timeout-ms 600000"),
        "{deployed}"
    );
    // Numbers and their headers are aligned alike, in every card alike.
    let aligned = browser.eval(
        r#"const th = [...document.querySelectorAll('[data-processor=payments] th')]
             .find(h => h.textContent === 'lag');
           const td = document.querySelector('tr[data-version="payments@1.0.0"] td.lag');
           const widths = [...document.querySelectorAll('table.versions')]
             .map(t => [...t.querySelectorAll('th')].map(h => Math.round(h.getBoundingClientRect().width)).join(','));
           return {th: getComputedStyle(th).textAlign, td: getComputedStyle(td).textAlign,
                   same: new Set(widths).size === 1};"#,
        &[],
    );
    assert_eq!(aligned, json!({"th": "right", "td": "right", "same": true}));

    // The diff of v1 and v2, accounts only: changed rows, the changed field
    // highlighted on both sides.
    browser.fill("#diff-prefix", "account/");
    browser.fill("#diff-limit", "5");
    browser.fill("#diff-wait", "2");
    browser.click("#diff-run");
    let diff = browser.wait_for(
        "the diff rows",
        r#"const rows = [...document.querySelectorAll('#diff-rows tr.diff-row')];
           if (!rows.length) return null;
           return {
             summary: document.getElementById('diff-summary').textContent,
             keys: rows.map(r => r.dataset.key),
             changes: rows.map(r => r.dataset.change),
             highlighted: [...rows[0].querySelectorAll('.field.changed')].map(f => f.dataset.path),
             next: !document.getElementById('diff-next').disabled,
           };"#,
        &[],
    );
    let keys: Vec<&str> = diff["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), 5, "{diff}");
    assert!(keys.iter().all(|k| k.starts_with("account/")), "{diff}");
    assert!(
        diff["changes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c == "changed"),
        "{diff}"
    );
    // Highlighted in both the v1 and the v2 value.
    assert_eq!(diff["highlighted"], json!(["flagged", "flagged"]), "{diff}");
    // How the numeric field moved over the page's rows: v2 flags more.
    let moves = browser.eval(
        r#"return [...document.querySelectorAll('#diff-moves .move')]
             .map(m => [m.dataset.path, m.textContent, m.querySelectorAll('rect').length]);"#,
        &[],
    );
    assert_eq!(moves[0][0], "flagged", "{moves}");
    assert!(
        moves[0][1]
            .as_str()
            .unwrap()
            .contains("5 rows changed by +"),
        "{moves}"
    );
    assert_eq!(moves[0][2], 10, "{moves}");
    assert!(
        diff["summary"]
            .as_str()
            .unwrap()
            .contains("payments@1.0.0 vs payments@2.0.0"),
        "{diff}"
    );
    // The counts are those of the server's own diff.
    let report = server.json(&[
        "diff",
        "payments@1.0.0",
        "payments@2.0.0",
        "--prefix",
        "account/",
        "--limit",
        "5",
    ]);
    let changed = report["counts"]["changed"].as_u64().unwrap();
    assert!(changed > 5, "{report}");
    assert!(
        diff["summary"]
            .as_str()
            .unwrap()
            .contains(&format!("{changed} changed")),
        "{diff}"
    );
    assert_eq!(diff["next"], true, "{diff}");

    browser.screenshot("diff");

    // The next page: the following rows, in key order.
    browser.click("#diff-next");
    let page2 = browser.wait_for(
        "the second page of the diff",
        r#"const rows = [...document.querySelectorAll('#diff-rows tr.diff-row')];
           return document.getElementById('diff-page').textContent.startsWith('page 2')
             ? rows.map(r => r.dataset.key) : null;"#,
        &[],
    );
    let first2 = page2[0].as_str().unwrap();
    assert!(first2 > keys[4], "{page2} after {keys:?}");

    // Keys are text: the account named with markup is listed (v2 adds a
    // window row for it), and no element was made from it.
    browser.fill("#diff-prefix", "window/<");
    browser.click("#diff-run");
    let shown = browser.wait_for(
        "the markup key",
        r#"const row = document.querySelector('#diff-rows tr.diff-row');
           return row && row.dataset.key.startsWith('window/<')
             ? {key: row.querySelector('.key code').textContent, change: row.dataset.change,
                injected: document.getElementById('xss') !== null}
             : null;"#,
        &[],
    );
    assert_eq!(shown["key"], format!("window/{evil}"), "{shown}");
    assert_eq!(shown["change"], "added", "{shown}");
    assert_eq!(shown["injected"], false, "{shown}");

    browser.screenshot("refused-and-xss");

    // Promote v2 with its button; the API says the alias moved, and the page
    // shows it too.
    browser.click(r#"tr[data-version="payments@2.0.0"] button.promote"#);
    let shown = browser.wait_for(
        "the alias to move",
        r#"const a = document.querySelector('[data-processor=payments] .alias-current').textContent;
           return a === 'payments@2.0.0' ? a : null;"#,
        &[],
    );
    assert_eq!(shown, "payments@2.0.0");
    let p = server.json(&["status", "payments"]);
    assert_eq!(p["processors"][0]["promoted"], "2.0.0", "{p}");
    assert_eq!(p["processors"][0]["previous"], "1.0.0", "{p}");
    let (status, body) = http(&server.url, "GET", "/v1/processors/payments", b"");
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["promoted"],
        "2.0.0"
    );

    // Roll back from the page too.
    browser.click(r#"[data-processor=payments] button.rollback"#);
    browser.wait_for(
        "the rollback",
        r#"return document.querySelector('[data-processor=payments] .alias-current')
             .textContent === 'payments@1.0.0';"#,
        &[],
    );
    assert_eq!(
        server.json(&["status", "payments"])["processors"][0]["promoted"],
        "1.0.0"
    );
}

#[test]
fn dashboard_files_are_served_with_a_strict_content_security_policy() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (status, page) = http(&server.url, "GET", "/", b"");
    assert_eq!(status, 200);
    assert!(page.contains("<title>kappa</title>"), "{page}");
    let (status, js) = http(&server.url, "GET", "/dashboard/app.js", b"");
    assert_eq!(status, 200);
    assert!(js.contains("/v1/status"));
    // No data ever goes through innerHTML.
    assert!(
        !js.contains("innerHTML"),
        "the script must render with textContent"
    );
    let (status, _) = http(&server.url, "GET", "/dashboard/nope.js", b"");
    assert_eq!(status, 404);
    // The headers, read raw.
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect(server.url.trim_start_matches("http://")).unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let head = raw.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(
        head.contains("content-security-policy: default-src 'none'; script-src 'self'"),
        "{head}"
    );
    let size: usize = [
        "/",
        "/dashboard/app.js",
        "/dashboard/style.css",
        "/dashboard/icon.svg",
    ]
    .iter()
    .map(|p| http(&server.url, "GET", p, b"").1.len())
    .sum();
    assert!(size < 64 * 1024, "the whole page is {size} bytes");
    eprintln!("dashboard: {size} bytes in all");
}

#[test]
fn dashboard_asks_for_the_token_and_sends_it() {
    const TOKEN: &str = "dashboard-test-token";
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--token", TOKEN], &[]);
    let with_token = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--token", TOKEN]);
        server.json(&all)
    };
    with_token(&["topic", "create", "events", "--partitions", "1"]);
    for version in ["1.0.0", "2.0.0"] {
        with_token(&[
            "deploy",
            kappa_plugins::STARTER.path,
            "--name",
            "counts",
            "--version",
            version,
            "--topic",
            "events",
            "--wait",
        ]);
    }

    let Some(browser) = Browser::start() else {
        return;
    };
    browser.open(&format!("{}/", server.url));
    // Reads are open: the versions show, and no token is asked for yet.
    browser.wait_for(
        "the versions",
        r#"return document.querySelectorAll('tr[data-version]').length === 2;"#,
        &[],
    );
    assert_eq!(
        browser.eval("return document.getElementById('token-form').hidden", &[]),
        true
    );
    // A promote without the token: the API's 401 message, the token field,
    // and nothing changed.
    browser.click(r#"tr[data-version="counts@2.0.0"] button.promote"#);
    let message = browser.wait_for(
        "the refusal",
        r#"const m = document.getElementById('message');
           return !m.hidden && !document.getElementById('token-form').hidden
             ? m.textContent : null;"#,
        &[],
    );
    assert!(
        message
            .as_str()
            .unwrap()
            .contains("requires a bearer token"),
        "{message}"
    );
    assert_eq!(
        server.json(&["status", "counts"])["processors"][0]["promoted"],
        "1.0.0"
    );
    browser.screenshot("token-asked");

    // A wrong token is refused with the API's message too.
    browser.fill("#token-input", "not-the-token");
    browser.click("#token-save");
    browser.click(r#"tr[data-version="counts@2.0.0"] button.promote"#);
    browser.wait_for(
        "the wrong token's refusal",
        r#"const m = document.getElementById('message');
           return !m.hidden && m.textContent.includes('not valid');"#,
        &[],
    );
    assert_eq!(
        server.json(&["status", "counts"])["processors"][0]["promoted"],
        "1.0.0"
    );

    // The right token, kept for the tab, is sent: the promote goes through.
    browser.fill("#token-input", TOKEN);
    browser.click("#token-save");
    let stored = browser.eval("return sessionStorage.getItem('kappa-token')", &[]);
    assert_eq!(stored, TOKEN);
    browser.click(r#"tr[data-version="counts@2.0.0"] button.promote"#);
    browser.wait_for(
        "the alias to move",
        r#"return document.querySelector('[data-processor=counts] .alias-current')
             .textContent === 'counts@2.0.0';"#,
        &[],
    );
    assert_eq!(
        server.json(&["status", "counts"])["processors"][0]["promoted"],
        "2.0.0"
    );
    browser.screenshot("token-used");
}
