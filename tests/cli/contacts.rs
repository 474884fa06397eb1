use crate::support;

// SPEC §4.5, cultural contacts and distribution history, through the real binary and the simulator
// over HTTP: every rule of the table, the contact look-up, idempotence, the switch that turns
// contacts off, the counters, and the generated organizer end to end.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use support::{API_KEY, Env, Feed, Run, Simulator, dump};

const ANN: &str = "ann@example.org";
const BOB: &str = "bob@example.org";
const CAROL: &str = "carol@example.org";
const DAN: &str = "dan@example.org";
const ZED: &str = "zed@example.org";

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

/// One event of a hand-made feed: the full current state of a ticket.
#[derive(Clone)]
struct Ev(Value);

/// `ticket` in `status`, changed at minute `minute` of a fixed day (minutes order the states).
fn ev(ticket: &str, status: &str, minute: u32) -> Ev {
    Ev(support::ticket(
        ticket,
        status,
        &format!("2026-03-01T{:02}:{:02}:00Z", 8 + minute / 60, minute % 60),
    ))
}

impl Ev {
    /// `spectatorDetails` of the owner `email` (see [`details`]).
    fn owner(mut self, email: &str) -> Ev {
        self.0["spectatorDetails"] = details(email);
        self
    }

    /// `spectatorDetails` without any e-mail.
    fn owner_without_email(mut self) -> Ev {
        let mut owner = details(ZED);
        owner.as_object_mut().unwrap().remove("email");
        self.0["spectatorDetails"] = owner;
        self
    }

    /// `transfer.recipientEmail`.
    fn to(mut self, recipient: &str) -> Ev {
        self.0["transfer"] = json!({ "recipientEmail": recipient });
        self
    }

    fn previous(mut self, email: &str) -> Ev {
        self.0["previousOwner"] = json!({ "email": email });
        self
    }

    /// The same event for ticket `{prefix}{number}`.
    fn prefixed(mut self, prefix: &str) -> Ev {
        let number = self.0["taxNumber"].as_str().unwrap_or_default();
        self.0["taxNumber"] = json!(format!("{prefix}{number}"));
        self
    }
}

/// `spectatorDetails` for an e-mail: the first name is the address's local part (lowercase), so
/// that a contact's copied details can be checked against its e-mail in SQL.
fn details(email: &str) -> Value {
    let key = email.trim().to_ascii_lowercase();
    let local = key.split('@').next().unwrap_or_default();
    json!({
        "title": "Ms",
        "firstName": local,
        "lastName": "Example",
        "dateOfBirth": "1990-04-05",
        "email": email,
        "nationality": "CHE",
        "idCardNumber": format!("ID-{local}"),
        "phoneNumber": "+41790000000",
        "residenceCountry": "CHE",
        "language": "fr",
        "organizerSpectatorPreference": { "allowPromoEmail": true, "allowThirdPartyEmail": false }
    })
}

fn feed(events: &[Ev]) -> Feed {
    Feed::from_events(events.iter().map(|e| e.0.clone()).collect())
}

// ---------------------------------------------------------------------------------------------
// Runs and SQL views
// ---------------------------------------------------------------------------------------------

/// How a feed is cut into batches.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// Every event in one batch (one transaction).
    OneBatch,
    /// One event per batch, each its own transaction, all in one process.
    OneByOne,
}

const MODES: [Mode; 2] = [Mode::OneBatch, Mode::OneByOne];

impl Mode {
    fn args(self) -> &'static [&'static str] {
        match self {
            Mode::OneBatch => &["--batch-size", "1000"],
            Mode::OneByOne => &["--batch-size", "1", "--max-batches", "1000"],
        }
    }
}

/// Syncs the simulator's whole feed in `mode` with `run` (a `sync` against `sim`); returns the
/// `--json` summary, exit 0 and a complete sync checked.
fn sync_all(run: Run, sim: &Simulator, mode: Mode) -> Value {
    let summary = run.args(mode.args()).json();
    assert_eq!(summary["exit_code"], 0, "{summary}");
    assert_eq!(summary["caught_up"], true, "{summary}");
    assert_eq!(summary["fetched"], sim.feed().len(), "{summary}");
    if let Mode::OneBatch = mode {
        assert_eq!(summary["batches"], 1);
    }
    summary
}

/// Each ticket's cultural contact, as `T1 -> email_key` (`-` for none).
fn cultural(env: &Env) -> Vec<String> {
    column(
        env,
        "SELECT t.ticket_number || ' -> ' || coalesce(c.email_key, '-')
         FROM ticket t LEFT JOIN contact c ON c.id = t.cultural_contact_id
         ORDER BY t.ticket_number",
    )
}

/// Every distribution line, oldest first, as `T1: old -> new STATUS` (`-` for no old contact).
fn lines(env: &Env) -> Vec<String> {
    assert_eq!(
        env.int("SELECT count(*) FROM distribution WHERE action IS DISTINCT FROM 'DISTRIBUTE'"),
        0,
        "every line is a DISTRIBUTE"
    );
    column(
        env,
        "SELECT d.ticket_number || ': ' || coalesce(o.email_key, '-') || ' -> ' || n.email_key
                || ' ' || d.status
         FROM distribution d LEFT JOIN contact o ON o.id = d.old_contact_id
              JOIN contact n ON n.id = d.new_contact_id
         ORDER BY d.id",
    )
}

/// Every contact, in creation order, as `email_key full|temporary` (`odd` when the row fits
/// neither shape of SPEC §4.5; a full contact's first name is its local part, see [`details`]).
fn contacts(env: &Env) -> Vec<String> {
    column(
        env,
        "SELECT email_key || ' ' || CASE
            WHEN temporary = 1 AND has_internet_account = 0 AND kind = 'individual'
                 AND first_name = 'Pending' AND last_name = 'CREATION' THEN 'temporary'
            WHEN temporary = 0 AND has_internet_account = 1 AND kind = 'individual'
                 AND first_name = substr(email_key, 1, instr(email_key, '@') - 1)
                 AND last_name = 'Example' THEN 'full'
            ELSE 'odd' END
         FROM contact ORDER BY id",
    )
}

/// A one-column query as strings.
fn column(env: &Env, sql: &str) -> Vec<String> {
    env.rows(sql)
        .into_iter()
        .map(|mut row| row.remove(0))
        .collect()
}

/// The four contact counters of SPEC §6, in the order of the human summary.
const COUNTERS: [&str; 4] = [
    "contacts_created",
    "contacts_updated",
    "distributions_created",
    "distributions_updated",
];

fn json_counters(summary: &Value) -> [i64; 4] {
    COUNTERS.map(|name| {
        summary[name]
            .as_i64()
            .unwrap_or_else(|| panic!("{name} in {summary}"))
    })
}

/// The counters of the latest `sync_run` row, or their sums over every row.
fn run_counters(env: &Env, latest_only: bool) -> [i64; 4] {
    COUNTERS.map(|name| {
        let sql = if latest_only {
            format!("SELECT {name} FROM sync_run ORDER BY id DESC LIMIT 1")
        } else {
            format!("SELECT coalesce(sum({name}), 0) FROM sync_run")
        };
        env.int(&sql)
    })
}

/// `contacts +N ~M; distributions +N ~M` of a human summary, as the four counters.
fn human_counters(stdout: &str) -> [i64; 4] {
    let mut found = Vec::new();
    for label in ["contacts ", "distributions "] {
        let part = stdout
            .split("; ")
            .find_map(|part| part.strip_prefix(label))
            .unwrap_or_else(|| panic!("no {label:?} in {stdout:?}"));
        let (created, updated) = part
            .strip_prefix('+')
            .and_then(|rest| rest.split_once(" ~"))
            .unwrap_or_else(|| panic!("{label}{part:?} is not '+N ~M'"));
        found.push(created.parse::<i64>().unwrap());
        found.push(updated.trim().parse::<i64>().unwrap());
    }
    found.try_into().unwrap()
}

// ---------------------------------------------------------------------------------------------
// The rules of SPEC §4.5, story by story, within one batch and across batches
// ---------------------------------------------------------------------------------------------

/// A feed and what the store holds once it is synced, whichever way it is cut into batches.
struct Story {
    name: &'static str,
    events: Vec<Ev>,
    /// [`cultural`] afterwards.
    cultural: &'static [&'static str],
    /// [`lines`] afterwards.
    lines: &'static [&'static str],
    /// [`contacts`] afterwards.
    contacts: &'static [&'static str],
    /// A warning that stderr must show.
    warning: Option<&'static str>,
}

fn stories() -> Vec<Story> {
    let delivered = || ev("T1", "DOWNLOADED", 1).owner(ANN);
    let pending = |recipient: &str, minute| {
        ev("T1", "PENDING_TRANSFER", minute)
            .owner(ANN)
            .to(recipient)
    };
    let transferred = |owner: &str, previous: &str, minute| {
        ev("T1", "TRANSFERRED", minute)
            .owner(owner)
            .previous(previous)
    };
    vec![
        Story {
            name: "seed: a first-seen ticket gets its owner's full contact and no line",
            events: vec![delivered()],
            cultural: &["T1 -> ann@example.org"],
            lines: &[],
            contacts: &["ann@example.org full"],
            warning: None,
        },
        Story {
            name: "seed: a first-seen TRANSFERRED stops after the seed (its sender was never seen)",
            events: vec![transferred(BOB, ANN, 1)],
            cultural: &["T1 -> bob@example.org"],
            lines: &[],
            contacts: &["bob@example.org full"],
            warning: None,
        },
        Story {
            name: "seed: a stored ticket that gains an owner e-mail is seeded then, without a line",
            events: vec![
                ev("T1", "INJECTED", 1),
                ev("T1", "DOWNLOADED", 2).owner(DAN),
            ],
            cultural: &["T1 -> dan@example.org"],
            lines: &[],
            contacts: &["dan@example.org full"],
            // A ticket not yet downloaded has no owner: the normal state, not a warning.
            warning: None,
        },
        Story {
            name: "seed then pending: a first-seen PENDING_TRANSFER records the line from the seed",
            events: vec![pending(BOB, 1)],
            cultural: &["T1 -> ann@example.org"],
            lines: &["T1: ann@example.org -> bob@example.org PENDING"],
            contacts: &["ann@example.org full", "bob@example.org temporary"],
            warning: None,
        },
        Story {
            name: "seed then pending to the owner's own address: no second contact",
            events: vec![
                ev("T1", "PENDING_TRANSFER", 1)
                    .owner(ANN)
                    .to(" Ann@example.org"),
                ev("T1", "DOWNLOADED", 2).owner(ANN),
            ],
            cultural: &["T1 -> ann@example.org"],
            lines: &["T1: ann@example.org -> ann@example.org CANCELLED"],
            contacts: &["ann@example.org full"],
            warning: None,
        },
        Story {
            name: "pending: a temporary recipient and a PENDING line; the cultural contact stays",
            events: vec![delivered(), pending(BOB, 2)],
            cultural: &["T1 -> ann@example.org"],
            lines: &["T1: ann@example.org -> bob@example.org PENDING"],
            contacts: &["ann@example.org full", "bob@example.org temporary"],
            warning: None,
        },
        Story {
            name: "pending: the same state replayed, or re-sent later, adds nothing",
            events: vec![
                delivered(),
                pending(BOB, 2),
                pending(BOB, 2),
                pending("  Bob@Example.ORG ", 3),
            ],
            cultural: &["T1 -> ann@example.org"],
            lines: &["T1: ann@example.org -> bob@example.org PENDING"],
            contacts: &["ann@example.org full", "bob@example.org temporary"],
            warning: None,
        },
        Story {
            name: "pending: a transfer to another recipient cancels the first line",
            events: vec![delivered(), pending(BOB, 2), pending(CAROL, 3)],
            cultural: &["T1 -> ann@example.org"],
            lines: &[
                "T1: ann@example.org -> bob@example.org CANCELLED",
                "T1: ann@example.org -> carol@example.org PENDING",
            ],
            contacts: &[
                "ann@example.org full",
                "bob@example.org temporary",
                "carol@example.org temporary",
            ],
            warning: None,
        },
        Story {
            name: "pending: back to the first recipient, whose line was cancelled, adds a new one",
            events: vec![
                delivered(),
                pending(BOB, 2),
                pending(CAROL, 3),
                pending(BOB, 4),
            ],
            cultural: &["T1 -> ann@example.org"],
            lines: &[
                "T1: ann@example.org -> bob@example.org CANCELLED",
                "T1: ann@example.org -> carol@example.org CANCELLED",
                "T1: ann@example.org -> bob@example.org PENDING",
            ],
            contacts: &[
                "ann@example.org full",
                "bob@example.org temporary",
                "carol@example.org temporary",
            ],
            warning: None,
        },
        Story {
            name: "pending: to a recipient who has a contact already, creates none",
            events: vec![
                ev("T2", "DOWNLOADED", 1).owner(BOB),
                ev("T1", "DOWNLOADED", 2).owner(ANN),
                pending(BOB, 3),
            ],
            cultural: &["T1 -> ann@example.org", "T2 -> bob@example.org"],
            lines: &["T1: ann@example.org -> bob@example.org PENDING"],
            contacts: &["bob@example.org full", "ann@example.org full"],
            warning: None,
        },
        Story {
            name: "seed: a first-seen ticket of a pending recipient upgrades the temporary contact",
            events: vec![
                delivered(),
                pending(BOB, 2),
                ev("T2", "DOWNLOADED", 3).owner(" BOB@example.org"),
            ],
            cultural: &["T1 -> ann@example.org", "T2 -> bob@example.org"],
            lines: &["T1: ann@example.org -> bob@example.org PENDING"],
            contacts: &["ann@example.org full", "bob@example.org full"],
            warning: None,
        },
        Story {
            name: "pending: without transfer.recipientEmail, nothing but a warning",
            events: vec![delivered(), ev("T1", "PENDING_TRANSFER", 2).owner(ANN)],
            cultural: &["T1 -> ann@example.org"],
            lines: &[],
            contacts: &["ann@example.org full"],
            warning: Some("PENDING_TRANSFER without transfer.recipientEmail"),
        },
        Story {
            name: "failed: FAILURE cancels the line; the temporary contact stays",
            events: vec![
                delivered(),
                pending(BOB, 2),
                ev("T1", "FAILURE", 3).owner(ANN).to(BOB),
            ],
            cultural: &["T1 -> ann@example.org"],
            lines: &["T1: ann@example.org -> bob@example.org CANCELLED"],
            contacts: &["ann@example.org full", "bob@example.org temporary"],
            warning: None,
        },
        Story {
            name: "failed: FAILURE_TRANSFER cancels the line; the temporary contact stays",
            events: vec![
                delivered(),
                pending(BOB, 2),
                ev("T1", "FAILURE_TRANSFER", 3)
                    .owner(ANN)
                    .to(" BOB@example.org"),
            ],
            cultural: &["T1 -> ann@example.org"],
            lines: &["T1: ann@example.org -> bob@example.org CANCELLED"],
            contacts: &["ann@example.org full", "bob@example.org temporary"],
            warning: None,
        },
        Story {
            name: "failed: without a recipient, every pending line is cancelled; nothing created",
            events: vec![
                delivered(),
                pending(BOB, 2),
                ev("T1", "FAILURE", 3).owner(ANN),
            ],
            cultural: &["T1 -> ann@example.org"],
            lines: &["T1: ann@example.org -> bob@example.org CANCELLED"],
            contacts: &["ann@example.org full", "bob@example.org temporary"],
            warning: None,
        },
        Story {
            name: "failed: with a recipient, only the line to that recipient's contact is cancelled",
            events: vec![
                ev("T2", "DOWNLOADED", 1).owner(CAROL),
                delivered(),
                pending(BOB, 2),
                ev("T1", "FAILURE", 3).owner(ANN).to(CAROL),
                ev("T1", "FAILURE_TRANSFER", 4).owner(ANN).to(DAN),
            ],
            cultural: &["T1 -> ann@example.org", "T2 -> carol@example.org"],
            // No pending line to Carol, who has a contact: the pending state was missed, and
            // the failure is recorded as a CANCELLED line (SPEC §4.5); Dan has no contact.
            lines: &[
                "T1: ann@example.org -> bob@example.org PENDING",
                "T1: ann@example.org -> carol@example.org CANCELLED",
            ],
            contacts: &[
                "carol@example.org full",
                "ann@example.org full",
                "bob@example.org temporary",
            ],
            warning: None,
        },
        Story {
            name: "completed: TRANSFERRED confirms the pending line and upgrades the recipient",
            events: vec![delivered(), pending(BOB, 2), transferred(BOB, ANN, 3)],
            cultural: &["T1 -> bob@example.org"],
            lines: &["T1: ann@example.org -> bob@example.org CONFIRMED"],
            contacts: &["ann@example.org full", "bob@example.org full"],
            warning: None,
        },
        Story {
            name: "completed: TRANSFERRED without an earlier pending adds a CONFIRMED line",
            events: vec![delivered(), transferred(BOB, ANN, 2)],
            cultural: &["T1 -> bob@example.org"],
            lines: &["T1: ann@example.org -> bob@example.org CONFIRMED"],
            contacts: &["ann@example.org full", "bob@example.org full"],
            warning: None,
        },
        Story {
            name: "completed: to someone else than the pending recipient cancels that line",
            events: vec![delivered(), pending(BOB, 2), transferred(CAROL, ANN, 3)],
            cultural: &["T1 -> carol@example.org"],
            lines: &[
                "T1: ann@example.org -> bob@example.org CANCELLED",
                "T1: ann@example.org -> carol@example.org CONFIRMED",
            ],
            contacts: &[
                "ann@example.org full",
                "bob@example.org temporary",
                "carol@example.org full",
            ],
            warning: None,
        },
        Story {
            name: "completed (V4): DOWNLOADED with a new owner completes the pending transfer",
            events: vec![
                delivered(),
                pending(BOB, 2),
                ev("T1", "DOWNLOADED", 3).owner(BOB).previous(ANN),
            ],
            cultural: &["T1 -> bob@example.org"],
            lines: &["T1: ann@example.org -> bob@example.org CONFIRMED"],
            contacts: &["ann@example.org full", "bob@example.org full"],
            warning: None,
        },
        Story {
            name: "completed (V4): a new owner under any status, no pending, adds a CONFIRMED line",
            events: vec![
                delivered(),
                ev("T1", "ONLINE_ACTIVATED", 2).owner(" Bob@Example.org "),
            ],
            cultural: &["T1 -> bob@example.org"],
            lines: &["T1: ann@example.org -> bob@example.org CONFIRMED"],
            contacts: &["ann@example.org full", "bob@example.org full"],
            warning: None,
        },
        Story {
            name: "settled (V4): PENDING_TRANSFER then DOWNLOADED with the same owner cancels",
            events: vec![
                delivered(),
                pending(BOB, 2),
                ev("T1", "DOWNLOADED", 3).owner("ANN@example.org"),
            ],
            cultural: &["T1 -> ann@example.org"],
            lines: &["T1: ann@example.org -> bob@example.org CANCELLED"],
            contacts: &["ann@example.org full", "bob@example.org temporary"],
            warning: None,
        },
        Story {
            name: "chain: A -> B -> C through pending transfers",
            events: vec![
                delivered(),
                pending(BOB, 2),
                transferred(BOB, ANN, 3),
                ev("T1", "PENDING_TRANSFER", 4).owner(BOB).to(CAROL),
                transferred(CAROL, BOB, 5),
            ],
            cultural: &["T1 -> carol@example.org"],
            lines: &[
                "T1: ann@example.org -> bob@example.org CONFIRMED",
                "T1: bob@example.org -> carol@example.org CONFIRMED",
            ],
            contacts: &[
                "ann@example.org full",
                "bob@example.org full",
                "carol@example.org full",
            ],
            warning: None,
        },
        Story {
            name: "chain: A -> B -> C with straight TRANSFERRED hops",
            events: vec![
                delivered(),
                transferred(BOB, ANN, 2),
                transferred(CAROL, BOB, 3),
            ],
            cultural: &["T1 -> carol@example.org"],
            lines: &[
                "T1: ann@example.org -> bob@example.org CONFIRMED",
                "T1: bob@example.org -> carol@example.org CONFIRMED",
            ],
            contacts: &[
                "ann@example.org full",
                "bob@example.org full",
                "carol@example.org full",
            ],
            warning: None,
        },
        Story {
            name: "chain: A -> B -> A goes back to the sender's own contact",
            events: vec![
                delivered(),
                pending(BOB, 2),
                transferred(BOB, ANN, 3),
                transferred(ANN, BOB, 4),
            ],
            cultural: &["T1 -> ann@example.org"],
            lines: &[
                "T1: ann@example.org -> bob@example.org CONFIRMED",
                "T1: bob@example.org -> ann@example.org CONFIRMED",
            ],
            contacts: &["ann@example.org full", "bob@example.org full"],
            warning: None,
        },
        Story {
            name: "completed back to the cultural contact: the pending line is cancelled, not left pending",
            events: vec![delivered(), pending(BOB, 2), transferred(ANN, BOB, 3)],
            cultural: &["T1 -> ann@example.org"],
            lines: &["T1: ann@example.org -> bob@example.org CANCELLED"],
            contacts: &["ann@example.org full", "bob@example.org temporary"],
            warning: None,
        },
        Story {
            name: "look-up: e-mails are trimmed and compared ASCII-case-insensitively",
            events: vec![
                ev("T1", "DOWNLOADED", 1).owner("  Ann@Example.ORG "),
                ev("T2", "DOWNLOADED", 2).owner(ANN),
                ev("T1", "PENDING_TRANSFER", 3)
                    .owner("ann@EXAMPLE.org")
                    .to(" BOB@example.ORG\t"),
                ev("T1", "TRANSFERRED", 4).owner("bob@EXAMPLE.org"),
            ],
            cultural: &["T1 -> bob@example.org", "T2 -> ann@example.org"],
            lines: &["T1: ann@example.org -> bob@example.org CONFIRMED"],
            contacts: &["ann@example.org full", "bob@example.org full"],
            warning: None,
        },
        Story {
            name: "stale: an older state arriving later changes no contact and no line",
            events: vec![
                delivered(),
                pending(BOB, 2),
                transferred(BOB, ANN, 3),
                pending(BOB, 2),
                delivered(),
                pending(CAROL, 2),
            ],
            cultural: &["T1 -> bob@example.org"],
            lines: &["T1: ann@example.org -> bob@example.org CONFIRMED"],
            contacts: &["ann@example.org full", "bob@example.org full"],
            warning: None,
        },
        Story {
            name: "failed: a pending state missed between two polls, to a known recipient, is a CANCELLED line",
            events: vec![
                ev("T2", "DOWNLOADED", 1).owner(BOB),
                delivered(),
                ev("T1", "FAILURE_TRANSFER", 3)
                    .owner(ANN)
                    .to(" Bob@Example.org"),
                ev("T1", "FAILURE_TRANSFER", 4).owner(ANN).to(BOB),
                ev("T1", "FAILURE", 5).owner(ANN).to(CAROL),
            ],
            cultural: &["T1 -> ann@example.org", "T2 -> bob@example.org"],
            lines: &["T1: ann@example.org -> bob@example.org CANCELLED"],
            contacts: &["bob@example.org full", "ann@example.org full"],
            warning: None,
        },
        Story {
            name: "statuses: another case, blanks and the legacy PENDING are the documented ones",
            events: vec![
                ev("T1", " downloaded", 1).owner(ANN),
                ev("T1", "Pending", 2).owner(ANN).to(BOB),
                ev("T1", "pending_tranfer ", 3).owner(ANN).to(BOB),
                ev("T1", "transferred", 4).owner(BOB).previous(ANN),
            ],
            cultural: &["T1 -> bob@example.org"],
            lines: &["T1: ann@example.org -> bob@example.org CONFIRMED"],
            contacts: &["ann@example.org full", "bob@example.org full"],
            warning: None,
        },
        Story {
            name: "unknown status: stored, warned about once; it settles nothing, an owner change still completes",
            events: vec![
                delivered(),
                pending(BOB, 2),
                ev("T1", "Suspended", 3).owner(ANN),
                ev("T2", "suspended", 4).owner(CAROL),
                ev("T1", "SUSPENDED", 5).owner(CAROL),
            ],
            cultural: &["T1 -> carol@example.org", "T2 -> carol@example.org"],
            lines: &[
                "T1: ann@example.org -> bob@example.org CANCELLED",
                "T1: ann@example.org -> carol@example.org CONFIRMED",
            ],
            contacts: &[
                "ann@example.org full",
                "bob@example.org temporary",
                "carol@example.org full",
            ],
            warning: Some(
                "statuses outside TIXNGO's documented lists, stored as sent; only an owner change moves a contact for them: SUSPENDED (3)",
            ),
        },
        Story {
            name: "no e-mail: no contact and no line, a warning; the other rules still apply",
            events: vec![
                ev("T2", "DOWNLOADED", 1),
                ev("T1", "INJECTED", 2).owner_without_email(),
                ev("T1", "PENDING_TRANSFER", 3)
                    .owner_without_email()
                    .to(BOB),
                ev("T1", "FAILURE", 4).owner_without_email().to(BOB),
                ev("T1", "TRANSFERRED", 5).owner_without_email(),
            ],
            cultural: &["T1 -> -", "T2 -> -"],
            lines: &["T1: - -> bob@example.org CANCELLED"],
            contacts: &["bob@example.org temporary"],
            warning: Some("without an owner e-mail"),
        },
    ]
}

#[test]
fn every_rule_gives_the_same_result_within_one_batch_and_across_batches() {
    for story in stories() {
        let sim = Simulator::start(feed(&story.events), API_KEY);
        for mode in MODES {
            let env = Env::new();
            let mut run = env.sync(&sim);
            if let Some(warning) = story.warning {
                run = run.stderr_has(warning);
            }
            let summary = sync_all(run, &sim, mode);
            let context = format!("{} ({mode:?})", story.name);
            let counted = json_counters(&summary);
            assert_eq!(
                run_counters(&env, false),
                counted,
                "{context}: sync_run adds up"
            );
            assert_eq!(
                [counted[0], counted[2]],
                [
                    env.int("SELECT count(*) FROM contact"),
                    env.int("SELECT count(*) FROM distribution")
                ],
                "{context}: every contact and line created is counted"
            );
            assert_eq!(
                cultural(&env),
                story.cultural,
                "{context}: cultural contacts"
            );
            assert_eq!(lines(&env), story.lines, "{context}: distribution lines");
            assert_eq!(contacts(&env), story.contacts, "{context}: contacts");
            assert_eq!(
                env.int("SELECT count(*) FROM ticket"),
                story.cultural.len() as i64,
                "{context}: every ticket is stored"
            );
        }
    }
}

/// The events of the story named `name`.
fn story_events(name: &str) -> Vec<Ev> {
    stories()
        .into_iter()
        .find(|story| story.name.starts_with(name))
        .unwrap_or_else(|| panic!("no story {name:?}"))
        .events
}

/// Every story's events in one feed, each story on its own ticket numbers (`S3-T1`…), so that the
/// stories share their contacts (Ann, Bob…) as an organizer's tickets do.
fn all_stories() -> Vec<Ev> {
    stories()
        .into_iter()
        .enumerate()
        .flat_map(|(index, story)| {
            story
                .events
                .into_iter()
                .map(move |event| event.prefixed(&format!("S{index}-")))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Seed and look-up
// ---------------------------------------------------------------------------------------------

#[test]
fn the_seed_copies_every_detail_of_spectator_details_into_a_full_contact() {
    let mut zoe = details("  Zoe.Muller@Example.ORG ");
    zoe["title"] = json!("Dr");
    zoe["firstName"] = json!("Zoë");
    zoe["lastName"] = json!("Müller-Łukasz");
    zoe["organizerSpectatorPreference"] =
        json!({ "allowPromoEmail": true, "allowThirdPartyEmail": false });
    let mut jose = details("jose@example.com");
    jose["firstName"] = json!("José");
    jose["organizerSpectatorPreference"] =
        json!({ "allowPromoEmail": false, "allowThirdPartyEmail": true });
    let mut yamada = details("yamada@example.net");
    yamada["firstName"] = json!("太郎");
    yamada
        .as_object_mut()
        .unwrap()
        .remove("organizerSpectatorPreference");
    let mut events = Vec::new();
    for (minute, (number, owner)) in [("T1", zoe), ("T2", jose), ("T3", yamada)]
        .into_iter()
        .enumerate()
    {
        let mut event = ev(number, "DOWNLOADED", minute as u32);
        event.0["spectatorDetails"] = owner;
        events.push(event);
    }
    let sim = Simulator::start(feed(&events), API_KEY);
    let env = Env::new();
    let summary = env.sync(&sim).json();
    assert_eq!(json_counters(&summary), [3, 0, 0, 0]);

    let columns = "email, title, first_name, last_name, birth_date, nationality, id_number, phone, \
                   residence_country, language, accept_institution_email, \
                   accept_third_party_email, temporary, has_internet_account, kind";
    let rows = env.rows(&format!("SELECT {columns} FROM contact ORDER BY id"));
    let expected =
        |email: &str, title: &str, first: &str, last: &str, local: &str, prefs: [&str; 2]| {
            [
                email,
                title,
                first,
                last,
                "1990-04-05",
                "CHE",
                &format!("ID-{local}"),
                "+41790000000",
                "CHE",
                "fr",
                prefs[0],
                prefs[1],
                "0",
                "1",
                "individual",
            ]
            .map(str::to_owned)
            .to_vec()
        };
    assert_eq!(
        rows,
        [
            // The address is stored trimmed, in the case it came in.
            expected(
                "Zoe.Muller@Example.ORG",
                "Dr",
                "Zoë",
                "Müller-Łukasz",
                "zoe.muller",
                ["1", "0"]
            ),
            expected(
                "jose@example.com",
                "Ms",
                "José",
                "Example",
                "jose",
                ["0", "1"]
            ),
            expected(
                "yamada@example.net",
                "Ms",
                "太郎",
                "Example",
                "yamada",
                ["NULL", "NULL"]
            ),
        ]
    );
    assert_eq!(
        env.int(
            "SELECT count(*) FROM ticket t JOIN contact c ON c.id = t.cultural_contact_id
             WHERE c.email_key = lower(trim(t.owner_email))"
        ),
        3,
        "each ticket's cultural contact is its owner's"
    );
    assert_eq!(
        env.int("SELECT count(*) FROM contact WHERE created_at IS NULL OR updated_at IS NULL"),
        0
    );
    assert_eq!(env.int("SELECT count(*) FROM distribution"), 0);
}

/// A contact that another S-360 tool inserted, naming only the columns of SPEC §4.3.
struct Competitor {
    email: &'static str,
    has_internet_account: i64,
    kind: &'static str,
    temporary: i64,
}

const fn rival(email: &'static str, internet: i64, kind: &'static str) -> Competitor {
    Competitor {
        email,
        has_internet_account: internet,
        kind,
        temporary: 0,
    }
}

#[test]
fn the_lookup_prefers_an_internet_account_then_an_individual_then_a_real_contact_then_the_lowest_id()
 {
    // (case, contacts sharing Ann's address in insertion order, index of the one to use)
    let cases: [(&str, &[Competitor], usize); 6] = [
        (
            "an internet account first, even a relay's",
            &[
                rival(ANN, 0, "individual"),
                rival(" Ann@Example.ORG ", 1, "relay"),
                rival(ANN, 0, "individual"),
            ],
            1,
        ),
        (
            "then an individual over a relay",
            &[
                rival(ANN, 1, "relay"),
                rival("ANN@EXAMPLE.ORG", 1, "individual"),
                rival(ANN, 1, "relay"),
            ],
            1,
        ),
        (
            "then the lowest id",
            &[
                rival(ANN, 0, "individual"),
                rival("\tann@example.org", 1, "individual"),
                rival("ann@example.org ", 1, "individual"),
            ],
            1,
        ),
        (
            "then a real contact over a temporary one, whatever their ids",
            &[
                Competitor {
                    email: ANN,
                    has_internet_account: 0,
                    kind: "individual",
                    temporary: 1,
                },
                rival(ANN, 0, "individual"),
            ],
            1,
        ),
        (
            "a real contact without internet account is used as it is",
            &[rival(" ann@EXAMPLE.org", 0, "relay")],
            0,
        ),
        (
            "a temporary contact loses to one with an internet account",
            &[
                Competitor {
                    email: ANN,
                    has_internet_account: 0,
                    kind: "individual",
                    temporary: 1,
                },
                rival(ANN, 1, "relay"),
            ],
            1,
        ),
    ];
    // T0 creates the store; then T1 goes from Zed to Ann through a pending transfer, and T2,
    // first seen, is Ann's own.
    let sim = Simulator::start(
        feed(&[
            ev("T0", "INJECTED", 0),
            ev("T1", "DOWNLOADED", 1).owner(ZED),
            ev("T1", "PENDING_TRANSFER", 2)
                .owner(ZED)
                .to(" ANN@Example.org "),
            ev("T1", "TRANSFERRED", 3).owner(ANN).previous(ZED),
            ev("T2", "DOWNLOADED", 4).owner("Ann@EXAMPLE.org"),
        ]),
        API_KEY,
    );
    for (case, competitors, preferred) in cases {
        let env = Env::new();
        env.sync(&sim).args(&["--batch-size", "1"]).run();
        // Near misses first, with every advantage: a loose match would pick them.
        for near_miss in ["ann@example.org.uk", "xann@example.org", "ann@example.or"] {
            env.execute(&format!(
                "INSERT INTO contact (email, first_name, last_name, has_internet_account, kind, temporary)
                 VALUES ({}, 'Near', 'Miss', 1, 'individual', 0)",
                support::sql_text(near_miss)
            ));
        }
        let ids: Vec<i64> = competitors
            .iter()
            .map(|c| {
                env.execute(&format!(
                    "INSERT INTO contact (email, first_name, last_name, has_internet_account, kind, temporary)
                     VALUES ({}, 'Ann', 'Other', {}, {}, {})",
                    support::sql_text(c.email),
                    c.has_internet_account,
                    support::sql_text(c.kind),
                    c.temporary
                ));
                env.int("SELECT max(id) FROM contact")
            })
            .collect();
        let before = env.rows("SELECT * FROM contact ORDER BY id");

        let summary = env.sync(&sim).json();
        assert_eq!(
            json_counters(&summary),
            [1, 0, 1, 1],
            "{case}: only Zed is created; T1's pending line is added then confirmed"
        );
        let chosen = ids[preferred];
        let zed = env.int("SELECT id FROM contact WHERE email = 'zed@example.org'");
        assert_eq!(
            env.rows("SELECT ticket_number, cultural_contact_id FROM ticket ORDER BY 1"),
            [
                ["T0", "NULL"],
                ["T1", &chosen.to_string()],
                ["T2", &chosen.to_string()]
            ],
            "{case}: the cultural contacts"
        );
        assert_eq!(
            env.rows("SELECT old_contact_id, new_contact_id, status FROM distribution"),
            [[zed.to_string(), chosen.to_string(), "CONFIRMED".into()]],
            "{case}: the pending line went to the preferred contact and was confirmed"
        );
        let mut after = env.rows("SELECT * FROM contact ORDER BY id");
        after.retain(|row| row[0] != zed.to_string());
        assert_eq!(
            after, before,
            "{case}: no contact found by e-mail was modified"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Upgrade in place, idempotence, stale states
// ---------------------------------------------------------------------------------------------

#[test]
fn a_completed_transfer_upgrades_the_temporary_contact_in_place() {
    let sim = Simulator::start(
        feed(&story_events("completed: TRANSFERRED confirms")),
        API_KEY,
    );
    let env = Env::new();
    let first = env.sync(&sim).args(&["--batch-size", "2"]).json();
    assert_eq!(
        json_counters(&first),
        [2, 0, 1, 0],
        "Ann, temporary Bob, the PENDING line"
    );
    let bob = env.int("SELECT id FROM contact WHERE email_key = 'bob@example.org'");
    let ann = env.int("SELECT id FROM contact WHERE email_key = 'ann@example.org'");
    let bob_before = env.rows(&format!(
        "SELECT created_at, temporary FROM contact WHERE id = {bob}"
    ));
    assert_eq!(bob_before[0][1], "1");
    assert_eq!(env.int("SELECT cultural_contact_id FROM ticket"), ann);

    let second = env.sync(&sim).args(&["--batch-size", "2"]).json();
    assert_eq!(
        json_counters(&second),
        [0, 1, 0, 1],
        "Bob upgraded, the PENDING line confirmed"
    );
    assert_eq!(env.int("SELECT count(*) FROM contact"), 2, "no new contact");
    assert_eq!(
        env.rows(&format!(
            "SELECT created_at, temporary, has_internet_account, first_name, last_name, id_number,
                    accept_institution_email, accept_third_party_email
             FROM contact WHERE id = {bob}"
        )),
        [[
            bob_before[0][0].as_str(),
            "0",
            "1",
            "bob",
            "Example",
            "ID-bob",
            "1",
            "0"
        ]],
        "the same row, with Bob's details"
    );
    assert_eq!(env.int("SELECT cultural_contact_id FROM ticket"), bob);
    assert_eq!(
        env.rows("SELECT old_contact_id, new_contact_id, status FROM distribution"),
        [[ann.to_string(), bob.to_string(), "CONFIRMED".into()]]
    );
    let third = env.sync(&sim).args(&["--batch-size", "2"]).json();
    assert_eq!(json_counters(&third), [0; 4]);
}

/// How a feed already synced is applied a second time.
#[derive(Clone, Copy, Debug)]
enum Again {
    /// `sync --pagination-key ''`: the feed from its beginning, the stored key untouched.
    FromTheStart,
    /// `replay FILE` of the feed as one diff document.
    Replay,
}

#[test]
fn the_same_batch_applied_twice_changes_nothing_the_second_time() {
    let events = all_stories();
    let sim = Simulator::start(feed(&events), API_KEY);
    let env = Env::new();
    let first = sync_all(env.sync(&sim), &sim, Mode::OneBatch);
    assert!(json_counters(&first).iter().all(|&n| n > 0), "{first}");
    let key = env.stored_key();
    let before = dump::contacts(&env);
    let file = env.write(
        "feed.json",
        sim.feed().page_json(None, 10_000).unwrap().as_bytes(),
        0o600,
    );
    for again in [Again::FromTheStart, Again::Replay, Again::FromTheStart] {
        let summary = match again {
            Again::FromTheStart => env
                .sync(&sim)
                .args(&["--pagination-key", "", "--batch-size", "1000"])
                .json(),
            Again::Replay => env.cmd(&["replay", file.to_str().unwrap()]).json(),
        };
        assert_eq!(json_counters(&summary), [0; 4], "{again:?}: {summary}");
        assert_eq!(summary["stored"], 0, "{again:?}: {summary}");
        assert_eq!(summary["fetched"], events.len(), "{again:?}: {summary}");
        assert_eq!(
            run_counters(&env, true),
            [0; 4],
            "{again:?}: the sync_run row"
        );
        assert_eq!(
            dump::contacts(&env),
            before,
            "{again:?}: contacts and lines unchanged"
        );
        assert_eq!(
            env.stored_key(),
            key,
            "{again:?}: the stored key is untouched"
        );
    }
}

#[test]
fn an_older_state_arriving_later_is_stale_and_changes_no_contact_or_line() {
    // The three states of a completed transfer, then three older ones re-sent.
    let sim = Simulator::start(feed(&story_events("stale:")), API_KEY);
    let env = Env::new();
    env.sync(&sim).args(&["--batch-size", "3"]).run();
    let before = dump::contacts(&env);
    let summary = env.sync(&sim).args(&["--batch-size", "3"]).json();
    assert_eq!(summary["stale"], 3, "{summary}");
    assert_eq!(json_counters(&summary), [0; 4], "{summary}");
    assert_eq!(dump::contacts(&env), before);
    assert_eq!(
        lines(&env),
        ["T1: ann@example.org -> bob@example.org CONFIRMED"]
    );
}

// ---------------------------------------------------------------------------------------------
// Contacts off
// ---------------------------------------------------------------------------------------------

#[test]
fn with_contacts_off_tickets_are_stored_without_contacts_or_lines() {
    let sim = Simulator::start(feed(&all_stories()), API_KEY);
    let tickets: BTreeSet<String> = all_stories()
        .iter()
        .map(|e| e.0["taxNumber"].as_str().unwrap().to_owned())
        .collect();
    let switches: [(&str, Option<&str>); 4] = [
        ("--no-contacts", None),
        ("TIXNGO_CONTACTS", Some("off")),
        ("TIXNGO_CONTACTS", Some(" FALSE ")),
        ("--no-contacts", Some("on")),
    ];
    for (switch, value) in switches {
        let env = Env::new();
        let mut run = env.sync(&sim).args(&["--batch-size", "1000"]);
        if switch.starts_with("--") {
            run = run.arg(switch);
        }
        if let Some(value) = value {
            run = run.env("TIXNGO_CONTACTS", value);
        }
        let summary = run.json();
        let case = format!("{switch} {value:?}");
        assert_eq!(summary["exit_code"], 0, "{case}: {summary}");
        assert_eq!(json_counters(&summary), [0; 4], "{case}: {summary}");
        assert_eq!(run_counters(&env, false), [0; 4], "{case}: sync_run");
        assert_eq!(
            env.int("SELECT count(*) FROM ticket"),
            tickets.len() as i64,
            "{case}: every ticket stored"
        );
        assert_eq!(
            env.int(
                "SELECT (SELECT count(*) FROM contact) + (SELECT count(*) FROM distribution)
                      + (SELECT count(*) FROM ticket WHERE cultural_contact_id IS NOT NULL)"
            ),
            0,
            "{case}: no contact, no line, no cultural contact"
        );
        // Contacts switched on later: a rerun of the feed seeds the tickets it stored.
        let rerun = env
            .sync(&sim)
            .args(&["--pagination-key", "", "--batch-size", "1000"])
            .json();
        assert!(json_counters(&rerun)[0] > 0, "{case}: {rerun}");
        assert_eq!(
            env.int(
                "SELECT count(*) FROM ticket t LEFT JOIN contact c ON c.id = t.cultural_contact_id
                 WHERE c.email_key IS DISTINCT FROM lower(trim(t.owner_email, ' \t\n\r'))"
            ),
            0,
            "{case}: every ticket has its owner's contact, and one without owner none"
        );
    }
    // A value that is neither on nor off is a usage error, and nothing is written.
    let env = Env::new();
    env.sync(&sim)
        .env("TIXNGO_CONTACTS", "maybe")
        .code(64)
        .stderr_has("TIXNGO_CONTACTS")
        .run();
    assert!(!env.store_exists());
}

// ---------------------------------------------------------------------------------------------
// Counters
// ---------------------------------------------------------------------------------------------

/// Contact and distribution rows by id, to see what a run created and updated.
fn rows_by_id(env: &Env, table: &str) -> BTreeMap<String, Vec<String>> {
    env.rows(&format!("SELECT * FROM {table}"))
        .into_iter()
        .map(|row| (row[0].clone(), row))
        .collect()
}

/// (created, updated) between two snapshots of a table.
fn diff(before: &BTreeMap<String, Vec<String>>, after: &BTreeMap<String, Vec<String>>) -> [i64; 2] {
    let created = after.keys().filter(|id| !before.contains_key(*id)).count();
    let updated = before
        .iter()
        .filter(|(id, row)| after.get(*id).is_some_and(|new| new != *row))
        .count();
    assert!(
        before.keys().all(|id| after.contains_key(id)),
        "no row is deleted"
    );
    [created as i64, updated as i64]
}

#[test]
fn the_counters_in_json_in_the_summary_and_in_sync_run_match_the_rows_changed() {
    // One ticket state per run, so that no contact or line is both created and updated by a
    // run, and what the SQL shows changed is exactly what the counters count.
    let events: Vec<Ev> = [
        "completed: to someone else",
        "chain: A -> B -> C through",
        "seed: a first-seen ticket of a pending recipient",
        "failed: FAILURE_TRANSFER",
    ]
    .iter()
    .enumerate()
    .flat_map(|(index, name)| {
        story_events(name)
            .into_iter()
            .map(move |event| event.prefixed(&format!("C{index}-")))
    })
    .collect();
    let sim = Simulator::start(feed(&events), API_KEY);
    let env = Env::new();
    let mut totals = [0; 4];
    for step in 0..events.len() {
        let (contacts_before, lines_before) = if step == 0 {
            Default::default()
        } else {
            (
                rows_by_id(&env, "contact"),
                rows_by_id(&env, "distribution"),
            )
        };
        let run = env.sync(&sim).args(&["--batch-size", "1"]);
        let counted = if step % 2 == 0 {
            json_counters(&run.json())
        } else {
            let ran = run.run();
            assert_eq!(ran.stdout.lines().count(), 1, "{}", ran.stdout);
            human_counters(&ran.stdout)
        };
        let [contacts_created, contacts_updated] =
            diff(&contacts_before, &rows_by_id(&env, "contact"));
        let [lines_created, lines_updated] = diff(&lines_before, &rows_by_id(&env, "distribution"));
        assert_eq!(
            counted,
            [
                contacts_created,
                contacts_updated,
                lines_created,
                lines_updated
            ],
            "step {step}: the printed counters are what changed"
        );
        assert_eq!(
            run_counters(&env, true),
            counted,
            "step {step}: the sync_run row"
        );
        for (total, n) in totals.iter_mut().zip(counted) {
            *total += n;
        }
    }
    assert!(
        totals.iter().all(|&n| n > 0),
        "every counter was exercised: {totals:?}"
    );
    assert_eq!(run_counters(&env, false), totals);
}

// ---------------------------------------------------------------------------------------------
// The generated organizer
// ---------------------------------------------------------------------------------------------

/// SQLite's form of the e-mail key (see `contact.email_key`).
fn key_sql(column: &str) -> String {
    // Blank, tab, line feed, carriage return, as characters in the literal (both SQL dialects).
    format!("lower(trim({column}, ' \t\n\r'))")
}

/// Asserts that a query finds nothing, showing what it found.
fn none(env: &Env, what: &str, sql: &str) {
    let found = env.rows(sql);
    assert!(
        found.is_empty(),
        "{what}: {} rows, first {:?}",
        found.len(),
        &found[..found.len().min(5)]
    );
}

/// The invariants of SPEC §4.5 that hold for any feed of the generator once it is synced to
/// the end (its owners change only by completed transfers, recipients always differ from the
/// owner, and a ticket without an owner e-mail is never transferred).
fn check_invariants(env: &Env) {
    let owner_key = key_sql("t.owner_email");
    none(
        env,
        "a ticket with an owner e-mail has the owner's contact as cultural contact",
        &format!(
            "SELECT t.ticket_number, t.owner_email, c.email FROM ticket t
             LEFT JOIN contact c ON c.id = t.cultural_contact_id
             WHERE t.owner_email IS NOT NULL AND c.email_key IS DISTINCT FROM {owner_key}"
        ),
    );
    none(
        env,
        "a ticket without an owner e-mail has no cultural contact and no line",
        "SELECT ticket_number FROM ticket t WHERE owner_email IS NULL
         AND (cultural_contact_id IS NOT NULL
              OR EXISTS (SELECT 1 FROM distribution d WHERE d.ticket_number = t.ticket_number))",
    );
    none(
        env,
        "no two contacts share an e-mail key",
        "SELECT email_key, count(*) FROM contact GROUP BY email_key HAVING count(*) > 1",
    );
    none(
        env,
        "every contact is either full or temporary, as SPEC §4.5 shapes them",
        "SELECT id, email, temporary, has_internet_account, kind, first_name FROM contact
         WHERE NOT ((temporary = 0 AND has_internet_account = 1 AND kind = 'individual'
                     AND first_name IS DISTINCT FROM 'Pending' AND accept_institution_email IS NOT NULL
                     AND accept_third_party_email IS NOT NULL)
                 OR (temporary = 1 AND has_internet_account = 0 AND kind = 'individual'
                     AND first_name = 'Pending' AND last_name = 'CREATION'))",
    );
    none(
        env,
        "a cultural contact holds its owner's details (a person's details never change)",
        "SELECT t.ticket_number, c.id FROM ticket t JOIN contact c ON c.id = t.cultural_contact_id
         WHERE c.temporary IS DISTINCT FROM 0
            OR c.title IS DISTINCT FROM t.owner_title OR c.first_name IS DISTINCT FROM t.owner_first_name
            OR c.last_name IS DISTINCT FROM t.owner_last_name OR c.birth_date IS DISTINCT FROM t.owner_birth_date
            OR c.nationality IS DISTINCT FROM t.owner_nationality OR c.id_number IS DISTINCT FROM t.owner_id_number
            OR c.phone IS DISTINCT FROM t.owner_phone OR c.residence_country IS DISTINCT FROM t.owner_residence_country
            OR c.language IS DISTINCT FROM t.owner_language",
    );
    none(
        env,
        "every owner ever seen has a full contact (temporary ones are for recipients only)",
        &format!(
            "SELECT DISTINCT h.owner_email FROM ticket_history h WHERE h.owner_email IS NOT NULL
             AND NOT EXISTS (SELECT 1 FROM contact c
                             WHERE c.email_key = {} AND c.temporary = 0)",
            key_sql("h.owner_email")
        ),
    );
    none(
        env,
        "a temporary contact is a recipient that never completed a transfer",
        "SELECT c.id, c.email FROM contact c WHERE c.temporary = 1
         AND (NOT EXISTS (SELECT 1 FROM distribution d WHERE d.new_contact_id = c.id)
              OR EXISTS (SELECT 1 FROM distribution d
                         WHERE d.new_contact_id = c.id AND d.status = 'CONFIRMED'))",
    );
    none(
        env,
        "every line goes from a contact to another one",
        "SELECT id FROM distribution
         WHERE old_contact_id IS NULL OR old_contact_id = new_contact_id OR action != 'DISTRIBUTE'",
    );
    none(
        env,
        "a ticket has one PENDING line while PENDING_TRANSFER, none otherwise",
        "SELECT t.ticket_number, t.mobile_status FROM ticket t
         WHERE (SELECT count(*) FROM distribution d
                WHERE d.ticket_number = t.ticket_number AND d.status = 'PENDING')
               != CASE WHEN t.mobile_status = 'PENDING_TRANSFER' THEN 1 ELSE 0 END",
    );
    none(
        env,
        "a PENDING line starts from the ticket's cultural contact",
        "SELECT d.id FROM distribution d JOIN ticket t USING (ticket_number)
         WHERE d.status = 'PENDING' AND d.old_contact_id IS DISTINCT FROM t.cultural_contact_id",
    );

    // The CONFIRMED lines of a ticket retrace its owners: from the initial owner, hop by hop, to
    // the cultural contact, one line per owner change in the ticket's history.
    let contact_of = |column: &str| {
        format!(
            "coalesce(CAST((SELECT id FROM contact WHERE email_key = {}) AS TEXT), '-')",
            key_sql(column)
        )
    };
    let tickets: BTreeMap<String, (String, String, String)> = env
        .rows(&format!(
            "SELECT ticket_number, coalesce(CAST(cultural_contact_id AS TEXT), '-'), {}, {} FROM ticket",
            contact_of("initial_owner_email"),
            contact_of("previous_owner_email")
        ))
        .into_iter()
        .map(|row| {
            (
                row[0].clone(),
                (row[1].clone(), row[2].clone(), row[3].clone()),
            )
        })
        .collect();
    let mut hops: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for row in env.rows(
        "SELECT ticket_number, old_contact_id, new_contact_id FROM distribution
         WHERE status = 'CONFIRMED' ORDER BY ticket_number, id",
    ) {
        hops.entry(row[0].clone())
            .or_default()
            .push((row[1].clone(), row[2].clone()));
    }
    let owner_changes: BTreeMap<String, usize> = env
        .rows(&format!(
            "SELECT ticket_number, count(*) FROM (
                SELECT ticket_number, {key} AS owner,
                       lag({key}) OVER (PARTITION BY ticket_number ORDER BY id) AS before
                FROM ticket_history) AS history
             WHERE owner IS NOT NULL AND before IS NOT NULL AND owner != before
             GROUP BY ticket_number",
            key = key_sql("owner_email")
        ))
        .into_iter()
        .map(|row| (row[0].clone(), row[1].parse().unwrap()))
        .collect();
    for (ticket, (cultural, initial, previous)) in &tickets {
        let chain = hops.get(ticket).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(
            chain.len(),
            owner_changes.get(ticket).copied().unwrap_or(0),
            "ticket {ticket}: one CONFIRMED line per owner change"
        );
        let Some((first, last)) = chain.first().zip(chain.last()) else {
            assert_eq!(
                previous, "-",
                "ticket {ticket}: a previous owner without a line"
            );
            continue;
        };
        assert_eq!(
            &first.0, initial,
            "ticket {ticket}: the chain starts at the initial owner"
        );
        assert_eq!(
            &last.1, cultural,
            "ticket {ticket}: the chain ends at the cultural contact"
        );
        assert_eq!(
            &last.0, previous,
            "ticket {ticket}: the last hop is from the previous owner"
        );
        for pair in chain.windows(2) {
            assert_eq!(
                pair[0].1, pair[1].0,
                "ticket {ticket}: the hops follow each other"
            );
        }
    }

    // The feed exercised every kind of line and contact.
    for (what, sql) in [
        (
            "CONFIRMED lines",
            "SELECT count(*) FROM distribution WHERE status = 'CONFIRMED'",
        ),
        (
            "CANCELLED lines",
            "SELECT count(*) FROM distribution WHERE status = 'CANCELLED'",
        ),
        (
            "temporary contacts",
            "SELECT count(*) FROM contact WHERE temporary = 1",
        ),
        (
            "tickets without owner e-mail",
            "SELECT count(*) FROM ticket WHERE owner_email IS NULL",
        ),
        (
            "upgraded contacts",
            "SELECT coalesce(sum(contacts_updated), 0) FROM sync_run",
        ),
        (
            "two-hop chains",
            "SELECT count(*) FROM (SELECT 1 FROM distribution WHERE status = 'CONFIRMED'
                                   GROUP BY ticket_number HAVING count(*) > 1) AS doubled",
        ),
        (
            "owner e-mails sent with spaces around",
            "SELECT count(*) FROM ticket WHERE owner_email != trim(owner_email)",
        ),
    ] {
        assert!(env.int(sql) > 0, "the generated feed has {what}");
    }
    // The sums of sync_run add up to the rows.
    let [created, updated, lines_created, lines_updated] = run_counters(env, false);
    assert_eq!(created, env.int("SELECT count(*) FROM contact"));
    assert_eq!(lines_created, env.int("SELECT count(*) FROM distribution"));
    assert!(
        (env.int("SELECT count(*) FROM distribution WHERE status = 'CANCELLED'")
            ..=env.int("SELECT count(*) FROM distribution WHERE status != 'PENDING'"))
            .contains(&lines_updated),
        "a line is updated at most once, and a CANCELLED line always was: {lines_updated}"
    );
    assert!(updated <= env.int("SELECT count(*) FROM contact WHERE temporary = 0"));
}

#[test]
fn the_generated_organizer_synced_to_the_end_keeps_the_contact_invariants() {
    let sim = Simulator::start(Feed::generate(42, 3000), API_KEY);
    let env = Env::new();
    let summary = env.sync(&sim).args(&["--max-batches", "100"]).json();
    assert_eq!(summary["caught_up"], true, "{summary}");
    assert_eq!(summary["fetched"], sim.feed().len(), "{summary}");
    assert!(summary["batches"].as_u64().unwrap() > 1, "{summary}");
    check_invariants(&env);
}

/// The contacts, lines and cultural contacts of a store, ids mapped through e-mail keys (unique,
/// see [`check_invariants`]) and without time columns.
fn content(env: &Env) -> Vec<Vec<String>> {
    let mut rows = env.rows(
        "SELECT 'contact', email_key, email, title, first_name, last_name, birth_date, nationality,
                id_number, phone, residence_country, language, accept_institution_email,
                accept_third_party_email, temporary, has_internet_account, kind
         FROM contact ORDER BY email_key",
    );
    rows.extend(env.rows(
        "SELECT 'line', d.ticket_number, o.email_key, n.email_key, d.action, d.status
         FROM distribution d LEFT JOIN contact o ON o.id = d.old_contact_id
              LEFT JOIN contact n ON n.id = d.new_contact_id
         ORDER BY d.ticket_number, d.id",
    ));
    rows.extend(env.rows(
        "SELECT 'ticket', t.ticket_number, c.email_key
         FROM ticket t LEFT JOIN contact c ON c.id = t.cultural_contact_id ORDER BY 2",
    ));
    rows
}

#[test]
fn the_generated_organizer_gives_the_same_contacts_in_one_batch_and_in_batches_of_97() {
    // 2 800 tickets make about 9 600 events: one batch of at most 10 000.
    let sim = Simulator::start(Feed::generate(7, 2800), API_KEY);
    assert!(sim.feed().len() <= 10_000);
    let whole = Env::new();
    let one = whole.sync(&sim).args(&["--batch-size", "10000"]).json();
    assert_eq!(
        (one["batches"].as_u64(), one["caught_up"].as_bool()),
        (Some(1), Some(true))
    );
    let batched = Env::new();
    let many = batched
        .sync(&sim)
        .args(&["--batch-size", "97", "--max-batches", "200"])
        .json();
    assert_eq!(many["caught_up"], true, "{many}");
    assert!(many["batches"].as_u64().unwrap() > 90, "{many}");
    check_invariants(&batched);
    assert_eq!(content(&whole), content(&batched));
    for field in COUNTERS.iter().chain(&["fetched", "stored", "stale"]) {
        assert_eq!(one[field], many[field], "{field}");
    }

    // The whole feed once more: nothing changes.
    let before = dump::contacts(&whole);
    let again = whole
        .sync(&sim)
        .args(&["--pagination-key", "", "--batch-size", "10000"])
        .json();
    assert_eq!(json_counters(&again), [0; 4], "{again}");
    assert_eq!(again["stored"], 0, "{again}");
    assert_eq!(dump::contacts(&whole), before);
}
