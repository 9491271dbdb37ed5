//! The host's rows of a shard under contract 0.3.0, and event time.
//!
//! A partition's timers and event time are rows of its shard, under keys from
//! [`RESERVED`] on, so that they are committed with the batch that changes
//! them by the very commit that brings its rows and offsets (exactly-once
//! needs nothing more), restored by a restart, and part of the view's digest:
//! two versions with equal rows but different timers do not hold the same
//! state. Queries show them; a processor's own reads do not, and it may not
//! write them (`super::host::view`).
//!
//! Per partition `P` (the partition is in the key, so that no two shards hold
//! one key, which state per partition refuses):
//!
//! - `RESERVED p<P>/time`: the partition's event time, the largest timestamp
//!   processed so far, as an [ordered](encode_time) 8-byte value.
//! - `RESERVED p<P>/timer/<name>`: a timer, valued with its moment.
//! - `RESERVED p<P>/offset/<topic>`: the next offset of the partition in
//!   topic `<topic>` (index 1 on) of a version reading several topics.
//! - `RESERVED p<P>/due/<moment><name>`: the same timer in the order it fires
//!   in, (moment, name), with an empty value: the first such row is the next
//!   timer due.
//!
//! The rule of when a timer fires ([`fire_point`]) is the contract's: right
//! after the first event, from the one that set it on, that brings the event
//! time to its moment.

/// The first key of the host's rows: `0xff 0xff "kappa/"`. A processor's
/// keys sort before it unless they start with two 0xff bytes.
pub const RESERVED: &[u8] = b"\xff\xffkappa/";

/// The first key after the host's rows (`'0'` is the byte after `'/'`).
pub const RESERVED_END: &[u8] = b"\xff\xffkappa0";

/// The event time before any event: no moment is reached.
pub const NO_TIME: i64 = i64::MIN;

/// The keys of one partition's host rows.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: Vec<u8>,
}

impl Keys {
    /// The keys of partition `partition`.
    pub fn new(partition: u32) -> Self {
        let mut prefix = RESERVED.to_vec();
        prefix.extend_from_slice(format!("p{partition}/").as_bytes());
        Keys { prefix }
    }

    fn with(&self, parts: &[&[u8]]) -> Vec<u8> {
        let mut key = self.prefix.clone();
        for part in parts {
            key.extend_from_slice(part);
        }
        key
    }

    /// The row of the partition's event time.
    pub fn time(&self) -> Vec<u8> {
        self.with(&[b"time"])
    }

    /// The row of the partition's next offset in topic `topic` (index 1 on)
    /// of a version that reads several topics, valued with the offset as 8
    /// bytes big-endian: committed with the batch's rows, as topic 0's next
    /// offset is by the store (`lifecycle::inputs`).
    pub fn offset(&self, topic: u32) -> Vec<u8> {
        self.with(&[b"offset/", topic.to_string().as_bytes()])
    }

    /// The row of the timer named `name`.
    pub fn timer(&self, name: &[u8]) -> Vec<u8> {
        self.with(&[b"timer/", name])
    }

    /// The row of the timer named `name` in firing order, for moment `at`.
    pub fn due(&self, at: i64, name: &[u8]) -> Vec<u8> {
        self.with(&[b"due/", &encode_time(at), name])
    }

    /// The range of the firing-order rows: from its first key to the key
    /// after its last.
    pub fn due_range(&self) -> (Vec<u8>, Vec<u8>) {
        // '0' is the byte after '/'.
        (self.with(&[b"due/"]), self.with(&[b"due0"]))
    }

    /// The moment and name of a firing-order row's key, if it is one.
    pub fn parse_due<'k>(&self, key: &'k [u8]) -> Option<(i64, &'k [u8])> {
        let rest = key.strip_prefix(self.prefix.as_slice())?;
        let rest = rest.strip_prefix(b"due/".as_slice())?;
        let (moment, name) = rest.split_at_checked(8)?;
        Some((decode_time(moment)?, name))
    }
}

/// A moment as 8 bytes that sort as the moments do (the sign bit flipped,
/// big-endian).
pub fn encode_time(at: i64) -> [u8; 8] {
    #[expect(
        clippy::cast_sign_loss,
        reason = "a bit-for-bit reinterpretation, undone by decode_time"
    )]
    let bits = at as u64;
    (bits ^ (1 << 63)).to_be_bytes()
}

/// The moment of 8 bytes written by [`encode_time`]; `None` for another
/// length.
pub fn decode_time(bytes: &[u8]) -> Option<i64> {
    let bytes: [u8; 8] = bytes.try_into().ok()?;
    #[expect(
        clippy::cast_possible_wrap,
        reason = "a bit-for-bit reinterpretation of encode_time"
    )]
    Some((u64::from_be_bytes(bytes) ^ (1 << 63)) as i64)
}

/// The partition's event time after each of `timestamps`, starting from
/// `before`: a running maximum.
pub fn event_times(before: i64, timestamps: impl IntoIterator<Item = i64>) -> Vec<i64> {
    let mut time = before;
    timestamps
        .into_iter()
        .map(|t| {
            time = time.max(t);
            time
        })
        .collect()
}

/// The event after which a timer for `at`, counting from event `from`, fires:
/// the first event from `from` on whose event time (`times`, from
/// [`event_times`]) reaches `at`; `None` when none of them does.
pub fn fire_point(times: &[i64], from: usize, at: i64) -> Option<usize> {
    let rest = times.get(from..)?;
    // Event times never decrease, so the events that reach `at` are a suffix.
    let i = from + rest.partition_point(|&t| t < at);
    (i < times.len()).then_some(i)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;

    #[test]
    fn moments_sort_as_their_bytes_and_read_back() {
        let moments = [i64::MIN, -5, -1, 0, 1, 1_700_000_000_000, i64::MAX];
        for pair in moments.windows(2) {
            assert!(encode_time(pair[0]) < encode_time(pair[1]), "{pair:?}");
        }
        for m in moments {
            assert_eq!(decode_time(&encode_time(m)), Some(m));
        }
        assert_eq!(decode_time(b"short"), None);
    }

    #[test]
    fn firing_order_rows_sort_by_moment_then_name_and_parse_back() {
        let keys = Keys::new(3);
        let (start, end) = keys.due_range();
        let a = keys.due(5, b"zz");
        let b = keys.due(6, b"aa");
        assert!(start < a && a < b && b < end);
        assert_eq!(keys.parse_due(&b), Some((6, b"aa".as_slice())));
        assert_eq!(keys.parse_due(&keys.timer(b"aa")), None);
        assert_eq!(Keys::new(4).parse_due(&b), None, "another partition's row");
        for key in [keys.time(), keys.timer(b"x"), a] {
            assert!(key.starts_with(RESERVED));
            assert!(!key.starts_with(&Keys::new(30).prefix), "p3 is not p30");
        }
    }

    #[test]
    fn a_timer_fires_at_the_first_event_from_its_setter_that_reaches_it() {
        // Timestamps 10, 30, 20, 40: event times 10, 30, 30, 40.
        let times = event_times(NO_TIME, [10, 30, 20, 40]);
        assert_eq!(times, [10, 30, 30, 40]);
        assert_eq!(fire_point(&times, 0, 25), Some(1));
        assert_eq!(fire_point(&times, 2, 25), Some(2), "already reached");
        assert_eq!(fire_point(&times, 0, 40), Some(3));
        assert_eq!(fire_point(&times, 0, 41), None);
        assert_eq!(
            fire_point(&times, 4, 0),
            None,
            "no event from the setter on"
        );
        assert_eq!(event_times(35, [10, 50]), [35, 50], "time never goes back");
    }
}
