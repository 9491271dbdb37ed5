//! Section 5: ingest throughput of the embedded log against a plain
//! buffered file append with the same bytes and the same fsyncs.

use std::io::{BufWriter, Write as _};
use std::path::Path;
use std::time::Instant;

use kappa::log::{EmbeddedLog, LogOptions, NewRecord};

use super::bench::Bench;
use super::common::{median, payments};
use super::report::Section;

impl Bench {
    pub(crate) fn ingest(&self) -> Section {
        let mut s = Section::new(
            5,
            "ingest throughput, embedded log, fsync per append call",
            "log events/s / plain buffered file events/s (same bytes, same fsyncs)",
        );
        let records = payments(14, self.options.keys, self.options.ingest_events);
        for (batch, count) in [
            (1usize, if self.options.quick { 200 } else { 2_000 }),
            (100, self.options.ingest_events / 10),
            (10_000, self.options.ingest_events),
        ] {
            let records = &records[..count.min(records.len())];
            let (mut log_t, mut file_t) = (Vec::new(), Vec::new());
            for run in 0..self.options.runs {
                let dir = self.dir.path().join(format!("ingest-{batch}-{run}"));
                std::fs::create_dir_all(&dir).unwrap();
                let plain = || {
                    let started = Instant::now();
                    plain_append(&dir.join("plain.bin"), records, batch);
                    started.elapsed().as_secs_f64()
                };
                // Alternate which goes first, so that neither always meets
                // the other's write-back.
                if run % 2 == 1 {
                    file_t.push(plain());
                }
                let log = EmbeddedLog::open(&dir.join("log"), LogOptions::default()).unwrap();
                log.create_topic("in", 1).unwrap();
                let started = Instant::now();
                for chunk in records.chunks(batch) {
                    log.append("in", chunk.iter().map(|r| (0, r.clone())).collect())
                        .unwrap();
                }
                log_t.push(started.elapsed().as_secs_f64());
                drop(log);
                if run.is_multiple_of(2) {
                    file_t.push(plain());
                }
                std::fs::remove_dir_all(&dir).ok();
            }
            let (lt, ft) = (median(log_t), median(file_t));
            let n = records.len() as f64;
            s.figure(
                format!("plain file, {batch} events per fsync"),
                n / ft,
                "events/s",
                Some(1.0),
            );
            s.figure(
                format!("embedded log, {batch} events per append"),
                n / lt,
                "events/s",
                Some(ft / lt),
            );
        }
        self.ingest_requests(&mut s, &records);
        s.note(
            "the log's time includes cloning each record out of the generated set (the append \
             API takes ownership); the plain file writes the same framed bytes (8-byte length + \
             checksum, then the body) through a 1 MiB BufWriter and calls sync_data per batch, \
             as the log does",
        );
        s.note(
            "requests over 4 partitions: each append spreads its events round-robin over 4 \
             partitions, so the log fsyncs 4 segments plus the request journal's intent (5 \
             fsyncs) where the plain file does 1; with a request id, the id is also checked and \
             remembered",
        );
        s
    }

    /// Section 5, multi-partition requests: appends spanning 4 partitions
    /// (each first records an intent in the request journal), without and
    /// with a request id, against the plain file with one fsync per batch.
    fn ingest_requests(&self, s: &mut Section, records: &[NewRecord]) {
        use kappa::log::RequestTag;
        let batch = 100usize;
        let records = &records[..(self.options.ingest_events / 10).min(records.len())];
        let n = records.len() as f64;
        let mut times = [Vec::new(), Vec::new(), Vec::new()];
        for run in 0..self.options.runs {
            let dir = self.dir.path().join(format!("ingest-requests-{run}"));
            std::fs::create_dir_all(&dir).unwrap();
            let started = Instant::now();
            plain_append(&dir.join("plain.bin"), records, batch);
            times[0].push(started.elapsed().as_secs_f64());
            for (case, with_id) in [(1, false), (2, true)] {
                let log =
                    EmbeddedLog::open(&dir.join(format!("log-{case}")), LogOptions::default())
                        .unwrap();
                log.create_topic("in", 4).unwrap();
                let started = Instant::now();
                for (i, chunk) in records.chunks(batch).enumerate() {
                    let tag = with_id.then(|| RequestTag {
                        id: format!("bench-{i}"),
                        fingerprint: [i as u8; 32],
                    });
                    let events = chunk
                        .iter()
                        .enumerate()
                        .map(|(j, r)| ((j % 4) as u32, r.clone()))
                        .collect();
                    log.append_request("in", events, tag.as_ref()).unwrap();
                }
                times[case].push(started.elapsed().as_secs_f64());
            }
            std::fs::remove_dir_all(&dir).ok();
        }
        let [plain, journal, id] = times.map(median);
        s.figure(
            format!("plain file, {batch} events per fsync (requests baseline)"),
            n / plain,
            "events/s",
            Some(1.0),
        );
        s.figure(
            format!("embedded log, {batch} events per append over 4 partitions"),
            n / journal,
            "events/s",
            Some(plain / journal),
        );
        s.figure(
            format!("embedded log, {batch} events per append over 4 partitions, with a request id"),
            n / id,
            "events/s",
            Some(plain / id),
        );
    }
}

/// Writes `records` framed like the log (length and checksum, then a body of
/// the same length) to a plain file, `sync_data` after every `batch`.
fn plain_append(path: &Path, records: &[NewRecord], batch: usize) {
    let file = std::fs::File::create(path).unwrap();
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut body = Vec::new();
    for chunk in records.chunks(batch) {
        for (i, r) in chunk.iter().enumerate() {
            body.clear();
            body.extend_from_slice(&(i as u64).to_le_bytes());
            body.extend_from_slice(&r.timestamp.to_le_bytes());
            let key = r.key.as_deref().unwrap_or_default();
            body.extend_from_slice(&(key.len() as i32).to_le_bytes());
            body.extend_from_slice(key);
            body.extend_from_slice(&(r.value.len() as u32).to_le_bytes());
            body.extend_from_slice(&r.value);
            body.extend_from_slice(&0u16.to_le_bytes());
            out.write_all(&(body.len() as u32).to_le_bytes()).unwrap();
            out.write_all(&crc32fast::hash(&body).to_le_bytes())
                .unwrap();
            out.write_all(&body).unwrap();
        }
        out.flush().unwrap();
        out.get_ref().sync_data().unwrap();
    }
}
