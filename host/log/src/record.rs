//! Records and their on-disk encoding: the one place that knows the bytes of a
//! segment file, so the format stays in one reviewable spot.
//!
//! # On-disk format, version 1 (frozen)
//!
//! Existing logs must stay readable forever, so nothing below may change;
//! a new layout needs a new format version. `tests/fixtures/log-v1/` holds
//! files written by this version and a test reads them back byte for byte.
//!
//! ## Directory layout
//!
//! ```text
//! <dir>/LOCK                              advisory lock held while a process has the log open
//! <dir>/<topic>/topic.json                {"format":1,"partitions":N}
//! <dir>/<topic>/<partition>/<base>.seg    one or more segments per partition
//! <dir>/<topic>/requests.log              request journal (optional; see `journal.rs`)
//! ```
//!
//! - `<topic>` is the topic name: 1 to 200 bytes of `[A-Za-z0-9._-]`, not `.`,
//!   `..` or `LOCK` in any case.
//! - `topic.json` is written atomically (temporary `topic.json.tmp`, fsync,
//!   rename, fsync of the directory) after every partition directory and its
//!   first segment exist, so a topic directory without `topic.json` is an
//!   unfinished creation and holds no records.
//! - `<partition>` is the partition number in decimal (`0`, `1`, ...).
//! - `<base>` is the offset of the segment's first record, in decimal,
//!   zero-padded to 20 digits (`00000000000000000000.seg`), so names sort in
//!   offset order. The first segment of a partition has base 0 and each later
//!   segment starts at the offset following the last record of the previous one.
//!
//! ## Segment file
//!
//! An 8-byte header, `b"KLOGSEG"` followed by the format version byte `0x01`,
//! then records back to back with no padding, in offset order and without gaps.
//! A segment may hold zero records (header only); only the last segment of a
//! partition is ever appended to.
//!
//! ## Record
//!
//! All integers are little-endian.
//!
//! | field        | type          | meaning                                         |
//! |--------------|---------------|-------------------------------------------------|
//! | length       | `u32`         | byte length of the body that follows the checksum |
//! | checksum     | `u32`         | CRC-32 (IEEE 802.3, as in zlib / `crc32fast`) of the body |
//! | body         | `length` bytes| see below                                       |
//!
//! Body:
//!
//! | field          | type    | meaning                                          |
//! |----------------|---------|--------------------------------------------------|
//! | offset         | `u64`   | offset of the record within its partition        |
//! | timestamp      | `i64`   | event time, milliseconds since the Unix epoch     |
//! | key length     | `i32`   | `-1` when the record has no key                  |
//! | key            | bytes   | absent when key length is `-1`                   |
//! | value length   | `u32`   |                                                  |
//! | value          | bytes   |                                                  |
//! | header count   | `u16`   |                                                  |
//! | headers        |         | `header count` times: `u16` name length, name (UTF-8), `u32` value length, value |
//!
//! The body must be consumed exactly; trailing bytes make the record invalid.
//! The smallest body (no key, empty value, no headers) is 26 bytes.

use std::str;

/// An event as stored in a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The partition the record is in.
    pub partition: u32,
    /// Its offset in the partition.
    pub offset: u64,
    /// Event time in milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// The event's key; `None` for an unkeyed event.
    pub key: Option<Vec<u8>>,
    /// The event's payload.
    pub value: Vec<u8>,
    /// The event's headers, names and values, in the order appended.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// An event to append; the log assigns its partition offset.
#[derive(Debug, Clone)]
pub struct NewRecord {
    /// Event time in milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// The event's key; `None` for an unkeyed event.
    pub key: Option<Vec<u8>>,
    /// The event's payload.
    pub value: Vec<u8>,
    /// The event's headers, names and values, kept in this order.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// First bytes of every segment file: magic and format version.
pub(crate) const SEGMENT_HEADER: [u8; 8] = *b"KLOGSEG\x01";
pub(crate) const SEGMENT_HEADER_LEN: u64 = SEGMENT_HEADER.len() as u64;
/// Length and checksum fields in front of every record body.
pub(crate) const FRAME_HEADER_LEN: usize = 8;
/// Offset, timestamp, key length, value length and header count.
pub(crate) const MIN_BODY_LEN: usize = 8 + 8 + 4 + 4 + 2;

/// The format's limit on a record's number of headers and on the byte
/// length of each header name (both are stored as `u16`).
pub(crate) const HEADER_LIMIT: usize = u16::MAX as usize;

/// Length of the encoded body of `record`, which the size limit
/// (`LogOptions::max_record_bytes`) applies to; saturates rather than
/// overflowing. Fails with the offending number when the record has more
/// headers, or a longer header name, than [`HEADER_LIMIT`].
pub(crate) fn body_len(record: &NewRecord) -> Result<usize, usize> {
    if record.headers.len() > HEADER_LIMIT {
        return Err(record.headers.len());
    }
    let mut len = MIN_BODY_LEN
        .saturating_add(record.key.as_ref().map_or(0, Vec::len))
        .saturating_add(record.value.len());
    for (name, value) in &record.headers {
        if name.len() > HEADER_LIMIT {
            return Err(name.len());
        }
        len = len
            .saturating_add(2 + 4)
            .saturating_add(name.len())
            .saturating_add(value.len());
    }
    Ok(len)
}

/// Appends the framed record (length, checksum, body) to `out`.
///
/// The caller has checked the record with [`body_len`] and that the body is
/// at most `i32::MAX` bytes; the length casts below rely on that.
#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    reason = "body_len bounds the header count and name lengths by u16::MAX and the body by i32::MAX"
)]
pub(crate) fn encode(out: &mut Vec<u8>, offset: u64, record: &NewRecord) {
    let frame_start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER_LEN]);
    let body_start = out.len();
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&record.timestamp.to_le_bytes());
    match &record.key {
        Some(key) => {
            out.extend_from_slice(&(key.len() as i32).to_le_bytes());
            out.extend_from_slice(key);
        }
        None => out.extend_from_slice(&(-1i32).to_le_bytes()),
    }
    out.extend_from_slice(&(record.value.len() as u32).to_le_bytes());
    out.extend_from_slice(&record.value);
    out.extend_from_slice(&(record.headers.len() as u16).to_le_bytes());
    for (name, value) in &record.headers {
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(value);
    }
    let body_len = (out.len() - body_start) as u32;
    let crc = crc32fast::hash(&out[body_start..]);
    out[frame_start..frame_start + 4].copy_from_slice(&body_len.to_le_bytes());
    out[frame_start + 4..frame_start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Splits a frame header into (body length, checksum).
pub(crate) fn frame_header(bytes: &[u8; FRAME_HEADER_LEN]) -> (u32, u32) {
    let [a, b, c, d, e, f, g, h] = *bytes;
    (
        u32::from_le_bytes([a, b, c, d]),
        u32::from_le_bytes([e, f, g, h]),
    )
}

/// The offset field of a body, without checking the rest.
pub(crate) fn peek_offset(body: &[u8]) -> Option<u64> {
    body.first_chunk::<8>().map(|b| u64::from_le_bytes(*b))
}

/// A structurally valid body, borrowing from the segment bytes.
pub(crate) struct BodyView<'a> {
    pub offset: u64,
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: &'a [u8],
    header_count: u16,
    headers: &'a [u8],
}

/// Checks the body structure (every length in bounds, nothing left over)
/// without allocating; header names are checked for UTF-8 only when decoded
/// or by [`BodyView::check_header_names`], so each is validated once.
pub(crate) fn parse_body(body: &[u8]) -> Result<BodyView<'_>, &'static str> {
    let mut c = Cursor(body);
    let offset = c.u64().ok_or("record body is too short")?;
    let timestamp = c.i64().ok_or("record body is too short")?;
    let key_len = c.i32().ok_or("record body is too short")?;
    let key = match key_len {
        -1 => None,
        n if n < 0 => return Err("negative key length other than -1"),
        n => Some(
            c.take(n.unsigned_abs() as usize)
                .ok_or("key runs past the end of the record")?,
        ),
    };
    let value_len = c.u32().ok_or("record body is too short")?;
    let value = c
        .take(value_len as usize)
        .ok_or("value runs past the end of the record")?;
    let header_count = c.u16().ok_or("record body is too short")?;
    let headers = c.0;
    let mut h = HeaderIter {
        rest: headers,
        left: header_count,
    };
    for _ in 0..header_count {
        h.next_checked()?;
    }
    if !h.rest.is_empty() {
        return Err("unexpected bytes after the last header");
    }
    Ok(BodyView {
        offset,
        timestamp,
        key,
        value,
        header_count,
        headers,
    })
}

impl BodyView<'_> {
    fn header_iter(&self) -> HeaderIter<'_> {
        HeaderIter {
            rest: self.headers,
            left: self.header_count,
        }
    }

    pub(crate) fn check_header_names(&self) -> Result<(), &'static str> {
        let mut it = self.header_iter();
        while let Some((name, _)) = it.next_checked()? {
            str::from_utf8(name).map_err(|_| "header name is not valid UTF-8")?;
        }
        Ok(())
    }

    pub(crate) fn to_record(&self, partition: u32) -> Result<Record, &'static str> {
        let mut headers = Vec::with_capacity(usize::from(self.header_count));
        let mut it = self.header_iter();
        while let Some((name, value)) = it.next_checked()? {
            let name = str::from_utf8(name).map_err(|_| "header name is not valid UTF-8")?;
            headers.push((name.to_owned(), value.to_vec()));
        }
        Ok(Record {
            partition,
            offset: self.offset,
            timestamp: self.timestamp,
            key: self.key.map(<[u8]>::to_vec),
            value: self.value.to_vec(),
            headers,
        })
    }
}

/// A header's name and value bytes.
type HeaderBytes<'a> = (&'a [u8], &'a [u8]);

struct HeaderIter<'a> {
    rest: &'a [u8],
    left: u16,
}

impl<'a> HeaderIter<'a> {
    fn next_checked(&mut self) -> Result<Option<HeaderBytes<'a>>, &'static str> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let mut c = Cursor(self.rest);
        let name_len = c.u16().ok_or("header runs past the end of the record")?;
        let name = c
            .take(usize::from(name_len))
            .ok_or("header runs past the end of the record")?;
        let value_len = c.u32().ok_or("header runs past the end of the record")?;
        let value = c
            .take(value_len as usize)
            .ok_or("header runs past the end of the record")?;
        self.rest = c.0;
        Ok(Some((name, value)))
    }
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }
    fn i32(&mut self) -> Option<i32> {
        self.array().map(i32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.array().map(i64::from_le_bytes)
    }
}
