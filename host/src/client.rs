//! The client of the HTTP API, used by every CLI subcommand except `serve`
//! (and by `kappa demo`, which drives a host exactly as a user would).

use serde::de::DeserializeOwned;

use crate::diff::DiffReport;
use crate::model::{
    Capped, CreateTopic, DeployReport, DigestReply, ErrorReply, EventLine, GetReply,
    ProcessorStatus, ProduceReport, ProduceRequest, PromoteRequest, ScanPage, StatusReport,
    TopicStatus, VersionStatus,
};
use crate::registry::Settings;

/// The server address used when none is given.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7070";

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error.
    #[error("{message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The error kind (see `model::ErrorDetail`).
        kind: String,
        /// The server's message.
        message: String,
    },
    /// The server could not be reached.
    #[error(
        "cannot reach the kappa server at {server}: {reason}. Is `kappa serve` running? (set the address with --server or KAPPA_SERVER)"
    )]
    Unreachable {
        /// The address tried.
        server: String,
        /// What failed.
        reason: String,
    },
    /// The connection broke after the request may have been sent, before
    /// an answer came: whether the server acted on it is unknown.
    #[error("the connection to the kappa server at {server} broke before it answered: {reason}")]
    NoAnswer {
        /// The address tried.
        server: String,
        /// What failed.
        reason: String,
    },
    /// Anything else (a malformed answer, a bad address).
    #[error("{0}")]
    Other(String),
}

/// A client of one server.
#[derive(Clone)]
pub struct Client {
    base: reqwest::Url,
    http: reqwest::Client,
    /// Bearer token sent with every request, when the server needs one.
    token: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token itself.
        f.debug_struct("Client")
            .field("base", &self.base.as_str())
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl Client {
    /// A client of the server at `base` (e.g. `http://127.0.0.1:7070`).
    /// An address without a scheme (`localhost:7070`) means `http://`.
    pub fn new(base: &str) -> Result<Self, ClientError> {
        let full = if base.contains("://") {
            base.to_owned()
        } else {
            format!("http://{base}")
        };
        let base = reqwest::Url::parse(&full)
            .ok()
            .filter(|u| !u.cannot_be_a_base() && u.host().is_some())
            .ok_or_else(|| {
                ClientError::Other(format!(
                    "`{base}` is not a server address: give HOST:PORT or a URL such as \
                     http://127.0.0.1:7070"
                ))
            })?;
        Ok(Client {
            base,
            http: reqwest::Client::new(),
            token: None,
        })
    }

    /// The same client sending `token` as `Authorization: Bearer` with every
    /// request (see `kappa serve --token`).
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }

    fn authorized(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => req.bearer_auth(token),
            None => req,
        }
    }

    /// The server could not be reached (nothing was sent), or the
    /// connection broke (the request may have been sent).
    fn unreachable(&self, e: &reqwest::Error) -> ClientError {
        let (server, reason) = (self.base.to_string(), root_cause(e));
        if e.is_connect() {
            ClientError::Unreachable { server, reason }
        } else {
            ClientError::NoAnswer { server, reason }
        }
    }

    fn url(&self, segments: &[&str]) -> Result<reqwest::Url, ClientError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| ClientError::Other(format!("`{}` cannot be a base address", self.base)))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    async fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let resp = self
            .authorized(req)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.unreachable(&e))?;
        if status.is_success() {
            serde_json::from_slice(&bytes)
                .map_err(|e| ClientError::Other(format!("unexpected answer from the server: {e}")))
        } else {
            match serde_json::from_slice::<ErrorReply>(&bytes) {
                Ok(reply) => Err(ClientError::Api {
                    status: status.as_u16(),
                    kind: reply.error.kind,
                    message: reply.error.message,
                }),
                Err(_) => Err(ClientError::Api {
                    status: status.as_u16(),
                    kind: "http".into(),
                    message: format!("HTTP {status}: {}", String::from_utf8_lossy(&bytes)),
                }),
            }
        }
    }

    /// `GET /v1/status`.
    pub async fn status(&self) -> Result<StatusReport, ClientError> {
        self.send(self.http.get(self.url(&["v1", "status"])?)).await
    }

    /// `GET /v1/processors/{name}`.
    pub async fn processor(&self, name: &str) -> Result<ProcessorStatus, ClientError> {
        self.send(self.http.get(self.url(&["v1", "processors", name])?))
            .await
    }

    /// `GET /v1/processors/{name}/versions/{version}`.
    pub async fn version(&self, name: &str, version: &str) -> Result<VersionStatus, ClientError> {
        self.send(
            self.http
                .get(self.url(&["v1", "processors", name, "versions", version])?),
        )
        .await
    }

    /// `POST /v1/topics`.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: u32,
    ) -> Result<TopicStatus, ClientError> {
        let body = CreateTopic {
            name: name.to_owned(),
            partitions,
        };
        self.send(self.http.post(self.url(&["v1", "topics"])?).json(&body))
            .await
    }

    /// `GET /v1/topics`.
    pub async fn topics(&self) -> Result<Vec<TopicStatus>, ClientError> {
        self.send(self.http.get(self.url(&["v1", "topics"])?)).await
    }

    /// `POST /v1/topics/{topic}/events`: appends all or nothing.
    pub async fn produce(
        &self,
        topic: &str,
        events: Vec<EventLine>,
    ) -> Result<ProduceReport, ClientError> {
        self.produce_request(topic, events, None).await
    }

    /// `POST /v1/topics/{topic}/events` with an optional request id: a
    /// request whose id the server stored before is not stored again.
    pub async fn produce_request(
        &self,
        topic: &str,
        events: Vec<EventLine>,
        request_id: Option<String>,
    ) -> Result<ProduceReport, ClientError> {
        let body = ProduceRequest { events, request_id };
        self.send(
            self.http
                .post(self.url(&["v1", "topics", topic, "events"])?)
                .json(&body),
        )
        .await
    }

    /// `GET /v1/topics/{topic}/events`: events of one partition from an offset.
    pub async fn consume(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        limit: usize,
    ) -> Result<crate::model::ConsumePage, ClientError> {
        let query = [
            ("partition", partition.to_string()),
            ("from", from.to_string()),
            ("limit", limit.to_string()),
        ];
        self.send(
            self.http
                .get(self.url(&["v1", "topics", topic, "events"])?)
                .query(&query),
        )
        .await
    }

    /// `POST /v1/processors/{name}/versions/{version}` with the component bytes.
    pub async fn deploy(
        &self,
        name: &str,
        version: &str,
        topic: &str,
        bytes: Vec<u8>,
        settings: &Settings,
    ) -> Result<DeployReport, ClientError> {
        self.deploy_topics(name, version, &[topic.to_owned()], bytes, settings)
            .await
    }

    /// [`deploy`](Self::deploy) of a version reading `topics` (the first is
    /// topic index 0).
    pub async fn deploy_topics(
        &self,
        name: &str,
        version: &str,
        topics: &[String],
        bytes: Vec<u8>,
        settings: &Settings,
    ) -> Result<DeployReport, ClientError> {
        let mut query = vec![
            ("topic", topics.join(",")),
            ("config", settings.config.clone()),
            ("auto_promote", settings.auto_promote.to_string()),
            ("batch_timeout_ms", settings.batch_timeout_ms.to_string()),
            (
                "memory_limit_bytes",
                settings.memory_limit_bytes.to_string(),
            ),
            (
                "on_error",
                match settings.on_error {
                    crate::registry::OnError::Stop => "stop",
                    crate::registry::OnError::Skip => "skip",
                }
                .to_owned(),
            ),
            ("threads", settings.threads.to_string()),
        ];
        // Sent only when set, so that a deploy without it reaches a server
        // that does not know it.
        if settings.topic_idle_ms > 0 {
            query.push(("topic_idle_ms", settings.topic_idle_ms.to_string()));
        }
        let req = self
            .http
            .post(self.url(&["v1", "processors", name, "versions", version])?)
            .query(&query)
            .header(reqwest::header::CONTENT_TYPE, "application/wasm")
            .body(bytes);
        self.send(req).await
    }

    /// `POST /v1/processors/{name}/promote`.
    pub async fn promote(
        &self,
        name: &str,
        version: &str,
        force: bool,
    ) -> Result<ProcessorStatus, ClientError> {
        let body = PromoteRequest {
            version: version.to_owned(),
            force,
        };
        self.send(
            self.http
                .post(self.url(&["v1", "processors", name, "promote"])?)
                .json(&body),
        )
        .await
    }

    /// `POST /v1/processors/{name}/rollback`.
    pub async fn rollback(&self, name: &str) -> Result<ProcessorStatus, ClientError> {
        self.send(
            self.http
                .post(self.url(&["v1", "processors", name, "rollback"])?),
        )
        .await
    }

    /// `DELETE /v1/processors/{name}/versions/{version}`.
    pub async fn retire(&self, name: &str, version: &str) -> Result<VersionStatus, ClientError> {
        self.send(
            self.http
                .delete(self.url(&["v1", "processors", name, "versions", version])?),
        )
        .await
    }

    /// `GET /v1/views/{spec}/keys/{key}`.
    pub async fn get(&self, spec: &str, key: &str, hex: bool) -> Result<GetReply, ClientError> {
        self.get_with(spec, key, hex, false).await
    }

    /// [`Client::get`], with the stored bytes in `value_base64` when `raw`.
    pub async fn get_with(
        &self,
        spec: &str,
        key: &str,
        hex: bool,
        raw: bool,
    ) -> Result<GetReply, ClientError> {
        let mut url = self.url(&["v1", "views", spec, "keys"])?;
        url.path_segments_mut()
            .map_err(|()| ClientError::Other("bad base address".into()))?
            .push(key);
        self.send(self.http.get(url).query(&[("hex", hex), ("raw", raw)]))
            .await
    }

    /// `GET /v1/views/{spec}/scan`.
    pub async fn scan(
        &self,
        spec: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Capped<ScanPage>, ClientError> {
        self.scan_with(spec, prefix, after, limit, false).await
    }

    /// [`Client::scan`], with each row's stored bytes in `value_base64` when
    /// `raw`.
    pub async fn scan_with(
        &self,
        spec: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        raw: bool,
    ) -> Result<Capped<ScanPage>, ClientError> {
        let mut query = vec![
            ("prefix", prefix.to_owned()),
            ("limit", limit.to_string()),
            ("raw", raw.to_string()),
        ];
        if let Some(after) = after {
            query.push(("after", after.to_owned()));
        }
        self.send(
            self.http
                .get(self.url(&["v1", "views", spec, "scan"])?)
                .query(&query),
        )
        .await
    }

    /// `GET /v1/views/{spec}/digest`.
    pub async fn digest(&self, spec: &str) -> Result<DigestReply, ClientError> {
        self.send(self.http.get(self.url(&["v1", "views", spec, "digest"])?))
            .await
    }

    /// `GET /v1/diff`: the report alone (see [`Client::diff_page`]).
    pub async fn diff(
        &self,
        a: &str,
        b: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        wait_ms: u64,
    ) -> Result<DiffReport, ClientError> {
        let page = self.diff_page(a, b, prefix, after, limit, wait_ms).await?;
        Ok(page.page)
    }

    /// `GET /v1/diff`, with the row cap the server applied.
    pub async fn diff_page(
        &self,
        a: &str,
        b: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        wait_ms: u64,
    ) -> Result<Capped<DiffReport>, ClientError> {
        let mut query = vec![
            ("a", a.to_owned()),
            ("b", b.to_owned()),
            ("prefix", prefix.to_owned()),
            ("limit", limit.to_string()),
            ("wait_ms", wait_ms.to_string()),
        ];
        if let Some(after) = after {
            query.push(("after", after.to_owned()));
        }
        self.send(self.http.get(self.url(&["v1", "diff"])?).query(&query))
            .await
    }

    /// `GET /metrics`, as text.
    pub async fn metrics(&self) -> Result<String, ClientError> {
        let resp = self
            .authorized(self.http.get(self.url(&["metrics"])?))
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        resp.text()
            .await
            .map_err(|e| ClientError::Other(e.to_string()))
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
