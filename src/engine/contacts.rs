//! A contact plan carried out (SPEC §4.5): the contacts it creates and upgrades before the
//! ticket row is written (the row names its new cultural contact), the distribution lines after
//! it (they reference the row). The writes go through a [`ContactWriter`]: the batch's
//! transaction, or a model of the store in the property tests.

use crate::error::Error;
use crate::feedback::TicketRecord;
use crate::feedback::contacts::{ContactPlan, ContactRef, ContactWriter, LineToAdd, LineWritten};
use crate::feedback::{Spectator, Ticket};
use crate::report::Counters;

/// Ids of the contacts a plan created.
#[derive(Clone, Copy, Debug, Default)]
pub struct NewContacts {
    owner: Option<i64>,
    recipient: Option<i64>,
}

impl NewContacts {
    fn resolve(self, contact: ContactRef) -> Result<i64, Error> {
        match contact {
            ContactRef::Existing(id) => Ok(id),
            ContactRef::NewOwner => self.owner.ok_or(contact),
            ContactRef::NewRecipient => self.recipient.ok_or(contact),
        }
        .map_err(|contact| {
            Error::Internal(format!(
                "the contact plan names {contact:?} but did not create it"
            ))
        })
    }
}

/// Creates and upgrades the plan's contacts and points the ticket at its new cultural contact.
pub fn create_contacts(
    writer: &mut (impl ContactWriter + ?Sized),
    plan: &ContactPlan,
    ticket: &Ticket,
    record: &mut TicketRecord,
    counters: &mut Counters,
) -> Result<NewContacts, Error> {
    let no_owner = Spectator::default();
    let owner = ticket.owner.as_ref().unwrap_or(&no_owner);
    let mut created = NewContacts::default();
    if plan.create_owner {
        created.owner = Some(writer.create_owner_contact(owner)?);
        counters.contacts_created += 1;
    }
    if let Some(id) = plan.upgrade {
        writer.upgrade_contact(id, owner)?;
        counters.contacts_updated += 1;
    }
    if let Some(email) = &plan.create_recipient {
        created.recipient = Some(writer.create_temporary_contact(email)?);
        counters.contacts_created += 1;
    }
    if let Some(contact) = plan.cultural_contact {
        record.cultural_contact_id = Some(created.resolve(contact)?);
    }
    Ok(created)
}

/// Writes the plan's distribution changes (after the ticket row, which the lines reference).
pub fn write_lines(
    writer: &mut (impl ContactWriter + ?Sized),
    plan: &ContactPlan,
    record: &TicketRecord,
    created: NewContacts,
    counters: &mut Counters,
    written: &LineWritten<'_>,
) -> Result<(), Error> {
    for &(id, status) in &plan.line_updates {
        writer.set_line_status(id, status)?;
        counters.distributions_updated += 1;
    }
    if let Some(line) = plan.new_line {
        let old = line.old_contact.map(|c| created.resolve(c)).transpose()?;
        writer.insert_line(&LineToAdd {
            ticket_number: &record.ticket_number,
            old_contact_id: old,
            new_contact_id: created.resolve(line.new_contact)?,
            status: line.status,
            written,
        })?;
        counters.distributions_created += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::ExitCode;

    #[test]
    fn a_plan_naming_a_contact_it_did_not_create_is_a_bug_exit_70() {
        let created = NewContacts {
            owner: Some(7),
            recipient: None,
        };
        assert_eq!(created.resolve(ContactRef::Existing(3)).unwrap(), 3);
        assert_eq!(created.resolve(ContactRef::NewOwner).unwrap(), 7);
        let error = created.resolve(ContactRef::NewRecipient).unwrap_err();
        assert_eq!(error.exit_code(), ExitCode::Software);
    }
}
