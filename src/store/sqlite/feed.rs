//! Where the live feed stands (SPEC §6): every batch of a run that moves the live key notes on its
//! `sync_run` row, in the batch's own transaction, whether it caught up, the newest change it
//! stored, how far behind the feed it ended and how many runs in a row have ended behind. `status`
//! shows the latest such row and the next run counts on from it.

use rusqlite::OptionalExtension;
use serde::Serialize;

use super::{InStore, Store};
use crate::error::Error;

/// The feed as a live batch left it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FeedState {
    /// When that batch was committed (the store's form); `None` until it is.
    pub checked_at: Option<String>,
    pub caught_up: bool,
    /// The newest `lastUpdated` the batch stored (the store's form).
    pub newest_change_at: Option<String>,
    /// The batch's end minus `newest_change_at` when it did not catch up; 0 when it did; `None`
    /// when behind without a single dated ticket.
    pub feed_lag_seconds: Option<f64>,
    /// Consecutive runs that ended behind, this one included.
    pub runs_behind: u64,
}

impl Store {
    /// The feed as the latest live batch left it; `None` before the first one.
    pub fn feed_state(&self) -> Result<Option<FeedState>, Error> {
        self.conn
            .query_row(
                "SELECT finished_at, caught_up, newest_change_at, feed_lag_seconds, runs_behind
                 FROM sync_run WHERE caught_up IS NOT NULL ORDER BY id DESC LIMIT 1",
                [],
                |row| {
                    Ok(FeedState {
                        checked_at: row.get(0)?,
                        caught_up: row.get(1)?,
                        newest_change_at: row.get(2)?,
                        feed_lag_seconds: row.get(3)?,
                        runs_behind: row.get::<_, Option<u64>>(4)?.unwrap_or(0),
                    })
                },
            )
            .optional()
            .in_store(&self.path)
    }
}
