//! One run of `sync` (SPEC §4), from its resolved settings: build the client, take the lock, open
//! the store, then fetch, map and commit batch after batch until caught up, `--max-batches` or the
//! deadline.
//!
//! Checks happen in the order of SPEC §3 so that the exit code names the first problem:
//! arguments and configuration ([`crate::settings`]) → lock → store → fetch → parse → write.

use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use crate::engine::{apply_page, exit_code, finish, open_locked, record_failure};
use crate::error::Error;
use crate::exit::ExitCode;
use crate::feedback::sentinel::RunNotes;
use crate::report::{Counters, Summary, count, quoted};
use crate::settings::{MappingPolicy, StartKey, StoreLocation, SyncSettings};
use crate::store::{FeedState, KeyCommit, Store};
use crate::timestamp::Timestamp;
use crate::tixngo::client::Client;
use crate::tixngo::wire::{self, Page, PageTicket, PaginationKey};

/// Runs `sync`; the summary carries the exit code and the error, if any.
pub fn run(location: &StoreLocation, settings: SyncSettings, started: Instant) -> Summary {
    let mut summary = Summary {
        dry_run: settings.mapping.dry_run,
        ..summary()
    };
    let result = sync(location, settings, started, &mut summary);
    let committed = summary.batches;
    let result = result.map_err(|error| after_committed_batches(error, committed));
    finish(summary, result, started)
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

/// The error of a run that failed after committing `committed` batches. The error alone would say
/// that the pagination key is unchanged, which is true of the failed batch only: the key moved with
/// the batches before it (SPEC §4.7).
fn after_committed_batches(error: Error, committed: u64) -> Error {
    if committed == 0 {
        return error;
    }
    Error::AfterBatches {
        committed,
        error: Box::new(error),
    }
}

struct KeyPolicy {
    start: Option<String>,
    save: bool,
}

fn sync(
    location: &StoreLocation,
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
    let mut store = open_locked(location, mapping.dry_run, Some(deadline))?;
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
    let mut notes = RunNotes::new(job.mapping.dry_run);
    let result = run_batches(&job, &mut store, summary, &mut notes);
    notes.report(summary);
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
/// batch and the deadline leaves time for one. The batches tell `notes` what they find.
fn run_batches(
    job: &Job,
    store: &mut Store,
    summary: &mut Summary,
    notes: &mut RunNotes,
) -> Result<ExitCode, Error> {
    let mut run = Batches::start(job, store)?;
    let limit = job.max_batches;
    for batch_number in 1..=limit {
        let fetched = run.next_page(store);
        if batch_number > 1 && fetched.as_ref().is_err_and(|error| run.pace.cut_by(error)) {
            log::warn!("the --timeout deadline cut batch {batch_number} short: not caught up");
            break;
        }
        let outcome = fetched
            .and_then(|fetched| run.apply(store, fetched, batch_number < limit, notes))
            .inspect_err(|error| run.record_failure(store, error))?;
        let another = outcome.another;
        run.batch_done(outcome, summary);
        if !another {
            break;
        }
    }
    Ok(exit_code(&summary.counters))
}

/// Where a run is between its batches.
struct Batches<'j> {
    job: &'j Job,
    pace: Pace,
    feed: FeedProgress,
    /// The key the next batch is fetched with.
    key: Option<String>,
    /// The next page, when its fetch has started.
    prefetch: Option<Prefetch>,
}

impl<'j> Batches<'j> {
    fn start(job: &'j Job, store: &Store) -> Result<Batches<'j>, Error> {
        Ok(Batches {
            job,
            feed: FeedProgress::after(store.feed_state()?.as_ref()),
            pace: Pace::start(job.deadline),
            key: job.keys.start.clone(),
            prefetch: None,
        })
    }

    /// The page the prefetch brought, or else the page fetched now, on a thread of its own all
    /// the same: the store's session is kept alive while it comes (see
    /// [`crate::store::Backend::keep_alive`]), the first page's wait included.
    fn next_page(&mut self, store: &mut Store) -> Result<Fetched, Error> {
        let job = self.job;
        let key = self.key.clone();
        match self
            .prefetch
            .take()
            .or_else(|| Prefetch::start(&job.client, key, job.batch_size, job.deadline))
        {
            Some(next) => next.join(store),
            None => fetch(
                &job.client,
                self.key.as_deref(),
                job.batch_size,
                job.deadline,
            ),
        }
    }

    /// Parses a fetched page, starts fetching the next one when the run goes on (not caught up,
    /// `may_go_on` for a batch the run allows, and time for it), and maps and commits this one.
    fn apply(
        &mut self,
        store: &mut Store,
        fetched: Fetched,
        may_go_on: bool,
        notes: &mut RunNotes,
    ) -> Result<BatchOutcome, Error> {
        let job = self.job;
        let key = self.key.as_deref();
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
        let caught_up = fetched < job.batch_size as usize
            || page.next_page_key.is_none()
            || page.next_page_key.as_deref() == key;
        let newest_change_at = newest_change(&page.tickets);
        let another = may_go_on && !caught_up && self.pace.room_for_another();
        if another {
            self.prefetch =
                Prefetch::start(&job.client, next_key.clone(), job.batch_size, job.deadline);
        }
        let feed = self.feed.after_batch(caught_up, newest_change_at);
        let keys = KeyCommit {
            before: self.key.clone(),
            after: next_key.clone(),
            save: job.keys.save,
            feed: job.keys.save.then(|| feed.clone()),
        };
        let tickets = page.tickets.into_iter().map(|ticket| Ok(ticket.into()));
        let counters = apply_page(store, "sync", tickets, &keys, &job.mapping, notes)?;
        Ok(BatchOutcome {
            counters,
            next_key,
            feed,
            another,
        })
    }

    /// Records the failed batch in `sync_run`, unless the run is a dry one.
    fn record_failure(&self, store: &mut Store, error: &Error) {
        if !self.job.mapping.dry_run {
            record_failure(
                store,
                "sync",
                &self.job.started_at,
                self.key.as_deref(),
                error,
            );
        }
    }

    /// Counts a committed batch and moves on to the key it leaves.
    fn batch_done(&mut self, outcome: BatchOutcome, summary: &mut Summary) {
        self.pace.batch_done();
        summary.batches += 1;
        summary.counters.add(&outcome.counters);
        summary.caught_up = outcome.feed.caught_up;
        summary.next_pagination_key.clone_from(&outcome.next_key);
        summary.feed_lag_seconds = outcome.feed.feed_lag_seconds;
        summary.runs_behind = Some(outcome.feed.runs_behind);
        summary.key_saved = self.job.keys.save;
        self.key = outcome.next_key;
        self.feed.state = outcome.feed;
    }
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

    /// Where the feed stands once a batch that caught up or not, and stored `newest` as its
    /// newest change, is committed now: as if the run ended with it.
    fn after_batch(&self, caught_up: bool, newest: Option<String>) -> FeedState {
        let newest_change_at = self.state.newest_change_at.clone().max(newest);
        let now = Timestamp::now();
        let feed_lag_seconds = if caught_up {
            Some(0.0)
        } else {
            newest_change_at
                .as_deref()
                .and_then(Timestamp::parse_rfc3339)
                .map(|newest| now.millis_since(newest).max(0) as f64 / 1000.0)
        };
        FeedState {
            checked_at: Some(now.to_string()),
            caught_up,
            newest_change_at,
            feed_lag_seconds,
            runs_behind: if caught_up {
                0
            } else {
                self.runs_behind_before + 1
            },
        }
    }
}

/// What one committed batch came to.
pub(crate) struct BatchOutcome {
    pub counters: Counters,
    /// The key the next batch or run starts from.
    pub next_key: Option<String>,
    /// Where the batch left the feed (noted on its `sync_run` row when the run saves the key).
    pub feed: FeedState,
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
struct Prefetch(mpsc::Receiver<Result<Fetched, Error>>);

/// How long a run waits for a page before it tells the store's server it is alive: well within
/// the minute after which PostgreSQL ends an idle session (SPEC §10).
const KEEP_ALIVE: Duration = Duration::from_secs(20);

impl Prefetch {
    fn start(
        client: &Arc<Client>,
        key: Option<String>,
        batch_size: u32,
        deadline: Instant,
    ) -> Option<Prefetch> {
        let client = Arc::clone(client);
        let (page, waiting) = mpsc::channel();
        std::thread::Builder::new()
            .name("prefetch".into())
            .spawn(move || {
                let _ = page.send(fetch(&client, key.as_deref(), batch_size, deadline));
            })
            .map(|_| Prefetch(waiting))
            .map_err(|e| log::debug!("no prefetch thread ({e}): the next page is fetched in turn"))
            .ok()
    }

    /// Waits for the page, keeping the store's session alive meanwhile.
    fn join(self, store: &mut Store) -> Result<Fetched, Error> {
        loop {
            match self.0.recv_timeout(KEEP_ALIVE) {
                Ok(fetched) => return fetched,
                Err(mpsc::RecvTimeoutError::Timeout) => store.keep_alive()?,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(Error::Internal(
                        "the fetch of the next page panicked".into(),
                    ));
                }
            }
        }
    }
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
            let message = after_committed_batches(error, 2).to_string();
            assert!(message.starts_with("batch 3: "), "{message}");
            assert!(!message.contains("unchanged"), "{message}");
            assert!(
                message.contains("the pagination key stays where batch 2 left it"),
                "{message}"
            );
        }
    }
}
