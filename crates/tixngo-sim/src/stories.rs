//! The generated organizer: each ticket lives one story, its events interleaved in time.

use std::ops::Range;

use crate::calendar::{
    DAY, HOUR, MINUTE, Millis, SEASON_LENGTH, SEASON_START, SECOND, ZONE_MIX, format_rfc3339,
};
use crate::json::JsonObject;
use crate::people::{Spectator, sloppy_email};
use crate::rng::{Rng, mix64};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Story {
    Delivered,
    Assigned,
    TransferredV3,
    TransferFailed,
    TransferredV4,
    TransferAbandoned,
    TransferChain,
    Deleted,
    NoOwnerEmail,
    V4Statuses,
    Reinjected,
    Deactivated,
    LegacyPending,
    DeletedWhilePending,
    AssignedV4,
    SloppyStatuses,
    /// Only in [`Feed::generate_with_unknown_statuses`]: a normal organizer sends none.
    UnknownStatus,
}

/// The stories and their shares in percent (documented in the module header).
const STORY_MIX: [(Story, u64); 16] = [
    (Story::Delivered, 38),
    (Story::Assigned, 12),
    (Story::TransferredV3, 10),
    (Story::TransferFailed, 7),
    (Story::TransferredV4, 5),
    (Story::TransferAbandoned, 5),
    (Story::TransferChain, 4),
    (Story::Deleted, 6),
    (Story::NoOwnerEmail, 3),
    (Story::V4Statuses, 4),
    (Story::Reinjected, 1),
    (Story::Deactivated, 1),
    (Story::LegacyPending, 1),
    (Story::DeletedWhilePending, 1),
    (Story::AssignedV4, 1),
    (Story::SloppyStatuses, 1),
];

/// A status TIXNGO does not document, for [`Feed::generate_with_unknown_statuses`].
pub const UNKNOWN_STATUS: &str = "SUSPENDED";

const EVENT_IDS: [&str; 6] = [
    "EV-2026-001",
    "EV-2026-002",
    "EV-2026-003",
    "EV-2026-004",
    "EV-2026-005",
    "EV-2026-006",
];

pub(crate) const ACTIVATIONS: [&str; 4] = [
    "ONLINE_ACTIVATED",
    "OFFLINE_ACTIVATED",
    "MANUAL_ACTIVATED",
    "BT_ACTIVATED",
];

/// The statuses under which TIXNGO sends `transfer.recipientEmail` (`PENDING` is the legacy name
/// of `PENDING_TRANSFER`).
const STATUSES_WITH_RECIPIENT: [&str; 4] =
    ["PENDING_TRANSFER", "FAILURE_TRANSFER", "FAILURE", "PENDING"];

/// The `attributes` milestones, in the order of [`MILESTONE_NAMES`].
#[derive(Clone, Copy)]
enum Milestone {
    Injected,
    Downloaded,
    Assigned,
    Activated,
    Checked,
    Controlled,
    Deleted,
}

const MILESTONE_NAMES: [&str; 7] = [
    "injectedAt",
    "downloadedAt",
    "assignedAt",
    "activatedAt",
    "checkedAt",
    "controlledAt",
    "deletedAt",
];

/// Share of e-mail fields sent in the sloppy form, in per mille.
const SLOPPY_EMAIL_PER_MILLE: u64 = 30;
/// Share of tickets (with two or more events) that get a stale re-send, in per mille.
const STALE_RESEND_PER_MILLE: u64 = 8;

/// Random streams, one per purpose, so that changing one kind of draw never shifts the others.
const STREAM_POOL: u64 = 1;
pub(crate) const STREAM_TICKET: u64 = 2;

/// The organizer's fixed data: its audience and the seed the tickets derive from.
pub(crate) struct Organizer {
    pub(crate) seed: u64,
    /// Buyers first (`..buyers`), then people who only ever receive transfers.
    pub(crate) spectators: Vec<Spectator>,
    pub(crate) buyers: usize,
    /// Mixed into every ticket id, so that seeds differ in their ids.
    pub(crate) ticket_id_salt: u64,
    /// Added to every tax number's permuted index, so that seeds differ in their numbers.
    pub(crate) tax_number_shift: u64,
    /// The V4-statuses story ends in [`UNKNOWN_STATUS`] instead.
    pub(crate) unknown_statuses: bool,
}

/// Who the ticket's current owner (`spectatorDetails`) is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Owner {
    Spectator(usize),
    /// `spectatorDetails` without `email`.
    WithoutEmail(usize),
    /// No `spectatorDetails` at all.
    Unknown,
}

/// The `holder` field: absent until a first assignment, then an assignee or an explicit `null`.
#[derive(Clone, Copy)]
enum Holder {
    NeverAssigned,
    Assignee(usize),
    Cleared,
}

/// One state of one ticket, serialized.
pub(crate) struct Snapshot {
    pub(crate) at: Millis,
    /// Where its JSON lies in the feed's text.
    pub(crate) span: Range<usize>,
}

pub(crate) struct TimelineEntry {
    /// Where the event sits in the feed (its `lastUpdated`, except for a stale re-send).
    pub(crate) at: Millis,
    pub(crate) ticket: usize,
    pub(crate) sequence: usize,
    pub(crate) span: Range<usize>,
}

impl Organizer {
    pub(crate) fn new(seed: u64, tickets: usize) -> Organizer {
        let buyers = (tickets / 3).max(8);
        let recipients_only = (tickets / 10).max(4);
        let mut rng = Rng::stream(seed, STREAM_POOL, 0);
        let spectators = (0..buyers + recipients_only)
            .map(|number| Spectator::generate(&mut rng, number))
            .collect();
        Organizer {
            seed,
            spectators,
            buyers,
            ticket_id_salt: rng.next_u64(),
            tax_number_shift: rng.below(100_000_000),
            unknown_statuses: false,
        }
    }

    /// Writes the ticket's events to `text`, in its own time order, stale re-send included.
    pub(crate) fn write_ticket(&self, index: usize, text: &mut String) -> Vec<Snapshot> {
        let mut rng = Rng::stream(self.seed, STREAM_TICKET, index as u64);
        // The first tickets take every story once, so that even a tiny feed holds them all.
        let story = match STORY_MIX.get(index) {
            Some(&(story, _)) => story,
            None => rng.weighted(&STORY_MIX),
        };
        let story = match story {
            Story::V4Statuses if self.unknown_statuses => Story::UnknownStatus,
            story => story,
        };
        let buyer = rng.index(self.buyers);
        let mut ticket = TicketWriter {
            organizer: self,
            text,
            ticket_id: self.ticket_id(index),
            tax_number: self.tax_number(index),
            barcode: format!("{:018}", rng.below(1_000_000_000_000_000_000)),
            event_id: EVENT_IDS[rng.index(EVENT_IDS.len())],
            clock: SEASON_START + rng.between(0, SEASON_LENGTH),
            rng,
            status: "",
            owner: Owner::Spectator(buyer),
            initial_owner: Some(buyer),
            previous_owner: None,
            holder: Holder::NeverAssigned,
            recipient: None,
            deletion_reason: None,
            milestones: Default::default(),
            snapshots: Vec::with_capacity(6),
        };
        ticket.live(story);
        ticket.maybe_resend_stale_state();
        ticket.snapshots
    }

    /// A bijection of the index: ticket ids are unique.
    pub(crate) fn ticket_id(&self, index: usize) -> String {
        format!("TX-{:016X}", mix64(self.ticket_id_salt ^ index as u64))
    }

    /// 48 271 is prime to 10^8, so index ↦ index·48 271 mod 10^8 is a permutation: tax numbers
    /// are unique below 10^8 tickets.
    pub(crate) fn tax_number(&self, index: usize) -> String {
        format!(
            "2026{:08}",
            (index as u64 * 48_271 + self.tax_number_shift) % 100_000_000
        )
    }

    /// The address as this event carries it: usually canonical, sometimes sloppy.
    fn email_as_sent(&self, spectator: usize, rng: &mut Rng) -> String {
        let email = &self.spectators[spectator].email;
        if rng.per_mille(SLOPPY_EMAIL_PER_MILLE) {
            sloppy_email(email)
        } else {
            email.clone()
        }
    }
}

/// A ticket being lived through its story: its current state and the events emitted so far.
struct TicketWriter<'a> {
    organizer: &'a Organizer,
    /// The feed's text, which the events are appended to.
    text: &'a mut String,
    rng: Rng,
    ticket_id: String,
    tax_number: String,
    barcode: String,
    event_id: &'static str,
    status: &'static str,
    owner: Owner,
    initial_owner: Option<usize>,
    previous_owner: Option<usize>,
    holder: Holder,
    /// The recipient of the latest transfer offer, sent while the status says so.
    recipient: Option<usize>,
    /// V4's `deletionReason`, sent with the deletion statuses.
    deletion_reason: Option<&'static str>,
    /// Each milestone's timestamp, as written in the `lastUpdated` of the event that reached it.
    milestones: [Option<String>; MILESTONE_NAMES.len()],
    clock: Millis,
    snapshots: Vec<Snapshot>,
}

impl TicketWriter<'_> {
    fn live(&mut self, story: Story) {
        match story {
            Story::Delivered => {
                self.inject();
                if self.rng.percent(90) {
                    self.download();
                    if self.rng.percent(60) {
                        self.activate();
                        if self.rng.percent(50) {
                            self.control();
                        }
                    }
                }
            }
            Story::Assigned => {
                self.deliver();
                self.assign();
                match self.rng.below(100) {
                    0..25 => self.assign(),
                    25..45 => self.unassign(),
                    _ => {}
                }
                if self.rng.percent(50) {
                    self.activate();
                }
            }
            Story::TransferredV3 => {
                self.deliver();
                self.offer_transfer();
                self.accept_transfer("TRANSFERRED");
                if self.rng.percent(40) {
                    self.activate();
                }
            }
            Story::TransferFailed => {
                self.deliver();
                self.offer_transfer();
                if self.rng.percent(60) {
                    self.wait(MINUTE, 59 * MINUTE);
                    self.emit("FAILURE_TRANSFER", &[]);
                } else {
                    // The organizer's time-out: TIXNGO gives the recipient one hour.
                    self.wait(HOUR, HOUR + 5 * MINUTE);
                    self.emit("FAILURE", &[]);
                }
                if self.rng.percent(30) {
                    self.activate();
                }
            }
            Story::TransferredV4 => {
                self.deliver();
                self.offer_transfer();
                self.accept_transfer("DOWNLOADED");
            }
            Story::TransferAbandoned => {
                self.deliver();
                self.offer_transfer();
                self.wait(MINUTE, 59 * MINUTE);
                self.emit("DOWNLOADED", &[]);
            }
            Story::TransferChain => {
                self.deliver();
                for _hop in 0..2 {
                    if self.rng.percent(30) {
                        // Both changes fell between two polls: no PENDING_TRANSFER in the feed.
                        self.recipient = Some(self.pick_recipient());
                    } else {
                        self.offer_transfer();
                    }
                    self.accept_transfer("TRANSFERRED");
                }
            }
            Story::Deleted => {
                self.deliver();
                if self.rng.percent(30) {
                    self.activate();
                }
                self.later();
                self.emit("DELETION_PENDING", &[]);
                if self.rng.percent(80) {
                    self.later();
                    self.emit("DELETED", &[Milestone::Deleted]);
                }
            }
            Story::NoOwnerEmail => {
                if let Owner::Spectator(buyer) = self.owner {
                    self.owner = if self.rng.percent(50) {
                        Owner::Unknown
                    } else {
                        Owner::WithoutEmail(buyer)
                    };
                }
                self.initial_owner = None;
                self.deliver();
                if self.rng.percent(30) {
                    self.assign();
                }
            }
            Story::V4Statuses => {
                self.emit("NOT_DOWNLOADED", &[Milestone::Injected]);
                self.download();
                self.later();
                if self.rng.percent(50) {
                    // Put on resale: V4 deletes it and says why (`deletionReason`, docs/reference.md §4.1).
                    self.deletion_reason = Some("RESALE_PENDING");
                    self.emit("DELETED", &[Milestone::Deleted]);
                } else {
                    self.emit("NOT_DOWNLOADED", &[]);
                }
            }
            Story::Reinjected => {
                self.deliver();
                self.later();
                self.emit("DELETION_PENDING", &[]);
                self.later();
                self.deletion_reason = self.rng.percent(50).then_some("RESOLD");
                self.emit("DELETED", &[Milestone::Deleted]);
                // Printed again in S-360 and injected anew: no longer deleted nor downloaded.
                self.later();
                self.deletion_reason = None;
                self.clear(&[Milestone::Deleted, Milestone::Downloaded]);
                self.emit("INJECTED", &[]);
                self.download();
            }
            Story::Deactivated => {
                self.deliver();
                self.activate();
                self.later();
                self.clear(&[Milestone::Activated]);
                self.emit("DEACTIVATED", &[]);
                if self.rng.percent(50) {
                    self.activate();
                    self.control();
                    // Checked out: no longer "controlled since the latest check-out".
                    self.wait(MINUTE, 3 * HOUR);
                    self.clear(&[Milestone::Controlled]);
                    let status = *self.rng.pick(&ACTIVATIONS);
                    self.emit(status, &[]);
                }
            }
            Story::LegacyPending => {
                self.deliver();
                self.recipient = Some(self.pick_recipient());
                self.later();
                self.emit("PENDING", &[]);
                self.accept_transfer("TRANSFERRED");
            }
            Story::DeletedWhilePending => {
                self.deliver();
                self.offer_transfer();
                self.later();
                self.emit("DELETION_PENDING", &[]);
                self.later();
                self.emit("DELETED", &[Milestone::Deleted]);
            }
            Story::AssignedV4 => {
                self.deliver();
                // V4 has no ASSIGNED status: the holder appears on a downloaded ticket.
                self.holder = Holder::Assignee(self.organizer_index());
                self.later();
                self.emit("DOWNLOADED", &[Milestone::Assigned]);
            }
            Story::SloppyStatuses => {
                self.emit(" injected", &[Milestone::Injected]);
                self.later();
                self.emit("Downloaded ", &[Milestone::Downloaded]);
                self.later();
                self.emit("online_activated", &[Milestone::Activated]);
            }
            Story::UnknownStatus => {
                self.deliver();
                self.later();
                self.emit(UNKNOWN_STATUS, &[]);
            }
        }
    }

    /// Milestones that no longer hold: sent as `null` from now on.
    fn clear(&mut self, milestones: &[Milestone]) {
        for &milestone in milestones {
            self.milestones[milestone as usize] = None;
        }
    }

    fn inject(&mut self) {
        self.emit("INJECTED", &[Milestone::Injected]);
    }

    fn download(&mut self) {
        self.later();
        self.emit("DOWNLOADED", &[Milestone::Downloaded]);
    }

    fn deliver(&mut self) {
        self.inject();
        self.download();
    }

    fn assign(&mut self) {
        self.holder = Holder::Assignee(self.organizer_index());
        self.later();
        self.emit("ASSIGNED", &[Milestone::Assigned]);
    }

    fn unassign(&mut self) {
        self.holder = Holder::Cleared;
        self.later();
        self.emit("DOWNLOADED", &[]);
    }

    fn activate(&mut self) {
        let status = *self.rng.pick(&ACTIVATIONS);
        self.later();
        self.emit(status, &[Milestone::Activated]);
    }

    fn control(&mut self) {
        self.wait(MINUTE, 3 * HOUR);
        self.emit("CONTROLLED", &[Milestone::Checked, Milestone::Controlled]);
    }

    fn offer_transfer(&mut self) {
        self.recipient = Some(self.pick_recipient());
        self.later();
        self.emit("PENDING_TRANSFER", &[]);
    }

    /// The recipient accepts within the hour: they become the owner, the sender the previous one.
    fn accept_transfer(&mut self, status: &'static str) {
        if let (Owner::Spectator(sender), Some(recipient)) = (self.owner, self.recipient.take()) {
            self.previous_owner = Some(sender);
            self.owner = Owner::Spectator(recipient);
        }
        self.wait(MINUTE, 59 * MINUTE);
        self.emit(status, &[]);
    }

    /// Anyone but the current owner; buyers included, so recipients are often existing owners.
    fn pick_recipient(&mut self) -> usize {
        loop {
            let candidate = self.organizer_index();
            if self.owner != Owner::Spectator(candidate) {
                return candidate;
            }
        }
    }

    fn organizer_index(&mut self) -> usize {
        self.rng.index(self.organizer.spectators.len())
    }

    /// The usual pause between two changes of a ticket: ten minutes to five days.
    fn later(&mut self) {
        self.wait(10 * MINUTE, 5 * DAY);
    }

    /// At least a minute, so `lastUpdated` stays strictly increasing even when written without
    /// milliseconds.
    fn wait(&mut self, shortest: Millis, longest: Millis) {
        self.clock += self.rng.between(shortest.max(MINUTE), longest.max(MINUTE));
    }

    /// Records the ticket's current state under `status`, reaching `milestones` now.
    fn emit(&mut self, status: &'static str, milestones: &[Milestone]) {
        self.status = status;
        let zone = self.rng.weighted(&ZONE_MIX);
        let with_millis = self.rng.percent(35);
        if !with_millis {
            // What the text says is the instant: keep the sort order faithful to it.
            self.clock -= self.clock.rem_euclid(SECOND);
        }
        let last_updated = format_rfc3339(self.clock, zone, with_millis);
        for &milestone in milestones {
            self.milestones[milestone as usize].get_or_insert_with(|| last_updated.clone());
        }
        let span = self.write_state(&last_updated);
        self.snapshots.push(Snapshot {
            at: self.clock,
            span,
        });
    }

    /// Appends the ticket's current state to the feed's text; returns where it lies.
    fn write_state(&mut self, last_updated: &str) -> Range<usize> {
        let organizer = self.organizer;
        let people = &organizer.spectators;
        // Draw every e-mail's spelling first: the writing below only reads the state.
        let mut spelled = |person: Option<usize>| {
            person.map(|person| (person, organizer.email_as_sent(person, &mut self.rng)))
        };
        let owner = spelled(match self.owner {
            Owner::Spectator(owner) => Some(owner),
            Owner::WithoutEmail(_) | Owner::Unknown => None,
        });
        let initial_owner = spelled(self.initial_owner);
        let previous_owner = spelled(self.previous_owner);
        let recipient = spelled(
            self.recipient
                .filter(|_| STATUSES_WITH_RECIPIENT.contains(&self.status)),
        );
        let start = self.text.len();
        JsonObject::write(self.text, |ticket| {
            ticket
                .string("ticketId", &self.ticket_id)
                .string("taxNumber", &self.tax_number)
                .string("barcode", &self.barcode)
                .string("eventId", self.event_id)
                .string("status", self.status)
                .string("lastUpdated", last_updated);
            match (self.owner, &owner) {
                (Owner::Spectator(person), Some((_, email))) => {
                    ticket.object("spectatorDetails", |details| {
                        people[person].write_details(details, Some(email));
                    });
                }
                (Owner::WithoutEmail(person), _) => {
                    ticket.object("spectatorDetails", |details| {
                        people[person].write_details(details, None);
                    });
                }
                _ => {}
            }
            match self.holder {
                Holder::NeverAssigned => {}
                Holder::Assignee(person) => {
                    ticket.object("holder", |holder| people[person].write_as_holder(holder));
                }
                Holder::Cleared => {
                    ticket.null("holder");
                }
            }
            for (field, reference) in [
                ("previousOwner", &previous_owner),
                ("initialOwner", &initial_owner),
            ] {
                if let Some((person, email)) = reference {
                    ticket.object(field, |owner| {
                        people[*person].write_as_owner_reference(owner, email);
                    });
                }
            }
            if let Some((_, email)) = &recipient {
                ticket.object("transfer", |transfer| {
                    transfer.string("recipientEmail", email);
                });
            }
            if let Some(reason) = self.deletion_reason {
                ticket.string("deletionReason", reason);
            }
            ticket.object("attributes", |attributes| {
                for (name, at) in MILESTONE_NAMES.iter().zip(&self.milestones) {
                    match at {
                        Some(at) => attributes.string(name, at),
                        None => attributes.null(name),
                    };
                }
            });
        });
        start..self.text.len()
    }

    /// Rarely, TIXNGO sends an older state again after the latest one, with its original
    /// `lastUpdated`: the product must count it as stale and keep the newer state.
    fn maybe_resend_stale_state(&mut self) {
        let count = self.snapshots.len();
        if count < 2 || !self.rng.per_mille(STALE_RESEND_PER_MILLE) {
            return;
        }
        let older = self.rng.index(count - 1);
        let span = self.snapshots[older].span.clone();
        let at = self.snapshots[count - 1].at + self.rng.between(MINUTE, 3 * DAY);
        self.snapshots.push(Snapshot { at, span });
    }
}
