//! S-360 4.2 "Cultural Contact Creation & Distribution" (SPEC §4.5): how a ticket's ownership in
//! TIXNGO moves its cultural contact and writes its distribution history.
//!
//! [`plan`] reads what it needs through a [`ContactBook`] (the store inside the batch transaction,
//! or a fake in the tests) and returns a [`ContactPlan`]; it writes nothing itself.

use crate::error::Error;
use crate::feedback::{Spectator, Ticket};

use super::{TicketRecord, email_key};

/// The status that starts a transfer.
pub const PENDING_TRANSFER: &str = "PENDING_TRANSFER";
/// The V3 status of a completed transfer.
pub const TRANSFERRED: &str = "TRANSFERRED";
/// Statuses of a transfer that failed, was rejected, cancelled or timed out.
pub(crate) const FAILED_TRANSFER: [&str; 2] = ["FAILURE", "FAILURE_TRANSFER"];

/// A contact found by e-mail, as far as the rules need it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FoundContact {
    pub id: i64,
    /// A "Pending CREATION" contact, of whom only the e-mail is known; the only kind ever modified.
    pub temporary: bool,
}

/// A `PENDING` distribution line of the ticket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingLine {
    pub id: i64,
    pub new_contact_id: i64,
}

/// What the rules may ask of the store.
pub trait ContactBook {
    /// The preferred contact for an e-mail key (see [`email_key`]): internet account first, then
    /// `individual` over `relay`, then a real contact over a temporary one, then the lowest id.
    fn contact_by_email(&mut self, email_key: &str) -> Result<Option<FoundContact>, Error>;
    /// The ticket's distribution lines in status `PENDING`, oldest first.
    fn pending_lines(&mut self, ticket_number: &str) -> Result<Vec<PendingLine>, Error>;
}

/// What carrying out a plan asks of the store.
pub trait ContactWriter {
    /// Creates a full contact from `spectatorDetails` (internet account, individual): its id.
    fn create_owner_contact(&mut self, owner: &Spectator) -> Result<i64, Error>;
    /// Turns a temporary contact into a full one, in place, with `spectatorDetails`; a contact
    /// that is not temporary is left as it is.
    fn upgrade_contact(&mut self, id: i64, owner: &Spectator) -> Result<(), Error>;
    /// Creates the temporary "Pending CREATION" contact of a transfer's recipient: its id.
    fn create_temporary_contact(&mut self, email: &str) -> Result<i64, Error>;
    /// Changes the status of a distribution line.
    fn set_line_status(&mut self, id: i64, status: LineStatus) -> Result<(), Error>;
    /// Adds a distribution line.
    fn insert_line(&mut self, line: &LineToAdd<'_>) -> Result<(), Error>;
}

/// A distribution line to add: the ticket, the contacts it goes from and to, its status, and
/// what is written beside them.
#[derive(Clone, Copy, Debug)]
pub struct LineToAdd<'a> {
    pub ticket_number: &'a str,
    pub old_contact_id: Option<i64>,
    pub new_contact_id: i64,
    pub status: LineStatus,
    pub written: &'a LineWritten<'a>,
}

/// What S-360's distribution history says of a line beside the contacts: who wrote it (the job's
/// technical login), the ticket's S-360 state then, and when TIXNGO made the change.
#[derive(Clone, Copy, Debug)]
pub struct LineWritten<'a> {
    pub operator_login: &'a str,
    pub ticket_state: Option<&'a str>,
    pub date_time: &'a str,
}

/// A contact named by a plan: one that exists, or one the plan creates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContactRef {
    Existing(i64),
    /// The full contact created from `spectatorDetails` ([`ContactPlan::create_owner`]).
    NewOwner,
    /// The temporary contact created for a transfer's recipient ([`ContactPlan::create_recipient`]).
    NewRecipient,
}

/// The status of a distribution line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineStatus {
    Pending,
    Cancelled,
    Confirmed,
}

impl LineStatus {
    /// The value of `distribution.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            LineStatus::Pending => "PENDING",
            LineStatus::Cancelled => "CANCELLED",
            LineStatus::Confirmed => "CONFIRMED",
        }
    }
}

/// A distribution line to add.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewLine {
    pub(crate) old_contact: Option<ContactRef>,
    pub new_contact: ContactRef,
    pub status: LineStatus,
}

/// The changes the contact rules make for one ticket, in the order the store applies them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContactPlan {
    /// Create a full contact from `spectatorDetails` (internet account, individual).
    pub create_owner: bool,
    /// Upgrade this temporary contact in place with `spectatorDetails`.
    pub upgrade: Option<i64>,
    /// Create a temporary "Pending CREATION" contact with this e-mail (trimmed).
    pub create_recipient: Option<String>,
    /// The ticket's new cultural contact, when it changes.
    pub cultural_contact: Option<ContactRef>,
    /// Existing lines whose status changes.
    pub line_updates: Vec<(i64, LineStatus)>,
    pub new_line: Option<NewLine>,
    /// Why a rule could not apply, for the log (never holds personal data).
    pub warning: Option<&'static str>,
}

/// Applies the seed rule, then the first matching transfer rule, to `ticket` against the row as
/// it was before this ticket (`None` for a first-seen ticket).
pub fn plan(
    stored: Option<&TicketRecord>,
    ticket: &Ticket,
    book: &mut (impl ContactBook + ?Sized),
) -> Result<ContactPlan, Error> {
    let mut rules = Rules {
        plan: ContactPlan::default(),
        ticket,
        has_lines: stored.is_some(),
        // Compared in normal form: a store written before statuses were normalised may hold
        // another case.
        already_failed: stored.is_some_and(|s| {
            FAILED_TRANSFER.contains(&super::status::normalise(&s.mobile_status).as_str())
        }),
        owner_key: email_key(ticket.owner.as_ref().and_then(|o| o.email.as_deref())),
        owner_contact: None,
        cultural: stored
            .and_then(|s| s.cultural_contact_id)
            .map(ContactRef::Existing),
        book,
    };
    let status = ticket.status.as_str();
    // Without an owner e-mail there is no one to seed yet: a ticket injected and not yet
    // downloaded has no owner, which is the normal state, not a warning.
    if rules.cultural.is_none() && rules.owner_key.is_some() {
        let owner = rules.owner_contact()?;
        rules.set_cultural(owner);
        if stored.is_none() && status == TRANSFERRED {
            // Its sender was never seen: there is no distribution to record.
            return Ok(rules.plan);
        }
    }
    let stored_owner_key = email_key(stored.and_then(|s| s.owner_email.as_deref()));
    let owner_changed =
        matches!((&stored_owner_key, &rules.owner_key), (Some(old), Some(new)) if old != new);
    if status == PENDING_TRANSFER {
        rules.pending()?;
    } else if FAILED_TRANSFER.contains(&status) {
        rules.failed()?;
    } else if status == TRANSFERRED || owner_changed {
        rules.completed()?;
    } else if super::status::is_documented(status) {
        rules.settled()?;
    }
    // A status TIXNGO does not document says nothing of a transfer: only an owner change moves
    // the contact.
    Ok(rules.plan)
}

/// The state of one evaluation: the plan so far and what has been looked up.
struct Rules<'a, B: ?Sized> {
    plan: ContactPlan,
    ticket: &'a Ticket,
    /// Whether the ticket can have lines at all (a first-seen ticket has none).
    has_lines: bool,
    /// The stored status already is a failed transfer: this one is the same failure again.
    already_failed: bool,
    owner_key: Option<String>,
    /// The owner's contact once looked up (found, upgraded or created).
    owner_contact: Option<ContactRef>,
    /// The cultural contact, as the plan leaves it so far.
    cultural: Option<ContactRef>,
    book: &'a mut B,
}

impl<B: ContactBook + ?Sized> Rules<'_, B> {
    /// The owner's contact: found (upgraded if temporary) or created. Call only with an owner key.
    fn owner_contact(&mut self) -> Result<ContactRef, Error> {
        if let Some(found) = self.owner_contact {
            return Ok(found);
        }
        let key = self.owner_key.as_deref().unwrap_or_default();
        let contact = match self.book.contact_by_email(key)? {
            Some(found) => {
                if found.temporary {
                    self.plan.upgrade = Some(found.id);
                }
                ContactRef::Existing(found.id)
            }
            None => {
                self.plan.create_owner = true;
                ContactRef::NewOwner
            }
        };
        self.owner_contact = Some(contact);
        Ok(contact)
    }

    fn set_cultural(&mut self, contact: ContactRef) {
        self.cultural = Some(contact);
        self.plan.cultural_contact = Some(contact);
    }

    fn pending_lines(&mut self) -> Result<Vec<PendingLine>, Error> {
        if self.has_lines {
            self.book.pending_lines(&self.ticket.ticket_number)
        } else {
            Ok(Vec::new())
        }
    }

    fn set_status(&mut self, lines: impl IntoIterator<Item = PendingLine>, status: LineStatus) {
        self.plan
            .line_updates
            .extend(lines.into_iter().map(|line| (line.id, status)));
    }

    /// `PENDING_TRANSFER`: a `PENDING` line to the recipient, other pending lines cancelled.
    fn pending(&mut self) -> Result<(), Error> {
        let Some(recipient_key) = email_key(self.ticket.transfer_recipient_email.as_deref()) else {
            self.plan.warning =
                Some("PENDING_TRANSFER without transfer.recipientEmail: no distribution");
            return Ok(());
        };
        let recipient = match self.book.contact_by_email(&recipient_key)? {
            Some(found) => ContactRef::Existing(found.id),
            None if self.owner_key.as_deref() == Some(&recipient_key) => self.owner_contact()?,
            None => {
                let email = self
                    .ticket
                    .transfer_recipient_email
                    .as_deref()
                    .unwrap_or_default();
                self.plan.create_recipient = Some(super::trim_email(email).to_owned());
                ContactRef::NewRecipient
            }
        };
        let (to_recipient, others): (Vec<_>, Vec<_>) = self
            .pending_lines()?
            .into_iter()
            .partition(|line| ContactRef::Existing(line.new_contact_id) == recipient);
        self.set_status(others, LineStatus::Cancelled);
        if to_recipient.is_empty() {
            self.plan.new_line = Some(NewLine {
                old_contact: self.cultural,
                new_contact: recipient,
                status: LineStatus::Pending,
            });
        }
        Ok(())
    }

    /// `FAILURE` / `FAILURE_TRANSFER`: the pending line to the recipient (or every pending line
    /// when the recipient is not given) is cancelled. When there is none, the pending state was
    /// missed between two polls: a recipient who has a contact gets a `CANCELLED` line, once.
    /// No contact is ever created.
    fn failed(&mut self) -> Result<(), Error> {
        let lines = self.pending_lines()?;
        let Some(key) = email_key(self.ticket.transfer_recipient_email.as_deref()) else {
            self.set_status(lines, LineStatus::Cancelled);
            return Ok(());
        };
        let Some(recipient) = self.book.contact_by_email(&key)? else {
            return Ok(());
        };
        let cancelled: Vec<PendingLine> = lines
            .into_iter()
            .filter(|line| line.new_contact_id == recipient.id)
            .collect();
        if cancelled.is_empty() && !self.already_failed {
            self.plan.new_line = Some(NewLine {
                old_contact: self.cultural,
                new_contact: ContactRef::Existing(recipient.id),
                status: LineStatus::Cancelled,
            });
        }
        self.set_status(cancelled, LineStatus::Cancelled);
        Ok(())
    }

    /// `TRANSFERRED`, or a new owner: the cultural contact follows the owner; the pending line to
    /// the owner is confirmed (or a confirmed line added) and the others cancelled.
    fn completed(&mut self) -> Result<(), Error> {
        if self.owner_key.is_none() {
            self.plan.warning =
                Some("completed transfer without an owner e-mail: cultural contact unchanged");
            return Ok(());
        }
        let owner = self.owner_contact()?;
        if self.cultural == Some(owner) {
            // The ticket is back with (or never left) its cultural contact: a transfer still
            // pending ended without completing. SPEC §4.5 says "nothing" here, which would leave
            // such a line PENDING for ever (PENDING_TRANSFER to B, then TRANSFERRED to A again
            // between two polls); it is cancelled, as the settled rule does.
            return self.settled();
        }
        let (to_owner, others): (Vec<_>, Vec<_>) = self
            .pending_lines()?
            .into_iter()
            .partition(|line| ContactRef::Existing(line.new_contact_id) == owner);
        let mut to_owner = to_owner.into_iter();
        match to_owner.next() {
            Some(line) => self.set_status([line], LineStatus::Confirmed),
            None => {
                self.plan.new_line = Some(NewLine {
                    old_contact: self.cultural,
                    new_contact: owner,
                    status: LineStatus::Confirmed,
                });
            }
        }
        // A duplicate pending line to the same owner would otherwise stay pending forever.
        self.set_status(to_owner.chain(others), LineStatus::Cancelled);
        self.set_cultural(owner);
        Ok(())
    }

    /// Any other status with the same owner: a transfer that ended without completing.
    fn settled(&mut self) -> Result<(), Error> {
        let lines = self.pending_lines()?;
        self.set_status(lines, LineStatus::Cancelled);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feedback::Spectator;
    use std::collections::HashMap;

    /// An in-memory book: contacts by e-mail key and pending lines by ticket.
    #[derive(Default)]
    struct Book {
        contacts: HashMap<String, FoundContact>,
        lines: Vec<PendingLine>,
        lookups: usize,
    }

    impl Book {
        fn with_contact(mut self, email: &str, id: i64, temporary: bool) -> Book {
            self.contacts
                .insert(email.to_owned(), FoundContact { id, temporary });
            self
        }
        fn with_line(mut self, id: i64, new_contact_id: i64) -> Book {
            self.lines.push(PendingLine { id, new_contact_id });
            self
        }
    }

    impl ContactBook for Book {
        fn contact_by_email(&mut self, key: &str) -> Result<Option<FoundContact>, Error> {
            self.lookups += 1;
            Ok(self.contacts.get(key).copied())
        }
        fn pending_lines(&mut self, ticket_number: &str) -> Result<Vec<PendingLine>, Error> {
            assert_eq!(ticket_number, "T1");
            Ok(self.lines.clone())
        }
    }

    fn ticket(status: &str, owner: Option<&str>, recipient: Option<&str>) -> Ticket {
        Ticket {
            ticket_number: "T1".into(),
            status: status.into(),
            owner: owner.map(|email| Spectator {
                email: Some(email.into()),
                ..Spectator::default()
            }),
            transfer_recipient_email: recipient.map(Into::into),
            ..Ticket::default()
        }
    }

    fn stored(owner: Option<&str>, cultural: Option<i64>) -> TicketRecord {
        TicketRecord {
            ticket_number: "T1".into(),
            owner_email: owner.map(Into::into),
            cultural_contact_id: cultural,
            ..TicketRecord::default()
        }
    }

    fn run(stored: Option<&TicketRecord>, ticket: &Ticket, book: &mut Book) -> ContactPlan {
        plan(stored, ticket, book).unwrap()
    }

    /// The plan for a ticket stored with owner a@x.org and cultural contact 1.
    fn run_owned_by_a(ticket: &Ticket, book: &mut Book) -> ContactPlan {
        run(Some(&stored(Some("a@x.org"), Some(1))), ticket, book)
    }

    use ContactRef::{Existing, NewOwner, NewRecipient};
    use LineStatus::{Cancelled, Confirmed, Pending};

    #[test]
    fn seed_creates_the_owner_contact_for_a_first_seen_ticket() {
        let p = run(
            None,
            &ticket("DOWNLOADED", Some("a@x.org"), None),
            &mut Book::default(),
        );
        assert!(p.create_owner);
        assert_eq!(p.cultural_contact, Some(NewOwner));
        assert_eq!(p.new_line, None);
        assert!(p.line_updates.is_empty());
    }

    #[test]
    fn seed_reuses_a_real_contact_without_modifying_it() {
        let mut book = Book::default().with_contact("a@x.org", 7, false);
        let p = run(
            None,
            &ticket("INJECTED", Some("  A@X.org "), None),
            &mut book,
        );
        assert_eq!(
            (p.create_owner, p.upgrade, p.cultural_contact),
            (false, None, Some(Existing(7)))
        );
    }

    #[test]
    fn seed_upgrades_a_temporary_contact_in_place() {
        let mut book = Book::default().with_contact("a@x.org", 7, true);
        let p = run(
            None,
            &ticket("DOWNLOADED", Some("a@x.org"), None),
            &mut book,
        );
        assert_eq!(
            (p.create_owner, p.upgrade, p.cultural_contact),
            (false, Some(7), Some(Existing(7)))
        );
    }

    #[test]
    fn a_first_seen_transferred_ticket_stops_after_the_seed() {
        let p = run(
            None,
            &ticket(TRANSFERRED, Some("b@x.org"), None),
            &mut Book::default(),
        );
        assert_eq!(p.cultural_contact, Some(NewOwner));
        assert_eq!(p.new_line, None);
    }

    #[test]
    fn seed_also_applies_to_a_stored_ticket_without_cultural_contact() {
        let mut book = Book::default().with_contact("a@x.org", 3, false);
        let p = run(
            Some(&stored(None, None)),
            &ticket("DOWNLOADED", Some("a@x.org"), None),
            &mut book,
        );
        assert_eq!(p.cultural_contact, Some(Existing(3)));
    }

    #[test]
    fn pending_creates_a_temporary_recipient_and_a_pending_line() {
        let mut book = Book::default();
        let p = run_owned_by_a(
            &ticket(PENDING_TRANSFER, Some("a@x.org"), Some(" B@x.org ")),
            &mut book,
        );
        assert_eq!(p.create_recipient.as_deref(), Some("B@x.org"));
        assert_eq!(
            p.cultural_contact, None,
            "the cultural contact does not change"
        );
        assert_eq!(
            p.new_line,
            Some(NewLine {
                old_contact: Some(Existing(1)),
                new_contact: NewRecipient,
                status: Pending
            })
        );
    }

    #[test]
    fn pending_reuses_the_recipient_contact_and_cancels_lines_to_others() {
        let mut book = Book::default()
            .with_contact("b@x.org", 2, false)
            .with_line(10, 9)
            .with_line(11, 2);
        let p = run_owned_by_a(
            &ticket(PENDING_TRANSFER, Some("a@x.org"), Some("b@x.org")),
            &mut book,
        );
        assert_eq!(p.create_recipient, None);
        assert_eq!(p.line_updates, [(10, Cancelled)]);
        assert_eq!(p.new_line, None, "the pending line to B exists already");
    }

    #[test]
    fn pending_without_recipient_does_nothing_but_warn() {
        let mut book = Book::default().with_line(10, 9);
        let p = run_owned_by_a(&ticket(PENDING_TRANSFER, Some("a@x.org"), None), &mut book);
        assert!(p.warning.is_some());
        assert_eq!((p.new_line, p.line_updates.len()), (None, 0));
    }

    #[test]
    fn a_first_seen_pending_transfer_seeds_then_records_the_line_from_the_new_owner_contact() {
        let p = run(
            None,
            &ticket(PENDING_TRANSFER, Some("a@x.org"), Some("b@x.org")),
            &mut Book::default(),
        );
        assert!(p.create_owner);
        assert_eq!(
            p.new_line,
            Some(NewLine {
                old_contact: Some(NewOwner),
                new_contact: NewRecipient,
                status: Pending
            })
        );
    }

    #[test]
    fn failed_cancels_only_the_line_to_the_recipient() {
        for status in FAILED_TRANSFER {
            let mut book = Book::default()
                .with_contact("b@x.org", 2, true)
                .with_line(10, 9)
                .with_line(11, 2);
            let p = run_owned_by_a(&ticket(status, Some("a@x.org"), Some("b@x.org")), &mut book);
            assert_eq!(p.line_updates, [(11, Cancelled)], "{status}");
            assert_eq!(
                (p.create_recipient, p.new_line, p.cultural_contact),
                (None, None, None)
            );
        }
    }

    #[test]
    fn failed_without_recipient_cancels_every_pending_line_and_creates_nothing() {
        let mut book = Book::default().with_line(10, 9).with_line(11, 2);
        let p = run_owned_by_a(&ticket("FAILURE", Some("a@x.org"), None), &mut book);
        assert_eq!(p.line_updates, [(10, Cancelled), (11, Cancelled)]);
        let mut book = Book::default().with_line(10, 9);
        let p = run_owned_by_a(
            &ticket("FAILURE", Some("a@x.org"), Some("zz@x.org")),
            &mut book,
        );
        assert!(
            p.line_updates.is_empty(),
            "an unknown recipient has no line"
        );
        assert_eq!(p.create_recipient, None);
    }

    #[test]
    fn completed_confirms_the_pending_line_and_moves_the_cultural_contact() {
        let mut book = Book::default()
            .with_contact("b@x.org", 2, true)
            .with_line(10, 9)
            .with_line(11, 2);
        let p = run_owned_by_a(&ticket(TRANSFERRED, Some("b@x.org"), None), &mut book);
        assert_eq!(
            p.upgrade,
            Some(2),
            "the temporary recipient becomes a full contact"
        );
        assert_eq!(p.cultural_contact, Some(Existing(2)));
        assert_eq!(p.line_updates, [(11, Confirmed), (10, Cancelled)]);
        assert_eq!(p.new_line, None);
    }

    #[test]
    fn completed_without_earlier_pending_line_adds_a_confirmed_one() {
        let p = run_owned_by_a(
            &ticket(TRANSFERRED, Some("c@x.org"), None),
            &mut Book::default(),
        );
        assert!(p.create_owner);
        assert_eq!(
            p.new_line,
            Some(NewLine {
                old_contact: Some(Existing(1)),
                new_contact: NewOwner,
                status: Confirmed
            })
        );
        assert_eq!(p.cultural_contact, Some(NewOwner));
    }

    #[test]
    fn an_owner_change_without_transferred_completes_the_transfer_v4_style() {
        let mut book = Book::default()
            .with_contact("b@x.org", 2, false)
            .with_line(11, 2);
        let p = run_owned_by_a(&ticket("DOWNLOADED", Some("B@X.ORG"), None), &mut book);
        assert_eq!(p.line_updates, [(11, Confirmed)]);
        assert_eq!(p.cultural_contact, Some(Existing(2)));
    }

    #[test]
    fn an_owner_change_while_pending_is_a_pending_transfer() {
        let mut book = Book::default().with_contact("c@x.org", 3, false);
        let p = run_owned_by_a(
            &ticket(PENDING_TRANSFER, Some("b@x.org"), Some("c@x.org")),
            &mut book,
        );
        assert_eq!(p.cultural_contact, None);
        assert_eq!(p.new_line.map(|l| l.status), Some(Pending));
    }

    #[test]
    fn completed_when_the_owner_is_already_the_cultural_contact_only_cancels_pending_lines() {
        let mut book = Book::default().with_contact("a@x.org", 1, false);
        let p = run_owned_by_a(&ticket(TRANSFERRED, Some("a@x.org"), None), &mut book);
        assert_eq!(p, ContactPlan::default());
        // A -> B pending, then back with A before the next poll: the line must not stay pending.
        let mut book = Book::default()
            .with_contact("a@x.org", 1, false)
            .with_line(11, 2);
        let p = run(
            Some(&stored(Some("b@x.org"), Some(1))),
            &ticket(TRANSFERRED, Some("a@x.org"), None),
            &mut book,
        );
        assert_eq!(p.line_updates, [(11, Cancelled)]);
        assert_eq!((p.cultural_contact, p.new_line), (None, None));
    }

    #[test]
    fn settled_cancels_pending_lines_of_an_abandoned_transfer() {
        let mut book = Book::default()
            .with_contact("a@x.org", 1, false)
            .with_line(11, 2);
        let p = run_owned_by_a(&ticket("DOWNLOADED", Some("a@x.org"), None), &mut book);
        assert_eq!(p.line_updates, [(11, Cancelled)]);
        assert_eq!(p.cultural_contact, None);
    }

    #[test]
    fn a_ticket_without_email_gets_no_seed_and_no_completed_transfer() {
        let p = run(
            None,
            &ticket("DOWNLOADED", None, None),
            &mut Book::default(),
        );
        // Not yet downloaded by anyone: the normal state, nothing to warn about.
        assert_eq!(p.warning, None);
        assert_eq!((p.create_owner, p.cultural_contact), (false, None));
        let mut book = Book::default().with_line(11, 2);
        let p = run_owned_by_a(&ticket(TRANSFERRED, None, None), &mut book);
        assert!(p.warning.is_some());
        assert_eq!(
            (p.cultural_contact, p.new_line, p.line_updates.len()),
            (None, None, 0)
        );
        // The other rules still apply.
        let p = run_owned_by_a(
            &ticket("FAILURE", None, None),
            &mut Book::default().with_line(11, 2),
        );
        assert_eq!(p.line_updates, [(11, Cancelled)]);
    }

    #[test]
    fn a_failure_whose_pending_state_was_missed_records_a_cancelled_line_once() {
        let mut book = Book::default().with_contact("r@x.org", 5, false);
        let before = stored(Some("a@x.org"), Some(1));
        let p = run(
            Some(&before),
            &ticket("FAILURE_TRANSFER", Some("a@x.org"), Some(" R@x.org")),
            &mut book,
        );
        assert_eq!(
            p.new_line,
            Some(NewLine {
                old_contact: Some(Existing(1)),
                new_contact: Existing(5),
                status: Cancelled,
            })
        );
        assert_eq!((p.create_recipient, p.cultural_contact), (None, None));
        // The same failure again (the stored status already is one) adds nothing.
        let failed = TicketRecord {
            mobile_status: "FAILURE".into(),
            ..before.clone()
        };
        let p = run(
            Some(&failed),
            &ticket("FAILURE_TRANSFER", Some("a@x.org"), Some("r@x.org")),
            &mut book,
        );
        assert_eq!(p, ContactPlan::default());
        // A recipient without a contact gets none, and no line.
        let p = run(
            Some(&before),
            &ticket("FAILURE", Some("a@x.org"), Some("new@x.org")),
            &mut book,
        );
        assert_eq!(p, ContactPlan::default());
        // A pending line to the recipient is cancelled instead of a line being added.
        let p = run(
            Some(&before),
            &ticket("FAILURE", Some("a@x.org"), Some("r@x.org")),
            &mut Book::default()
                .with_contact("r@x.org", 5, true)
                .with_line(11, 5),
        );
        assert_eq!((p.new_line, p.line_updates), (None, vec![(11, Cancelled)]));
    }

    #[test]
    fn an_undocumented_status_moves_nothing_but_an_owner_change_still_completes() {
        let mut book = Book::default()
            .with_contact("b@x.org", 2, false)
            .with_line(11, 2);
        let before = stored(Some("a@x.org"), Some(1));
        let p = run(
            Some(&before),
            &ticket("RESALE_PENDING", Some("a@x.org"), None),
            &mut book,
        );
        assert_eq!(p, ContactPlan::default(), "no settled rule: the line stays");
        let p = run(
            Some(&before),
            &ticket("RESALE_PENDING", Some("b@x.org"), None),
            &mut book,
        );
        assert_eq!(p.cultural_contact, Some(Existing(2)));
        assert_eq!(p.line_updates, [(11, Confirmed)]);
        // The seed still applies to a first-seen ticket.
        let p = run(
            None,
            &ticket("SOMETHING_NEW", Some("a@x.org"), None),
            &mut book,
        );
        assert_eq!(p.cultural_contact, Some(NewOwner));
    }

    #[test]
    fn a_chain_a_to_b_to_c_moves_the_cultural_contact_each_time() {
        // A -> B completed (B's pending line confirmed), then B -> C straight to TRANSFERRED.
        let mut book = Book::default()
            .with_contact("b@x.org", 2, false)
            .with_line(11, 2);
        let first = run_owned_by_a(&ticket(TRANSFERRED, Some("b@x.org"), None), &mut book);
        assert_eq!(first.cultural_contact, Some(Existing(2)));
        let mut book = Book::default().with_contact("c@x.org", 3, false);
        let second = run(
            Some(&stored(Some("b@x.org"), Some(2))),
            &ticket(TRANSFERRED, Some("c@x.org"), None),
            &mut book,
        );
        assert_eq!(
            second.new_line,
            Some(NewLine {
                old_contact: Some(Existing(2)),
                new_contact: Existing(3),
                status: Confirmed
            })
        );
        assert_eq!(second.cultural_contact, Some(Existing(3)));
    }

    #[test]
    fn the_owner_is_looked_up_once_per_ticket() {
        let mut book = Book::default();
        run(
            Some(&stored(Some("a@x.org"), None)),
            &ticket("DOWNLOADED", Some("b@x.org"), None),
            &mut book,
        );
        assert_eq!(book.lookups, 1, "seed and completed share one look-up");
    }
}
