//! The batch engine: one page of tickets mapped and committed in one transaction (SPEC §4.4–4.6),
//! for `sync` and `replay` alike, and what every writing command shares around it: the lock, the
//! store, the `sync_run` row of a failed run.

use std::borrow::Cow;
use std::collections::HashSet;
use std::ops::{Deref, DerefMut};
use std::time::Instant;

use serde_json::value::RawValue;

use crate::error::Error;
use crate::exit::ExitCode;
use crate::feedback::contacts::ContactPlan;
use crate::feedback::contacts::LineWritten;
use crate::feedback::sentinel::{BatchSentinel, RunNotes};
use crate::feedback::{Merge, Ticket, TicketRecord, is_stale, merge};
use crate::lock::RunLock;
use crate::report::{Counters, Summary, count, quoted};
use crate::settings::{MappingPolicy, StoreFiles, StoreLocation};
use crate::store::postgres::PgStore;
use crate::store::{Batch, FailedTicket, KeyCommit, RunRecord, Store};
use crate::tixngo::wire::{self, PageTicket};

mod contacts;

pub use contacts::{NewContacts, create_contacts, write_lines};

/// Completes a summary with the run's outcome.
pub fn finish(mut summary: Summary, result: Result<ExitCode, Error>, started: Instant) -> Summary {
    let code = match result {
        Ok(code) => code,
        Err(error) => {
            summary.error = Some(error.to_string());
            error.exit_code()
        }
    };
    summary.exit_code = code.code();
    summary.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    summary
}

/// A store opened by a command that writes, with what makes that command its only writer: the
/// lock file beside an SQLite store (a PostgreSQL store's advisory lock lives in its session).
pub(crate) struct LockedStore {
    store: Store,
    /// Declared after the store, so dropped after it: the lock outlives every write.
    _lock: Option<RunLock>,
}

impl Deref for LockedStore {
    type Target = Store;

    fn deref(&self) -> &Store {
        &self.store
    }
}

impl DerefMut for LockedStore {
    fn deref_mut(&mut self) -> &mut Store {
        &mut self.store
    }
}

/// Takes the store's lock and opens it for a command that writes, or (a dry run) to be read as a
/// run would read it and never written. No wait for another program's lock on the store outlasts
/// `deadline`.
pub(crate) fn open_locked(
    location: &StoreLocation,
    dry_run: bool,
    deadline: Option<Instant>,
) -> Result<LockedStore, Error> {
    let (store, lock) = match location {
        StoreLocation::Sqlite(files) => {
            let lock = lock_file(files, dry_run)?;
            let store = if dry_run {
                Store::open_dry_run(&files.store, deadline)
            } else {
                Store::open(&files.store, deadline)
            }?;
            (store, Some(lock))
        }
        StoreLocation::Postgres(target) => {
            let store = PgStore::open(target, deadline, dry_run)?;
            (Store::Postgres(store), None)
        }
    };
    log::info!(
        "store {} opened{}",
        location.describe(),
        if dry_run {
            " (dry run: nothing is written)"
        } else {
            ""
        }
    );
    Ok(LockedStore { store, _lock: lock })
}

/// Opens an existing store for reading only (`status`, `cursor show`, `skip list`, `errors
/// list|show`): no lock, and a missing store is an error, nothing created.
pub fn open_read_only(location: &StoreLocation) -> Result<Store, Error> {
    match location {
        StoreLocation::Sqlite(files) => Store::open_read_only(&files.store),
        StoreLocation::Postgres(target) => {
            PgStore::open_read_only(target, None).map(Store::Postgres)
        }
    }
}

/// Takes the run lock of an SQLite store, once the store's path is known to be usable: a run
/// refused for its store path must not leave a `<store>.lock` behind (and removing a lock file is
/// never safe: another run may have it open).
fn lock_file(files: &StoreFiles, read_only: bool) -> Result<RunLock, Error> {
    crate::store::check_path(&files.store, read_only)?;
    let lock = RunLock::acquire(&files.lock)?;
    log::info!("lock {} taken", files.lock.display());
    Ok(lock)
}

/// A ticket for [`apply_page`].
pub struct Incoming<'p> {
    pub ticket: PageTicket<'p>,
    /// `replay --errors`: the `sync_error` row whose payload this ticket is. A settled ticket
    /// resolves that row and a failed one refreshes it, even when the row has no ticket number or
    /// the operator's fix changed it.
    pub error_id: Option<i64>,
}

impl<'p> From<PageTicket<'p>> for Incoming<'p> {
    fn from(ticket: PageTicket<'p>) -> Incoming<'p> {
        Incoming {
            ticket,
            error_id: None,
        }
    }
}

/// Maps every ticket of a page and commits them, with the run counters and (when `keys.save`)
/// the next key, in one transaction. The tickets may still be arriving (a replay file is read
/// while its first tickets are mapped): an `Err` among them fails the batch like any other error.
/// Nothing is written when it fails. What the batch finds worth saying goes to the run's `notes`.
pub fn apply_page<'p>(
    store: &mut Store,
    command: &str,
    tickets: impl IntoIterator<Item = Result<Incoming<'p>, Error>>,
    keys: &KeyCommit,
    mapping: &MappingPolicy,
    notes: &mut RunNotes,
) -> Result<Counters, Error> {
    let mut page = PageState::begin(store, command, keys.before.as_deref(), mapping, notes)?;
    let mut tickets = tickets.into_iter();
    // A page in memory is read ahead whole (a fixed number of round trips whatever its size); a
    // stream of unknown length (a replay file) in pieces of bounded memory.
    let read_ahead = tickets.size_hint().1.unwrap_or(PRELOAD_TICKETS).max(1);
    loop {
        let chunk = tickets
            .by_ref()
            .take(read_ahead)
            .collect::<Result<Vec<_>, _>>()?;
        if chunk.is_empty() {
            return page.finish(keys);
        }
        page.preload(&chunk)?;
        for incoming in chunk {
            page.take(incoming)?;
        }
    }
}

/// Tickets of a stream of unknown length (a replay file) whose reads a batch makes ahead at a
/// time ([`Batch::preload`]).
const PRELOAD_TICKETS: usize = 1000;

/// The exit code of tickets mapped: 2 when any of them failed (SPEC §3).
pub fn exit_code(counters: &Counters) -> ExitCode {
    if counters.failed > 0 {
        ExitCode::Partial
    } else {
        ExitCode::Success
    }
}

/// What `--stop-on-error` and `--max-failed-ratio` make of a batch with tickets that cannot be
/// mapped (SPEC §4.6): the batch is committed with them recorded as sync errors, or rejected whole.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FailurePolicy {
    pub stop_on_error: bool,
    pub max_failed_ratio: f64,
}

impl FailurePolicy {
    /// `Err(BatchRejected)` (65) when the batch must not be committed: any failure under
    /// `--stop-on-error`, else a share of failed tickets over the ratio. `first_failure` says what
    /// the first failed ticket was, `None` when none failed.
    pub(crate) fn judge(
        self,
        counters: &Counters,
        first_failure: Option<&str>,
    ) -> Result<(), Error> {
        let Some(first) = first_failure else {
            return Ok(());
        };
        let ratio = counters.failed as f64 / counters.fetched as f64;
        if self.stop_on_error {
            return Err(Error::BatchRejected(format!(
                "{first} (--stop-on-error; {} of {} cannot be mapped)",
                counters.failed,
                count(counters.fetched, "ticket")
            )));
        }
        if ratio > self.max_failed_ratio {
            return Err(Error::BatchRejected(format!(
                "{} of {} ({:.1}%) cannot be mapped, over --max-failed-ratio {}; first: {first}",
                counters.failed,
                count(counters.fetched, "ticket"),
                ratio * 100.0,
                self.max_failed_ratio
            )));
        }
        Ok(())
    }
}

/// One batch in progress: its transaction and what its tickets came to so far. Each ticket is
/// skipped, settled (stale, stored or unchanged) or failed; the batch then finishes: rejected
/// by the failure policy, or committed.
struct PageState<'s, 'm> {
    batch: Box<dyn Batch + 's>,
    mapping: &'m MappingPolicy,
    notes: &'m mut RunNotes,
    counters: Counters,
    /// The tickets with an unresolved `sync_error`: one that settles resolves it.
    unresolved: HashSet<String>,
    first_failure: Option<String>,
    sentinel: BatchSentinel,
}

impl<'s, 'm> PageState<'s, 'm> {
    fn begin(
        store: &'s mut Store,
        command: &str,
        key_before: Option<&str>,
        mapping: &'m MappingPolicy,
        notes: &'m mut RunNotes,
    ) -> Result<PageState<'s, 'm>, Error> {
        let mut batch = store.begin_batch(command, key_before)?;
        Ok(PageState {
            unresolved: batch.unresolved_error_tickets()?,
            batch,
            mapping,
            notes,
            counters: Counters::default(),
            first_failure: None,
            sentinel: BatchSentinel::default(),
        })
    }

    /// Reads ahead what the rules will ask about these tickets.
    fn preload(&mut self, chunk: &[Incoming<'_>]) -> Result<(), Error> {
        let tickets: Vec<&Ticket> = chunk
            .iter()
            .filter_map(|incoming| match &incoming.ticket {
                PageTicket::Decoded(ticket) => Some(ticket),
                PageTicket::Unmappable { .. } => None,
            })
            .collect();
        self.batch.preload(&tickets)
    }

    fn take(&mut self, Incoming { ticket, error_id }: Incoming<'_>) -> Result<(), Error> {
        self.counters.fetched += 1;
        // The skip list is checked on the raw `taxNumber` before any other validation; a ticket
        // that decodes has that very number.
        match &ticket {
            PageTicket::Decoded(ticket) => {
                let number = Some(Cow::Borrowed(ticket.ticket_number.as_str()));
                if self.mapping.skip.contains(&ticket.ticket_number) {
                    return self.settle(number, Outcome::Skipped, error_id);
                }
                self.sentinel.observe(ticket);
                let outcome = apply_ticket(
                    &mut *self.batch,
                    ticket,
                    self.mapping,
                    self.notes,
                    &mut self.counters,
                )?;
                self.settle(number, outcome, error_id)
            }
            PageTicket::Unmappable { raw, reason } => {
                let number = wire::raw_ticket_number(raw).map(Cow::Owned);
                match number.as_deref() {
                    Some(n) if self.mapping.skip.contains(n) => {
                        self.settle(number, Outcome::Skipped, error_id)
                    }
                    _ => self.fail(number, raw, reason, error_id),
                }
            }
        }
    }

    /// Counts a ticket that is done with, and resolves the errors it had.
    fn settle(
        &mut self,
        number: Option<Cow<'_, str>>,
        outcome: Outcome,
        error_id: Option<i64>,
    ) -> Result<(), Error> {
        if let Some(number) = &number {
            log::debug!("ticket {number}: {}", outcome.name());
        }
        let counter = match outcome {
            Outcome::Skipped => &mut self.counters.skipped,
            Outcome::Stale => &mut self.counters.stale,
            Outcome::Stored => &mut self.counters.stored,
            Outcome::Unchanged => &mut self.counters.unchanged,
        };
        *counter += 1;
        if let Some(number) = number.filter(|n| self.unresolved.remove(n.as_ref())) {
            self.batch.resolve_errors(&number)?;
        }
        if let Some(id) = error_id {
            self.batch.resolve_error(id)?;
        }
        Ok(())
    }

    /// Counts a ticket that cannot be mapped and records it as a sync error.
    fn fail(
        &mut self,
        number: Option<Cow<'_, str>>,
        raw: &RawValue,
        reason: &str,
        error_id: Option<i64>,
    ) -> Result<(), Error> {
        self.counters.failed += 1;
        match error_id {
            Some(id) => self.batch.refresh_error(id, reason)?,
            None => fail_ticket(&mut *self.batch, raw, number.as_deref(), reason)?,
        }
        self.first_failure
            .get_or_insert_with(|| describe_failure(number.as_deref(), reason));
        self.unresolved.extend(number.map(Cow::into_owned));
        Ok(())
    }

    /// Rejects the batch or commits it with its counters and keys, then tells the run's notes.
    fn finish(self, keys: &KeyCommit) -> Result<Counters, Error> {
        let PageState {
            mut batch,
            mapping,
            notes,
            counters,
            first_failure,
            sentinel,
            ..
        } = self;
        let policy = FailurePolicy {
            stop_on_error: mapping.stop_on_error,
            max_failed_ratio: mapping.max_failed_ratio,
        };
        policy.judge(&counters, first_failure.as_deref())?;
        if !sentinel.unknown_fields().is_empty() {
            batch.record_unknown_fields(sentinel.unknown_fields())?;
        }
        let exit = exit_code(&counters);
        batch.finish(&counters, keys, exit.code())?;
        log_commit(&counters, keys, mapping.dry_run);
        notes.mapped(counters.fetched, counters.failed, first_failure);
        notes.add_batch(sentinel);
        Ok(counters)
    }
}

fn log_commit(counters: &Counters, keys: &KeyCommit, dry_run: bool) {
    log::info!(
        "batch {}: {} stored, {} unchanged, {} skipped, {} stale, {} failed{}",
        if dry_run {
            "kept in memory (dry run)"
        } else {
            "committed"
        },
        counters.stored,
        counters.unchanged,
        counters.skipped,
        counters.stale,
        counters.failed,
        if keys.save {
            format!("; key {} saved", quoted(keys.after.as_deref()))
        } else {
            String::new()
        }
    );
}

/// What became of one ticket that did not fail.
enum Outcome {
    Skipped,
    Stale,
    Stored,
    Unchanged,
}

impl Outcome {
    /// The decision as `-vv` logs it.
    fn name(&self) -> &'static str {
        match self {
            Outcome::Skipped => "skipped (on the skip list)",
            Outcome::Stale => "stale (older than the stored state), left alone",
            Outcome::Stored => "stored",
            Outcome::Unchanged => "unchanged",
        }
    }
}

fn describe_failure(number: Option<&str>, reason: &str) -> String {
    match number {
        Some(number) if crate::ticket_number::is_valid(number) => {
            format!("ticket {number} cannot be mapped: {reason}")
        }
        _ => format!("a ticket without a readable number cannot be mapped: {reason}"),
    }
}

fn fail_ticket(
    batch: &mut dyn Batch,
    raw: &RawValue,
    number: Option<&str>,
    reason: &str,
) -> Result<(), Error> {
    log::debug!("{}", describe_failure(number, reason));
    batch.record_error(&FailedTicket {
        number,
        reason,
        payload: raw.get(),
    })
}

/// Stores one decoded ticket: the row, its history and its contacts (SPEC §4.4 steps 3–6).
fn apply_ticket(
    batch: &mut dyn Batch,
    ticket: &Ticket,
    mapping: &MappingPolicy,
    notes: &mut RunNotes,
    counters: &mut Counters,
) -> Result<Outcome, Error> {
    let (row, stored) = batch.ticket(&ticket.ticket_number)?.unzip();
    if is_stale(stored.as_ref(), ticket) {
        return Ok(Outcome::Stale);
    }
    // The contact rules read the row as it was before this ticket; the merge then takes it.
    let plan = if mapping.contacts {
        Some(plan_contacts(batch, stored.as_ref(), ticket, notes)?)
    } else {
        None
    };
    let (mut record, changed, history) = match merge(stored, ticket, batch.now()) {
        Merge::Stale => return Ok(Outcome::Stale),
        Merge::Apply {
            record,
            changed,
            history,
        } => (record, changed, history),
    };
    let created = match &plan {
        Some(plan) => create_contacts(batch, plan, ticket, &mut record, counters)?,
        None => NewContacts::default(),
    };
    batch.write_ticket(&record, row)?;
    if history {
        batch.append_history(&record)?;
    }
    if let Some(plan) = &plan {
        let changed_at = ticket.last_updated.map(|at| at.store_text());
        // The batch's time is copied (seldom: a ticket without `lastUpdated`) so that the
        // writer may borrow the batch.
        let date_time = changed_at.as_ref().map_or_else(
            || Cow::Owned(batch.now().to_owned()),
            |at| Cow::Borrowed(at.as_str()),
        );
        let written = LineWritten {
            operator_login: &mapping.operator_login,
            ticket_state: record.s360_state.as_deref(),
            date_time: &date_time,
        };
        write_lines(batch, plan, &record, created, counters, &written)?;
    }
    Ok(if changed {
        Outcome::Stored
    } else {
        Outcome::Unchanged
    })
}

/// The contact rules' plan for a ticket, its warning told to the run's notes.
fn plan_contacts(
    batch: &mut dyn Batch,
    stored: Option<&TicketRecord>,
    ticket: &Ticket,
    notes: &mut RunNotes,
) -> Result<ContactPlan, Error> {
    let plan = crate::feedback::contacts::plan(stored, ticket, batch)?;
    if let Some(warning) = plan.warning {
        notes.warn(warning, &ticket.ticket_number);
    }
    if stored.is_none() && plan.cultural_contact.is_none() {
        log::debug!(
            "ticket {}: no owner e-mail yet: no cultural contact",
            ticket.ticket_number
        );
    }
    Ok(plan)
}

/// Records a failed run in `sync_run` after its rollback. A store that cannot take even that is
/// already failing the run; the original error is the one reported.
pub(crate) fn record_failure(
    store: &mut Store,
    command: &str,
    started_at: &str,
    key: Option<&str>,
    error: &Error,
) {
    let message = error.to_string();
    let record = RunRecord {
        command,
        started_at,
        key_before: key,
        key_after: key,
        counters: &Counters::default(),
        exit_code: error.exit_code().code(),
        error: Some(&message),
    };
    match store.record_run(&record) {
        // The error line already says another program is writing the store.
        Err(e @ Error::StoreBusy { .. }) => {
            log::debug!("the failed run could not be recorded in sync_run: {e}")
        }
        Err(e) => log::warn!("the failed run could not be recorded in sync_run: {e}"),
        Ok(()) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapped(fetched: u64, failed: u64) -> Counters {
        Counters {
            fetched,
            failed,
            stored: fetched - failed,
            ..Counters::default()
        }
    }

    const FIRST: &str = "ticket T-1 cannot be mapped: no status";

    fn rejection(policy: FailurePolicy, counters: &Counters) -> Option<String> {
        match policy.judge(counters, (counters.failed > 0).then_some(FIRST)) {
            Ok(()) => None,
            Err(error) => {
                assert_eq!(error.exit_code(), ExitCode::DataErr, "{error}");
                Some(error.to_string())
            }
        }
    }

    #[test]
    fn a_batch_without_failures_is_committed_whatever_the_policy() {
        let strictest = FailurePolicy {
            stop_on_error: true,
            max_failed_ratio: 0.0,
        };
        assert_eq!(rejection(strictest, &mapped(10, 0)), None);
        assert_eq!(rejection(strictest, &mapped(0, 0)), None);
    }

    #[test]
    fn stop_on_error_rejects_a_batch_with_one_failure_naming_the_first() {
        let policy = FailurePolicy {
            stop_on_error: true,
            max_failed_ratio: 1.0,
        };
        let message = rejection(policy, &mapped(10, 1)).unwrap();
        assert!(message.contains(FIRST), "{message}");
        assert!(
            message.contains("(--stop-on-error; 1 of 10 tickets cannot be mapped)"),
            "{message}"
        );
    }

    #[test]
    fn the_failed_ratio_rejects_only_above_it() {
        let policy = FailurePolicy {
            stop_on_error: false,
            max_failed_ratio: 0.2,
        };
        assert_eq!(rejection(policy, &mapped(10, 1)), None);
        assert_eq!(rejection(policy, &mapped(10, 2)), None, "at the ratio");
        let message = rejection(policy, &mapped(10, 3)).unwrap();
        assert!(
            message.contains(
                "3 of 10 tickets (30.0%) cannot be mapped, over --max-failed-ratio 0.2; first: "
            ),
            "{message}"
        );
        assert!(message.contains(&format!("; first: {FIRST}")), "{message}");
        let all = FailurePolicy {
            stop_on_error: false,
            max_failed_ratio: 1.0,
        };
        assert_eq!(rejection(all, &mapped(3, 3)), None, "every ticket may fail");
    }

    #[test]
    fn a_failure_names_its_ticket_only_by_a_number_of_the_grammar() {
        assert_eq!(
            describe_failure(Some("T-1"), "no status"),
            "ticket T-1 cannot be mapped: no status"
        );
        // What stands in `taxNumber` of a ticket that does not map may be anything, personal
        // data or control characters included: never echoed.
        for unreadable in [None, Some(""), Some("ana@example.org"), Some("T-1\nforged")] {
            assert_eq!(
                describe_failure(unreadable, "no status"),
                "a ticket without a readable number cannot be mapped: no status"
            );
        }
    }

    #[test]
    fn tickets_that_failed_make_the_exit_code_partial() {
        assert_eq!(exit_code(&mapped(10, 0)), ExitCode::Success);
        assert_eq!(exit_code(&mapped(10, 1)), ExitCode::Partial);
    }
}
