//! The wire format of the TIXNGO diff endpoint (SPEC §4.1), in one place so that it can change in
//! one place: the request's path, parameters and headers, the response envelope, and the ticket.
//!
//! A page is read in one pass over its JSON by the one reading of the envelope (`envelope`), which
//! hands the tickets of its list to a sink: the readers below differ only in their sink. One bad
//! ticket is a per-ticket error, its exact bytes kept for `sync_error`, never a bad page.
//! Decoding errors never quote the offending value (`ticket`, `json`): tickets carry personal
//! data, and the reason is logged. They name the position in the ticket's own JSON instead.

mod envelope;
mod json;
mod key;
mod ticket;

use serde_json::value::RawValue;

use crate::feedback::Ticket;
use envelope::{Mappable, STOPPED, Streamed};

pub use key::PaginationKey;
pub use ticket::{decode_ticket, raw_ticket_number};

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

/// Parses a complete response body (or replay file), its tickets kept as text. The error is the
/// reason it is bad data.
pub fn parse_page(body: &[u8]) -> Result<DiffPage<'_>, String> {
    let (next_page_key, tickets) = envelope::read_into(body)?;
    Ok(DiffPage {
        next_page_key,
        tickets,
    })
}

/// Parses a complete body and decodes its tickets: exactly [`parse_page`] then [`decode_ticket`]
/// on each ticket, each ticket decoded once.
pub fn read_page(body: &[u8]) -> Result<Page<'_>, String> {
    let (next_page_key, tickets) = envelope::read_into(body)?;
    Ok(Page {
        next_page_key,
        tickets,
    })
}

/// [`read_page`] of a page whose tickets all map, which is the rule, in one pass over the JSON
/// (the text of a ticket is only needed when it cannot be mapped) and not borrowing the body;
/// `None` for anything else, which [`read_page`] then reads (and explains).
pub fn read_mappable_page(body: &[u8]) -> Option<Page<'static>> {
    let (next_page_key, Mappable(tickets)) = envelope::read_into(body).ok()?;
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
    let mut streamed = Streamed {
        callback: sink,
        stopped: false,
    };
    let outcome = envelope::read(body, &mut streamed);
    if streamed.stopped {
        return Err(STOPPED.into());
    }
    outcome
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
    fn a_stream_stopped_in_a_fallback_list_says_the_same() {
        for list in ["result", "tickets", "items"] {
            let body = format!(r#"{{"{list}":[{{"taxNumber":"T-1","status":"A"}},{{}}]}}"#);
            let outcome = stream_page(body.as_bytes(), &mut |_| false);
            assert_eq!(outcome, Err(STOPPED.to_owned()), "{list}");
        }
    }

    #[test]
    fn lists_the_page_does_not_use_do_not_keep_it_from_the_one_pass_reading() {
        let body = br#"{"tickets":[{"taxNumber":2}],"result":[{"taxNumber":"1","status":"X"}]}"#;
        let page = read_mappable_page(body).expect("the one-pass path");
        assert!(matches!(&page.tickets[..], [PageTicket::Decoded(t)] if t.ticket_number == "1"));
        // A fallback list is read in one pass too.
        let body = br#"{"result":null,"items":[{"taxNumber":"3","status":"X"}]}"#;
        let page = read_mappable_page(body).expect("the one-pass path");
        assert!(matches!(&page.tickets[..], [PageTicket::Decoded(t)] if t.ticket_number == "3"));
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
}
