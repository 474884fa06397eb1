//! One ticket of a diff document: decoded from its JSON into a [`Ticket`] and checked (SPEC §4.1),
//! or the reason it cannot be mapped, which never quotes a value.

use serde::Deserialize;
use serde::de::Deserializer;
use serde_json::value::RawValue;

use super::json::{Flag, Known, Object, Text, without_values};
use crate::feedback::status;
use crate::feedback::{Attributes, Holder, Patch, Spectator, Ticket};
use crate::ticket_number;
use crate::timestamp::Timestamp;

/// The raw `taxNumber` of a ticket, read without any other validation: the skip list is checked
/// on it before anything else, so that skipping gets past a malformed ticket.
pub fn raw_ticket_number(raw: &RawValue) -> Option<String> {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(default, rename = "taxNumber")]
        tax_number: Option<Text>,
    }
    // Read as every string of a ticket is ([`Text`]): a number of another type, or holding a
    // NUL character (no store keeps one), leaves the error unnumbered.
    let Text(number) = serde_json::from_str::<Object<Probe>>(raw.get())
        .ok()?
        .0
        .tax_number?;
    Some(number)
}

/// Decodes one raw ticket. The error is the reason it cannot be mapped (kept in `sync_error`).
pub fn decode_ticket(raw: &RawValue) -> Result<Ticket, String> {
    if !raw.get().trim_start().starts_with('{') {
        return Err("the ticket is not a JSON object".to_owned());
    }
    serde_json::from_str::<Mapped>(raw.get())
        .map_err(without_values)?
        .0
}

/// A ticket decoded straight off its document: the ticket, or the reason it cannot be mapped.
/// A ticket serde cannot read ends the reading of the whole document instead (serde cannot go on
/// after it), so only [`decode_ticket`], on a ticket's own text, words those.
pub(super) struct Mapped(pub(super) Result<Ticket, String>);

impl<'de> Deserialize<'de> for Mapped {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = Known::<WireTicket>::deserialize(deserializer)?;
        Ok(Mapped(wire.value.into_ticket(wire.unknown)))
    }
}

/// How far ahead of this host's clock a `lastUpdated` may be (clocks drift, zones get mixed up):
/// beyond it, the date is wrong, and storing it would make every later real change "stale".
const MAX_AHEAD_MILLIS: i64 = 24 * 3600 * 1000;

impl WireTicket {
    /// Checks a decoded ticket (SPEC §4.1) and turns it into a [`Ticket`]; `unknown` names the
    /// top-level fields the mapping does not read.
    fn into_ticket(self, unknown: Vec<String>) -> Result<Ticket, String> {
        let wire = self;
        let mut unknown = FieldNames(unknown);
        let ticket_number = wire.tax_number.ok_or("taxNumber is missing")?.0;
        if !ticket_number::is_valid(&ticket_number) {
            return Err(format!(
                "taxNumber is not a valid ticket number (1 to {} characters of A-Z a-z 0-9 - _ . /)",
                ticket_number::MAX_LEN
            ));
        }
        let status = wire.status.ok_or("status is missing")?.0;
        if status.trim().is_empty() {
            return Err("status is empty".to_owned());
        }
        let last_updated = last_updated(wire.last_updated, wire.last_update)?;
        let holder = match wire.holder {
            Nullable::Absent => unknown.holder("assignee", wire.assignee),
            holder => unknown.holder("holder", holder),
        };
        let owner = wire.spectator_details.map(|s| {
            unknown
                .nested("spectatorDetails", s)
                .into_spectator(&mut unknown)
        });
        let mut email_of = |field: &str, person: Option<Known<WirePerson>>| {
            person.and_then(|p| text(unknown.nested(field, p).email))
        };
        let previous_owner_email = email_of("previousOwner", wire.previous_owner);
        let initial_owner_email = email_of("initialOwner", wire.initial_owner);
        let transfer_recipient_email = wire
            .transfer
            .and_then(|t| text(unknown.nested("transfer", t).recipient_email));
        let attributes = wire
            .attributes
            .map(|a| unknown.nested("attributes", a))
            .unwrap_or_default();
        Ok(Ticket {
            ticket_number,
            tixngo_ticket_id: text(wire.ticket_id),
            barcode: text(wire.barcode),
            event_id: text(wire.event_id),
            status: status::normalise(&status),
            last_updated,
            owner,
            holder,
            previous_owner_email,
            initial_owner_email,
            transfer_recipient_email,
            attributes: attributes.into_attributes()?,
            unknown_fields: unknown.0,
        })
    }
}

/// The names of the fields a ticket holds that the mapping does not read.
struct FieldNames(Vec<String>);

impl FieldNames {
    /// The value of a nested object, its unread fields named as `parent.field`.
    fn nested<T>(&mut self, parent: &str, object: Known<T>) -> T {
        self.0.extend(
            object
                .unknown
                .into_iter()
                .map(|name| format!("{parent}.{name}")),
        );
        object.value
    }

    /// The holder under the field it came in (`holder` or `assignee`): cleared by `null`.
    fn holder(&mut self, field: &str, holder: Nullable<Known<WireHolder>>) -> Patch<Holder> {
        match holder {
            Nullable::Absent => Patch::Absent,
            Nullable::Null => Patch::Clear,
            Nullable::Set(holder) => Patch::Set(self.nested(field, holder).into_holder()),
        }
    }
}

fn text(value: Option<Text>) -> Option<String> {
    value.map(|t| t.0)
}

/// `lastUpdated`, else the older `lastUpdate`: a time, never more than a day ahead of this host.
fn last_updated(
    last_updated: Option<Text>,
    last_update: Option<Text>,
) -> Result<Option<Timestamp>, String> {
    let at = match (last_updated, last_update) {
        (Some(at), _) => Some(instant("lastUpdated", at)?),
        (None, Some(at)) => Some(instant("lastUpdate", at)?),
        (None, None) => None,
    };
    if let Some(at) = at
        && at.millis_since(Timestamp::now()) > MAX_AHEAD_MILLIS
    {
        return Err("lastUpdated is more than 24 h ahead of this host's clock".to_owned());
    }
    Ok(at)
}

fn instant(field: &str, value: Text) -> Result<Timestamp, String> {
    Timestamp::parse_rfc3339(&value.0)
        .ok_or_else(|| format!("{field} is not an RFC 3339 timestamp"))
}

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct WireTicket {
    ticket_id: Option<Text>,
    tax_number: Option<Text>,
    barcode: Option<Text>,
    event_id: Option<Text>,
    status: Option<Text>,
    last_updated: Option<Text>,
    /// The other name TIXNGO's conventions suggest (docs/reference.md §4.1); read when `lastUpdated` is absent.
    last_update: Option<Text>,
    spectator_details: Option<Known<WireSpectator>>,
    holder: Nullable<Known<WireHolder>>,
    /// Another name for the holder (docs/reference.md §4.1); read when `holder` is absent.
    assignee: Nullable<Known<WireHolder>>,
    previous_owner: Option<Known<WirePerson>>,
    initial_owner: Option<Known<WirePerson>>,
    transfer: Option<Known<WireTransfer>>,
    attributes: Option<Known<WireAttributes>>,
}

/// A field that can be absent (the default), explicitly `null`, or set: serde reads a `null` into
/// an `Option` as `None`, which would make it absent.
#[derive(Default)]
enum Nullable<T> {
    #[default]
    Absent,
    Null,
    Set(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Nullable<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Option::<T>::deserialize(deserializer)?.map_or(Nullable::Null, Nullable::Set))
    }
}

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct WireSpectator {
    title: Option<Text>,
    first_name: Option<Text>,
    last_name: Option<Text>,
    date_of_birth: Option<Text>,
    email: Option<Text>,
    nationality: Option<Text>,
    id_card_number: Option<Text>,
    phone_number: Option<Text>,
    residence_country: Option<Text>,
    language: Option<Text>,
    organizer_spectator_preference: Option<Known<WirePreference>>,
}

impl WireSpectator {
    fn into_spectator(self, unknown: &mut FieldNames) -> Spectator {
        let preference = self
            .organizer_spectator_preference
            .map(|p| unknown.nested("spectatorDetails.organizerSpectatorPreference", p));
        Spectator {
            title: text(self.title),
            first_name: text(self.first_name),
            last_name: text(self.last_name),
            birth_date: text(self.date_of_birth),
            email: text(self.email),
            nationality: text(self.nationality),
            id_number: text(self.id_card_number),
            phone: text(self.phone_number),
            residence_country: text(self.residence_country),
            language: text(self.language),
            allow_promo_email: preference
                .as_ref()
                .and_then(|p| p.allow_promo_email.as_ref().map(|f| f.0)),
            allow_third_party_email: preference
                .and_then(|p| p.allow_third_party_email.map(|f| f.0)),
        }
    }
}

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct WirePreference {
    allow_promo_email: Option<Flag>,
    allow_third_party_email: Option<Flag>,
}

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct WireHolder {
    first_name: Option<Text>,
    last_name: Option<Text>,
    date_of_birth: Option<Text>,
    id_card_number: Option<Text>,
    nationality: Option<Text>,
    birth_place: Option<Text>,
    birth_region: Option<Text>,
    country_code: Option<Text>,
}

impl WireHolder {
    fn into_holder(self) -> Holder {
        Holder {
            first_name: text(self.first_name),
            last_name: text(self.last_name),
            birth_date: text(self.date_of_birth),
            id_number: text(self.id_card_number),
            nationality: text(self.nationality),
            birth_place: text(self.birth_place),
            birth_region: text(self.birth_region),
            country_code: text(self.country_code),
        }
    }
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct WirePerson {
    email: Option<Text>,
}

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct WireTransfer {
    recipient_email: Option<Text>,
}

/// `attributes`: each milestone absent, `null` or set.
#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct WireAttributes {
    injected_at: Nullable<Text>,
    downloaded_at: Nullable<Text>,
    assigned_at: Nullable<Text>,
    activated_at: Nullable<Text>,
    checked_at: Nullable<Text>,
    controlled_at: Nullable<Text>,
    deleted_at: Nullable<Text>,
}

impl WireAttributes {
    fn into_attributes(self) -> Result<Attributes, String> {
        fn milestone(field: &str, value: Nullable<Text>) -> Result<Patch<Timestamp>, String> {
            Ok(match value {
                Nullable::Absent => Patch::Absent,
                Nullable::Null => Patch::Clear,
                Nullable::Set(at) => Patch::Set(instant(field, at)?),
            })
        }
        Ok(Attributes {
            injected_at: milestone("attributes.injectedAt", self.injected_at)?,
            downloaded_at: milestone("attributes.downloadedAt", self.downloaded_at)?,
            assigned_at: milestone("attributes.assignedAt", self.assigned_at)?,
            activated_at: milestone("attributes.activatedAt", self.activated_at)?,
            checked_at: milestone("attributes.checkedAt", self.checked_at)?,
            controlled_at: milestone("attributes.controlledAt", self.controlled_at)?,
            deleted_at: milestone("attributes.deletedAt", self.deleted_at)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tixngo::wire::{PageTicket, read_mappable_page};

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_owned()).unwrap()
    }

    #[test]
    fn decodes_a_full_ticket() {
        let t = decode_ticket(&raw(
            r#"{"ticketId":"TX-1","taxNumber":"2026000001","barcode":"123","eventId":"EV-1",
                "status":"ASSIGNED","lastUpdated":"2026-06-01T14:00:00+02:00",
                "spectatorDetails":{"title":"Ms","firstName":"Zoë","lastName":"Müller","dateOfBirth":"1990-01-02",
                  "email":"zoe@example.org","nationality":"CHE","idCardNumber":"X1","phoneNumber":"+41",
                  "residenceCountry":"CHE","language":"de",
                  "organizerSpectatorPreference":{"allowPromoEmail":true,"allowThirdPartyEmail":false}},
                "holder":{"firstName":"Łukasz","lastName":"Wójcik","dateOfBirth":"2001-03-04","idCardNumber":"P9","nationality":"POL"},
                "previousOwner":{"email":"prev@example.org"},"initialOwner":{"email":"init@example.org","firstName":"I"},
                "transfer":{"recipientEmail":"r@example.org"},
                "attributes":{"injectedAt":"2026-05-01T00:00:00Z","deletedAt":null},
                "somethingNew":{"nested":[1,2,3]}}"#,
        ))
        .unwrap();
        assert_eq!(t.ticket_number, "2026000001");
        assert_eq!(t.status, "ASSIGNED");
        assert_eq!(
            t.last_updated.unwrap().to_string(),
            "2026-06-01T12:00:00.000Z"
        );
        let owner = t.owner.unwrap();
        assert_eq!(owner.first_name.as_deref(), Some("Zoë"));
        assert_eq!(
            (owner.allow_promo_email, owner.allow_third_party_email),
            (Some(true), Some(false))
        );
        let Patch::Set(holder) = t.holder else {
            panic!("holder")
        };
        assert_eq!(holder.id_number.as_deref(), Some("P9"));
        assert_eq!(t.previous_owner_email.as_deref(), Some("prev@example.org"));
        assert_eq!(t.initial_owner_email.as_deref(), Some("init@example.org"));
        assert_eq!(t.transfer_recipient_email.as_deref(), Some("r@example.org"));
        assert_eq!(
            t.attributes.injected_at,
            Patch::Set(Timestamp::parse_rfc3339("2026-05-01T00:00:00Z").unwrap())
        );
        assert_eq!(
            t.attributes.deleted_at,
            Patch::Clear,
            "an explicit null clears"
        );
        assert_eq!(t.attributes.checked_at, Patch::Absent);
        assert_eq!(t.unknown_fields, ["somethingNew", "initialOwner.firstName"]);
    }

    #[test]
    fn statuses_are_normalised_and_the_proposed_field_names_are_read_too() {
        let t = decode_ticket(&raw(
            r#"{"taxNumber":"1","status":" pending ","lastUpdate":"2026-06-01T12:00:00Z",
                "assignee":{"firstName":"Zoë","birthPlace":"Genève","birthRegion":"GE","countryCode":"CH"}}"#,
        ))
        .unwrap();
        assert_eq!(t.status, "PENDING_TRANSFER");
        assert_eq!(
            t.last_updated.unwrap().to_string(),
            "2026-06-01T12:00:00.000Z"
        );
        let Patch::Set(holder) = t.holder else {
            panic!("assignee")
        };
        assert_eq!(
            (
                holder.first_name.as_deref(),
                holder.birth_place.as_deref(),
                holder.birth_region.as_deref(),
                holder.country_code.as_deref()
            ),
            (Some("Zoë"), Some("Genève"), Some("GE"), Some("CH"))
        );
        assert!(t.unknown_fields.is_empty(), "{:?}", t.unknown_fields);
        // The documented names win when both are sent.
        let t = decode_ticket(&raw(
            r#"{"taxNumber":"1","status":"X","lastUpdated":"2026-06-01T12:00:00Z","lastUpdate":"2020-01-01T00:00:00Z",
                "holder":null,"assignee":{"firstName":"A"}}"#,
        ))
        .unwrap();
        assert_eq!(
            t.last_updated.unwrap().to_string(),
            "2026-06-01T12:00:00.000Z"
        );
        assert_eq!(t.holder, Patch::Clear);
    }

    #[test]
    fn fields_the_mapping_does_not_read_are_named_not_valued() {
        let t = decode_ticket(&raw(
            r#"{"taxNumber":"1","status":"X","eventName":"Final","seat":{"row":"secret-9"},
                "spectatorDetails":{"email":"a@x.org","nickName":"secret-1",
                  "organizerSpectatorPreference":{"allowSms":true}},
                "holder":{"fi\u0072stName":"A","middleName":"secret-2"},"attributes":{"resoldAt":null}}"#,
        ))
        .unwrap();
        assert_eq!(
            t.unknown_fields,
            [
                "eventName",
                "seat",
                "holder.middleName",
                "spectatorDetails.nickName",
                "spectatorDetails.organizerSpectatorPreference.allowSms",
                "attributes.resoldAt",
            ]
        );
        let Patch::Set(holder) = t.holder else {
            panic!("holder")
        };
        assert_eq!(
            holder.first_name.as_deref(),
            Some("A"),
            "an escaped key is read"
        );
        // The one-pass reading of a page names them too.
        let body = br#"{"result":[{"taxNumber":"1","status":"X","extra":1}]}"#;
        let page = read_mappable_page(body).unwrap();
        assert!(
            matches!(&page.tickets[0], PageTicket::Decoded(t) if t.unknown_fields == ["extra"])
        );
    }

    #[test]
    fn a_ticket_dated_more_than_a_day_ahead_cannot_be_mapped() {
        for field in ["lastUpdated", "lastUpdate"] {
            let json =
                format!(r#"{{"taxNumber":"1","status":"X","{field}":"9999-12-31T00:00:00Z"}}"#);
            let reason = decode_ticket(&raw(&json)).unwrap_err();
            assert!(reason.contains("24 h ahead"), "{reason}");
        }
        let soon = Timestamp::from_system_time(
            std::time::SystemTime::now() + std::time::Duration::from_secs(23 * 3600),
        );
        let json = format!(r#"{{"taxNumber":"1","status":"X","lastUpdated":"{soon}"}}"#);
        assert!(
            decode_ticket(&raw(&json)).is_ok(),
            "a clock a few hours off is tolerated"
        );
    }

    #[test]
    fn holder_absent_null_and_set_are_told_apart() {
        let absent = decode_ticket(&raw(r#"{"taxNumber":"1","status":"X"}"#)).unwrap();
        assert_eq!(absent.holder, Patch::Absent);
        let null = decode_ticket(&raw(r#"{"taxNumber":"1","status":"X","holder":null}"#)).unwrap();
        assert_eq!(null.holder, Patch::Clear);
        let set = decode_ticket(&raw(r#"{"taxNumber":"1","status":"X","holder":{}}"#)).unwrap();
        assert_eq!(set.holder, Patch::Set(Holder::default()));
    }

    #[test]
    fn unmappable_tickets_give_a_reason_without_the_value() {
        for (json, needle) in [
            ("[]", "not a JSON object"),
            ("\"T1\"", "not a JSON object"),
            (r#"{"status":"X"}"#, "taxNumber is missing"),
            (r#"{"taxNumber":"1"}"#, "status is missing"),
            (r#"{"taxNumber":"1","status":" "}"#, "status is empty"),
            (
                r#"{"taxNumber":"1 2","status":"X"}"#,
                "taxNumber is not a valid",
            ),
            (
                r#"{"taxNumber":"","status":"X"}"#,
                "taxNumber is not a valid",
            ),
            (
                r#"{"taxNumber":12345,"status":"X"}"#,
                "expected a string, found a number",
            ),
            (
                r#"{"taxNumber":"1","status":"X","lastUpdated":"yesterday"}"#,
                "lastUpdated is not an RFC 3339",
            ),
            (
                r#"{"taxNumber":"1","status":"X","attributes":{"checkedAt":"2026-02-30T00:00:00Z"}}"#,
                "attributes.checkedAt",
            ),
            (
                r#"{"taxNumber":"1","status":"X","spectatorDetails":{"phoneNumber":41790000000}}"#,
                "found a number",
            ),
            (
                r#"{"taxNumber":"1","status":"X","spectatorDetails":"secret@example.org"}"#,
                "line 1",
            ),
            (
                r#"{"taxNumber":"1","status":"X","holder":{"lastName":"secret\u0000"}}"#,
                "a string holding a NUL character",
            ),
            (
                r#"{"taxNumber":"1","status":"X","spectatorDetails":{"organizerSpectatorPreference":{"allowPromoEmail":"yes-secret"}}}"#,
                "expected a boolean, found a string",
            ),
        ] {
            let reason = decode_ticket(&raw(json)).expect_err(json);
            assert!(reason.contains(needle), "{json}: {reason}");
            for secret in ["41790000000", "secret", "12345"] {
                assert!(
                    !reason.contains(secret),
                    "{json}: the reason quotes the value: {reason}"
                );
            }
        }
    }

    #[test]
    fn raw_ticket_number_reads_past_other_errors() {
        assert_eq!(
            raw_ticket_number(&raw(r#"{"taxNumber":"T-9","status":5}"#)).as_deref(),
            Some("T-9")
        );
        assert_eq!(
            raw_ticket_number(&raw(r#"{"taxNumber":" T 9 "}"#)).as_deref(),
            Some(" T 9 ")
        );
        assert_eq!(raw_ticket_number(&raw(r#"{"taxNumber":9}"#)), None);
        assert_eq!(raw_ticket_number(&raw(r#"{"taxNumber":"T\u00009"}"#)), None);
        assert_eq!(raw_ticket_number(&raw("[1]")), None);
    }
}
