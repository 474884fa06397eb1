//! A match day: a feed that grows while it is served, as the gates open.

use std::ops::Range;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::Feed;
use crate::calendar::{DAY, Millis, Zone, format_rfc3339};
use crate::json::JsonObject;
use crate::rng::Rng;
use crate::stories::{ACTIVATIONS, Organizer, STREAM_TICKET};

/// When each event of a growing feed appears: `release[i]` after `started`, in feed order.
pub(crate) struct Growth {
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
