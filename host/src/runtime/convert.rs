//! Events as each contract version takes them: one `event` record per
//! event (0.1.0, [`to_event`]), or the batch laid out in columns (0.2.0,
//! [`to_columns`]; 0.3.0-rc.1, the same columns, [`to_columns_v0_3_rc1`];
//! 0.3.0, with the topic of each event, [`to_columns_v0_3`]).

use super::bindings::{v0_1, v0_2, v0_3, v0_3_rc1};
use crate::log::Record;

/// An event as contract 0.1.0's `event` record.
pub fn to_event(r: Record) -> v0_1::Event {
    v0_1::Event {
        partition: r.partition,
        offset: r.offset,
        timestamp: r.timestamp,
        key: r.key,
        value: r.value,
        headers: r
            .headers
            .into_iter()
            .map(|(name, value)| v0_1::Header { name, value })
            .collect(),
    }
}

/// The columns every layout of a batch shares: 0.2.0's, but the headers,
/// whose record each contract version generates on its own.
struct Columns {
    partition: u32,
    offsets: Vec<u64>,
    timestamps: Vec<i64>,
    key_lengths: Vec<i32>,
    value_lengths: Vec<u32>,
    data: Vec<u8>,
}

/// Lays out the columns of `events`. Fails only for a batch no guest could
/// address (over 4 GiB of keys and values, or of 2^32 events).
fn columns(events: &[Record]) -> Result<Columns, String> {
    let n = events.len();
    let data_len: usize = events
        .iter()
        .map(|r| r.key.as_ref().map_or(0, Vec::len) + r.value.len())
        .sum();
    if u32::try_from(data_len).is_err() || u32::try_from(n).is_err() {
        return Err(format!(
            "a batch of {n} events holds {data_len} bytes of keys and values, over the 4 GiB \
             a guest can address"
        ));
    }
    let mut columns = Columns {
        partition: events.first().map_or(0, |r| r.partition),
        offsets: Vec::with_capacity(n),
        timestamps: Vec::with_capacity(n),
        key_lengths: Vec::with_capacity(n),
        value_lengths: Vec::with_capacity(n),
        data: Vec::with_capacity(data_len),
    };
    for r in events {
        let too_large = || format!("the event at offset {} is too large for a batch", r.offset);
        columns.offsets.push(r.offset);
        columns.timestamps.push(r.timestamp);
        columns.key_lengths.push(match &r.key {
            Some(key) => i32::try_from(key.len()).map_err(|_| too_large())?,
            None => -1,
        });
        columns
            .value_lengths
            .push(u32::try_from(r.value.len()).map_err(|_| too_large())?);
        if let Some(key) = &r.key {
            columns.data.extend_from_slice(key);
        }
        columns.data.extend_from_slice(&r.value);
    }
    Ok(columns)
}

/// Lays a batch out in the columns of contract 0.2.0: a fixed number of lists
/// whatever the batch's size, so that lowering it into the guest costs a few
/// allocations and copies instead of three per event. Fails only for a batch
/// no guest could address (over 4 GiB of keys and values). The headers are
/// moved, not copied.
pub fn to_columns(events: Vec<Record>) -> Result<v0_2::EventBatch, String> {
    let c = columns(&events)?;
    // `columns` checked that the events' indexes fit a u32.
    let headers = events
        .into_iter()
        .zip(0u32..)
        .flat_map(|(r, event)| {
            r.headers
                .into_iter()
                .map(move |(name, value)| v0_2::EventHeader { event, name, value })
        })
        .collect();
    Ok(v0_2::EventBatch {
        partition: c.partition,
        offsets: c.offsets,
        timestamps: c.timestamps,
        key_lengths: c.key_lengths,
        value_lengths: c.value_lengths,
        data: c.data,
        headers,
    })
}

/// Lays a batch out in the columns of contract 0.3.0-rc.1, which are those of
/// 0.2.0 ([`to_columns`]): the lists are moved, not copied.
pub fn to_columns_v0_3_rc1(events: Vec<Record>) -> Result<v0_3_rc1::EventBatch, String> {
    let batch = to_columns(events)?;
    Ok(v0_3_rc1::EventBatch {
        partition: batch.partition,
        offsets: batch.offsets,
        timestamps: batch.timestamps,
        key_lengths: batch.key_lengths,
        value_lengths: batch.value_lengths,
        data: batch.data,
        headers: batch
            .headers
            .into_iter()
            .map(|h| v0_3_rc1::EventHeader {
                event: h.event,
                name: h.name,
                value: h.value,
            })
            .collect(),
    })
}

/// Lays events out in the columns of contract 0.3.0: those of 0.2.0 with
/// the topic index of each event (`topics[i]` for `events[i]`, 0 for each
/// event past the end of `topics`). Takes the events by reference, since the
/// host may pass the first events of a batch to the plugin on their own (to
/// fire timers after them) and then the rest.
pub fn to_columns_v0_3(events: &[Record], topics: &[u32]) -> Result<v0_3::EventBatch, String> {
    let c = columns(events)?;
    let headers = events
        .iter()
        .zip(0u32..)
        .flat_map(|(r, event)| {
            r.headers
                .iter()
                .map(move |(name, value)| v0_3::EventHeader {
                    event,
                    name: name.clone(),
                    value: value.clone(),
                })
        })
        .collect();
    Ok(v0_3::EventBatch {
        partition: c.partition,
        topics: (0..events.len())
            .map(|i| topics.get(i).copied().unwrap_or(0))
            .collect(),
        offsets: c.offsets,
        timestamps: c.timestamps,
        key_lengths: c.key_lengths,
        value_lengths: c.value_lengths,
        data: c.data,
        headers,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
#[allow(
    clippy::cast_possible_wrap,
    reason = "test-only code: the values cast are small test inputs"
)]
mod tests {
    use super::*;

    #[test]
    fn columns_lay_keys_and_values_back_to_back() {
        let record = |offset, key: Option<&[u8]>, value: &[u8], headers: &[(&str, &[u8])]| Record {
            partition: 2,
            offset,
            timestamp: -(offset as i64),
            key: key.map(<[u8]>::to_vec),
            value: value.to_vec(),
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), v.to_vec()))
                .collect(),
        };
        let batch = to_columns(vec![
            record(7, None, b"v0", &[]),
            record(8, Some(b""), b"", &[("a", b"1"), ("b", b"")]),
            record(9, Some(b"k2"), b"v2", &[("c", b"3")]),
        ])
        .unwrap();
        assert_eq!(batch.partition, 2);
        assert_eq!(batch.offsets, [7, 8, 9]);
        assert_eq!(batch.timestamps, [-7, -8, -9]);
        assert_eq!(batch.key_lengths, [-1, 0, 2]);
        assert_eq!(batch.value_lengths, [2, 0, 2]);
        assert_eq!(batch.data, b"v0k2v2");
        let headers: Vec<(u32, &str, &[u8])> = batch
            .headers
            .iter()
            .map(|h| (h.event, h.name.as_str(), h.value.as_slice()))
            .collect();
        assert_eq!(
            headers,
            [(1, "a", &b"1"[..]), (1, "b", &b""[..]), (2, "c", &b"3"[..])]
        );
        let empty = to_columns(Vec::new()).unwrap();
        assert!(empty.offsets.is_empty() && empty.data.is_empty());
    }

    #[test]
    fn the_candidate_takes_the_same_columns() {
        let record = Record {
            partition: 4,
            offset: 3,
            timestamp: 9,
            key: Some(b"k".to_vec()),
            value: b"v".to_vec(),
            headers: vec![("h".into(), b"x".to_vec())],
        };
        let old = to_columns(vec![record.clone()]).unwrap();
        let new = to_columns_v0_3_rc1(vec![record]).unwrap();
        assert_eq!(
            (new.partition, &new.offsets, &new.timestamps, &new.data),
            (old.partition, &old.offsets, &old.timestamps, &old.data)
        );
        assert_eq!(
            (&new.key_lengths, &new.value_lengths),
            (&old.key_lengths, &old.value_lengths)
        );
        let h = &new.headers[0];
        assert_eq!(
            (h.event, h.name.as_str(), h.value.as_slice()),
            (0, "h", &b"x"[..])
        );
    }

    #[test]
    fn the_release_takes_the_same_columns_with_each_events_topic() {
        let record = |offset, key: Option<&[u8]>| Record {
            partition: 1,
            offset,
            timestamp: 7,
            key: key.map(<[u8]>::to_vec),
            value: b"val".to_vec(),
            headers: vec![("h".into(), vec![u8::try_from(offset).unwrap()])],
        };
        let events = vec![
            record(5, Some(b"ab")),
            record(2, None),
            record(6, Some(b"c")),
        ];
        let old = to_columns(events.clone()).unwrap();
        let new = to_columns_v0_3(&events, &[0, 1]).unwrap();
        assert_eq!(new.topics, [0, 1, 0], "a topic past the list is 0");
        assert_eq!(
            (new.partition, &new.offsets, &new.timestamps, &new.data),
            (old.partition, &old.offsets, &old.timestamps, &old.data)
        );
        assert_eq!(
            (&new.key_lengths, &new.value_lengths),
            (&old.key_lengths, &old.value_lengths)
        );
        let headers: Vec<(u32, &[u8])> = new
            .headers
            .iter()
            .map(|h| (h.event, h.value.as_slice()))
            .collect();
        assert_eq!(headers, [(0, &[5][..]), (1, &[2][..]), (2, &[6][..])]);
    }
}
