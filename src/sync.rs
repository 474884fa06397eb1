//! One run of `sync` (SPEC §4): check the configuration, take the lock, open the store, then fetch,
//! map and commit batch after batch until caught up, `--max-batches` or the deadline.
//!
//! Checks happen in the order of SPEC §3 so that the exit code names the first problem:
//! arguments → configuration → lock → store → fetch → parse → write.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;

use crate::cli::{GlobalArgs, MappingArgs, SyncArgs};
use crate::error::Error;
use crate::exit::ExitCode;
use crate::feedback::contacts::{self, ContactPlan, ContactRef};
use crate::feedback::sentinel::{BatchSentinel, RunNotes};
use crate::feedback::{Merge, TicketRecord, is_stale, merge};
use crate::lock::{self, RunLock};
use crate::report::{Counters, Summary};
use crate::store::{Batch, LineWritten, RunRecord, Store};
use crate::timestamp::Timestamp;
use crate::tixngo::client::{ApiKey, ApiUrl, Client};
use crate::tixngo::wire::{self, Page, PageTicket, Spectator, Ticket};

/// Runs `sync`; the summary carries the exit code and the error, if any.
pub fn run(global: &GlobalArgs, args: &SyncArgs, started: Instant) -> Summary {
    let mut summary = Summary {
        command: "sync",
        ..Summary::default()
    };
    let result = sync(global, args, started, &mut summary);
    finish(summary, result, started)
}

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
            notes: RefCell::default(),
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

/// Where the key comes from and whether the run saves it.
struct KeyPolicy {
    start: Option<String>,
    save: bool,
}

fn sync(
    global: &GlobalArgs,
    args: &SyncArgs,
    started: Instant,
    summary: &mut Summary,
) -> Result<ExitCode, Error> {
    let mut mapping = MappingOptions::from_args(&args.mapping)?;
    summary.dry_run = mapping.dry_run;
    let deadline = started + Duration::from_secs(args.timeout);
    let url = args
        .api_url
        .as_deref()
        .filter(|u| !u.trim().is_empty())
        .ok_or_else(|| Error::Config("no API URL: set --api-url or TIXNGO_API_URL".into()))?;
    let client = Client::new(
        ApiUrl::parse(url)?,
        api_key(args.api_key_file.as_deref())?,
        args.max_response_mb * 1024 * 1024,
    )
    .with_endpoint(&args.diff_path, &args.api_key_header);
    let _lock = RunLock::acquire(&lock_path(global))?;
    let mut store = open_store(&global.store, mapping.dry_run)?;
    let started_at = Timestamp::now().to_string();
    let keys = match &args.pagination_key {
        Some(key) => KeyPolicy {
            start: Some(key.clone()).filter(|k| !k.is_empty()),
            save: false,
        },
        None => KeyPolicy {
            start: store.pagination_key()?.filter(|k| !k.is_empty()),
            save: !mapping.dry_run,
        },
    };
    mapping.skip.extend(store.skip_list()?);
    summary.pagination_key_before.clone_from(&keys.start);
    summary.next_pagination_key.clone_from(&keys.start);

    let mut key = keys.start.clone();
    let mut partial = false;
    let client = Arc::new(client);
    let mut prefetch: Option<Prefetch> = None;
    for batch_number in 1..=args.max_batches {
        if batch_number > 1 && Instant::now() >= deadline {
            log::warn!(
                "the --timeout deadline was reached after {} batches",
                batch_number - 1
            );
            break;
        }
        let fetched = match prefetch.take() {
            Some(next) => next.join(),
            None => fetch(&client, key.as_deref(), args.batch_size, deadline),
        };
        let more = batch_number < args.max_batches;
        let outcome = fetched.and_then(|fetched| {
            let next = more.then_some(&mut prefetch);
            apply_fetched(
                &client,
                &mut store,
                fetched,
                key.as_deref(),
                args.batch_size,
                deadline,
                &mapping,
                keys.save,
                next,
            )
        });
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(error) => {
                if !mapping.dry_run {
                    record_failure(&mut store, "sync", &started_at, key.as_deref(), &error);
                }
                mapping.report_notes(summary);
                return Err(error);
            }
        };
        summary.batches += 1;
        summary.counters.add(&outcome.counters);
        summary.key_saved = keys.save;
        summary.caught_up = outcome.caught_up;
        partial |= outcome.counters.failed > 0;
        key.clone_from(&outcome.next_key);
        summary.next_pagination_key.clone_from(&key);
        if outcome.caught_up {
            break;
        }
    }
    mapping.report_notes(summary);
    Ok(if partial {
        ExitCode::Partial
    } else {
        ExitCode::Success
    })
}

/// Opens the store for a run that writes, or a private scratch copy of it for a dry run.
pub fn open_store(path: &Path, dry_run: bool) -> Result<Store, Error> {
    if dry_run {
        Store::open_scratch(path)
    } else {
        Store::open(path)
    }
}

/// Reads the API key from the key file (refused when others can read it) or `TIXNGO_API_KEY`.
fn api_key(file: Option<&Path>) -> Result<ApiKey, Error> {
    let (key, origin) = match file {
        Some(path) => {
            let shown = path.display();
            let metadata = fs::metadata(path)
                .map_err(|e| Error::Config(format!("cannot read the API key file {shown}: {e}")))?;
            let mode = metadata.permissions().mode() & 0o777;
            if mode & 0o044 != 0 {
                return Err(Error::Config(format!(
                    "the API key file {shown} is readable by others (mode {mode:04o}): chmod 600 {shown}"
                )));
            }
            let text = fs::read_to_string(path)
                .map_err(|e| Error::Config(format!("cannot read the API key file {shown}: {e}")))?;
            (text.trim().to_owned(), format!("the API key file {shown}"))
        }
        None => match std::env::var("TIXNGO_API_KEY") {
            Ok(key) if !key.trim().is_empty() => {
                (key.trim().to_owned(), "TIXNGO_API_KEY".to_owned())
            }
            _ => {
                return Err(Error::Config(
                    "no API key: set TIXNGO_API_KEY or --api-key-file (TIXNGO_API_KEY_FILE)".into(),
                ));
            }
        },
    };
    ApiKey::new(key).map_err(|why| Error::Config(format!("{origin} {why}")))
}

/// What one committed batch came to.
pub struct BatchOutcome {
    pub counters: Counters,
    /// The key the next batch or run starts from.
    pub next_key: Option<String>,
    pub caught_up: bool,
}

/// A response body, with its tickets already decoded when they all map (the rule).
struct Fetched {
    body: Vec<u8>,
    decoded: Option<Page<'static>>,
}

/// Fetches one page and decodes it when every ticket maps.
fn fetch(
    client: &Client,
    key: Option<&str>,
    batch_size: u32,
    deadline: Instant,
) -> Result<Fetched, Error> {
    let body = client.fetch(key, batch_size, deadline)?;
    let decoded = wire::read_mappable_page(&body);
    Ok(Fetched { body, decoded })
}

/// The next page, fetched and decoded on another thread while the current batch is written: on
/// two cores the network, the JSON and SQLite's commit overlap. Its outcome is only looked at once
/// the current batch is committed, so a failure still stops the run at the right batch; a run that
/// stops earlier leaves it unread (a GET of a page, the key is not saved).
struct Prefetch(std::thread::JoinHandle<Result<Fetched, Error>>);

impl Prefetch {
    fn start(
        client: &Arc<Client>,
        key: Option<String>,
        batch_size: u32,
        deadline: Instant,
    ) -> Option<Prefetch> {
        let client = Arc::clone(client);
        std::thread::Builder::new()
            .name("prefetch".into())
            .spawn(move || fetch(&client, key.as_deref(), batch_size, deadline))
            .map(Prefetch)
            .map_err(|e| log::debug!("no prefetch thread ({e}): the next page is fetched in turn"))
            .ok()
    }

    fn join(self) -> Result<Fetched, Error> {
        self.0.join().unwrap_or_else(|_| {
            Err(Error::Internal(
                "the fetch of the next page panicked".into(),
            ))
        })
    }
}

/// Parses a fetched page, starts fetching the next one (when `prefetch` allows it and the feed is
/// not caught up), and maps and commits this one.
#[allow(clippy::too_many_arguments)]
fn apply_fetched(
    client: &Arc<Client>,
    store: &mut Store,
    fetched: Fetched,
    key: Option<&str>,
    batch_size: u32,
    deadline: Instant,
    mapping: &MappingOptions,
    save_key: bool,
    prefetch: Option<&mut Option<Prefetch>>,
) -> Result<BatchOutcome, Error> {
    let page = match fetched.decoded {
        Some(page) => page,
        None => wire::read_page(&fetched.body).map_err(Error::BadData)?,
    };
    let fetched = page.tickets.len();
    let next_key = page
        .next_page_key
        .clone()
        .or_else(|| key.map(str::to_owned));
    let caught_up = fetched < batch_size as usize
        || page.next_page_key.is_none()
        || page.next_page_key.as_deref() == key;
    if let Some(slot) = prefetch
        && !caught_up
        && Instant::now() < deadline
    {
        *slot = Prefetch::start(client, next_key.clone(), batch_size, deadline);
    }
    let counters = apply_page(
        store,
        "sync",
        page.tickets.into_iter().map(|ticket| Ok(ticket.into())),
        key,
        next_key.as_deref(),
        save_key,
        mapping,
    )?;
    Ok(BatchOutcome {
        counters,
        next_key,
        caught_up,
    })
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
                "{first} (--stop-on-error; {} of {} tickets cannot be mapped)",
                counters.failed, counters.fetched
            )));
        }
        if ratio > mapping.max_failed_ratio {
            return Err(Error::BatchRejected(format!(
                "{} of {} tickets ({:.1}%) cannot be mapped, over --max-failed-ratio {}; first: {first}",
                counters.failed,
                counters.fetched,
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
    if let Err(e) = store.record_run(&record) {
        log::warn!("the failed run could not be recorded in sync_run: {e}");
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
