use super::*;

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
                    (PageTicket::Decoded(ticket), Ok(decoded)) => prop_assert_eq!(ticket, &decoded),
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
