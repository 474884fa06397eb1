//! A ticket as the feedback rules see it: what TIXNGO reported, decoded and checked by the wire
//! module (`tixngo::wire`), with no trace of its JSON.

use crate::timestamp::Timestamp;

/// A ticket as TIXNGO reports it: the current state of one mobile ticket.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ticket {
    /// S-360 ticket number (TIXNGO tax number), validated against the grammar of SPEC §2.
    pub ticket_number: String,
    pub tixngo_ticket_id: Option<String>,
    pub barcode: Option<String>,
    pub event_id: Option<String>,
    /// The mobile status, an open set (V3 and V4 names, and whatever TIXNGO adds), normalised
    /// (see [`super::status::normalise`]).
    pub status: String,
    /// When the ticket last changed in TIXNGO (`lastUpdated`, else `lastUpdate`); `None` means
    /// it is never stale.
    pub last_updated: Option<Timestamp>,
    /// `spectatorDetails`: the current owner, the wallet holding the ticket.
    pub owner: Option<Spectator>,
    /// The assignee (S-360 beneficiary): `holder`, else `assignee`.
    pub holder: Patch<Holder>,
    pub previous_owner_email: Option<String>,
    pub initial_owner_email: Option<String>,
    /// `transfer.recipientEmail`: the recipient of a pending or failed transfer.
    pub transfer_recipient_email: Option<String>,
    pub attributes: Attributes,
    /// The fields TIXNGO sent that the mapping does not read, by name (`a.b` inside objects):
    /// the ticket's own first, then those of each object it reads. Never their values.
    pub unknown_fields: Vec<String>,
}

/// A field that can be absent (keep the stored value), explicitly `null` (clear it) or set.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Patch<T> {
    #[default]
    Absent,
    Clear,
    Set(T),
}

/// `spectatorDetails`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Spectator {
    pub title: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub birth_date: Option<String>,
    pub email: Option<String>,
    pub nationality: Option<String>,
    pub id_number: Option<String>,
    pub phone: Option<String>,
    pub residence_country: Option<String>,
    pub language: Option<String>,
    pub allow_promo_email: Option<bool>,
    pub allow_third_party_email: Option<bool>,
}

/// `holder`: the assignee of the ticket.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Holder {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub birth_date: Option<String>,
    pub id_number: Option<String>,
    pub nationality: Option<String>,
    /// S-360's beneficiary `BIRTH_PLACE`, `BIRTH_REGION` and `COUNTRY_CODE` (docs/reference.md §4.1).
    pub birth_place: Option<String>,
    pub birth_region: Option<String>,
    pub country_code: Option<String>,
}

/// `attributes`: when each V4 milestone was reached. An explicit `null` clears a milestone that
/// no longer holds (a deactivation, a check-out, a re-injection after a deletion).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Attributes {
    pub injected_at: Patch<Timestamp>,
    pub downloaded_at: Patch<Timestamp>,
    pub assigned_at: Patch<Timestamp>,
    pub activated_at: Patch<Timestamp>,
    pub checked_at: Patch<Timestamp>,
    pub controlled_at: Patch<Timestamp>,
    pub deleted_at: Patch<Timestamp>,
}
