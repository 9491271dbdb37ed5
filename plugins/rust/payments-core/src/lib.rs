//! What the payments plugins share: parsing a payment payload, the rows they
//! keep in their view, and a per-batch cache of those rows.
//!
//! The fraud rules themselves stay in `payments-v1` and `payments-v2`, so each
//! plugin reads as its own version of the logic. Nothing here depends on the
//! WIT bindings: the plugins reach their view through the [`View`] trait, which
//! lets the whole logic run and be tested natively against a [`MemoryView`].
//!
//! The same logic is written in other languages, and their views must be
//! byte-identical to these. So every value written is compact JSON with its
//! fields in declaration order, and amounts and times are integers, never
//! floats.

use std::borrow::Cow;
use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

/// Prefix of the per-account totals: `account/<account>`.
pub const ACCOUNT_PREFIX: &str = "account/";
/// Prefix of the flagged transactions: `flag/<txn>`.
pub const FLAG_PREFIX: &str = "flag/";
/// Prefix of the recent timestamps of an account: `window/<account>`.
pub const WINDOW_PREFIX: &str = "window/";

/// The view of the running processor version, as the plugins use it.
pub trait View {
    /// The value stored under `key`, or `None`.
    fn get(&mut self, key: &[u8]) -> Option<Vec<u8>>;
    /// Stores `value` under `key`.
    fn put(&mut self, key: &[u8], value: &[u8]);
}

/// A view held in memory, ordered like the host's: for tests and tools.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MemoryView(pub BTreeMap<Vec<u8>, Vec<u8>>);

impl View for MemoryView {
    fn get(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        self.0.get(key).cloned()
    }

    fn put(&mut self, key: &[u8], value: &[u8]) {
        self.0.insert(key.to_vec(), value.to_vec());
    }
}

/// The parts of an event the payments logic reads, borrowed from the event.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// Offset of the event in its partition.
    pub offset: u64,
    /// Event time, in milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// The event key: the account id, when the producer gave one.
    pub key: Option<&'a [u8]>,
    /// The JSON payload.
    pub value: &'a [u8],
}

/// Why a batch failed; the plugins map it onto the WIT `error` variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The event at `offset` cannot be processed.
    Event {
        /// Offset of the refused event.
        offset: u64,
        /// What is wrong with it.
        message: String,
    },
    /// Anything else, such as a corrupt row in the view.
    Internal(String),
}

impl Failure {
    /// An [`Failure::Event`] for the event at `offset`.
    pub fn event(offset: u64, message: impl Into<String>) -> Self {
        Failure::Event {
            offset,
            message: message.into(),
        }
    }
}

/// One payment, as found in an event's payload. Unknown fields are ignored so
/// that producers can add some without stopping the processors.
///
/// Strings borrow from the payload unless they contain escapes.
#[derive(Debug, Deserialize)]
#[serde(expecting = "a payment object")]
pub struct Payment<'a> {
    /// Transaction id, unique per payment.
    #[serde(borrow)]
    pub txn: Cow<'a, str>,
    /// Account the payment is made from.
    #[serde(borrow)]
    pub account: Cow<'a, str>,
    /// Amount, in integer cents; checked non-negative by [`parse_payment`].
    pub amount_cents: i64,
    /// Merchant paid; required by the payload format though no rule uses it.
    #[serde(borrow)]
    pub merchant: Cow<'a, str>,
}

/// A payment whose amount is known to be non-negative.
#[derive(Debug)]
pub struct Checked<'a> {
    /// The payload.
    pub payment: Payment<'a>,
    /// `payment.amount_cents`, non-negative.
    pub amount_cents: u64,
}

/// Parses and checks a payment payload. The error is the message for the
/// operator: `value is not JSON: ...` when the bytes are not JSON at all,
/// serde's own message (`missing field `amount_cents` at ...`) when the JSON is
/// not a payment, and `amount_cents is negative: N` for a negative amount.
pub fn parse_payment(value: &[u8]) -> Result<Checked<'_>, String> {
    let payment: Payment<'_> = serde_json::from_slice(value).map_err(|e| {
        if e.is_data() {
            e.to_string()
        } else {
            format!("value is not JSON: {e}")
        }
    })?;
    // serde also reads a struct from a JSON array of its fields in order; the
    // payload format is an object only.
    if value.iter().find(|b| !b" \t\n\r".contains(b)) != Some(&b'{') {
        return Err("invalid type: sequence, expected a payment object".into());
    }
    let amount_cents = u64::try_from(payment.amount_cents)
        .map_err(|_| format!("amount_cents is negative: {}", payment.amount_cents))?;
    Ok(Checked {
        payment,
        amount_cents,
    })
}

/// The account an event is about: its key when it has one (the producer keys
/// payments by account), else the payload's `account`.
pub fn account_of<'a>(key: Option<&'a [u8]>, payment: &'a Payment<'_>) -> Result<&'a str, String> {
    match key {
        Some(key) => std::str::from_utf8(key).map_err(|e| format!("key is not UTF-8: {e}")),
        None => Ok(&payment.account),
    }
}

/// The totals of one account, under `account/<account>`:
/// `{"txns":N,"total_cents":S,"flagged":F}`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRow {
    /// Payments seen.
    pub txns: u64,
    /// Sum of their amounts.
    pub total_cents: u64,
    /// How many of them were flagged.
    pub flagged: u64,
}

impl AccountRow {
    /// Counts one payment. Fails rather than wrap, since a wrapped total
    /// would differ from the other languages' unbounded or checked ones.
    pub fn record(&mut self, amount_cents: u64, flagged: bool) -> Result<(), String> {
        self.total_cents = self
            .total_cents
            .checked_add(amount_cents)
            .ok_or("total_cents would overflow a 64-bit integer")?;
        self.txns += 1;
        self.flagged += u64::from(flagged);
        Ok(())
    }
}

/// The fraud rule that flagged a payment, written as `large-amount`,
/// `velocity` or (payments v3) `over-limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// The amount reached the configured threshold.
    LargeAmount,
    /// The account made too many payments in a short time.
    Velocity,
    /// The account's payments in a short time passed its limit.
    OverLimit,
}

/// A flagged payment, under `flag/<txn>`:
/// `{"account":"..","amount_cents":..,"rule":"..","timestamp":..}`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Flag<'a> {
    /// Account of the payment.
    pub account: &'a str,
    /// Its amount.
    pub amount_cents: u64,
    /// The rule that flagged it.
    pub rule: Rule,
    /// Its event time.
    pub timestamp: i64,
}

/// Parses a plugin configuration: a JSON object, or the empty string for the
/// defaults. `T` decides which fields exist (it should deny unknown ones).
pub fn parse_config<T: for<'de> Deserialize<'de> + Default>(config: &str) -> Result<T, String> {
    if config.trim().is_empty() {
        return Ok(T::default());
    }
    serde_json::from_str(config).map_err(|e| {
        if e.is_data() {
            format!("invalid config: {e}")
        } else {
            format!("config is not JSON: {e}")
        }
    })
}

/// Largest `window_ms` accepted: the largest integer every language of the
/// examples represents exactly.
pub const MAX_WINDOW_MS: u64 = (1 << 53) - 1;

/// The configuration of payments v2 and v3, given at deploy as a JSON
/// object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowConfig {
    /// Smallest amount, in cents, flagged as `large-amount`.
    pub large_cents: u64,
    /// Length of the window, in milliseconds.
    pub window_ms: u64,
    /// Payments within the window, this one included, that flag it as
    /// `velocity`.
    pub max_txns: u32,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            large_cents: 1_000_000,
            window_ms: 60_000,
            max_txns: 4,
        }
    }
}

impl WindowConfig {
    /// Parses the `init` string and checks the ranges serde cannot.
    pub fn parse(config: &str) -> Result<WindowConfig, String> {
        let config: WindowConfig = parse_config(config)?;
        if !(1..=MAX_WINDOW_MS).contains(&config.window_ms) {
            return Err(format!(
                "invalid config: window_ms must be between 1 and {MAX_WINDOW_MS}, not {}",
                config.window_ms
            ));
        }
        if config.max_txns == 0 {
            return Err("invalid config: max_txns must be at least 1".into());
        }
        Ok(config)
    }
}

/// Reads and decodes the JSON row under `key`, `None` when absent.
pub fn load<T: for<'de> Deserialize<'de>>(
    view: &mut impl View,
    key: &[u8],
) -> Result<Option<T>, Failure> {
    let Some(bytes) = view.get(key) else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        Failure::Internal(format!(
            "row {} of the view is corrupt: {e}",
            String::from_utf8_lossy(key)
        ))
    })
}

/// Encodes rows and their keys into buffers reused across a batch, so that
/// writing a row allocates nothing once the buffers have grown.
#[derive(Debug, Default)]
pub struct Writer {
    key: Vec<u8>,
    value: Vec<u8>,
}

impl Writer {
    /// Builds `<prefix><id>` into the key buffer and returns it.
    pub fn key(&mut self, prefix: &str, id: &str) -> &[u8] {
        self.key.clear();
        self.key.extend_from_slice(prefix.as_bytes());
        self.key.extend_from_slice(id.as_bytes());
        &self.key
    }

    /// Puts `value`, as compact JSON, under `<prefix><id>`.
    pub fn put(
        &mut self,
        view: &mut impl View,
        prefix: &str,
        id: &str,
        value: &impl Serialize,
    ) -> Result<(), Failure> {
        self.value.clear();
        serde_json::to_writer(&mut self.value, value)
            .map_err(|e| Failure::Internal(format!("cannot encode {prefix}{id}: {e}")))?;
        self.key(prefix, id);
        view.put(&self.key, &self.value);
        Ok(())
    }
}

/// The state of the accounts touched by one batch, in first-touch order.
///
/// Each account's rows are read from the view once, on first touch, and
/// written once, by [`Batch::rows`] at the end of the batch: a hot account
/// costs one read and one write per batch instead of one per event.
#[derive(Debug)]
pub struct Batch<S> {
    index: FxHashMap<Box<str>, usize>,
    rows: Vec<(Box<str>, S)>,
}

impl<S> Default for Batch<S> {
    fn default() -> Self {
        Batch {
            index: FxHashMap::default(),
            rows: Vec::new(),
        }
    }
}

impl<S> Batch<S> {
    /// The state of `account`, loaded by `load` on first touch.
    pub fn get(
        &mut self,
        account: &str,
        load: impl FnOnce() -> Result<S, Failure>,
    ) -> Result<&mut S, Failure> {
        let i = match self.index.get(account) {
            Some(&i) => i,
            None => {
                let state = load()?;
                let i = self.rows.len();
                self.rows.push((account.into(), state));
                self.index.insert(account.into(), i);
                i
            }
        };
        Ok(&mut self.rows[i].1)
    }

    /// Every touched account and its state, in first-touch order, so that
    /// the writes of a batch come in the same order every time.
    pub fn rows(&self) -> impl Iterator<Item = (&str, &S)> {
        self.rows.iter().map(|(account, state)| (&**account, state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_payment_borrowing_its_strings() {
        let p = parse_payment(br#"{"txn":"t-1","account":"acct-017","amount_cents":1250,"merchant":"m-04","extra":[1]}"#)
            .expect("valid payment");
        assert_eq!(p.amount_cents, 1250);
        assert_eq!(&*p.payment.account, "acct-017");
        assert!(matches!(p.payment.txn, Cow::Borrowed("t-1")));
        let escaped =
            parse_payment(br#"{"txn":"t\"1","account":"a","amount_cents":0,"merchant":"m"}"#)
                .expect("valid payment");
        assert_eq!(&*escaped.payment.txn, "t\"1");
    }

    #[test]
    fn payload_errors_are_precise() {
        let err = |v: &[u8]| parse_payment(v).expect_err("invalid payment");
        assert_eq!(
            err(b"oops"),
            "value is not JSON: expected value at line 1 column 1"
        );
        assert_eq!(
            err(b"{\"txn\":"),
            "value is not JSON: EOF while parsing a value at line 1 column 7"
        );
        assert!(
            err(br#"{"txn":"t","account":"a","merchant":"m"}"#)
                .starts_with("missing field `amount_cents`"),
            "{}",
            err(br#"{"txn":"t","account":"a","merchant":"m"}"#)
        );
        assert!(
            err(br#"{"txn":"t","account":"a","amount_cents":"12","merchant":"m"}"#)
                .starts_with("invalid type: string \"12\", expected i64")
        );
        assert!(
            err(br#"{"txn":"t","account":"a","amount_cents":1.5,"merchant":"m"}"#)
                .starts_with("invalid type: floating point `1.5`, expected i64")
        );
        assert!(err(b"42").starts_with("invalid type: integer `42`, expected a payment object"));
        assert_eq!(
            err(br#" ["t","a",1,"m"]"#),
            "invalid type: sequence, expected a payment object"
        );
        assert_eq!(
            err(br#"{"txn":"t","account":"a","amount_cents":-5,"merchant":"m"}"#),
            "amount_cents is negative: -5"
        );
    }

    #[test]
    fn the_key_names_the_account_when_present() {
        let p =
            parse_payment(br#"{"txn":"t","account":"payload","amount_cents":1,"merchant":"m"}"#)
                .expect("valid");
        assert_eq!(account_of(Some(b"key"), &p.payment), Ok("key"));
        assert_eq!(account_of(None, &p.payment), Ok("payload"));
        assert!(account_of(Some(&[0xff]), &p.payment).is_err());
    }

    #[test]
    fn rows_encode_compactly_in_field_order() {
        let mut row = AccountRow::default();
        row.record(1250, false).expect("no overflow");
        row.record(7, true).expect("no overflow");
        assert_eq!(
            serde_json::to_string(&row).expect("encodes"),
            r#"{"txns":2,"total_cents":1257,"flagged":1}"#
        );
        let flag = Flag {
            account: "a\"b",
            amount_cents: 5,
            rule: Rule::LargeAmount,
            timestamp: -1,
        };
        assert_eq!(
            serde_json::to_string(&flag).expect("encodes"),
            r#"{"account":"a\"b","amount_cents":5,"rule":"large-amount","timestamp":-1}"#
        );
        row.total_cents = u64::MAX;
        assert!(row.record(1, false).is_err());
    }

    #[test]
    fn batch_loads_once_and_keeps_first_touch_order() {
        let mut batch: Batch<u32> = Batch::default();
        let mut loads = 0;
        for account in ["b", "a", "b", "c", "a"] {
            *batch
                .get(account, || {
                    loads += 1;
                    Ok(0)
                })
                .expect("loads") += 1;
        }
        assert_eq!(loads, 3);
        let rows: Vec<_> = batch.rows().map(|(a, n)| (a.to_owned(), *n)).collect();
        assert_eq!(
            rows,
            [
                ("b".to_owned(), 2),
                ("a".to_owned(), 2),
                ("c".to_owned(), 1)
            ]
        );
    }

    #[test]
    fn corrupt_rows_are_internal_errors() {
        let mut view = MemoryView::default();
        view.put(b"account/a", b"{");
        assert!(matches!(
            load::<AccountRow>(&mut view, b"account/a"),
            Err(Failure::Internal(_))
        ));
        assert_eq!(load::<AccountRow>(&mut view, b"account/b"), Ok(None));
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct TestConfig {
        limit: u64,
    }

    #[test]
    fn config_is_an_object_or_empty() {
        assert_eq!(parse_config::<TestConfig>(""), Ok(TestConfig { limit: 0 }));
        assert_eq!(
            parse_config::<TestConfig>(r#"{"limit":3}"#),
            Ok(TestConfig { limit: 3 })
        );
        let unknown = parse_config::<TestConfig>(r#"{"limt":3}"#).expect_err("unknown field");
        assert!(
            unknown.starts_with("invalid config: unknown field `limt`, expected `limit`"),
            "{unknown}"
        );
        let mistyped = parse_config::<TestConfig>(r#"{"limit":"3"}"#).expect_err("wrong type");
        assert!(
            mistyped.starts_with("invalid config: invalid type: string \"3\", expected u64"),
            "{mistyped}"
        );
        assert!(
            parse_config::<TestConfig>("{")
                .expect_err("not JSON")
                .starts_with("config is not JSON")
        );
    }
}
