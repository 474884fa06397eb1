//! The store's own floor: how many ticket changes per second the store takes when nothing else
//! runs (no HTTP, no JSON, no mapping, no contact rules), only what every change must do in it:
//! read the stored row, write it back, append its history row, one transaction per batch of 1 000
//! with the store's own pragmas (WAL, `synchronous=FULL`, foreign keys on). `bench/bench.py` runs
//! it on the store its backfill made, replaying the backfill's changes in feed order, so that the
//! backfill figure can be read against what the store alone allows on the same machine.
//!
//! ```text
//! cargo run --release --example store-floor -- BACKFILLED.db
//! ```

use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;

use rusqlite::{Connection, OpenFlags};
use tixngo_feedback::report::Counters;
use tixngo_feedback::store::{KeyCommit, Store};

const BATCH: usize = 1000;

fn main() -> Result<(), Box<dyn Error>> {
    let source = PathBuf::from(std::env::args().nth(1).ok_or("usage: store-floor STORE")?);
    // The changes of the backfill, in the order they came: one history row each.
    let changes: Vec<String> =
        Connection::open_with_flags(&source, OpenFlags::SQLITE_OPEN_READ_ONLY)?
            .prepare("SELECT ticket_number FROM ticket_history ORDER BY id")?
            .query_map([], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
    // A copy of the store: every ticket already has its row.
    let dir = tempfile::tempdir()?;
    let copy = dir.path().join("floor.db");
    std::fs::copy(&source, &copy)?;
    let mut store = Store::open(&copy, None)?;
    let started = Instant::now();
    for chunk in changes.chunks(BATCH) {
        let mut batch = store.begin_batch("floor", None)?;
        for number in chunk {
            let (row, mut record) = batch
                .ticket(number)?
                .ok_or("a change of an unknown ticket")?;
            batch.now().clone_into(&mut record.last_synced_at);
            batch.write_ticket(&record, Some(row))?;
            batch.append_history(&record)?;
        }
        batch.finish(&Counters::default(), &KeyCommit::UNTOUCHED, 0)?;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{} changes in {seconds:.2} s = {:.0} changes/s",
        changes.len(),
        changes.len() as f64 / seconds
    );
    Ok(())
}
