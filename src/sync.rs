//! One run of `sync` (SPEC §4), from its resolved settings: build the client, take the lock, open
//! the store, then fetch, map and commit batch after batch until caught up, `--max-batches` or the
//! deadline.
//!
//! Checks happen in the order of SPEC §3 so that the exit code names the first problem:
//! arguments and configuration ([`crate::settings`]) → lock → store → fetch → parse → write.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;

use crate::error::{Error, KEY_UNCHANGED};
use crate::exit::ExitCode;
use crate::feedback::contacts::{self, ContactPlan, ContactRef};
use crate::feedback::sentinel::BatchSentinel;
use crate::feedback::{Merge, TicketRecord, is_stale, merge};
use crate::lock::RunLock;
use crate::report::{Counters, Summary, count, quoted};
use crate::settings::{MappingPolicy, StartKey, StoreFiles, SyncSettings};
use crate::store::{BatchTransaction, FeedState, LineWritten, RunRecord, Store};
use crate::timestamp::Timestamp;
use crate::tixngo::client::Client;
use crate::tixngo::wire::{self, Page, PageTicket, PaginationKey, Spectator, Ticket};

/// Runs `sync`; the summary carries the exit code and the error, if any.
pub fn run(files: &StoreFiles, settings: SyncSettings, started: Instant) -> Summary {
    let mut summary = Summary {
        dry_run: settings.mapping.dry_run,
        ..summary()
    };
    let result = sync(files, settings, started, &mut summary);
    let mut summary = finish(summary, result, started);
    if summary.batches > 0
        && let Some(error) = &mut summary.error
    {
        *error = after_committed_batches(error, summary.batches);
    }
    summary
}

/// The summary of a `sync` whose settings were refused.
pub fn refused(error: Error, dry_run: bool, started: Instant) -> Summary {
    finish(
        Summary {
            dry_run,
            ..summary()
        },
        Err(error),
        started,
    )
}

/// A sync's summary before it starts.
fn summary() -> Summary {
    Summary {
        command: "sync",
        ..Summary::default()
    }
}

/// The error line of a run that failed after committing batches. The error's own text says that
/// the pagination key is unchanged, which is true of the failed batch only: the key moved with the
/// batches before it (SPEC §4.7).
fn after_committed_batches(message: &str, committed: u64) -> String {
    let kept = format!("the pagination key stays where batch {committed} left it");
    let message = message
        .replace(
            &format!("nothing was written, {KEY_UNCHANGED}"),
            &format!("nothing of it was written, {kept}"),
        )
        .replace(KEY_UNCHANGED, &kept);
    format!("batch {}: {message}", committed + 1)
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

/// Where the key comes from and whether the run saves it.
struct KeyPolicy {
    start: Option<String>,
    save: bool,
}

fn sync(
    files: &StoreFiles,
    settings: SyncSettings,
    started: Instant,
    summary: &mut Summary,
) -> Result<ExitCode, Error> {
    let SyncSettings {
        url,
        api_key,
        connection,
        start,
        batch_size,
        max_batches,
        timeout,
        mut mapping,
        ..
    } = settings;
    let deadline = started + timeout;
    let client = Client::new(url, api_key, connection)?;
    let _lock = lock_store(files, mapping.dry_run)?;
    let mut store = open_store(&files.store, mapping.dry_run, Some(deadline))?;
    let started_at = Timestamp::now().to_string();
    let keys = match start {
        StartKey::Given(key) => KeyPolicy {
            start: key.map(PaginationKey::into_string),
            save: false,
        },
        StartKey::Stored => KeyPolicy {
            start: store.pagination_key()?.filter(|k| !k.is_empty()),
            save: !mapping.dry_run,
        },
    };
    mapping.skip.extend(store.skip_list()?);
    summary.pagination_key_before.clone_from(&keys.start);
    summary.next_pagination_key.clone_from(&keys.start);
    let job = Job {
        batch_size,
        max_batches,
        client: Arc::new(client),
        mapping,
        keys,
        started_at,
        deadline,
    };
    let result = run_batches(&job, &mut store, summary);
    job.mapping.report_notes(summary);
    result
}

/// What every batch of a run shares.
struct Job {
    /// Tickets asked for per page.
    batch_size: u32,
    max_batches: u32,
    client: Arc<Client>,
    mapping: MappingPolicy,
    keys: KeyPolicy,
    started_at: String,
    deadline: Instant,
}

/// Fetches and commits batch after batch (SPEC §4.7): page k+1 is fetched while batch k commits
/// and its outcome read only after that commit; the run goes on while it is behind, allowed another
/// batch and the deadline leaves time for one.
fn run_batches(job: &Job, store: &mut Store, summary: &mut Summary) -> Result<ExitCode, Error> {
    let mut feed = FeedProgress::after(store.feed_state()?.as_ref());
    let mut pace = Pace::start(job.deadline);
    let limit = job.max_batches;
    let mut key = job.keys.start.clone();
    let mut prefetch: Option<Prefetch> = None;
    for batch_number in 1..=limit {
        let fetched = match prefetch.take() {
            Some(next) => next.join(),
            None => fetch(&job.client, key.as_deref(), job.batch_size, job.deadline),
        };
        if let Err(error) = &fetched
            && batch_number > 1
            && pace.cut_by(error)
        {
            log::warn!("the --timeout deadline cut batch {batch_number} short: not caught up");
            break;
        }
        let next = (batch_number < limit).then_some(&mut prefetch);
        let outcome = fetched
            .and_then(|fetched| apply_fetched(job, store, fetched, key.as_deref(), &pace, next))
            .inspect_err(|error| {
                if !job.mapping.dry_run {
                    record_failure(store, "sync", &job.started_at, key.as_deref(), error);
                }
            })?;
        pace.batch_done();
        feed.batch_done(&outcome, summary);
        if job.keys.save {
            store.note_feed_state(&feed.state)?;
        }
        summary.key_saved = job.keys.save;
        key = outcome.next_key;
        if !outcome.another {
            break;
        }
    }
    Ok(if summary.counters.failed > 0 {
        ExitCode::Partial
    } else {
        ExitCode::Success
    })
}

/// The run's time: the deadline, and how long a batch takes, to tell whether another one fits.
struct Pace {
    deadline: Instant,
    last_batch_end: Instant,
    /// The slowest batch so far, from the end of the one before (or the start of the loop) to its
    /// commit.
    slowest: Duration,
}

/// Another batch starts only when twice the slowest batch so far still fits before the deadline:
/// a batch may take longer than the ones before (a slower answer, a retry), and a batch cut by
/// the deadline is a fetch wasted.
const BATCH_TIME_MARGIN: u32 = 2;

impl Pace {
    fn start(deadline: Instant) -> Pace {
        Pace {
            deadline,
            last_batch_end: Instant::now(),
            slowest: Duration::ZERO,
        }
    }

    fn batch_done(&mut self) {
        let now = Instant::now();
        self.slowest = self.slowest.max(now - self.last_batch_end);
        self.last_batch_end = now;
    }

    /// Whether the deadline leaves time for another batch; the one in progress counts as done.
    fn room_for_another(&self) -> bool {
        let now = Instant::now();
        let expected = self.slowest.max(now - self.last_batch_end) * BATCH_TIME_MARGIN;
        now + expected < self.deadline
    }

    /// Whether a fetch failed because the deadline came first (SPEC §4.7): TIXNGO was slow or kept
    /// failing, and the time ran out. After committed batches that ends the run as a success.
    fn cut_by(&self, error: &Error) -> bool {
        matches!(error, Error::Unavailable(_) | Error::RateLimited)
            && Instant::now() + DEADLINE_SLACK >= self.deadline
    }
}

/// A fetch that ends this close to the deadline ended because of it: it had no time left for an
/// answer or another attempt.
const DEADLINE_SLACK: Duration = Duration::from_millis(250);

/// Where the run has brought the feed: the summary's `caught_up`, `feed_lag_seconds` and
/// `runs_behind`, and the state noted on each live batch's `sync_run` row.
struct FeedProgress {
    /// Runs that ended behind before this one.
    runs_behind_before: u64,
    state: FeedState,
}

impl FeedProgress {
    fn after(previous: Option<&FeedState>) -> FeedProgress {
        FeedProgress {
            runs_behind_before: previous.map_or(0, |p| p.runs_behind),
            state: FeedState::default(),
        }
    }

    /// Counts a committed batch in the summary, as if the run ended with it.
    fn batch_done(&mut self, batch: &BatchOutcome, summary: &mut Summary) {
        let state = &mut self.state;
        state.caught_up = batch.caught_up;
        state.newest_change_at = state
            .newest_change_at
            .take()
            .max(batch.newest_change_at.clone());
        state.runs_behind = if batch.caught_up {
            0
        } else {
            self.runs_behind_before + 1
        };
        let now = Timestamp::now();
        state.feed_lag_seconds = if batch.caught_up {
            Some(0.0)
        } else {
            state
                .newest_change_at
                .as_deref()
                .and_then(Timestamp::parse_rfc3339)
                .map(|newest| now.millis_since(newest).max(0) as f64 / 1000.0)
        };
        state.checked_at = Some(now.to_string());
        summary.batches += 1;
        summary.counters.add(&batch.counters);
        summary.caught_up = batch.caught_up;
        summary.next_pagination_key.clone_from(&batch.next_key);
        summary.feed_lag_seconds = state.feed_lag_seconds;
        summary.runs_behind = Some(state.runs_behind);
    }
}

/// Opens the store for a run that writes, or read-only behind an in-memory overlay for a dry run.
/// No wait for another program's lock on the store outlasts `deadline`.
pub fn open_store(path: &Path, dry_run: bool, deadline: Option<Instant>) -> Result<Store, Error> {
    let store = if dry_run {
        Store::open_dry_run(path, deadline)
    } else {
        Store::open_until(path, deadline)
    }?;
    log::info!(
        "store {} opened{}",
        path.display(),
        if dry_run {
            " (dry run: read-only, changes kept in memory)"
        } else {
            ""
        }
    );
    Ok(store)
}

/// Takes the run lock of the store, once the store's path is known to be usable: a run refused
/// for its store path must not leave a `<store>.lock` behind (and removing a lock file is never
/// safe: another run may have it open).
pub fn lock_store(files: &StoreFiles, read_only: bool) -> Result<RunLock, Error> {
    crate::store::check_path(&files.store, read_only)?;
    let lock = RunLock::acquire(&files.lock)?;
    log::info!("lock {} taken", files.lock.display());
    Ok(lock)
}

/// What one committed batch came to.
pub struct BatchOutcome {
    pub counters: Counters,
    /// The key the next batch or run starts from.
    pub next_key: Option<String>,
    pub caught_up: bool,
    /// The newest `lastUpdated` among the batch's tickets (the store's form).
    pub newest_change_at: Option<String>,
    /// Whether the run goes on with another batch (whose fetch has started).
    another: bool,
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
    log::info!(
        "fetching up to {} from key {}",
        count(batch_size, "ticket"),
        quoted(key)
    );
    let asked = Instant::now();
    let body = client.fetch(key, batch_size, deadline)?;
    let decoded = wire::read_mappable_page(&body);
    log::info!(
        "page received: {} bytes in {} ms",
        body.len(),
        asked.elapsed().as_millis()
    );
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

/// Parses a fetched page, starts fetching the next one when the run goes on (not caught up,
/// `prefetch` given for a batch the run allows, and time for it), and maps and commits this one.
fn apply_fetched(
    job: &Job,
    store: &mut Store,
    fetched: Fetched,
    key: Option<&str>,
    pace: &Pace,
    prefetch: Option<&mut Option<Prefetch>>,
) -> Result<BatchOutcome, Error> {
    let batch_size = job.batch_size;
    let page = match fetched.decoded {
        Some(page) => page,
        None => wire::read_page(&fetched.body).map_err(Error::BadData)?,
    };
    let fetched = page.tickets.len();
    log::info!(
        "page read: {}, next key {}",
        count(fetched as u64, "ticket"),
        quoted(page.next_page_key.as_deref())
    );
    let next_key = page
        .next_page_key
        .clone()
        .or_else(|| key.map(str::to_owned));
    let caught_up = fetched < batch_size as usize
        || page.next_page_key.is_none()
        || page.next_page_key.as_deref() == key;
    let newest_change_at = newest_change(&page.tickets);
    let mut another = false;
    if let Some(slot) = prefetch
        && !caught_up
        && pace.room_for_another()
    {
        *slot = Prefetch::start(&job.client, next_key.clone(), batch_size, job.deadline);
        another = true;
    }
    let counters = apply_page(
        store,
        "sync",
        page.tickets.into_iter().map(|ticket| Ok(ticket.into())),
        key,
        next_key.as_deref(),
        job.keys.save,
        &job.mapping,
    )?;
    Ok(BatchOutcome {
        counters,
        next_key,
        caught_up,
        newest_change_at,
        another,
    })
}

/// The newest `lastUpdated` of a page's tickets, in the store's form.
fn newest_change(tickets: &[PageTicket<'_>]) -> Option<String> {
    tickets
        .iter()
        .filter_map(|ticket| match ticket {
            PageTicket::Decoded(ticket) => ticket.last_updated,
            PageTicket::Unmappable { .. } => None,
        })
        .max()
        .map(|newest| newest.to_string())
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
    mapping: &MappingPolicy,
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
            PageTicket::Decoded(ticket) => {
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
    batch: &BatchTransaction<'_>,
    raw: &RawValue,
    number: Option<&str>,
    reason: &str,
) -> Result<(), Error> {
    log::debug!("{}", describe_failure(number, reason));
    batch.record_error(number, reason, raw.get())
}

/// Stores one decoded ticket: the row, its history and its contacts (SPEC §4.4 steps 3–6).
fn apply_ticket(
    batch: &mut BatchTransaction<'_>,
    ticket: &Ticket,
    mapping: &MappingPolicy,
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
    batch: &BatchTransaction<'_>,
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
    batch: &BatchTransaction<'_>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_after_committed_batches_never_says_the_key_is_unchanged() {
        for error in [
            Error::Unavailable("HTTP 503".into()),
            Error::RateLimited,
            Error::BadData("not JSON".into()),
            Error::BatchRejected("ticket T-1 cannot be mapped".into()),
        ] {
            let message = after_committed_batches(&error.to_string(), 2);
            assert!(message.starts_with("batch 3: "), "{message}");
            assert!(!message.contains("unchanged"), "{message}");
            assert!(
                message.contains("the pagination key stays where batch 2 left it"),
                "{message}"
            );
        }
    }

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
