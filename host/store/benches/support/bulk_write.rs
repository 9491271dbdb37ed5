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
//! then `sync`, which writes the buffer through redb, durably). Prints
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
    let view = View::open_with(
        &dir.join("bulk-view.redb"),
        ViewOptions {
            sync_interval: Duration::from_secs(3600),
            write_buffer_bytes: 1 << 30,
            cache_bytes: 256 << 20,
            row_cache_bytes: 0,
        },
    )
    .expect("view");
    for round in 0..ROUNDS {
        let writes: Writes = rows
            .iter()
            .map(|(key, value)| (key.clone(), Some(value.clone())))
            .collect();
        view.commit(0, round as u64 + 1, &writes, false)
            .expect("commit");
        // The buffer is written by the sync: what a replay's final write costs.
        let started = Instant::now();
        view.sync().expect("sync");
        report("view", round, started.elapsed(), None);
    }
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
}
