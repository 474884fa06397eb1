//! The PostgreSQL batch (SPEC §10): pages applied by the batch engine to a PostgreSQL store of
//! the throwaway cluster, the rows read back with SQL. The same pages into SQLite and into
//! PostgreSQL give the same rows, ids included; a batch costs a fixed number of round trips; the
//! key's compare-and-set fences a run that lost its lock; a dry run commits nothing.

use std::collections::HashSet;

use serde_json::{Value, json};
use tixngo_feedback::engine::{Incoming, apply_page};
use tixngo_feedback::error::Error;
use tixngo_feedback::feedback::sentinel::RunNotes;
use tixngo_feedback::report::Counters;
use tixngo_feedback::settings::MappingPolicy;
use tixngo_feedback::store::postgres::PgStore;
use tixngo_feedback::store::{FeedState, KeyCommit, RunRecord, Store};
use tixngo_feedback::tixngo::wire::{PageTicket, read_page};
use tixngo_sim::Feed;

use crate::support::{self, Env, dump, pg};

const ANN: &str = "ann@example.org";
const BOB: &str = "Bob@Example.org ";

fn policy(dry_run: bool) -> MappingPolicy {
    MappingPolicy {
        skip: HashSet::new(),
        stop_on_error: false,
        max_failed_ratio: 1.0,
        contacts: true,
        dry_run,
        operator_login: "TIXNGO_FEEDBACK".to_owned(),
    }
}

/// A PostgreSQL store on `schema`, new, and a session of the test's own on that schema.
fn pg_store(cluster: &pg::Cluster, schema: &str, dry_run: bool) -> (Store, postgres::Client) {
    let mut client = cluster.admin();
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {schema}; SET search_path TO {schema};
             SET application_name = {schema}; SET lock_timeout = '200ms'"
        ))
        .unwrap();
    let store = PgStore::from_client(client, schema, dry_run).expect("the store opens");
    let mut reader = cluster.admin();
    reader
        .batch_execute(&format!("SET search_path TO {schema}"))
        .unwrap();
    (Store::Postgres(store), reader)
}

/// Ends the store's session from the server's side.
fn terminate_store_session(reader: &mut postgres::Client) {
    let ended = reader
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE application_name = current_schema()",
            &[],
        )
        .unwrap();
    assert_eq!(ended.len(), 1);
}

fn round_trips(store: &Store) -> u32 {
    match store {
        Store::Postgres(store) => store.last_batch_round_trips(),
        Store::Sqlite(_) => unreachable!("a PostgreSQL store"),
    }
}

/// The key a batch's page was fetched with: what its compare-and-set expects to find stored.
#[derive(Clone, Copy)]
enum FetchedWith<'a> {
    /// The stored key, read first, as a run's first batch does.
    StoredKey,
    /// The key the run saved last, not read again, as its later batches do.
    Key(Option<&'a str>),
}
use FetchedWith::{Key, StoredKey};

/// Applies one diff document as a live batch that saves its next key.
fn apply(
    store: &mut Store,
    body: &str,
    fetched_with: FetchedWith,
    dry_run: bool,
) -> Result<Counters, Error> {
    let page = read_page(body.as_bytes()).expect("a diff document");
    let before = match fetched_with {
        StoredKey => store.pagination_key()?,
        Key(key) => key.map(str::to_owned),
    };
    let keys = KeyCommit {
        before,
        after: page.next_page_key.clone(),
        save: true,
        feed: None,
    };
    let tickets = page.tickets.into_iter().map(|t| Ok(Incoming::from(t)));
    apply_page(
        store,
        "sync",
        tickets,
        &keys,
        &policy(dry_run),
        &mut RunNotes::new(dry_run),
    )
}

fn page(next_key: &str, events: &[Value]) -> String {
    json!({ "pagination": { "nextPageKey": next_key }, "result": events }).to_string()
}

/// `ticket` in `status` at minute `minute` of a fixed day, owned by `owner` when given.
fn ev(ticket: &str, status: &str, minute: u32, owner: Option<&str>) -> Value {
    let mut event = support::ticket(
        ticket,
        status,
        &format!("2026-03-01T{:02}:{:02}:00Z", 8 + minute / 60, minute % 60),
    );
    if let Some(email) = owner {
        event["spectatorDetails"] = json!({
            "firstName": email.trim().split('@').next(),
            "lastName": "Example",
            "email": email,
            "organizerSpectatorPreference": { "allowPromoEmail": true, "allowThirdPartyEmail": false }
        });
    }
    event
}

fn to(mut event: Value, recipient: &str) -> Value {
    event["transfer"] = json!({ "recipientEmail": recipient });
    event
}

/// A ticket that cannot be mapped (its `lastUpdated` is no time).
fn broken(ticket: Option<&str>) -> Value {
    let mut event = json!({ "status": "INJECTED", "lastUpdated": "not a time" });
    if let Some(number) = ticket {
        event["taxNumber"] = json!(number);
    }
    event
}

/// Pages that exercise a batch's memory: the same ticket several times, a transfer started and
/// completed in one batch (the recipient's temporary contact created, then found and upgraded;
/// the line created, then confirmed), errors recorded, refreshed, resolved and recorded again.
fn story_pages() -> Vec<String> {
    let first = [
        ev("T1", "DOWNLOADED", 1, Some(ANN)),
        to(ev("T1", "PENDING_TRANSFER", 2, Some(ANN)), BOB),
        ev("T1", "TRANSFERRED", 3, Some(BOB)),
        ev("T2", "DOWNLOADED", 1, Some("bob@example.org")),
        to(
            ev("T3", "PENDING_TRANSFER", 1, Some(ANN)),
            "carol@example.org",
        ),
        broken(Some("E1")),
        broken(Some("E1")),
        broken(None),
        broken(None),
        broken(Some("E2")),
        ev("E2", "INJECTED", 1, None),
        broken(Some("E2")),
        ev("T1", "TRANSFERRED", 3, Some(BOB)),
    ];
    let second = [
        ev("E1", "INJECTED", 2, None),
        broken(None),
        to(
            ev("T4", "PENDING_TRANSFER", 5, Some("carol@example.org")),
            ANN,
        ),
        ev("T3", "TRANSFERRED", 6, Some("Carol@example.org")),
        ev("T4", "DOWNLOADED", 7, Some("carol@example.org")),
    ];
    vec![page("k1", &first), page("k2", &second)]
}

/// The pages of a generated organizer, `limit` events each.
fn feed_pages(feed: &Feed, limit: usize) -> Vec<String> {
    let mut pages = Vec::new();
    let mut key: Option<String> = None;
    for _ in 0..feed.len() / limit + 1 {
        let body = feed.page_json(key.as_deref(), limit).unwrap();
        key = read_page(body.as_bytes()).unwrap().next_page_key;
        pages.push(body);
    }
    pages
}

/// An SQLite store and a PostgreSQL one given the same pages, each batch counting the same; and
/// the environments of both, to compare their rows.
struct Pair {
    sqlite: Store,
    postgres: Store,
    reader: postgres::Client,
    sqlite_env: Env,
    postgres_env: Env,
}

impl Pair {
    fn given(cluster: &pg::Cluster, pages: impl IntoIterator<Item = String>) -> Pair {
        let sqlite_env = Env::sqlite();
        let mut sqlite = Store::open(&sqlite_env.store(), None).unwrap();
        let postgres_env = Env::postgres().expect("the cluster");
        let (mut postgres, reader) = pg_store(cluster, &postgres_env.pg().schema, false);
        for body in pages {
            let in_sqlite = apply(&mut sqlite, &body, StoredKey, false).unwrap();
            let in_postgres = apply(&mut postgres, &body, StoredKey, false).unwrap();
            assert_eq!(in_postgres, in_sqlite);
        }
        Pair {
            sqlite,
            postgres,
            reader,
            sqlite_env,
            postgres_env,
        }
    }
}

#[test]
fn the_same_pages_give_the_same_rows_ids_included_in_sqlite_and_in_postgresql() {
    let Some(cluster) = pg::cluster() else { return };
    let feed = Feed::generate(7, 400);
    // Batches longer than one read-ahead (1 000 tickets) too.
    let pages = story_pages().into_iter().chain(feed_pages(&feed, 1_200));
    let pair = Pair::given(cluster, pages);
    drop(pair.sqlite);
    let tables = dump::assert_same_rows(&pair.sqlite_env, &pair.postgres_env);
    let rows: usize = tables.iter().map(|(_, rows)| rows).sum();
    assert!(rows > 1500, "{rows} rows");
}

/// `replay --errors` on one store: every unresolved error's payload, mapped again under its id.
fn replay_errors(store: &mut Store) -> Counters {
    let payloads = store.unresolved_payloads().unwrap();
    let raws: Vec<(i64, Box<serde_json::value::RawValue>)> = payloads
        .into_iter()
        .map(|(id, payload)| (id, serde_json::from_str(&payload).unwrap()))
        .collect();
    let tickets = raws.iter().map(|(id, raw)| {
        Ok(Incoming {
            ticket: PageTicket::decode(raw),
            error_id: Some(*id),
        })
    });
    apply_page(
        store,
        "replay",
        tickets,
        &KeyCommit::UNTOUCHED,
        &policy(false),
        &mut RunNotes::new(false),
    )
    .unwrap()
}

#[test]
fn replaying_the_errors_changes_postgresql_as_it_changes_sqlite() {
    let Some(cluster) = pg::cluster() else { return };
    let Pair {
        mut sqlite,
        mut postgres,
        mut reader,
        sqlite_env,
        postgres_env,
    } = Pair::given(cluster, story_pages());
    // The operator fixes E2's payload; the unnumbered ticket stays broken.
    let fix =
        "UPDATE sync_error SET payload = replace(payload, 'not a time', '2026-03-01T09:00:00Z')
               WHERE ticket_number = 'E2' AND resolved_at IS NULL";
    sqlite_env.execute(fix);
    reader.batch_execute(fix).unwrap();
    let in_sqlite = replay_errors(&mut sqlite);
    let in_postgres = replay_errors(&mut postgres);
    assert_eq!((in_postgres.stored, in_postgres.failed), (1, 1));
    assert_eq!(in_postgres, in_sqlite);
    drop(sqlite);
    dump::assert_same_rows(&sqlite_env, &postgres_env);
}

/// The rows of a query as text, NULL as `NULL`.
fn texts(client: &mut postgres::Client, sql: &str) -> Vec<String> {
    client
        .query(sql, &[])
        .unwrap()
        .iter()
        .map(|row| {
            (0..row.len())
                .map(|i| row.get::<_, Option<String>>(i).unwrap_or("NULL".into()))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

#[test]
fn a_batch_applies_its_own_changes_in_order_before_writing_them_once() {
    let Some(cluster) = pg::cluster() else { return };
    let (mut store, mut reader) = pg_store(cluster, &cluster.schema(), false);
    let first = &story_pages()[0];
    apply(&mut store, first, StoredKey, false).unwrap();
    // T1 three times changed, then the same state again: one row, three history rows.
    assert_eq!(
        texts(
            &mut reader,
            "SELECT mobile_status || ' ' || count(*) OVER () FROM ticket WHERE ticket_number = 'T1'"
        ),
        ["TRANSFERRED 1"]
    );
    assert_eq!(
        texts(
            &mut reader,
            "SELECT mobile_status FROM ticket_history WHERE ticket_number = 'T1' ORDER BY id"
        ),
        ["DOWNLOADED", "PENDING_TRANSFER", "TRANSFERRED"]
    );
    // Bob's temporary contact, created by the transfer, found and upgraded when he became the
    // owner; T2's owner, the same address in another case, found it too.
    assert_eq!(
        texts(
            &mut reader,
            "SELECT email, temporary::text, has_internet_account::text, first_name FROM contact
             WHERE email_key = 'bob@example.org'"
        ),
        ["Bob@Example.org 0 1 Bob"]
    );
    assert_eq!(
        texts(
            &mut reader,
            "SELECT t.ticket_number FROM ticket t JOIN contact c ON c.id = t.cultural_contact_id
             WHERE c.email_key = 'bob@example.org' ORDER BY 1"
        ),
        ["T1", "T2"]
    );
    // The line the transfer created, confirmed by its completion in the same batch.
    assert_eq!(
        texts(
            &mut reader,
            "SELECT o.email_key, n.email_key, d.status FROM distribution d
             JOIN contact o ON o.id = d.old_contact_id JOIN contact n ON n.id = d.new_contact_id
             WHERE d.ticket_number = 'T1'"
        ),
        ["ann@example.org bob@example.org CONFIRMED"]
    );
    // E1 failed twice: one error; the unnumbered ticket twice: one; E2 failed, settled and
    // failed again: a resolved error and an unresolved one.
    assert_eq!(
        texts(
            &mut reader,
            "SELECT coalesce(ticket_number, '-'), (resolved_at IS NOT NULL)::text FROM sync_error ORDER BY id"
        ),
        ["E1 false", "- false", "E2 true", "E2 false"]
    );
}

#[test]
fn a_batch_of_a_thousand_tickets_costs_at_most_ten_round_trips() {
    let Some(cluster) = pg::cluster() else { return };
    let (mut store, _reader) = pg_store(cluster, &cluster.schema(), false);
    let feed = Feed::generate(3, 2_000);
    for (batch, body) in feed_pages(&feed, 1_000).iter().take(3).enumerate() {
        let counters = apply(&mut store, body, StoredKey, false).unwrap();
        assert_eq!(counters.fetched, 1_000);
        let cost = round_trips(&store);
        eprintln!("batch {batch}: 1 000 tickets in {cost} round trips");
        assert!(cost <= 10, "batch {batch}: {cost} round trips");
    }
    // Its writes go as one statement (a statement per table took 16 round trips, within the
    // twenty promised). A larger page costs the same: it is read ahead in one go, not per
    // thousand.
    let feed = Feed::generate(4, 3_000);
    let page = &feed_pages(&feed, 2_500)[0];
    assert_eq!(
        apply(&mut store, page, StoredKey, false).unwrap().fetched,
        2_500
    );
    let cost = round_trips(&store);
    assert!(cost <= 10, "2 500 tickets: {cost} round trips");
}

#[test]
fn a_run_whose_key_another_run_moved_exits_75_and_commits_nothing() {
    let Some(cluster) = pg::cluster() else { return };
    let (mut store, mut reader) = pg_store(cluster, &cluster.schema(), false);
    let pages = story_pages();
    // The run reads the key once; each batch it commits then fences on the key it saved.
    assert_eq!(store.pagination_key().unwrap(), None);
    apply(&mut store, &pages[0], Key(None), false).unwrap();
    apply(&mut store, &pages[0], Key(Some("k1")), false).unwrap();
    let before = texts(
        &mut reader,
        "SELECT (SELECT count(*) FROM sync_run)::text, (SELECT count(*) FROM ticket)::text",
    );
    // Another run, holding the lock this one lost, moves the key.
    reader
        .batch_execute("UPDATE sync_state SET pagination_key = 'moved'")
        .unwrap();
    let error = apply(&mut store, &pages[1], Key(Some("k1")), false).unwrap_err();
    assert_eq!(error.exit_code().code(), 75, "{error}");
    assert!(error.to_string().contains("lost its lock"), "{error}");
    let after = texts(
        &mut reader,
        "SELECT (SELECT count(*) FROM sync_run)::text, (SELECT count(*) FROM ticket)::text",
    );
    assert_eq!(after, before);
    assert_eq!(
        texts(&mut reader, "SELECT pagination_key FROM sync_state"),
        ["moved"]
    );
}

#[test]
fn a_dry_run_sees_its_own_batches_and_commits_nothing() {
    let Some(cluster) = pg::cluster() else { return };
    let (mut store, mut reader) = pg_store(cluster, &cluster.schema(), true);
    let body = &story_pages()[0];
    let first = apply(&mut store, body, StoredKey, true).unwrap();
    let again = apply(&mut store, body, StoredKey, true).unwrap();
    // The second batch reads what the first left in the run's transaction: nothing to store.
    assert!(first.stored > 0);
    assert_eq!((again.stored, again.failed), (0, first.failed));
    drop(store);
    // Not even the tables it created on the way: the schema is left as the run found it.
    assert_eq!(
        texts(
            &mut reader,
            "SELECT count(*)::text FROM pg_class WHERE relnamespace = current_schema()::regnamespace"
        ),
        ["0"]
    );
}

/// A `status` run object with its clock values replaced by whether they are set.
fn run_shape(run: &serde_json::Map<String, Value>) -> Vec<(String, Value)> {
    run.iter()
        .map(
            |(name, value)| match (dump::CLOCK_COLUMNS.contains(&name.as_str()), value) {
                (true, Value::String(at)) => {
                    let form = tixngo_feedback::timestamp::Timestamp::parse_rfc3339(at)
                        .is_some_and(|t| t.to_string() == *at);
                    (
                        name.clone(),
                        json!(format!("time in the store's form: {form}")),
                    )
                }
                _ => (name.clone(), value.clone()),
            },
        )
        .collect()
}

/// A live batch without tickets that leaves the feed behind, and a run that failed before its
/// first batch.
fn behind_by_one_empty_batch(store: &mut Store) {
    let keys = KeyCommit {
        before: Some("k2".into()),
        after: Some("k3".into()),
        save: true,
        feed: Some(FeedState {
            checked_at: None,
            caught_up: false,
            newest_change_at: Some("2026-03-01T08:07:00.000Z".into()),
            feed_lag_seconds: Some(12.5),
            runs_behind: 2,
        }),
    };
    apply_page(
        store,
        "sync",
        std::iter::empty(),
        &keys,
        &policy(false),
        &mut RunNotes::new(false),
    )
    .unwrap();
    let counters = Counters {
        fetched: 3,
        ..Counters::default()
    };
    let run = RunRecord {
        command: "replay",
        started_at: "2026-03-01T09:00:00.250Z",
        key_before: Some("k3"),
        key_after: None,
        counters: &counters,
        exit_code: 65,
        error: Some("bad data"),
    };
    store.record_run(&run).unwrap();
}

/// What the operator commands read and change, on one store.
fn commands(store: &mut Store) -> Vec<String> {
    let mut seen = Vec::new();
    let mut note = |what: &str, value: String| seen.push(format!("{what}: {value}"));
    let feed = store.feed_state().unwrap().unwrap();
    note(
        "feed",
        format!(
            "{:?}",
            FeedState {
                checked_at: feed.checked_at.map(|at| at.len().to_string()),
                ..feed
            }
        ),
    );
    let numbers = |list: &[&str]| list.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    note(
        "added",
        format!(
            "{:?}",
            store.add_skips(&numbers(&["S2", "S1", "S2"]), Some("fraud"))
        ),
    );
    note(
        "added again",
        format!("{:?}", store.add_skips(&numbers(&["S1", "S3"]), None)),
    );
    note(
        "removed",
        format!("{:?}", store.remove_skips(&numbers(&["S3", "S9"]))),
    );
    let skips = store.skip_entries().unwrap();
    note(
        "skips",
        format!(
            "{:?}",
            skips
                .iter()
                .map(|s| (&s.ticket_number, &s.reason))
                .collect::<Vec<_>>()
        ),
    );
    let errors = store.unresolved_errors().unwrap();
    let ids: Vec<i64> = errors.iter().map(|e| e.id).collect();
    note(
        "errors",
        format!(
            "{:?}",
            errors
                .iter()
                .map(|e| (e.id, &e.ticket_number, &e.reason))
                .collect::<Vec<_>>()
        ),
    );
    note(
        "payloads",
        format!("{:?}", store.unresolved_payloads().unwrap()),
    );
    let detail = store.sync_error(ids[0]).unwrap().unwrap();
    note(
        "detail",
        format!("{} {:?}", detail.payload, detail.resolution),
    );
    note(
        "no such error",
        format!("{:?}", store.sync_error(999).unwrap().is_none()),
    );
    note(
        "dismiss unknown",
        store
            .dismiss_errors(&[ids[0], 999], "x")
            .unwrap_err()
            .to_string(),
    );
    note(
        "dismiss twice",
        format!(
            "{:?}",
            store.dismiss_errors(&[ids[0], ids[0]], "x").is_err()
        ),
    );
    note(
        "dismissed",
        format!("{:?}", store.dismiss_errors(&[ids[0]], "handled").is_ok()),
    );
    note(
        "dismissed again",
        format!("{:?}", store.dismiss_errors(&[ids[0]], "x").is_err()),
    );
    note(
        "resolution",
        format!(
            "{:?}",
            store.sync_error(ids[0]).unwrap().unwrap().resolution
        ),
    );
    note(
        "cursor set",
        format!("{:?}", store.set_pagination_key("cursor set", Some("pk9"))),
    );
    note("key", format!("{:?}", store.pagination_state().unwrap().0));
    let status = store.status(5, 5).unwrap();
    note(
        "status",
        format!(
            "{:?} {} {} {:?} {} {}",
            status.pagination_key,
            status.skip_count,
            status.unresolved_errors,
            status.unresolved_error_tickets,
            status.tickets,
            status.contacts
        ),
    );
    for run in &status.runs {
        note("run", format!("{:?}", run_shape(run)));
    }
    seen
}

#[test]
fn the_commands_read_and_change_postgresql_as_they_do_sqlite() {
    let Some(cluster) = pg::cluster() else { return };
    let Pair {
        mut sqlite,
        mut postgres,
        ..
    } = Pair::given(cluster, story_pages());
    for store in [&mut sqlite, &mut postgres] {
        behind_by_one_empty_batch(store);
    }
    let in_sqlite = commands(&mut sqlite);
    let in_postgres = commands(&mut postgres);
    assert!(
        in_sqlite.iter().any(|line| line.starts_with("run: ")),
        "{in_sqlite:#?}"
    );
    for (want, got) in in_sqlite.iter().zip(&in_postgres) {
        assert_eq!(got, want);
    }
    assert_eq!(in_postgres.len(), in_sqlite.len());
}

#[test]
fn a_session_lost_mid_run_fails_it_74_and_a_lock_wait_75_without_sql_or_data() {
    let Some(cluster) = pg::cluster() else { return };
    let (mut store, mut reader) = pg_store(cluster, &cluster.schema(), false);
    let pages = story_pages();
    apply(&mut store, &pages[0], StoredKey, false).unwrap();
    // Another session holds the ticket table past the store's lock_timeout.
    let mut holder = reader.transaction().unwrap();
    holder
        .batch_execute("LOCK TABLE ticket IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let waited = apply(&mut store, &pages[1], StoredKey, false).unwrap_err();
    holder.rollback().unwrap();
    assert_eq!(waited.exit_code().code(), 75, "{waited}");
    terminate_store_session(&mut reader);
    let lost = apply(&mut store, &pages[1], StoredKey, false).unwrap_err();
    assert_eq!(lost.exit_code().code(), 74, "{lost}");
    for error in [&waited, &lost] {
        let message = error.to_string();
        for word in [
            "SELECT",
            "UPDATE",
            "INSERT",
            "ticket_number",
            "example.org",
            "E1",
        ] {
            assert!(!message.contains(word), "{message}");
        }
    }
}
