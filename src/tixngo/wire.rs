//! The wire format of the TIXNGO diff endpoint (SPEC §4.1), in one place so that it can change in
//! one place: the request's path, parameters and headers, the response envelope, and the ticket.
//!
//! The envelope is parsed strictly (a document without a ticket list is bad data) but tolerantly
//! (aliases, unknown fields ignored). Tickets stay raw JSON until each is decoded on its own, so
//! that one bad ticket becomes a per-ticket error and its exact bytes can be kept in `sync_error`.
//! Decoding errors never quote the offending value: tickets carry personal data, and the reason
//! is logged. They name the position in the ticket's own JSON instead.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use serde_json::value::RawValue;

use crate::feedback::status;
use crate::ticket_number;
use crate::timestamp::Timestamp;

/// The diff resource under the interface URL (which ends in `/organizer/tickets`): the default of
/// `--diff-path`, as the real path is not public.
pub const DIFF_PATH: &str = "/diff";
/// Query parameter: tickets per batch.
pub const LIMIT_PARAM: &str = "limit";
/// Query parameter: where the feed resumes; omitted on the first call.
pub const PAGINATION_KEY_PARAM: &str = "paginationKey";
/// Header carrying the organizer's API key: the default of `--api-key-header`.
pub const API_KEY_HEADER: &str = "x-api-key";

/// One diff response: the next key and the tickets, still raw.
#[derive(Debug)]
pub struct DiffPage<'a> {
    /// `pagination.nextPageKey` (or a top-level `nextPageKey`); `None` when absent, null or empty.
    pub next_page_key: Option<String>,
    /// The tickets in feed order, each the exact JSON text TIXNGO sent.
    pub tickets: Vec<&'a RawValue>,
}

/// The envelope, with the ticket list read as `L`: raw text ([`parse_page`]) or decoded tickets
/// (the one-pass path of [`read_page`]).
#[derive(Deserialize)]
#[serde(bound(deserialize = "L: Deserialize<'de>"))]
struct Envelope<L> {
    #[serde(default)]
    result: Option<L>,
    #[serde(default)]
    tickets: Option<L>,
    #[serde(default)]
    items: Option<L>,
    #[serde(default)]
    pagination: Option<Object<Pagination>>,
    #[serde(default, rename = "nextPageKey")]
    next_page_key: Option<String>,
}

impl<L> Envelope<L> {
    /// The list (`result`, else `tickets`, else `items`) and the next key, or why the key is bad.
    fn into_parts(self) -> Result<(Option<L>, Option<String>), String> {
        let next_page_key = next_page_key(self.pagination, self.next_page_key)?;
        Ok((self.result.or(self.tickets).or(self.items), next_page_key))
    }
}

/// `pagination.nextPageKey`, else a top-level `nextPageKey`; `None` when absent, null or empty.
/// A key that is no [`PaginationKey`] makes the document bad data: saved, it would break every
/// later request.
fn next_page_key(
    pagination: Option<Object<Pagination>>,
    top_level: Option<String>,
) -> Result<Option<String>, String> {
    pagination
        .and_then(|p| p.0.next_page_key)
        .or(top_level)
        .filter(|key| !key.is_empty())
        .map(|key| {
            PaginationKey::new(key)
                .map(PaginationKey::into_string)
                .map_err(|why| format!("the document's nextPageKey {why}"))
        })
        .transpose()
}

/// A pagination key that may be sent and saved (SPEC §2 input rules): at most
/// [`PaginationKey::MAX_BYTES`] of printable ASCII. The one check for a key TIXNGO sent,
/// `cursor set KEY` and `--pagination-key KEY`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaginationKey(String);

impl PaginationKey {
    pub const MAX_BYTES: usize = 4096;

    /// Checks a key; the error says why it is refused, without quoting it.
    pub fn new(key: String) -> Result<PaginationKey, String> {
        if key.len() > Self::MAX_BYTES {
            return Err(format!(
                "is {} bytes long, over the limit of {} bytes",
                key.len(),
                Self::MAX_BYTES
            ));
        }
        if let Some(at) = key.bytes().position(|b| !(b' '..=b'~').contains(&b)) {
            return Err(format!(
                "holds a character that is not printable ASCII (at byte {at})"
            ));
        }
        Ok(PaginationKey(key))
    }

    /// The key a run starts from: the empty key is none, the start of the feed.
    pub fn start(self) -> Option<PaginationKey> {
        (!self.0.is_empty()).then_some(self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// The tickets of the list an envelope names, still raw, or why it names none.
fn raw_tickets(list: Option<&RawValue>) -> Result<Vec<&RawValue>, String> {
    let list = list.ok_or("the document has no ticket list (result, tickets or items)")?;
    serde_json::from_str(list.get()).map_err(|_| NOT_AN_ARRAY.to_owned())
}

const NOT_AN_ARRAY: &str = "the ticket list of the document is not an array";

/// A document serde could not read, as bad data. A syntax error is named by its place only:
/// serde words the same fault differently depending on how the reader walked to it (a trailing
/// comma in the ticket list is "trailing comma" to a streaming reader and "expected value" to one
/// that skips the list whole), and the two readers of a page must say the same.
fn not_a_diff_document(error: serde_json::Error) -> String {
    let why = match error.classify() {
        serde_json::error::Category::Syntax => format!(
            "invalid JSON at line {} column {}",
            error.line(),
            error.column()
        ),
        _ => without_values(error),
    };
    format!("the document is not a valid diff document: {why}")
}

#[derive(Deserialize)]
struct Pagination {
    #[serde(default, rename = "nextPageKey")]
    next_page_key: Option<String>,
}

/// Parses a complete response body (or replay file). The error is the reason it is bad data.
pub fn parse_page(body: &[u8]) -> Result<DiffPage<'_>, String> {
    let text = document_text(body)?;
    let envelope: Envelope<&RawValue> = serde_json::from_str(text).map_err(not_a_diff_document)?;
    let (list, next_page_key) = envelope.into_parts()?;
    Ok(DiffPage {
        next_page_key,
        tickets: raw_tickets(list)?,
    })
}

/// The body as text, refused unless it is UTF-8 holding a JSON object. A leading UTF-8 byte
/// order mark is skipped (RFC 8259 §8.1 lets a parser ignore it; editors on Windows write one).
fn document_text(body: &[u8]) -> Result<&str, String> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let text = std::str::from_utf8(body).map_err(|e| {
        format!(
            "the document is not valid UTF-8 (at byte {})",
            e.valid_up_to()
        )
    })?;
    if !text
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{')
    {
        // serde's derived structs would also read an array, field by field.
        return Err("the document is not a valid diff document: it is not a JSON object".into());
    }
    Ok(text)
}

/// A diff page with its tickets decoded: what a batch maps.
#[derive(Debug)]
pub struct Page<'a> {
    /// As in [`DiffPage`].
    pub next_page_key: Option<String>,
    /// The tickets in feed order.
    pub tickets: Vec<PageTicket<'a>>,
}

/// One ticket of a [`Page`].
#[derive(Debug)]
// Nearly every ticket is `Decoded`: boxing it would add an allocation per ticket to save space
// on the rare unmappable ones.
#[allow(clippy::large_enum_variant)]
pub enum PageTicket<'a> {
    Decoded(Ticket),
    /// A ticket that cannot be mapped, with its exact text (for `sync_error`) and the reason.
    Unmappable {
        raw: &'a RawValue,
        reason: String,
    },
}

impl<'a> PageTicket<'a> {
    /// Decodes one raw ticket.
    pub fn decode(raw: &'a RawValue) -> PageTicket<'a> {
        match decode_ticket(raw) {
            Ok(ticket) => PageTicket::Decoded(ticket),
            Err(reason) => PageTicket::Unmappable { raw, reason },
        }
    }
}

/// Parses a complete body and decodes its tickets: exactly [`parse_page`] then [`decode_ticket`]
/// on each ticket. When every ticket maps, which is the rule, it gets there in one pass over the
/// JSON instead of two (the raw text of each ticket is only needed for the ones that fail).
pub fn read_page(body: &[u8]) -> Result<Page<'_>, String> {
    if let Some(page) = read_mappable_page(body) {
        return Ok(page);
    }
    let page = parse_page(body)?;
    Ok(Page {
        next_page_key: page.next_page_key,
        tickets: page.tickets.into_iter().map(PageTicket::decode).collect(),
    })
}

/// The one-pass reading of a page whose tickets all map; `None` for anything else, which the
/// two-pass path of [`read_page`] then reads (and explains).
pub fn read_mappable_page(body: &[u8]) -> Option<Page<'static>> {
    let text = document_text(body).ok()?;
    let envelope: Envelope<Vec<Known<WireTicket>>> = serde_json::from_str(text).ok()?;
    let (list, next_page_key) = envelope.into_parts().ok()?;
    let tickets = list?
        .into_iter()
        .map(|wire| {
            wire.value
                .into_ticket(wire.unknown)
                .map(PageTicket::Decoded)
        })
        .collect::<Result<_, _>>()
        .ok()?;
    Some(Page {
        next_page_key,
        tickets,
    })
}

/// Reads a diff document ticket by ticket, handing each to `sink` as soon as it is decoded, and
/// returns the next key: the same tickets in the same order, and the same errors, as
/// [`read_page`], but a large replay file can be mapped while the rest of it is still being read.
/// A document found bad after some of its tickets were handed over is an error all the same: the
/// caller must discard what it got. `sink` returns false to stop early; the error then says so.
pub fn stream_page<'a>(
    body: &'a [u8],
    sink: &mut dyn FnMut(PageTicket<'a>) -> bool,
) -> Result<Option<String>, String> {
    let text = document_text(body)?;
    let mut parser = serde_json::Deserializer::from_str(text);
    let envelope = parser
        .deserialize_map(StreamingEnvelope { sink: &mut *sink })
        .and_then(|envelope| parser.end().map(|()| envelope))
        .map_err(not_a_diff_document)?;
    let next_page_key = next_page_key(
        envelope.pagination.flatten(),
        envelope.next_page_key.flatten(),
    )?;
    match envelope.result {
        Some(StreamedList::List) => return Ok(next_page_key),
        Some(StreamedList::NotAnArray) => return Err(NOT_AN_ARRAY.into()),
        Some(StreamedList::Null) | None => {}
    }
    let fallback = envelope.tickets.flatten().or(envelope.items.flatten());
    for raw in raw_tickets(fallback)? {
        if !sink(PageTicket::decode(raw)) {
            return Err(STOPPED.into());
        }
    }
    Ok(next_page_key)
}

/// Why [`stream_page`] ended when its sink asked it to stop.
const STOPPED: &str = "the reading of the document was stopped";

/// The envelope as [`stream_page`] reads it: `result` streamed as it goes (it is the list when it
/// is not null), the other lists kept raw until the whole document has been read.
struct StreamingEnvelope<'s, 'a> {
    sink: &'s mut dyn FnMut(PageTicket<'a>) -> bool,
}

/// Each field is `Some` once seen, even as null, as in the derived implementation.
#[derive(Default)]
struct StreamedEnvelope<'a> {
    result: Option<StreamedList>,
    tickets: Option<Option<&'a RawValue>>,
    items: Option<Option<&'a RawValue>>,
    pagination: Option<Option<Object<Pagination>>>,
    next_page_key: Option<Option<String>>,
}

/// What a streamed `result` turned out to be.
enum StreamedList {
    Null,
    List,
    NotAnArray,
}

/// `result`, its tickets decoded and handed to the sink one by one as they are read.
struct StreamingList<'s, 'a> {
    sink: &'s mut dyn FnMut(PageTicket<'a>) -> bool,
}

impl<'a> de::DeserializeSeed<'a> for StreamingList<'_, 'a> {
    type Value = StreamedList;

    fn deserialize<D: Deserializer<'a>>(self, deserializer: D) -> Result<StreamedList, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'a> Visitor<'a> for StreamingList<'_, 'a> {
    type Value = StreamedList;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a ticket list")
    }

    fn visit_seq<A: de::SeqAccess<'a>>(self, mut seq: A) -> Result<StreamedList, A::Error> {
        while let Some(raw) = seq.next_element::<&RawValue>()? {
            if !(self.sink)(PageTicket::decode(raw)) {
                return Err(de::Error::custom(STOPPED));
            }
        }
        Ok(StreamedList::List)
    }

    fn visit_unit<E: de::Error>(self) -> Result<StreamedList, E> {
        Ok(StreamedList::Null)
    }

    // Anything else is read through (the rest of the document must still be valid) and refused
    // once it is, as the two-pass reading refuses it.
    fn visit_map<A: de::MapAccess<'a>>(self, mut map: A) -> Result<StreamedList, A::Error> {
        while map
            .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
            .is_some()
        {}
        Ok(StreamedList::NotAnArray)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<StreamedList, E> {
        Ok(StreamedList::NotAnArray)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<StreamedList, E> {
        Ok(StreamedList::NotAnArray)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<StreamedList, E> {
        Ok(StreamedList::NotAnArray)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<StreamedList, E> {
        Ok(StreamedList::NotAnArray)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<StreamedList, E> {
        Ok(StreamedList::NotAnArray)
    }
}

/// The fields of [`Envelope`], as its derived implementation names them.
#[derive(Deserialize)]
#[serde(field_identifier)]
enum EnvelopeField {
    #[serde(rename = "result")]
    Result,
    #[serde(rename = "tickets")]
    Tickets,
    #[serde(rename = "items")]
    Items,
    #[serde(rename = "pagination")]
    Pagination,
    #[serde(rename = "nextPageKey")]
    NextPageKey,
    #[serde(other)]
    Other,
}

impl<'a> Visitor<'a> for StreamingEnvelope<'_, 'a> {
    type Value = StreamedEnvelope<'a>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a diff document")
    }

    fn visit_map<A: de::MapAccess<'a>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        // A field seen twice is refused, as the derived `Envelope` refuses it.
        fn once<T, E: de::Error>(slot: &Option<T>, name: &'static str) -> Result<(), E> {
            match slot {
                Some(_) => Err(E::duplicate_field(name)),
                None => Ok(()),
            }
        }
        fn fill<'a, T: Deserialize<'a>, A: de::MapAccess<'a>>(
            slot: &mut Option<T>,
            name: &'static str,
            map: &mut A,
        ) -> Result<(), A::Error> {
            once(slot, name)?;
            *slot = Some(map.next_value()?);
            Ok(())
        }
        let mut envelope = StreamedEnvelope::default();
        while let Some(field) = map.next_key()? {
            match field {
                EnvelopeField::Result => {
                    once(&envelope.result, "result")?;
                    let sink = &mut *self.sink;
                    envelope.result = Some(map.next_value_seed(StreamingList { sink })?);
                }
                EnvelopeField::Tickets => fill(&mut envelope.tickets, "tickets", &mut map)?,
                EnvelopeField::Items => fill(&mut envelope.items, "items", &mut map)?,
                EnvelopeField::Pagination => {
                    fill(&mut envelope.pagination, "pagination", &mut map)?
                }
                EnvelopeField::NextPageKey => {
                    fill(&mut envelope.next_page_key, "nextPageKey", &mut map)?
                }
                EnvelopeField::Other => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        Ok(envelope)
    }
}
/// The raw `taxNumber` of a ticket, read without any other validation: the skip list is checked
/// on it before anything else, so that skipping gets past a malformed ticket.
pub fn raw_ticket_number(raw: &RawValue) -> Option<String> {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(default, rename = "taxNumber")]
        tax_number: Option<serde_json::Value>,
    }
    match serde_json::from_str::<Object<Probe>>(raw.get())
        .ok()?
        .0
        .tax_number?
    {
        serde_json::Value::String(number) => Some(number),
        _ => None,
    }
}

/// A ticket as TIXNGO reports it: the current state of one mobile ticket.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ticket {
    /// S-360 ticket number (TIXNGO tax number), validated against the grammar of SPEC §2.
    pub ticket_number: String,
    pub tixngo_ticket_id: Option<String>,
    pub barcode: Option<String>,
    pub event_id: Option<String>,
    /// The mobile status, an open set (V3 and V4 names, and whatever TIXNGO adds), normalised
    /// (see [`status::normalise`]).
    pub status: String,
    /// When the ticket last changed in TIXNGO (`lastUpdated`, else `lastUpdate`); `None` means
    /// it is never stale.
    pub last_updated: Option<Timestamp>,
    /// `spectatorDetails`: the current owner, the wallet holding the ticket.
    pub owner: Option<Spectator>,
    /// The assignee (S-360 beneficiary): `holder`, else `assignee`.
    pub holder: Patch<Holder>,
    pub previous_owner_email: Option<String>,
    pub initial_owner_email: Option<String>,
    /// `transfer.recipientEmail`: the recipient of a pending or failed transfer.
    pub transfer_recipient_email: Option<String>,
    pub attributes: Attributes,
    /// The fields TIXNGO sent that the mapping does not read, by name (`a.b` inside objects):
    /// the ticket's own first, then those of each object it reads. Never their values.
    pub unknown_fields: Vec<String>,
}

/// A field that can be absent (keep the stored value), explicitly `null` (clear it) or set.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Patch<T> {
    #[default]
    Absent,
    Clear,
    Set(T),
}

/// `spectatorDetails`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Spectator {
    pub title: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub birth_date: Option<String>,
    pub email: Option<String>,
    pub nationality: Option<String>,
    pub id_number: Option<String>,
    pub phone: Option<String>,
    pub residence_country: Option<String>,
    pub language: Option<String>,
    pub allow_promo_email: Option<bool>,
    pub allow_third_party_email: Option<bool>,
}

/// `holder`: the assignee of the ticket.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Holder {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub birth_date: Option<String>,
    pub id_number: Option<String>,
    pub nationality: Option<String>,
    /// S-360's beneficiary `BIRTH_PLACE`, `BIRTH_REGION` and `COUNTRY_CODE` (docs/reference.md §4.1).
    pub birth_place: Option<String>,
    pub birth_region: Option<String>,
    pub country_code: Option<String>,
}

/// `attributes`: when each V4 milestone was reached. An explicit `null` clears a milestone that
/// no longer holds (a deactivation, a check-out, a re-injection after a deletion).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Attributes {
    pub injected_at: Patch<Timestamp>,
    pub downloaded_at: Patch<Timestamp>,
    pub assigned_at: Patch<Timestamp>,
    pub activated_at: Patch<Timestamp>,
    pub checked_at: Patch<Timestamp>,
    pub controlled_at: Patch<Timestamp>,
    pub deleted_at: Patch<Timestamp>,
}

/// Decodes one raw ticket. The error is the reason it cannot be mapped (kept in `sync_error`).
pub fn decode_ticket(raw: &RawValue) -> Result<Ticket, String> {
    if !raw.get().trim_start().starts_with('{') {
        return Err("the ticket is not a JSON object".to_owned());
    }
    let wire: Known<WireTicket> = serde_json::from_str(raw.get()).map_err(without_values)?;
    wire.value.into_ticket(wire.unknown)
}

/// How far ahead of this host's clock a `lastUpdated` may be (clocks drift, zones get mixed up):
/// beyond it, the date is wrong, and storing it would make every later real change "stale".
const MAX_AHEAD_MILLIS: i64 = 24 * 3600 * 1000;

impl WireTicket {
    /// Checks a decoded ticket (SPEC §4.1) and turns it into a [`Ticket`]; `unknown` names the
    /// top-level fields the mapping does not read.
    fn into_ticket(self, unknown: Vec<String>) -> Result<Ticket, String> {
        let wire = self;
        let mut unknown = FieldNames(unknown);
        let ticket_number = wire.tax_number.ok_or("taxNumber is missing")?.0;
        if !ticket_number::is_valid(&ticket_number) {
            return Err(format!(
                "taxNumber is not a valid ticket number (1 to {} characters of A-Z a-z 0-9 - _ . /)",
                ticket_number::MAX_LEN
            ));
        }
        let status = wire.status.ok_or("status is missing")?.0;
        if status.trim().is_empty() {
            return Err("status is empty".to_owned());
        }
        let last_updated = last_updated(wire.last_updated, wire.last_update)?;
        let holder = match (wire.holder, wire.assignee) {
            (Some(holder), _) => unknown.holder("holder", holder),
            (None, Some(assignee)) => unknown.holder("assignee", assignee),
            (None, None) => Patch::Absent,
        };
        let owner = wire.spectator_details.map(|s| {
            unknown
                .nested("spectatorDetails", s)
                .into_spectator(&mut unknown)
        });
        let mut email_of = |field: &str, person: Option<Known<WirePerson>>| {
            person.and_then(|p| text(unknown.nested(field, p).email))
        };
        let previous_owner_email = email_of("previousOwner", wire.previous_owner);
        let initial_owner_email = email_of("initialOwner", wire.initial_owner);
        let transfer_recipient_email = wire
            .transfer
            .and_then(|t| text(unknown.nested("transfer", t).recipient_email));
        let attributes = wire
            .attributes
            .map(|a| unknown.nested("attributes", a))
            .unwrap_or_default();
        Ok(Ticket {
            ticket_number,
            tixngo_ticket_id: text(wire.ticket_id),
            barcode: text(wire.barcode),
            event_id: text(wire.event_id),
            status: status::normalise(&status),
            last_updated,
            owner,
            holder,
            previous_owner_email,
            initial_owner_email,
            transfer_recipient_email,
            attributes: attributes.into_attributes()?,
            unknown_fields: unknown.0,
        })
    }
}

/// The names of the fields a ticket holds that the mapping does not read.
struct FieldNames(Vec<String>);

impl FieldNames {
    /// The value of a nested object, its unread fields named as `parent.field`.
    fn nested<T>(&mut self, parent: &str, object: Known<T>) -> T {
        self.0.extend(
            object
                .unknown
                .into_iter()
                .map(|name| format!("{parent}.{name}")),
        );
        object.value
    }

    /// The holder under the field it came in (`holder` or `assignee`): cleared by `null`.
    fn holder(&mut self, field: &str, holder: Option<Known<WireHolder>>) -> Patch<Holder> {
        match holder {
            None => Patch::Clear,
            Some(holder) => Patch::Set(self.nested(field, holder).into_holder()),
        }
    }
}

/// serde's own type errors quote the value they found (`invalid type: string "…"`); this keeps
/// the expected type and the position only.
fn without_values(error: serde_json::Error) -> String {
    let message = error.to_string();
    let quotes_value = ["invalid type:", "invalid value:", "unknown variant"]
        .iter()
        .any(|prefix| message.starts_with(prefix));
    if !quotes_value {
        return message;
    }
    let expected = message
        .rsplit_once(", expected ")
        .map(|(_, rest)| rest.split(" at line ").next().unwrap_or_default())
        .map(|what| {
            if what.starts_with("struct ") {
                "an object"
            } else {
                what
            }
        })
        .unwrap_or("another type");
    format!(
        "a field holds a value of the wrong type (expected {expected}) at line {} column {}",
        error.line(),
        error.column()
    )
}

fn text(value: Option<Text>) -> Option<String> {
    value.map(|t| t.0)
}

/// `lastUpdated`, else the older `lastUpdate`: a time, never more than a day ahead of this host.
fn last_updated(
    last_updated: Option<Text>,
    last_update: Option<Text>,
) -> Result<Option<Timestamp>, String> {
    let at = match last_updated {
        Some(at) => instant("lastUpdated", Some(at))?,
        None => instant("lastUpdate", last_update)?,
    };
    if let Some(at) = at
        && at.millis_since(Timestamp::now()) > MAX_AHEAD_MILLIS
    {
        return Err("lastUpdated is more than 24 h ahead of this host's clock".to_owned());
    }
    Ok(at)
}

fn instant(field: &str, value: Option<Text>) -> Result<Option<Timestamp>, String> {
    value
        .map(|t| {
            Timestamp::parse_rfc3339(&t.0)
                .ok_or_else(|| format!("{field} is not an RFC 3339 timestamp"))
        })
        .transpose()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireTicket {
    #[serde(default)]
    ticket_id: Option<Text>,
    #[serde(default)]
    tax_number: Option<Text>,
    #[serde(default)]
    barcode: Option<Text>,
    #[serde(default)]
    event_id: Option<Text>,
    #[serde(default)]
    status: Option<Text>,
    #[serde(default)]
    last_updated: Option<Text>,
    /// The other name TIXNGO's conventions suggest (docs/reference.md §4.1); read when `lastUpdated` is absent.
    #[serde(default)]
    last_update: Option<Text>,
    #[serde(default)]
    spectator_details: Option<Known<WireSpectator>>,
    #[serde(default, deserialize_with = "present")]
    holder: Option<Option<Known<WireHolder>>>,
    /// Another name for the holder (docs/reference.md §4.1); read when `holder` is absent.
    #[serde(default, deserialize_with = "present")]
    assignee: Option<Option<Known<WireHolder>>>,
    #[serde(default)]
    previous_owner: Option<Known<WirePerson>>,
    #[serde(default)]
    initial_owner: Option<Known<WirePerson>>,
    #[serde(default)]
    transfer: Option<Known<WireTransfer>>,
    #[serde(default)]
    attributes: Option<Known<WireAttributes>>,
}

/// Tells an explicit `null` (`Some(None)`) from an absent field (`None`, through `default`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireSpectator {
    #[serde(default)]
    title: Option<Text>,
    #[serde(default)]
    first_name: Option<Text>,
    #[serde(default)]
    last_name: Option<Text>,
    #[serde(default)]
    date_of_birth: Option<Text>,
    #[serde(default)]
    email: Option<Text>,
    #[serde(default)]
    nationality: Option<Text>,
    #[serde(default)]
    id_card_number: Option<Text>,
    #[serde(default)]
    phone_number: Option<Text>,
    #[serde(default)]
    residence_country: Option<Text>,
    #[serde(default)]
    language: Option<Text>,
    #[serde(default)]
    organizer_spectator_preference: Option<Known<WirePreference>>,
}

impl WireSpectator {
    fn into_spectator(self, unknown: &mut FieldNames) -> Spectator {
        let preference = self
            .organizer_spectator_preference
            .map(|p| unknown.nested("spectatorDetails.organizerSpectatorPreference", p));
        Spectator {
            title: text(self.title),
            first_name: text(self.first_name),
            last_name: text(self.last_name),
            birth_date: text(self.date_of_birth),
            email: text(self.email),
            nationality: text(self.nationality),
            id_number: text(self.id_card_number),
            phone: text(self.phone_number),
            residence_country: text(self.residence_country),
            language: text(self.language),
            allow_promo_email: preference
                .as_ref()
                .and_then(|p| p.allow_promo_email.as_ref().map(|f| f.0)),
            allow_third_party_email: preference
                .and_then(|p| p.allow_third_party_email.map(|f| f.0)),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WirePreference {
    #[serde(default)]
    allow_promo_email: Option<Flag>,
    #[serde(default)]
    allow_third_party_email: Option<Flag>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireHolder {
    #[serde(default)]
    first_name: Option<Text>,
    #[serde(default)]
    last_name: Option<Text>,
    #[serde(default)]
    date_of_birth: Option<Text>,
    #[serde(default)]
    id_card_number: Option<Text>,
    #[serde(default)]
    nationality: Option<Text>,
    #[serde(default)]
    birth_place: Option<Text>,
    #[serde(default)]
    birth_region: Option<Text>,
    #[serde(default)]
    country_code: Option<Text>,
}

impl WireHolder {
    fn into_holder(self) -> Holder {
        Holder {
            first_name: text(self.first_name),
            last_name: text(self.last_name),
            birth_date: text(self.date_of_birth),
            id_number: text(self.id_card_number),
            nationality: text(self.nationality),
            birth_place: text(self.birth_place),
            birth_region: text(self.birth_region),
            country_code: text(self.country_code),
        }
    }
}

#[derive(Deserialize)]
struct WirePerson {
    #[serde(default)]
    email: Option<Text>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireTransfer {
    #[serde(default)]
    recipient_email: Option<Text>,
}

/// `attributes`: each milestone absent (`None`), `null` (`Some(None)`) or set.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireAttributes {
    #[serde(default, deserialize_with = "present")]
    injected_at: Option<Option<Text>>,
    #[serde(default, deserialize_with = "present")]
    downloaded_at: Option<Option<Text>>,
    #[serde(default, deserialize_with = "present")]
    assigned_at: Option<Option<Text>>,
    #[serde(default, deserialize_with = "present")]
    activated_at: Option<Option<Text>>,
    #[serde(default, deserialize_with = "present")]
    checked_at: Option<Option<Text>>,
    #[serde(default, deserialize_with = "present")]
    controlled_at: Option<Option<Text>>,
    #[serde(default, deserialize_with = "present")]
    deleted_at: Option<Option<Text>>,
}

impl WireAttributes {
    fn into_attributes(self) -> Result<Attributes, String> {
        fn milestone(field: &str, value: Option<Option<Text>>) -> Result<Patch<Timestamp>, String> {
            Ok(match value {
                None => Patch::Absent,
                Some(None) => Patch::Clear,
                Some(at) => instant(field, at)?.map_or(Patch::Absent, Patch::Set),
            })
        }
        Ok(Attributes {
            injected_at: milestone("attributes.injectedAt", self.injected_at)?,
            downloaded_at: milestone("attributes.downloadedAt", self.downloaded_at)?,
            assigned_at: milestone("attributes.assignedAt", self.assigned_at)?,
            activated_at: milestone("attributes.activatedAt", self.activated_at)?,
            checked_at: milestone("attributes.checkedAt", self.checked_at)?,
            controlled_at: milestone("attributes.controlledAt", self.controlled_at)?,
            deleted_at: milestone("attributes.deletedAt", self.deleted_at)?,
        })
    }
}

/// A JSON object read as `T`, with the names of its fields that `T` does not read (serde's
/// derived structs skip them silently): so that the first real response tells the operator
/// what TIXNGO sends beyond what the mapping expects. Only an object, like [`Object`].
struct Known<T> {
    value: T,
    unknown: Vec<String>,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Known<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Fields<T> {
            type Value = Known<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Known<T>, A::Error> {
                let mut unknown = Vec::new();
                let value = T::deserialize(NamingFields {
                    map,
                    unknown: &mut unknown,
                })?;
                Ok(Known { value, unknown })
            }
        }
        deserializer.deserialize_map(Fields(std::marker::PhantomData))
    }
}

/// A map handed to a derived struct, noting the keys that are not among the struct's fields.
struct NamingFields<'u, A> {
    map: A,
    unknown: &'u mut Vec<String>,
}

impl<'de, A: de::MapAccess<'de>> Deserializer<'de> for NamingFields<'_, A> {
    type Error = A::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, A::Error> {
        self.deserialize_struct("", &[], visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        visitor.visit_map(NamingKeys {
            map: self.map,
            fields,
            unknown: self.unknown,
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

struct NamingKeys<'u, A> {
    map: A,
    fields: &'static [&'static str],
    unknown: &'u mut Vec<String>,
}

impl<'de, A: de::MapAccess<'de>> de::MapAccess<'de> for NamingKeys<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let Some(key) = self.map.next_key::<KeyName<'de>>()? else {
            return Ok(None);
        };
        let name: &str = &key.0;
        if !self.fields.contains(&name) {
            self.unknown.push(name.to_owned());
        }
        match key.0 {
            std::borrow::Cow::Borrowed(name) => seed
                .deserialize(de::value::BorrowedStrDeserializer::new(name))
                .map(Some),
            std::borrow::Cow::Owned(name) => seed
                .deserialize(de::value::StringDeserializer::new(name))
                .map(Some),
        }
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

/// A key, borrowed from the input when it holds no escape.
struct KeyName<'de>(std::borrow::Cow<'de, str>);

impl<'de> Deserialize<'de> for KeyName<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Name;
        impl<'de> Visitor<'de> for Name {
            type Value = KeyName<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, name: &'de str) -> Result<KeyName<'de>, E> {
                Ok(KeyName(std::borrow::Cow::Borrowed(name)))
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<KeyName<'de>, E> {
                Ok(KeyName(std::borrow::Cow::Owned(name.to_owned())))
            }
        }
        deserializer.deserialize_str(Name)
    }
}

/// A JSON object, and only an object: serde's derived structs also read an array, field by field
/// in declaration order, which would put a list's values into the wrong fields (an e-mail taken
/// from a list of names). An array where an object belongs is a value of the wrong type.
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Fields<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer
            .deserialize_map(Fields(std::marker::PhantomData))
            .map(Object)
    }
}

/// A JSON string whose type errors never quote the value they found.
struct Text(String);

/// A JSON boolean whose type errors never quote the value they found.
struct Flag(bool);

/// Names the JSON type found where another was expected, without its value.
fn wrong_type<E: de::Error>(expected: &str, found: &str) -> E {
    E::custom(format_args!("expected {expected}, found {found}"))
}

/// Reads a JSON scalar that should be a string or a boolean; every other type is an error that
/// names the type it found and not the value.
struct Scalar {
    expected: &'static str,
}

enum Found {
    Str(String),
    Bool(bool),
}

impl<'de> Visitor<'de> for Scalar {
    type Value = Found;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.expected)
    }
    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Found, E> {
        Ok(Found::Bool(value))
    }
    fn visit_str<E: de::Error>(self, value: &str) -> Result<Found, E> {
        Ok(Found::Str(value.to_owned()))
    }
    fn visit_string<E: de::Error>(self, value: String) -> Result<Found, E> {
        Ok(Found::Str(value))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Found, E> {
        Err(wrong_type(self.expected, "a number"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Found, E> {
        Err(wrong_type(self.expected, "a number"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Found, E> {
        Err(wrong_type(self.expected, "a number"))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Found, A::Error> {
        Err(wrong_type(self.expected, "an array"))
    }
    fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<Found, A::Error> {
        Err(wrong_type(self.expected, "an object"))
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let expected = "a string";
        match deserializer.deserialize_any(Scalar { expected })? {
            Found::Str(value) => Ok(Text(value)),
            Found::Bool(_) => Err(wrong_type(expected, "a boolean")),
        }
    }
}

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let expected = "a boolean";
        match deserializer.deserialize_any(Scalar { expected })? {
            Found::Bool(value) => Ok(Flag(value)),
            Found::Str(_) => Err(wrong_type(expected, "a string")),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn both_readers_name_a_syntax_error_alike() {
        for doc in [
            r#"{"result":[{"taxNumber":"1","status":"X"},]}"#,
            r#"{"result":[{"taxNumber":"1","status":"X"}],}"#,
            r#"{"result":[{"taxNumber":"1","status":"X",}]}"#,
            r#"{"result":[{"taxNumber":"1" "status":"X"}]}"#,
        ] {
            let streamed = super::stream_page(doc.as_bytes(), &mut |_| true).unwrap_err();
            let read = super::read_page(doc.as_bytes()).map(|_| ()).unwrap_err();
            assert_eq!(streamed, read, "{doc}");
            assert!(
                streamed.contains("invalid JSON at line 1 column"),
                "{streamed}"
            );
        }
    }

    use super::*;

    fn page(body: &str) -> Result<DiffPage<'_>, String> {
        parse_page(body.as_bytes())
    }

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_owned()).unwrap()
    }

    #[test]
    fn reads_the_documented_envelope() {
        let p =
            page(r#"{"pagination":{"nextPageKey":"k2"},"result":[{"a":1},{"b":2}],"extra":true}"#)
                .unwrap();
        assert_eq!(p.next_page_key.as_deref(), Some("k2"));
        assert_eq!(p.tickets.len(), 2);
        assert_eq!(p.tickets[1].get(), r#"{"b":2}"#);
    }

    #[test]
    fn a_leading_byte_order_mark_is_skipped() {
        let body = b"\xEF\xBB\xBF{\"result\":[],\"nextPageKey\":\"k\"}";
        assert_eq!(
            parse_page(body).unwrap().next_page_key.as_deref(),
            Some("k")
        );
        assert_eq!(read_page(body).unwrap().next_page_key.as_deref(), Some("k"));
        assert_eq!(
            stream_page(body, &mut |_| true).unwrap().as_deref(),
            Some("k")
        );
    }

    #[test]
    fn pagination_keys_are_short_printable_ascii() {
        assert!(PaginationKey::new("pk1.a ~!".into()).is_ok());
        assert!(PaginationKey::new("x".repeat(PaginationKey::MAX_BYTES)).is_ok());
        for bad in [
            "x".repeat(PaginationKey::MAX_BYTES + 1),
            "a\nb".into(),
            "a\u{1b}[2J".into(),
            "clé".into(),
        ] {
            let why = PaginationKey::new(bad.clone()).unwrap_err();
            assert!(!why.contains(&bad), "{why}");
        }
    }

    #[test]
    fn a_bad_next_key_makes_the_document_bad_data() {
        let long = "k".repeat(PaginationKey::MAX_BYTES + 1);
        for body in [
            format!(r#"{{"result":[],"pagination":{{"nextPageKey":"{long}"}}}}"#),
            r#"{"result":[],"nextPageKey":"a\u0007b"}"#.to_owned(),
        ] {
            let why = parse_page(body.as_bytes()).unwrap_err();
            assert!(why.contains("nextPageKey"), "{why}");
            assert!(read_page(body.as_bytes()).is_err());
            assert!(stream_page(body.as_bytes(), &mut |_| true).is_err());
        }
    }

    #[test]
    fn tolerates_aliases_and_a_top_level_key() {
        let p = page(r#"{"nextPageKey":"k","tickets":[]}"#).unwrap();
        assert_eq!(
            (p.next_page_key.as_deref(), p.tickets.len()),
            (Some("k"), 0)
        );
        let p = page(r#"{"items":[1],"pagination":{}}"#).unwrap();
        assert_eq!((p.next_page_key, p.tickets.len()), (None, 1));
        let p = page(r#"{"result":[],"pagination":{"nextPageKey":""}}"#).unwrap();
        assert_eq!(p.next_page_key, None, "an empty key counts as none");
        let p = page(r#"{"result":[],"pagination":{"nextPageKey":null}}"#).unwrap();
        assert_eq!(p.next_page_key, None);
    }

    #[test]
    fn a_document_without_a_ticket_array_is_bad_data() {
        for body in [
            r#"{"message":"ok"}"#,
            r#"{"result":null}"#,
            r#"{"result":{"a":1}}"#,
            r#"{"result":"x"}"#,
            r#"[{"taxNumber":"1"}]"#,
            r#"{"result":[1,2"#,
            "",
            "null",
            r#"{"result":[],"pagination":{"nextPageKey":5}}"#,
        ] {
            assert!(page(body).is_err(), "{body:?} was accepted");
        }
        let err = parse_page(b"{\"result\":[\"\xff\"]}").unwrap_err();
        assert!(err.contains("UTF-8"), "{err}");
    }

    /// What `stream_page` hands over and returns, in the shape of `read_page`'s answer.
    fn streamed(body: &[u8]) -> Result<(Option<String>, String), String> {
        let mut tickets = Vec::new();
        let key = stream_page(body, &mut |ticket| {
            tickets.push(ticket);
            true
        })?;
        Ok((key, format!("{tickets:?}")))
    }

    #[test]
    fn streaming_gives_what_read_page_gives_on_the_envelope_edge_cases() {
        let ticket = r#"{"taxNumber":"T-1","status":"INJECTED"}"#;
        let deep = format!(
            r#"{{"result":[{}1{}]}}"#,
            "[".repeat(5000),
            "]".repeat(5000)
        );
        let bodies = [
            format!(r#"{{"result":[{ticket},{{"taxNumber":5}}],"nextPageKey":"k"}}"#),
            format!(r#"{{"result":null,"tickets":[{ticket}],"items":[]}}"#),
            format!(r#"{{"items":[{ticket}],"result":[]}}"#),
            format!(r#"{{"tickets":"x","items":[{ticket}]}}"#),
            format!(r#"{{"result":[{ticket}],"result":[]}}"#),
            format!(r#"{{"result":null,"result":[{ticket}]}}"#),
            format!(r#"{{"tickets":null,"tickets":[{ticket}]}}"#),
            r#"{"nextPageKey":null,"nextPageKey":"k","result":[]}"#.to_owned(),
            format!(r#"{{"result":[{ticket}],"pagination":[]}}"#),
            format!(r#"{{"result":[{ticket}]}} trailing"#),
            format!(r#"{{"result":[{ticket}],"extra":[1,2"#),
            format!(r#"{{"result":{{"a":[1]}},"tickets":[{ticket}]}}"#),
            r#"{"result":true}"#.to_owned(),
            r#"{"result":-1.5}"#.to_owned(),
            deep,
        ];
        for body in bodies {
            let read = read_page(body.as_bytes())
                .map(|page| (page.next_page_key, format!("{:?}", page.tickets)));
            assert_eq!(streamed(body.as_bytes()), read, "{body:.200}");
        }
    }

    #[test]
    fn a_stream_stops_when_its_sink_says_so_and_reports_it() {
        let body =
            br#"{"result":[{"taxNumber":"T-1","status":"A"},{"taxNumber":"T-2","status":"A"}]}"#;
        let mut taken = 0;
        let outcome = stream_page(body, &mut |_| {
            taken += 1;
            false
        });
        assert_eq!(taken, 1);
        assert!(outcome.unwrap_err().contains(STOPPED));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!(
            r#"{{"result":[{}1{}]}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        // Skipped over inside the list (without recursion), then refused as a ticket.
        for ticket in page(&deep).map(|p| p.tickets).unwrap_or_default() {
            assert!(decode_ticket(ticket).is_err());
        }
        let deep = |field: &str| {
            let json = format!(
                r#"{{"taxNumber":"1","status":"X","{field}":{}1{}}}"#,
                "[".repeat(100_000),
                "]".repeat(100_000)
            );
            decode_ticket(&raw(&json))
        };
        assert!(deep("spectatorDetails").is_err());
        assert!(
            deep("unknownField").is_ok(),
            "unknown fields are skipped, however deep"
        );
    }

    #[test]
    fn decodes_a_full_ticket() {
        let t = decode_ticket(&raw(
            r#"{"ticketId":"TX-1","taxNumber":"2026000001","barcode":"123","eventId":"EV-1",
                "status":"ASSIGNED","lastUpdated":"2026-06-01T14:00:00+02:00",
                "spectatorDetails":{"title":"Ms","firstName":"Zoë","lastName":"Müller","dateOfBirth":"1990-01-02",
                  "email":"zoe@example.org","nationality":"CHE","idCardNumber":"X1","phoneNumber":"+41",
                  "residenceCountry":"CHE","language":"de",
                  "organizerSpectatorPreference":{"allowPromoEmail":true,"allowThirdPartyEmail":false}},
                "holder":{"firstName":"Łukasz","lastName":"Wójcik","dateOfBirth":"2001-03-04","idCardNumber":"P9","nationality":"POL"},
                "previousOwner":{"email":"prev@example.org"},"initialOwner":{"email":"init@example.org","firstName":"I"},
                "transfer":{"recipientEmail":"r@example.org"},
                "attributes":{"injectedAt":"2026-05-01T00:00:00Z","deletedAt":null},
                "somethingNew":{"nested":[1,2,3]}}"#,
        ))
        .unwrap();
        assert_eq!(t.ticket_number, "2026000001");
        assert_eq!(t.status, "ASSIGNED");
        assert_eq!(
            t.last_updated.unwrap().to_string(),
            "2026-06-01T12:00:00.000Z"
        );
        let owner = t.owner.unwrap();
        assert_eq!(owner.first_name.as_deref(), Some("Zoë"));
        assert_eq!(
            (owner.allow_promo_email, owner.allow_third_party_email),
            (Some(true), Some(false))
        );
        let Patch::Set(holder) = t.holder else {
            panic!("holder")
        };
        assert_eq!(holder.id_number.as_deref(), Some("P9"));
        assert_eq!(t.previous_owner_email.as_deref(), Some("prev@example.org"));
        assert_eq!(t.initial_owner_email.as_deref(), Some("init@example.org"));
        assert_eq!(t.transfer_recipient_email.as_deref(), Some("r@example.org"));
        assert_eq!(
            t.attributes.injected_at,
            Patch::Set(Timestamp::parse_rfc3339("2026-05-01T00:00:00Z").unwrap())
        );
        assert_eq!(
            t.attributes.deleted_at,
            Patch::Clear,
            "an explicit null clears"
        );
        assert_eq!(t.attributes.checked_at, Patch::Absent);
        assert_eq!(t.unknown_fields, ["somethingNew", "initialOwner.firstName"]);
    }

    #[test]
    fn statuses_are_normalised_and_the_proposed_field_names_are_read_too() {
        let t = decode_ticket(&raw(
            r#"{"taxNumber":"1","status":" pending ","lastUpdate":"2026-06-01T12:00:00Z",
                "assignee":{"firstName":"Zoë","birthPlace":"Genève","birthRegion":"GE","countryCode":"CH"}}"#,
        ))
        .unwrap();
        assert_eq!(t.status, "PENDING_TRANSFER");
        assert_eq!(
            t.last_updated.unwrap().to_string(),
            "2026-06-01T12:00:00.000Z"
        );
        let Patch::Set(holder) = t.holder else {
            panic!("assignee")
        };
        assert_eq!(
            (
                holder.first_name.as_deref(),
                holder.birth_place.as_deref(),
                holder.birth_region.as_deref(),
                holder.country_code.as_deref()
            ),
            (Some("Zoë"), Some("Genève"), Some("GE"), Some("CH"))
        );
        assert!(t.unknown_fields.is_empty(), "{:?}", t.unknown_fields);
        // The documented names win when both are sent.
        let t = decode_ticket(&raw(
            r#"{"taxNumber":"1","status":"X","lastUpdated":"2026-06-01T12:00:00Z","lastUpdate":"2020-01-01T00:00:00Z",
                "holder":null,"assignee":{"firstName":"A"}}"#,
        ))
        .unwrap();
        assert_eq!(
            t.last_updated.unwrap().to_string(),
            "2026-06-01T12:00:00.000Z"
        );
        assert_eq!(t.holder, Patch::Clear);
    }

    #[test]
    fn fields_the_mapping_does_not_read_are_named_not_valued() {
        let t = decode_ticket(&raw(
            r#"{"taxNumber":"1","status":"X","eventName":"Final","seat":{"row":"secret-9"},
                "spectatorDetails":{"email":"a@x.org","nickName":"secret-1",
                  "organizerSpectatorPreference":{"allowSms":true}},
                "holder":{"fi\u0072stName":"A","middleName":"secret-2"},"attributes":{"resoldAt":null}}"#,
        ))
        .unwrap();
        assert_eq!(
            t.unknown_fields,
            [
                "eventName",
                "seat",
                "holder.middleName",
                "spectatorDetails.nickName",
                "spectatorDetails.organizerSpectatorPreference.allowSms",
                "attributes.resoldAt",
            ]
        );
        let Patch::Set(holder) = t.holder else {
            panic!("holder")
        };
        assert_eq!(
            holder.first_name.as_deref(),
            Some("A"),
            "an escaped key is read"
        );
        // The one-pass reading of a page names them too.
        let body = br#"{"result":[{"taxNumber":"1","status":"X","extra":1}]}"#;
        let page = read_mappable_page(body).unwrap();
        assert!(
            matches!(&page.tickets[0], PageTicket::Decoded(t) if t.unknown_fields == ["extra"])
        );
    }

    #[test]
    fn a_ticket_dated_more_than_a_day_ahead_cannot_be_mapped() {
        for field in ["lastUpdated", "lastUpdate"] {
            let json =
                format!(r#"{{"taxNumber":"1","status":"X","{field}":"9999-12-31T00:00:00Z"}}"#);
            let reason = decode_ticket(&raw(&json)).unwrap_err();
            assert!(reason.contains("24 h ahead"), "{reason}");
        }
        let soon = Timestamp::from_system_time(
            std::time::SystemTime::now() + std::time::Duration::from_secs(23 * 3600),
        );
        let json = format!(r#"{{"taxNumber":"1","status":"X","lastUpdated":"{soon}"}}"#);
        assert!(
            decode_ticket(&raw(&json)).is_ok(),
            "a clock a few hours off is tolerated"
        );
    }

    #[test]
    fn holder_absent_null_and_set_are_told_apart() {
        let absent = decode_ticket(&raw(r#"{"taxNumber":"1","status":"X"}"#)).unwrap();
        assert_eq!(absent.holder, Patch::Absent);
        let null = decode_ticket(&raw(r#"{"taxNumber":"1","status":"X","holder":null}"#)).unwrap();
        assert_eq!(null.holder, Patch::Clear);
        let set = decode_ticket(&raw(r#"{"taxNumber":"1","status":"X","holder":{}}"#)).unwrap();
        assert_eq!(set.holder, Patch::Set(Holder::default()));
    }

    #[test]
    fn unmappable_tickets_give_a_reason_without_the_value() {
        for (json, needle) in [
            ("[]", "not a JSON object"),
            ("\"T1\"", "not a JSON object"),
            (r#"{"status":"X"}"#, "taxNumber is missing"),
            (r#"{"taxNumber":"1"}"#, "status is missing"),
            (r#"{"taxNumber":"1","status":" "}"#, "status is empty"),
            (
                r#"{"taxNumber":"1 2","status":"X"}"#,
                "taxNumber is not a valid",
            ),
            (
                r#"{"taxNumber":"","status":"X"}"#,
                "taxNumber is not a valid",
            ),
            (
                r#"{"taxNumber":12345,"status":"X"}"#,
                "expected a string, found a number",
            ),
            (
                r#"{"taxNumber":"1","status":"X","lastUpdated":"yesterday"}"#,
                "lastUpdated is not an RFC 3339",
            ),
            (
                r#"{"taxNumber":"1","status":"X","attributes":{"checkedAt":"2026-02-30T00:00:00Z"}}"#,
                "attributes.checkedAt",
            ),
            (
                r#"{"taxNumber":"1","status":"X","spectatorDetails":{"phoneNumber":41790000000}}"#,
                "found a number",
            ),
            (
                r#"{"taxNumber":"1","status":"X","spectatorDetails":"secret@example.org"}"#,
                "line 1",
            ),
            (
                r#"{"taxNumber":"1","status":"X","spectatorDetails":{"organizerSpectatorPreference":{"allowPromoEmail":"yes-secret"}}}"#,
                "expected a boolean, found a string",
            ),
        ] {
            let reason = decode_ticket(&raw(json)).expect_err(json);
            assert!(reason.contains(needle), "{json}: {reason}");
            for secret in ["41790000000", "secret", "12345"] {
                assert!(
                    !reason.contains(secret),
                    "{json}: the reason quotes the value: {reason}"
                );
            }
        }
    }

    #[test]
    fn a_page_whose_tickets_all_map_is_read_in_one_pass() {
        let good = br#"{"result":[{"taxNumber":"1","status":"X"},{"taxNumber":"2","status":"Y"}],
                        "pagination":{"nextPageKey":"k"}}"#;
        let page = read_mappable_page(good).expect("the one-pass path");
        assert_eq!(page.next_page_key.as_deref(), Some("k"));
        assert!(matches!(&page.tickets[1], PageTicket::Decoded(t) if t.ticket_number == "2"));
        // One bad ticket sends the page down the two-pass path, which keeps its text.
        let bad = br#"{"result":[{"taxNumber":"1","status":"X"},{"taxNumber":"2"}]}"#;
        assert!(read_mappable_page(bad).is_none());
        let page = read_page(bad).unwrap();
        assert!(matches!(&page.tickets[0], PageTicket::Decoded(_)));
        match &page.tickets[1] {
            PageTicket::Unmappable { raw, reason } => {
                assert_eq!(raw.get(), r#"{"taxNumber":"2"}"#);
                assert_eq!(reason, "status is missing");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn raw_ticket_number_reads_past_other_errors() {
        assert_eq!(
            raw_ticket_number(&raw(r#"{"taxNumber":"T-9","status":5}"#)).as_deref(),
            Some("T-9")
        );
        assert_eq!(
            raw_ticket_number(&raw(r#"{"taxNumber":" T 9 "}"#)).as_deref(),
            Some(" T 9 ")
        );
        assert_eq!(raw_ticket_number(&raw(r#"{"taxNumber":9}"#)), None);
        assert_eq!(raw_ticket_number(&raw("[1]")), None);
    }
}
