//! Reads a batch of `kappa:processor@0.2.0`, `@0.3.0-rc.1` or `@0.3.0` in
//! place, event by event.
//!
//! Contract 0.2.0 (and 0.3.0-rc.1, whose batch is the same) hands `process` its events in columns (`event-batch`): one
//! list per field, and the keys and values of all events back to back in one
//! byte list. That is what makes a batch cheap to pass into WebAssembly, but it
//! is not how a processor wants to read it. [`Columns::events`] walks the
//! columns and yields one [`EventRef`] per event, borrowing its key and value
//! from the batch: no allocation, no copy.
//!
//! The crate knows nothing of the generated bindings (each plugin generates
//! its own `EventBatch` type), so [`columns!`] borrows the fields of a plugin's
//! `EventBatch` by name:
//!
//! ```
//! # struct EventBatch { partition: u32, offsets: Vec<u64>, timestamps: Vec<i64>,
//! #     key_lengths: Vec<i32>, value_lengths: Vec<u32>, data: Vec<u8> }
//! # let batch = EventBatch { partition: 0, offsets: vec![7], timestamps: vec![1],
//! #     key_lengths: vec![1], value_lengths: vec![2], data: b"abc".to_vec() };
//! let columns = kappa_guest::columns!(batch);
//! for event in columns.events()? {
//!     let event = event?;
//!     assert_eq!((event.offset, event.key, event.value), (7, Some(&b"a"[..]), &b"bc"[..]));
//! }
//! # Ok::<(), kappa_guest::Malformed>(())
//! ```
//!
//! A batch of 0.3.0 also says each event's topic: [`columns_topics!`]
//! borrows that column too, and [`EventRef::topic`] gives it (0 for the
//! batches of the contracts without it).
//!
//! Headers are not columns of their own: `event-batch.headers` is already a
//! list of `(event index, name, value)`, ordered by event.

/// The [`Columns`] of a generated `EventBatch` value (any expression with the
/// fields of `event-batch`), borrowed from it.
#[macro_export]
macro_rules! columns {
    ($batch:expr) => {{
        let batch = &$batch;
        $crate::Columns {
            partition: batch.partition,
            topics: &[],
            offsets: &batch.offsets,
            timestamps: &batch.timestamps,
            key_lengths: &batch.key_lengths,
            value_lengths: &batch.value_lengths,
            data: &batch.data,
        }
    }};
}

/// The [`Columns`] of a generated `EventBatch` of contract 0.3.0 (which has
/// `topics`), borrowed from it, each event's topic included.
#[macro_export]
macro_rules! columns_topics {
    ($batch:expr) => {{
        let batch = &$batch;
        $crate::Columns {
            partition: batch.partition,
            topics: &batch.topics,
            offsets: &batch.offsets,
            timestamps: &batch.timestamps,
            key_lengths: &batch.key_lengths,
            value_lengths: &batch.value_lengths,
            data: &batch.data,
        }
    }};
}

/// The columns of one `event-batch`, borrowed from it.
#[derive(Debug, Clone, Copy)]
pub struct Columns<'a> {
    /// Partition of every event of the batch.
    pub partition: u32,
    /// `event-batch.topics` (0.3.0), or empty: every event of topic 0.
    pub topics: &'a [u32],
    /// `event-batch.offsets`.
    pub offsets: &'a [u64],
    /// `event-batch.timestamps`.
    pub timestamps: &'a [i64],
    /// `event-batch.key-lengths` (-1: no key).
    pub key_lengths: &'a [i32],
    /// `event-batch.value-lengths`.
    pub value_lengths: &'a [u32],
    /// `event-batch.data`: keys and values back to back.
    pub data: &'a [u8],
}

/// One event of a batch, borrowing its key and value from the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRef<'a> {
    /// Index of the event in the batch (the `event` of its headers).
    pub index: u32,
    /// Partition of the event.
    pub partition: u32,
    /// Index of the event's topic among the version's topics (0.3.0; 0 for
    /// the contracts without the column).
    pub topic: u32,
    /// Offset of the event in its topic's partition.
    pub offset: u64,
    /// Event time, in milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// The key, when the event has one.
    pub key: Option<&'a [u8]>,
    /// The value.
    pub value: &'a [u8],
}

/// A batch whose columns disagree: a host bug, never the event's fault, so a
/// plugin reports it as an `internal` error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed event batch: {}", self.0)
    }
}

impl std::error::Error for Malformed {}

impl<'a> Columns<'a> {
    /// The events of the batch, in order. Fails at once when the columns
    /// have different lengths; each item fails when a key or value would
    /// reach past `data`.
    pub fn events(&self) -> Result<Events<'a>, Malformed> {
        let n = self.offsets.len();
        if [
            self.timestamps.len(),
            self.key_lengths.len(),
            self.value_lengths.len(),
        ]
        .iter()
        .any(|&len| len != n)
            || !(self.topics.is_empty() || self.topics.len() == n)
        {
            return Err(Malformed(format!(
                "columns of different lengths: {} offsets, {} topics, {} timestamps, {} key \
                 lengths, {} value lengths",
                n,
                self.topics.len(),
                self.timestamps.len(),
                self.key_lengths.len(),
                self.value_lengths.len()
            )));
        }
        Ok(Events {
            columns: *self,
            next: 0,
            position: 0,
        })
    }
}

/// Iterator over the events of a batch; see [`Columns::events`].
#[derive(Debug, Clone)]
pub struct Events<'a> {
    columns: Columns<'a>,
    next: usize,
    position: usize,
}

impl<'a> Events<'a> {
    fn take(&mut self, len: usize, what: &str) -> Result<&'a [u8], Malformed> {
        let data = self.columns.data;
        let end = self
            .position
            .checked_add(len)
            .filter(|&end| end <= data.len())
            .ok_or_else(|| {
                Malformed(format!(
                    "the {what} of event {} ({len} bytes at {}) reaches past the {} bytes of data",
                    self.next,
                    self.position,
                    data.len()
                ))
            })?;
        let bytes = &data[self.position..end];
        self.position = end;
        Ok(bytes)
    }
}

impl<'a> Iterator for Events<'a> {
    type Item = Result<EventRef<'a>, Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        let i = self.next;
        let c = self.columns;
        let (&offset, &timestamp, &key_length, &value_length) = (
            c.offsets.get(i)?,
            c.timestamps.get(i)?,
            c.key_lengths.get(i)?,
            c.value_lengths.get(i)?,
        );
        let event = (|| {
            let key = match usize::try_from(key_length) {
                Ok(len) => Some(self.take(len, "key")?),
                Err(_) if key_length == -1 => None,
                Err(_) => {
                    return Err(Malformed(format!("event {i} has key length {key_length}")));
                }
            };
            let value = self.take(value_length as usize, "value")?;
            Ok(EventRef {
                index: u32::try_from(i).unwrap_or(u32::MAX),
                partition: c.partition,
                topic: c.topics.get(i).copied().unwrap_or(0),
                offset,
                timestamp,
                key,
                value,
            })
        })();
        self.next += 1;
        if event.is_err() {
            // Nothing after a bad length can be located: stop there.
            self.next = c.offsets.len();
        }
        Some(event)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.columns.offsets.len().saturating_sub(self.next);
        (0, Some(left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns<'a>(
        key_lengths: &'a [i32],
        value_lengths: &'a [u32],
        data: &'a [u8],
    ) -> Columns<'a> {
        const OFFSETS: &[u64] = &[10, 11, 12, 13];
        const TIMES: &[i64] = &[-1, 0, 1, i64::MAX];
        let n = key_lengths.len();
        Columns {
            partition: 3,
            topics: &[],
            offsets: &OFFSETS[..n],
            timestamps: &TIMES[..n],
            key_lengths,
            value_lengths,
            data,
        }
    }

    #[test]
    fn keys_values_absent_and_empty_keys_are_located() {
        let c = columns(&[-1, 0, 2, 1], &[3, 0, 1, 2], b"abcxyzkvv");
        let events: Vec<_> = c
            .events()
            .expect("same lengths")
            .collect::<Result<_, _>>()
            .expect("in range");
        let got: Vec<_> = events
            .iter()
            .map(|e| (e.index, e.partition, e.offset, e.timestamp, e.key, e.value))
            .collect();
        assert_eq!(
            got,
            [
                (0, 3, 10, -1, None, &b"abc"[..]),
                (1, 3, 11, 0, Some(&b""[..]), &b""[..]),
                (2, 3, 12, 1, Some(&b"xy"[..]), &b"z"[..]),
                (3, 3, 13, i64::MAX, Some(&b"k"[..]), &b"vv"[..]),
            ]
        );
    }

    #[test]
    fn each_event_has_its_topic_when_the_batch_says_it() {
        let mut c = columns(&[1, 1], &[0, 0], b"ab");
        let topics = |c: &Columns<'_>| -> Vec<u32> {
            c.events()
                .expect("same lengths")
                .map(|e| e.expect("in range").topic)
                .collect()
        };
        assert_eq!(topics(&c), [0, 0], "no column: topic 0");
        c.topics = &[1, 0];
        assert_eq!(topics(&c), [1, 0]);
    }

    #[test]
    fn an_empty_batch_has_no_events() {
        assert_eq!(columns(&[], &[], b"").events().expect("ok").count(), 0);
    }

    #[test]
    fn disagreeing_columns_are_refused() {
        let mut c = columns(&[1], &[1], b"ab");
        c.timestamps = &[];
        let err = c.events().expect_err("lengths differ");
        assert!(
            err.to_string()
                .contains("1 offsets, 0 topics, 0 timestamps"),
            "{err}"
        );
        let mut c = columns(&[1], &[1], b"ab");
        c.topics = &[0, 1];
        assert!(c.events().is_err(), "a topic column of another length");

        let past = columns(&[1, 5], &[1, 1], b"abc");
        let results: Vec<_> = past.events().expect("same lengths").collect();
        assert_eq!(results.len(), 2);
        assert!(results[0].is_ok());
        let err = results[1].clone().expect_err("past the data");
        assert!(err.0.contains("the key of event 1 (5 bytes at 2)"), "{err}");

        let negative = columns(&[-2], &[0], b"");
        let mut events = negative.events().expect("same lengths");
        assert_eq!(
            events.next(),
            Some(Err(Malformed("event 0 has key length -2".into())))
        );
        assert_eq!(events.next(), None);
    }
}
