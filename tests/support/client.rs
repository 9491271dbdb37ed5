//! Requests to the HTTP API sent directly, not through the CLI: for the
//! tests that check what the API itself answers (status codes, bodies the
//! CLI would refuse to send). Sent with reqwest, the client the CLI uses;
//! the tests that need raw bytes on the wire (a body cut short, a header the
//! client would not send as given, an answer read before the body is sent)
//! write those bytes themselves and say why where they do.

use std::sync::OnceLock;

/// Sends one request to the server at `url` and returns (status, body);
/// status 0 when the server could not be reached or hung up before its
/// answer was complete. The body is sent as `application/json`, whatever it
/// holds, on a connection of its own (never one kept from an earlier
/// request, which a server restarted in between would have closed);
/// redirects are not followed and no proxy is used.
pub fn http(url: &str, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .unwrap_or_else(|e| panic!("`{method}` is not an HTTP method: {e}"));
    let request = client()
        .request(method, format!("{url}{path}"))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_vec());
    runtime().block_on(async move {
        let Ok(response) = request.send().await else {
            return (0, String::new());
        };
        let status = response.status().as_u16();
        match response.bytes().await {
            Ok(body) => (status, String::from_utf8_lossy(&body).into_owned()),
            Err(_) => (0, String::new()),
        }
    })
}

/// One client for every request of the test process.
fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .expect("building the tests' HTTP client")
    })
}

/// The runtime the requests run on, shared by every test thread (each
/// blocks on its own request); it lives as long as the process, so it is
/// never dropped in a thread's exit.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("starting the tests' HTTP runtime")
    })
}
