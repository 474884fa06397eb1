//! A stand-in for TIXNGO's *diff* endpoint (`GET {interface}/diff`, SPEC §4.1): a deterministic
//! organizer whose tickets go through injections, downloads, assignments, transfers, activations,
//! controls and deletions, served over real HTTP/1.1 by a small hand-written server that can also
//! misbehave on request ([`Fault`]). The failures the product must classify (SPEC §3, §4.2) are
//! produced on the wire, byte for byte, which is why the server is written on `std::net` rather
//! than on an HTTP library that would refuse to send broken HTTP.
//!
//! # The generated organizer ([`Feed::generate`])
//!
//! The feed is a change feed: every event is the FULL current state of one ticket at the moment it
//! changed, and the events of all tickets are interleaved in time order. Each ticket follows one
//! story, drawn with the shares below (the first sixteen tickets take the sixteen stories in order,
//! so any feed of sixteen tickets or more holds every story):
//!
//! | share | story | statuses | exercises |
//! |---|---|---|---|
//! | 38 % | delivered | `INJECTED` → `DOWNLOADED` (90 %) → `*_ACTIVATED` (60 % of those) → `CONTROLLED` (half of those) | the seed rule, the settled rule with nothing pending, attribute timestamps |
//! | 12 % | assigned | … → `ASSIGNED` (holder set) → `ASSIGNED` to another holder (25 %) or `DOWNLOADED` with `"holder": null` (20 %) → maybe activated | holder columns, the explicit `null` that clears a holder, history on a holder change |
//! | 10 % | transferred (V3) | … → `PENDING_TRANSFER` (`transfer.recipientEmail` = B, owner still A) → `TRANSFERRED` within the hour (owner B, `previousOwner` A) → maybe activated | pending rule and temporary contact, its upgrade, the `CONFIRMED` line |
//! | 7 % | transfer failed | … → `PENDING_TRANSFER` → `FAILURE_TRANSFER` (60 %, rejected) or `FAILURE` (organizer time-out, 1 h later), recipient kept → maybe activated | failed rule, `CANCELLED` line, the temporary contact stays |
//! | 5 % | transferred (V4) | … → `PENDING_TRANSFER` → `DOWNLOADED` with owner B (`previousOwner` A) | "owner changed" completes a transfer without `TRANSFERRED` |
//! | 5 % | transfer abandoned (V4) | … → `PENDING_TRANSFER` → `DOWNLOADED` with owner A | settled rule cancels the pending line |
//! | 4 % | chain | A → B → C; each hop is `PENDING_TRANSFER` + `TRANSFERRED`, or (30 % per hop) a straight `TRANSFERRED` | completed rule with and without a pending line, contact chains |
//! | 6 % | deleted | … → maybe activated → `DELETION_PENDING` → `DELETED` (80 %) | deletion statuses and `deletedAt` |
//! | 3 % | no owner e-mail | `spectatorDetails` absent, or present without `email`; maybe `ASSIGNED` | no seed, no completed transfer, the warning path |
//! | 4 % | V4 statuses | `NOT_DOWNLOADED` → `DOWNLOADED` → `DELETED` with `deletionReason: RESALE_PENDING` (a V4 deletion reason, not a status) or `NOT_DOWNLOADED` | V4 statuses, a field the mapping does not read |
//! | 1 % | re-injected | … → `DELETION_PENDING` → `DELETED` (`deletionReason` `RESOLD` half the time) → `INJECTED` with `deletedAt` and `downloadedAt` back to `null` → `DOWNLOADED` | an explicit `null` milestone clears it |
//! | 1 % | deactivated | … → activated → `DEACTIVATED` (`activatedAt: null`) → maybe activated, `CONTROLLED`, checked out (`controlledAt: null`) | milestones cleared |
//! | 1 % | legacy pending | … → `PENDING` (the legacy name, with `transfer.recipientEmail`) → `TRANSFERRED` | the legacy status is a pending transfer |
//! | 1 % | deleted while pending | … → `PENDING_TRANSFER` → `DELETION_PENDING` → `DELETED` | a deletion settles the pending line |
//! | 1 % | assigned (V4) | … → `DOWNLOADED` with a `holder` | a V4 assignment, without `ASSIGNED` |
//! | 1 % | sloppy statuses | `" injected"` → `"Downloaded "` → `"online_activated"` | statuses in another case or with blanks |
//!
//! [`Feed::generate_with_unknown_statuses`] gives the same organizer with the "V4 statuses" tickets
//! ending in `SUSPENDED`, a status TIXNGO does not document (a normal organizer sends none).
//!
//! Across all stories:
//! - spectators come from a shared pool (about three tickets per buyer, plus people who only ever
//!   receive transfers), so a recipient is often an existing owner and sometimes a new person;
//! - names come from a dozen cultures, most of them non-ASCII (José Núñez, Zoë Müller, Łukasz
//!   Wójcik, Søren Ødegård, Chloé Lefèvre, İbrahim Yılmaz, 山田 太郎, Γιώργος Παπαδόπουλος, …); e-mail
//!   addresses are ASCII (`jose.nunez.12@example.org`), and about 3 % of the e-mail fields carry
//!   the same address in another case with surrounding spaces (`"  Jose.Nunez.12@Example.Org "`), to
//!   exercise trimmed, case-insensitive matching;
//! - `lastUpdated` strictly increases per ticket and is written in varied RFC 3339 forms: mostly
//!   `Z`, some `+02:00`, `+01:00`, `-04:00` or `+00:00`, about a third with milliseconds;
//! - `attributes` always lists its seven milestones, `null` until reached, so absent and null
//!   values both occur;
//! - about 0.8 % of the tickets with two or more events get a stale re-send: an older state
//!   appears again after the ticket's last change, with its original, older `lastUpdated` (the
//!   stale rule of SPEC §4.4).
//!
//! The generator never produces an unmappable ticket: [`Fault::MissingTicketNumber`] and
//! [`Feed::from_events`] cover those. It uses its own PRNG (SplitMix64), so a `(seed, tickets)`
//! pair yields the same feed on every build and platform.
//!
//! # The server ([`Simulator`])
//!
//! Only `GET /organizer/tickets/diff?limit=N[&paginationKey=K]` is served; any other path is a
//! 404. For a diff request the queued fault (if any) is applied first, then the method (405), the
//! `x-api-key` header (401), `limit` (400 unless an integer in `1..=10000`) and `paginationKey`
//! (400 unless a key this feed issued). Every response carries `Connection: close`.

use std::collections::VecDeque;
use std::fmt::{self, Write as _};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// The feed
// ---------------------------------------------------------------------------------------------

/// An ordered list of ticket-change events, each serialized once, at construction.
///
/// A page is assembled by concatenating the pre-serialized events it holds: one copy per ticket,
/// no serialization at request time, so a page costs time linear in its size.
#[derive(Clone)]
pub struct Feed {
    /// The compact JSON of every event, back to back, in the order they were written (for a
    /// generated feed: ticket by ticket, not in feed order; a stale re-send shares the text of
    /// the state it repeats).
    text: String,
    /// Where each event of the feed, in feed order, lies in `text`.
    spans: Vec<Range<usize>>,
    /// The events as JSON values, parsed on first use (the server never needs them, and for a
    /// generated feed they would cost several times the memory of the text).
    values: OnceLock<Vec<Value>>,
    /// A match day's feed grows while it is served ([`Feed::match_day`]); `None`: all there.
    growth: Option<Arc<Growth>>,
}

/// A generous estimate of a generated ticket's serialized events, to size the text once.
const EXPECTED_BYTES_PER_TICKET: usize = 3_200;

impl Feed {
    /// The deterministic organizer described in the module documentation: `tickets` distinct
    /// tickets, about 3.5 events each on average, interleaved in time order.
    pub fn generate(seed: u64, tickets: usize) -> Feed {
        Feed::generate_organizer(&Organizer::new(seed, tickets), tickets)
    }

    /// The same organizer, except that the tickets of the "V4 statuses" story end in
    /// [`UNKNOWN_STATUS`], a status TIXNGO does not document.
    pub fn generate_with_unknown_statuses(seed: u64, tickets: usize) -> Feed {
        let organizer = Organizer {
            unknown_statuses: true,
            ..Organizer::new(seed, tickets)
        };
        Feed::generate_organizer(&organizer, tickets)
    }

    fn generate_organizer(organizer: &Organizer, tickets: usize) -> Feed {
        let mut text = String::with_capacity(tickets.saturating_mul(EXPECTED_BYTES_PER_TICKET));
        let mut timeline: Vec<TimelineEntry> = Vec::with_capacity(tickets.saturating_mul(4));
        for index in 0..tickets {
            let snapshots = organizer.write_ticket(index, &mut text);
            for (sequence, snapshot) in snapshots.into_iter().enumerate() {
                timeline.push(TimelineEntry {
                    at: snapshot.at,
                    ticket: index,
                    sequence,
                    span: snapshot.span,
                });
            }
        }
        // (ticket, sequence) is unique, so the order is total and the feed deterministic.
        timeline.sort_unstable_by_key(|entry| (entry.at, entry.ticket, entry.sequence));
        Feed {
            text,
            spans: timeline.into_iter().map(|entry| entry.span).collect(),
            values: OnceLock::new(),
            growth: None,
        }
    }

    /// A feed of hand-made events, served in the given order. Events need not be valid tickets
    /// (a test can serve a number, an array, a ticket without `taxNumber`…).
    pub fn from_events(events: Vec<Value>) -> Feed {
        let mut text = String::new();
        let spans = events
            .iter()
            .map(|event| {
                let start = text.len();
                let _ = write!(text, "{event}");
                start..text.len()
            })
            .collect();
        let values = OnceLock::new();
        // Just created, so `set` cannot find it already set.
        let _ = values.set(events);
        Feed {
            text,
            spans,
            values,
            growth: None,
        }
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The events in feed order (parsed from their serialized form on the first call).
    pub fn events(&self) -> &[Value] {
        self.values.get_or_init(|| {
            (0..self.len())
                .map(|index| {
                    serde_json::from_str(self.event_text(index))
                        .expect("the feed only holds JSON that it serialized itself")
                })
                .collect()
        })
    }

    /// The opaque key that addresses position `offset` of any feed: `pk1.<hex offset>.<checksum>`.
    /// The checksum makes an edited key invalid instead of silently pointing elsewhere.
    pub fn page_key(offset: usize) -> String {
        format!("pk1.{offset:x}.{:08x}", key_checksum(offset))
    }

    /// The exact 200 body the server returns for `paginationKey=key` (`None`: the start of the
    /// feed) and `limit`; `Err` when the key is not one this feed issued.
    pub fn page_json(&self, key: Option<&str>, limit: usize) -> Result<String, String> {
        let offset = self.resolve_key(key)?;
        Ok(self.page_at(offset, limit))
    }

    fn resolve_key(&self, key: Option<&str>) -> Result<usize, String> {
        let Some(key) = key else { return Ok(0) };
        let offset = key
            .strip_prefix("pk1.")
            .and_then(|rest| rest.split('.').next())
            .and_then(|hex| usize::from_str_radix(hex, 16).ok());
        match offset {
            // Comparing with the canonical form also rejects `+1f`, `1F`, leading zeros, etc.
            Some(offset) if offset <= self.len() && Feed::page_key(offset) == key => Ok(offset),
            _ => Err(format!("invalid paginationKey {key:?}")),
        }
    }

    /// The events a page starting at `offset` holds: up to `limit`, fewer at the end of the feed.
    fn page_range(&self, offset: usize, limit: usize) -> Range<usize> {
        let served = self.served_len();
        let offset = offset.min(served);
        offset..offset + limit.min(served - offset)
    }

    fn page_at(&self, offset: usize, limit: usize) -> String {
        let events = self.page_range(offset, limit);
        let tickets = events.clone().map(|index| self.event_text(index));
        page_body(&Feed::page_key(events.end), tickets)
    }

    fn event_text(&self, index: usize) -> &str {
        &self.text[self.spans[index].clone()]
    }

    /// The page at `offset` whose first ticket lost its `taxNumber` ([`Fault::MissingTicketNumber`]).
    fn page_without_first_tax_number(&self, offset: usize, limit: usize) -> String {
        let mut events = self.page_range(offset, limit);
        let next_key = Feed::page_key(events.end);
        // An empty page has no first ticket; a hand-made event that is no object has no field.
        let Some(mut first) = events
            .next()
            .and_then(|first| serde_json::from_str::<Value>(self.event_text(first)).ok())
        else {
            return self.page_at(offset, limit);
        };
        if let Some(fields) = first.as_object_mut() {
            fields.remove("taxNumber");
        }
        let first = first.to_string();
        let rest = events.map(|index| self.event_text(index));
        page_body(&next_key, std::iter::once(first.as_str()).chain(rest))
    }
}

impl fmt::Debug for Feed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Feed")
            .field("events", &self.len())
            .field("bytes", &self.text.len())
            .finish()
    }
}

/// The diff document `{"pagination":{"nextPageKey":…},"result":[…]}` around already serialized
/// tickets.
fn page_body<'a>(next_key: &str, tickets: impl Iterator<Item = &'a str> + Clone) -> String {
    const HEAD: &str = r#"{"pagination":{"nextPageKey":""#;
    const MIDDLE: &str = r#""},"result":["#;
    const TAIL: &str = "]}";
    let tickets_length: usize = tickets.clone().map(|ticket| ticket.len() + 1).sum();
    let mut body =
        String::with_capacity(HEAD.len() + next_key.len() + MIDDLE.len() + tickets_length + 2);
    body.push_str(HEAD);
    body.push_str(next_key);
    body.push_str(MIDDLE);
    for (position, ticket) in tickets.enumerate() {
        if position > 0 {
            body.push(',');
        }
        body.push_str(ticket);
    }
    body.push_str(TAIL);
    body
}

fn key_checksum(offset: usize) -> u32 {
    // The high half of a strong mix of the offset and a fixed salt ("pagekey1").
    (mix64(offset as u64 ^ 0x7061_6765_6b65_7931) >> 32) as u32
}

// ---------------------------------------------------------------------------------------------
// Match day
// ---------------------------------------------------------------------------------------------

/// When each event of a growing feed appears: `release[i]` after `started`, in feed order.
struct Growth {
    started: Instant,
    release: Vec<Duration>,
}

/// The match day's event, of which every ticket is.
const MATCH_EVENT_ID: &str = "EV-2026-MATCH";
/// Share of the tickets that also pass the gates (`CONTROLLED`) after their activation.
const CONTROLLED_PERCENT: usize = 90;

impl Feed {
    /// A match day compressed into `window` of real time from now: `changes` ticket changes of
    /// one event (each ticket activated, nine in ten then controlled at the gate; activations
    /// over the first four fifths of the window, each control within a fifth of it after its
    /// activation), each appearing in the feed at the moment its `lastUpdated` says. A run
    /// against it sees a feed that grows while it works, as on the day itself, at
    /// `changes / window` changes a second.
    pub fn match_day(seed: u64, changes: usize, window: Duration) -> Feed {
        let started = Instant::now();
        let wall_start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as Millis);
        let window_ms = window.as_millis().max(1) as u64;
        // Tickets × (1 + CONTROLLED_PERCENT %) = changes.
        let tickets = (changes * 100).div_ceil(100 + CONTROLLED_PERCENT);
        let controlled = changes.saturating_sub(tickets);
        let organizer = Organizer::new(seed, tickets);
        let mut text = String::with_capacity(changes.saturating_mul(1_200));
        let mut timeline = Vec::with_capacity(changes);
        for index in 0..tickets {
            let mut rng = Rng::stream(seed, STREAM_TICKET, index as u64);
            let activated = rng.below(window_ms * 4 / 5);
            let mut offsets = vec![activated];
            if index < controlled {
                offsets.push((activated + 1 + rng.below(window_ms / 5)).min(window_ms));
            }
            let ticket = MatchTicket::new(&organizer, index, &mut rng);
            for (step, &offset) in offsets.iter().enumerate() {
                let span = ticket.write(&mut text, step, wall_start, &offsets);
                timeline.push((offset, index, span));
            }
        }
        timeline.sort_unstable_by_key(|&(offset, index, _)| (offset, index));
        let release = timeline
            .iter()
            .map(|&(offset, ..)| Duration::from_millis(offset))
            .collect();
        Feed {
            text,
            spans: timeline.into_iter().map(|(.., span)| span).collect(),
            values: OnceLock::new(),
            growth: Some(Arc::new(Growth { started, release })),
        }
    }

    /// How many events the server shows now: all of them, or those of a growing feed whose
    /// moment has come.
    pub fn served_len(&self) -> usize {
        match &self.growth {
            None => self.len(),
            Some(growth) => {
                let elapsed = growth.started.elapsed();
                growth.release.partition_point(|&at| at <= elapsed)
            }
        }
    }
}

/// One ticket of a match day: bought, downloaded and assigned to its owner before the day.
struct MatchTicket<'a> {
    organizer: &'a Organizer,
    owner: usize,
    email: String,
    ticket_id: String,
    tax_number: String,
    activation: &'static str,
}

impl<'a> MatchTicket<'a> {
    fn new(organizer: &'a Organizer, index: usize, rng: &mut Rng) -> MatchTicket<'a> {
        let owner = rng.index(organizer.buyers);
        MatchTicket {
            organizer,
            owner,
            email: organizer.spectators[owner].email.clone(),
            ticket_id: organizer.ticket_id(index),
            tax_number: organizer.tax_number(index),
            activation: ACTIVATIONS[rng.index(ACTIVATIONS.len())],
        }
    }

    /// Appends the state after `step` (0: activated, 1: controlled) at `offsets[step]` after
    /// `wall_start`; returns where it lies.
    fn write(
        &self,
        text: &mut String,
        step: usize,
        wall_start: Millis,
        offsets: &[u64],
    ) -> Range<usize> {
        let at =
            |step: usize| format_rfc3339(wall_start + offsets[step] as Millis, Zone::Utc, true);
        let before_the_day = format_rfc3339(wall_start - DAY, Zone::Utc, true);
        let status = if step == 0 {
            self.activation
        } else {
            "CONTROLLED"
        };
        let start = text.len();
        JsonObject::write(text, |ticket| {
            ticket
                .string("ticketId", &self.ticket_id)
                .string("taxNumber", &self.tax_number)
                .string("eventId", MATCH_EVENT_ID)
                .string("status", status)
                .string("lastUpdated", &at(step))
                .object("spectatorDetails", |details| {
                    self.organizer.spectators[self.owner].write_details(details, Some(&self.email));
                })
                .object("attributes", |attributes| {
                    attributes
                        .string("injectedAt", &before_the_day)
                        .string("downloadedAt", &before_the_day)
                        .string("activatedAt", &at(0));
                    if step == 1 {
                        attributes
                            .string("checkedAt", &at(1))
                            .string("controlledAt", &at(1));
                    }
                });
        });
        start..text.len()
    }
}

// ---------------------------------------------------------------------------------------------
// Deterministic randomness and time
// ---------------------------------------------------------------------------------------------

/// SplitMix64, spelled out here so that a seed yields the same organizer on every build (a
/// crate's generator may change its stream between versions).
struct Rng(u64);

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's finalizer: a bijection on `u64`, so distinct inputs give distinct outputs.
fn mix64(value: u64) -> u64 {
    let mut z = value;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// An independent stream for one `purpose` (pool, ticket…) and `index` under `seed`, so a
    /// ticket's story does not depend on how many random numbers the tickets before it drew.
    fn stream(seed: u64, purpose: u64, index: u64) -> Rng {
        Rng(mix64(
            seed ^ mix64(purpose.wrapping_mul(GOLDEN_GAMMA) ^ mix64(index)),
        ))
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN_GAMMA);
        mix64(self.0)
    }

    /// Uniform in `0..bound` (`bound > 0`; the modulo bias is negligible at these sizes).
    fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }

    fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// Uniform in `low..=high`.
    fn between(&mut self, low: i64, high: i64) -> i64 {
        low + self.below((high - low + 1) as u64) as i64
    }

    fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn per_mille(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.index(items.len())]
    }

    /// Picks an item by integer weight.
    fn weighted<T: Copy>(&mut self, items: &[(T, u64)]) -> T {
        let total: u64 = items.iter().map(|(_, weight)| weight).sum();
        let mut roll = self.below(total);
        for &(item, weight) in items {
            if roll < weight {
                return item;
            }
            roll -= weight;
        }
        items[items.len() - 1].0
    }
}

/// Milliseconds since the Unix epoch.
type Millis = i64;

const SECOND: Millis = 1_000;
const MINUTE: Millis = 60 * SECOND;
const HOUR: Millis = 60 * MINUTE;
const DAY: Millis = 24 * HOUR;
/// 2026-02-01T00:00:00Z: tickets are injected during the 60 days that follow.
const SEASON_START: Millis = 1_769_904_000 * SECOND;
const SEASON_LENGTH: Millis = 60 * DAY;

/// How a timestamp's offset is written: `Z`, or `±HH:MM` (`+00:00` included).
#[derive(Clone, Copy)]
enum Zone {
    Utc,
    Offset { minutes: i32 },
}

const ZONE_MIX: [(Zone, u64); 5] = [
    (Zone::Utc, 65),
    (Zone::Offset { minutes: 120 }, 20),
    (Zone::Offset { minutes: 60 }, 5),
    (Zone::Offset { minutes: -240 }, 5),
    (Zone::Offset { minutes: 0 }, 5),
];

/// RFC 3339 for the instant `at`, written in `zone`, with or without milliseconds.
fn format_rfc3339(at: Millis, zone: Zone, with_millis: bool) -> String {
    let offset_minutes = match zone {
        Zone::Utc => 0,
        Zone::Offset { minutes } => minutes,
    };
    let local = at + Millis::from(offset_minutes) * MINUTE;
    let (year, month, day) = civil_from_days(local.div_euclid(DAY));
    let of_day = local.rem_euclid(DAY);
    let mut text = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        of_day / HOUR,
        of_day / MINUTE % 60,
        of_day / SECOND % 60
    );
    if with_millis {
        let _ = write!(text, ".{:03}", of_day % SECOND);
    }
    match zone {
        Zone::Utc => text.push('Z'),
        Zone::Offset { minutes } => {
            let sign = if minutes < 0 { '-' } else { '+' };
            let minutes = minutes.unsigned_abs();
            let _ = write!(text, "{sign}{:02}:{:02}", minutes / 60, minutes % 60);
        }
    }
    text
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

// ---------------------------------------------------------------------------------------------
// People
// ---------------------------------------------------------------------------------------------

/// A given name as written, its ASCII form for e-mail addresses, and the usual title.
type GivenName = (&'static str, &'static str, &'static str);
/// A family name as written and its ASCII form.
type FamilyName = (&'static str, &'static str);

struct Culture {
    /// ISO 3166-1 alpha-3, used for nationality and (mostly) residence.
    country: &'static str,
    /// ISO 639-1.
    language: &'static str,
    phone_prefix: &'static str,
    given: &'static [GivenName],
    family: &'static [FamilyName],
}

const CULTURES: &[Culture] = &[
    Culture {
        country: "ESP",
        language: "es",
        phone_prefix: "+34",
        given: &[
            ("José", "jose", "Mr"),
            ("María", "maria", "Ms"),
            ("Lucía", "lucia", "Ms"),
            ("Álvaro", "alvaro", "Mr"),
            ("Iñigo", "inigo", "Mr"),
        ],
        family: &[
            ("Núñez", "nunez"),
            ("García", "garcia"),
            ("Muñoz", "munoz"),
            ("Peña", "pena"),
        ],
    },
    Culture {
        country: "DEU",
        language: "de",
        phone_prefix: "+49",
        given: &[
            ("Zoë", "zoe", "Ms"),
            ("Jürgen", "juergen", "Mr"),
            ("Lena", "lena", "Ms"),
            ("Matthias", "matthias", "Mr"),
        ],
        family: &[
            ("Müller", "mueller"),
            ("Schröder", "schroeder"),
            ("Weiß", "weiss"),
            ("Becker", "becker"),
        ],
    },
    Culture {
        country: "POL",
        language: "pl",
        phone_prefix: "+48",
        given: &[
            ("Łukasz", "lukasz", "Mr"),
            ("Agnieszka", "agnieszka", "Ms"),
            ("Paweł", "pawel", "Mr"),
            ("Zofia", "zofia", "Ms"),
        ],
        family: &[
            ("Wójcik", "wojcik"),
            ("Kowalski", "kowalski"),
            ("Dąbrowska", "dabrowska"),
            ("Żak", "zak"),
        ],
    },
    Culture {
        country: "NOR",
        language: "no",
        phone_prefix: "+47",
        given: &[
            ("Søren", "soren", "Mr"),
            ("Åse", "ase", "Ms"),
            ("Ingrid", "ingrid", "Ms"),
            ("Bjørn", "bjorn", "Mr"),
        ],
        family: &[
            ("Ødegård", "odegard"),
            ("Hansen", "hansen"),
            ("Løvås", "lovas"),
            ("Berg", "berg"),
        ],
    },
    Culture {
        country: "FRA",
        language: "fr",
        phone_prefix: "+33",
        given: &[
            ("Chloé", "chloe", "Ms"),
            ("Élodie", "elodie", "Ms"),
            ("François", "francois", "Mr"),
            ("Hugo", "hugo", "Mr"),
        ],
        family: &[
            ("Lefèvre", "lefevre"),
            ("Dubois", "dubois"),
            ("Bérenger", "berenger"),
            ("Rousseau", "rousseau"),
        ],
    },
    Culture {
        country: "TUR",
        language: "tr",
        phone_prefix: "+90",
        given: &[
            ("İbrahim", "ibrahim", "Mr"),
            ("Ayşe", "ayse", "Ms"),
            ("Çağla", "cagla", "Ms"),
            ("Mehmet", "mehmet", "Mr"),
        ],
        family: &[
            ("Yılmaz", "yilmaz"),
            ("Öztürk", "ozturk"),
            ("Şahin", "sahin"),
            ("Çelik", "celik"),
        ],
    },
    Culture {
        country: "JPN",
        language: "ja",
        phone_prefix: "+81",
        given: &[
            ("太郎", "taro", "Mr"),
            ("花子", "hanako", "Ms"),
            ("健", "ken", "Mr"),
            ("さくら", "sakura", "Ms"),
        ],
        family: &[
            ("山田", "yamada"),
            ("佐藤", "sato"),
            ("鈴木", "suzuki"),
            ("高橋", "takahashi"),
        ],
    },
    Culture {
        country: "GRC",
        language: "el",
        phone_prefix: "+30",
        given: &[
            ("Γιώργος", "giorgos", "Mr"),
            ("Ελένη", "eleni", "Ms"),
            ("Νίκος", "nikos", "Mr"),
            ("Δήμητρα", "dimitra", "Ms"),
        ],
        family: &[
            ("Παπαδόπουλος", "papadopoulos"),
            ("Οικονόμου", "oikonomou"),
            ("Γεωργίου", "georgiou"),
        ],
    },
    Culture {
        country: "EGY",
        language: "ar",
        phone_prefix: "+20",
        given: &[
            ("محمد", "mohamed", "Mr"),
            ("فاطمة", "fatma", "Ms"),
            ("يوسف", "youssef", "Mr"),
        ],
        family: &[("حسن", "hassan"), ("علي", "ali"), ("إبراهيم", "ibrahim")],
    },
    Culture {
        country: "IRL",
        language: "en",
        phone_prefix: "+353",
        given: &[
            ("Seán", "sean", "Mr"),
            ("Siobhán", "siobhan", "Ms"),
            ("Aoife", "aoife", "Ms"),
            ("Cian", "cian", "Mr"),
        ],
        family: &[
            ("O'Brien", "obrien"),
            ("Ní Bhriain", "nibhriain"),
            ("Murphy", "murphy"),
            ("Walsh", "walsh"),
        ],
    },
    Culture {
        country: "BRA",
        language: "pt",
        phone_prefix: "+55",
        given: &[
            ("João", "joao", "Mr"),
            ("Luíza", "luiza", "Ms"),
            ("Ana", "ana", "Ms"),
            ("Thiago", "thiago", "Mr"),
        ],
        family: &[
            ("Gonçalves", "goncalves"),
            ("Araújo", "araujo"),
            ("Silva", "silva"),
            ("Conceição", "conceicao"),
        ],
    },
    Culture {
        country: "CHE",
        language: "de",
        phone_prefix: "+41",
        given: &[
            ("Léa", "lea", "Ms"),
            ("Noah", "noah", "Mr"),
            ("Luca", "luca", "Mr"),
            ("Anna", "anna", "Ms"),
        ],
        family: &[
            ("Rüegg", "rueegg"),
            ("Meier", "meier"),
            ("Favre", "favre"),
            ("Bianchi", "bianchi"),
        ],
    },
    Culture {
        country: "GBR",
        language: "en",
        phone_prefix: "+44",
        given: &[
            ("Oliver", "oliver", "Mr"),
            ("Amelia", "amelia", "Ms"),
            ("Harry", "harry", "Mr"),
            ("Isla", "isla", "Ms"),
        ],
        family: &[
            ("Smith", "smith"),
            ("Jones", "jones"),
            ("Taylor-Wood", "taylorwood"),
            ("Brown", "brown"),
        ],
    },
];

const EMAIL_DOMAINS: [&str; 3] = ["example.org", "example.com", "example.net"];

/// One person of the organizer's audience: a buyer, a transfer recipient or a ticket holder.
struct Spectator {
    title: &'static str,
    first_name: &'static str,
    last_name: &'static str,
    /// The canonical (lowercase, trimmed) address; see [`Organizer::email_as_sent`].
    email: String,
    date_of_birth: String,
    nationality: &'static str,
    id_card_number: String,
    phone_number: String,
    residence_country: &'static str,
    language: &'static str,
    allow_promo_email: bool,
    allow_third_party_email: bool,
}

impl Spectator {
    fn generate(rng: &mut Rng, number: usize) -> Spectator {
        let culture = rng.pick(CULTURES);
        let &(first_name, first_ascii, usual_title) = rng.pick(culture.given);
        let &(last_name, last_ascii) = rng.pick(culture.family);
        let title = if rng.percent(5) { "Dr" } else { usual_title };
        let domain = EMAIL_DOMAINS[number % EMAIL_DOMAINS.len()];
        let residence_country = if rng.percent(15) {
            rng.pick(CULTURES).country
        } else {
            culture.country
        };
        let id_letters: String = (0..2)
            .map(|_| char::from(b'A' + rng.below(26) as u8))
            .collect();
        Spectator {
            title,
            first_name,
            last_name,
            // The number keeps addresses unique while names repeat.
            email: format!("{first_ascii}.{last_ascii}.{number}@{domain}"),
            date_of_birth: format!(
                "{:04}-{:02}-{:02}",
                rng.between(1945, 2010),
                rng.between(1, 12),
                rng.between(1, 28)
            ),
            nationality: culture.country,
            id_card_number: format!("{id_letters}{:07}", rng.below(10_000_000)),
            phone_number: format!(
                "{}{}{:08}",
                culture.phone_prefix,
                rng.between(6, 7),
                rng.below(100_000_000)
            ),
            residence_country,
            language: culture.language,
            allow_promo_email: rng.percent(40),
            allow_third_party_email: rng.percent(15),
        }
    }

    /// `spectatorDetails`; `email` is `None` for the "no owner e-mail" story.
    fn write_details(&self, details: &mut JsonObject<'_>, email: Option<&str>) {
        details
            .string("title", self.title)
            .string("firstName", self.first_name)
            .string("lastName", self.last_name)
            .string("dateOfBirth", &self.date_of_birth);
        if let Some(email) = email {
            details.string("email", email);
        }
        details
            .string("nationality", self.nationality)
            .string("idCardNumber", &self.id_card_number)
            .string("phoneNumber", &self.phone_number)
            .string("residenceCountry", self.residence_country)
            .string("language", self.language)
            .object("organizerSpectatorPreference", |preference| {
                preference
                    .boolean("allowPromoEmail", self.allow_promo_email)
                    .boolean("allowThirdPartyEmail", self.allow_third_party_email);
            });
    }

    /// `holder`: the assignee, of whom TIXNGO knows no e-mail.
    fn write_as_holder(&self, holder: &mut JsonObject<'_>) {
        holder
            .string("firstName", self.first_name)
            .string("lastName", self.last_name)
            .string("dateOfBirth", &self.date_of_birth)
            .string("idCardNumber", &self.id_card_number)
            .string("nationality", self.nationality);
    }

    /// `previousOwner` / `initialOwner`.
    fn write_as_owner_reference(&self, owner: &mut JsonObject<'_>, email: &str) {
        owner
            .string("email", email)
            .string("firstName", self.first_name)
            .string("lastName", self.last_name);
    }
}

/// Writes a JSON object straight into a string, fields in the order given. The generator writes
/// hundreds of megabytes, several times faster this way than through `serde_json::Value`, and
/// the events keep SPEC §4.1's field order, which makes the feed easier to read.
struct JsonObject<'a> {
    out: &'a mut String,
    empty: bool,
}

impl JsonObject<'_> {
    /// Writes `{`, what `fill` adds, `}`.
    fn write(out: &mut String, fill: impl FnOnce(&mut JsonObject<'_>)) {
        out.push('{');
        fill(&mut JsonObject { out, empty: true });
        out.push('}');
    }

    /// Field names are identifiers of this file: they need no escaping.
    fn key(&mut self, key: &str) -> &mut String {
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        self.out.push('"');
        self.out.push_str(key);
        self.out.push_str("\":");
        self.out
    }

    fn string(&mut self, key: &str, value: &str) -> &mut Self {
        write_json_string(self.key(key), value);
        self
    }

    fn boolean(&mut self, key: &str, value: bool) -> &mut Self {
        self.key(key).push_str(if value { "true" } else { "false" });
        self
    }

    fn null(&mut self, key: &str) -> &mut Self {
        self.key(key).push_str("null");
        self
    }

    fn object(&mut self, key: &str, fill: impl FnOnce(&mut JsonObject<'_>)) -> &mut Self {
        JsonObject::write(self.key(key), fill);
        self
    }
}

/// A JSON string literal: quotes, backslashes and control characters escaped, the rest as is.
fn write_json_string(out: &mut String, value: &str) {
    out.push('"');
    for character in value.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            control if control < ' ' => {
                let _ = write!(out, "\\u{:04x}", u32::from(control));
            }
            other => out.push(other),
        }
    }
    out.push('"');
}

/// The same address as TIXNGO sometimes relays it: each part capitalized, stray spaces around.
fn sloppy_email(email: &str) -> String {
    let mut sloppy = String::with_capacity(email.len() + 3);
    sloppy.push_str("  ");
    let mut at_part_start = true;
    for character in email.chars() {
        sloppy.push(if at_part_start {
            character.to_ascii_uppercase()
        } else {
            character
        });
        at_part_start = matches!(character, '.' | '@');
    }
    sloppy.push(' ');
    sloppy
}

// ---------------------------------------------------------------------------------------------
// Tickets and their stories
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Story {
    Delivered,
    Assigned,
    TransferredV3,
    TransferFailed,
    TransferredV4,
    TransferAbandoned,
    TransferChain,
    Deleted,
    NoOwnerEmail,
    V4Statuses,
    Reinjected,
    Deactivated,
    LegacyPending,
    DeletedWhilePending,
    AssignedV4,
    SloppyStatuses,
    /// Only in [`Feed::generate_with_unknown_statuses`]: a normal organizer sends none.
    UnknownStatus,
}

/// The stories and their shares in percent (documented in the module header).
const STORY_MIX: [(Story, u64); 16] = [
    (Story::Delivered, 38),
    (Story::Assigned, 12),
    (Story::TransferredV3, 10),
    (Story::TransferFailed, 7),
    (Story::TransferredV4, 5),
    (Story::TransferAbandoned, 5),
    (Story::TransferChain, 4),
    (Story::Deleted, 6),
    (Story::NoOwnerEmail, 3),
    (Story::V4Statuses, 4),
    (Story::Reinjected, 1),
    (Story::Deactivated, 1),
    (Story::LegacyPending, 1),
    (Story::DeletedWhilePending, 1),
    (Story::AssignedV4, 1),
    (Story::SloppyStatuses, 1),
];

/// A status TIXNGO does not document, for [`Feed::generate_with_unknown_statuses`].
pub const UNKNOWN_STATUS: &str = "SUSPENDED";

const EVENT_IDS: [&str; 6] = [
    "EV-2026-001",
    "EV-2026-002",
    "EV-2026-003",
    "EV-2026-004",
    "EV-2026-005",
    "EV-2026-006",
];

const ACTIVATIONS: [&str; 4] = [
    "ONLINE_ACTIVATED",
    "OFFLINE_ACTIVATED",
    "MANUAL_ACTIVATED",
    "BT_ACTIVATED",
];

/// The statuses under which TIXNGO sends `transfer.recipientEmail` (`PENDING` is the legacy name
/// of `PENDING_TRANSFER`).
const STATUSES_WITH_RECIPIENT: [&str; 4] =
    ["PENDING_TRANSFER", "FAILURE_TRANSFER", "FAILURE", "PENDING"];

/// The `attributes` milestones, in the order of [`MILESTONE_NAMES`].
#[derive(Clone, Copy)]
enum Milestone {
    Injected,
    Downloaded,
    Assigned,
    Activated,
    Checked,
    Controlled,
    Deleted,
}

const MILESTONE_NAMES: [&str; 7] = [
    "injectedAt",
    "downloadedAt",
    "assignedAt",
    "activatedAt",
    "checkedAt",
    "controlledAt",
    "deletedAt",
];

/// Share of e-mail fields sent in the sloppy form, in per mille.
const SLOPPY_EMAIL_PER_MILLE: u64 = 30;
/// Share of tickets (with two or more events) that get a stale re-send, in per mille.
const STALE_RESEND_PER_MILLE: u64 = 8;

/// Random streams, one per purpose, so that changing one kind of draw never shifts the others.
const STREAM_POOL: u64 = 1;
const STREAM_TICKET: u64 = 2;

/// The organizer's fixed data: its audience and the seed the tickets derive from.
struct Organizer {
    seed: u64,
    /// Buyers first (`..buyers`), then people who only ever receive transfers.
    spectators: Vec<Spectator>,
    buyers: usize,
    /// Mixed into every ticket id, so that seeds differ in their ids.
    ticket_id_salt: u64,
    /// Added to every tax number's permuted index, so that seeds differ in their numbers.
    tax_number_shift: u64,
    /// The V4-statuses story ends in [`UNKNOWN_STATUS`] instead.
    unknown_statuses: bool,
}

/// Who the ticket's current owner (`spectatorDetails`) is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Owner {
    Spectator(usize),
    /// `spectatorDetails` without `email`.
    WithoutEmail(usize),
    /// No `spectatorDetails` at all.
    Unknown,
}

/// The `holder` field: absent until a first assignment, then an assignee or an explicit `null`.
#[derive(Clone, Copy)]
enum Holder {
    NeverAssigned,
    Assignee(usize),
    Cleared,
}

/// One state of one ticket, serialized.
struct Snapshot {
    at: Millis,
    /// Where its JSON lies in the feed's text.
    span: Range<usize>,
}

struct TimelineEntry {
    /// Where the event sits in the feed (its `lastUpdated`, except for a stale re-send).
    at: Millis,
    ticket: usize,
    sequence: usize,
    span: Range<usize>,
}

impl Organizer {
    fn new(seed: u64, tickets: usize) -> Organizer {
        let buyers = (tickets / 3).max(8);
        let recipients_only = (tickets / 10).max(4);
        let mut rng = Rng::stream(seed, STREAM_POOL, 0);
        let spectators = (0..buyers + recipients_only)
            .map(|number| Spectator::generate(&mut rng, number))
            .collect();
        Organizer {
            seed,
            spectators,
            buyers,
            ticket_id_salt: rng.next_u64(),
            tax_number_shift: rng.below(100_000_000),
            unknown_statuses: false,
        }
    }

    /// Writes the ticket's events to `text`, in its own time order, stale re-send included.
    fn write_ticket(&self, index: usize, text: &mut String) -> Vec<Snapshot> {
        let mut rng = Rng::stream(self.seed, STREAM_TICKET, index as u64);
        // The first tickets take every story once, so that even a tiny feed holds them all.
        let story = match STORY_MIX.get(index) {
            Some(&(story, _)) => story,
            None => rng.weighted(&STORY_MIX),
        };
        let story = match story {
            Story::V4Statuses if self.unknown_statuses => Story::UnknownStatus,
            story => story,
        };
        let buyer = rng.index(self.buyers);
        let mut ticket = TicketWriter {
            organizer: self,
            text,
            ticket_id: self.ticket_id(index),
            tax_number: self.tax_number(index),
            barcode: format!("{:018}", rng.below(1_000_000_000_000_000_000)),
            event_id: EVENT_IDS[rng.index(EVENT_IDS.len())],
            clock: SEASON_START + rng.between(0, SEASON_LENGTH),
            rng,
            status: "",
            owner: Owner::Spectator(buyer),
            initial_owner: Some(buyer),
            previous_owner: None,
            holder: Holder::NeverAssigned,
            recipient: None,
            deletion_reason: None,
            milestones: Default::default(),
            snapshots: Vec::with_capacity(6),
        };
        ticket.live(story);
        ticket.maybe_resend_stale_state();
        ticket.snapshots
    }

    /// A bijection of the index: ticket ids are unique.
    fn ticket_id(&self, index: usize) -> String {
        format!("TX-{:016X}", mix64(self.ticket_id_salt ^ index as u64))
    }

    /// 48 271 is prime to 10^8, so index ↦ index·48 271 mod 10^8 is a permutation: tax numbers
    /// are unique below 10^8 tickets.
    fn tax_number(&self, index: usize) -> String {
        format!(
            "2026{:08}",
            (index as u64 * 48_271 + self.tax_number_shift) % 100_000_000
        )
    }

    /// The address as this event carries it: usually canonical, sometimes sloppy.
    fn email_as_sent(&self, spectator: usize, rng: &mut Rng) -> String {
        let email = &self.spectators[spectator].email;
        if rng.per_mille(SLOPPY_EMAIL_PER_MILLE) {
            sloppy_email(email)
        } else {
            email.clone()
        }
    }
}

/// A ticket being lived through its story: its current state and the events emitted so far.
struct TicketWriter<'a> {
    organizer: &'a Organizer,
    /// The feed's text, which the events are appended to.
    text: &'a mut String,
    rng: Rng,
    ticket_id: String,
    tax_number: String,
    barcode: String,
    event_id: &'static str,
    status: &'static str,
    owner: Owner,
    initial_owner: Option<usize>,
    previous_owner: Option<usize>,
    holder: Holder,
    /// The recipient of the latest transfer offer, sent while the status says so.
    recipient: Option<usize>,
    /// V4's `deletionReason`, sent with the deletion statuses.
    deletion_reason: Option<&'static str>,
    /// Each milestone's timestamp, as written in the `lastUpdated` of the event that reached it.
    milestones: [Option<String>; MILESTONE_NAMES.len()],
    clock: Millis,
    snapshots: Vec<Snapshot>,
}

impl TicketWriter<'_> {
    fn live(&mut self, story: Story) {
        match story {
            Story::Delivered => {
                self.inject();
                if self.rng.percent(90) {
                    self.download();
                    if self.rng.percent(60) {
                        self.activate();
                        if self.rng.percent(50) {
                            self.control();
                        }
                    }
                }
            }
            Story::Assigned => {
                self.deliver();
                self.assign();
                match self.rng.below(100) {
                    0..25 => self.assign(),
                    25..45 => self.unassign(),
                    _ => {}
                }
                if self.rng.percent(50) {
                    self.activate();
                }
            }
            Story::TransferredV3 => {
                self.deliver();
                self.offer_transfer();
                self.accept_transfer("TRANSFERRED");
                if self.rng.percent(40) {
                    self.activate();
                }
            }
            Story::TransferFailed => {
                self.deliver();
                self.offer_transfer();
                if self.rng.percent(60) {
                    self.wait(MINUTE, 59 * MINUTE);
                    self.emit("FAILURE_TRANSFER", &[]);
                } else {
                    // The organizer's time-out: TIXNGO gives the recipient one hour.
                    self.wait(HOUR, HOUR + 5 * MINUTE);
                    self.emit("FAILURE", &[]);
                }
                if self.rng.percent(30) {
                    self.activate();
                }
            }
            Story::TransferredV4 => {
                self.deliver();
                self.offer_transfer();
                self.accept_transfer("DOWNLOADED");
            }
            Story::TransferAbandoned => {
                self.deliver();
                self.offer_transfer();
                self.wait(MINUTE, 59 * MINUTE);
                self.emit("DOWNLOADED", &[]);
            }
            Story::TransferChain => {
                self.deliver();
                for _hop in 0..2 {
                    if self.rng.percent(30) {
                        // Both changes fell between two polls: no PENDING_TRANSFER in the feed.
                        self.recipient = Some(self.pick_recipient());
                    } else {
                        self.offer_transfer();
                    }
                    self.accept_transfer("TRANSFERRED");
                }
            }
            Story::Deleted => {
                self.deliver();
                if self.rng.percent(30) {
                    self.activate();
                }
                self.later();
                self.emit("DELETION_PENDING", &[]);
                if self.rng.percent(80) {
                    self.later();
                    self.emit("DELETED", &[Milestone::Deleted]);
                }
            }
            Story::NoOwnerEmail => {
                if let Owner::Spectator(buyer) = self.owner {
                    self.owner = if self.rng.percent(50) {
                        Owner::Unknown
                    } else {
                        Owner::WithoutEmail(buyer)
                    };
                }
                self.initial_owner = None;
                self.deliver();
                if self.rng.percent(30) {
                    self.assign();
                }
            }
            Story::V4Statuses => {
                self.emit("NOT_DOWNLOADED", &[Milestone::Injected]);
                self.download();
                self.later();
                if self.rng.percent(50) {
                    // Put on resale: V4 deletes it and says why (DOMAIN §4.4).
                    self.deletion_reason = Some("RESALE_PENDING");
                    self.emit("DELETED", &[Milestone::Deleted]);
                } else {
                    self.emit("NOT_DOWNLOADED", &[]);
                }
            }
            Story::Reinjected => {
                self.deliver();
                self.later();
                self.emit("DELETION_PENDING", &[]);
                self.later();
                self.deletion_reason = self.rng.percent(50).then_some("RESOLD");
                self.emit("DELETED", &[Milestone::Deleted]);
                // Printed again in S-360 and injected anew: no longer deleted nor downloaded.
                self.later();
                self.deletion_reason = None;
                self.clear(&[Milestone::Deleted, Milestone::Downloaded]);
                self.emit("INJECTED", &[]);
                self.download();
            }
            Story::Deactivated => {
                self.deliver();
                self.activate();
                self.later();
                self.clear(&[Milestone::Activated]);
                self.emit("DEACTIVATED", &[]);
                if self.rng.percent(50) {
                    self.activate();
                    self.control();
                    // Checked out: no longer "controlled since the latest check-out".
                    self.wait(MINUTE, 3 * HOUR);
                    self.clear(&[Milestone::Controlled]);
                    let status = *self.rng.pick(&ACTIVATIONS);
                    self.emit(status, &[]);
                }
            }
            Story::LegacyPending => {
                self.deliver();
                self.recipient = Some(self.pick_recipient());
                self.later();
                self.emit("PENDING", &[]);
                self.accept_transfer("TRANSFERRED");
            }
            Story::DeletedWhilePending => {
                self.deliver();
                self.offer_transfer();
                self.later();
                self.emit("DELETION_PENDING", &[]);
                self.later();
                self.emit("DELETED", &[Milestone::Deleted]);
            }
            Story::AssignedV4 => {
                self.deliver();
                // V4 has no ASSIGNED status: the holder appears on a downloaded ticket.
                self.holder = Holder::Assignee(self.organizer_index());
                self.later();
                self.emit("DOWNLOADED", &[Milestone::Assigned]);
            }
            Story::SloppyStatuses => {
                self.emit(" injected", &[Milestone::Injected]);
                self.later();
                self.emit("Downloaded ", &[Milestone::Downloaded]);
                self.later();
                self.emit("online_activated", &[Milestone::Activated]);
            }
            Story::UnknownStatus => {
                self.deliver();
                self.later();
                self.emit(UNKNOWN_STATUS, &[]);
            }
        }
    }

    /// Milestones that no longer hold: sent as `null` from now on.
    fn clear(&mut self, milestones: &[Milestone]) {
        for &milestone in milestones {
            self.milestones[milestone as usize] = None;
        }
    }

    fn inject(&mut self) {
        self.emit("INJECTED", &[Milestone::Injected]);
    }

    fn download(&mut self) {
        self.later();
        self.emit("DOWNLOADED", &[Milestone::Downloaded]);
    }

    fn deliver(&mut self) {
        self.inject();
        self.download();
    }

    fn assign(&mut self) {
        self.holder = Holder::Assignee(self.organizer_index());
        self.later();
        self.emit("ASSIGNED", &[Milestone::Assigned]);
    }

    fn unassign(&mut self) {
        self.holder = Holder::Cleared;
        self.later();
        self.emit("DOWNLOADED", &[]);
    }

    fn activate(&mut self) {
        let status = *self.rng.pick(&ACTIVATIONS);
        self.later();
        self.emit(status, &[Milestone::Activated]);
    }

    fn control(&mut self) {
        self.wait(MINUTE, 3 * HOUR);
        self.emit("CONTROLLED", &[Milestone::Checked, Milestone::Controlled]);
    }

    fn offer_transfer(&mut self) {
        self.recipient = Some(self.pick_recipient());
        self.later();
        self.emit("PENDING_TRANSFER", &[]);
    }

    /// The recipient accepts within the hour: they become the owner, the sender the previous one.
    fn accept_transfer(&mut self, status: &'static str) {
        if let (Owner::Spectator(sender), Some(recipient)) = (self.owner, self.recipient.take()) {
            self.previous_owner = Some(sender);
            self.owner = Owner::Spectator(recipient);
        }
        self.wait(MINUTE, 59 * MINUTE);
        self.emit(status, &[]);
    }

    /// Anyone but the current owner; buyers included, so recipients are often existing owners.
    fn pick_recipient(&mut self) -> usize {
        loop {
            let candidate = self.organizer_index();
            if self.owner != Owner::Spectator(candidate) {
                return candidate;
            }
        }
    }

    fn organizer_index(&mut self) -> usize {
        self.rng.index(self.organizer.spectators.len())
    }

    /// The usual pause between two changes of a ticket: ten minutes to five days.
    fn later(&mut self) {
        self.wait(10 * MINUTE, 5 * DAY);
    }

    /// At least a minute, so `lastUpdated` stays strictly increasing even when written without
    /// milliseconds.
    fn wait(&mut self, shortest: Millis, longest: Millis) {
        self.clock += self.rng.between(shortest.max(MINUTE), longest.max(MINUTE));
    }

    /// Records the ticket's current state under `status`, reaching `milestones` now.
    fn emit(&mut self, status: &'static str, milestones: &[Milestone]) {
        self.status = status;
        let zone = self.rng.weighted(&ZONE_MIX);
        let with_millis = self.rng.percent(35);
        if !with_millis {
            // What the text says is the instant: keep the sort order faithful to it.
            self.clock -= self.clock.rem_euclid(SECOND);
        }
        let last_updated = format_rfc3339(self.clock, zone, with_millis);
        for &milestone in milestones {
            self.milestones[milestone as usize].get_or_insert_with(|| last_updated.clone());
        }
        let span = self.write_state(&last_updated);
        self.snapshots.push(Snapshot {
            at: self.clock,
            span,
        });
    }

    /// Appends the ticket's current state to the feed's text; returns where it lies.
    fn write_state(&mut self, last_updated: &str) -> Range<usize> {
        let organizer = self.organizer;
        let people = &organizer.spectators;
        // Draw every e-mail's spelling first: the writing below only reads the state.
        let mut spelled = |person: Option<usize>| {
            person.map(|person| (person, organizer.email_as_sent(person, &mut self.rng)))
        };
        let owner = spelled(match self.owner {
            Owner::Spectator(owner) => Some(owner),
            Owner::WithoutEmail(_) | Owner::Unknown => None,
        });
        let initial_owner = spelled(self.initial_owner);
        let previous_owner = spelled(self.previous_owner);
        let recipient = spelled(
            self.recipient
                .filter(|_| STATUSES_WITH_RECIPIENT.contains(&self.status)),
        );
        let start = self.text.len();
        JsonObject::write(self.text, |ticket| {
            ticket
                .string("ticketId", &self.ticket_id)
                .string("taxNumber", &self.tax_number)
                .string("barcode", &self.barcode)
                .string("eventId", self.event_id)
                .string("status", self.status)
                .string("lastUpdated", last_updated);
            match (self.owner, &owner) {
                (Owner::Spectator(person), Some((_, email))) => {
                    ticket.object("spectatorDetails", |details| {
                        people[person].write_details(details, Some(email));
                    });
                }
                (Owner::WithoutEmail(person), _) => {
                    ticket.object("spectatorDetails", |details| {
                        people[person].write_details(details, None);
                    });
                }
                _ => {}
            }
            match self.holder {
                Holder::NeverAssigned => {}
                Holder::Assignee(person) => {
                    ticket.object("holder", |holder| people[person].write_as_holder(holder));
                }
                Holder::Cleared => {
                    ticket.null("holder");
                }
            }
            for (field, reference) in [
                ("previousOwner", &previous_owner),
                ("initialOwner", &initial_owner),
            ] {
                if let Some((person, email)) = reference {
                    ticket.object(field, |owner| {
                        people[*person].write_as_owner_reference(owner, email);
                    });
                }
            }
            if let Some((_, email)) = &recipient {
                ticket.object("transfer", |transfer| {
                    transfer.string("recipientEmail", email);
                });
            }
            if let Some(reason) = self.deletion_reason {
                ticket.string("deletionReason", reason);
            }
            ticket.object("attributes", |attributes| {
                for (name, at) in MILESTONE_NAMES.iter().zip(&self.milestones) {
                    match at {
                        Some(at) => attributes.string(name, at),
                        None => attributes.null(name),
                    };
                }
            });
        });
        start..self.text.len()
    }

    /// Rarely, TIXNGO sends an older state again after the latest one, with its original
    /// `lastUpdated`: the product must count it as stale and keep the newer state.
    fn maybe_resend_stale_state(&mut self) {
        let count = self.snapshots.len();
        if count < 2 || !self.rng.per_mille(STALE_RESEND_PER_MILLE) {
            return;
        }
        let older = self.rng.index(count - 1);
        let span = self.snapshots[older].span.clone();
        let at = self.snapshots[count - 1].at + self.rng.between(MINUTE, 3 * DAY);
        self.snapshots.push(Snapshot { at, span });
    }
}

// ---------------------------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------------------------

/// A way to answer a diff request other than normally; see [`Simulator::push_fault`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// 429, with `Retry-After` sent verbatim when given (seconds or an HTTP date).
    TooManyRequests { retry_after: Option<String> },
    /// This status with a small JSON error body.
    Status(u16),
    /// 301 to this `Location`.
    Redirect(String),
    /// Waits this long, then answers normally (authentication and validation included).
    Slow(Duration),
    /// Status line, headers with the full `Content-Length` and half the body, then silence: the
    /// socket stays open until the client goes away or 120 s pass.
    Stall,
    /// Full `Content-Length`, half the body, then the socket is closed.
    Truncated,
    /// `Transfer-Encoding: chunked`, one good chunk, an invalid chunk-size line, then close.
    BrokenChunked,
    /// Reads the request and closes the socket without a byte of answer.
    Reset,
    /// 200 `application/json` whose body is the page cut in the middle (a prefix of a JSON
    /// object is never valid JSON); the `Content-Length` matches what is sent.
    InvalidJson,
    /// 200 with the page plus a field holding Latin-1 bytes (`"venue":"Z\xFCrich"`): complete,
    /// JSON-shaped, not UTF-8.
    InvalidUtf8,
    /// 200 with valid JSON that holds no ticket list: `{"message":"ok"}`.
    NotADiffDocument,
    /// 200 with the valid page, padded by a long envelope field `padding` to at least `bytes`.
    Oversized { bytes: usize },
    /// The normal page, except that its first ticket lacks `taxNumber`.
    MissingTicketNumber,
    /// The normal answer, preceded by a UTF-8 byte order mark.
    ByteOrderMark,
    /// The normal page, with this `nextPageKey` instead of the real one.
    NextPageKey(String),
    /// This status with this body, sent as it is.
    StatusWithBody(u16, String),
    /// The normal answer, gzip-compressed with `Content-Encoding: gzip` when the request's
    /// `Accept-Encoding` names gzip (as nginx's `gzip on` does); as it is otherwise.
    Gzip,
    /// 200 `Content-Encoding: gzip` whose body, small on the wire, decodes to a page padded to
    /// at least `bytes` (a decompression bomb), whatever the request accepts.
    GzipBomb { bytes: usize },
}

/// The page a fault derives its body from when the request's own `limit` is unusable.
const FAULT_FALLBACK_LIMIT: usize = 1_000;

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

/// One request as the simulator received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path as sent, not decoded (so `//diff` stays visible).
    pub path: String,
    /// The query parameters in order, percent-decoded (`+` as a space).
    pub query: Vec<(String, String)>,
    /// The headers in order, names lowercased, values trimmed.
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The first query parameter of that name (exact, after decoding).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(parameter, _)| parameter == name)
            .map(|(_, value)| value.as_str())
    }

    /// Parses a request head (request line and headers, CRLF-separated). `None` when it is not
    /// HTTP/1.x: the caller answers 400.
    fn parse(head: &[u8]) -> Option<Request> {
        let text = std::str::from_utf8(head).ok()?;
        let mut lines = text.split("\r\n");
        let mut request_line = lines.next()?.split(' ');
        let (method, target, version) = (
            request_line.next()?,
            request_line.next()?,
            request_line.next()?,
        );
        let well_formed = request_line.next().is_none()
            && !method.is_empty()
            && method.bytes().all(|byte| byte.is_ascii_uppercase())
            && !target.is_empty()
            && matches!(version, "HTTP/1.0" | "HTTP/1.1");
        if !well_formed {
            return None;
        }
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let query = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (percent_decode(name), percent_decode(value))
            })
            .collect();
        let mut headers = Vec::new();
        for line in lines.take_while(|line| !line.is_empty()) {
            let (name, value) = line.split_once(':')?;
            let token = !name.is_empty() && name.bytes().all(|byte| byte.is_ascii_graphic());
            if !token {
                return None;
            }
            headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
        }
        Some(Request {
            method: method.to_owned(),
            path: path.to_owned(),
            query,
            headers,
        })
    }
}

/// Decodes `%XX` and `+`; a `%` not followed by two hex digits is kept as is.
fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut position = 0;
    while position < bytes.len() {
        let escaped = match bytes[position] {
            b'%' => bytes
                .get(position + 1..position + 3)
                .and_then(|pair| Some((hex_digit(pair[0])?, hex_digit(pair[1])?))),
            _ => None,
        };
        match (bytes[position], escaped) {
            (_, Some((high, low))) => {
                decoded.push(high << 4 | low);
                position += 3;
            }
            (b'+', None) => {
                decoded.push(b' ');
                position += 1;
            }
            (byte, None) => {
                decoded.push(byte);
                position += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

fn hex_digit(byte: u8) -> Option<u8> {
    char::from(byte).to_digit(16).map(|digit| digit as u8)
}

// ---------------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------------

/// The interface URL's path, as the product is configured with it.
const INTERFACE_PATH: &str = "/organizer/tickets";
const DIFF_PATH: &str = "/organizer/tickets/diff";
/// TIXNGO's documented maximum page size (DOMAIN §3.2).
const MAX_LIMIT: usize = 10_000;
/// A longer request head is answered 431.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// A client that has not sent its whole head by then is dropped, so it cannot pin a thread.
const HEAD_DEADLINE: Duration = Duration::from_secs(10);
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// After answering, how long to drain what the client still sends before closing, so that the
/// close is a FIN and not a reset that could destroy the answer in flight.
const LINGER: Duration = Duration::from_secs(2);
/// How long [`Fault::Stall`] holds a connection at most.
const STALL_HOLD: Duration = Duration::from_secs(120);

/// A diff endpoint serving one [`Feed`] on `127.0.0.1`, one thread per connection.
///
/// Dropping it stops accepting new connections (best effort, without blocking); connections
/// already open finish on their own.
pub struct Simulator {
    address: SocketAddr,
    shared: Arc<Shared>,
}

/// What the accept thread and the connection threads share with the [`Simulator`] handle.
struct Shared {
    feed: Feed,
    api_key: String,
    /// Faults for the next diff requests, in order, each with the number of requests left
    /// (`usize::MAX`: forever).
    faults: Mutex<VecDeque<(Fault, usize)>>,
    requests: Mutex<Vec<Request>>,
    stopping: AtomicBool,
}

impl Simulator {
    /// Serves `feed` on an ephemeral port of 127.0.0.1.
    ///
    /// # Panics
    /// When no loopback port can be bound: a test cannot go on without its server.
    pub fn start(feed: Feed, api_key: &str) -> Simulator {
        Simulator::start_on(0, feed, api_key).expect("bind the simulator to 127.0.0.1:0")
    }

    /// Serves `feed` on `127.0.0.1:port` (0: an ephemeral port).
    pub fn start_on(port: u16, feed: Feed, api_key: &str) -> io::Result<Simulator> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared {
            feed,
            api_key: api_key.to_owned(),
            faults: Mutex::new(VecDeque::new()),
            requests: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
        });
        let accept_shared = Arc::clone(&shared);
        thread::Builder::new()
            .name("tixngo-sim-accept".to_owned())
            .spawn(move || accept_connections(&listener, &accept_shared))?;
        Ok(Simulator { address, shared })
    }

    /// The interface URL to configure the product with: `http://127.0.0.1:PORT/organizer/tickets`.
    pub fn url(&self) -> String {
        format!("http://{}{INTERFACE_PATH}", self.address)
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    pub fn feed(&self) -> &Feed {
        &self.shared.feed
    }

    /// The next `times` diff requests get `fault`, after the faults already queued
    /// (`usize::MAX`: every diff request from then on, until [`Simulator::clear_faults`]).
    pub fn push_fault(&self, fault: Fault, times: usize) {
        if times > 0 {
            lock(&self.shared.faults).push_back((fault, times));
        }
    }

    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Every request received so far (diff or not), in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.shared.requests).clone()
    }

    pub fn request_count(&self) -> usize {
        lock(&self.shared.requests).len()
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the accept thread, blocked in `accept`, so it sees the flag and drops the listener.
        let _ = TcpStream::connect_timeout(&self.address, Duration::from_millis(200));
    }
}

impl fmt::Debug for Simulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Simulator")
            .field("address", &self.address)
            .field("feed", &self.shared.feed)
            .finish_non_exhaustive()
    }
}

/// A poisoned lock only means a connection thread panicked; the data is still consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn take_fault(&self) -> Option<Fault> {
        let mut faults = lock(&self.faults);
        let (fault, remaining) = faults.front_mut()?;
        let fault = fault.clone();
        if *remaining != usize::MAX {
            *remaining -= 1;
            if *remaining == 0 {
                faults.pop_front();
            }
        }
        Some(fault)
    }
}

fn accept_connections(listener: &TcpListener, shared: &Arc<Shared>) {
    for connection in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = connection else {
            // Out of file descriptors and the like: do not spin.
            thread::sleep(Duration::from_millis(10));
            continue;
        };
        let shared = Arc::clone(shared);
        // A failed spawn drops the connection, as an overloaded server would.
        let _ = thread::Builder::new()
            .name("tixngo-sim-connection".to_owned())
            .spawn(move || serve_connection(stream, &shared));
    }
}

/// What happens to the connection once the answer (or the sabotage) is written.
enum Ending {
    /// Half-close, drain briefly, close: the client reads the whole answer.
    Graceful,
    /// Close at once, whatever the client expects next.
    Abrupt,
    /// Send nothing more but keep the socket open ([`Fault::Stall`]).
    Hold,
}

fn serve_connection(mut stream: TcpStream, shared: &Shared) {
    // Answers are written in one piece; never let Nagle hold back a partial one.
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let ending = match read_head(&mut stream) {
        Ok(head) => match Request::parse(&head) {
            Some(request) => {
                lock(&shared.requests).push(request.clone());
                respond(&mut stream, &request, shared)
            }
            None => send(&mut stream, &Reply::message(400)),
        },
        Err(HeadError::TooLarge) => send(&mut stream, &Reply::message(431)),
        Err(HeadError::Incomplete) => return,
    };
    match ending {
        Ok(Ending::Graceful) => {
            let _ = stream.shutdown(Shutdown::Write);
            wait_for_client_to_leave(&mut stream, LINGER);
        }
        Ok(Ending::Hold) => wait_for_client_to_leave(&mut stream, STALL_HOLD),
        Ok(Ending::Abrupt) | Err(_) => {}
    }
}

enum HeadError {
    /// More than [`MAX_HEAD_BYTES`] without the blank line that ends a head.
    TooLarge,
    /// The client closed, failed or fell silent before the end of its head.
    Incomplete,
}

/// Reads up to and including the blank line that ends the request head. Whatever follows (a
/// body nobody asked for) is left unread; the lingering close drains it.
fn read_head(stream: &mut TcpStream) -> Result<Vec<u8>, HeadError> {
    const END: &[u8] = b"\r\n\r\n";
    let deadline = Instant::now() + HEAD_DEADLINE;
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return Err(HeadError::Incomplete);
        }
        let read = match stream.read(&mut chunk) {
            Ok(0) => return Err(HeadError::Incomplete),
            Ok(read) => read,
            Err(error) if error.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return Err(HeadError::Incomplete),
        };
        // The end marker may straddle two reads.
        let search_from = head.len().saturating_sub(END.len() - 1);
        head.extend_from_slice(&chunk[..read]);
        if let Some(found) = head[search_from..]
            .windows(END.len())
            .position(|window| window == END)
        {
            let head_length = search_from + found + END.len();
            if head_length > MAX_HEAD_BYTES {
                return Err(HeadError::TooLarge);
            }
            head.truncate(head_length);
            return Ok(head);
        }
        if head.len() > MAX_HEAD_BYTES {
            return Err(HeadError::TooLarge);
        }
    }
}

/// Reads and discards until the client closes, fails, or `longest` passes.
fn wait_for_client_to_leave(stream: &mut TcpStream, longest: Duration) {
    let deadline = Instant::now() + longest;
    let mut sink = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => {}
            Err(error)
                if matches!(
                    error.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => return,
        }
    }
}

fn respond(stream: &mut TcpStream, request: &Request, shared: &Shared) -> io::Result<Ending> {
    if request.path != DIFF_PATH {
        return send(stream, &Reply::message(404));
    }
    match shared.take_fault() {
        Some(fault) => sabotage(stream, &fault, request, shared),
        None => send(stream, &diff_reply(request, shared)),
    }
}

/// The normal answer to a diff request.
fn diff_reply(request: &Request, shared: &Shared) -> Reply {
    if request.method != "GET" {
        return Reply::message(405).with_header("Allow", "GET");
    }
    if request.header("x-api-key") != Some(shared.api_key.as_str()) {
        return Reply::message(401);
    }
    let Some(limit) = requested_limit(request) else {
        return Reply::json(
            400,
            format!(r#"{{"message":"limit must be an integer in 1..={MAX_LIMIT}"}}"#),
        );
    };
    match shared
        .feed
        .page_json(request.query_param("paginationKey"), limit)
    {
        Ok(page) => Reply::json(200, page),
        Err(_) => Reply::json(400, r#"{"message":"invalid paginationKey"}"#),
    }
}

/// `limit` when it is a plain decimal integer in `1..=MAX_LIMIT`.
fn requested_limit(request: &Request) -> Option<usize> {
    let raw = request.query_param("limit")?;
    if raw.is_empty() || !raw.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    raw.parse()
        .ok()
        .filter(|limit| (1..=MAX_LIMIT).contains(limit))
}

/// Answers a diff request with `fault`. Faults that bend a page use the page the request
/// addresses, whatever its key and credentials (falling back to the start of the feed and
/// [`FAULT_FALLBACK_LIMIT`] tickets), so a test gets a realistic body without a valid request.
fn sabotage(
    stream: &mut TcpStream,
    fault: &Fault,
    request: &Request,
    shared: &Shared,
) -> io::Result<Ending> {
    let feed = &shared.feed;
    let offset = feed
        .resolve_key(request.query_param("paginationKey"))
        .unwrap_or(0);
    let limit = requested_limit(request).unwrap_or(FAULT_FALLBACK_LIMIT);
    let page = || feed.page_at(offset, limit);
    match fault {
        Fault::TooManyRequests { retry_after } => {
            let mut reply = Reply::message(429);
            if let Some(retry_after) = retry_after {
                reply = reply.with_header("Retry-After", retry_after);
            }
            send(stream, &reply)
        }
        Fault::Status(status) => send(stream, &Reply::message(*status)),
        Fault::Redirect(location) => send(
            stream,
            &Reply::message(301).with_header("Location", location),
        ),
        Fault::Slow(delay) => {
            thread::sleep(*delay);
            send(stream, &diff_reply(request, shared))
        }
        Fault::Stall => {
            send_cut_short(stream, &Reply::json(200, page()))?;
            Ok(Ending::Hold)
        }
        Fault::Truncated => {
            send_cut_short(stream, &Reply::json(200, page()))?;
            Ok(Ending::Abrupt)
        }
        Fault::BrokenChunked => {
            let body = page();
            let first_chunk = &body.as_bytes()[..body.len() / 2];
            let mut wire = Reply::json(200, "").head(Framing::Chunked);
            let _ = write!(wire, "{:x}\r\n", first_chunk.len());
            wire.extend_from_slice(first_chunk);
            wire.extend_from_slice(b"\r\nnot-a-chunk-size\r\n");
            stream.write_all(&wire)?;
            Ok(Ending::Abrupt)
        }
        Fault::Reset => Ok(Ending::Abrupt),
        Fault::InvalidJson => {
            let body = page();
            let mut cut = body.len() / 2;
            // Cut between characters: the body must be invalid JSON, not invalid UTF-8.
            while !body.is_char_boundary(cut) {
                cut -= 1;
            }
            send(stream, &Reply::json(200, &body[..cut]))
        }
        Fault::InvalidUtf8 => {
            // "Zürich" in Latin-1 (0xFC), as a misconfigured upstream would write it.
            let mut body = b"{\"venue\":\"Z\xFCrich\",".to_vec();
            body.extend_from_slice(&page().as_bytes()[1..]);
            send(stream, &Reply::json(200, body))
        }
        Fault::NotADiffDocument => send(stream, &Reply::json(200, r#"{"message":"ok"}"#)),
        Fault::Oversized { bytes } => send(stream, &Reply::json(200, padded(page(), *bytes))),
        Fault::MissingTicketNumber => send(
            stream,
            &Reply::json(200, feed.page_without_first_tax_number(offset, limit)),
        ),
        Fault::ByteOrderMark => {
            let mut reply = diff_reply(request, shared);
            reply.body.splice(0..0, *b"\xEF\xBB\xBF");
            send(stream, &reply)
        }
        Fault::NextPageKey(key) => {
            let events = feed.page_range(offset, limit);
            let tickets = events.map(|index| feed.event_text(index));
            let key = serde_json::to_string(key).expect("a string serializes");
            let page = page_body("", tickets).replacen(
                r#""nextPageKey":"""#,
                &format!(r#""nextPageKey":{key}"#),
                1,
            );
            send(stream, &Reply::json(200, page))
        }
        Fault::StatusWithBody(status, body) => send(stream, &Reply::json(*status, body.as_str())),
        Fault::Gzip => {
            let reply = diff_reply(request, shared);
            let accepts = request.header("accept-encoding").is_some_and(|value| {
                value
                    .split(',')
                    .any(|coding| coding.trim().starts_with("gzip"))
            });
            if accepts {
                send(stream, &gzipped(reply))
            } else {
                send(stream, &reply)
            }
        }
        Fault::GzipBomb { bytes } => {
            send(stream, &gzipped(Reply::json(200, padded(page(), *bytes))))
        }
    }
}

/// `reply` with its body gzip-compressed and `Content-Encoding: gzip`.
fn gzipped(reply: Reply) -> Reply {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder
        .write_all(&reply.body)
        .expect("writing to memory cannot fail");
    let body = encoder.finish().expect("writing to memory cannot fail");
    Reply { body, ..reply }.with_header("Content-Encoding", "gzip")
}

/// `page` with a trailing envelope field `"padding":"xxx…"` making it at least `at_least` bytes.
fn padded(page: String, at_least: usize) -> String {
    const FIELD: &str = r#","padding":""#;
    // The page's closing brace is moved after the field: `…]` + FIELD + x… + `"}`.
    let fixed = page.len() + FIELD.len() + 1;
    let filler = at_least.saturating_sub(fixed);
    let mut body = page;
    body.pop();
    body.reserve(FIELD.len() + filler + 2);
    body.push_str(FIELD);
    body.extend(std::iter::repeat_n('x', filler));
    body.push_str("\"}");
    body
}

/// An HTTP answer before framing.
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

enum Framing {
    ContentLength(usize),
    Chunked,
}

impl Reply {
    fn json(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// `{"message":"<reason phrase>"}`: TIXNGO's error shape.
    fn message(status: u16) -> Reply {
        Reply::json(
            status,
            format!(r#"{{"message":"{}"}}"#, reason_phrase(status)),
        )
    }

    fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    fn head(&self, framing: Framing) -> Vec<u8> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nConnection: close\r\nServer: tixngo-sim\r\n",
            self.status,
            reason_phrase(self.status)
        );
        match framing {
            Framing::ContentLength(length) => {
                let _ = write!(head, "Content-Length: {length}\r\n");
            }
            Framing::Chunked => head.push_str("Transfer-Encoding: chunked\r\n"),
        }
        for (name, value) in &self.headers {
            let _ = write!(head, "{name}: {value}\r\n");
        }
        head.push_str("\r\n");
        head.into_bytes()
    }
}

/// Writes the whole answer in one piece.
fn send(stream: &mut TcpStream, reply: &Reply) -> io::Result<Ending> {
    let mut wire = reply.head(Framing::ContentLength(reply.body.len()));
    wire.extend_from_slice(&reply.body);
    stream.write_all(&wire)?;
    Ok(Ending::Graceful)
}

/// Announces the full `Content-Length` but sends only the first half of the body.
fn send_cut_short(stream: &mut TcpStream, reply: &Reply) -> io::Result<()> {
    let mut wire = reply.head(Framing::ContentLength(reply.body.len()));
    wire.extend_from_slice(&reply.body[..reply.body.len() / 2]);
    stream.write_all(&wire)?;
    stream.flush()
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        413 => "Content Too Large",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}
