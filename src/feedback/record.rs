//! S-360 4.1 "Which TIXNGO ticket data is synced back": how an incoming ticket updates the stored
//! ticket row (SPEC §4.4 steps 3 to 5).

use std::ops::BitOr;

use crate::feedback::{Attributes, Holder, Patch, Spectator, Ticket};
use crate::timestamp::Timestamp;

use super::email_key;

/// Declares the `ticket` row from one table of `column: type` lines: the [`TicketRecord`] fields,
/// [`TicketRecord::COLUMNS`], [`TicketRecord::values`] and [`TicketRecord::read`] all come from
/// it, so a column is added by one line here (and the migration that adds it to the schema).
/// A type is `String` (never NULL when written; NULL reads as empty), `Option<String>` or
/// `Option<i64>`: the types [`Field`] knows.
macro_rules! ticket_record {
    ($(#[$meta:meta])* pub struct $name:ident {
        $($(#[$field_meta:meta])* pub $column:ident: $type:ty,)*
    }) => {
        $(#[$meta])*
        pub struct $name {
            $($(#[$field_meta])* pub $column: $type,)*
        }

        impl $name {
            /// The columns of the row, in the order of [`Self::values`] and [`Self::read`].
            pub const COLUMNS: [&'static str; [$(stringify!($column)),*].len()] =
                [$(stringify!($column)),*];

            /// Every column's value, in the order of [`Self::COLUMNS`]: what a store binds.
            pub fn values(&self) -> [FieldValue<'_>; Self::COLUMNS.len()] {
                [$(Field::value(&self.$column)),*]
            }

            /// Makes this record equal to `other`, reusing the memory of its strings: a batch
            /// rewrites thousands of rows it holds, and a fresh clone of each was a large share
            /// of its allocations.
            pub fn assign(&mut self, other: &$name) {
                $(self.$column.clone_from(&other.$column);)*
            }

            /// The record from a stored row whose columns are [`Self::COLUMNS`], in that order.
            pub fn read<R: ReadColumns>(row: &R) -> Result<$name, R::Error> {
                /// The position of each column: its place in the table.
                #[allow(non_camel_case_types)]
                enum Index {
                    $($column,)*
                }
                Ok($name {
                    $($column: Field::read(row, Index::$column as usize)?,)*
                })
            }
        }
    };
}

ticket_record! {
    /// The `ticket` row: the S-360 ticket as the feedback keeps it (SPEC §4.3).
    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub struct TicketRecord {
        pub ticket_number: String,
        pub tixngo_ticket_id: Option<String>,
        pub barcode: Option<String>,
        pub event_id: Option<String>,
        /// The S-360 ticket state: `PRINTED` when the feedback creates the row, never changed by it.
        pub s360_state: Option<String>,
        pub mobile_status: String,
        /// TIXNGO's `lastUpdated` in the store's UTC form; orders changes of one ticket.
        pub tixngo_updated_at: Option<String>,
        pub owner_email: Option<String>,
        pub owner_title: Option<String>,
        pub owner_first_name: Option<String>,
        pub owner_last_name: Option<String>,
        pub owner_birth_date: Option<String>,
        pub owner_nationality: Option<String>,
        pub owner_id_number: Option<String>,
        pub owner_phone: Option<String>,
        pub owner_residence_country: Option<String>,
        pub owner_language: Option<String>,
        pub holder_first_name: Option<String>,
        pub holder_last_name: Option<String>,
        pub holder_birth_date: Option<String>,
        pub holder_id_number: Option<String>,
        pub holder_nationality: Option<String>,
        pub holder_birth_place: Option<String>,
        pub holder_birth_region: Option<String>,
        pub holder_country_code: Option<String>,
        pub previous_owner_email: Option<String>,
        pub initial_owner_email: Option<String>,
        pub injected_at: Option<String>,
        pub downloaded_at: Option<String>,
        pub assigned_at: Option<String>,
        pub activated_at: Option<String>,
        pub checked_at: Option<String>,
        pub controlled_at: Option<String>,
        pub deleted_at: Option<String>,
        /// The ticket's cultural contact (S-360 4.2); maintained by the contact rules.
        pub cultural_contact_id: Option<i64>,
        pub first_synced_at: String,
        pub last_synced_at: String,
    }
}

/// One column's value in a [`TicketRecord`], borrowed from it, whatever store binds it: SQLite
/// binds each value as a parameter, a server store can gather each column into one array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldValue<'a> {
    /// Text that is always there (`ticket_number`, `mobile_status`, the sync times).
    Text(&'a String),
    /// Text or NULL.
    OptionalText(&'a Option<String>),
    /// An integer or NULL.
    OptionalInteger(&'a Option<i64>),
}

impl<'a> FieldValue<'a> {
    /// The text of a text column; `None` for NULL, and for an integer column.
    pub fn text(self) -> Option<&'a str> {
        match self {
            FieldValue::Text(text) => Some(text),
            FieldValue::OptionalText(text) => text.as_deref(),
            FieldValue::OptionalInteger(_) => None,
        }
    }

    /// The value of an integer column; `None` for NULL, and for a text column.
    pub fn integer(self) -> Option<i64> {
        match self {
            FieldValue::OptionalInteger(value) => *value,
            FieldValue::Text(_) | FieldValue::OptionalText(_) => None,
        }
    }
}

impl TicketRecord {
    /// The columns the feedback never overwrites once the row exists: the key, the S-360
    /// state (S-360's to change) and when the feedback first saw the ticket.
    pub const SET_ONCE: [&'static str; 3] = ["ticket_number", "s360_state", "first_synced_at"];
}

/// A stored row as a store's driver reads it, column by column (the index of a column in
/// [`TicketRecord::COLUMNS`]).
pub trait ReadColumns {
    type Error;
    fn text(&self, index: usize) -> Result<Option<String>, Self::Error>;
    fn integer(&self, index: usize) -> Result<Option<i64>, Self::Error>;
}

/// The Rust types a [`TicketRecord`] column may have.
trait Field: Sized {
    fn value(&self) -> FieldValue<'_>;
    fn read<R: ReadColumns>(row: &R, index: usize) -> Result<Self, R::Error>;
}

impl Field for String {
    fn value(&self) -> FieldValue<'_> {
        FieldValue::Text(self)
    }

    /// A row another S-360 tool inserted may lack the sync times: read as empty.
    fn read<R: ReadColumns>(row: &R, index: usize) -> Result<String, R::Error> {
        Ok(row.text(index)?.unwrap_or_default())
    }
}

impl Field for Option<String> {
    fn value(&self) -> FieldValue<'_> {
        FieldValue::OptionalText(self)
    }

    fn read<R: ReadColumns>(row: &R, index: usize) -> Result<Option<String>, R::Error> {
        row.text(index)
    }
}

impl Field for Option<i64> {
    fn value(&self) -> FieldValue<'_> {
        FieldValue::OptionalInteger(self)
    }

    fn read<R: ReadColumns>(row: &R, index: usize) -> Result<Option<i64>, R::Error> {
        row.integer(index)
    }
}

/// What an incoming ticket does to the stored row.
#[derive(Debug, PartialEq, Eq)]
pub enum Merge {
    /// The store already holds a later state of this ticket: nothing is written.
    Stale,
    /// The row to write.
    Apply {
        record: Box<TicketRecord>,
        /// A mapped column changed, or the ticket is new: it counts as `stored`, else `unchanged`.
        changed: bool,
        /// A `ticket_history` row is due: new ticket, or status, owner e-mail or holder name changed.
        history: bool,
    },
}

/// Whether the store already holds a later state of the ticket than `ticket` (SPEC §4.4 step 3):
/// both times are known and the stored one is the later instant. A ticket without `lastUpdated`
/// is never stale.
pub(crate) fn is_stale(stored: Option<&TicketRecord>, ticket: &Ticket) -> bool {
    match (
        stored.and_then(|s| s.tixngo_updated_at.as_deref()),
        ticket.last_updated,
    ) {
        (Some(stored_at), Some(incoming)) => stored_at > incoming.store_text().as_str(),
        _ => false,
    }
}

/// Merges `ticket` into the stored row (`None` for a first-seen ticket), at time `now` (the
/// store's UTC form). Absent or null fields keep the stored value; an explicit `null` holder
/// clears the holder, and an explicit `null` milestone in `attributes` clears that milestone. The row is taken by value and updated in place: a batch merges thousands of
/// tickets, and a copy of each row to compare against would cost as much as the rest.
pub fn merge(stored: Option<TicketRecord>, ticket: &Ticket, now: &str) -> Merge {
    if is_stale(stored.as_ref(), ticket) {
        return Merge::Stale;
    }
    let first_seen = stored.is_none();
    let mut record = stored.unwrap_or_else(|| TicketRecord {
        ticket_number: ticket.ticket_number.clone(),
        s360_state: Some("PRINTED".to_owned()),
        first_synced_at: now.to_owned(),
        ..TicketRecord::default()
    });
    let mut changes = merge_ticket(&mut record, ticket);
    if let Some(owner) = &ticket.owner {
        changes = changes | merge_owner(&mut record, owner);
    }
    changes = changes
        | merge_holder(&mut record, &ticket.holder)
        | merge_attributes(&mut record, &ticket.attributes);
    now.clone_into(&mut record.last_synced_at);
    Merge::Apply {
        record: Box::new(record),
        changed: first_seen || changes.any,
        history: first_seen || changes.history,
    }
}

/// The ticket's own fields: status, identifiers, `lastUpdated`, previous and initial owner.
fn merge_ticket(record: &mut TicketRecord, ticket: &Ticket) -> Changes {
    let mut changes = Changes {
        history: record.mobile_status != ticket.status,
        ..Changes::default()
    };
    changes.set(&mut record.mobile_status, &ticket.status);
    changes.keep_or_set(&mut record.tixngo_ticket_id, &ticket.tixngo_ticket_id);
    changes.keep_or_set(&mut record.barcode, &ticket.barcode);
    changes.keep_or_set(&mut record.event_id, &ticket.event_id);
    changes.keep_or_set_instant(&mut record.tixngo_updated_at, ticket.last_updated);
    changes.keep_or_set(
        &mut record.previous_owner_email,
        &ticket.previous_owner_email,
    );
    changes.keep_or_set(&mut record.initial_owner_email, &ticket.initial_owner_email);
    changes
}

/// `spectatorDetails`: the wallet owner. Its e-mail counts for history by its key only.
fn merge_owner(record: &mut TicketRecord, owner: &Spectator) -> Changes {
    let mut changes = Changes::default();
    if let Some(email) = &owner.email {
        changes.history = email_key(record.owner_email.as_deref()) != email_key(Some(email));
    }
    changes.keep_or_set(&mut record.owner_email, &owner.email);
    changes.keep_or_set(&mut record.owner_title, &owner.title);
    changes.keep_or_set(&mut record.owner_first_name, &owner.first_name);
    changes.keep_or_set(&mut record.owner_last_name, &owner.last_name);
    changes.keep_or_set(&mut record.owner_birth_date, &owner.birth_date);
    changes.keep_or_set(&mut record.owner_nationality, &owner.nationality);
    changes.keep_or_set(&mut record.owner_id_number, &owner.id_number);
    changes.keep_or_set(&mut record.owner_phone, &owner.phone);
    changes.keep_or_set(
        &mut record.owner_residence_country,
        &owner.residence_country,
    );
    changes.keep_or_set(&mut record.owner_language, &owner.language);
    changes
}

/// `holder`: patched field by field, or cleared whole by an explicit `null`. A change of its
/// name (or clearing a named holder) counts for history.
fn merge_holder(record: &mut TicketRecord, holder: &Patch<Holder>) -> Changes {
    let mut changes = Changes::default();
    match holder {
        Patch::Absent => {}
        Patch::Clear => {
            changes.history =
                record.holder_first_name.is_some() || record.holder_last_name.is_some();
            for column in [
                &mut record.holder_first_name,
                &mut record.holder_last_name,
                &mut record.holder_birth_date,
                &mut record.holder_id_number,
                &mut record.holder_nationality,
                &mut record.holder_birth_place,
                &mut record.holder_birth_region,
                &mut record.holder_country_code,
            ] {
                changes.any |= column.take().is_some();
            }
        }
        Patch::Set(holder) => {
            changes.keep_or_set(&mut record.holder_first_name, &holder.first_name);
            changes.keep_or_set(&mut record.holder_last_name, &holder.last_name);
            changes.history = changes.any;
            changes.keep_or_set(&mut record.holder_birth_date, &holder.birth_date);
            changes.keep_or_set(&mut record.holder_id_number, &holder.id_number);
            changes.keep_or_set(&mut record.holder_nationality, &holder.nationality);
            changes.keep_or_set(&mut record.holder_birth_place, &holder.birth_place);
            changes.keep_or_set(&mut record.holder_birth_region, &holder.birth_region);
            changes.keep_or_set(&mut record.holder_country_code, &holder.country_code);
        }
    }
    changes
}

/// `attributes`: the milestones, each kept when absent and cleared by an explicit `null`.
fn merge_attributes(record: &mut TicketRecord, attributes: &Attributes) -> Changes {
    let mut changes = Changes::default();
    for (column, value) in [
        (&mut record.injected_at, &attributes.injected_at),
        (&mut record.downloaded_at, &attributes.downloaded_at),
        (&mut record.assigned_at, &attributes.assigned_at),
        (&mut record.activated_at, &attributes.activated_at),
        (&mut record.checked_at, &attributes.checked_at),
        (&mut record.controlled_at, &attributes.controlled_at),
        (&mut record.deleted_at, &attributes.deleted_at),
    ] {
        changes.patch_instant(column, value);
    }
    changes
}

/// What a merge changed so far.
#[derive(Default)]
struct Changes {
    /// A mapped column changed.
    any: bool,
    /// A column that `ticket_history` follows changed (status, owner e-mail key, holder name).
    history: bool,
}

/// The changes of two parts of a ticket together.
impl BitOr for Changes {
    type Output = Changes;

    fn bitor(self, other: Changes) -> Changes {
        Changes {
            any: self.any || other.any,
            history: self.history || other.history,
        }
    }
}

impl Changes {
    fn set(&mut self, column: &mut String, incoming: &str) {
        if column != incoming {
            incoming.clone_into(column);
            self.any = true;
        }
    }

    /// An absent incoming value keeps the stored one.
    fn keep_or_set(&mut self, column: &mut Option<String>, incoming: &Option<String>) {
        if let Some(value) = incoming {
            self.put(column, value);
        }
    }

    fn keep_or_set_instant(&mut self, column: &mut Option<String>, incoming: Option<Timestamp>) {
        if let Some(at) = incoming {
            self.put(column, at.store_text().as_str());
        }
    }

    /// An absent milestone keeps the stored one; an explicit `null` clears it.
    fn patch_instant(&mut self, column: &mut Option<String>, incoming: &Patch<Timestamp>) {
        match incoming {
            Patch::Absent => {}
            Patch::Clear => self.any |= column.take().is_some(),
            Patch::Set(at) => self.put(column, at.store_text().as_str()),
        }
    }

    /// Sets a column to a present value, in the column's own buffer when it has one.
    fn put(&mut self, column: &mut Option<String>, value: &str) {
        if column.as_deref() != Some(value) {
            match column {
                Some(text) => value.clone_into(text),
                None => *column = Some(value.to_owned()),
            }
            self.any = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;
    use crate::feedback::{Holder, Spectator};
    use crate::timestamp::Timestamp;

    const NOW: &str = "2026-11-27T10:00:00.000Z";
    const LATER: &str = "2026-11-27T10:05:00.000Z";

    fn at(text: &str) -> Option<Timestamp> {
        Timestamp::parse_rfc3339(text)
    }

    fn ticket(status: &str, updated: &str) -> Ticket {
        Ticket {
            ticket_number: "T1".into(),
            status: status.into(),
            last_updated: at(updated),
            owner: Some(Spectator {
                email: Some("a@example.org".into()),
                first_name: Some("Ana".into()),
                ..Spectator::default()
            }),
            ..Ticket::default()
        }
    }

    fn apply(
        stored: Option<&TicketRecord>,
        ticket: &Ticket,
        now: &str,
    ) -> (TicketRecord, bool, bool) {
        match merge(stored.cloned(), ticket, now) {
            Merge::Apply {
                record,
                changed,
                history,
            } => (*record, changed, history),
            Merge::Stale => panic!("unexpectedly stale"),
        }
    }

    #[test]
    fn a_new_ticket_is_printed_stored_and_historised() {
        let (record, changed, history) =
            apply(None, &ticket("INJECTED", "2026-06-01T12:00:00+02:00"), NOW);
        assert!(changed && history);
        assert_eq!(record.ticket_number, "T1");
        assert_eq!(record.s360_state.as_deref(), Some("PRINTED"));
        assert_eq!(record.mobile_status, "INJECTED");
        assert_eq!(
            record.tixngo_updated_at.as_deref(),
            Some("2026-06-01T10:00:00.000Z")
        );
        assert_eq!(record.owner_first_name.as_deref(), Some("Ana"));
        assert_eq!(
            (
                record.first_synced_at.as_str(),
                record.last_synced_at.as_str()
            ),
            (NOW, NOW)
        );
    }

    #[test]
    fn the_same_state_again_is_unchanged_but_touches_last_synced_at() {
        let incoming = ticket("DOWNLOADED", "2026-06-01T12:00:00Z");
        let (first, _, _) = apply(None, &incoming, NOW);
        let (second, changed, history) = apply(Some(&first), &incoming, LATER);
        assert!(!changed && !history);
        assert_eq!(second.first_synced_at, NOW);
        assert_eq!(second.last_synced_at, LATER);
    }

    #[test]
    fn an_older_state_is_stale_and_an_equal_one_is_not() {
        let (stored, _, _) = apply(None, &ticket("DOWNLOADED", "2026-06-01T12:00:00Z"), NOW);
        // 13:59+02:00 is 11:59Z: earlier, although its text sorts later.
        assert_eq!(
            merge(
                Some(stored.clone()),
                &ticket("INJECTED", "2026-06-01T13:59:00+02:00"),
                LATER
            ),
            Merge::Stale
        );
        assert!(matches!(
            merge(
                Some(stored.clone()),
                &ticket("INJECTED", "2026-06-01T14:00:00+02:00"),
                LATER
            ),
            Merge::Apply { changed: true, .. }
        ));
    }

    #[test]
    fn a_ticket_without_last_updated_is_never_stale_and_keeps_the_stored_time() {
        let (stored, _, _) = apply(None, &ticket("DOWNLOADED", "2026-06-01T12:00:00Z"), NOW);
        let mut incoming = ticket("ONLINE_ACTIVATED", "2026-06-01T12:00:00Z");
        incoming.last_updated = None;
        let (record, changed, history) = apply(Some(&stored), &incoming, LATER);
        assert!(changed && history);
        assert_eq!(record.tixngo_updated_at, stored.tixngo_updated_at);
    }

    #[test]
    fn absent_fields_keep_stored_values_inside_objects_too() {
        let (stored, _, _) = apply(None, &ticket("DOWNLOADED", "2026-06-01T12:00:00Z"), NOW);
        let mut incoming = ticket("DOWNLOADED", "2026-06-01T12:01:00Z");
        incoming.owner = Some(Spectator {
            phone: Some("+41 79 000 00 00".into()),
            ..Spectator::default()
        });
        let (record, changed, history) = apply(Some(&stored), &incoming, LATER);
        assert!(changed && !history);
        assert_eq!(record.owner_email.as_deref(), Some("a@example.org"));
        assert_eq!(record.owner_first_name.as_deref(), Some("Ana"));
        assert_eq!(record.owner_phone.as_deref(), Some("+41 79 000 00 00"));
    }

    #[test]
    fn holder_is_patched_and_cleared_by_explicit_null() {
        let mut incoming = ticket("ASSIGNED", "2026-06-01T12:00:00Z");
        incoming.holder = Patch::Set(Holder {
            first_name: Some("Zoë".into()),
            last_name: Some("Müller".into()),
            ..Holder::default()
        });
        let (assigned, _, _) = apply(None, &incoming, NOW);
        incoming.holder = Patch::Set(Holder {
            first_name: Some("Zoé".into()),
            ..Holder::default()
        });
        incoming.last_updated = at("2026-06-01T12:01:00Z");
        let (renamed, changed, history) = apply(Some(&assigned), &incoming, LATER);
        assert!(changed && history);
        assert_eq!(renamed.holder_first_name.as_deref(), Some("Zoé"));
        assert_eq!(renamed.holder_last_name.as_deref(), Some("Müller"));
        incoming.holder = Patch::Absent;
        let (kept, changed, _) = apply(Some(&renamed), &incoming, LATER);
        assert!(!changed);
        assert_eq!(kept.holder_last_name.as_deref(), Some("Müller"));
        incoming.holder = Patch::Clear;
        let (cleared, changed, history) = apply(Some(&kept), &incoming, LATER);
        assert!(changed && history);
        assert_eq!(
            (cleared.holder_first_name, cleared.holder_last_name),
            (None, None)
        );
    }

    #[test]
    fn owner_email_change_is_history_only_beyond_case_and_blanks() {
        let (stored, _, _) = apply(None, &ticket("DOWNLOADED", "2026-06-01T12:00:00Z"), NOW);
        let mut incoming = ticket("DOWNLOADED", "2026-06-01T12:01:00Z");
        incoming.owner.as_mut().unwrap().email = Some(" A@Example.org ".into());
        let (_, changed, history) = apply(Some(&stored), &incoming, LATER);
        assert!(changed && !history);
        incoming.owner.as_mut().unwrap().email = Some("b@example.org".into());
        let (_, _, history) = apply(Some(&stored), &incoming, LATER);
        assert!(history);
    }

    #[test]
    fn attributes_are_normalised_and_kept_when_absent() {
        let mut incoming = ticket("DOWNLOADED", "2026-06-01T12:00:00Z");
        incoming.attributes.downloaded_at = Patch::Set(at("2026-06-01T13:00:00+01:00").unwrap());
        let (stored, _, _) = apply(None, &incoming, NOW);
        assert_eq!(
            stored.downloaded_at.as_deref(),
            Some("2026-06-01T12:00:00.000Z")
        );
        incoming.attributes.downloaded_at = Patch::Absent;
        incoming.attributes.activated_at = Patch::Set(at("2026-06-01T12:30:00Z").unwrap());
        let (record, _, _) = apply(Some(&stored), &incoming, LATER);
        assert_eq!(
            record.downloaded_at.as_deref(),
            Some("2026-06-01T12:00:00.000Z")
        );
        assert_eq!(
            record.activated_at.as_deref(),
            Some("2026-06-01T12:30:00.000Z")
        );
    }

    /// A row whose text columns hold their own name and whose integer columns their position.
    struct Named;

    impl ReadColumns for Named {
        type Error = Infallible;

        fn text(&self, index: usize) -> Result<Option<String>, Infallible> {
            Ok(Some(TicketRecord::COLUMNS[index].to_owned()))
        }

        fn integer(&self, index: usize) -> Result<Option<i64>, Infallible> {
            Ok(i64::try_from(index).ok())
        }
    }

    /// A row of NULLs.
    struct Nulls;

    impl ReadColumns for Nulls {
        type Error = Infallible;

        fn text(&self, _: usize) -> Result<Option<String>, Infallible> {
            Ok(None)
        }

        fn integer(&self, _: usize) -> Result<Option<i64>, Infallible> {
            Ok(None)
        }
    }

    #[test]
    fn every_column_is_read_and_valued_in_its_place_and_null_text_reads_as_empty() {
        let Ok(record) = TicketRecord::read(&Named);
        assert_eq!(record.ticket_number, "ticket_number");
        assert_eq!(record.owner_email.as_deref(), Some("owner_email"));
        assert_eq!(record.cultural_contact_id, Some(34));
        let values = record.values();
        for (index, (column, value)) in TicketRecord::COLUMNS.iter().zip(values).enumerate() {
            match value {
                FieldValue::Text(text) => assert_eq!(text, column),
                FieldValue::OptionalText(text) => assert_eq!(text.as_deref(), Some(*column)),
                FieldValue::OptionalInteger(integer) => {
                    assert_eq!(*integer, i64::try_from(index).ok());
                }
            }
        }
        let Ok(record) = TicketRecord::read(&Nulls);
        assert_eq!(record, TicketRecord::default());
    }

    #[test]
    fn an_assigned_record_equals_its_source_in_every_column() {
        let (Ok(named), Ok(nulls)) = (TicketRecord::read(&Named), TicketRecord::read(&Nulls));
        let mut record = nulls.clone();
        record.assign(&named);
        assert_eq!(record, named);
        record.assign(&nulls);
        assert_eq!(record, nulls);
    }

    #[test]
    fn a_value_is_text_or_an_integer_by_its_column() {
        let Ok(named) = TicketRecord::read(&Named);
        let values = named.values();
        let contact = TicketRecord::COLUMNS
            .iter()
            .position(|c| *c == "cultural_contact_id")
            .unwrap();
        assert_eq!(values[contact].integer(), Some(contact as i64));
        assert_eq!(values[contact].text(), None);
        assert_eq!(values[0].text(), Some("ticket_number"));
        assert_eq!(values[0].integer(), None);
        assert_eq!(values[1].text(), Some("tixngo_ticket_id"));
        let Ok(nulls) = TicketRecord::read(&Nulls);
        assert_eq!(nulls.values()[1].text(), None);
        assert_eq!(nulls.values()[contact].integer(), None);
    }

    /// A ticket carrying only what a test sets: no owner, no attributes.
    fn bare(status: &str, updated: &str) -> Ticket {
        Ticket {
            owner: None,
            ..ticket(status, updated)
        }
    }

    fn holder(first_name: &str) -> Patch<Holder> {
        Patch::Set(Holder {
            first_name: Some(first_name.into()),
            last_name: Some("Müller".into()),
            ..Holder::default()
        })
    }

    #[test]
    fn a_holder_rename_alone_is_stored_and_historised() {
        let mut incoming = bare("ASSIGNED", "2026-06-01T12:00:00Z");
        incoming.holder = holder("Zoë");
        let (stored, _, _) = apply(None, &incoming, NOW);
        incoming.holder = holder("Zoé");
        let (renamed, changed, history) = apply(Some(&stored), &incoming, LATER);
        assert!(changed && history);
        assert_eq!(renamed.holder_first_name.as_deref(), Some("Zoé"));
    }

    #[test]
    fn a_status_change_resending_the_same_holder_is_stored() {
        let mut incoming = bare("ASSIGNED", "2026-06-01T12:00:00Z");
        incoming.holder = holder("Zoë");
        let (stored, _, _) = apply(None, &incoming, NOW);
        incoming.status = "ONLINE_ACTIVATED".into();
        let (record, changed, history) = apply(Some(&stored), &incoming, LATER);
        assert!(changed && history);
        assert_eq!(record.mobile_status, "ONLINE_ACTIVATED");
        // The same holder under the same status is no change at all.
        let (_, changed, history) = apply(Some(&record), &incoming, LATER);
        assert!(!changed && !history);
    }

    #[test]
    fn the_beneficiary_birth_place_region_and_country_are_kept_and_cleared_with_the_holder() {
        let mut incoming = bare("ASSIGNED", "2026-06-01T12:00:00Z");
        incoming.holder = Patch::Set(Holder {
            birth_place: Some("Genève".into()),
            birth_region: Some("GE".into()),
            country_code: Some("CH".into()),
            ..Holder::default()
        });
        let (stored, _, _) = apply(None, &incoming, NOW);
        assert_eq!(
            (
                stored.holder_birth_place.as_deref(),
                stored.holder_birth_region.as_deref(),
                stored.holder_country_code.as_deref()
            ),
            (Some("Genève"), Some("GE"), Some("CH"))
        );
        incoming.holder = Patch::Set(Holder::default());
        let (kept, changed, _) = apply(Some(&stored), &incoming, LATER);
        assert!(!changed);
        assert_eq!(kept.holder_country_code.as_deref(), Some("CH"));
        incoming.holder = Patch::Clear;
        let (cleared, changed, history) = apply(Some(&kept), &incoming, LATER);
        assert!(changed && !history, "no holder name was stored");
        assert_eq!(
            (cleared.holder_birth_place, cleared.holder_country_code),
            (None, None)
        );
    }

    #[test]
    fn an_explicit_null_milestone_clears_it_and_an_absent_one_keeps_it() {
        let mut incoming = bare("ONLINE_ACTIVATED", "2026-06-01T12:00:00Z");
        incoming.attributes.activated_at = Patch::Set(at("2026-06-01T12:00:00Z").unwrap());
        incoming.attributes.checked_at = Patch::Set(at("2026-06-01T11:00:00Z").unwrap());
        let (stored, _, _) = apply(None, &incoming, NOW);
        incoming.status = "DEACTIVATED".into();
        incoming.attributes.activated_at = Patch::Clear;
        incoming.attributes.checked_at = Patch::Absent;
        let (record, changed, _) = apply(Some(&stored), &incoming, LATER);
        assert!(changed);
        assert_eq!(record.activated_at, None);
        assert_eq!(
            record.checked_at.as_deref(),
            Some("2026-06-01T11:00:00.000Z")
        );
        // Clearing what is already clear changes nothing.
        let (_, changed, _) = apply(Some(&record), &incoming, LATER);
        assert!(!changed);
    }

    #[test]
    fn clearing_a_holder_known_by_one_name_only_is_historised() {
        let mut incoming = bare("ASSIGNED", "2026-06-01T12:00:00Z");
        incoming.holder = Patch::Set(Holder {
            last_name: Some("Müller".into()),
            ..Holder::default()
        });
        let (stored, _, _) = apply(None, &incoming, NOW);
        incoming.holder = Patch::Clear;
        let (cleared, changed, history) = apply(Some(&stored), &incoming, LATER);
        assert!(changed && history);
        assert_eq!(cleared.holder_last_name, None);
    }

    #[test]
    fn clearing_a_milestone_alone_is_a_change() {
        let mut incoming = bare("ONLINE_ACTIVATED", "2026-06-01T12:00:00Z");
        incoming.attributes.activated_at = Patch::Set(at("2026-06-01T12:00:00Z").unwrap());
        let (stored, _, _) = apply(None, &incoming, NOW);
        incoming.attributes.activated_at = Patch::Clear;
        let (record, changed, history) = apply(Some(&stored), &incoming, LATER);
        assert!(changed && !history);
        assert_eq!(record.activated_at, None);
    }

    #[test]
    fn s360_state_is_never_changed_once_the_row_exists() {
        let (mut stored, _, _) = apply(None, &ticket("DOWNLOADED", "2026-06-01T12:00:00Z"), NOW);
        stored.s360_state = Some("CONTROLED".into());
        let (record, _, _) = apply(
            Some(&stored),
            &ticket("DELETED", "2026-06-01T12:01:00Z"),
            LATER,
        );
        assert_eq!(record.s360_state.as_deref(), Some("CONTROLED"));
    }
}
