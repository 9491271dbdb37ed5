//! The web dashboard served by `kappa serve` at `/`: one HTML page, a style
//! sheet and a script, embedded in the binary (no front-end build). The page
//! only calls the public HTTP API (`/v1/status`, `/v1/diff`, promote,
//! rollback, retire), the same one the CLI uses. When the server has a
//! token (`crate::access`), these files stay open and the page asks for the
//! token on the first 401, keeping it in the tab's `sessionStorage`.
//!
//! The script renders every value from the server with `textContent`, never
//! as HTML, and the Content-Security-Policy below allows scripts and styles
//! from this server only, so a key or value in a view cannot inject markup.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const STYLE_CSS: &str = include_str!("style.css");
const ICON_SVG: &str = include_str!("icon.svg");

/// Policy of every dashboard file: nothing from elsewhere, no inline script.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self'; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

fn file(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// `GET /`: the page.
pub async fn index() -> Response {
    file("text/html; charset=utf-8", INDEX)
}

/// `GET /dashboard/{file}`: the page's script, style sheet and icon.
pub async fn asset(Path(name): Path<String>) -> Response {
    match name.as_str() {
        "app.js" => file("text/javascript; charset=utf-8", APP_JS),
        "style.css" => file("text/css; charset=utf-8", STYLE_CSS),
        "icon.svg" => file("image/svg+xml", ICON_SVG),
        _ => (StatusCode::NOT_FOUND, "no such dashboard file\n").into_response(),
    }
}

/// Bytes of the page with everything it loads.
pub fn size_bytes() -> usize {
    INDEX.len() + APP_JS.len() + STYLE_CSS.len() + ICON_SVG.len()
}
