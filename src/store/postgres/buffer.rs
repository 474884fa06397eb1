//! A PostgreSQL batch in memory: the rows its tickets read (preloaded, then as the batch leaves
//! them) and the changes it makes, kept until the commit writes them set-based. Everything here
//! is pure: it reproduces, row for row, what SQLite's per-statement batch reads and writes.
//!
//! Contacts, lines and errors created in the batch get provisional ids from [`PROVISIONAL`] up,
//! in the order of their creation: above every stored id, as the ids the server gives them at the
//! commit will be, so the rules rank and order them as SQLite does.

use std::collections::{HashMap, HashSet};

use crate::feedback::TicketRecord;
use crate::feedback::contacts::{FoundContact, LineStatus, PendingLine};
use crate::feedback::{Spectator, email_key};

/// The first provisional id.
pub(crate) const PROVISIONAL: i64 = 1 << 62;

/// A contact as the rules rank it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ContactRow {
    pub id: i64,
    pub temporary: bool,
    pub internet: bool,
    pub individual: bool,
}

impl ContactRow {
    /// Smallest wins: an internet account, then an individual, then a real contact, then the
    /// lowest id (see SQLite's `contact_by_email`).
    fn rank(&self) -> (bool, bool, bool, i64) {
        (!self.internet, !self.individual, self.temporary, self.id)
    }
}

/// A contact created in the batch: a full one (`details` from `spectatorDetails`) or a temporary
/// "Pending CREATION" one (`details` `None`), possibly upgraded later in the batch.
#[derive(Clone, Debug)]
pub(crate) struct NewContact {
    pub email: String,
    pub details: Option<Spectator>,
}

/// A distribution line added in the batch.
#[derive(Clone, Debug)]
pub(crate) struct NewLine {
    pub ticket_number: String,
    pub old_contact_id: Option<i64>,
    pub new_contact_id: i64,
    pub status: LineStatus,
    pub operator_login: String,
    pub ticket_state: Option<String>,
    pub date_time: String,
}

/// A `ticket_history` row.
#[derive(Clone, Debug)]
pub(crate) struct HistoryRow {
    pub ticket_number: String,
    pub mobile_status: String,
    pub owner_email: Option<String>,
    pub holder_first_name: Option<String>,
    pub holder_last_name: Option<String>,
    pub tixngo_updated_at: Option<String>,
}

/// The tickets, contacts and lines of one batch.
#[derive(Debug, Default)]
pub(crate) struct BatchBuffer {
    /// Tickets read so far, as the batch leaves them; `None`: not in the store.
    tickets: HashMap<String, Option<TicketRecord>>,
    /// Tickets written, in the order of their first write.
    written: Vec<String>,
    written_set: HashSet<String>,
    history: Vec<HistoryRow>,
    /// The contacts of each e-mail key read so far (stored and created in the batch).
    contacts: HashMap<String, Vec<ContactRow>>,
    contact_keys: HashMap<i64, String>,
    pub(crate) new_contacts: Vec<NewContact>,
    /// Stored temporary contacts upgraded, each once, in order.
    pub upgrades: Vec<(i64, Spectator)>,
    upgraded: HashSet<i64>,
    /// The pending lines of each ticket read so far (stored and added), oldest first.
    pending: HashMap<String, Vec<PendingLine>>,
    line_tickets: HashMap<i64, String>,
    pub(crate) new_lines: Vec<NewLine>,
    /// The latest status of each stored line changed, in the order of the first change.
    pub(crate) line_statuses: Vec<(i64, LineStatus)>,
}

impl BatchBuffer {
    /// Whether the ticket's row has been read (or found missing).
    pub(crate) fn knows_ticket(&self, number: &str) -> bool {
        self.tickets.contains_key(number)
    }

    /// Adds a row read from the store, unless the batch already knows the ticket (its own
    /// state then wins over the store's, which does not hold the batch's writes yet).
    pub(crate) fn load_ticket(&mut self, number: &str, record: Option<TicketRecord>) {
        self.tickets.entry(number.to_owned()).or_insert(record);
    }

    /// The ticket's row as the batch left it; call only for a known ticket.
    pub fn ticket(&self, number: &str) -> Option<&TicketRecord> {
        self.tickets.get(number).and_then(Option::as_ref)
    }

    /// Writes a ticket row: the columns set once are kept from the row the batch holds.
    pub fn write_ticket(&mut self, record: &TicketRecord) {
        let number = &record.ticket_number;
        match self.tickets.get_mut(number) {
            Some(Some(current)) => {
                let kept = (
                    current.s360_state.take(),
                    std::mem::take(&mut current.first_synced_at),
                );
                current.assign(record);
                (current.s360_state, current.first_synced_at) = kept;
            }
            Some(unknown) => *unknown = Some(record.clone()),
            None => {
                self.tickets.insert(number.clone(), Some(record.clone()));
            }
        }
        if self.written_set.insert(number.clone()) {
            self.written.push(number.clone());
        }
    }

    /// The rows to write, one per ticket, in the order of their first write.
    pub(crate) fn written_tickets(&self) -> impl Iterator<Item = &TicketRecord> {
        self.written.iter().filter_map(|n| self.ticket(n))
    }

    pub fn append_history(&mut self, record: &TicketRecord) {
        self.history.push(HistoryRow {
            ticket_number: record.ticket_number.clone(),
            mobile_status: record.mobile_status.clone(),
            owner_email: record.owner_email.clone(),
            holder_first_name: record.holder_first_name.clone(),
            holder_last_name: record.holder_last_name.clone(),
            tixngo_updated_at: record.tixngo_updated_at.clone(),
        });
    }

    pub fn history(&self) -> &[HistoryRow] {
        &self.history
    }

    pub(crate) fn knows_contacts(&self, email_key: &str) -> bool {
        self.contacts.contains_key(email_key)
    }

    /// Adds a contact read from the store, unless its e-mail key was read before.
    pub(crate) fn load_contacts(&mut self, email_key: &str, rows: Vec<ContactRow>) {
        if self.contacts.contains_key(email_key) {
            return;
        }
        for row in &rows {
            self.contact_keys.insert(row.id, email_key.to_owned());
        }
        self.contacts.insert(email_key.to_owned(), rows);
    }

    /// The preferred contact of a known e-mail key.
    pub fn contact_by_email(&self, email_key: &str) -> Option<FoundContact> {
        let rows = self.contacts.get(email_key)?;
        rows.iter()
            .min_by_key(|row| row.rank())
            .map(|row| FoundContact {
                id: row.id,
                temporary: row.temporary,
            })
    }

    /// Creates a contact (its e-mail key already read): its provisional id.
    pub(crate) fn create_contact(&mut self, email: &str, details: Option<&Spectator>) -> i64 {
        let id = PROVISIONAL + self.new_contacts.len() as i64;
        // As the `email_key` column holds it: empty for a blank e-mail.
        let key = email_key(Some(email)).unwrap_or_default();
        self.contacts
            .entry(key.clone())
            .or_default()
            .push(ContactRow {
                id,
                temporary: details.is_none(),
                internet: details.is_some(),
                individual: true,
            });
        self.contact_keys.insert(id, key);
        self.new_contacts.push(NewContact {
            email: email.to_owned(),
            details: details.cloned(),
        });
        id
    }

    /// Turns a temporary contact into a full one; a contact known not to be temporary is left
    /// alone. A stored contact the batch never read is upgraded at the commit, where the update
    /// keeps to temporary contacts as SQLite's does.
    pub fn upgrade_contact(&mut self, id: i64, owner: &Spectator) {
        let row = self
            .contact_keys
            .get(&id)
            .and_then(|key| self.contacts.get_mut(key))
            .and_then(|rows| rows.iter_mut().find(|row| row.id == id));
        match row {
            Some(row) if !row.temporary => return,
            Some(row) => {
                row.temporary = false;
                row.internet = true;
            }
            None => {}
        }
        if id >= PROVISIONAL {
            self.new_contacts[(id - PROVISIONAL) as usize].details = Some(owner.clone());
        } else if self.upgraded.insert(id) {
            self.upgrades.push((id, owner.clone()));
        }
    }

    pub(crate) fn knows_lines(&self, ticket_number: &str) -> bool {
        self.pending.contains_key(ticket_number)
    }

    /// Adds the stored pending lines of a ticket, unless its lines were read before.
    pub(crate) fn load_lines(&mut self, ticket_number: &str, mut lines: Vec<PendingLine>) {
        if self.pending.contains_key(ticket_number) {
            return;
        }
        lines.sort_unstable_by_key(|line| line.id);
        for line in &lines {
            self.line_tickets.insert(line.id, ticket_number.to_owned());
        }
        self.pending.insert(ticket_number.to_owned(), lines);
    }

    /// The pending lines of a ticket whose lines are known, oldest first.
    pub fn pending_lines(&self, ticket_number: &str) -> Vec<PendingLine> {
        self.pending.get(ticket_number).cloned().unwrap_or_default()
    }

    /// Adds a line (the ticket's lines already read).
    pub fn insert_line(&mut self, line: NewLine) {
        let id = PROVISIONAL + self.new_lines.len() as i64;
        self.line_tickets.insert(id, line.ticket_number.clone());
        if line.status == LineStatus::Pending {
            let pending = self.pending.entry(line.ticket_number.clone()).or_default();
            pending.push(PendingLine {
                id,
                new_contact_id: line.new_contact_id,
            });
        }
        self.new_lines.push(line);
    }

    /// Changes a line's status: in place for a line added in the batch, else at the commit.
    pub fn set_line_status(&mut self, id: i64, status: LineStatus) {
        if id >= PROVISIONAL {
            self.new_lines[(id - PROVISIONAL) as usize].status = status;
        } else if let Some(change) = self.line_statuses.iter_mut().find(|(line, _)| *line == id) {
            change.1 = status;
        } else {
            self.line_statuses.push((id, status));
        }
        let pending = self
            .line_tickets
            .get(&id)
            .and_then(|ticket| self.pending.get_mut(ticket));
        if let Some(pending) = pending.filter(|_| status != LineStatus::Pending) {
            pending.retain(|line| line.id != id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(email: &str) -> Spectator {
        Spectator {
            email: Some(email.to_owned()),
            first_name: Some("Bob".to_owned()),
            ..Spectator::default()
        }
    }

    #[test]
    fn a_contact_created_in_the_batch_ranks_as_the_newest_and_is_upgraded_in_place() {
        let mut buffer = BatchBuffer::default();
        let stored_temporary = ContactRow {
            id: 41,
            temporary: true,
            internet: false,
            individual: true,
        };
        buffer.load_contacts("bob@example.org", vec![stored_temporary]);
        let created = buffer.create_contact(" Bob@Example.org", None);
        // Two temporary contacts: the lower id, the stored one, wins.
        let found = buffer.contact_by_email("bob@example.org").unwrap();
        assert_eq!(found.id, 41);
        buffer.upgrade_contact(created, &owner("bob@example.org"));
        let found = buffer.contact_by_email("bob@example.org").unwrap();
        assert_eq!((found.id, found.temporary), (created, false));
        assert!(buffer.upgrades.is_empty(), "written once, by the insert");
        assert!(buffer.new_contacts[0].details.is_some());
    }

    #[test]
    fn a_stored_temporary_contact_is_upgraded_once() {
        let mut buffer = BatchBuffer::default();
        let row = ContactRow {
            id: 7,
            temporary: true,
            internet: false,
            individual: false,
        };
        buffer.load_contacts("ann@example.org", vec![row]);
        buffer.upgrade_contact(7, &owner("ann@example.org"));
        buffer.upgrade_contact(7, &owner("ann@example.org"));
        assert_eq!(buffer.upgrades.len(), 1);
        assert!(
            !buffer
                .contact_by_email("ann@example.org")
                .unwrap()
                .temporary
        );
    }

    #[test]
    fn a_line_added_then_confirmed_leaves_the_pending_lines_and_is_written_confirmed() {
        let mut buffer = BatchBuffer::default();
        buffer.load_lines(
            "T1",
            vec![PendingLine {
                id: 3,
                new_contact_id: 1,
            }],
        );
        buffer.insert_line(NewLine {
            ticket_number: "T1".into(),
            old_contact_id: Some(1),
            new_contact_id: 2,
            status: LineStatus::Pending,
            operator_login: "TIXNGO_FEEDBACK".into(),
            ticket_state: None,
            date_time: "2026-03-01T08:00:00.000Z".into(),
        });
        let ids: Vec<i64> = buffer.pending_lines("T1").iter().map(|l| l.id).collect();
        assert_eq!(ids, [3, PROVISIONAL]);
        buffer.set_line_status(PROVISIONAL, LineStatus::Confirmed);
        buffer.set_line_status(3, LineStatus::Cancelled);
        assert!(buffer.pending_lines("T1").is_empty());
        assert_eq!(buffer.new_lines[0].status, LineStatus::Confirmed);
        assert_eq!(buffer.line_statuses, [(3, LineStatus::Cancelled)]);
    }

    #[test]
    fn a_ticket_written_twice_is_written_once_its_set_once_columns_kept() {
        let mut buffer = BatchBuffer::default();
        buffer.load_ticket("T1", None);
        let first = TicketRecord {
            ticket_number: "T1".into(),
            s360_state: Some("PRINTED".into()),
            first_synced_at: "first".into(),
            mobile_status: "INJECTED".into(),
            ..TicketRecord::default()
        };
        buffer.write_ticket(&first);
        let second = TicketRecord {
            s360_state: Some("OTHER".into()),
            first_synced_at: "second".into(),
            mobile_status: "DOWNLOADED".into(),
            ..first.clone()
        };
        buffer.write_ticket(&second);
        let written: Vec<_> = buffer.written_tickets().collect();
        assert_eq!(written.len(), 1);
        assert_eq!(
            (
                written[0].s360_state.as_deref(),
                written[0].first_synced_at.as_str()
            ),
            (Some("PRINTED"), "first")
        );
        assert_eq!(written[0].mobile_status, "DOWNLOADED");
    }
}
