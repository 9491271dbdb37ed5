//! One partition: its segments, its durable end, and its single writer.
//!
//! An append is staged (written and fsynced, invisible to readers), then
//! either committed (published: segment lengths, index entries, end offset)
//! or rolled back (cut off the files again). Staging every touched partition
//! before committing any keeps a multi-partition append all-or-nothing for
//! readers when a write fails.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::mem;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

use super::record::{self, NewRecord, SEGMENT_HEADER_LEN};
use super::segment::{self, INDEX_INTERVAL_BYTES, IndexEntry, Segment};
use super::{AppendedRange, LogError, LogOptions};

/// Encoded bytes gathered before one `write` call.
const WRITE_CHUNK_BYTES: usize = 1 << 20;

#[derive(Debug)]
pub(crate) struct Partition {
    pub topic: String,
    pub index: u32,
    pub dir: PathBuf,
    /// Offset after the last durable record; readers never go past it.
    pub end: AtomicU64,
    /// Published segments in offset order. Segments created by an append
    /// join the list only when it commits.
    pub segments: RwLock<Vec<Arc<Segment>>>,
    pub writer: Mutex<Writer>,
}

impl Writer {
    /// The offset the next record gets.
    pub(crate) fn next_offset(&self) -> u64 {
        self.next_offset
    }

    pub(crate) fn poisoned(&self) -> bool {
        self.poisoned
    }
}

#[derive(Debug)]
pub(crate) struct Writer {
    file: File,
    segment: Arc<Segment>,
    /// Bytes written to `segment`, including those still in `buf`.
    len: u64,
    next_offset: u64,
    segment_records: u64,
    last_index_pos: u64,
    /// Index entries for records not yet published.
    pending_index: Vec<IndexEntry>,
    buf: Vec<u8>,
    /// Set when a failed write could not be undone with certainty; the next
    /// open re-establishes the truth from the files.
    poisoned: bool,
}

/// A segment the writer left during a staged append.
#[derive(Debug)]
struct Rolled {
    segment: Arc<Segment>,
    file: File,
    len: u64,
    index: Vec<IndexEntry>,
}

/// A written and fsynced, not yet published, append to one partition.
#[derive(Debug)]
pub(crate) struct Staged {
    first_offset: u64,
    count: u64,
    start_len: u64,
    start_segment_records: u64,
    start_last_index_pos: u64,
    /// Segments sealed by this append: the first was active when it started,
    /// the rest (and the writer's current one, if any were sealed) are new.
    rolled: Vec<Rolled>,
    /// Whether rollback must leave the files alone and poison the writer.
    unrecoverable: bool,
}

impl Partition {
    /// Creates the directory and the first segment of a new partition.
    pub(crate) fn create(
        topic: &str,
        index: u32,
        dir: PathBuf,
        options: &LogOptions,
    ) -> Result<Self, LogError> {
        fs::create_dir(&dir).map_err(|e| {
            LogError::io(
                format!("cannot create partition directory {}", dir.display()),
                e,
            )
        })?;
        let (file, path) = segment::create(&dir, 0, options.fsync)?;
        if options.fsync {
            segment::sync_dir(&dir)?;
        }
        let segment = Arc::new(Segment::new(0, path, SEGMENT_HEADER_LEN, Vec::new()));
        Ok(Self::assemble(
            topic,
            index,
            dir,
            vec![segment.clone()],
            Writer {
                file,
                segment,
                len: SEGMENT_HEADER_LEN,
                next_offset: 0,
                segment_records: 0,
                last_index_pos: SEGMENT_HEADER_LEN,
                pending_index: Vec::new(),
                buf: Vec::new(),
                poisoned: false,
            },
        ))
    }

    /// Scans every segment (see [`segment::scan`]) and positions the writer
    /// at the end of the last one. Records below `floor` are known to have
    /// been durable: losing any of them is damage, not a torn tail.
    pub(crate) fn recover(
        topic: &str,
        index: u32,
        dir: PathBuf,
        floor: u64,
        options: &LogOptions,
    ) -> Result<Self, LogError> {
        let files = segment::list(&dir)?;
        if files.is_empty() {
            return Err(LogError::Corrupt {
                file: dir,
                position: 0,
                reason: "partition directory holds no segment files".into(),
            });
        }
        let last_i = files.len() - 1;
        let mut segments = Vec::with_capacity(files.len());
        let mut expected = 0u64;
        let mut last = None;
        for (i, (base, path)) in files.into_iter().enumerate() {
            if base != expected {
                let reason = if i == 0 {
                    format!("the first segment starts at offset {base} instead of 0")
                } else {
                    format!(
                        "segment starts at offset {base} but the previous segment ends at offset {expected}"
                    )
                };
                return Err(LogError::Corrupt {
                    file: path,
                    position: 0,
                    reason,
                });
            }
            let scanned = segment::scan(
                &path,
                base,
                i == last_i,
                floor,
                options.max_body_len(),
                options.fsync,
            )?;
            expected = scanned.end_offset;
            let seg = Arc::new(Segment::new(base, path, scanned.len, scanned.index.clone()));
            segments.push(seg.clone());
            if i == last_i {
                last = Some((seg, scanned));
            }
        }
        let (seg, scanned) = last.expect("a partition with segment files has a last segment");
        if scanned.end_offset < floor {
            return Err(LogError::Corrupt {
                file: seg.path.clone(),
                position: scanned.len,
                reason: format!(
                    "the partition ends at offset {} but the request journal shows that records \
                     up to offset {floor} were acknowledged: records are missing",
                    scanned.end_offset
                ),
            });
        }
        let mut file = OpenOptions::new()
            .write(true)
            .open(&seg.path)
            .map_err(|e| {
                LogError::io(format!("cannot open log segment {}", seg.path.display()), e)
            })?;
        file.seek(SeekFrom::Start(scanned.len)).map_err(|e| {
            LogError::io(format!("cannot open log segment {}", seg.path.display()), e)
        })?;
        Ok(Self::assemble(
            topic,
            index,
            dir,
            segments,
            Writer {
                file,
                segment: seg,
                len: scanned.len,
                next_offset: scanned.end_offset,
                segment_records: scanned.records,
                last_index_pos: scanned.last_index_pos,
                pending_index: Vec::new(),
                buf: Vec::new(),
                poisoned: false,
            },
        ))
    }

    fn assemble(
        topic: &str,
        index: u32,
        dir: PathBuf,
        segments: Vec<Arc<Segment>>,
        writer: Writer,
    ) -> Self {
        Partition {
            topic: topic.to_owned(),
            index,
            dir,
            end: AtomicU64::new(writer.next_offset),
            segments: RwLock::new(segments),
            writer: Mutex::new(writer),
        }
    }

    /// The published segment holding `offset`, or the last one when `offset`
    /// is the end of the partition.
    pub(crate) fn segment_for(&self, offset: u64) -> Arc<Segment> {
        let segments = self.segments.read();
        let i = segments.partition_point(|s| s.base_offset <= offset);
        segments[i.saturating_sub(1)].clone()
    }

    /// The published segment starting exactly at `offset`.
    pub(crate) fn segment_starting_at(&self, offset: u64) -> Option<Arc<Segment>> {
        let segments = self.segments.read();
        segments
            .binary_search_by_key(&offset, |s| s.base_offset)
            .ok()
            .map(|i| segments[i].clone())
    }

    /// Writes and fsyncs `records` without publishing them. On error the
    /// partition is already rolled back.
    pub(crate) fn stage(
        &self,
        w: &mut Writer,
        records: &[NewRecord],
        options: &LogOptions,
    ) -> Result<Staged, LogError> {
        if w.poisoned {
            return Err(LogError::io(
                format!(
                    "partition {} of topic {:?} stopped accepting appends after a write failure; reopen the log to recover it",
                    self.index, self.topic
                ),
                io::Error::other("partition writer is poisoned"),
            ));
        }
        let mut staged = Staged {
            first_offset: w.next_offset,
            count: records.len() as u64,
            start_len: w.len,
            start_segment_records: w.segment_records,
            start_last_index_pos: w.last_index_pos,
            rolled: Vec::new(),
            unrecoverable: false,
        };
        match self.write(w, &mut staged, records, options) {
            Ok(()) => Ok(staged),
            Err(e) => {
                self.rollback(w, staged);
                Err(e)
            }
        }
    }

    fn write(
        &self,
        w: &mut Writer,
        staged: &mut Staged,
        records: &[NewRecord],
        options: &LogOptions,
    ) -> Result<(), LogError> {
        w.buf.clear();
        for r in records {
            let size = (record::FRAME_HEADER_LEN
                + record::body_len(r).expect("records are validated before staging"))
                as u64;
            if w.segment_records > 0 && w.len + size > options.segment_bytes {
                self.roll(w, staged, options)?;
            }
            if w.len - w.last_index_pos >= INDEX_INTERVAL_BYTES {
                w.pending_index.push(IndexEntry {
                    offset: w.next_offset,
                    position: w.len,
                });
                w.last_index_pos = w.len;
            }
            record::encode(&mut w.buf, w.next_offset, r);
            w.len += size;
            w.next_offset += 1;
            w.segment_records += 1;
            if w.buf.len() >= WRITE_CHUNK_BYTES {
                flush(w)?;
            }
        }
        flush(w)?;
        if options.fsync {
            sync(w, staged)?;
            if !staged.rolled.is_empty() {
                segment::sync_dir(&self.dir)?;
            }
        }
        Ok(())
    }

    /// Seals the writer's segment (durably) and starts a new one at the next offset.
    fn roll(
        &self,
        w: &mut Writer,
        staged: &mut Staged,
        options: &LogOptions,
    ) -> Result<(), LogError> {
        flush(w)?;
        if options.fsync {
            sync(w, staged)?;
        }
        let (file, path) =
            segment::create(&self.dir, w.next_offset, options.fsync).inspect_err(|_| {
                // The half-created file may still exist; cutting the sealed
                // segment back would leave a gap in front of it.
                staged.unrecoverable = true;
            })?;
        let segment = Arc::new(Segment::new(
            w.next_offset,
            path,
            SEGMENT_HEADER_LEN,
            Vec::new(),
        ));
        staged.rolled.push(Rolled {
            segment: mem::replace(&mut w.segment, segment),
            file: mem::replace(&mut w.file, file),
            len: w.len,
            index: mem::take(&mut w.pending_index),
        });
        w.len = SEGMENT_HEADER_LEN;
        w.segment_records = 0;
        w.last_index_pos = SEGMENT_HEADER_LEN;
        Ok(())
    }

    /// Publishes a staged append: readers may now see it.
    pub(crate) fn commit(&self, w: &mut Writer, staged: Staged) -> AppendedRange {
        let mut created = Vec::new();
        let any_rolled = !staged.rolled.is_empty();
        for (i, rolled) in staged.rolled.into_iter().enumerate() {
            rolled.segment.index.write().extend(rolled.index);
            rolled
                .segment
                .durable_len
                .store(rolled.len, Ordering::Release);
            if i > 0 {
                created.push(rolled.segment);
            }
        }
        if any_rolled {
            created.push(w.segment.clone());
        }
        w.segment.index.write().append(&mut w.pending_index);
        w.segment.durable_len.store(w.len, Ordering::Release);
        if !created.is_empty() {
            self.segments.write().extend(created);
        }
        // Last: publishing the end is what makes the records readable.
        self.end.store(w.next_offset, Ordering::Release);
        AppendedRange {
            partition: self.index,
            first_offset: staged.first_offset,
            last_offset: w.next_offset - 1,
            count: staged.count,
        }
    }

    /// Undoes a staged append: removes segments it created and cuts the
    /// original segment back. Unacknowledged bytes left behind by a failure
    /// here are handled by the next open's recovery scan.
    pub(crate) fn rollback(&self, w: &mut Writer, staged: Staged) {
        w.buf.clear();
        w.pending_index.clear();
        if staged.unrecoverable {
            self.poison(w, "a write could not be undone");
            return;
        }
        let mut rolled = staged.rolled.into_iter();
        if let Some(original) = rolled.next() {
            // Newest first, so a failure part-way still leaves contiguous segments.
            let created: Vec<PathBuf> = rolled
                .map(|r| r.segment.path.clone())
                .chain([w.segment.path.clone()])
                .collect();
            for path in created.iter().rev() {
                if let Err(e) = fs::remove_file(path)
                    && e.kind() != io::ErrorKind::NotFound
                {
                    self.poison(w, &format!("cannot remove {}: {e}", path.display()));
                    return;
                }
            }
            if let Err(e) = segment::sync_dir(&self.dir) {
                self.poison(w, &e.to_string());
                return;
            }
            w.segment = original.segment;
            w.file = original.file;
        }
        if let Err(e) = cut(&mut w.file, staged.start_len) {
            self.poison(
                w,
                &format!("cannot truncate {}: {e}", w.segment.path.display()),
            );
            return;
        }
        w.len = staged.start_len;
        w.next_offset = staged.first_offset;
        w.segment_records = staged.start_segment_records;
        w.last_index_pos = staged.start_last_index_pos;
    }

    /// Makes the last segment's bytes durable (at open, before the request
    /// journal records every partition's end as known durable).
    pub(crate) fn sync(&self) -> Result<(), LogError> {
        let w = self.writer.lock();
        w.file.sync_data().map_err(|e| {
            LogError::io(
                format!("cannot fsync log segment {}", w.segment.path.display()),
                e,
            )
        })
    }

    pub(crate) fn poison(&self, w: &mut Writer, why: &str) {
        tracing::error!(
            topic = %self.topic,
            partition = self.index,
            "log partition {} of topic {:?} stops accepting appends until the log is reopened: {why}",
            self.index,
            self.topic
        );
        w.poisoned = true;
    }
}

fn flush(w: &mut Writer) -> Result<(), LogError> {
    if w.buf.is_empty() {
        return Ok(());
    }
    let result = w.file.write_all(&w.buf);
    w.buf.clear();
    result.map_err(|e| {
        LogError::io(
            format!("cannot write log segment {}", w.segment.path.display()),
            e,
        )
    })
}

fn sync(w: &mut Writer, staged: &mut Staged) -> Result<(), LogError> {
    w.file.sync_data().map_err(|e| {
        // After a failed fsync the page cache may no longer match the disk;
        // only a fresh recovery scan can be trusted.
        staged.unrecoverable = true;
        LogError::io(
            format!("cannot fsync log segment {}", w.segment.path.display()),
            e,
        )
    })
}

fn cut(file: &mut File, len: u64) -> io::Result<()> {
    file.set_len(len)?;
    file.seek(SeekFrom::Start(len))?;
    Ok(())
}

/// Cuts the files of the partition in `dir` back to `offset`: segments
/// starting past it go, and the one holding it is truncated before its
/// record. Used on open, before the partition is recovered again, to undo a
/// request the journal shows was not completely written. The records below
/// `offset` must have passed a recovery scan.
pub(crate) fn cut_back(dir: &Path, offset: u64, options: &LogOptions) -> Result<(), LogError> {
    let files = segment::list(dir)?;
    let keep = files.partition_point(|(base, _)| *base <= offset).max(1);
    for (_, path) in files[keep..].iter().rev() {
        fs::remove_file(path)
            .map_err(|e| LogError::io(format!("cannot remove {}", path.display()), e))?;
    }
    let (base, path) = &files[keep - 1];
    let io_err = |e| LogError::io(format!("cannot cut log segment {}", path.display()), e);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_err)?;
    let mut pos = SEGMENT_HEADER_LEN;
    for _ in *base..offset {
        let mut len = [0u8; 4];
        file.seek(SeekFrom::Start(pos)).map_err(io_err)?;
        file.read_exact(&mut len).map_err(io_err)?;
        pos += (record::FRAME_HEADER_LEN + u32::from_le_bytes(len) as usize) as u64;
    }
    tracing::warn!(
        file = %path.display(),
        offset,
        "cutting partition {} back to offset {offset}: the request that started there was not completely written",
        dir.display()
    );
    file.set_len(pos).map_err(io_err)?;
    if options.fsync {
        file.sync_data().map_err(io_err)?;
        segment::sync_dir(dir)?;
    }
    Ok(())
}
