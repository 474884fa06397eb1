//! A sentinel for the assumed wire contract (SPEC §4.4): the diff endpoint's field names are not
//! public, so what a batch held is checked against what the mapping reads, and the run says what
//! it could not use. Warnings are gathered over the whole run and told once at its end: a cron
//! run of many batches must not repeat itself, and an operator is warned only about what they
//! should act on.

use std::collections::{BTreeMap, HashSet};

use crate::feedback::{Patch, Ticket};
use crate::report::Summary;

use super::status;

/// The fields the stale rule reads, in the order it reads them.
const TIMESTAMP_FIELDS: &str = "lastUpdated, lastUpdate";
/// The field the contact rules key owners on.
const OWNER_EMAIL_FIELD: &str = "spectatorDetails.email";
/// Statuses of a ticket that no spectator holds (yet, or any more): no owner is expected.
const WITHOUT_OWNER: [&str; 4] = ["INJECTED", "NOT_DOWNLOADED", "DELETION_PENDING", "DELETED"];
/// The fields the mapping reads beyond the ticket number and the status.
const MAPPED_FIELDS: &str = "ticketId, barcode, eventId, lastUpdated, lastUpdate, spectatorDetails, \
     holder, assignee, previousOwner, initialOwner, transfer, attributes";

/// What the tickets of one batch showed.
#[derive(Debug, Default)]
pub struct BatchSentinel {
    tickets: u64,
    timestamps: bool,
    /// Some ticket is in a status that a spectator's wallet holds.
    owners_expected: bool,
    owner_emails: bool,
    mapped_fields: bool,
    unknown_statuses: BTreeMap<String, u64>,
    unknown_fields: Vec<String>,
    seen_fields: HashSet<String>,
}

impl BatchSentinel {
    /// Takes note of one decoded ticket.
    pub fn observe(&mut self, ticket: &Ticket) {
        self.tickets += 1;
        self.timestamps |= ticket.last_updated.is_some();
        self.owners_expected |= status::is_documented(&ticket.status)
            && !WITHOUT_OWNER.contains(&ticket.status.as_str());
        self.owner_emails |= ticket.owner.as_ref().is_some_and(|o| o.email.is_some());
        self.mapped_fields |= reads_beyond_number_and_status(ticket);
        if !status::is_documented(&ticket.status) {
            *self
                .unknown_statuses
                .entry(ticket.status.clone())
                .or_default() += 1;
        }
        for name in &ticket.unknown_fields {
            if !self.seen_fields.contains(name) {
                self.seen_fields.insert(name.clone());
                self.unknown_fields.push(name.clone());
            }
        }
    }

    /// The ticket fields the mapping did not read, in the order first seen.
    pub fn unknown_fields(&self) -> &[String] {
        &self.unknown_fields
    }
}

/// Whether a ticket holds any field the mapping reads beyond its number and status.
fn reads_beyond_number_and_status(ticket: &Ticket) -> bool {
    let a = &ticket.attributes;
    let milestones = [
        &a.injected_at,
        &a.downloaded_at,
        &a.assigned_at,
        &a.activated_at,
        &a.checked_at,
        &a.controlled_at,
        &a.deleted_at,
    ];
    ticket.tixngo_ticket_id.is_some()
        || ticket.barcode.is_some()
        || ticket.event_id.is_some()
        || ticket.last_updated.is_some()
        || ticket.owner.is_some()
        || ticket.holder != Patch::Absent
        || ticket.previous_owner_email.is_some()
        || ticket.initial_owner_email.is_some()
        || ticket.transfer_recipient_email.is_some()
        || milestones.iter().any(|m| **m != Patch::Absent)
}

/// What a whole run found worth saying, gathered batch by batch and told once at its end.
#[derive(Debug, Default)]
pub struct RunNotes {
    /// Warnings by text: how many tickets, and the first ticket number.
    warnings: BTreeMap<&'static str, (u64, String)>,
    /// Batches (with tickets) in which no ticket had a timestamp, no ticket had an owner e-mail
    /// although some were downloaded (a ticket injected and not yet downloaded has no owner), or
    /// no ticket had any field the mapping reads beyond number and status.
    without_timestamp: u64,
    without_owner_email: u64,
    without_mapped_fields: u64,
    batches: u64,
    unknown_statuses: BTreeMap<String, u64>,
    unknown_fields: Vec<String>,
    /// Tickets that could not be mapped, out of how many, and the first one's description.
    failed: u64,
    fetched: u64,
    first_failure: Option<String>,
    /// A dry run records nothing: its warnings must not say that tickets were recorded.
    dry_run: bool,
}

impl RunNotes {
    /// The notes of a run; `dry_run` words what becomes of tickets that cannot be mapped.
    pub fn new(dry_run: bool) -> RunNotes {
        RunNotes {
            dry_run,
            ..RunNotes::default()
        }
    }

    /// A committed batch's tickets, and those that could not be mapped (recorded in
    /// `sync_error`) with the first one's description.
    pub fn mapped(&mut self, fetched: u64, failed: u64, first_failure: Option<String>) {
        self.fetched += fetched;
        self.failed += failed;
        if let Some(first) = first_failure {
            self.first_failure.get_or_insert(first);
        }
    }

    /// A rule's warning about one ticket (its number, never personal data).
    pub fn warn(&mut self, warning: &'static str, ticket_number: &str) {
        log::debug!("ticket {ticket_number}: {warning}");
        self.warnings
            .entry(warning)
            .or_insert_with(|| (0, ticket_number.to_owned()))
            .0 += 1;
    }

    /// Adds a committed batch's findings.
    pub fn add_batch(&mut self, batch: BatchSentinel) {
        if batch.tickets == 0 {
            return;
        }
        self.batches += 1;
        self.without_timestamp += u64::from(!batch.timestamps);
        self.without_owner_email += u64::from(batch.owners_expected && !batch.owner_emails);
        self.without_mapped_fields += u64::from(!batch.mapped_fields);
        for (status, count) in batch.unknown_statuses {
            *self.unknown_statuses.entry(status).or_default() += count;
        }
        for name in batch.unknown_fields {
            if !self.unknown_fields.contains(&name) {
                self.unknown_fields.push(name);
            }
        }
    }

    /// Statuses outside the documented lists, with how many tickets had each.
    pub fn unknown_statuses(&self) -> &BTreeMap<String, u64> {
        &self.unknown_statuses
    }

    /// Ticket fields the mapping did not read, in the order first seen.
    pub fn unknown_fields(&self) -> &[String] {
        &self.unknown_fields
    }

    /// The run's warnings, one line each, whatever the number of batches and tickets.
    pub fn warnings(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .warnings
            .iter()
            .map(|(warning, (count, first))| {
                format!(
                    "{count} {}: {warning} (first: ticket {first})",
                    tickets(*count)
                )
            })
            .collect();
        lines.extend(self.failure_warning());
        lines.extend(self.batch_warnings());
        lines.extend(self.unknown_status_warning());
        lines
    }

    /// The tickets that could not be mapped, and what became of them.
    fn failure_warning(&self) -> Option<String> {
        let first = self.first_failure.as_ref()?;
        Some(format!(
            "{} of {} {} cannot be mapped; {}; first: {first}",
            self.failed,
            self.fetched,
            tickets(self.fetched),
            if self.dry_run {
                "would be recorded in sync_error (dry run: nothing was written)"
            } else {
                "recorded in sync_error"
            }
        ))
    }

    /// The batches whose tickets lacked what the mapping reads, naming the fields looked for.
    /// Batches without any mapped field say only that: the narrower warnings follow from it.
    fn batch_warnings(&self) -> Vec<String> {
        let of_batches = |count: u64| format!("{count} of {} batches", self.batches);
        let mut lines = Vec::new();
        if self.without_mapped_fields > 0 {
            lines.push(format!(
                "{}: no ticket has any field the mapping reads beyond taxNumber and status \
                 (looked for {MAPPED_FIELDS}); check the field names TIXNGO sends (unknown_fields \
                 in --json)",
                of_batches(self.without_mapped_fields)
            ));
            return lines;
        }
        if self.without_timestamp > 0 {
            lines.push(format!(
                "{}: no ticket has a timestamp (looked for {TIMESTAMP_FIELDS}): stale \
                 protection is off for them",
                of_batches(self.without_timestamp)
            ));
        }
        if self.without_owner_email > 0 {
            lines.push(format!(
                "{}: no ticket a spectator holds has an owner e-mail (looked for {OWNER_EMAIL_FIELD}): no \
                 cultural contact could be seeded or moved",
                of_batches(self.without_owner_email)
            ));
        }
        lines
    }

    /// The statuses outside the documented lists, with how many tickets had each.
    fn unknown_status_warning(&self) -> Option<String> {
        if self.unknown_statuses.is_empty() {
            return None;
        }
        let statuses: Vec<String> = self
            .unknown_statuses
            .iter()
            .map(|(status, count)| format!("{status} ({count})"))
            .collect();
        Some(format!(
            "statuses outside TIXNGO's documented lists, stored as sent; only an owner change \
             moves a contact for them: {}",
            statuses.join(", ")
        ))
    }

    /// Ends the run's notes: logs their warnings once and puts their findings in the summary.
    pub fn report(self, summary: &mut Summary) {
        self.log();
        summary.unknown_statuses = self.unknown_statuses;
        summary.unknown_fields = self.unknown_fields;
    }

    /// Logs the run's warnings once, and the unread fields at info level (`-v`). Server text in
    /// them (statuses, field names) is escaped by the logger, as in every log line.
    pub fn log(&self) {
        for line in self.warnings() {
            log::warn!("{line}");
        }
        if !self.unknown_fields.is_empty() {
            log::info!(
                "ticket fields the mapping does not read: {}",
                self.unknown_fields.join(", ")
            );
        }
    }
}

fn tickets(count: u64) -> &'static str {
    if count == 1 { "ticket" } else { "tickets" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feedback::Spectator;
    use crate::timestamp::Timestamp;

    fn ticket(status: &str) -> Ticket {
        Ticket {
            ticket_number: "T1".into(),
            status: status.into(),
            last_updated: Timestamp::parse_rfc3339("2026-06-01T12:00:00Z"),
            owner: Some(Spectator {
                email: Some("a@x.org".into()),
                ..Spectator::default()
            }),
            ..Ticket::default()
        }
    }

    fn batch(tickets: &[Ticket]) -> BatchSentinel {
        let mut sentinel = BatchSentinel::default();
        for ticket in tickets {
            sentinel.observe(ticket);
        }
        sentinel
    }

    #[test]
    fn a_normal_run_has_nothing_to_say() {
        let mut notes = RunNotes::default();
        notes.add_batch(batch(&[ticket("DOWNLOADED"), ticket("INJECTED")]));
        notes.add_batch(batch(&[]));
        assert_eq!(notes.warnings(), Vec::<String>::new());
        assert!(notes.unknown_statuses().is_empty() && notes.unknown_fields().is_empty());
    }

    #[test]
    fn unknown_statuses_and_fields_add_up_over_batches_into_one_warning() {
        let mut odd = ticket("RESALE_PENDING");
        odd.unknown_fields = vec!["eventName".into(), "seat.row".into()];
        let mut notes = RunNotes::default();
        notes.add_batch(batch(&[odd.clone(), odd.clone(), ticket("DOWNLOADED")]));
        notes.add_batch(batch(&[odd, ticket("WHATEVER")]));
        assert_eq!(
            notes.unknown_statuses(),
            &BTreeMap::from([("RESALE_PENDING".into(), 3), ("WHATEVER".into(), 1)])
        );
        assert_eq!(notes.unknown_fields(), ["eventName", "seat.row"]);
        let warnings = notes.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("RESALE_PENDING (3), WHATEVER (1)"));
    }

    #[test]
    fn batches_without_timestamps_or_owner_emails_are_named_with_the_fields_looked_for() {
        let mut untimed = ticket("DOWNLOADED");
        untimed.last_updated = None;
        let mut ownerless = ticket("DOWNLOADED");
        ownerless.owner = None;
        ownerless.last_updated = None;
        ownerless.barcode = Some("123".into());
        let mut notes = RunNotes::default();
        notes.add_batch(batch(&[untimed]));
        notes.add_batch(batch(&[ownerless.clone(), ownerless]));
        notes.add_batch(batch(&[ticket("DOWNLOADED")]));
        let warnings = notes.warnings();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].starts_with("2 of 3 batches: no ticket has a timestamp"));
        assert!(warnings[0].contains("lastUpdated, lastUpdate"));
        assert!(
            warnings[1]
                .starts_with("1 of 3 batches: no ticket a spectator holds has an owner e-mail")
        );
        assert!(warnings[1].contains("spectatorDetails.email"));
    }

    #[test]
    fn the_run_reports_its_unknown_statuses_and_fields_in_the_summary() {
        let mut odd = ticket("RESALE_PENDING");
        odd.unknown_fields = vec!["eventName".into()];
        let mut notes = RunNotes::default();
        notes.add_batch(batch(&[odd]));
        let mut summary = Summary::default();
        notes.report(&mut summary);
        assert_eq!(
            summary.unknown_statuses,
            BTreeMap::from([("RESALE_PENDING".into(), 1)])
        );
        assert_eq!(summary.unknown_fields, ["eventName"]);
    }

    #[test]
    fn a_batch_of_tickets_not_yet_downloaded_is_expected_to_have_no_owner() {
        let mut injected = ticket("INJECTED");
        injected.owner = None;
        let mut deleted = ticket("DELETED");
        deleted.owner = None;
        let mut notes = RunNotes::default();
        notes.add_batch(batch(&[injected.clone(), deleted, injected.clone()]));
        assert_eq!(notes.warnings(), Vec::<String>::new());
        let mut downloaded = injected;
        downloaded.status = "DOWNLOADED".into();
        notes.add_batch(batch(&[downloaded]));
        assert_eq!(notes.warnings().len(), 1);
    }

    #[test]
    fn a_batch_of_bare_tickets_is_one_warning_naming_every_field_looked_for() {
        let bare = Ticket {
            ticket_number: "T1".into(),
            status: "DOWNLOADED".into(),
            ..Ticket::default()
        };
        let mut notes = RunNotes::default();
        notes.add_batch(batch(&[bare.clone(), bare]));
        let warnings = notes.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("beyond taxNumber and status"));
        assert!(warnings[0].contains("spectatorDetails, holder, assignee"));
    }

    #[test]
    fn any_one_mapped_field_is_enough() {
        let bare = Ticket {
            ticket_number: "T1".into(),
            status: "DOWNLOADED".into(),
            ..Ticket::default()
        };
        assert!(!reads_beyond_number_and_status(&bare));
        let text = Some("x".to_owned());
        let with: [fn(&mut Ticket, Option<String>); 11] = [
            |t, x| t.tixngo_ticket_id = x,
            |t, x| t.barcode = x,
            |t, x| t.event_id = x,
            |t, _| t.last_updated = Timestamp::parse_rfc3339("2026-06-01T12:00:00Z"),
            |t, _| t.owner = Some(Spectator::default()),
            |t, _| t.holder = Patch::Clear,
            |t, x| t.previous_owner_email = x,
            |t, x| t.initial_owner_email = x,
            |t, x| t.transfer_recipient_email = x,
            |t, _| t.attributes.injected_at = Patch::Clear,
            |t, _| t.attributes.deleted_at = Patch::Clear,
        ];
        for (index, set) in with.iter().enumerate() {
            let mut ticket = bare.clone();
            set(&mut ticket, text.clone());
            assert!(reads_beyond_number_and_status(&ticket), "field {index}");
        }
    }

    #[test]
    fn a_batch_names_each_unread_field_once_in_the_order_first_seen() {
        let mut first = ticket("DOWNLOADED");
        first.unknown_fields = vec!["seat.row".into(), "eventName".into()];
        let mut second = ticket("DOWNLOADED");
        second.unknown_fields = vec!["eventName".into(), "gate".into()];
        assert_eq!(
            batch(&[first, second]).unknown_fields(),
            ["seat.row", "eventName", "gate"]
        );
        assert!(batch(&[ticket("DOWNLOADED")]).unknown_fields().is_empty());
    }

    #[test]
    fn rule_warnings_and_failures_are_told_once_per_run() {
        let mut notes = RunNotes::default();
        notes.warn("PENDING_TRANSFER without transfer.recipientEmail", "T1");
        notes.warn("PENDING_TRANSFER without transfer.recipientEmail", "T2");
        notes.mapped(
            10,
            1,
            Some("ticket T3 cannot be mapped: status is missing".into()),
        );
        notes.mapped(10, 0, None);
        notes.mapped(10, 2, Some("ticket T4 cannot be mapped".into()));
        assert_eq!(
            notes.warnings(),
            [
                "2 tickets: PENDING_TRANSFER without transfer.recipientEmail (first: ticket T1)",
                "3 of 30 tickets cannot be mapped; recorded in sync_error; first: ticket T3 \
                 cannot be mapped: status is missing",
            ]
        );
        let mut dry = RunNotes::new(true);
        dry.mapped(1, 1, Some("ticket T5 cannot be mapped".into()));
        assert_eq!(
            dry.warnings(),
            [
                "1 of 1 ticket cannot be mapped; would be recorded in sync_error (dry run: nothing \
              was written); first: ticket T5 cannot be mapped"
            ]
        );
    }
}
