//! Who may call the HTTP API: an optional bearer token, checked by a
//! middleware in front of every route before any body is read, so a refused
//! request changes nothing.
//!
//! Without a token the API is open (and `kappa serve` then only listens on
//! loopback, see `cli`). With one, every request that changes something
//! (any method but `GET`, `HEAD` and `OPTIONS`: create topic, produce,
//! deploy, promote, rollback, retire) must carry `Authorization: Bearer
//! TOKEN`; with `reads` set, reads (`/v1/...` and `/metrics`) need it too.
//! `/healthz` and the dashboard's static files (`/`, `/dashboard/...`) hold no
//! data and stay open, so probes work and the page can load and ask for the
//! token.
//!
//! The token is kept only as its SHA-256 and compared in constant time
//! (`subtle`), hashing the presented value first so neither its bytes nor
//! its length leak through timing.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::model::{ErrorDetail, ErrorReply};

/// The error kind of a refused request (`error.kind` in the JSON body).
pub const UNAUTHORIZED_KIND: &str = "unauthorized";

/// The access policy of a server.
#[derive(Clone, Default)]
pub struct Access {
    /// SHA-256 of the token; `None` leaves the API open.
    token_sha256: Option<[u8; 32]>,
    /// Reads need the token too.
    reads: bool,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token, not even its digest.
        f.debug_struct("Access")
            .field("token", &self.token_sha256.map(|_| "<set>"))
            .field("reads", &self.reads)
            .finish()
    }
}

/// Why a token cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Empty, or only white space.
    #[error("the token is empty")]
    Empty,
    /// Not sendable in an HTTP header.
    #[error(
        "the token contains characters that cannot be sent in an HTTP header \
         (use printable ASCII, e.g. the output of `openssl rand -hex 32`)"
    )]
    NotPrintable,
    /// Reads were asked to need a token that is not there.
    #[error("requiring a token for reads needs a token: set --token, --token-file or KAPPA_TOKEN")]
    ReadsWithoutToken,
}

/// Checks that `token` can be sent as a bearer token by any client.
pub fn validate_token(token: &str) -> Result<(), TokenError> {
    if token.trim().is_empty() {
        return Err(TokenError::Empty);
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(TokenError::NotPrintable);
    }
    Ok(())
}

impl Access {
    /// No token: every request is allowed.
    pub fn open() -> Self {
        Access::default()
    }

    /// A policy with an optional `token`; `reads` makes reads need it too.
    pub fn new(token: Option<&str>, reads: bool) -> Result<Self, TokenError> {
        match token {
            None if reads => Err(TokenError::ReadsWithoutToken),
            None => Ok(Access::open()),
            Some(token) => {
                validate_token(token)?;
                Ok(Access {
                    token_sha256: Some(Sha256::digest(token.as_bytes()).into()),
                    reads,
                })
            }
        }
    }

    /// Whether a token is configured.
    pub fn has_token(&self) -> bool {
        self.token_sha256.is_some()
    }

    /// Whether reads need the token.
    pub fn reads_need_token(&self) -> bool {
        self.reads
    }

    /// Whether a request with `method` on `path` needs the token.
    pub fn required(&self, method: &Method, path: &str) -> bool {
        if self.token_sha256.is_none() {
            return false;
        }
        let read = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        if !read {
            return true;
        }
        let always_open = path == "/healthz" || path == "/" || path.starts_with("/dashboard/");
        self.reads && !always_open
    }

    /// Checks the `Authorization` header.
    fn check(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let Some(want) = &self.token_sha256 else {
            return Ok(());
        };
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            });
        match presented {
            None => Err(Refusal::Missing),
            Some(token) => {
                let got: [u8; 32] = Sha256::digest(token.as_bytes()).into();
                if bool::from(got.ct_eq(want)) {
                    Ok(())
                } else {
                    Err(Refusal::Invalid)
                }
            }
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// No bearer token was sent.
    Missing,
    /// Another token was sent.
    Invalid,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Missing => unauthorized(
                None,
                "this server requires a bearer token for this request: send \
                 `Authorization: Bearer TOKEN` (the kappa CLI sends --token or KAPPA_TOKEN); \
                 nothing was changed",
            ),
            Refusal::Invalid => unauthorized(
                Some("invalid_token"),
                "the bearer token is not valid for this server; nothing was changed",
            ),
        }
    }
}

/// A 401 in the API's JSON error shape, with the `WWW-Authenticate`
/// challenge of RFC 6750.
fn unauthorized(error: Option<&str>, message: &str) -> Response {
    let challenge = match error {
        Some(code) => format!("Bearer realm=\"kappa\", error=\"{code}\""),
        None => "Bearer realm=\"kappa\"".to_owned(),
    };
    let body = ErrorReply {
        error: ErrorDetail {
            kind: UNAUTHORIZED_KIND.to_owned(),
            message: message.to_owned(),
        },
    };
    let mut response = (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// The middleware: refuses a request that needs the token and lacks it,
/// before its handler (and its body) is touched.
pub async fn middleware(
    State(access): State<Arc<Access>>,
    request: Request,
    next: Next,
) -> Response {
    if access.required(request.method(), request.uri().path())
        && let Err(refused) = access.check(request.headers())
    {
        tracing::debug!(
            method = %request.method(),
            path = request.uri().path(),
            ?refused,
            "refused a request without a valid bearer token"
        );
        return refused.into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(auth).unwrap_or(HeaderValue::from_static("x")),
        );
        h
    }

    #[test]
    fn which_requests_need_the_token() {
        let open = Access::open();
        assert!(!open.required(&Method::POST, "/v1/topics"));
        let writes = Access::new(Some("s3cret"), false).expect("valid");
        assert!(writes.required(&Method::POST, "/v1/topics"));
        assert!(writes.required(&Method::DELETE, "/v1/processors/p/versions/1.0.0"));
        assert!(writes.required(&Method::PUT, "/anything"));
        assert!(!writes.required(&Method::GET, "/v1/status"));
        assert!(!writes.required(&Method::GET, "/metrics"));
        let reads = Access::new(Some("s3cret"), true).expect("valid");
        assert!(reads.required(&Method::GET, "/v1/status"));
        assert!(reads.required(&Method::GET, "/metrics"));
        assert!(!reads.required(&Method::GET, "/healthz"));
        assert!(!reads.required(&Method::GET, "/"));
        assert!(!reads.required(&Method::GET, "/dashboard/app.js"));
    }

    #[test]
    fn tokens_are_checked_exactly() {
        let a = Access::new(Some("s3cret"), false).expect("valid");
        assert!(a.check(&headers("Bearer s3cret")).is_ok());
        assert!(a.check(&headers("bearer  s3cret ")).is_ok());
        for bad in [
            "Bearer s3cre",
            "Bearer s3cret2",
            "Basic s3cret",
            "s3cret",
            "Bearer",
        ] {
            let refused = a.check(&headers(bad)).expect_err(bad).into_response();
            assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "{bad}");
            assert!(refused.headers().contains_key(header::WWW_AUTHENTICATE));
        }
        assert!(a.check(&HeaderMap::new()).is_err());
    }

    #[test]
    fn unusable_tokens_are_refused() {
        assert!(matches!(
            Access::new(Some(" "), false),
            Err(TokenError::Empty)
        ));
        assert!(matches!(
            Access::new(Some("a b"), false),
            Err(TokenError::NotPrintable)
        ));
        assert!(matches!(
            Access::new(None, true),
            Err(TokenError::ReadsWithoutToken)
        ));
        assert!(!format!("{:?}", Access::new(Some("s3cret"), false)).contains("s3cret"));
    }
}
