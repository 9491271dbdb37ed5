//! The test oracle: the views that the example payments plugins must build,
//! computed again here from their specification (not from their code), and
//! the digests and diff counts those views must give.

use std::collections::BTreeMap;

use serde_json::Value;

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
