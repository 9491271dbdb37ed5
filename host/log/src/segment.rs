//! Segment files: naming, creation, the sparse offset index, and the recovery
//! scan that decides, after a crash, what is a torn tail (cut it) and what is
//! corruption (refuse to open), so no corrupt record is ever served.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;

use parking_lot::RwLock;

use super::LogError;
use super::record::{self, FRAME_HEADER_LEN, MIN_BODY_LEN, SEGMENT_HEADER, SEGMENT_HEADER_LEN};

/// Bytes of records between two sparse index entries: a reader positioning
/// itself scans at most this much (plus one record) past the entry.
pub(crate) const INDEX_INTERVAL_BYTES: u64 = 4096;

/// Window read at a time by the recovery scan.
const SCAN_WINDOW_BYTES: usize = 1 << 20;

/// Where one record starts: `offset` begins at byte `position` of its segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub offset: u64,
    pub position: u64,
}

/// One segment file as readers see it.
#[derive(Debug)]
pub(crate) struct Segment {
    pub base_offset: u64,
    pub path: PathBuf,
    /// Bytes of the file that hold fsynced, published records. Readers never
    /// read past it, so bytes of an append that fails and is cut again are
    /// never buffered by a reader.
    pub durable_len: AtomicU64,
    /// Sparse index of published records, ascending by offset.
    pub index: RwLock<Vec<IndexEntry>>,
}

impl Segment {
    pub(crate) fn new(base_offset: u64, path: PathBuf, len: u64, index: Vec<IndexEntry>) -> Self {
        Segment {
            base_offset,
            path,
            durable_len: AtomicU64::new(len),
            index: RwLock::new(index),
        }
    }

    /// The latest indexed record at or before `offset` (the first record of
    /// the segment when none is indexed).
    pub(crate) fn seek_entry(&self, offset: u64) -> IndexEntry {
        let index = self.index.read();
        let i = index.partition_point(|e| e.offset <= offset);
        match i.checked_sub(1) {
            Some(i) => index[i],
            None => IndexEntry {
                offset: self.base_offset,
                position: SEGMENT_HEADER_LEN,
            },
        }
    }
}

pub(crate) fn file_name(base_offset: u64) -> String {
    format!("{base_offset:020}.seg")
}

fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Segment files of a partition directory, sorted by base offset. Other files
/// are ignored so stray editor or backup files do not stop the log.
pub(crate) fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, LogError> {
    let entries = fs::read_dir(dir).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            LogError::Corrupt {
                file: dir.to_path_buf(),
                position: 0,
                reason: "partition directory is missing".into(),
            }
        } else {
            LogError::io(
                format!("cannot list partition directory {}", dir.display()),
                e,
            )
        }
    })?;
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| {
            LogError::io(
                format!("cannot list partition directory {}", dir.display()),
                e,
            )
        })?;
        if let Some(base) = entry.file_name().to_str().and_then(parse_file_name) {
            segments.push((base, entry.path()));
        }
    }
    segments.sort_unstable_by_key(|(base, _)| *base);
    Ok(segments)
}

/// Creates (or empties) the segment file for `base_offset` and writes its
/// header. The directory entry is made durable by the caller, once per batch.
pub(crate) fn create(
    dir: &Path,
    base_offset: u64,
    fsync: bool,
) -> Result<(File, PathBuf), LogError> {
    let path = dir.join(file_name(base_offset));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(|e| LogError::io(format!("cannot create log segment {}", path.display()), e))?;
    let written = file
        .write_all(&SEGMENT_HEADER)
        .and_then(|()| if fsync { file.sync_data() } else { Ok(()) });
    if let Err(e) = written {
        // Best effort: a header-less file would otherwise be recovered (and
        // repaired) as an empty last segment, which is harmless.
        let _ = fs::remove_file(&path);
        return Err(LogError::io(
            format!("cannot write log segment header to {}", path.display()),
            e,
        ));
    }
    Ok((file, path))
}

/// Makes entries created, renamed or removed in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), LogError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| LogError::io(format!("cannot fsync directory {}", dir.display()), e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// What the recovery scan established about one segment.
#[derive(Debug)]
pub(crate) struct Scanned {
    /// Valid length in bytes (after cutting a torn tail).
    pub len: u64,
    /// Offset after the last record.
    pub end_offset: u64,
    pub records: u64,
    pub index: Vec<IndexEntry>,
    /// Position of the last index entry (or of the first record).
    pub last_index_pos: u64,
}

enum Check {
    Valid(u64),
    /// Might be a write cut short by a crash.
    Bad(String),
    /// The checksum matched but the content is wrong: never a torn write.
    Corrupt(String),
}

/// Checks every record of a segment. In the last segment of a partition a bad
/// record with nothing valid after it is a torn write: the file is cut there,
/// unless its offset is below `floor` (records the request journal knows were
/// durable before a later append started). Anything else wrong is
/// [`LogError::Corrupt`].
pub(crate) fn scan(
    path: &Path,
    base_offset: u64,
    is_last: bool,
    floor: u64,
    max_body: usize,
    fsync: bool,
) -> Result<Scanned, LogError> {
    let io_err = |e| LogError::io(format!("cannot read log segment {}", path.display()), e);
    let corrupt = |position, reason: String| LogError::Corrupt {
        file: path.to_path_buf(),
        position,
        reason,
    };
    let file = OpenOptions::new()
        .read(true)
        .write(is_last)
        .open(path)
        .map_err(io_err)?;
    let file_len = file.metadata().map_err(io_err)?.len();
    let mut win = Window {
        file,
        file_len,
        start: 0,
        data: Vec::new(),
    };
    let empty = Scanned {
        len: SEGMENT_HEADER_LEN,
        end_offset: base_offset,
        records: 0,
        index: Vec::new(),
        last_index_pos: SEGMENT_HEADER_LEN,
    };

    if file_len < SEGMENT_HEADER_LEN {
        if !is_last {
            return Err(corrupt(
                0,
                format!("segment header is incomplete ({file_len} of 8 bytes)"),
            ));
        }
        // The crash came right after the file was created.
        return rewrite_header(win.file, path, file_len, fsync).map(|()| empty);
    }

    // Some filesystems persist a new file's size but not its data.
    if is_last && all_zero(&mut win).map_err(io_err)? {
        return rewrite_header(win.file, path, file_len, fsync).map(|()| empty);
    }
    let header = win.get(0, SEGMENT_HEADER.len()).map_err(io_err)?;
    check_header(header).map_err(|(position, reason)| corrupt(position, reason))?;

    let mut out = empty;
    let mut pos = SEGMENT_HEADER_LEN;
    while pos < file_len {
        match check_record(&mut win, pos, out.end_offset, max_body).map_err(io_err)? {
            Check::Valid(total) => {
                if pos - out.last_index_pos >= INDEX_INTERVAL_BYTES {
                    out.index.push(IndexEntry {
                        offset: out.end_offset,
                        position: pos,
                    });
                    out.last_index_pos = pos;
                }
                pos += total;
                out.end_offset += 1;
                out.records += 1;
            }
            Check::Corrupt(reason) => return Err(corrupt(pos, reason)),
            Check::Bad(reason) => {
                if !is_last {
                    return Err(corrupt(pos, reason));
                }
                if out.end_offset < floor {
                    return Err(corrupt(
                        pos,
                        format!(
                            "{reason} in the record of offset {}, which was acknowledged \
                             (the request journal shows a later append from offset {floor}): \
                             this is damage, not a torn write",
                            out.end_offset
                        ),
                    ));
                }
                if let Some(next) =
                    find_valid_after(&mut win, pos, out.end_offset, max_body).map_err(io_err)?
                {
                    return Err(corrupt(
                        pos,
                        format!("{reason}, but a valid record follows at byte {next}"),
                    ));
                }
                let cut = file_len - pos;
                tracing::warn!(
                    file = %path.display(),
                    position = pos,
                    bytes_cut = cut,
                    "log segment {} has a torn tail ({reason}): cut {cut} bytes at byte {pos}",
                    path.display()
                );
                win.file
                    .set_len(pos)
                    .and_then(|()| if fsync { win.file.sync_data() } else { Ok(()) })
                    .map_err(|e| {
                        LogError::io(format!("cannot truncate log segment {}", path.display()), e)
                    })?;
                break;
            }
        }
    }
    out.len = pos;
    Ok(out)
}

/// Checks a segment's magic bytes and format version; on a mismatch, the
/// byte position and the reason.
fn check_header(header: &[u8]) -> Result<(), (u64, String)> {
    if header[..7] != SEGMENT_HEADER[..7] {
        return Err((0, "not a kappa log segment (bad magic bytes)".into()));
    }
    if header[7] != SEGMENT_HEADER[7] {
        return Err((
            7,
            format!(
                "segment format version {} is not supported (this build reads version {})",
                header[7], SEGMENT_HEADER[7]
            ),
        ));
    }
    Ok(())
}

/// Empties a last segment whose header was torn and writes a fresh header.
fn rewrite_header(mut file: File, path: &Path, cut: u64, fsync: bool) -> Result<(), LogError> {
    if cut > 0 {
        tracing::warn!(
            file = %path.display(),
            position = 0,
            bytes_cut = cut,
            "log segment {} has a torn header: cut {cut} bytes at byte 0 and rewrote the header",
            path.display()
        );
    }
    file.set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)))
        .and_then(|_| file.write_all(&SEGMENT_HEADER))
        .and_then(|()| if fsync { file.sync_data() } else { Ok(()) })
        .map_err(|e| LogError::io(format!("cannot repair log segment {}", path.display()), e))
}

/// Whether the file holds only zero bytes; stops at the first other byte,
/// which for a real segment is the first byte of its header.
fn all_zero(win: &mut Window) -> io::Result<bool> {
    let mut pos = 0;
    while pos < win.file_len {
        let n = usize::try_from(win.file_len - pos)
            .map_or(SCAN_WINDOW_BYTES, |rest| rest.min(SCAN_WINDOW_BYTES));
        if win.get(pos, n)?.iter().any(|&b| b != 0) {
            return Ok(false);
        }
        pos += n as u64;
    }
    Ok(true)
}

fn check_record(win: &mut Window, pos: u64, expected: u64, max_body: usize) -> io::Result<Check> {
    let remaining = win.file_len - pos;
    if remaining < FRAME_HEADER_LEN as u64 {
        return Ok(Check::Bad(format!(
            "incomplete record header ({remaining} of {FRAME_HEADER_LEN} bytes)"
        )));
    }
    let (len, crc) = record::frame_header(&header_array(win.get(pos, FRAME_HEADER_LEN)?));
    let len = len as usize;
    if len < MIN_BODY_LEN {
        return Ok(Check::Bad(format!(
            "record length {len} is below the minimum of {MIN_BODY_LEN}"
        )));
    }
    if len > max_body {
        return Ok(Check::Bad(format!(
            "record length {len} exceeds the maximum of {max_body}"
        )));
    }
    let body_remaining = remaining - FRAME_HEADER_LEN as u64;
    if (len as u64) > body_remaining {
        return Ok(Check::Bad(format!(
            "incomplete record ({body_remaining} of {len} bytes)"
        )));
    }
    let body = win.get(pos + FRAME_HEADER_LEN as u64, len)?;
    if crc32fast::hash(body) != crc {
        return Ok(Check::Bad("checksum mismatch".into()));
    }
    let view = match record::parse_body(body) {
        Ok(view) => view,
        Err(reason) => return Ok(Check::Corrupt(reason.into())),
    };
    if let Err(reason) = view.check_header_names() {
        return Ok(Check::Corrupt(reason.into()));
    }
    if view.offset != expected {
        return Ok(Check::Corrupt(format!(
            "record has offset {}, expected {expected}",
            view.offset
        )));
    }
    Ok(Check::Valid((FRAME_HEADER_LEN + len) as u64))
}

/// Position of a plausible valid record after the bad one at `bad_pos`: one
/// whose checksum matches and whose offset could follow `expected`. Its
/// existence means the bad bytes sit in the middle of acknowledged data.
fn find_valid_after(
    win: &mut Window,
    bad_pos: u64,
    expected: u64,
    max_body: usize,
) -> io::Result<Option<u64>> {
    let min_frame = (FRAME_HEADER_LEN + MIN_BODY_LEN) as u64;
    let max_records_after = (win.file_len - bad_pos) / min_frame + 1;
    let mut q = bad_pos + 1;
    while q + min_frame <= win.file_len {
        let probe = win.get(q, FRAME_HEADER_LEN + 8)?;
        let (len, crc) = record::frame_header(&header_array(probe));
        let offset = record::peek_offset(&probe[FRAME_HEADER_LEN..]).unwrap_or(u64::MAX);
        let len = len as usize;
        let plausible = len >= MIN_BODY_LEN
            && len <= max_body
            && q + (FRAME_HEADER_LEN + len) as u64 <= win.file_len
            && offset >= expected
            && offset - expected <= max_records_after;
        if plausible {
            let body = win.get(q + FRAME_HEADER_LEN as u64, len)?;
            if crc32fast::hash(body) == crc {
                return Ok(Some(q));
            }
        }
        q += 1;
    }
    Ok(None)
}

fn header_array(bytes: &[u8]) -> [u8; FRAME_HEADER_LEN] {
    let mut out = [0; FRAME_HEADER_LEN];
    out.copy_from_slice(&bytes[..FRAME_HEADER_LEN]);
    out
}

/// A sliding read window over a file, so the scan reads large sequential
/// chunks while asking for bytes at arbitrary positions.
struct Window {
    file: File,
    file_len: u64,
    start: u64,
    data: Vec<u8>,
}

impl Window {
    /// `pos + n` must not exceed the file length.
    #[expect(
        clippy::cast_possible_truncation,
        reason = "`pos - start` is a position inside the window, whose bytes are in memory"
    )]
    fn get(&mut self, pos: u64, n: usize) -> io::Result<&[u8]> {
        let end = pos + n as u64;
        let win_end = self.start + self.data.len() as u64;
        if pos < self.start || end > win_end {
            let want = n.max(SCAN_WINDOW_BYTES);
            let len = usize::try_from(self.file_len - pos).map_or(want, |rest| rest.min(want));
            self.data.resize(len, 0);
            self.file.seek(SeekFrom::Start(pos))?;
            self.file.read_exact(&mut self.data)?;
            self.start = pos;
        }
        let from = (pos - self.start) as usize;
        Ok(&self.data[from..from + n])
    }
}
