//! Scale-out over Kafka: several hosts share one topic, each owning a
//! disjoint set of its partitions (`--kafka-partitions`) and keeping the
//! views of those partitions only. A query to any host gets the whole
//! answer: what a host does not find in its own view it asks its peers
//! (`--peer URL`), with `local=true` so that a peer answers from its own
//! view only and never forwards again.
//!
//! Forwarding is scatter-gather rather than routing by key: a plugin's view
//! keys need not be its events' keys (a flag is keyed by transaction, its
//! event by account), so no host can tell from a view key which partition,
//! hence which host, wrote it. A `get` asks the peers one after the other
//! until one has the key; a `scan` asks every host for the same page and
//! merges the pages in key order. Views of disjoint partitions are disjoint
//! when a plugin keys its rows by something derived from the event key; a
//! key written from several partitions lives on several hosts, and the
//! first answer wins.

use std::sync::OnceLock;
use std::time::Duration;

use crate::error::Error;
use crate::model::{GetReply, Row, ScanPage};

fn http() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default()
    })
}

fn peer_error(peer: &str, e: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!(
        "peer {peer} did not answer ({e}); the rows of its partitions are missing"
    ))
}

async fn ask<T: serde::de::DeserializeOwned>(
    peer: &str,
    token: Option<&str>,
    path: &[&str],
    query: &[(&str, String)],
) -> Result<T, Error> {
    let mut url = reqwest::Url::parse(peer)
        .map_err(|e| Error::invalid(format!("bad peer address {peer:?}: {e}")))?;
    url.path_segments_mut()
        .map_err(|()| Error::invalid(format!("bad peer address {peer:?}")))?
        .pop_if_empty()
        .extend(path);
    let mut request = http().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let resp = request
        .query(query)
        .query(&[("local", "true")])
        .send()
        .await
        .map_err(|e| peer_error(peer, e))?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp.text().await.unwrap_or_default();
        return Err(peer_error(peer, format!("HTTP {status}: {body}")));
    }
    resp.json::<T>().await.map_err(|e| peer_error(peer, e))
}

/// The first peer's row under `key`, if any peer has it.
pub async fn get(
    peers: &[String],
    token: Option<&str>,
    spec: &str,
    key: &str,
    hex: bool,
    raw: bool,
) -> Result<Option<GetReply>, Error> {
    for peer in peers {
        let reply: GetReply = ask(
            peer,
            token,
            &["v1", "views", spec, "keys", key],
            &[("hex", hex.to_string()), ("raw", raw.to_string())],
        )
        .await?;
        if reply.found {
            return Ok(Some(reply));
        }
    }
    Ok(None)
}

/// Merges `local` with the same page asked of every peer: the first `limit`
/// rows in key order, and where the next page starts.
#[allow(
    clippy::too_many_arguments,
    reason = "the scan's own parameters, passed on"
)]
pub async fn scan(
    peers: &[String],
    token: Option<&str>,
    spec: &str,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
    raw: bool,
    local: ScanPage,
) -> Result<ScanPage, Error> {
    let mut query = vec![
        ("prefix", prefix.to_owned()),
        ("limit", limit.to_string()),
        ("raw", raw.to_string()),
    ];
    if let Some(after) = after {
        query.push(("after", after.to_owned()));
    }
    let mut more = local.next_after.is_some();
    let mut rows: std::collections::BTreeMap<String, Row> = std::collections::BTreeMap::new();
    for peer in peers {
        let page: ScanPage = ask(peer, token, &["v1", "views", spec, "scan"], &query).await?;
        more |= page.next_after.is_some();
        for row in page.rows {
            rows.entry(row.key.clone()).or_insert(row);
        }
    }
    // The local row wins over a peer's for the same key.
    for row in local.rows {
        rows.insert(row.key.clone(), row);
    }
    more |= rows.len() > limit;
    let rows: Vec<Row> = rows.into_values().take(limit).collect();
    Ok(ScanPage {
        id: local.id,
        next_after: if more {
            rows.last().map(|r| r.key.clone())
        } else {
            None
        },
        rows,
    })
}
