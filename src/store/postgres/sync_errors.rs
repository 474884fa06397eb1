//! A batch's `sync_error` bookkeeping in memory: the unresolved errors read at its start, and
//! what recording, refreshing and resolving do to them, in order, exactly as SQLite's statements
//! do; the commit then writes the changed rows in one update and the new ones in one insert.

use std::collections::HashSet;

/// One `sync_error` row the batch knows of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorRow {
    /// The stored row's id; `None` for a row the batch adds.
    pub id: Option<i64>,
    pub ticket_number: Option<String>,
    /// The payload: the stored one of an error without a ticket number (that is how such an
    /// error is matched), or the one the batch writes.
    pub payload: Option<String>,
    /// The reason the batch writes (and `run_id` moves to this run); `None`: untouched.
    pub reason: Option<String>,
    /// Whether the batch writes `payload` (a refresh of a numbered ticket's error does).
    pub payload_changed: bool,
    pub resolved: bool,
    /// Resolved before the batch (a row `replay --errors` refreshes only).
    pub resolved_before: bool,
}

impl ErrorRow {
    /// Whether the commit writes this stored row.
    pub fn changed(&self) -> bool {
        self.reason.is_some() || (self.resolved && !self.resolved_before)
    }
}

/// The unresolved errors and the batch's changes to them.
#[derive(Debug, Default)]
pub struct ErrorBook {
    pub rows: Vec<ErrorRow>,
}

impl ErrorBook {
    /// The book of the unresolved errors `(id, ticket number, payload when without a number)`.
    pub fn new(unresolved: Vec<(i64, Option<String>, Option<String>)>) -> ErrorBook {
        let rows = unresolved
            .into_iter()
            .map(|(id, ticket_number, payload)| ErrorRow {
                id: Some(id),
                ticket_number,
                payload,
                reason: None,
                payload_changed: false,
                resolved: false,
                resolved_before: false,
            })
            .collect();
        ErrorBook { rows }
    }

    /// Ticket numbers with an unresolved error.
    pub fn unresolved_tickets(&self) -> HashSet<String> {
        self.unresolved()
            .filter_map(|row| row.ticket_number.clone())
            .collect()
    }

    fn unresolved(&self) -> impl Iterator<Item = &ErrorRow> {
        self.rows.iter().filter(|row| !row.resolved)
    }

    /// A ticket that cannot be mapped: its unresolved errors are refreshed (payload included);
    /// one without a number refreshes the unresolved errors of the same payload; else a row is
    /// added.
    pub fn record(&mut self, ticket_number: Option<&str>, reason: &str, payload: &str) {
        let mut refreshed = false;
        for row in self.rows.iter_mut().filter(|row| !row.resolved) {
            let same = match ticket_number {
                Some(number) => row.ticket_number.as_deref() == Some(number),
                None => row.ticket_number.is_none() && row.payload.as_deref() == Some(payload),
            };
            if same {
                row.reason = Some(reason.to_owned());
                if ticket_number.is_some() {
                    row.payload = Some(payload.to_owned());
                    row.payload_changed = true;
                }
                refreshed = true;
            }
        }
        if !refreshed {
            self.rows.push(ErrorRow {
                id: None,
                ticket_number: ticket_number.map(str::to_owned),
                payload: Some(payload.to_owned()),
                reason: Some(reason.to_owned()),
                payload_changed: true,
                resolved: false,
                resolved_before: false,
            });
        }
    }

    /// A ticket that settled: its unresolved errors are resolved.
    pub fn resolve_ticket(&mut self, ticket_number: &str) {
        for row in self.rows.iter_mut().filter(|row| !row.resolved) {
            if row.ticket_number.as_deref() == Some(ticket_number) {
                row.resolved = true;
            }
        }
    }

    /// One stored error settled by `replay --errors`; an id the book does not hold is resolved
    /// already or missing, and stays as it is.
    pub fn resolve_id(&mut self, id: i64) {
        if let Some(row) = self.rows.iter_mut().find(|row| row.id == Some(id)) {
            row.resolved = true;
        }
    }

    /// One stored error whose payload failed again: refreshed, resolved or not.
    pub fn refresh_id(&mut self, id: i64, reason: &str) {
        match self.rows.iter_mut().find(|row| row.id == Some(id)) {
            Some(row) => row.reason = Some(reason.to_owned()),
            None => self.rows.push(ErrorRow {
                id: Some(id),
                ticket_number: None,
                payload: None,
                reason: Some(reason.to_owned()),
                payload_changed: false,
                resolved: true,
                resolved_before: true,
            }),
        }
    }

    /// The stored rows the commit updates.
    pub fn changed_rows(&self) -> impl Iterator<Item = &ErrorRow> {
        self.rows
            .iter()
            .filter(|row| row.id.is_some() && row.changed())
    }

    /// The rows the commit adds, in the order of their creation.
    pub fn new_rows(&self) -> impl Iterator<Item = &ErrorRow> {
        self.rows.iter().filter(|row| row.id.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book() -> ErrorBook {
        ErrorBook::new(vec![
            (7, Some("T1".into()), None),
            (8, None, Some("{broken}".into())),
        ])
    }

    #[test]
    fn a_failure_refreshes_the_tickets_unresolved_error_and_adds_none() {
        let mut book = book();
        book.record(Some("T1"), "again", "{new}");
        let row = &book.rows[0];
        assert_eq!(
            (row.reason.as_deref(), row.payload.as_deref()),
            (Some("again"), Some("{new}"))
        );
        assert_eq!(book.new_rows().count(), 0);
    }

    #[test]
    fn a_ticket_without_number_is_matched_on_its_payload_which_stays() {
        let mut book = book();
        book.record(None, "again", "{broken}");
        assert_eq!(book.rows[1].reason.as_deref(), Some("again"));
        assert!(!book.rows[1].payload_changed);
        book.record(None, "other", "{other}");
        book.record(None, "other again", "{other}");
        let added: Vec<_> = book.new_rows().collect();
        assert_eq!(added.len(), 1);
        assert_eq!(added[0].reason.as_deref(), Some("other again"));
    }

    #[test]
    fn a_ticket_that_fails_settles_and_fails_again_in_one_batch_has_two_rows() {
        let mut book = ErrorBook::new(Vec::new());
        book.record(Some("T2"), "first", "{a}");
        assert!(book.unresolved_tickets().contains("T2"));
        book.resolve_ticket("T2");
        assert!(book.unresolved_tickets().is_empty());
        book.record(Some("T2"), "second", "{b}");
        let added: Vec<_> = book
            .new_rows()
            .map(|r| (r.resolved, r.reason.clone()))
            .collect();
        assert_eq!(
            added,
            [(true, Some("first".into())), (false, Some("second".into()))]
        );
    }

    #[test]
    fn replay_resolves_and_refreshes_by_id_a_resolved_row_included() {
        let mut book = book();
        book.resolve_id(8);
        book.resolve_id(99);
        book.refresh_id(42, "still broken");
        let changed: Vec<_> = book.changed_rows().map(|r| (r.id, r.resolved)).collect();
        assert_eq!(changed, [(Some(8), true), (Some(42), true)]);
        assert_eq!(
            book.changed_rows().nth(1).unwrap().reason.as_deref(),
            Some("still broken")
        );
    }
}
