//! The S-360 store: tickets, contacts, distribution history, the pagination key, the skip list
//! and the run log (SPEC §4.3).
//!
//! [`Store`] is one enum over the backends (an SQLite file, a PostgreSQL schema); what every
//! backend does is the [`Backend`] trait, so the engine and the commands never know which one
//! they write. Everything a batch reads and writes goes through its [`Batch`]: one transaction,
//! committed by [`Batch::finish`] with the run counters and the next key, or rolled back when
//! dropped. That is what makes a crash at any point leave the store as it was.

pub mod postgres;
mod sqlite;

use std::collections::{HashMap, HashSet};
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::time::Instant;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::Error;
use crate::feedback::Ticket;
use crate::feedback::TicketRecord;
use crate::feedback::contacts::{ContactBook, ContactWriter};
use crate::report::Counters;

use postgres::PgStore;
use sqlite::SqliteStore;
pub(crate) use sqlite::check_path;

/// An open store.
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl Store {
    /// Opens the SQLite store for writing, creating it (mode 0600, schema included) when missing
    /// and migrating it forward. A store newer than this binary is refused. No wait for another
    /// program's lock outlasts `deadline`. (`engine::open_locked` chooses the backend.)
    pub fn open(path: &Path, deadline: Option<Instant>) -> Result<Store, Error> {
        SqliteStore::open(path, deadline).map(Store::Sqlite)
    }

    /// Opens an existing SQLite store for reading only (`status`, `cursor show`, `skip list`): a
    /// missing store is an error and nothing is created.
    pub fn open_read_only(path: &Path) -> Result<Store, Error> {
        SqliteStore::open_read_only(path).map(Store::Sqlite)
    }

    /// Opens the SQLite store for a dry run: read as a run would read it, and never written.
    pub(crate) fn open_dry_run(path: &Path, deadline: Option<Instant>) -> Result<Store, Error> {
        SqliteStore::open_dry_run(path, deadline).map(Store::Sqlite)
    }
}

impl Deref for Store {
    type Target = dyn Backend;

    fn deref(&self) -> &(dyn Backend + 'static) {
        match self {
            Store::Sqlite(store) => store,
            Store::Postgres(store) => store,
        }
    }
}

impl DerefMut for Store {
    fn deref_mut(&mut self) -> &mut (dyn Backend + 'static) {
        match self {
            Store::Sqlite(store) => store,
            Store::Postgres(store) => store,
        }
    }
}

/// What every backend does: the reads and changes of the commands, and the batches of the sync.
pub trait Backend {
    /// The stored pagination key; `None` (or empty) is the start of the feed.
    fn pagination_key(&self) -> Result<Option<String>, Error>;
    /// The persisted skip list.
    fn skip_list(&self) -> Result<HashSet<String>, Error>;
    /// Tells the store's server that this session is alive, while the run waits for TIXNGO:
    /// PostgreSQL ends a session idle for a minute, and with it the run's lock, so that a holder
    /// frozen with its process loses the lock; a waiting run is not frozen. Nothing for SQLite.
    fn keep_alive(&mut self) -> Result<(), Error>;
    /// Starts the transaction of one batch and its `sync_run` row.
    fn begin_batch(
        &mut self,
        command: &str,
        key_before: Option<&str>,
    ) -> Result<Box<dyn Batch + '_>, Error>;
    /// Records a run that committed no batch (a failure after the rollback), in its own
    /// transaction.
    fn record_run(&mut self, run: &RunRecord<'_>) -> Result<(), Error>;
    /// The feed as the latest live batch left it; `None` before the first one.
    fn feed_state(&self) -> Result<Option<FeedState>, Error>;
    /// The figures of `status`: the latest `runs` runs and the first `error_tickets` tickets with
    /// an unresolved error, read in one read transaction so that they agree.
    fn status(&mut self, runs: usize, error_tickets: usize) -> Result<StatusFigures, Error>;
    /// The stored key and when it was saved.
    fn pagination_state(&self) -> Result<(Option<String>, Option<String>), Error>;
    /// Moves the live key (`None`: the start of the feed) and records the change in `sync_run`
    /// under `command`, in one transaction. Returns the key it replaced.
    fn set_pagination_key(
        &mut self,
        command: &str,
        key: Option<&str>,
    ) -> Result<Option<String>, Error>;
    /// The skip list, by ticket number.
    fn skip_entries(&self) -> Result<Vec<SkipEntry>, Error>;
    /// Adds ticket numbers to the skip list (a listed one keeps its entry). Returns how many
    /// were new.
    fn add_skips(&mut self, numbers: &[String], reason: Option<&str>) -> Result<usize, Error>;
    /// Removes ticket numbers from the skip list. Returns how many were listed.
    fn remove_skips(&mut self, numbers: &[String]) -> Result<usize, Error>;
    /// The ids and raw payloads of the unresolved sync errors, oldest first (`replay --errors`).
    fn unresolved_payloads(&self) -> Result<Vec<(i64, String)>, Error>;
    /// The unresolved sync errors, oldest first (`errors list`).
    fn unresolved_errors(&self) -> Result<Vec<SyncErrorEntry>, Error>;
    /// One sync error, resolved or not; `None` when there is no such id (`errors show`).
    fn sync_error(&self, id: i64) -> Result<Option<SyncErrorDetail>, Error>;
    /// Marks unresolved sync errors resolved with the operator's reason, all or none: an id
    /// that does not exist or is already resolved is a usage error naming it, and nothing
    /// changes (`errors dismiss`).
    fn dismiss_errors(&mut self, ids: &[i64], reason: &str) -> Result<(), Error>;
}

/// The transaction of one batch: what the batch engine reads and writes. Dropping it without
/// [`Batch::finish`] rolls everything back.
pub trait Batch: ContactBook + ContactWriter {
    /// The batch's time, in the store's form, for every `*_at` it writes.
    fn now(&self) -> &str;
    /// Reads ahead what the rules will ask about these tickets (their stored rows, the contacts
    /// of their e-mails, their pending lines), for a backend where a read is a round trip to a
    /// server. The reads that follow may still ask about any ticket.
    fn preload(&mut self, tickets: &[&Ticket]) -> Result<(), Error>;
    /// Ticket numbers with an unresolved `sync_error`, read once per batch.
    fn unresolved_error_tickets(&mut self) -> Result<HashSet<String>, Error>;
    /// The stored row of a ticket, and where it is for [`Batch::write_ticket`].
    fn ticket(&mut self, ticket_number: &str) -> Result<Option<(StoredRow, TicketRecord)>, Error>;
    /// Writes a ticket row: inserted when `stored` is `None` (the ticket was not in the store
    /// when read in this batch), else updated in place, the columns set once kept.
    fn write_ticket(
        &mut self,
        record: &TicketRecord,
        stored: Option<StoredRow>,
    ) -> Result<(), Error>;
    /// Appends the ticket's current state to `ticket_history`.
    fn append_history(&mut self, record: &TicketRecord) -> Result<(), Error>;
    /// Marks the ticket's unresolved errors resolved.
    fn resolve_errors(&mut self, ticket_number: &str) -> Result<(), Error>;
    /// Marks one `sync_error` row resolved: `replay --errors` settled its payload, whatever
    /// ticket number (or none) the row was recorded under.
    fn resolve_error(&mut self, id: i64) -> Result<(), Error>;
    /// Records that the payload of one `sync_error` row failed again (`replay --errors`): the
    /// row is refreshed, its payload kept as the operator left it, and no other row is added.
    fn refresh_error(&mut self, id: i64, reason: &str) -> Result<(), Error>;
    /// Records a ticket that cannot be mapped, with its raw JSON. A ticket keeps one unresolved
    /// error row, which the latest failure refreshes; a ticket without a readable number is
    /// matched on its payload instead, so a page fetched again adds no duplicate.
    fn record_error(&mut self, failed: &FailedTicket<'_>) -> Result<(), Error>;
    /// Names, in the batch's `sync_run` row, the ticket fields the mapping did not read.
    fn record_unknown_fields(&mut self, names: &[String]) -> Result<(), Error>;
    /// Commits the batch: its counters and exit code in `sync_run`, the keys of `keys` (the next
    /// key saved when `keys.save` holds), all with the batch's data in one transaction.
    fn finish(
        self: Box<Self>,
        counters: &Counters,
        keys: &KeyCommit,
        exit_code: u8,
    ) -> Result<(), Error>;
}

/// Refuses (64) a dismissal naming a sync error that does not exist or is already resolved, the
/// first such id named: `errors dismiss` is all or none. `resolved_at` holds each existing id's
/// resolution time (`None`: unresolved); an id named twice is resolved by its first mention.
fn check_dismissal(
    ids: &[i64],
    mut resolved_at: HashMap<i64, Option<String>>,
    now: &str,
) -> Result<(), Error> {
    for &id in ids {
        match resolved_at.insert(id, Some(now.to_owned())) {
            None => {
                return Err(Error::Usage(format!(
                    "there is no sync error {id} (see `errors list`); nothing was dismissed"
                )));
            }
            Some(Some(at)) => {
                return Err(Error::Usage(format!(
                    "sync error {id} was already resolved at {at}; nothing was dismissed"
                )));
            }
            Some(None) => {}
        }
    }
    Ok(())
}

/// A ticket that cannot be mapped, as `sync_error` records it.
#[derive(Clone, Copy, Debug)]
pub struct FailedTicket<'a> {
    /// `None`: the ticket has no readable number.
    pub number: Option<&'a str>,
    pub reason: &'a str,
    /// The ticket's raw JSON, as TIXNGO sent it.
    pub payload: &'a str,
}

/// The pagination key around one batch, as its transaction records it: the key it was fetched
/// with, the key the next batch starts from, whether the commit saves that one as the store's
/// key, and (for a live sync) where the batch leaves the feed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KeyCommit {
    /// `sync_run.key_before`.
    pub before: Option<String>,
    /// `sync_run.key_after`, and the store's key when `save` holds.
    pub after: Option<String>,
    pub save: bool,
    /// Where a live batch leaves the feed, noted on its `sync_run` row in the same transaction.
    pub feed: Option<FeedState>,
}

impl KeyCommit {
    /// A replay's: it neither reads nor moves the stored key.
    pub const UNTOUCHED: KeyCommit = KeyCommit {
        before: None,
        after: None,
        save: false,
        feed: None,
    };
}

/// Where a ticket's stored row is, and the cultural contact it held when read: what
/// [`Batch::write_ticket`] needs to update the row in place.
#[derive(Clone, Copy, Debug)]
pub struct StoredRow {
    /// The row's id in its table (SQLite's `rowid`).
    pub(in crate::store) id: i64,
    pub(in crate::store) cultural_contact_id: Option<i64>,
}

/// A run's line in `sync_run`, for runs that ended without committing a batch.
#[derive(Debug)]
pub struct RunRecord<'a> {
    pub command: &'a str,
    pub started_at: &'a str,
    pub key_before: Option<&'a str>,
    pub key_after: Option<&'a str>,
    pub counters: &'a Counters,
    pub exit_code: u8,
    pub error: Option<&'a str>,
}

/// The feed as a live batch left it (SPEC §6): every batch of a run that moves the live key
/// notes on its `sync_run` row, in the batch's own transaction, whether it caught up, the newest
/// change it stored, how far behind the feed it ended and how many runs in a row have ended
/// behind. `status` shows the latest such row and the next run counts on from it.
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

/// A line of the skip list.
#[derive(Clone, Debug, Serialize)]
pub struct SkipEntry {
    pub ticket_number: String,
    pub reason: Option<String>,
    pub added_at: String,
}

/// An unresolved sync error as `errors list` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct SyncErrorEntry {
    pub id: i64,
    /// `None`: the ticket had no readable number.
    pub ticket_number: Option<String>,
    pub reason: String,
    pub first_seen_at: Option<String>,
}

/// One sync error whole, as `errors show` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct SyncErrorDetail {
    #[serde(flatten)]
    pub entry: SyncErrorEntry,
    /// The ticket's raw JSON, as TIXNGO sent it.
    pub payload: String,
    pub resolved_at: Option<String>,
    /// The operator's reason, for an error dismissed by hand.
    pub resolution: Option<String>,
}

/// What `status` shows, read in one read transaction so the figures agree with each other.
#[derive(Clone, Debug, Serialize)]
pub struct StatusFigures {
    pub pagination_key: Option<String>,
    pub pagination_key_saved_at: Option<String>,
    /// The latest `sync_run` rows, newest first, as objects.
    pub runs: Vec<Map<String, Value>>,
    pub skip_count: u64,
    pub unresolved_errors: u64,
    /// The first ticket numbers with an unresolved error.
    pub unresolved_error_tickets: Vec<String>,
    pub tickets: u64,
    pub contacts: u64,
}
