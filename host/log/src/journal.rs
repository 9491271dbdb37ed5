//! The request journal of a topic, `<topic>/requests.log`: what makes an
//! append that spans several partitions all or nothing across a crash, and
//! what remembers request ids so a retried request is stored at most once.
//!
//! # How it works
//!
//! Before the records of a request that touches several partitions (or that
//! carries a request id) are written, an *intent* entry is appended and
//! fsynced, naming for each touched partition its first offset and record
//! count, while the append holds the writer locks of those partitions. Then
//! the records are written and fsynced as usual. There is no commit marker:
//! "every listed partition holds all its records" *is* the commit. On open,
//! after each partition's own recovery, an intent whose records are not all
//! there is cut: every partition it lists goes back to the intent's first
//! offset. Nothing else can have been appended to those partitions after
//! the intent (the locks were held), so the cut removes exactly that request.
//! An append that fails (and is rolled back) writes an *abort* entry, so its
//! intent is never mistaken for a later request's records.
//!
//! Every intent also proves that the records below its first offsets were
//! fsynced before it was written: the recovery scan treats a bad record
//! there as damage, never as a torn tail (see `floors`). A compacted journal
//! keeps that knowledge in a *floor* entry (every partition's end at the time).
//!
//! # Format (version 1)
//!
//! An 8-byte header `b"KREQLOG"` + version `0x01`, then frames exactly like
//! log records: `u32` body length, `u32` CRC-32 of the body, the body. All
//! integers little-endian. Body: a kind byte, then
//!
//! - `1` intent: `u64` sequence number, 32-byte request fingerprint, `u16` id
//!   length (`0xFFFF`: no id) and the id's bytes, `u32` part count, and per
//!   part `u32` partition, `u64` first offset, `u64` record count;
//! - `2` abort: `u64` sequence number of the intent it cancels;
//! - `3` floor: `u32` partition count, then per partition the `u64` offset
//!   below which every record is known to be durable.
//!
//! The journal is compacted (written to `requests.log.tmp`, fsynced, renamed
//! over the journal, directory fsynced) when the topic is opened and when it
//! grows past its bound while no request is in flight; a compacted journal
//! holds one floor entry and the intents of the most recent request ids.
//!
//! (Format, recovery and runtime state are kept in this one file, over 600
//! lines with its tests, so that the journal's bytes stay in one reviewable spot.)

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::segment::sync_dir;
use super::{AppendedRange, LogError};

pub(crate) const JOURNAL_FILE: &str = "requests.log";
const JOURNAL_TMP_FILE: &str = "requests.log.tmp";
const HEADER: [u8; 8] = *b"KREQLOG\x01";
const NO_ID: u16 = u16::MAX;
/// Longest request id, bytes.
pub const MAX_REQUEST_ID_LEN: usize = 128;

const KIND_INTENT: u8 = 1;
const KIND_ABORT: u8 = 2;
const KIND_FLOOR: u8 = 3;

/// The identity of a request: the id the client chose, and a fingerprint of
/// its content (e.g. a SHA-256 of the events as sent) that tells a retry
/// from an id reused for other events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestTag {
    /// The id the client chose.
    pub id: String,
    /// A fingerprint of the request's content.
    pub fingerprint: [u8; 32],
}

/// One partition's share of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Part {
    pub partition: u32,
    pub first: u64,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Intent {
    pub seq: u64,
    pub id: Option<String>,
    pub fingerprint: [u8; 32],
    pub parts: Vec<Part>,
}

impl Intent {
    pub(crate) fn ranges(&self) -> Vec<AppendedRange> {
        self.parts
            .iter()
            .map(|p| AppendedRange {
                partition: p.partition,
                first_offset: p.first,
                last_offset: p.first + p.count - 1,
                count: p.count,
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    Intent(Intent),
    Abort(u64),
    Floor(Vec<u64>),
}

pub(crate) fn validate_id(id: &str) -> Result<(), LogError> {
    let reason = if id.is_empty() {
        "it is empty"
    } else if id.len() > MAX_REQUEST_ID_LEN {
        "it is longer than 128 bytes"
    } else if !id.bytes().all(|b| b.is_ascii_graphic()) {
        "only visible ASCII characters (no spaces) are allowed"
    } else {
        return Ok(());
    };
    Err(LogError::InvalidRequestId {
        id: id.chars().take(200).collect(),
        reason: reason.to_owned(),
    })
}

#[expect(
    clippy::cast_possible_truncation,
    reason = "ids are at most 128 bytes (validate_id) and an entry lists at most one part or end per partition (at most 1024), so every length fits its field"
)]
fn encode(entry: &Entry) -> Vec<u8> {
    let mut body = Vec::with_capacity(64);
    match entry {
        Entry::Intent(i) => {
            body.push(KIND_INTENT);
            body.extend_from_slice(&i.seq.to_le_bytes());
            body.extend_from_slice(&i.fingerprint);
            match &i.id {
                Some(id) => {
                    body.extend_from_slice(&(id.len() as u16).to_le_bytes());
                    body.extend_from_slice(id.as_bytes());
                }
                None => body.extend_from_slice(&NO_ID.to_le_bytes()),
            }
            body.extend_from_slice(&(i.parts.len() as u32).to_le_bytes());
            for p in &i.parts {
                body.extend_from_slice(&p.partition.to_le_bytes());
                body.extend_from_slice(&p.first.to_le_bytes());
                body.extend_from_slice(&p.count.to_le_bytes());
            }
        }
        Entry::Abort(seq) => {
            body.push(KIND_ABORT);
            body.extend_from_slice(&seq.to_le_bytes());
        }
        Entry::Floor(ends) => {
            body.push(KIND_FLOOR);
            body.extend_from_slice(&(ends.len() as u32).to_le_bytes());
            for e in ends {
                body.extend_from_slice(&e.to_le_bytes());
            }
        }
    }
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// A cursor over an entry body.
struct Body<'a>(&'a [u8]);

impl Body<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], &'static str> {
        let (head, rest) = self.0.split_first_chunk::<N>().ok_or("entry ends early")?;
        self.0 = rest;
        Ok(*head)
    }
    fn u16(&mut self) -> Result<u16, &'static str> {
        self.take().map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Result<u32, &'static str> {
        self.take().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Result<u64, &'static str> {
        self.take().map(u64::from_le_bytes)
    }
    fn bytes(&mut self, n: usize) -> Result<&[u8], &'static str> {
        if self.0.len() < n {
            return Err("entry ends early");
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
}

fn decode(body: &[u8]) -> Result<Entry, &'static str> {
    let (&kind, rest) = body.split_first().ok_or("empty entry")?;
    let mut b = Body(rest);
    let entry = match kind {
        KIND_INTENT => {
            let seq = b.u64()?;
            let fingerprint = b.take::<32>()?;
            let id = match b.u16()? {
                NO_ID => None,
                n => Some(
                    std::str::from_utf8(b.bytes(n as usize)?)
                        .map_err(|_| "request id is not UTF-8")?
                        .to_owned(),
                ),
            };
            let n = b.u32()?;
            if n as usize > b.0.len() / 20 {
                return Err("part count exceeds the entry");
            }
            let mut parts = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let (partition, first, count) = (b.u32()?, b.u64()?, b.u64()?);
                if count == 0 {
                    return Err("a part with no records");
                }
                parts.push(Part {
                    partition,
                    first,
                    count,
                });
            }
            Entry::Intent(Intent {
                seq,
                id,
                fingerprint,
                parts,
            })
        }
        KIND_ABORT => Entry::Abort(b.u64()?),
        KIND_FLOOR => {
            let n = b.u32()?;
            if n as usize > b.0.len() / 8 {
                return Err("partition count exceeds the entry");
            }
            Entry::Floor((0..n).map(|_| b.u64()).collect::<Result<_, _>>()?)
        }
        _ => return Err("unknown entry kind"),
    };
    if !b.0.is_empty() {
        return Err("trailing bytes in entry");
    }
    Ok(entry)
}

/// The entries of the journal in `topic_dir`, `None` when it has none. A
/// torn last entry (a crash while it was written: its records were never
/// written either) is cut off; damage elsewhere is [`LogError::Corrupt`].
pub(crate) fn read(topic_dir: &Path, fsync: bool) -> Result<Option<Vec<Entry>>, LogError> {
    let path = topic_dir.join(JOURNAL_FILE);
    // A compaction that never renamed leaves only its temporary file.
    let _ = fs::remove_file(topic_dir.join(JOURNAL_TMP_FILE));
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LogError::io(format!("cannot read {}", path.display()), e)),
    };
    let corrupt = |position: usize, reason: String| LogError::Corrupt {
        file: path.clone(),
        position: position as u64,
        reason,
    };
    if bytes.len() < HEADER.len() || bytes.iter().all(|&b| b == 0) {
        // Created, header not yet durable: no intent was ever in it.
        return Ok(Some(Vec::new()));
    }
    if bytes[..HEADER.len()] != HEADER {
        return Err(corrupt(
            0,
            "not a kappa request journal (bad header)".into(),
        ));
    }
    let mut entries = Vec::new();
    let mut pos = HEADER.len();
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        let torn = |why: &str| -> Result<(), LogError> {
            // Only the newest entry can be torn; bytes after it mean damage.
            tracing::warn!(
                file = %path.display(),
                position = pos,
                "request journal {} has a torn last entry ({why}): ignoring {} bytes at byte {pos}",
                path.display(),
                rest.len()
            );
            Ok(())
        };
        let Some((head, after)) = rest.split_first_chunk::<8>() else {
            torn("incomplete entry header")?;
            break;
        };
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if len > after.len() {
            torn("incomplete entry")?;
            break;
        }
        let body = &after[..len];
        if len == 0 || crc32fast::hash(body) != crc {
            if rest.iter().all(|&b| b == 0) || len == after.len() {
                torn("checksum mismatch")?;
                break;
            }
            return Err(corrupt(
                pos,
                "checksum mismatch in an entry followed by others".into(),
            ));
        }
        let entry = decode(body).map_err(|why| corrupt(pos, why.into()))?;
        entries.push(entry);
        pos += 8 + len;
    }
    if pos < bytes.len() {
        let cut = OpenOptions::new().write(true).open(&path).and_then(|f| {
            f.set_len(pos as u64)?;
            if fsync { f.sync_data() } else { Ok(()) }
        });
        cut.map_err(|e| LogError::io(format!("cannot truncate {}", path.display()), e))?;
    }
    Ok(Some(entries))
}

/// Per partition, the offset below which every record was durable before
/// some entry of the journal was written: a bad record below it is damage.
pub(crate) fn floors(entries: &[Entry], partitions: usize) -> Vec<u64> {
    let mut floors = vec![0; partitions];
    for entry in entries {
        match entry {
            Entry::Floor(ends) => {
                for (f, e) in floors.iter_mut().zip(ends) {
                    *f = (*f).max(*e);
                }
            }
            Entry::Intent(i) => {
                for p in &i.parts {
                    if let Some(f) = floors.get_mut(p.partition as usize) {
                        *f = (*f).max(p.first);
                    }
                }
            }
            Entry::Abort(_) => {}
        }
    }
    floors
}

/// What the journal says about the partitions as recovered.
#[derive(Debug, Default)]
pub(crate) struct Resolved {
    /// Intents whose records are all there, in journal order.
    pub complete: Vec<Intent>,
    /// Partitions to cut back, with the offset to cut them to.
    pub cuts: Vec<(u32, u64)>,
}

/// Sorts intents into complete ones and the cuts that undo the others.
pub(crate) fn resolve(entries: &[Entry], ends: &[u64]) -> Resolved {
    let aborted: HashSet<u64> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Abort(seq) => Some(*seq),
            _ => None,
        })
        .collect();
    let mut out = Resolved::default();
    let mut cuts: std::collections::BTreeMap<u32, u64> = Default::default();
    for entry in entries {
        let Entry::Intent(i) = entry else { continue };
        if aborted.contains(&i.seq) {
            continue;
        }
        let complete = i.parts.iter().all(|p| {
            ends.get(p.partition as usize)
                .is_some_and(|&end| end >= p.first + p.count)
        });
        if complete {
            out.complete.push(i.clone());
        } else {
            for p in &i.parts {
                let cut = cuts.entry(p.partition).or_insert(p.first);
                *cut = (*cut).min(p.first);
            }
        }
    }
    out.cuts = cuts.into_iter().collect();
    out
}

/// Why a request with an id cannot be stored now.
pub(crate) enum Refusal {
    /// Stored before: these are the ranges it got.
    Duplicate(Vec<AppendedRange>),
    InFlight,
    Reused,
}

/// The journal of one open topic, behind the topic's journal mutex. The
/// lock order is: partition writers (ascending), then the journal.
#[derive(Debug)]
pub(crate) struct Journal {
    dir: PathBuf,
    /// `None` until the first entry (a topic without journal stays so).
    file: Option<File>,
    len: u64,
    fsync: bool,
    next_seq: u64,
    /// Entries in the file.
    entries: usize,
    /// Intents written whose requests have not finished.
    in_flight: usize,
    in_flight_ids: HashSet<String>,
    remembered: HashMap<String, Intent>,
    order: VecDeque<String>,
    keep_ids: usize,
    /// A write failed and could not be undone: no more intents until reopen.
    poisoned: bool,
}

impl Journal {
    /// The journal of a topic as found at open, after recovery: `complete`
    /// are the intents whose records are all there. When the topic had a
    /// journal, it is compacted now with `ends` as the floor.
    pub(crate) fn open(
        dir: &Path,
        existed: bool,
        complete: Vec<Intent>,
        ends: &[u64],
        fsync: bool,
        keep_ids: usize,
    ) -> Result<Self, LogError> {
        let mut journal = Journal {
            dir: dir.to_path_buf(),
            file: None,
            len: 0,
            fsync,
            next_seq: complete.iter().map(|i| i.seq + 1).max().unwrap_or(0),
            entries: 0,
            in_flight: 0,
            in_flight_ids: HashSet::new(),
            remembered: HashMap::new(),
            order: VecDeque::new(),
            keep_ids,
            poisoned: false,
        };
        for intent in complete {
            journal.remember(intent);
        }
        if existed {
            journal.compact(ends)?;
        }
        Ok(journal)
    }

    fn path(&self) -> PathBuf {
        self.dir.join(JOURNAL_FILE)
    }

    /// Checks a request id before its request is written, and marks it in
    /// flight when it is new.
    pub(crate) fn begin(&mut self, tag: &RequestTag) -> Result<(), Refusal> {
        if self.in_flight_ids.contains(&tag.id) {
            return Err(Refusal::InFlight);
        }
        if let Some(known) = self.remembered.get(&tag.id) {
            return Err(if known.fingerprint == tag.fingerprint {
                Refusal::Duplicate(known.ranges())
            } else {
                Refusal::Reused
            });
        }
        self.in_flight_ids.insert(tag.id.clone());
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn is_in_flight(&self, id: &str) -> bool {
        self.in_flight_ids.contains(id)
    }

    /// Forgets that a request id is in flight (whatever its outcome).
    pub(crate) fn end(&mut self, id: &str) {
        self.in_flight_ids.remove(id);
    }

    /// Appends and fsyncs the intent of a request; returns it, with its
    /// sequence number.
    pub(crate) fn write_intent(
        &mut self,
        tag: Option<&RequestTag>,
        parts: Vec<Part>,
    ) -> Result<Intent, LogError> {
        let intent = Intent {
            seq: self.next_seq,
            id: tag.map(|t| t.id.clone()),
            fingerprint: tag.map_or([0; 32], |t| t.fingerprint),
            parts,
        };
        self.write(&Entry::Intent(intent.clone()))?;
        self.next_seq += 1;
        self.in_flight += 1;
        Ok(intent)
    }

    /// Ends an intent whose request failed. When its records were cleanly
    /// rolled back (`clean`), an abort entry cancels it; returns whether it
    /// is cancelled (if not, its partitions must take no append before a
    /// reopen, whose recovery cuts them back to the intent).
    pub(crate) fn abort(&mut self, seq: u64, clean: bool) -> bool {
        self.in_flight -= 1;
        clean && self.write(&Entry::Abort(seq)).is_ok()
    }

    /// Records that a request's records are all durable and published;
    /// compacts the journal when it is past its bound and nothing is in
    /// flight (`ends` gives the partitions' published ends).
    pub(crate) fn done(&mut self, intent: Intent, ends: impl FnOnce() -> Vec<u64>) {
        self.in_flight -= 1;
        if intent.id.is_some() {
            self.remember(intent);
        }
        if self.in_flight == 0
            && self.entries > self.compact_after()
            && let Err(e) = self.compact(&ends())
        {
            tracing::warn!(
                "cannot compact the request journal {}: {e}",
                self.path().display()
            );
        }
    }

    /// Entries past which the journal is rewritten.
    fn compact_after(&self) -> usize {
        (2 * self.keep_ids).max(1024)
    }

    fn remember(&mut self, intent: Intent) {
        let Some(id) = intent.id.clone() else { return };
        if self.keep_ids == 0 {
            return;
        }
        if self.remembered.insert(id.clone(), intent).is_none() {
            self.order.push_back(id);
        }
        while self.order.len() > self.keep_ids {
            if let Some(old) = self.order.pop_front() {
                self.remembered.remove(&old);
            }
        }
    }

    fn write(&mut self, entry: &Entry) -> Result<(), LogError> {
        if self.poisoned {
            return Err(LogError::io(
                format!(
                    "the request journal {} stopped accepting entries after a write failure; \
                     reopen the log to recover it",
                    self.path().display()
                ),
                io::Error::other("request journal is poisoned"),
            ));
        }
        let path = self.path();
        if self.file.is_none() {
            create_with(&path, &[], self.fsync)?;
            if self.fsync {
                sync_dir(&self.dir)?;
            }
            self.file = Some(open_append(&path)?);
            self.len = HEADER.len() as u64;
        }
        let file = self.file.as_mut().expect("created above");
        let bytes = encode(entry);
        let written = file
            .write_all(&bytes)
            .and_then(|()| if self.fsync { file.sync_data() } else { Ok(()) });
        if let Err(e) = written {
            // Cut the partial entry so the next one follows valid bytes.
            if file.set_len(self.len).is_err() {
                self.poisoned = true;
            }
            return Err(LogError::io(format!("cannot write {}", path.display()), e));
        }
        self.len += bytes.len() as u64;
        self.entries += 1;
        Ok(())
    }

    /// Rewrites the journal as a floor entry (`ends`) and the intents of the
    /// remembered request ids.
    pub(crate) fn compact(&mut self, ends: &[u64]) -> Result<(), LogError> {
        let mut bytes = encode(&Entry::Floor(ends.to_vec()));
        for id in &self.order {
            bytes.extend(encode(&Entry::Intent(self.remembered[id].clone())));
        }
        let tmp = self.dir.join(JOURNAL_TMP_FILE);
        let path = self.path();
        create_with(&tmp, &bytes, self.fsync)?;
        fs::rename(&tmp, &path)
            .map_err(|e| LogError::io(format!("cannot replace {}", path.display()), e))?;
        if self.fsync {
            sync_dir(&self.dir)?;
        }
        self.file = Some(open_append(&path)?);
        self.len = (HEADER.len() + bytes.len()) as u64;
        self.entries = 1 + self.order.len();
        self.poisoned = false;
        Ok(())
    }
}

fn open_append(path: &Path) -> Result<File, LogError> {
    OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| LogError::io(format!("cannot open {}", path.display()), e))
}

/// Creates `path` holding the header and `entries`, fsynced when asked.
fn create_with(path: &Path, entries: &[u8], fsync: bool) -> Result<(), LogError> {
    let err = |e| LogError::io(format!("cannot create {}", path.display()), e);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)
        .map_err(err)?;
    file.write_all(&HEADER)
        .and_then(|()| file.write_all(entries))
        .and_then(|()| if fsync { file.sync_data() } else { Ok(()) })
        .map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_damage_is_refused() {
        let intent = Entry::Intent(Intent {
            seq: 7,
            id: Some("req-1".into()),
            fingerprint: [9; 32],
            parts: vec![
                Part {
                    partition: 0,
                    first: 3,
                    count: 2,
                },
                Part {
                    partition: 2,
                    first: 0,
                    count: 1,
                },
            ],
        });
        for entry in [intent, Entry::Abort(3), Entry::Floor(vec![1, 2, 3])] {
            let bytes = encode(&entry);
            assert_eq!(decode(&bytes[8..]), Ok(entry));
        }
        assert!(decode(&[KIND_ABORT, 1, 2]).is_err());
        assert!(decode(&[9]).is_err());
    }
}
