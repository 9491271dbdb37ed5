//! `-- bulk-write`: what writing a full buffer costs per row in each store,
//! apart from everything else a replay does.
//!
//! A view's write buffer reaches its file as one transaction of rows in key
//! order (when full, and at the end of a replay, before the version reports
//! itself caught up). This writes 480,000 rows of a flag row's shape (25-byte
//! keys, ~85-byte values: payments v2 writes one per flagged payment, each
//! its own key), in key order, in one transaction, into an
//! empty store and then over the same keys, three times each: redb as the view
//! file uses it (`Durability::None`, then one durable commit), fjall (one
//! atomic batch, then a persist), and a [`View`] (one commit into its buffer,
//! then `sync`, which writes the buffer through redb, durably). Then a view
//! into a file that holds some of the keys (every other key, the others
//! between them, one in a hundred rewritten): a view writes the rows past its
//! file's last key through a cursor and the others one by one. Prints
//! microseconds per row of the write and the milliseconds of the sync.

use std::path::Path;
use std::time::{Duration, Instant};

use kappa_store::{View, ViewOptions, Writes};
use redb::{ReadableDatabase, TableDefinition};

const ROWS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("rows");
const COUNT: usize = 480_000;
const ROUNDS: usize = 3;

/// The rows, in key order: keys spread over the key space as transaction
/// ids are.
fn rows() -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut rows: Vec<(Vec<u8>, Vec<u8>)> = (0..COUNT as u64)
        .map(|i| {
            let key = format!("flag/txn-{:016x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let value = format!(
                "{{\"account\":\"acct-{:06}\",\"amount_cents\":{},\"rule\":\"velocity\",\"timestamp\":{}}}",
                i % 1000,
                i * 7,
                1_767_225_600_000 + i
            );
            (key.into_bytes(), value.into_bytes())
        })
        .collect();
    rows.sort();
    rows
}

/// `sync`: the durable commit after the write, timed apart; `None` when the
/// write includes it.
fn report(store: &str, round: usize, write: Duration, sync: Option<Duration>) {
    let sync = sync.map_or_else(
        || "sync included".to_owned(),
        |s| format!("then sync {:.0} ms", s.as_secs_f64() * 1e3),
    );
    println!(
        "{store:<6} round {round}: {:.2} us per row written, {sync}",
        write.as_secs_f64() / COUNT as f64 * 1e6,
    );
}

fn redb_rounds(dir: &Path, rows: &[(Vec<u8>, Vec<u8>)]) {
    let db = redb::Database::builder()
        .set_cache_size(256 << 20)
        .create(dir.join("bulk.redb"))
        .expect("redb create");
    for round in 0..ROUNDS {
        let started = Instant::now();
        let mut txn = db.begin_write().expect("begin");
        txn.set_durability(redb::Durability::None)
            .expect("durability");
        {
            let mut table = txn.open_table(ROWS).expect("table");
            for (key, value) in rows {
                table
                    .insert(key.as_slice(), value.as_slice())
                    .expect("insert");
            }
        }
        txn.commit().expect("commit");
        let write = started.elapsed();
        let started = Instant::now();
        db.begin_write().expect("begin").commit().expect("sync");
        report("redb", round, write, Some(started.elapsed()));
    }
    drop(db.begin_read());
}

fn fjall_rounds(dir: &Path, rows: &[(Vec<u8>, Vec<u8>)]) {
    let db = fjall::Database::builder(dir.join("bulk-fjall"))
        .cache_size(256 << 20)
        .open()
        .expect("fjall open");
    let keyspace = db
        .keyspace("rows", fjall::KeyspaceCreateOptions::default)
        .expect("keyspace");
    for round in 0..ROUNDS {
        let started = Instant::now();
        let mut batch = db.batch();
        for (key, value) in rows {
            batch.insert(&keyspace, key.as_slice(), value.as_slice());
        }
        batch.commit().expect("commit");
        let write = started.elapsed();
        let started = Instant::now();
        db.persist(fjall::PersistMode::SyncAll).expect("persist");
        report("fjall", round, write, Some(started.elapsed()));
    }
}

fn view_rounds(dir: &Path, rows: &[(Vec<u8>, Vec<u8>)]) {
    let view = open_view(&dir.join("bulk-view.redb"));
    for round in 0..ROUNDS {
        // The buffer is written by the sync: what a replay's final write costs.
        let took = write_through(&view, round as u64 + 1, rows.iter());
        report("view", round, took, None);
    }
}

/// A view whose buffer holds everything until a sync writes it.
fn open_view(path: &Path) -> View {
    View::open_with(
        path,
        ViewOptions {
            sync_interval: Duration::from_secs(3600),
            write_buffer_bytes: 1 << 30,
            cache_bytes: 256 << 20,
            row_cache_bytes: 0,
        },
    )
    .expect("view")
}

/// Commits `rows` to `view` in one commit and times the sync that writes
/// them to its file.
fn write_through<'a>(
    view: &View,
    offset: u64,
    rows: impl Iterator<Item = &'a (Vec<u8>, Vec<u8>)>,
) -> Duration {
    let writes: Writes = rows
        .map(|(key, value)| (key.clone(), Some(value.clone())))
        .collect();
    view.commit(0, offset, &writes, false).expect("commit");
    let started = Instant::now();
    view.sync().expect("sync");
    started.elapsed()
}

/// Writes of the view into a file that holds some of their keys: every
/// other key new (the rows interleaved with the file's), and one row in a
/// hundred rewritten in a file holding all of them.
fn view_mixed(dir: &Path, rows: &[(Vec<u8>, Vec<u8>)]) {
    let per_row = |took: Duration, count: usize| took.as_secs_f64() / count as f64 * 1e6;
    let view = open_view(&dir.join("bulk-view-mixed.redb"));
    let half = rows.len() / 2;
    let took = write_through(&view, 1, rows.iter().step_by(2));
    println!(
        "view   every other key into an empty file: {:.2} us per row written, sync included",
        per_row(took, half)
    );
    let took = write_through(&view, 2, rows.iter().skip(1).step_by(2));
    println!(
        "view   the other keys, each between two of the file's: {:.2} us per row written, sync \
         included",
        per_row(took, rows.len() - half)
    );
    let sparse = rows.len() / 100;
    let took = write_through(&view, 3, rows.iter().step_by(100));
    println!(
        "view   one key in a hundred rewritten: {:.2} us per row written ({sparse} rows), sync \
         included",
        per_row(took, sparse)
    );
}

pub fn run(base: &Path) {
    let dir = tempfile::tempdir_in(base).expect("temporary directory");
    let rows = rows();
    println!(
        "{COUNT} rows in key order, one transaction each round (the first into an empty store)"
    );
    redb_rounds(dir.path(), &rows);
    fjall_rounds(dir.path(), &rows);
    view_rounds(dir.path(), &rows);
    view_mixed(dir.path(), &rows);
}
