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

mod calendar;
mod faults;
mod feed;
mod json;
mod match_day;
mod people;
mod request;
mod rng;
mod server;
mod stories;

pub use faults::Fault;
pub use feed::Feed;
pub use request::Request;
pub use server::Simulator;
pub use stories::UNKNOWN_STATUS;
