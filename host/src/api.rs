//! The HTTP JSON API of `kappa serve`: everything the CLI does, plus
//! `/metrics` in Prometheus text format and the web dashboard at `/`. Routes are listed in `router`; the
//! shapes are in `crate::model` and documented in `docs/api.md`.
//!
//! Host operations are synchronous (they compile, fsync, or wait on the diff
//! barrier), so every handler runs them on tokio's blocking pool and the
//! async workers only shuttle bytes.
//!
//! Who may call which route is `crate::access` (an optional bearer token,
//! checked before any handler); how big a body may be is `ServeOptions`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::diff::DiffOptions;
use crate::error::{Error, Kind};
use crate::lifecycle::Host;
use crate::model::{
    Capped, CreateTopic, DigestReply, ErrorDetail, ErrorReply, GetReply, ProduceRequest,
    PromoteRequest, Row, State as VersionState,
};
use crate::registry::{Settings, VersionId};

/// Largest request body: components (a Python one is ~20 MB) and produce batches.
pub const MAX_BODY_BYTES: usize = 128 << 20;

/// Most rows of a scan or diff page (and events of a consume page).
pub const MAX_PAGE_ROWS: usize = 10_000;

/// The rows a scan or diff page holds: `requested` (else `default`), capped
/// at [`MAX_PAGE_ROWS`], with the cap when it applied. A scan's limit of 0 is
/// refused: its empty page would look like an empty view. A diff's is not:
/// its counts cover every key whatever the limit, so 0 asks for the counts
/// alone.
fn page_limit(
    requested: Option<usize>,
    default: usize,
    what: &str,
) -> Result<(usize, Option<usize>), Error> {
    match requested.unwrap_or(default) {
        0 if what == "scan" => Err(Error::invalid(format!(
            "bad {what} parameters: limit must be at least 1 (it is the most rows of the \
             page, at most {MAX_PAGE_ROWS}); leave it out for {default}"
        ))),
        n if n > MAX_PAGE_ROWS => Ok((MAX_PAGE_ROWS, Some(MAX_PAGE_ROWS))),
        n => Ok((n, None)),
    }
}

/// An API error: the host's error with its HTTP status.
#[derive(Debug)]
pub struct ApiError(Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError(too_large_body());
        }
        ApiError(Error::invalid(format!(
            "malformed request body: {}",
            e.body_text()
        )))
    }
}

impl From<BytesRejection> for ApiError {
    fn from(e: BytesRejection) -> Self {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError(too_large_body());
        }
        ApiError(Error::invalid(format!(
            "cannot read the request body: {}",
            e.body_text()
        )))
    }
}

/// A body over the server's limit (`kappa serve --max-body-mb`).
fn too_large_body() -> Error {
    Error::TooLarge(
        "the request body exceeds this server's limit (kappa serve --max-body-mb); \
         nothing was changed"
            .into(),
    )
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self.0.class() {
            Kind::Invalid | Kind::Unsupported => StatusCode::BAD_REQUEST,
            Kind::NotFound => StatusCode::NOT_FOUND,
            Kind::Conflict => StatusCode::CONFLICT,
            Kind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Kind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Kind::Storage | Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let body = ErrorReply {
            error: ErrorDetail {
                kind: self.0.kind().to_owned(),
                message: self.0.to_string(),
            },
        };
        (status, Json(body)).into_response()
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

/// Runs a host operation on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> crate::error::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError(Error::Internal(format!("the operation panicked: {e}"))))?
        .map_err(ApiError)
}

/// How a server is exposed: who may call it and how big a request may be.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The bearer-token policy (open by default).
    pub access: crate::access::Access,
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            access: crate::access::Access::open(),
            max_body_bytes: MAX_BODY_BYTES,
        }
    }
}

/// The API's routes over a host, open, with the default body limit.
pub fn router(host: Arc<Host>) -> Router {
    router_with(host, &ServeOptions::default())
}

/// The API's routes over a host with `options`: the access check runs
/// before any handler, so a refused request reads no body and changes
/// nothing.
pub fn router_with(host: Arc<Host>, options: &ServeOptions) -> Router {
    let access = Arc::new(options.access.clone());
    let counted = host.clone();
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        // The web dashboard: static files embedded in the binary.
        .route("/", get(crate::dashboard::index))
        .route("/dashboard/{file}", get(crate::dashboard::asset))
        .route("/v1/status", get(status))
        .route("/v1/topics", get(topics).post(create_topic))
        .route("/v1/topics/{topic}/events", post(produce).get(consume))
        .route("/v1/processors/{name}", get(processor))
        .route(
            "/v1/processors/{name}/versions/{version}",
            get(version).post(deploy).delete(retire),
        )
        .route("/v1/processors/{name}/promote", post(promote))
        .route("/v1/processors/{name}/rollback", post(rollback))
        .route("/v1/views/{spec}/keys/{*key}", get(get_key))
        .route("/v1/views/{spec}/scan", get(scan))
        .route("/v1/views/{spec}/digest", get(digest))
        .route("/v1/diff", get(diff))
        .layer(DefaultBodyLimit::max(options.max_body_bytes))
        .with_state(host)
        .layer(axum::middleware::from_fn_with_state(
            access,
            crate::access::middleware,
        ))
        // Outermost, so that refused requests (401) are counted too.
        .layer(axum::middleware::from_fn_with_state(counted, count_http))
}

/// Counts every request and its latency for `/metrics`, by method, route
/// pattern and status.
async fn count_http(
    State(host): State<Arc<Host>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    host.metrics().http(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

async fn status(State(host): State<Arc<Host>>) -> ApiResult<crate::model::StatusReport> {
    Ok(Json(blocking(move || host.status()).await?))
}

async fn topics(State(host): State<Arc<Host>>) -> ApiResult<Vec<crate::model::TopicStatus>> {
    Ok(Json(blocking(move || host.topics()).await?))
}

async fn create_topic(
    State(host): State<Arc<Host>>,
    body: Result<Json<CreateTopic>, JsonRejection>,
) -> Result<(StatusCode, Json<crate::model::TopicStatus>), ApiError> {
    let Json(req) = body?;
    let topic = blocking(move || host.create_topic(&req.name, req.partitions)).await?;
    Ok((StatusCode::CREATED, Json(topic)))
}

async fn produce(
    State(host): State<Arc<Host>>,
    Path(topic): Path<String>,
    body: Result<Json<ProduceRequest>, JsonRejection>,
) -> ApiResult<crate::model::ProduceReport> {
    let Json(req) = body?;
    let now = crate::clock::now_ms();
    // The fingerprint of the request as sent (before the host fills in
    // timestamps or partitions), so a retry matches and a reuse does not.
    let request = req.request_id.map(|id| crate::log::RequestTag {
        fingerprint: request_fingerprint(&req.events),
        id,
    });
    let mut events = Vec::with_capacity(req.events.len());
    for (i, line) in req.events.into_iter().enumerate() {
        let record = line.into_record(now).map_err(|e| {
            Error::invalid(format!(
                "event {} of the request (counting from 1): {e}; nothing was appended",
                i + 1
            ))
        })?;
        events.push(record);
    }
    Ok(Json(
        blocking(move || host.produce_request(&topic, events, request)).await?,
    ))
}

/// SHA-256 of the events of a produce request in their JSON form.
fn request_fingerprint(events: &[crate::model::EventLine]) -> [u8; 32] {
    use sha2::Digest;
    let bytes = serde_json::to_vec(events).unwrap_or_default();
    sha2::Sha256::digest(&bytes).into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsumeQuery {
    #[serde(default)]
    partition: u32,
    #[serde(default)]
    from: u64,
    limit: Option<usize>,
}

async fn consume(
    State(host): State<Arc<Host>>,
    Path(topic): Path<String>,
    query: Result<Query<ConsumeQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<crate::model::ConsumePage> {
    let Query(q) =
        query.map_err(|e| Error::invalid(format!("bad consume parameters: {}", e.body_text())))?;
    let limit = q.limit.unwrap_or(100).min(MAX_PAGE_ROWS);
    Ok(Json(
        blocking(move || host.consume(&topic, q.partition, q.from, limit)).await?,
    ))
}

async fn processor(
    State(host): State<Arc<Host>>,
    Path(name): Path<String>,
) -> ApiResult<crate::model::ProcessorStatus> {
    Ok(Json(blocking(move || host.processor_status(&name)).await?))
}

async fn version(
    State(host): State<Arc<Host>>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<crate::model::VersionStatus> {
    Ok(Json(
        blocking(move || host.version_status(&VersionId::new(&name, &version)?)).await?,
    ))
}

/// Query of a deploy; the body is the component bytes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployQuery {
    /// The topics, comma-separated (topic names hold no comma): the first
    /// is topic index 0.
    topic: String,
    #[serde(default)]
    config: String,
    #[serde(default)]
    auto_promote: bool,
    batch_timeout_ms: Option<u64>,
    memory_limit_bytes: Option<u64>,
    on_error: Option<String>,
    threads: Option<u32>,
    topic_idle_ms: Option<u64>,
}

async fn deploy(
    State(host): State<Arc<Host>>,
    Path((name, version)): Path<(String, String)>,
    query: Result<Query<DeployQuery>, axum::extract::rejection::QueryRejection>,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<crate::model::DeployReport>), ApiError> {
    let body = body?;
    let Query(q) =
        query.map_err(|e| Error::invalid(format!("bad deploy parameters: {}", e.body_text())))?;
    let defaults = Settings::default();
    let settings = Settings {
        config: q.config,
        auto_promote: q.auto_promote,
        batch_timeout_ms: q.batch_timeout_ms.unwrap_or(defaults.batch_timeout_ms),
        memory_limit_bytes: q.memory_limit_bytes.unwrap_or(defaults.memory_limit_bytes),
        on_error: match q.on_error.as_deref() {
            None => defaults.on_error,
            Some(s) => s.parse().map_err(Error::Invalid)?,
        },
        threads: q.threads.unwrap_or(defaults.threads),
        topic_idle_ms: q.topic_idle_ms.unwrap_or(defaults.topic_idle_ms),
    };
    let report = blocking(move || {
        let id = VersionId::new(&name, &version)?;
        let topics: Vec<String> = q.topic.split(',').map(str::to_owned).collect();
        host.deploy_topics(&id, &topics, &body, settings)
    })
    .await?;
    let status = if report.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(report)))
}

async fn retire(
    State(host): State<Arc<Host>>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<crate::model::VersionStatus> {
    Ok(Json(
        blocking(move || host.retire(&VersionId::new(&name, &version)?)).await?,
    ))
}

async fn promote(
    State(host): State<Arc<Host>>,
    Path(name): Path<String>,
    body: Result<Json<PromoteRequest>, JsonRejection>,
) -> ApiResult<crate::model::ProcessorStatus> {
    let Json(req) = body?;
    Ok(Json(
        blocking(move || host.promote(&VersionId::new(&name, &req.version)?, req.force)).await?,
    ))
}

async fn rollback(
    State(host): State<Arc<Host>>,
    Path(name): Path<String>,
) -> ApiResult<crate::model::ProcessorStatus> {
    Ok(Json(blocking(move || host.rollback(&name)).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyQuery {
    #[serde(default)]
    hex: bool,
    /// Add the stored bytes as `value_base64`.
    #[serde(default)]
    raw: bool,
    /// Answer from this host's view only (a peer asking; see `crate::peers`).
    #[serde(default)]
    local: bool,
}

async fn get_key(
    State(host): State<Arc<Host>>,
    Path((spec, key)): Path<(String, String)>,
    Query(q): Query<KeyQuery>,
) -> ApiResult<GetReply> {
    let key_text = key.clone();
    let key = crate::model::parse_key(&key, q.hex).map_err(Error::invalid)?;
    let peers = host.peers().to_vec();
    let token = host.peer_token().map(str::to_owned);
    let view = spec.clone();
    let (id, value) = blocking(move || host.get(&spec, &key).map(|(id, v)| (id, v, key)))
        .await
        .map(|(id, v, key)| (id, v.map(|v| Row::with_raw(&key, &v, q.raw))))?;
    if value.is_none()
        && !q.local
        && let Some(reply) =
            crate::peers::get(&peers, token.as_deref(), &view, &key_text, q.hex, q.raw).await?
    {
        return Ok(Json(reply));
    }
    Ok(Json(GetReply {
        id: id.to_string(),
        found: value.is_some(),
        row: value,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScanQuery {
    #[serde(default)]
    prefix: String,
    after: Option<String>,
    limit: Option<usize>,
    /// Add each row's stored bytes as `value_base64`.
    #[serde(default)]
    raw: bool,
    /// Answer from this host's view only (a peer asking; see `crate::peers`).
    #[serde(default)]
    local: bool,
}

async fn scan(
    State(host): State<Arc<Host>>,
    Path(spec): Path<String>,
    query: Result<Query<ScanQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Capped<crate::model::ScanPage>> {
    let Query(q) =
        query.map_err(|e| Error::invalid(format!("bad scan parameters: {}", e.body_text())))?;
    let (limit, capped_at) = page_limit(q.limit, 100, "scan")?;
    let peers = if q.local {
        Vec::new()
    } else {
        host.peers().to_vec()
    };
    let token = host.peer_token().map(str::to_owned);
    let (view, prefix, after) = (spec.clone(), q.prefix.clone(), q.after.clone());
    let raw = q.raw;
    let local = blocking(move || {
        host.scan_with(
            &spec,
            q.prefix.as_bytes(),
            q.after.as_deref().map(str::as_bytes),
            limit,
            raw,
        )
    })
    .await?;
    let page = if peers.is_empty() {
        local
    } else {
        crate::peers::scan(
            &peers,
            token.as_deref(),
            &view,
            &prefix,
            after.as_deref(),
            limit,
            raw,
            local,
        )
        .await?
    };
    Ok(Json(Capped { page, capped_at }))
}

async fn digest(State(host): State<Arc<Host>>, Path(spec): Path<String>) -> ApiResult<DigestReply> {
    let (id, d) = blocking(move || host.digest(&spec)).await?;
    Ok(Json(DigestReply {
        id: id.to_string(),
        sha256: d.sha256,
        rows: d.rows,
        offsets: d.offsets,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DiffQuery {
    a: String,
    b: String,
    #[serde(default)]
    prefix: String,
    after: Option<String>,
    limit: Option<usize>,
    /// How long to wait for a replaying version to catch up, ms.
    #[serde(default)]
    wait_ms: u64,
}

async fn diff(
    State(host): State<Arc<Host>>,
    query: Result<Query<DiffQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Capped<crate::diff::DiffReport>> {
    let Query(q) =
        query.map_err(|e| Error::invalid(format!("bad diff parameters: {}", e.body_text())))?;
    let (limit, capped_at) = page_limit(q.limit, 20, "diff")?;
    let options = DiffOptions {
        prefix: q.prefix.into_bytes(),
        limit,
        after: q.after.map(String::into_bytes),
    };
    let wait = Duration::from_millis(q.wait_ms.min(3_600_000));
    let page = blocking(move || {
        if !wait.is_zero() {
            wait_caught_up(&host, &[&q.a, &q.b], wait)?;
        }
        host.diff(&q.a, &q.b, &options, wait)
    })
    .await?;
    Ok(Json(Capped { page, capped_at }))
}

/// Waits until neither version is replaying, up to `wait`.
fn wait_caught_up(host: &Host, specs: &[&str], wait: Duration) -> crate::error::Result<()> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        let mut replaying = false;
        for spec in specs {
            let id = host.resolve(spec)?;
            replaying |= host.version_status(&id)?.state == VersionState::Replaying;
        }
        if !replaying || std::time::Instant::now() >= deadline {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `/metrics`: every series of `crate::metrics`, in Prometheus text format.
async fn metrics(State(host): State<Arc<Host>>) -> Result<Response, ApiError> {
    let text = blocking(move || {
        let status = host.status()?;
        Ok(host.metrics().render(&status))
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response())
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    host: Arc<Host>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(host, listener, &ServeOptions::default(), shutdown).await
}

/// Serves the API with `options` on `listener` until `shutdown` resolves.
pub async fn serve_with(
    host: Arc<Host>,
    listener: tokio::net::TcpListener,
    options: &ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router_with(host, options))
        .with_graceful_shutdown(shutdown)
        .await
}
