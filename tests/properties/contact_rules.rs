use super::*;
use crate::merge::{LATER, NOW, instant};

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
            // As the SQLite batch's create_owner_contact stores it: trimmed of ' \t\n\r' only.
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

    fn insert_line(&mut self, line: &LineToAdd<'_>) -> Result<(), Error> {
        assert_eq!(line.ticket_number, "T1");
        let id = self.id();
        self.lines.push(Line {
            id,
            old: line.old_contact_id,
            new: line.new_contact_id,
            status: line.status,
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
