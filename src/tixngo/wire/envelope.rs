//! The one reading of a diff document's envelope. What becomes of its tickets is the business of a
//! [`TicketSink`]: each page reader of the wire module is this reading with its own sink, so that
//! they all accept, refuse and explain a document alike.
//!
//! The envelope is parsed strictly (a document without a ticket list is bad data) but tolerantly
//! (aliases, unknown fields ignored): the list is `result`, else `tickets`, else `items` (a `null`
//! counts as absent), the next key `pagination.nextPageKey`, else a top-level `nextPageKey`.
//! `result` goes to the sink as it is read; the other lists are kept as text until the whole
//! document has been read, and go to the sink only when `result` is absent.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, Visitor};
use serde_json::value::RawValue;

use super::json::{Object, without_values};
use super::ticket::Mapped;
use super::{PageTicket, PaginationKey};

/// Where the tickets of a document's list go, one by one as the list is read.
pub(super) trait TicketSink<'a> {
    /// How a ticket is read off the list.
    type Item: Deserialize<'a>;

    /// Takes the next ticket; false stops the reading of the document, which then fails.
    fn take(&mut self, ticket: Self::Item) -> bool;
}

/// Each ticket's exact text.
impl<'a> TicketSink<'a> for Vec<&'a RawValue> {
    type Item = &'a RawValue;

    fn take(&mut self, raw: &'a RawValue) -> bool {
        self.push(raw);
        true
    }
}

/// Each ticket decoded, or kept as text with the reason it cannot be mapped.
impl<'a> TicketSink<'a> for Vec<PageTicket<'a>> {
    type Item = &'a RawValue;

    fn take(&mut self, raw: &'a RawValue) -> bool {
        self.push(PageTicket::decode(raw));
        true
    }
}

/// Tickets decoded straight off the document, without their text (one pass over the JSON, and a
/// page that does not borrow the body): the reading stops at the first one that cannot be mapped.
#[derive(Default)]
pub(super) struct Mappable(pub(super) Vec<PageTicket<'static>>);

impl<'a> TicketSink<'a> for Mappable {
    type Item = Mapped;

    fn take(&mut self, ticket: Mapped) -> bool {
        match ticket.0 {
            Ok(ticket) => self.0.push(PageTicket::Decoded(ticket)),
            Err(_) => return false,
        }
        true
    }
}

/// Each ticket decoded and handed to a callback, which returns false to stop the reading.
pub(super) struct Streamed<'f, 'a> {
    pub(super) callback: &'f mut dyn FnMut(PageTicket<'a>) -> bool,
    pub(super) stopped: bool,
}

impl<'a> TicketSink<'a> for Streamed<'_, 'a> {
    type Item = &'a RawValue;

    fn take(&mut self, raw: &'a RawValue) -> bool {
        self.stopped = !(self.callback)(PageTicket::decode(raw));
        !self.stopped
    }
}

/// Why the reading of a document ended when its sink asked it to stop.
pub(super) const STOPPED: &str = "the reading of the document was stopped";

const NOT_AN_ARRAY: &str = "the ticket list of the document is not an array";

/// Reads a complete response body (or replay file), handing the tickets of its list to `sink`,
/// and returns the next key. The error is the reason the document is bad data; a sink may have
/// taken tickets before it was found, and they must then be discarded.
pub(super) fn read<'a, S: TicketSink<'a>>(
    body: &'a [u8],
    sink: &mut S,
) -> Result<Option<String>, String> {
    let text = document_text(body)?;
    let mut parser = serde_json::Deserializer::from_str(text);
    let envelope = parser
        .deserialize_map(EnvelopeVisitor { sink: &mut *sink })
        .and_then(|envelope| parser.end().map(|()| envelope))
        .map_err(not_a_diff_document)?;
    let next_page_key = next_page_key(
        envelope.pagination.flatten(),
        envelope.next_page_key.flatten(),
    )?;
    match envelope.result {
        Some(List::Read) => return Ok(next_page_key),
        Some(List::NotAnArray) => return Err(NOT_AN_ARRAY.into()),
        Some(List::Null) | None => {}
    }
    let list = (envelope.tickets.flatten())
        .or(envelope.items.flatten())
        .ok_or("the document has no ticket list (result, tickets or items)")?;
    let mut list_parser = serde_json::Deserializer::from_str(list.get());
    match (ListSeed { sink }).deserialize(&mut list_parser) {
        Ok(List::Read) => Ok(next_page_key),
        Ok(List::NotAnArray | List::Null) => Err(NOT_AN_ARRAY.into()),
        Err(error) => Err(not_a_diff_document(error)),
    }
}

/// [`read`] into a new sink: the next key, and the sink with the tickets it took.
pub(super) fn read_into<'a, S: TicketSink<'a> + Default>(
    body: &'a [u8],
) -> Result<(Option<String>, S), String> {
    let mut sink = S::default();
    let next_page_key = read(body, &mut sink)?;
    Ok((next_page_key, sink))
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
        // Said here in these words: serde would call any other value a value of the wrong type.
        return Err("the document is not a valid diff document: it is not a JSON object".into());
    }
    Ok(text)
}

/// A document serde could not read, as bad data. A syntax error is named by its place only:
/// serde words the same fault differently depending on how the reader walked to it (a trailing
/// comma in a ticket list is "trailing comma" to a reader that walks the list and "expected
/// value" to one that skips it whole), and every reading of a page must say the same.
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

#[derive(Deserialize)]
struct Pagination {
    #[serde(default, rename = "nextPageKey")]
    next_page_key: Option<String>,
}

/// The envelope as read: each field `Some` once seen, even as `null`, so that a field seen twice
/// is refused.
#[derive(Default)]
struct Envelope<'a> {
    result: Option<List>,
    tickets: Option<Option<&'a RawValue>>,
    items: Option<Option<&'a RawValue>>,
    pagination: Option<Option<Object<Pagination>>>,
    next_page_key: Option<Option<String>>,
}

/// What a list handed to the sink turned out to be.
enum List {
    Null,
    Read,
    NotAnArray,
}

/// The fields of the envelope.
#[derive(Deserialize)]
#[serde(field_identifier)]
enum Field {
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

struct EnvelopeVisitor<'s, S> {
    sink: &'s mut S,
}

impl<'a, S: TicketSink<'a>> Visitor<'a> for EnvelopeVisitor<'_, S> {
    type Value = Envelope<'a>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a diff document")
    }

    fn visit_map<A: de::MapAccess<'a>>(self, mut map: A) -> Result<Envelope<'a>, A::Error> {
        let mut envelope = Envelope::default();
        while let Some(field) = map.next_key()? {
            match field {
                Field::Result => {
                    once(&envelope.result, "result")?;
                    let sink = &mut *self.sink;
                    envelope.result = Some(map.next_value_seed(ListSeed { sink })?);
                }
                Field::Tickets => fill(&mut envelope.tickets, "tickets", &mut map)?,
                Field::Items => fill(&mut envelope.items, "items", &mut map)?,
                Field::Pagination => fill(&mut envelope.pagination, "pagination", &mut map)?,
                Field::NextPageKey => fill(&mut envelope.next_page_key, "nextPageKey", &mut map)?,
                Field::Other => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        Ok(envelope)
    }
}

/// Refuses a field seen twice.
fn once<T, E: de::Error>(slot: &Option<T>, name: &'static str) -> Result<(), E> {
    match slot {
        Some(_) => Err(E::duplicate_field(name)),
        None => Ok(()),
    }
}

/// Reads the value of a field into its slot, once.
fn fill<'a, T: Deserialize<'a>, A: de::MapAccess<'a>>(
    slot: &mut Option<T>,
    name: &'static str,
    map: &mut A,
) -> Result<(), A::Error> {
    once(slot, name)?;
    *slot = Some(map.next_value()?);
    Ok(())
}

/// A ticket list, its tickets handed to the sink one by one as they are read.
struct ListSeed<'s, S> {
    sink: &'s mut S,
}

impl<'a, S: TicketSink<'a>> DeserializeSeed<'a> for ListSeed<'_, S> {
    type Value = List;

    fn deserialize<D: Deserializer<'a>>(self, deserializer: D) -> Result<List, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'a, S: TicketSink<'a>> Visitor<'a> for ListSeed<'_, S> {
    type Value = List;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a ticket list")
    }

    fn visit_seq<A: de::SeqAccess<'a>>(self, mut seq: A) -> Result<List, A::Error> {
        while let Some(ticket) = seq.next_element()? {
            if !self.sink.take(ticket) {
                return Err(de::Error::custom(STOPPED));
            }
        }
        Ok(List::Read)
    }

    fn visit_unit<E: de::Error>(self) -> Result<List, E> {
        Ok(List::Null)
    }

    // Anything else is read through (the rest of the document must still be valid) and refused
    // once it is.
    fn visit_map<A: de::MapAccess<'a>>(self, mut map: A) -> Result<List, A::Error> {
        while map
            .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
            .is_some()
        {}
        Ok(List::NotAnArray)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<List, E> {
        Ok(List::NotAnArray)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<List, E> {
        Ok(List::NotAnArray)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<List, E> {
        Ok(List::NotAnArray)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<List, E> {
        Ok(List::NotAnArray)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<List, E> {
        Ok(List::NotAnArray)
    }
}
