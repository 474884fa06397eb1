//! Property tests of the pure layers, through the crate's public API: the response parser and the
//! ticket decoder (no panic on any input, SPEC §7; every failure a clean error with its exit code,
//! §3; no personal data in a reason), the merge of a ticket into its row (§4.4), the contact rules
//! against an in-memory model of the store (§4.5), and the two value types (§2, §4.1).
//!
//! Run alone with `cargo test --test properties`; `PROPTEST_CASES=N` scales every property.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use tixngo_feedback::Error;
use tixngo_feedback::engine::{ContactWriter, create_contacts, write_lines};
use tixngo_feedback::feedback::contacts::{
    self, ContactBook, ContactPlan, ContactRef, FoundContact, LineStatus, PendingLine,
};
use tixngo_feedback::feedback::{Merge, TicketRecord, email_key, merge, status};
use tixngo_feedback::report::Counters;
use tixngo_feedback::store::LineWritten;
use tixngo_feedback::ticket_number;
use tixngo_feedback::timestamp::Timestamp;
use tixngo_feedback::tixngo::wire::{
    Attributes, Holder, PageTicket, Patch, Spectator, Ticket, decode_ticket, parse_page,
    raw_ticket_number, read_page, stream_page,
};

/// `cases` unless `PROPTEST_CASES` says otherwise; no regression files (this file is the record).
fn config(cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(cases);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

fn raw(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.to_owned()).expect("valid JSON")
}

/// A parse failure is bad data: exit 65, whatever the reason.
fn assert_bad_data(reason: &str) -> Result<(), TestCaseError> {
    prop_assert!(!reason.is_empty());
    prop_assert!(!reason.contains('\n'), "one line: {reason:?}");
    let code = Error::BadData(reason.to_owned()).exit_code().code();
    prop_assert_eq!(code, 65);
    Ok(())
}

// -------------------------------------------------------------------------------------------------
// JSON values
// -------------------------------------------------------------------------------------------------

const TICKET_TEXT_FIELDS: [&str; 6] = [
    "ticketId",
    "taxNumber",
    "barcode",
    "eventId",
    "status",
    "lastUpdated",
];
const SPECTATOR_TEXT_FIELDS: [&str; 10] = [
    "title",
    "firstName",
    "lastName",
    "dateOfBirth",
    "email",
    "nationality",
    "idCardNumber",
    "phoneNumber",
    "residenceCountry",
    "language",
];
const HOLDER_TEXT_FIELDS: [&str; 8] = [
    "firstName",
    "lastName",
    "dateOfBirth",
    "idCardNumber",
    "nationality",
    "birthPlace",
    "birthRegion",
    "countryCode",
];
const ATTRIBUTE_FIELDS: [&str; 7] = [
    "injectedAt",
    "downloadedAt",
    "assignedAt",
    "activatedAt",
    "checkedAt",
    "controlledAt",
    "deletedAt",
];
const PREFERENCE_FIELDS: [&str; 2] = ["allowPromoEmail", "allowThirdPartyEmail"];

/// Field names the parser and the decoder know, so that arbitrary objects hit their paths.
const KNOWN_KEYS: [&str; 26] = [
    "result",
    "tickets",
    "items",
    "pagination",
    "nextPageKey",
    "ticketId",
    "taxNumber",
    "barcode",
    "eventId",
    "status",
    "lastUpdated",
    "lastUpdate",
    "spectatorDetails",
    "holder",
    "assignee",
    "previousOwner",
    "initialOwner",
    "transfer",
    "attributes",
    "email",
    "recipientEmail",
    "firstName",
    "organizerSpectatorPreference",
    "allowPromoEmail",
    "injectedAt",
    "deletedAt",
];

/// RFC 3339 texts in varied forms, most of them valid.
fn timestamp_text() -> impl Strategy<Value = String> {
    (
        0u32..3,
        1990i32..2040,
        1u32..=12,
        1u32..=31,
        0u32..24,
        0u32..60,
        0u32..=60,
        prop_oneof![Just(String::new()), "\\.[0-9]{1,9}".prop_map(|s| s),],
        prop_oneof![
            Just("Z".to_owned()),
            Just("z".to_owned()),
            (prop::bool::ANY, 0u32..24, 0u32..60).prop_map(|(minus, h, m)| format!(
                "{}{h:02}:{m:02}",
                if minus { '-' } else { '+' }
            )),
        ],
    )
        .prop_map(|(sep, y, mo, d, h, mi, s, fraction, offset)| {
            let sep = ['T', 't', ' '][sep as usize];
            format!("{y:04}-{mo:02}-{d:02}{sep}{h:02}:{mi:02}:{s:02}{fraction}{offset}")
        })
}

fn json_string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z0-9 ._@/-]{0,12}",
        1 => "\\PC{0,8}",
        1 => Just(String::new()),
        1 => Just(" \t".to_owned()),
        1 => timestamp_text(),
        1 => Just("2026000123".to_owned()),
        1 => Just("PENDING_TRANSFER".to_owned()),
    ]
}

fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(&KNOWN_KEYS[..]).prop_map(str::to_owned),
        1 => "[a-zA-Z]{1,6}",
    ]
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e12f64..1e12).prop_map(Value::from),
        json_string().prop_map(Value::String),
    ]
}

/// Any JSON value: scalars, arrays and objects nested up to a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(json_key(), inner, 0..6)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

/// Objects shaped like a diff document (each envelope field present or not, well or badly
/// typed), so that the property reaches both sides of the parser.
fn envelope_value() -> impl Strategy<Value = Value> {
    let list = prop_oneof![
        3 => prop::collection::vec(json_value(), 0..4).prop_map(Value::Array),
        1 => json_value(),
    ];
    let key = prop_oneof![
        2 => "[a-z0-9.]{0,8}".prop_map(Value::String),
        1 => Just(Value::Null),
        1 => json_leaf(),
    ];
    let pagination = prop_oneof![
        3 => prop::option::of(key.clone()).prop_map(|key| {
            let mut fields = Map::new();
            if let Some(key) = key {
                fields.insert("nextPageKey".into(), key);
            }
            Value::Object(fields)
        }),
        1 => json_value(),
    ];
    (
        prop::option::of(list.clone()),
        prop::option::of(list.clone()),
        prop::option::of(list),
        prop::option::of(pagination),
        prop::option::of(key),
        prop::collection::btree_map("[a-z]{1,5}", json_value(), 0..3),
    )
        .prop_map(|(result, tickets, items, pagination, key, extra)| {
            let mut fields: Map<String, Value> = extra.into_iter().collect();
            for (name, value) in [
                ("result", result),
                ("tickets", tickets),
                ("items", items),
                ("pagination", pagination),
                ("nextPageKey", key),
            ] {
                if let Some(value) = value {
                    fields.insert(name.into(), value);
                }
            }
            Value::Object(fields)
        })
}

/// What `parse_page` must make of a JSON value (SPEC §4.1): `Ok((tickets, next key))` exactly for
/// an object whose first non-null list among result/tickets/items is an array, whose
/// `pagination` is an object (or null) and whose `nextPageKey`s are strings (or null), the one
/// chosen at most 4 KiB of printable ASCII.
fn page_oracle(value: &Value) -> Option<(usize, Option<String>)> {
    let Value::Object(fields) = value else {
        return None;
    };
    let list = ["result", "tickets", "items"]
        .iter()
        .find_map(|name| fields.get(*name).filter(|v| !v.is_null()));
    let Some(Value::Array(tickets)) = list else {
        return None;
    };
    let key = |value: Option<&Value>| match value {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(key)) => Some(Some(key.clone())),
        Some(_) => None,
    };
    let inner = match fields.get("pagination") {
        None | Some(Value::Null) => None,
        Some(Value::Object(pagination)) => key(pagination.get("nextPageKey"))?,
        Some(_) => return None,
    };
    let top = key(fields.get("nextPageKey"))?;
    let next = inner.or(top).filter(|k| !k.is_empty());
    // A key that could not be sent or saved (over 4 KiB, not printable ASCII) is bad data.
    let sendable = |k: &String| k.len() <= 4096 && k.bytes().all(|b| (b' '..=b'~').contains(&b));
    if next.as_ref().is_some_and(|k| !sendable(k)) {
        return None;
    }
    Some((tickets.len(), next))
}

/// Whether a ticket's time is acceptable: `lastUpdated`, else `lastUpdate`, absent, null or an
/// RFC 3339 instant at most 24 h ahead of now (SPEC §7); both are read, so both must be well typed.
fn last_updated(t: &Map<String, Value>) -> bool {
    let read = |name: &str| match t.get(name) {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(text)) => Timestamp::parse_rfc3339(text).map(Some),
        Some(_) => None,
    };
    let (Some(updated), Some(update)) = (read("lastUpdated"), read("lastUpdate")) else {
        return false;
    };
    let ahead = |at: Timestamp| at.millis_since(Timestamp::now()) > 24 * 3600 * 1000;
    !updated.or(update).is_some_and(ahead)
}

/// Whether `decode_ticket` must accept a JSON value (SPEC §4.1): an object with a valid
/// `taxNumber` and a non-blank `status`, every known field null, absent or of its type (objects
/// where objects are expected, strings, booleans), every timestamp RFC 3339.
fn ticket_oracle(value: &Value) -> bool {
    fn text(fields: &Map<String, Value>, name: &str) -> bool {
        matches!(
            fields.get(name),
            None | Some(Value::Null | Value::String(_))
        )
    }
    fn instant(fields: &Map<String, Value>, name: &str) -> bool {
        match fields.get(name) {
            None | Some(Value::Null) => true,
            Some(Value::String(text)) => Timestamp::parse_rfc3339(text).is_some(),
            Some(_) => false,
        }
    }
    fn object(
        fields: &Map<String, Value>,
        name: &str,
        check: impl Fn(&Map<String, Value>) -> bool,
    ) -> bool {
        match fields.get(name) {
            None | Some(Value::Null) => true,
            Some(Value::Object(inner)) => check(inner),
            Some(_) => false,
        }
    }
    let Value::Object(t) = value else {
        return false;
    };
    matches!(t.get("taxNumber"), Some(Value::String(n)) if ticket_number::is_valid(n))
        && matches!(t.get("status"), Some(Value::String(s)) if !s.trim().is_empty())
        && ["ticketId", "barcode", "eventId"]
            .iter()
            .all(|f| text(t, f))
        && last_updated(t)
        && object(t, "spectatorDetails", |s| {
            SPECTATOR_TEXT_FIELDS.iter().all(|f| text(s, f))
                && object(s, "organizerSpectatorPreference", |p| {
                    PREFERENCE_FIELDS
                        .iter()
                        .all(|f| matches!(p.get(*f), None | Some(Value::Null | Value::Bool(_))))
                })
        })
        && ["holder", "assignee"]
            .iter()
            .all(|field| object(t, field, |h| HOLDER_TEXT_FIELDS.iter().all(|f| text(h, f))))
        && object(t, "previousOwner", |p| text(p, "email"))
        && object(t, "initialOwner", |p| text(p, "email"))
        && object(t, "transfer", |p| text(p, "recipientEmail"))
        && object(t, "attributes", |a| {
            ATTRIBUTE_FIELDS.iter().all(|f| instant(a, f))
        })
}

// -------------------------------------------------------------------------------------------------
// Valid tickets and documents
// -------------------------------------------------------------------------------------------------

/// Personal data with a recognisable shape, to find it again in a reason.
fn personal() -> impl Strategy<Value = String> {
    "PII[A-Za-z0-9]{8}"
}

fn optional_text(value: impl Strategy<Value = String>) -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(Value::Null)),
        4 => value.prop_map(|v| Some(Value::String(v))),
    ]
}

fn set(fields: &mut Map<String, Value>, name: &str, value: Option<Value>) {
    if let Some(value) = value {
        fields.insert(name.to_owned(), value);
    }
}

/// A mappable ticket with every field present, null or absent; personal data shaped `PII…`.
fn valid_ticket() -> impl Strategy<Value = Value> {
    let spectator = (
        prop::collection::vec(optional_text(personal()), SPECTATOR_TEXT_FIELDS.len()),
        prop::option::of((
            prop::option::of(prop::option::of(any::<bool>())),
            prop::option::of(prop::option::of(any::<bool>())),
        )),
    )
        .prop_map(|(texts, preference)| {
            let mut fields = Map::new();
            for (name, value) in SPECTATOR_TEXT_FIELDS.iter().zip(texts) {
                set(&mut fields, name, value);
            }
            if let Some((promo, third)) = preference {
                let mut p = Map::new();
                for (name, value) in PREFERENCE_FIELDS.iter().zip([promo, third]) {
                    set(
                        &mut p,
                        name,
                        value.map(|v| v.map_or(Value::Null, Value::Bool)),
                    );
                }
                fields.insert("organizerSpectatorPreference".into(), Value::Object(p));
            }
            Value::Object(fields)
        });
    let holder = prop::collection::vec(optional_text(personal()), HOLDER_TEXT_FIELDS.len())
        .prop_map(|texts| {
            let mut fields = Map::new();
            for (name, value) in HOLDER_TEXT_FIELDS.iter().zip(texts) {
                set(&mut fields, name, value);
            }
            Value::Object(fields)
        });
    let person = |field: &'static str| {
        optional_text(personal()).prop_map(move |email| {
            let mut fields = Map::new();
            set(&mut fields, field, email);
            Value::Object(fields)
        })
    };
    let attributes = prop::collection::vec(optional_text(timestamp_valid()), 7).prop_map(|at| {
        let mut fields = Map::new();
        for (name, value) in ATTRIBUTE_FIELDS.iter().zip(at) {
            set(&mut fields, name, value);
        }
        Value::Object(fields)
    });
    let object = |s: BoxedStrategy<Value>| prop_oneof![1 => Just(None), 1 => Just(Some(Value::Null)), 4 => s.prop_map(Some)];
    (
        "[A-Za-z0-9._/-]{1,20}",
        "[ ]?[A-Za-z_]{1,16}[ \t]?",
        prop::collection::vec(optional_text("[A-Z0-9-]{1,12}"), 3),
        (
            optional_text(timestamp_not_ahead()),
            prop::sample::select(&["lastUpdated", "lastUpdate"][..]),
        ),
        object(spectator.boxed()),
        (
            object(holder.boxed()),
            prop::sample::select(&["holder", "assignee"][..]),
        ),
        object(person("email").boxed()),
        object(person("email").boxed()),
        object(person("recipientEmail").boxed()),
        object(attributes.boxed()),
    )
        .prop_map(
            |(number, status, ids, updated, spectator, holder, prev, init, transfer, attrs)| {
                let mut fields = Map::new();
                fields.insert("taxNumber".into(), Value::String(number));
                fields.insert("status".into(), Value::String(status));
                for (name, value) in ["ticketId", "barcode", "eventId"].iter().zip(ids) {
                    set(&mut fields, name, value);
                }
                set(&mut fields, updated.1, updated.0);
                set(&mut fields, "spectatorDetails", spectator);
                set(&mut fields, holder.1, holder.0);
                set(&mut fields, "previousOwner", prev);
                set(&mut fields, "initialOwner", init);
                set(&mut fields, "transfer", transfer);
                set(&mut fields, "attributes", attrs);
                fields.insert("somethingNew".into(), json!({"nested": [1, "x"]}));
                Value::Object(fields)
            },
        )
}

/// Valid RFC 3339 texts no more than a day ahead of now (later ones are refused, SPEC §7).
fn timestamp_not_ahead() -> impl Strategy<Value = String> {
    timestamp_valid().prop_filter("not ahead", |t| {
        let at = Timestamp::parse_rfc3339(t).unwrap();
        at.millis_since(Timestamp::now()) <= 24 * 3600 * 1000
    })
}

/// Valid RFC 3339 texts only.
fn timestamp_valid() -> impl Strategy<Value = String> {
    timestamp_text().prop_filter("a valid timestamp", |t| {
        Timestamp::parse_rfc3339(t).is_some()
    })
}

/// A valid diff document.
fn valid_document() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(valid_ticket(), 0..4),
        prop::option::of("pk1\\.[0-9a-f]{1,4}\\.[0-9a-f]{8}"),
        prop::sample::select(&["result", "tickets", "items"][..]),
    )
        .prop_map(|(tickets, key, list)| {
            let mut fields = Map::new();
            fields.insert("pagination".into(), json!({ "nextPageKey": key }));
            fields.insert(list.into(), Value::Array(tickets));
            Value::Object(fields)
        })
}

/// One edit of a document's bytes.
#[derive(Clone, Debug)]
enum Mutation {
    Truncate(Index),
    Flip(Index, u8),
    Insert(Index, Vec<u8>),
    Remove(Index, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let garbage = prop_oneof![
        prop::collection::vec(any::<u8>(), 1..6),
        prop::sample::select(
            &[
                "{", "}", "[", "]", ",", ":", "\"", "\\", "null", "\"x\":", "\u{a0}", "\\u0000"
            ][..]
        )
        .prop_map(|s| s.as_bytes().to_vec()),
    ];
    prop_oneof![
        1 => any::<Index>().prop_map(Mutation::Truncate),
        3 => (any::<Index>(), 1u8..=255).prop_map(|(at, bits)| Mutation::Flip(at, bits)),
        3 => (any::<Index>(), garbage).prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
        1 => (any::<Index>(), 1usize..8).prop_map(|(at, n)| Mutation::Remove(at, n)),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let at = |i: &Index, len: usize| if len == 0 { 0 } else { i.index(len + 1) };
        match m {
            Mutation::Truncate(i) => bytes.truncate(at(i, bytes.len())),
            Mutation::Flip(i, bits) => {
                if !bytes.is_empty() {
                    let i = i.index(bytes.len());
                    bytes[i] ^= bits;
                }
            }
            Mutation::Insert(i, garbage) => {
                let i = at(i, bytes.len());
                bytes.splice(i..i, garbage.iter().copied());
            }
            Mutation::Remove(i, n) => {
                let i = at(i, bytes.len());
                let end = (i + n).min(bytes.len());
                bytes.drain(i..end);
            }
        }
    }
    bytes
}

/// Checks a parse of `body` against what it is: every Ok is a JSON object with a ticket array
/// (the oracle), every Err is bad data (65); decoding each ticket of an Ok never panics either.
fn check_page(body: &[u8]) -> Result<(), TestCaseError> {
    check_read_page(body)?;
    let parsed = parse_page(body);
    let as_json: Option<Value> = serde_json::from_slice(body).ok();
    match parsed {
        Ok(page) => {
            let value = as_json.ok_or_else(|| {
                TestCaseError::fail(format!(
                    "parse_page accepted a body that is not JSON: {:?}",
                    String::from_utf8_lossy(body)
                ))
            })?;
            let expected = page_oracle(&value);
            prop_assert_eq!(
                expected,
                Some((page.tickets.len(), page.next_page_key.clone())),
                "accepted {}",
                value
            );
            for ticket in &page.tickets {
                if let Ok(t) = decode_ticket(ticket) {
                    prop_assert!(ticket_number::is_valid(&t.ticket_number));
                }
                let _ = raw_ticket_number(ticket);
            }
        }
        Err(reason) => assert_bad_data(&reason)?,
    }
    Ok(())
}

/// `read_page` (one pass when every ticket maps) must give exactly what `parse_page` then
/// `decode_ticket` on each ticket give: the same acceptance, error, key and tickets; and
/// `stream_page` must hand over exactly what `read_page` returns.
fn check_read_page(body: &[u8]) -> Result<(), TestCaseError> {
    check_stream_page(body)?;
    match (read_page(body), parse_page(body)) {
        (Ok(read), Ok(parsed)) => {
            prop_assert_eq!(&read.next_page_key, &parsed.next_page_key);
            prop_assert_eq!(read.tickets.len(), parsed.tickets.len());
            for (ticket, raw) in read.tickets.iter().zip(&parsed.tickets) {
                match (ticket, decode_ticket(raw)) {
                    (PageTicket::Mapped(ticket), Ok(decoded)) => prop_assert_eq!(ticket, &decoded),
                    (PageTicket::Unmappable { raw: kept, reason }, Err(expected)) => {
                        prop_assert_eq!(kept.get(), raw.get());
                        prop_assert_eq!(reason, &expected);
                    }
                    (ticket, decoded) => {
                        return Err(TestCaseError::fail(format!(
                            "read_page gave {ticket:?}, decode_ticket {decoded:?}"
                        )));
                    }
                }
            }
        }
        (Err(read), Err(parsed)) => prop_assert_eq!(read, parsed),
        (read, parsed) => {
            return Err(TestCaseError::fail(format!(
                "read_page: {:?}, parse_page: {:?}",
                read.map(|p| p.tickets.len()),
                parsed.map(|p| p.tickets.len())
            )));
        }
    }
    Ok(())
}

fn check_stream_page(body: &[u8]) -> Result<(), TestCaseError> {
    let mut streamed = Vec::new();
    let outcome = stream_page(body, &mut |ticket| {
        streamed.push(ticket);
        true
    });
    match (outcome, read_page(body)) {
        (Ok(key), Ok(page)) => {
            prop_assert_eq!(key, page.next_page_key);
            prop_assert_eq!(format!("{streamed:?}"), format!("{:?}", page.tickets));
        }
        (Err(streamed), Err(read)) => prop_assert_eq!(streamed, read),
        (streamed, read) => {
            return Err(TestCaseError::fail(format!(
                "stream_page: {:?}, read_page: {:?}",
                streamed,
                read.map(|p| p.tickets.len())
            )));
        }
    }
    Ok(())
}

// -------------------------------------------------------------------------------------------------
// The parser and the decoder
// -------------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(2500))]

    #[test]
    fn parse_page_on_arbitrary_bytes_never_panics(
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..256),
            "\\PC{0,64}".prop_map(String::into_bytes),
        ]
    ) {
        check_page(&body)?;
    }

    #[test]
    fn parse_page_accepts_exactly_the_diff_documents(
        value in prop_oneof![json_value(), envelope_value()]
    ) {
        let text = value.to_string();
        let expected = page_oracle(&value);
        match parse_page(text.as_bytes()) {
            Ok(page) => {
                prop_assert_eq!(
                    expected.clone(),
                    Some((page.tickets.len(), page.next_page_key.clone())),
                    "accepted {}", text
                );
                // Each ticket is the exact text of its element, kept raw.
                let Some(Value::Array(elements)) = ["result", "tickets", "items"]
                    .iter()
                    .find_map(|name| value.get(name).filter(|v| !v.is_null()))
                else {
                    return Err(TestCaseError::fail("no list"));
                };
                for (raw, element) in page.tickets.iter().zip(elements) {
                    prop_assert_eq!(raw.get(), element.to_string());
                }
            }
            Err(reason) => {
                prop_assert_eq!(expected, None, "refused {}: {}", text, reason);
                assert_bad_data(&reason)?;
            }
        }
    }

    #[test]
    fn read_page_is_parse_page_then_decode_ticket(
        value in prop_oneof![valid_document(), envelope_value()]
    ) {
        check_read_page(value.to_string().as_bytes())?;
    }

    #[test]
    fn parse_page_on_mutated_documents_never_panics_and_fails_cleanly(
        document in valid_document(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let body = mutate(document.to_string().into_bytes(), &mutations);
        check_page(&body)?;
    }

    #[test]
    fn decode_ticket_accepts_exactly_the_mappable_tickets(
        value in prop_oneof![
            1 => json_value(),
            2 => prop::collection::btree_map(json_key(), json_value(), 0..8).prop_map(|fields| {
                Value::Object(fields.into_iter().collect())
            }),
            2 => valid_ticket(),
        ]
    ) {
        let text = value.to_string();
        let decoded = decode_ticket(&raw(&text));
        prop_assert_eq!(decoded.is_ok(), ticket_oracle(&value), "{} -> {:?}", text, decoded);
        // The raw number (read for the skip list before anything else) is the object's
        // `taxNumber` string, whatever else is wrong.
        let number = value.as_object().and_then(|t| t.get("taxNumber")).and_then(Value::as_str);
        let read = raw_ticket_number(&raw(&text));
        prop_assert_eq!(read.as_deref(), number, "{}", text);
        match decoded {
            Ok(ticket) => {
                prop_assert!(ticket_number::is_valid(&ticket.ticket_number));
                prop_assert!(!ticket.status.trim().is_empty());
                prop_assert_eq!(Some(ticket.ticket_number.as_str()), value["taxNumber"].as_str());
                prop_assert_eq!(raw_ticket_number(&raw(&text)), Some(ticket.ticket_number));
            }
            Err(reason) => {
                prop_assert!(!reason.is_empty() && !reason.contains('\n'), "{:?}", reason);
            }
        }
    }

    #[test]
    fn a_valid_ticket_decodes_to_its_fields(value in valid_ticket()) {
        let ticket = decode_ticket(&raw(&value.to_string()))
            .map_err(|reason| TestCaseError::fail(format!("{value}: {reason}")))?;
        prop_assert_eq!(expected_ticket(&value), ticket);
    }
}

/// The ticket a valid ticket's JSON stands for, read field by field (SPEC §4.1).
fn expected_ticket(value: &Value) -> Ticket {
    let text = |v: &Value, name: &str| v.get(name).and_then(Value::as_str).map(str::to_owned);
    let instant = |v: &Value, name: &str| {
        v.get(name)
            .and_then(Value::as_str)
            .map(|t| Timestamp::parse_rfc3339(t).expect("valid"))
    };
    let milestone = |v: &Value, name: &str| match v.get(name) {
        None => Patch::Absent,
        Some(Value::Null) => Patch::Clear,
        Some(_) => Patch::Set(instant(v, name).unwrap()),
    };
    let object = |name: &str| value.get(name).filter(|v| v.is_object());
    let flag = |v: Option<&Value>, name: &str| v.and_then(|p| p.get(name)).and_then(Value::as_bool);
    let attributes = object("attributes").cloned().unwrap_or(json!({}));
    Ticket {
        ticket_number: text(value, "taxNumber").unwrap(),
        tixngo_ticket_id: text(value, "ticketId"),
        barcode: text(value, "barcode"),
        event_id: text(value, "eventId"),
        status: status::normalise(&text(value, "status").unwrap()),
        last_updated: instant(value, "lastUpdated").or_else(|| instant(value, "lastUpdate")),
        owner: object("spectatorDetails").map(|s| {
            let preference = s
                .get("organizerSpectatorPreference")
                .filter(|p| p.is_object());
            Spectator {
                title: text(s, "title"),
                first_name: text(s, "firstName"),
                last_name: text(s, "lastName"),
                birth_date: text(s, "dateOfBirth"),
                email: text(s, "email"),
                nationality: text(s, "nationality"),
                id_number: text(s, "idCardNumber"),
                phone: text(s, "phoneNumber"),
                residence_country: text(s, "residenceCountry"),
                language: text(s, "language"),
                allow_promo_email: flag(preference, "allowPromoEmail"),
                allow_third_party_email: flag(preference, "allowThirdPartyEmail"),
            }
        }),
        holder: match value.get("holder").or_else(|| value.get("assignee")) {
            None => Patch::Absent,
            Some(Value::Null) => Patch::Clear,
            Some(h) => Patch::Set(Holder {
                first_name: text(h, "firstName"),
                last_name: text(h, "lastName"),
                birth_date: text(h, "dateOfBirth"),
                id_number: text(h, "idCardNumber"),
                nationality: text(h, "nationality"),
                birth_place: text(h, "birthPlace"),
                birth_region: text(h, "birthRegion"),
                country_code: text(h, "countryCode"),
            }),
        },
        previous_owner_email: object("previousOwner").and_then(|p| text(p, "email")),
        initial_owner_email: object("initialOwner").and_then(|p| text(p, "email")),
        transfer_recipient_email: object("transfer").and_then(|p| text(p, "recipientEmail")),
        attributes: Attributes {
            injected_at: milestone(&attributes, "injectedAt"),
            downloaded_at: milestone(&attributes, "downloadedAt"),
            assigned_at: milestone(&attributes, "assignedAt"),
            activated_at: milestone(&attributes, "activatedAt"),
            checked_at: milestone(&attributes, "checkedAt"),
            controlled_at: milestone(&attributes, "controlledAt"),
            deleted_at: milestone(&attributes, "deletedAt"),
        },
        // `valid_ticket` adds one field the mapping does not read; its nested objects hold
        // known fields only.
        unknown_fields: vec!["somethingNew".to_owned()],
    }
}

/// What a field of a ticket holds when it is well typed.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Text,
    Object,
    Flag,
}

/// Every field of a ticket, as a path from the ticket, with its type.
fn ticket_fields() -> Vec<(Vec<&'static str>, Kind)> {
    let mut fields: Vec<(Vec<&str>, Kind)> = TICKET_TEXT_FIELDS
        .iter()
        .map(|f| (vec![*f], Kind::Text))
        .collect();
    for object in [
        "spectatorDetails",
        "holder",
        "assignee",
        "previousOwner",
        "initialOwner",
        "transfer",
        "attributes",
    ] {
        fields.push((vec![object], Kind::Object));
    }
    for f in SPECTATOR_TEXT_FIELDS {
        fields.push((vec!["spectatorDetails", f], Kind::Text));
    }
    fields.push((
        vec!["spectatorDetails", "organizerSpectatorPreference"],
        Kind::Object,
    ));
    for f in PREFERENCE_FIELDS {
        fields.push((
            vec!["spectatorDetails", "organizerSpectatorPreference", f],
            Kind::Flag,
        ));
    }
    for f in HOLDER_TEXT_FIELDS {
        fields.push((vec!["holder", f], Kind::Text));
        fields.push((vec!["assignee", f], Kind::Text));
    }
    fields.push((vec!["previousOwner", "email"], Kind::Text));
    fields.push((vec!["initialOwner", "email"], Kind::Text));
    fields.push((vec!["transfer", "recipientEmail"], Kind::Text));
    for f in ATTRIBUTE_FIELDS {
        fields.push((vec!["attributes", f], Kind::Text));
    }
    fields
}

/// A value of another type than `kind`, built around a distinctive string and number.
fn wrong_value(kind: Kind, shape: usize, secret: &str, number: u64) -> Value {
    let shapes: Vec<Value> = match kind {
        Kind::Text => vec![
            json!(number),
            json!(true),
            json!([secret]),
            json!({ "value": secret }),
            json!(number as f64 + 0.5),
        ],
        Kind::Object => vec![
            json!(secret),
            json!(number),
            json!(false),
            json!([secret, number]),
            json!([secret, secret, secret, secret, secret]),
        ],
        Kind::Flag => vec![
            json!(secret),
            json!(number),
            json!([secret]),
            json!({ "value": secret }),
            json!(number as f64 + 0.5),
        ],
    };
    shapes[shape % shapes.len()].clone()
}

/// Puts `value` at `path`, creating the objects on the way.
fn put(ticket: &mut Value, path: &[&str], value: Value) {
    let mut at = ticket;
    for step in &path[..path.len() - 1] {
        let fields = at.as_object_mut().expect("an object");
        let next = fields.entry(*step).or_insert_with(|| json!({}));
        if !next.is_object() {
            *next = json!({});
        }
        at = next;
    }
    at.as_object_mut()
        .expect("an object")
        .insert(path[path.len() - 1].to_owned(), value);
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn a_field_of_the_wrong_type_is_refused_without_quoting_its_value(
        ticket in valid_ticket(),
        field in any::<Index>(),
        shape in 0usize..5,
        secret in personal(),
        number in 1_000_000_000u64..u64::MAX / 2,
    ) {
        let fields = ticket_fields();
        let (path, kind) = &fields[field.index(fields.len())];
        let mut ticket = ticket;
        let injected = wrong_value(*kind, shape, &secret, number);
        put(&mut ticket, path, injected.clone());
        let text = ticket.to_string();
        let reason = match decode_ticket(&raw(&text)) {
            Ok(decoded) => {
                return Err(TestCaseError::fail(format!(
                    "{} holding {injected} was accepted: {decoded:?}", path.join(".")
                )));
            }
            Err(reason) => reason,
        };
        prop_assert!(!reason.contains(&secret), "{}: the reason quotes the value: {}", text, reason);
        prop_assert!(
            !reason.contains(&number.to_string()),
            "{}: the reason quotes the value: {}", text, reason
        );
        // The number's first digits, in case it is shown another way (1.2e18).
        prop_assert!(
            !reason.contains(&number.to_string()[..6]),
            "{}: the reason quotes the value: {}", text, reason
        );
        prop_assert!(!reason.contains('\n'));
        if path == &["taxNumber"] {
            prop_assert_eq!(raw_ticket_number(&raw(&text)), None);
        }
    }

    #[test]
    fn a_bad_envelope_field_is_refused_without_quoting_its_value(
        field in prop::sample::select(&["pagination", "nextPageKey", "pagination.nextPageKey"][..]),
        shape in 0usize..5,
        secret in personal(),
        number in 1_000_000_000u64..u64::MAX / 2,
    ) {
        let mut document = json!({ "result": [] });
        let (path, kind): (Vec<&str>, Kind) = match field {
            "pagination" => (vec!["pagination"], Kind::Object),
            "nextPageKey" => (vec!["nextPageKey"], Kind::Text),
            _ => (vec!["pagination", "nextPageKey"], Kind::Text),
        };
        put(&mut document, &path, wrong_value(kind, shape, &secret, number));
        let text = document.to_string();
        let reason = parse_page(text.as_bytes())
            .err()
            .ok_or_else(|| TestCaseError::fail(format!("accepted {text}")))?;
        assert_bad_data(&reason)?;
        prop_assert!(!reason.contains(&secret), "{}: {}", text, reason);
        prop_assert!(!reason.contains(&number.to_string()[..6]), "{}: {}", text, reason);
    }
}

// -------------------------------------------------------------------------------------------------
// The merge (SPEC §4.4)
// -------------------------------------------------------------------------------------------------

const NOW: &str = "2026-11-27T10:00:00.000Z";
const LATER: &str = "2026-11-27T10:05:00.000Z";

/// A few instants, close together, so that equal, earlier and later all occur.
fn instant() -> impl Strategy<Value = Timestamp> {
    (0u32..6).prop_map(|n| {
        Timestamp::parse_rfc3339(&format!("2026-06-01T12:00:00.{:03}Z", n * 7)).expect("valid")
    })
}

fn small_text() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop::sample::select(
        &["a", "b", "A", " a@x.org", "a@x.org", "B@X.ORG", ""][..],
    ))
    .prop_map(|t| t.map(str::to_owned))
}

fn record() -> impl Strategy<Value = TicketRecord> {
    (
        prop::collection::vec(small_text(), 26),
        prop::option::of(instant()),
        prop::option::of(prop::sample::select(&["PRINTED", "PAID", "CANCELLED"][..])),
        prop::option::of(1i64..6),
        prop::sample::select(&["INJECTED", "DOWNLOADED", "ASSIGNED"][..]),
        // Milestones as the store holds them: instants in its form (so that an incoming equal
        // one is no change), or none.
        prop::collection::vec(prop::option::of(instant()), 7),
    )
        .prop_map(|(texts, updated, state, cultural, status, milestones)| {
            let mut t = texts.into_iter();
            let mut next = || t.next().unwrap();
            let mut m = milestones.into_iter().map(|at| at.map(|t| t.to_string()));
            let mut milestone = || m.next().unwrap();
            TicketRecord {
                ticket_number: "T1".into(),
                tixngo_ticket_id: next(),
                barcode: next(),
                event_id: next(),
                s360_state: state.map(str::to_owned),
                mobile_status: status.into(),
                tixngo_updated_at: updated.map(|t| t.to_string()),
                owner_email: next(),
                owner_title: next(),
                owner_first_name: next(),
                owner_last_name: next(),
                owner_birth_date: next(),
                owner_nationality: next(),
                owner_id_number: next(),
                owner_phone: next(),
                owner_residence_country: next(),
                owner_language: next(),
                holder_first_name: next(),
                holder_last_name: next(),
                holder_birth_date: next(),
                holder_id_number: next(),
                holder_nationality: next(),
                holder_birth_place: next(),
                holder_birth_region: next(),
                holder_country_code: next(),
                previous_owner_email: next(),
                initial_owner_email: next(),
                injected_at: milestone(),
                downloaded_at: milestone(),
                assigned_at: milestone(),
                activated_at: milestone(),
                checked_at: milestone(),
                controlled_at: milestone(),
                deleted_at: milestone(),
                cultural_contact_id: cultural,
                first_synced_at: "2026-01-01T00:00:00.000Z".into(),
                last_synced_at: "2026-01-02T00:00:00.000Z".into(),
            }
        })
}

fn spectator() -> impl Strategy<Value = Spectator> {
    (
        prop::collection::vec(small_text(), 10),
        prop::option::of(any::<bool>()),
        prop::option::of(any::<bool>()),
    )
        .prop_map(|(texts, promo, third)| {
            let mut t = texts.into_iter();
            let mut next = || t.next().unwrap();
            Spectator {
                title: next(),
                first_name: next(),
                last_name: next(),
                birth_date: next(),
                email: next(),
                nationality: next(),
                id_number: next(),
                phone: next(),
                residence_country: next(),
                language: next(),
                allow_promo_email: promo,
                allow_third_party_email: third,
            }
        })
}

fn incoming_ticket() -> impl Strategy<Value = Ticket> {
    let holder = prop_oneof![
        Just(Patch::Absent),
        Just(Patch::Clear),
        prop::collection::vec(small_text(), 8).prop_map(|texts| {
            let mut t = texts.into_iter();
            let mut next = || t.next().unwrap();
            Patch::Set(Holder {
                first_name: next(),
                last_name: next(),
                birth_date: next(),
                id_number: next(),
                nationality: next(),
                birth_place: next(),
                birth_region: next(),
                country_code: next(),
            })
        }),
    ];
    (
        prop::sample::select(&["INJECTED", "DOWNLOADED", "ASSIGNED", "TRANSFERRED"][..]),
        prop::option::of(instant()),
        prop::collection::vec(small_text(), 6),
        prop::option::of(spectator()),
        holder,
        prop::collection::vec(milestone(), 7),
    )
        .prop_map(|(status, updated, texts, owner, holder, at)| {
            let mut t = texts.into_iter();
            let mut next = || t.next().unwrap();
            Ticket {
                ticket_number: "T1".into(),
                tixngo_ticket_id: next(),
                barcode: next(),
                event_id: next(),
                status: status.into(),
                last_updated: updated,
                owner,
                holder,
                previous_owner_email: next(),
                initial_owner_email: next(),
                transfer_recipient_email: next(),
                attributes: Attributes {
                    injected_at: at[0].clone(),
                    downloaded_at: at[1].clone(),
                    assigned_at: at[2].clone(),
                    activated_at: at[3].clone(),
                    checked_at: at[4].clone(),
                    controlled_at: at[5].clone(),
                    deleted_at: at[6].clone(),
                },
                unknown_fields: Vec::new(),
            }
        })
}

/// An incoming milestone: absent, an explicit `null`, or an instant.
fn milestone() -> impl Strategy<Value = Patch<Timestamp>> {
    prop_oneof![
        2 => Just(Patch::Absent),
        1 => Just(Patch::Clear),
        3 => instant().prop_map(Patch::Set),
    ]
}

/// The row SPEC §4.4 step 4 asks for: every present incoming value replaces the stored one, an
/// absent one keeps it, an explicit null holder clears the holder; set-once columns kept.
fn expected_row(stored: Option<&TicketRecord>, t: &Ticket, now: &str) -> TicketRecord {
    let old = stored.cloned().unwrap_or_else(|| TicketRecord {
        ticket_number: t.ticket_number.clone(),
        s360_state: Some("PRINTED".into()),
        first_synced_at: now.into(),
        ..TicketRecord::default()
    });
    let pick = |new: &Option<String>, old: &Option<String>| new.clone().or_else(|| old.clone());
    let at = |new: Option<Timestamp>, old: &Option<String>| {
        new.map(|t| t.to_string()).or_else(|| old.clone())
    };
    let patched = |new: &Patch<Timestamp>, old: &Option<String>| match new {
        Patch::Absent => old.clone(),
        Patch::Clear => None,
        Patch::Set(t) => Some(t.to_string()),
    };
    let owner = t.owner.clone().unwrap_or_default();
    let (holder, clear) = match &t.holder {
        Patch::Absent => (Holder::default(), false),
        Patch::Clear => (Holder::default(), true),
        Patch::Set(h) => (h.clone(), false),
    };
    let hold = |new: &Option<String>, old: &Option<String>| {
        if clear { None } else { pick(new, old) }
    };
    let a = &t.attributes;
    TicketRecord {
        ticket_number: old.ticket_number.clone(),
        tixngo_ticket_id: pick(&t.tixngo_ticket_id, &old.tixngo_ticket_id),
        barcode: pick(&t.barcode, &old.barcode),
        event_id: pick(&t.event_id, &old.event_id),
        s360_state: old.s360_state.clone(),
        mobile_status: t.status.clone(),
        tixngo_updated_at: at(t.last_updated, &old.tixngo_updated_at),
        owner_email: pick(&owner.email, &old.owner_email),
        owner_title: pick(&owner.title, &old.owner_title),
        owner_first_name: pick(&owner.first_name, &old.owner_first_name),
        owner_last_name: pick(&owner.last_name, &old.owner_last_name),
        owner_birth_date: pick(&owner.birth_date, &old.owner_birth_date),
        owner_nationality: pick(&owner.nationality, &old.owner_nationality),
        owner_id_number: pick(&owner.id_number, &old.owner_id_number),
        owner_phone: pick(&owner.phone, &old.owner_phone),
        owner_residence_country: pick(&owner.residence_country, &old.owner_residence_country),
        owner_language: pick(&owner.language, &old.owner_language),
        holder_first_name: hold(&holder.first_name, &old.holder_first_name),
        holder_last_name: hold(&holder.last_name, &old.holder_last_name),
        holder_birth_date: hold(&holder.birth_date, &old.holder_birth_date),
        holder_id_number: hold(&holder.id_number, &old.holder_id_number),
        holder_nationality: hold(&holder.nationality, &old.holder_nationality),
        holder_birth_place: hold(&holder.birth_place, &old.holder_birth_place),
        holder_birth_region: hold(&holder.birth_region, &old.holder_birth_region),
        holder_country_code: hold(&holder.country_code, &old.holder_country_code),
        previous_owner_email: pick(&t.previous_owner_email, &old.previous_owner_email),
        initial_owner_email: pick(&t.initial_owner_email, &old.initial_owner_email),
        injected_at: patched(&a.injected_at, &old.injected_at),
        downloaded_at: patched(&a.downloaded_at, &old.downloaded_at),
        assigned_at: patched(&a.assigned_at, &old.assigned_at),
        activated_at: patched(&a.activated_at, &old.activated_at),
        checked_at: patched(&a.checked_at, &old.checked_at),
        controlled_at: patched(&a.controlled_at, &old.controlled_at),
        deleted_at: patched(&a.deleted_at, &old.deleted_at),
        cultural_contact_id: old.cultural_contact_id,
        first_synced_at: old.first_synced_at.clone(),
        last_synced_at: now.into(),
    }
}

proptest! {
    #![proptest_config(config(4000))]

    #[test]
    fn merge_follows_the_stale_rule_and_patches_field_by_field(
        stored in prop::option::of(record()),
        ticket in incoming_ticket(),
    ) {
        let stored_at = stored
            .as_ref()
            .and_then(|s| s.tixngo_updated_at.as_deref())
            .map(|t| Timestamp::parse_rfc3339(t).unwrap());
        let stale = matches!((stored_at, ticket.last_updated), (Some(old), Some(new)) if old > new);
        let (record, changed, history) = match merge(stored.clone(), &ticket, NOW) {
            Merge::Stale => {
                prop_assert!(stale, "stale without a later stored time");
                return Ok(());
            }
            Merge::Apply { record, changed, history } => (*record, changed, history),
        };
        prop_assert!(!stale, "a later stored time was overwritten");
        prop_assert_eq!(&record, &expected_row(stored.as_ref(), &ticket, NOW));
        match &stored {
            None => prop_assert!(changed && history),
            Some(old) => {
                let mut same_time = record.clone();
                same_time.last_synced_at.clone_from(&old.last_synced_at);
                prop_assert_eq!(changed, &same_time != old);
                let due = old.mobile_status != record.mobile_status
                    || email_key(old.owner_email.as_deref()) != email_key(record.owner_email.as_deref())
                    || old.holder_first_name != record.holder_first_name
                    || old.holder_last_name != record.holder_last_name;
                prop_assert_eq!(history, due);
                prop_assert_eq!(&record.s360_state, &old.s360_state);
                prop_assert_eq!(&record.first_synced_at, &old.first_synced_at);
                prop_assert_eq!(record.cultural_contact_id, old.cultural_contact_id);
            }
        }
        // The same ticket again: applied (an equal time is not stale), nothing changes.
        match merge(Some(record.clone()), &ticket, LATER) {
            Merge::Stale => prop_assert!(false, "the same state again is stale"),
            Merge::Apply { record: again, changed, history } => {
                prop_assert!(!changed && !history, "not idempotent");
                let mut again = *again;
                prop_assert_eq!(&again.last_synced_at, LATER);
                again.last_synced_at = record.last_synced_at.clone();
                prop_assert_eq!(again, record);
            }
        }
    }
}

// -------------------------------------------------------------------------------------------------
// The contact rules (SPEC §4.5), carried out by src/engine/contacts.rs on an in-memory store
// -------------------------------------------------------------------------------------------------

const STATUSES: [&str; 12] = [
    "INJECTED",
    "DOWNLOADED",
    "ASSIGNED",
    "PENDING_TRANSFER",
    "FAILURE",
    "FAILURE_TRANSFER",
    "TRANSFERRED",
    "CONTROLLED",
    "ONLINE_ACTIVATED",
    "DELETED",
    "NOT_DOWNLOADED",
    "SOMETHING_NEW",
];

/// Three people, each written several ways: case, surrounding blanks (trimmed, SPEC §4.5), and
/// characters that are not trimmed (a no-break space, a vertical tab) and so make another address.
fn email() -> impl Strategy<Value = String> {
    (
        prop::sample::select(&["ana@x.org", "bo@x.org", "cy@x.org"][..]),
        0usize..8,
    )
        .prop_map(|(base, variant)| match variant {
            0 | 1 => base.to_owned(),
            2 => base.to_ascii_uppercase(),
            3 => format!("  {}\t", capitalized(base)),
            4 => format!("\r\n{base} "),
            5 => format!("\u{a0}{base}"),
            6 => format!("{base}\u{b}"),
            _ => " \t".to_owned(),
        })
}

fn capitalized(email: &str) -> String {
    let mut out = String::new();
    let mut start = true;
    for c in email.chars() {
        out.push(if start { c.to_ascii_uppercase() } else { c });
        start = matches!(c, '.' | '@');
    }
    out
}

/// One state of the ticket, as TIXNGO reports it.
fn ticket_state() -> impl Strategy<Value = Ticket> {
    let owner = prop_oneof![
        1 => Just(None),
        1 => Just(Some(Spectator { first_name: Some("NoEmail".into()), ..Spectator::default() })),
        6 => email().prop_map(|email| Some(Spectator {
            first_name: Some(format!("Owner {}", email.trim())),
            email: Some(email),
            ..Spectator::default()
        })),
    ];
    (
        prop_oneof![
            4 => prop::sample::select(&STATUSES[..]),
            2 => Just("PENDING_TRANSFER"),
            1 => Just("TRANSFERRED"),
        ],
        owner,
        prop::option::of(email()),
        prop_oneof![2 => Just(None), 1 => instant().prop_map(Some)],
    )
        .prop_map(|(status, owner, recipient, updated)| Ticket {
            ticket_number: "T1".into(),
            status: status.into(),
            last_updated: updated,
            owner,
            transfer_recipient_email: recipient,
            ..Ticket::default()
        })
}

/// Sequences of states; in about a third of the steps the owner is the previous state's transfer
/// recipient, so that transfers complete (random states alone seldom line up).
fn ticket_states() -> impl Strategy<Value = Vec<Ticket>> {
    prop::collection::vec((ticket_state(), 0u8..3), 1..14).prop_map(|steps| {
        let mut states: Vec<Ticket> = Vec::with_capacity(steps.len());
        for (mut state, follow) in steps {
            let recipient = states
                .last()
                .and_then(|previous| previous.transfer_recipient_email.clone());
            if let (0, Some(email)) = (follow, recipient) {
                state.owner = Some(Spectator {
                    first_name: Some(format!("Owner {}", email.trim())),
                    email: Some(email),
                    ..Spectator::default()
                });
            }
            states.push(state);
        }
        states
    })
}

#[derive(Clone, Debug, PartialEq)]
struct Contact {
    id: i64,
    email: String,
    temporary: bool,
    internet: bool,
    individual: bool,
    first_name: Option<String>,
}

impl Contact {
    /// The store's `email_key` column: `lower(trim(email, ' \t\n\r'))`.
    fn key(&self) -> Option<String> {
        email_key(Some(&self.email))
    }
}

#[derive(Clone, Debug, PartialEq)]
struct Line {
    id: i64,
    old: Option<i64>,
    new: i64,
    status: LineStatus,
}

/// The store as far as one ticket's contact rules see it.
#[derive(Clone, Debug, Default)]
struct Model {
    contacts: Vec<Contact>,
    lines: Vec<Line>,
    ticket: Option<TicketRecord>,
    next_id: i64,
}

impl ContactBook for Model {
    /// As the store's look-up: internet account first, then an individual, then a real contact
    /// over a temporary one, then the lowest id.
    fn contact_by_email(&mut self, key: &str) -> Result<Option<FoundContact>, Error> {
        Ok(self
            .contacts
            .iter()
            .filter(|c| c.key().as_deref() == Some(key))
            .min_by_key(|c| (!c.internet, !c.individual, c.temporary, c.id))
            .map(|c| FoundContact {
                id: c.id,
                temporary: c.temporary,
            }))
    }

    fn pending_lines(&mut self, ticket_number: &str) -> Result<Vec<PendingLine>, Error> {
        assert_eq!(ticket_number, "T1");
        Ok(self
            .lines
            .iter()
            .filter(|l| l.status == LineStatus::Pending)
            .map(|l| PendingLine {
                id: l.id,
                new_contact_id: l.new,
            })
            .collect())
    }
}

impl Model {
    fn id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    fn contact(&self, id: i64) -> Option<&Contact> {
        self.contacts.iter().find(|c| c.id == id)
    }

    fn cultural(&self) -> Option<i64> {
        self.ticket.as_ref().and_then(|t| t.cultural_contact_id)
    }

    fn pending(&self) -> Vec<&Line> {
        self.lines
            .iter()
            .filter(|l| l.status == LineStatus::Pending)
            .collect()
    }

    fn lookup(&self, key: &str) -> Option<i64> {
        self.clone()
            .contact_by_email(key)
            .unwrap()
            .map(|found| found.id)
    }

    /// A plan carried out by the engine's own code, the ticket row written between the contacts
    /// and the lines as the batch writes it.
    fn apply(
        &mut self,
        plan: &ContactPlan,
        ticket: &Ticket,
        mut record: TicketRecord,
    ) -> Result<Counters, Error> {
        let mut counters = Counters::default();
        let created = create_contacts(self, plan, ticket, &mut record, &mut counters)?;
        self.ticket = Some(record.clone());
        let written = LineWritten {
            operator_login: "tixngo-feedback",
            ticket_state: None,
            date_time: NOW,
        };
        write_lines(self, plan, &record, created, &mut counters, &written)?;
        Ok(counters)
    }
}

/// The store's statements, as far as the contacts and lines go.
impl ContactWriter for Model {
    fn create_owner_contact(&mut self, owner: &Spectator) -> Result<i64, Error> {
        let id = self.id();
        self.contacts.push(Contact {
            id,
            // As Batch::create_owner_contact stores it: trimmed of ' \t\n\r' only.
            email: owner
                .email
                .as_deref()
                .unwrap_or_default()
                .trim_matches([' ', '\t', '\n', '\r'])
                .to_owned(),
            temporary: false,
            internet: true,
            individual: true,
            first_name: owner.first_name.clone(),
        });
        Ok(id)
    }

    fn upgrade_contact(&mut self, id: i64, owner: &Spectator) -> Result<(), Error> {
        // `UPDATE contact … WHERE id = ? AND temporary = 1`.
        if let Some(c) = self.contacts.iter_mut().find(|c| c.id == id && c.temporary) {
            c.temporary = false;
            c.internet = true;
            c.first_name.clone_from(&owner.first_name);
        }
        Ok(())
    }

    fn create_temporary_contact(&mut self, email: &str) -> Result<i64, Error> {
        let id = self.id();
        self.contacts.push(Contact {
            id,
            email: email.to_owned(),
            temporary: true,
            internet: false,
            individual: true,
            first_name: Some("Pending".into()),
        });
        Ok(id)
    }

    fn set_line_status(&mut self, id: i64, status: LineStatus) -> Result<(), Error> {
        let line =
            self.lines.iter_mut().find(|l| l.id == id).ok_or_else(|| {
                Error::Internal("an update names a line that does not exist".into())
            })?;
        line.status = status;
        Ok(())
    }

    fn insert_line(
        &mut self,
        ticket_number: &str,
        old_contact_id: Option<i64>,
        new_contact_id: i64,
        status: LineStatus,
        _written: &LineWritten<'_>,
    ) -> Result<(), Error> {
        assert_eq!(ticket_number, "T1");
        let id = self.id();
        self.lines.push(Line {
            id,
            old: old_contact_id,
            new: new_contact_id,
            status,
        });
        Ok(())
    }
}

/// Contacts that other S-360 tools created before the feedback ran: any flags.
fn existing_contact() -> impl Strategy<Value = (String, bool, bool, bool)> {
    (email(), any::<bool>(), any::<bool>(), any::<bool>())
}

/// Checks one step of the rules against SPEC §4.5; `before` is the model before the step.
fn check_step(
    before: &Model,
    after: &Model,
    plan: &ContactPlan,
    ticket: &Ticket,
) -> Result<(), TestCaseError> {
    let status = ticket.status.as_str();
    let owner_key = email_key(ticket.owner.as_ref().and_then(|o| o.email.as_deref()));
    let recipient_key = email_key(ticket.transfer_recipient_email.as_deref());
    let stored_owner_key = email_key(
        before
            .ticket
            .as_ref()
            .and_then(|t| t.owner_email.as_deref()),
    );
    let owner_changed = matches!((&stored_owner_key, &owner_key), (Some(a), Some(b)) if a != b);
    let first_seen = before.ticket.is_none();
    let key_of = |model: &Model, id: i64| model.contact(id).and_then(Contact::key);

    // Contacts: found or created, never created twice, never modified unless temporary.
    if let Some(id) = plan.upgrade {
        let target = before.contact(id);
        prop_assert!(
            target.is_some_and(|c| c.temporary),
            "upgrade of a contact that is not temporary: {:?}",
            target
        );
    }
    for old in &before.contacts {
        let now = after.contact(old.id).expect("contacts are never deleted");
        if !old.temporary {
            prop_assert_eq!(now, old, "a non-temporary contact was modified");
        }
    }
    let created: Vec<&Contact> = after.contacts[before.contacts.len()..].iter().collect();
    for contact in &created {
        let key = contact.key();
        prop_assert!(key.is_some(), "a contact without an e-mail was created");
        prop_assert!(
            !before.contacts.iter().any(|c| c.key() == key),
            "created a second contact for {:?} (found or created, SPEC §4.5)",
            key
        );
    }
    if plan.create_owner {
        let contact = created.iter().find(|c| !c.temporary).unwrap();
        prop_assert_eq!(
            contact.key(),
            owner_key.clone(),
            "the owner's new contact cannot be found again by the owner's e-mail {:?} (stored as {:?})",
            ticket.owner.as_ref().and_then(|o| o.email.clone()),
            contact.email
        );
    }
    if let Some(email) = &plan.create_recipient {
        prop_assert_eq!(email_key(Some(email)), recipient_key.clone());
        prop_assert_eq!(
            status,
            "PENDING_TRANSFER",
            "only a pending transfer creates a recipient"
        );
    }

    // Lines: only pending ones change, and only to cancelled or confirmed; at most one pending.
    let mut updated = BTreeSet::new();
    for &(id, status) in &plan.line_updates {
        prop_assert!(updated.insert(id), "line {} updated twice", id);
        let line = before.lines.iter().find(|l| l.id == id);
        prop_assert!(
            line.is_some_and(|l| l.status == LineStatus::Pending),
            "update of a line that is not pending: {:?}",
            line
        );
        prop_assert_ne!(status, LineStatus::Pending);
    }
    prop_assert!(
        after.pending().len() <= 1,
        "two pending lines: {:?}",
        after.lines
    );
    for line in &after.lines {
        prop_assert!(after.contact(line.new).is_some());
        prop_assert!(line.old.is_none_or(|id| after.contact(id).is_some()));
    }
    if let Some(id) = after.cultural() {
        prop_assert!(after.contact(id).is_some());
    }

    // The seed rule.
    let seeded = before.cultural().is_none() && owner_key.is_some();
    if seeded {
        prop_assert_eq!(
            after.cultural().and_then(|id| key_of(after, id)),
            owner_key.clone(),
            "seed: the cultural contact is the owner's"
        );
    }
    let cultural_kept = || -> Result<(), TestCaseError> {
        if !seeded {
            prop_assert_eq!(
                after.cultural(),
                before.cultural(),
                "cultural contact moved"
            );
        }
        Ok(())
    };
    let lines_kept = || -> Result<(), TestCaseError> {
        prop_assert_eq!(&after.lines, &before.lines, "lines changed");
        Ok(())
    };
    let no_pending = || -> Result<(), TestCaseError> {
        prop_assert!(
            after.pending().is_empty(),
            "pending lines left: {:?}",
            after.lines
        );
        Ok(())
    };
    // The transfer rules.
    if status == "PENDING_TRANSFER" {
        cultural_kept()?;
        match &recipient_key {
            None => lines_kept()?,
            Some(r) => {
                let pending = after.pending();
                prop_assert_eq!(pending.len(), 1);
                prop_assert_eq!(key_of(after, pending[0].new), Some(r.clone()));
                if plan.new_line.is_some() {
                    prop_assert_eq!(pending[0].old, after.cultural());
                }
            }
        }
    } else if status == "FAILURE" || status == "FAILURE_TRANSFER" {
        cultural_kept()?;
        prop_assert!(
            plan.create_recipient.is_none(),
            "a failure created a contact"
        );
        // The pending state missed between two polls: a recipient who has a contact gets a
        // CANCELLED line, once (the same failure again adds none).
        let already_failed = before
            .ticket
            .as_ref()
            .is_some_and(|t| ["FAILURE", "FAILURE_TRANSFER"].contains(&t.mobile_status.as_str()));
        let missed = recipient_key
            .as_ref()
            .and_then(|r| before.lookup(r))
            .filter(|id| !already_failed && !before.pending().iter().any(|l| l.new == *id));
        match (plan.new_line, missed) {
            (None, None) => {}
            (Some(line), Some(id)) => {
                prop_assert_eq!(line.status, LineStatus::Cancelled);
                prop_assert_eq!(line.new_contact, ContactRef::Existing(id));
                let added = after.lines.last().unwrap();
                prop_assert_eq!((added.old, added.new), (after.cultural(), id));
            }
            (line, missed) => {
                prop_assert!(false, "line {:?}, missed pending to {:?}", line, missed)
            }
        }
        match &recipient_key {
            None => no_pending()?,
            Some(r) => {
                if let Some(id) = before.lookup(r) {
                    prop_assert!(!after.pending().iter().any(|l| l.new == id));
                }
                for line in before
                    .pending()
                    .iter()
                    .filter(|l| Some(l.new) != before.lookup(r))
                {
                    prop_assert!(after.pending().iter().any(|l| l.id == line.id));
                }
            }
        }
    } else if status == "TRANSFERRED" || owner_changed {
        match &owner_key {
            None => {
                cultural_kept()?;
                lines_kept()?;
            }
            Some(key) => {
                let cultural = after.cultural().unwrap();
                prop_assert_eq!(key_of(after, cultural), Some(key.clone()));
                // Whatever was pending ended: confirmed to the new owner, or cancelled (also when
                // the ticket is back with its cultural contact, which the SPEC table leaves
                // "nothing" but src/feedback/contacts.rs cancels, so that a replay is idempotent).
                no_pending()?;
                if !(first_seen || seeded || Some(cultural) == before.cultural()) {
                    let confirmed = |m: &Model| {
                        m.lines
                            .iter()
                            .filter(|l| l.new == cultural && l.status == LineStatus::Confirmed)
                            .count()
                    };
                    prop_assert_eq!(confirmed(after), confirmed(before) + 1);
                }
            }
        }
    } else if status::is_documented(status) {
        // Settled.
        cultural_kept()?;
        no_pending()?;
        prop_assert_eq!(plan.new_line, None);
    } else {
        // A status TIXNGO does not document: only an owner change (above) moves anything.
        cultural_kept()?;
        lines_kept()?;
    }
    Ok(())
}

/// How often each effect of the rules occurred, to show that the property reaches them all.
#[derive(Debug, Default)]
struct Effects(BTreeMap<&'static str, u32>);

impl Effects {
    fn note(&mut self, plan: &ContactPlan, ticket: &Ticket) {
        let mut seen = |name| *self.0.entry(name).or_default() += 1;
        seen("steps");
        if plan.create_owner {
            seen("owner created");
        }
        if plan.upgrade.is_some() {
            seen("temporary contact upgraded");
        }
        if plan.create_recipient.is_some() {
            seen("recipient created");
        }
        if plan.cultural_contact.is_some() && ticket.status == "TRANSFERRED" {
            seen("cultural contact moved by TRANSFERRED");
        }
        if plan.cultural_contact.is_some() && ticket.status != "TRANSFERRED" {
            seen("cultural contact set otherwise");
        }
        for (_, status) in &plan.line_updates {
            seen(match status {
                LineStatus::Cancelled => "line cancelled",
                LineStatus::Confirmed => "line confirmed",
                LineStatus::Pending => "line set pending",
            });
        }
        match plan.new_line.map(|l| l.status) {
            Some(LineStatus::Pending) => seen("pending line added"),
            Some(LineStatus::Confirmed) => seen("confirmed line added"),
            Some(LineStatus::Cancelled) => seen("cancelled line added"),
            None => {}
        }
    }
}

/// Processes `states` of one ticket, in order, as the sync does, over a store holding the
/// `existing` contacts, checking every step and its replay.
fn run_states(
    existing: Vec<(String, bool, bool, bool)>,
    states: &[Ticket],
    effects: &mut Effects,
) -> Result<(), TestCaseError> {
    let mut model = Model::default();
    for (email, temporary, internet, individual) in existing {
        let id = model.id();
        model.contacts.push(Contact {
            id,
            email,
            temporary,
            internet,
            individual,
            first_name: Some(format!("Existing {id}")),
        });
    }
    for (step, ticket) in states.iter().enumerate() {
        let stored = model.ticket.clone();
        let record = match merge(stored.clone(), ticket, NOW) {
            Merge::Stale => continue,
            Merge::Apply { record, .. } => *record,
        };
        let before = model.clone();
        let plan = contacts::plan(stored.as_ref(), ticket, &mut model)
            .map_err(|e| TestCaseError::fail(format!("step {step}: {e}")))?;
        effects.note(&plan, ticket);
        let counters = model
            .apply(&plan, ticket, record)
            .map_err(|e| TestCaseError::fail(format!("step {step}: {e}: {plan:?}")))?;
        // The summary's figures count the writes, one for one.
        let created = model.contacts.len() - before.contacts.len();
        prop_assert_eq!(counters.contacts_created, created as u64);
        prop_assert_eq!(counters.contacts_updated, u64::from(plan.upgrade.is_some()));
        let added = model.lines.len() - before.lines.len();
        prop_assert_eq!(counters.distributions_created, added as u64);
        prop_assert_eq!(
            counters.distributions_updated,
            plan.line_updates.len() as u64
        );
        check_step(&before, &model, &plan, ticket).map_err(|e| {
            TestCaseError::fail(format!(
                "step {step} {ticket:?}\nplan {plan:?}\nbefore {before:?}\nafter {model:?}\n{e}"
            ))
        })?;
        // The same state again changes nothing.
        let stored = model.ticket.clone();
        let applied = matches!(merge(stored.clone(), ticket, LATER), Merge::Apply { .. });
        prop_assert!(applied, "the same state again is stale");
        let mut again = contacts::plan(stored.as_ref(), ticket, &mut model)
            .map_err(|e| TestCaseError::fail(format!("step {step} again: {e}")))?;
        again.warning = None;
        prop_assert_eq!(
            &again,
            &ContactPlan::default(),
            "step {}: the same state again is not idempotent: {:?} after {:?}",
            step,
            ticket,
            model
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(4000))]

    #[test]
    fn contact_rules_keep_their_invariants_over_any_sequence_of_states(
        existing in prop::collection::vec(existing_contact(), 0..4),
        states in ticket_states(),
    ) {
        run_states(existing, &states, &mut Effects::default())?;
    }
}

/// The sequences above reach every effect of the rules, many times.
#[test]
fn the_contact_sequences_reach_every_effect() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let sequences = (
        prop::collection::vec(existing_contact(), 0..4),
        ticket_states(),
    );
    let mut effects = Effects::default();
    for _ in 0..500 {
        let (existing, states) = sequences.new_tree(&mut runner).unwrap().current();
        run_states(existing, &states, &mut effects).unwrap();
    }
    for effect in [
        "owner created",
        "temporary contact upgraded",
        "recipient created",
        "cultural contact moved by TRANSFERRED",
        "cultural contact set otherwise",
        "line cancelled",
        "line confirmed",
        "pending line added",
        "confirmed line added",
        "cancelled line added",
    ] {
        let count = effects.0.get(effect).copied().unwrap_or(0);
        assert!(count >= 20, "{effect}: {count} times in {:?}", effects.0);
    }
}

// -------------------------------------------------------------------------------------------------
// Ticket numbers and timestamps: what src/ticket_number.rs and src/timestamp.rs do not cover
// -------------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(1500))]

    /// The unit tests join with bare commas; an operator types blanks too. An empty item
    /// anywhere (a doubled or trailing comma, a blank item) is a typo, refused naming the value.
    #[test]
    fn skip_lists_round_trip_with_blanks_and_refuse_empty_items(
        items in prop::collection::vec(
            ("[ \t]{0,2}", "[A-Za-z0-9._/-]{1,64}", "[ \t]{0,2}"),
            1..12,
        ),
        empty_at in any::<prop::sample::Index>(),
        blank in "[ \t]{0,2}",
    ) {
        let texts: Vec<String> = items.iter().map(|(before, number, after)| format!("{before}{number}{after}")).collect();
        let numbers: Vec<&str> = items.iter().map(|(_, n, _)| n.as_str()).collect();
        prop_assert_eq!(ticket_number::parse_list(&texts.join(",")), Ok(numbers.iter().map(|n| n.to_string()).collect()));
        // And back: the list joined again parses to itself.
        prop_assert_eq!(ticket_number::parse_list(&numbers.join(", ")).unwrap(), numbers);
        let mut with_empty = texts.clone();
        with_empty.insert(empty_at.index(texts.len() + 1), blank);
        let text = with_empty.join(",");
        let refused = ticket_number::parse_list(&text).unwrap_err();
        prop_assert!(refused.contains(&format!("{text:?}")), "{}", refused);
    }

    #[test]
    fn parse_list_never_panics_and_fails_only_on_a_bad_item(text in "\\PC{0,60}|[A-Za-z0-9, ]{0,40}") {
        let bad = text.split(',').map(str::trim).find(|i| !ticket_number::is_valid(i));
        match ticket_number::parse_list(&text) {
            Ok(numbers) => {
                prop_assert_eq!(bad, None);
                prop_assert!(numbers.iter().all(|n| ticket_number::is_valid(n)));
            }
            Err(message) => {
                prop_assert!(bad.is_some(), "{:?} refused: {}", text, message);
                prop_assert!(message.starts_with("invalid ticket number"), "{}", message);
            }
        }
    }

    /// Any RFC 3339 text (offsets, fractions, separators, impossible dates) against a
    /// day-by-day count that shares no code with the parser.
    #[test]
    fn rfc3339_texts_parse_to_the_instant_they_name(
        year in prop_oneof![0i64..3, 1965i64..2045, 9997i64..=9999],
        month in 1i64..=12,
        day in 1i64..=31,
        (hour, minute, second) in (0i64..24, 0i64..60, 0i64..=60),
        fraction in "[0-9]{0,7}",
        separator in prop::sample::select(&["T", "t", " "][..]),
        offset in prop_oneof![
            Just(None),
            (prop::bool::ANY, 0i64..24, 0i64..60).prop_map(Some),
        ],
        lower_z in any::<bool>(),
    ) {
        let zone = match offset {
            None => (if lower_z { "z" } else { "Z" }).to_owned(),
            Some((minus, h, m)) => format!("{}{h:02}:{m:02}", if minus { '-' } else { '+' }),
        };
        let dot = if fraction.is_empty() { String::new() } else { format!(".{fraction}") };
        let text = format!(
            "{year:04}-{month:02}-{day:02}{separator}{hour:02}:{minute:02}:{second:02}{dot}{zone}"
        );
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
        let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        let date_valid = day <= month_days[(month - 1) as usize];
        // Days from 0000-01-01, counted year by year and month by month.
        let mut days = 0i64;
        for y in 0..year {
            days += if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) { 366 } else { 365 };
        }
        days += month_days[..(month - 1) as usize].iter().sum::<i64>() + day - 1;
        let offset_seconds = offset.map_or(0, |(minus, h, m)| (h * 60 + m) * 60 * if minus { -1 } else { 1 });
        let millis_of_second: i64 = format!("{fraction:0<3}")[..3].parse().unwrap();
        let since_year_zero =
            (days * 86_400 + hour * 3_600 + minute * 60 + second - offset_seconds) * 1000 + millis_of_second;
        const YEAR_10000: i64 = 315_569_520_000_000; // 3_652_425 days
        let in_range = (0..YEAR_10000).contains(&since_year_zero);
        let parsed = Timestamp::parse_rfc3339(&text);
        prop_assert_eq!(parsed.is_some(), date_valid && in_range, "{}", text);
        if let Some(t) = parsed {
            let zero = Timestamp::parse_rfc3339("0000-01-01T00:00:00Z").unwrap();
            prop_assert_eq!(t.millis_since(zero), since_year_zero, "{}", text);
            // The normal form names the same instant and is a fixed point.
            let normal = t.to_string();
            prop_assert_eq!(normal.len(), 24);
            prop_assert_eq!(Timestamp::parse_rfc3339(&normal), Some(t));
        }
    }
}

/// Sanity check of the generators: the properties above reach both outcomes often enough to
/// mean something (a strategy that only produced errors would pass them trivially).
#[test]
fn the_generators_reach_both_outcomes() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut outcomes: BTreeMap<&str, (u32, u32)> = BTreeMap::new();
    let mut count = |name, ok: bool| {
        let entry = outcomes.entry(name).or_default();
        if ok { entry.0 += 1 } else { entry.1 += 1 }
    };
    let values = prop_oneof![json_value(), envelope_value()];
    let tickets = prop_oneof![
        prop::collection::btree_map(json_key(), json_value(), 0..8)
            .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        valid_ticket(),
    ];
    let mutated = (valid_document(), prop::collection::vec(mutation(), 1..4));
    for _ in 0..400 {
        let value = values.new_tree(&mut runner).unwrap().current();
        count(
            "parse_page(value)",
            parse_page(value.to_string().as_bytes()).is_ok(),
        );
        let ticket = tickets.new_tree(&mut runner).unwrap().current();
        count(
            "decode_ticket",
            decode_ticket(&raw(&ticket.to_string())).is_ok(),
        );
        let (document, mutations) = mutated.new_tree(&mut runner).unwrap().current();
        let body = mutate(document.to_string().into_bytes(), &mutations);
        count("parse_page(mutated)", parse_page(&body).is_ok());
    }
    for (name, (ok, err)) in &outcomes {
        assert!(*ok >= 20 && *err >= 20, "{name}: {ok} ok, {err} errors");
    }
}
