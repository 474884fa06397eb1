//! The feed: every event serialized once, pages cut from it by key.

use crate::match_day::Growth;
use crate::stories::TimelineEntry;
use std::fmt;
use std::fmt::Write as _;
use std::ops::Range;
use std::sync::Arc;
use std::sync::OnceLock;

use serde_json::Value;

use crate::rng::mix64;
use crate::stories::Organizer;

/// An ordered list of ticket-change events, each serialized once, at construction.
///
/// A page is assembled by concatenating the pre-serialized events it holds: one copy per ticket,
/// no serialization at request time, so a page costs time linear in its size.
#[derive(Clone)]
pub struct Feed {
    /// The compact JSON of every event, back to back, in the order they were written (for a
    /// generated feed: ticket by ticket, not in feed order; a stale re-send shares the text of
    /// the state it repeats).
    pub(crate) text: String,
    /// Where each event of the feed, in feed order, lies in `text`.
    pub(crate) spans: Vec<Range<usize>>,
    /// The events as JSON values, parsed on first use (the server never needs them, and for a
    /// generated feed they would cost several times the memory of the text).
    pub(crate) values: OnceLock<Vec<Value>>,
    /// A match day's feed grows while it is served ([`Feed::match_day`]); `None`: all there.
    pub(crate) growth: Option<Arc<Growth>>,
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

    pub(crate) fn resolve_key(&self, key: Option<&str>) -> Result<usize, String> {
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
    pub(crate) fn page_range(&self, offset: usize, limit: usize) -> Range<usize> {
        let served = self.served_len();
        let offset = offset.min(served);
        offset..offset + limit.min(served - offset)
    }

    pub(crate) fn page_at(&self, offset: usize, limit: usize) -> String {
        let events = self.page_range(offset, limit);
        let tickets = events.clone().map(|index| self.event_text(index));
        page_body(&Feed::page_key(events.end), tickets)
    }

    pub(crate) fn event_text(&self, index: usize) -> &str {
        &self.text[self.spans[index].clone()]
    }

    /// The page at `offset` whose first ticket lost its `taxNumber` ([`Fault::MissingTicketNumber`]).
    pub(crate) fn page_without_first_tax_number(&self, offset: usize, limit: usize) -> String {
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
pub(crate) fn page_body<'a>(
    next_key: &str,
    tickets: impl Iterator<Item = &'a str> + Clone,
) -> String {
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
