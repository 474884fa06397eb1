//! Property tests of the pure layers, through the crate's public API: the response parser and the
//! ticket decoder (no panic on any input, SPEC §7; every failure a clean error with its exit code,
//! §3; no personal data in a reason), the merge of a ticket into its row (§4.4), the contact rules
//! against an in-memory model of the store (§4.5), and the two value types (§2, §4.1).
//!
//! Run alone with `cargo test --test properties`, one subject with its module as the filter
//! (`cargo test --test properties merge::`); `PROPTEST_CASES=N` scales every property.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use tixngo_feedback::Error;
use tixngo_feedback::engine::{create_contacts, write_lines};
use tixngo_feedback::feedback::contacts::{
    self, ContactBook, ContactPlan, ContactRef, ContactWriter, FoundContact, LineStatus, LineToAdd,
    LineWritten, PendingLine,
};
use tixngo_feedback::feedback::{
    Attributes, Holder, Merge, Patch, Spectator, Ticket, TicketRecord, email_key, merge, status,
};
use tixngo_feedback::report::Counters;
use tixngo_feedback::ticket_number;
use tixngo_feedback::timestamp::Timestamp;
use tixngo_feedback::tixngo::wire::{
    PageTicket, decode_ticket, parse_page, raw_ticket_number, read_page, stream_page,
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

mod contact_rules;
mod merge;
mod values;
mod wire;
