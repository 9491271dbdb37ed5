//! Sequential reading of one partition, the replay hot path.
//!
//! A reader owns its file handle and a large buffer, decodes records straight
//! out of the buffer (the only allocations are the record's own fields), and
//! never buffers bytes past a segment's durable length, so it cannot observe
//! an append that is later rolled back.

use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::LogError;
use super::partition::Partition;
use super::record::{self, FRAME_HEADER_LEN, Record, SEGMENT_HEADER_LEN};
use super::segment::Segment;

/// Bytes read from a segment per `read` call.
const READ_BUFFER_BYTES: usize = 256 * 1024;

/// Reads one partition in offset order, from a start offset onwards, up to
/// the durable end at each call; it picks up later appends on later calls.
pub struct PartitionReader {
    partition: Arc<Partition>,
    segment: Arc<Segment>,
    file: File,
    buf: Vec<u8>,
    /// Next unconsumed byte of `buf`.
    head: usize,
    /// End of the bytes read into `buf`.
    tail: usize,
    /// File position of `buf[tail]`.
    file_pos: u64,
    next_offset: u64,
    max_body: usize,
}

impl fmt::Debug for PartitionReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartitionReader")
            .field("topic", &self.partition.topic)
            .field("partition", &self.partition.index)
            .field("segment", &self.segment.path)
            .field("next_offset", &self.next_offset)
            .finish_non_exhaustive()
    }
}

impl PartitionReader {
    pub(crate) fn open(
        partition: Arc<Partition>,
        from_offset: u64,
        max_body: usize,
    ) -> Result<Self, LogError> {
        // The end is loaded before anything else so every segment and byte
        // length read afterwards covers all offsets below it.
        let end = partition.end.load(Ordering::Acquire);
        if from_offset > end {
            return Err(LogError::OffsetOutOfRange {
                topic: partition.topic.clone(),
                partition: partition.index,
                offset: from_offset,
                end,
            });
        }
        let segment = partition.segment_for(from_offset);
        let entry = segment.seek_entry(from_offset);
        let file = open_at(&segment, entry.position)?;
        let mut reader = PartitionReader {
            partition,
            segment,
            file,
            buf: vec![0; READ_BUFFER_BYTES],
            head: 0,
            tail: 0,
            file_pos: entry.position,
            next_offset: entry.offset,
            max_body,
        };
        reader.skip_to(from_offset)?;
        Ok(reader)
    }

    /// Offset of the next record [`read_batch`](Self::read_batch) returns.
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// Appends up to `max_records` records to `out`, stopping before the
    /// record that would take the batch past `max_bytes` (counted as bytes on
    /// disk, 8 per record plus its body) but always returning at least one
    /// record when one is available. Returns how many were appended: 0 means
    /// the reader is at the durable end.
    ///
    /// Every record's checksum is verified; a mismatch is returned as
    /// [`LogError::Corrupt`] and the reader stays in front of that record.
    pub fn read_batch(
        &mut self,
        max_records: usize,
        max_bytes: usize,
        out: &mut Vec<Record>,
    ) -> Result<usize, LogError> {
        let end = self.partition.end.load(Ordering::Acquire);
        let mut count = 0;
        let mut bytes = 0usize;
        while count < max_records && self.next_offset < end {
            if !self.fill(FRAME_HEADER_LEN)? {
                self.next_segment()?;
                continue;
            }
            let (len, crc) = self.frame_header();
            let total = FRAME_HEADER_LEN + len;
            if count > 0 && bytes.saturating_add(total) > max_bytes {
                break;
            }
            if !self.fill(total)? {
                return Err(self.corrupt("record runs past the durable end of the segment"));
            }
            let body = &self.buf[self.head + FRAME_HEADER_LEN..self.head + total];
            if crc32fast::hash(body) != crc {
                return Err(self.corrupt("checksum mismatch"));
            }
            let record = record::parse_body(body)
                .and_then(|view| view.to_record(self.partition.index))
                .map_err(|reason| self.corrupt(reason))?;
            if record.offset != self.next_offset {
                let reason = format!(
                    "record has offset {}, expected {}",
                    record.offset, self.next_offset
                );
                return Err(self.corrupt(reason));
            }
            out.push(record);
            self.head += total;
            self.next_offset += 1;
            count += 1;
            bytes = bytes.saturating_add(total);
        }
        Ok(count)
    }

    /// Moves from an index entry to `target` within the current segment.
    fn skip_to(&mut self, target: u64) -> Result<(), LogError> {
        while self.next_offset < target {
            if !self.fill(FRAME_HEADER_LEN)? {
                return Err(self.corrupt("segment ends before the requested offset"));
            }
            let (len, _) = self.frame_header();
            let total = FRAME_HEADER_LEN + len;
            if !self.fill(total)? {
                return Err(self.corrupt("record runs past the durable end of the segment"));
            }
            let offset =
                record::peek_offset(&self.buf[self.head + FRAME_HEADER_LEN..self.head + total]);
            if offset != Some(self.next_offset) {
                return Err(self.corrupt(format!(
                    "record does not have the expected offset {}",
                    self.next_offset
                )));
            }
            self.head += total;
            self.next_offset += 1;
        }
        Ok(())
    }

    /// Length and checksum of the record at `head` (8 bytes must be buffered).
    fn frame_header(&self) -> (usize, u32) {
        let mut header = [0; FRAME_HEADER_LEN];
        header.copy_from_slice(&self.buf[self.head..self.head + FRAME_HEADER_LEN]);
        let (len, crc) = record::frame_header(&header);
        (len as usize, crc)
    }

    /// Ensures `needed` unconsumed bytes are buffered. Returns false when the
    /// segment's durable bytes end first (with nothing buffered when the
    /// segment is simply exhausted).
    fn fill(&mut self, needed: usize) -> Result<bool, LogError> {
        if self.tail - self.head >= needed {
            return Ok(true);
        }
        if needed > FRAME_HEADER_LEN + self.max_body {
            // Checked before growing the buffer, so a damaged length cannot
            // make it allocate without bound.
            return Err(self.corrupt(format!(
                "record length {} exceeds the maximum of {}",
                needed - FRAME_HEADER_LEN,
                self.max_body
            )));
        }
        if self.head == self.tail {
            self.head = 0;
            self.tail = 0;
        }
        if needed > self.buf.len() {
            let mut bigger = vec![0; needed];
            bigger[..self.tail - self.head].copy_from_slice(&self.buf[self.head..self.tail]);
            self.buf = bigger;
            self.tail -= self.head;
            self.head = 0;
        } else if self.head + needed > self.buf.len() {
            self.buf.copy_within(self.head..self.tail, 0);
            self.tail -= self.head;
            self.head = 0;
        }
        let durable = self.segment.durable_len.load(Ordering::Acquire);
        while self.tail - self.head < needed {
            let left = durable.saturating_sub(self.file_pos);
            if left == 0 {
                if self.tail > self.head {
                    return Err(self.corrupt("incomplete record at the end of the segment"));
                }
                return Ok(false);
            }
            let room = self.buf.len() - self.tail;
            let want = room.min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = self
                .file
                .read(&mut self.buf[self.tail..self.tail + want])
                .map_err(|e| {
                    LogError::io(
                        format!("cannot read log segment {}", self.segment.path.display()),
                        e,
                    )
                })?;
            if n == 0 {
                return Err(self.corrupt(format!(
                    "segment file ends before its durable length of {durable} bytes"
                )));
            }
            self.tail += n;
            self.file_pos += n as u64;
        }
        Ok(true)
    }

    /// Continues in the segment that starts at `next_offset`.
    fn next_segment(&mut self) -> Result<(), LogError> {
        let Some(segment) = self.partition.segment_starting_at(self.next_offset) else {
            return Err(LogError::Corrupt {
                file: self.partition.dir.clone(),
                position: 0,
                reason: format!("no segment starts at offset {}", self.next_offset),
            });
        };
        self.file = open_at(&segment, SEGMENT_HEADER_LEN)?;
        self.segment = segment;
        self.head = 0;
        self.tail = 0;
        self.file_pos = SEGMENT_HEADER_LEN;
        Ok(())
    }

    fn corrupt(&self, reason: impl Into<String>) -> LogError {
        LogError::Corrupt {
            file: self.segment.path.clone(),
            position: self.file_pos - (self.tail - self.head) as u64,
            reason: reason.into(),
        }
    }
}

fn open_at(segment: &Segment, position: u64) -> Result<File, LogError> {
    let context = || format!("cannot open log segment {}", segment.path.display());
    let mut file = File::open(&segment.path).map_err(|e| LogError::io(context(), e))?;
    file.seek(SeekFrom::Start(position))
        .map_err(|e| LogError::io(context(), e))?;
    Ok(file)
}
