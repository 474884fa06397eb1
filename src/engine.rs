//! The batch engine: one page of tickets mapped and committed in one transaction (SPEC §4.4–4.6),
//! for `sync` and `replay` alike, and what every writing command shares around it: the lock, the
//! store, the `sync_run` row of a failed run.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::value::RawValue;

use crate::cli::{GlobalArgs, MappingArgs};
use crate::error::Error;
use crate::exit::ExitCode;
use crate::feedback::contacts::{self, ContactPlan, ContactRef};
use crate::feedback::sentinel::{BatchSentinel, RunNotes};
use crate::feedback::{Merge, TicketRecord, is_stale, merge};
use crate::lock::{self, RunLock};
use crate::report::{Counters, Summary, count, quoted};
use crate::store::{Batch, LineWritten, RunRecord, Store};
use crate::tixngo::wire::{self, PageTicket, Spectator, Ticket};

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

/// How the tickets of a batch are mapped (SPEC §4.4–4.6).
pub struct MappingOptions {
    /// The persisted skip list and `--skip`.
    pub skip: HashSet<String>,
    pub stop_on_error: bool,
    pub max_failed_ratio: f64,
    pub contacts: bool,
    /// Write to a scratch copy of the store, never to the store itself.
    pub dry_run: bool,
    /// The technical login written on distribution lines (`--operator-login`).
    pub operator_login: String,
    /// What the run's batches found worth saying, told once at the end of the run.
    pub notes: RefCell<RunNotes>,
}

impl MappingOptions {
    /// Checks the mapping flags (usage errors only: no I/O).
    pub fn from_args(args: &MappingArgs) -> Result<MappingOptions, Error> {
        Ok(MappingOptions {
            skip: args.skip.iter().flat_map(|s| s.0.iter().cloned()).collect(),
            stop_on_error: args.stop_on_error,
            max_failed_ratio: args.max_failed_ratio,
            contacts: args.contacts_enabled()?,
            dry_run: args.dry_run,
            operator_login: args.operator_login.clone(),
            notes: RefCell::new(RunNotes::new(args.dry_run)),
        })
    }

    /// Ends the run's notes: logs their warnings once and puts their findings in the summary.
    pub fn report_notes(&self, summary: &mut Summary) {
        let notes = self.notes.take();
        notes.log();
        summary
            .unknown_statuses
            .clone_from(notes.unknown_statuses());
        summary.unknown_fields = notes.unknown_fields().to_vec();
    }
}

/// Opens the store for a run that writes, or a private scratch copy of it for a dry run. No wait
/// for another program's lock on the store outlasts `deadline`.
pub fn open_store(path: &Path, dry_run: bool, deadline: Option<Instant>) -> Result<Store, Error> {
    let store = if dry_run {
        Store::open_scratch(path)
    } else {
        Store::open_until(path, deadline)
    }?;
    log::info!(
        "store {} opened{}",
        path.display(),
        if dry_run {
            " (dry run: a scratch copy)"
        } else {
            ""
        }
    );
    Ok(store)
}

/// Takes the run lock of the store, once the store's path is known to be usable: a run refused
/// for its store path must not leave a `<store>.lock` behind (and removing a lock file is never
/// safe: another run may have it open).
pub fn lock_store(global: &GlobalArgs, read_only: bool) -> Result<RunLock, Error> {
    crate::store::check_path(&global.store, read_only)?;
    let path = lock_path(global);
    let lock = RunLock::acquire(&path)?;
    log::info!("lock {} taken", path.display());
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

/// Maps every ticket of a page and commits them, with the run counters and (when `save_key`) the
/// next key, in one transaction. The tickets may still be arriving (a replay file is read while
/// its first tickets are mapped): an `Err` among them fails the batch like any other error.
/// Nothing is written when it fails.
pub fn apply_page<'p>(
    store: &mut Store,
    command: &str,
    tickets: impl IntoIterator<Item = Result<Incoming<'p>, Error>>,
    key_before: Option<&str>,
    key_after: Option<&str>,
    save_key: bool,
    mapping: &MappingOptions,
) -> Result<Counters, Error> {
    let mut batch = store.begin_batch(command, key_before)?;
    let mut counters = Counters::default();
    let mut unresolved = batch.unresolved_error_tickets()?;
    let mut first_failure: Option<String> = None;
    let mut sentinel = BatchSentinel::default();
    for incoming in tickets {
        let Incoming { ticket, error_id } = incoming?;
        counters.fetched += 1;
        // The skip list is checked on the raw `taxNumber` before any other validation; a ticket
        // that decodes has that very number.
        let (number, outcome) = match &ticket {
            PageTicket::Mapped(ticket) => {
                let number = Some(Cow::Borrowed(ticket.ticket_number.as_str()));
                if mapping.skip.contains(&ticket.ticket_number) {
                    (number, Outcome::Skipped)
                } else {
                    sentinel.observe(ticket);
                    let outcome = apply_ticket(&mut batch, ticket, mapping, &mut counters)?;
                    (number, outcome)
                }
            }
            PageTicket::Unmappable { raw, reason } => {
                let number = wire::raw_ticket_number(raw).map(Cow::Owned);
                match number.as_deref() {
                    Some(n) if mapping.skip.contains(n) => (number, Outcome::Skipped),
                    _ => (number, Outcome::Failed { raw, reason }),
                }
            }
        };
        match outcome {
            Outcome::Failed { raw, reason } => {
                counters.failed += 1;
                match error_id {
                    Some(id) => batch.refresh_error(id, reason)?,
                    None => fail_ticket(&batch, raw, number.as_deref(), reason)?,
                }
                first_failure.get_or_insert_with(|| describe_failure(number.as_deref(), reason));
                unresolved.extend(number.map(Cow::into_owned));
            }
            settled => {
                if let Some(number) = &number {
                    log::debug!("ticket {number}: {}", settled.name());
                }
                match settled {
                    Outcome::Skipped => counters.skipped += 1,
                    Outcome::Stale => counters.stale += 1,
                    Outcome::Stored => counters.stored += 1,
                    Outcome::Unchanged => counters.unchanged += 1,
                    Outcome::Failed { .. } => unreachable!("handled above"),
                }
                if let Some(number) = number.filter(|n| unresolved.remove(n.as_ref())) {
                    batch.resolve_errors(&number)?;
                }
                if let Some(id) = error_id {
                    batch.resolve_error(id)?;
                }
            }
        }
    }
    if let Some(first) = &first_failure {
        let ratio = counters.failed as f64 / counters.fetched as f64;
        if mapping.stop_on_error {
            return Err(Error::BatchRejected(format!(
                "{first} (--stop-on-error; {} of {} cannot be mapped)",
                counters.failed,
                count(counters.fetched, "ticket")
            )));
        }
        if ratio > mapping.max_failed_ratio {
            return Err(Error::BatchRejected(format!(
                "{} of {} ({:.1}%) cannot be mapped, over --max-failed-ratio {}; first: {first}",
                counters.failed,
                count(counters.fetched, "ticket"),
                ratio * 100.0,
                mapping.max_failed_ratio
            )));
        }
    }
    let exit = if counters.failed > 0 {
        ExitCode::Partial
    } else {
        ExitCode::Success
    };
    if !sentinel.unknown_fields().is_empty() {
        batch.record_unknown_fields(sentinel.unknown_fields())?;
    }
    batch.finish(&counters, key_after, save_key, exit.code())?;
    log::info!(
        "batch {}: {} stored, {} unchanged, {} skipped, {} stale, {} failed{}",
        if mapping.dry_run {
            "written to the scratch copy"
        } else {
            "committed"
        },
        counters.stored,
        counters.unchanged,
        counters.skipped,
        counters.stale,
        counters.failed,
        if save_key {
            format!("; key {} saved", quoted(key_after))
        } else {
            String::new()
        }
    );
    let mut notes = mapping.notes.borrow_mut();
    notes.mapped(counters.fetched, counters.failed, first_failure);
    notes.add_batch(sentinel);
    Ok(counters)
}

/// What became of one ticket.
enum Outcome<'p> {
    Skipped,
    Stale,
    Stored,
    Unchanged,
    /// The ticket's exact text and why it cannot be mapped.
    Failed {
        raw: &'p RawValue,
        reason: &'p str,
    },
}

impl Outcome<'_> {
    /// The decision as `-vv` logs it.
    fn name(&self) -> &'static str {
        match self {
            Outcome::Skipped => "skipped (on the skip list)",
            Outcome::Stale => "stale (older than the stored state), left alone",
            Outcome::Stored => "stored",
            Outcome::Unchanged => "unchanged",
            Outcome::Failed { .. } => "cannot be mapped",
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
    batch: &Batch<'_>,
    raw: &RawValue,
    number: Option<&str>,
    reason: &str,
) -> Result<(), Error> {
    log::debug!("{}", describe_failure(number, reason));
    batch.record_error(number, reason, raw.get())
}

/// Stores one decoded ticket: the row, its history and its contacts (SPEC §4.4 steps 3–6).
fn apply_ticket(
    batch: &mut Batch<'_>,
    ticket: &Ticket,
    mapping: &MappingOptions,
    counters: &mut Counters,
) -> Result<Outcome<'static>, Error> {
    let (row, stored) = batch.ticket(&ticket.ticket_number)?.unzip();
    if is_stale(stored.as_ref(), ticket) {
        return Ok(Outcome::Stale);
    }
    // The contact rules read the row as it was before this ticket; the merge then takes it.
    let plan = if mapping.contacts {
        let plan = contacts::plan(stored.as_ref(), ticket, batch)?;
        if let Some(warning) = plan.warning {
            mapping
                .notes
                .borrow_mut()
                .warn(warning, &ticket.ticket_number);
        }
        if stored.is_none() && plan.cultural_contact.is_none() {
            log::debug!(
                "ticket {}: no owner e-mail yet: no cultural contact",
                ticket.ticket_number
            );
        }
        Some(plan)
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
        let written = LineWritten {
            operator_login: &mapping.operator_login,
            ticket_state: record.s360_state.as_deref(),
            date_time: changed_at.as_ref().map_or(batch.now(), |at| at.as_str()),
        };
        write_lines(batch, plan, &record, created, counters, &written)?;
    }
    Ok(if changed {
        Outcome::Stored
    } else {
        Outcome::Unchanged
    })
}

/// Ids of the contacts a plan created.
#[derive(Clone, Copy, Default)]
struct NewContacts {
    owner: Option<i64>,
    recipient: Option<i64>,
}

impl NewContacts {
    fn resolve(self, contact: ContactRef) -> Result<i64, Error> {
        match contact {
            ContactRef::Existing(id) => Ok(id),
            ContactRef::NewOwner => self.owner.ok_or(contact),
            ContactRef::NewRecipient => self.recipient.ok_or(contact),
        }
        .map_err(|contact| {
            Error::Internal(format!(
                "the contact plan names {contact:?} but did not create it"
            ))
        })
    }
}

/// Creates and upgrades the plan's contacts and points the ticket at its new cultural contact.
fn create_contacts(
    batch: &Batch<'_>,
    plan: &ContactPlan,
    ticket: &Ticket,
    record: &mut TicketRecord,
    counters: &mut Counters,
) -> Result<NewContacts, Error> {
    let no_owner = Spectator::default();
    let owner = ticket.owner.as_ref().unwrap_or(&no_owner);
    let mut created = NewContacts::default();
    if plan.create_owner {
        created.owner = Some(batch.create_owner_contact(owner)?);
        counters.contacts_created += 1;
    }
    if let Some(id) = plan.upgrade {
        batch.upgrade_contact(id, owner)?;
        counters.contacts_updated += 1;
    }
    if let Some(email) = &plan.create_recipient {
        created.recipient = Some(batch.create_temporary_contact(email)?);
        counters.contacts_created += 1;
    }
    if let Some(contact) = plan.cultural_contact {
        record.cultural_contact_id = Some(created.resolve(contact)?);
    }
    Ok(created)
}

/// Writes the plan's distribution changes (after the ticket row, which the lines reference).
fn write_lines(
    batch: &Batch<'_>,
    plan: &ContactPlan,
    record: &TicketRecord,
    created: NewContacts,
    counters: &mut Counters,
    written: &LineWritten<'_>,
) -> Result<(), Error> {
    for &(id, status) in &plan.line_updates {
        batch.set_line_status(id, status)?;
        counters.distributions_updated += 1;
    }
    if let Some(line) = plan.new_line {
        let old = line.old_contact.map(|c| created.resolve(c)).transpose()?;
        batch.insert_line(
            &record.ticket_number,
            old,
            created.resolve(line.new_contact)?,
            line.status,
            written,
        )?;
        counters.distributions_created += 1;
    }
    Ok(())
}

/// Records a failed run in `sync_run` after its rollback. A store that cannot take even that is
/// already failing the run; the original error is the one reported.
pub fn record_failure(
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

/// The lock file of a store, as the options name it.
pub fn lock_path(global: &GlobalArgs) -> PathBuf {
    global
        .lock_file
        .clone()
        .unwrap_or_else(|| lock::default_path(&global.store))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_naming_a_contact_it_did_not_create_is_a_bug_exit_70() {
        let created = NewContacts {
            owner: Some(7),
            recipient: None,
        };
        assert_eq!(created.resolve(ContactRef::Existing(3)).unwrap(), 3);
        assert_eq!(created.resolve(ContactRef::NewOwner).unwrap(), 7);
        let error = created.resolve(ContactRef::NewRecipient).unwrap_err();
        assert_eq!(error.exit_code(), ExitCode::Software);
    }
}
