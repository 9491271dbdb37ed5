//! A realistic, reproducible stream of card payments: the input of
//! `kappa demo`, of the end-to-end tests and of the benchmarks.
//!
//! Reproducible because it is driven by a seeded SplitMix64 generator written
//! here (a few lines) rather than a library RNG whose output may change
//! between releases: tests compute expected views from these exact events.
//! Realistic enough to exercise both fraud rules of the example plugins: most
//! payments are small, about 2% are large, and some accounts make bursts of
//! payments within seconds.

use serde::Serialize;

use crate::model::EventLine;

/// One payment, as the example plugins read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Payment {
    /// Transaction id, unique.
    pub txn: String,
    /// Account id; also the event key.
    pub account: String,
    /// Amount in cents (never a float, so every language computes the same).
    pub amount_cents: i64,
    /// Merchant id.
    pub merchant: String,
    /// Event time, ms since the Unix epoch.
    #[serde(skip)]
    pub timestamp: i64,
}

impl Payment {
    /// The event that carries this payment: key = account, value = JSON.
    pub fn to_event_line(&self) -> EventLine {
        EventLine {
            key: Some(serde_json::Value::String(self.account.clone())),
            value: Some(serde_json::json!({
                "txn": self.txn,
                "account": self.account,
                "amount_cents": self.amount_cents,
                "merchant": self.merchant,
            })),
            timestamp: Some(self.timestamp),
            ..EventLine::default()
        }
    }
}

/// Generates payments.
#[derive(Debug, Clone)]
pub struct PaymentGenerator {
    state: u64,
    next_txn: u64,
    clock_ms: i64,
    accounts: u64,
    /// Remaining payments of a burst: (account, count).
    burst: Option<(u64, u32)>,
}

impl PaymentGenerator {
    /// A generator over `accounts` accounts, with event time starting at
    /// `start_ms`.
    pub fn new(seed: u64, accounts: u64, start_ms: i64) -> Self {
        PaymentGenerator {
            state: seed,
            next_txn: 0,
            clock_ms: start_ms,
            accounts: accounts.max(1),
            burst: None,
        }
    }

    fn next_u64(&mut self) -> u64 {
        // SplitMix64.
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// The next payment.
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_possible_wrap,
        reason = "every draw is below a small constant bound, so it fits any integer type"
    )]
    pub fn next_payment(&mut self) -> Payment {
        // Event time advances 0-400 ms per payment.
        self.clock_ms += self.below(400) as i64;
        let account = match self.burst {
            Some((account, left)) => {
                self.burst = (left > 1).then_some((account, left - 1));
                self.clock_ms += self.below(50) as i64;
                account
            }
            None => {
                let account = self.below(self.accounts);
                if self.below(100) < 3 {
                    // A burst: 3 to 6 more payments from this account soon.
                    self.burst = Some((account, 3 + self.below(4) as u32));
                }
                account
            }
        };
        let amount_cents = if self.below(100) < 2 {
            400_000 + self.below(1_600_000) as i64
        } else {
            100 + self.below(25_000) as i64
        };
        let txn = format!("t-{:07}", self.next_txn);
        self.next_txn += 1;
        Payment {
            txn,
            account: format!("acct-{account:04}"),
            amount_cents,
            merchant: format!("m-{:02}", self.below(40)),
            timestamp: self.clock_ms,
        }
    }

    /// The next `n` payments.
    pub fn take(&mut self, n: usize) -> Vec<Payment> {
        (0..n).map(|_| self.next_payment()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_both_rules_are_exercised() {
        let a = PaymentGenerator::new(7, 50, 0).take(2000);
        let b = PaymentGenerator::new(7, 50, 0).take(2000);
        assert_eq!(a, b);
        assert!(a.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
        let large = a.iter().filter(|p| p.amount_cents >= 500_000).count();
        assert!((10..100).contains(&large), "{large} large payments");
        let bursts = a
            .windows(4)
            .filter(|w| w.iter().all(|p| p.account == w[0].account))
            .count();
        assert!(bursts > 5, "{bursts} bursts");
    }
}
