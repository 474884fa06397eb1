use super::*;

// -------------------------------------------------------------------------------------------------
// The merge (SPEC §4.4)
// -------------------------------------------------------------------------------------------------

pub(super) const NOW: &str = "2026-11-27T10:00:00.000Z";
pub(super) const LATER: &str = "2026-11-27T10:05:00.000Z";

/// A few instants, close together, so that equal, earlier and later all occur.
pub(super) fn instant() -> impl Strategy<Value = Timestamp> {
    (0u32..6).prop_map(|n| {
        Timestamp::parse_rfc3339(&format!("2026-06-01T12:00:00.{:03}Z", n * 7)).expect("valid")
    })
}

fn small_text() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop::sample::select(
        &["a", "b", "A", " a@x.org", "a@x.org", "B@X.ORG", ""][..],
    ))
    .prop_map(|t| t.map(str::to_owned))
}

fn record() -> impl Strategy<Value = TicketRecord> {
    (
        prop::collection::vec(small_text(), 26),
        prop::option::of(instant()),
        prop::option::of(prop::sample::select(&["PRINTED", "PAID", "CANCELLED"][..])),
        prop::option::of(1i64..6),
        prop::sample::select(&["INJECTED", "DOWNLOADED", "ASSIGNED"][..]),
        // Milestones as the store holds them: instants in its form (so that an incoming equal
        // one is no change), or none.
        prop::collection::vec(prop::option::of(instant()), 7),
    )
        .prop_map(|(texts, updated, state, cultural, status, milestones)| {
            let mut t = texts.into_iter();
            let mut next = || t.next().unwrap();
            let mut m = milestones.into_iter().map(|at| at.map(|t| t.to_string()));
            let mut milestone = || m.next().unwrap();
            TicketRecord {
                ticket_number: "T1".into(),
                tixngo_ticket_id: next(),
                barcode: next(),
                event_id: next(),
                s360_state: state.map(str::to_owned),
                mobile_status: status.into(),
                tixngo_updated_at: updated.map(|t| t.to_string()),
                owner_email: next(),
                owner_title: next(),
                owner_first_name: next(),
                owner_last_name: next(),
                owner_birth_date: next(),
                owner_nationality: next(),
                owner_id_number: next(),
                owner_phone: next(),
                owner_residence_country: next(),
                owner_language: next(),
                holder_first_name: next(),
                holder_last_name: next(),
                holder_birth_date: next(),
                holder_id_number: next(),
                holder_nationality: next(),
                holder_birth_place: next(),
                holder_birth_region: next(),
                holder_country_code: next(),
                previous_owner_email: next(),
                initial_owner_email: next(),
                injected_at: milestone(),
                downloaded_at: milestone(),
                assigned_at: milestone(),
                activated_at: milestone(),
                checked_at: milestone(),
                controlled_at: milestone(),
                deleted_at: milestone(),
                cultural_contact_id: cultural,
                first_synced_at: "2026-01-01T00:00:00.000Z".into(),
                last_synced_at: "2026-01-02T00:00:00.000Z".into(),
            }
        })
}

fn spectator() -> impl Strategy<Value = Spectator> {
    (
        prop::collection::vec(small_text(), 10),
        prop::option::of(any::<bool>()),
        prop::option::of(any::<bool>()),
    )
        .prop_map(|(texts, promo, third)| {
            let mut t = texts.into_iter();
            let mut next = || t.next().unwrap();
            Spectator {
                title: next(),
                first_name: next(),
                last_name: next(),
                birth_date: next(),
                email: next(),
                nationality: next(),
                id_number: next(),
                phone: next(),
                residence_country: next(),
                language: next(),
                allow_promo_email: promo,
                allow_third_party_email: third,
            }
        })
}

fn incoming_ticket() -> impl Strategy<Value = Ticket> {
    let holder = prop_oneof![
        Just(Patch::Absent),
        Just(Patch::Clear),
        prop::collection::vec(small_text(), 8).prop_map(|texts| {
            let mut t = texts.into_iter();
            let mut next = || t.next().unwrap();
            Patch::Set(Holder {
                first_name: next(),
                last_name: next(),
                birth_date: next(),
                id_number: next(),
                nationality: next(),
                birth_place: next(),
                birth_region: next(),
                country_code: next(),
            })
        }),
    ];
    (
        prop::sample::select(&["INJECTED", "DOWNLOADED", "ASSIGNED", "TRANSFERRED"][..]),
        prop::option::of(instant()),
        prop::collection::vec(small_text(), 6),
        prop::option::of(spectator()),
        holder,
        prop::collection::vec(milestone(), 7),
    )
        .prop_map(|(status, updated, texts, owner, holder, at)| {
            let mut t = texts.into_iter();
            let mut next = || t.next().unwrap();
            Ticket {
                ticket_number: "T1".into(),
                tixngo_ticket_id: next(),
                barcode: next(),
                event_id: next(),
                status: status.into(),
                last_updated: updated,
                owner,
                holder,
                previous_owner_email: next(),
                initial_owner_email: next(),
                transfer_recipient_email: next(),
                attributes: Attributes {
                    injected_at: at[0].clone(),
                    downloaded_at: at[1].clone(),
                    assigned_at: at[2].clone(),
                    activated_at: at[3].clone(),
                    checked_at: at[4].clone(),
                    controlled_at: at[5].clone(),
                    deleted_at: at[6].clone(),
                },
                unknown_fields: Vec::new(),
            }
        })
}

/// An incoming milestone: absent, an explicit `null`, or an instant.
fn milestone() -> impl Strategy<Value = Patch<Timestamp>> {
    prop_oneof![
        2 => Just(Patch::Absent),
        1 => Just(Patch::Clear),
        3 => instant().prop_map(Patch::Set),
    ]
}

/// The row SPEC §4.4 step 4 asks for: every present incoming value replaces the stored one, an
/// absent one keeps it, an explicit null holder clears the holder; set-once columns kept.
fn expected_row(stored: Option<&TicketRecord>, t: &Ticket, now: &str) -> TicketRecord {
    let old = stored.cloned().unwrap_or_else(|| TicketRecord {
        ticket_number: t.ticket_number.clone(),
        s360_state: Some("PRINTED".into()),
        first_synced_at: now.into(),
        ..TicketRecord::default()
    });
    let pick = |new: &Option<String>, old: &Option<String>| new.clone().or_else(|| old.clone());
    let at = |new: Option<Timestamp>, old: &Option<String>| {
        new.map(|t| t.to_string()).or_else(|| old.clone())
    };
    let patched = |new: &Patch<Timestamp>, old: &Option<String>| match new {
        Patch::Absent => old.clone(),
        Patch::Clear => None,
        Patch::Set(t) => Some(t.to_string()),
    };
    let owner = t.owner.clone().unwrap_or_default();
    let (holder, clear) = match &t.holder {
        Patch::Absent => (Holder::default(), false),
        Patch::Clear => (Holder::default(), true),
        Patch::Set(h) => (h.clone(), false),
    };
    let hold = |new: &Option<String>, old: &Option<String>| {
        if clear { None } else { pick(new, old) }
    };
    let a = &t.attributes;
    TicketRecord {
        ticket_number: old.ticket_number.clone(),
        tixngo_ticket_id: pick(&t.tixngo_ticket_id, &old.tixngo_ticket_id),
        barcode: pick(&t.barcode, &old.barcode),
        event_id: pick(&t.event_id, &old.event_id),
        s360_state: old.s360_state.clone(),
        mobile_status: t.status.clone(),
        tixngo_updated_at: at(t.last_updated, &old.tixngo_updated_at),
        owner_email: pick(&owner.email, &old.owner_email),
        owner_title: pick(&owner.title, &old.owner_title),
        owner_first_name: pick(&owner.first_name, &old.owner_first_name),
        owner_last_name: pick(&owner.last_name, &old.owner_last_name),
        owner_birth_date: pick(&owner.birth_date, &old.owner_birth_date),
        owner_nationality: pick(&owner.nationality, &old.owner_nationality),
        owner_id_number: pick(&owner.id_number, &old.owner_id_number),
        owner_phone: pick(&owner.phone, &old.owner_phone),
        owner_residence_country: pick(&owner.residence_country, &old.owner_residence_country),
        owner_language: pick(&owner.language, &old.owner_language),
        holder_first_name: hold(&holder.first_name, &old.holder_first_name),
        holder_last_name: hold(&holder.last_name, &old.holder_last_name),
        holder_birth_date: hold(&holder.birth_date, &old.holder_birth_date),
        holder_id_number: hold(&holder.id_number, &old.holder_id_number),
        holder_nationality: hold(&holder.nationality, &old.holder_nationality),
        holder_birth_place: hold(&holder.birth_place, &old.holder_birth_place),
        holder_birth_region: hold(&holder.birth_region, &old.holder_birth_region),
        holder_country_code: hold(&holder.country_code, &old.holder_country_code),
        previous_owner_email: pick(&t.previous_owner_email, &old.previous_owner_email),
        initial_owner_email: pick(&t.initial_owner_email, &old.initial_owner_email),
        injected_at: patched(&a.injected_at, &old.injected_at),
        downloaded_at: patched(&a.downloaded_at, &old.downloaded_at),
        assigned_at: patched(&a.assigned_at, &old.assigned_at),
        activated_at: patched(&a.activated_at, &old.activated_at),
        checked_at: patched(&a.checked_at, &old.checked_at),
        controlled_at: patched(&a.controlled_at, &old.controlled_at),
        deleted_at: patched(&a.deleted_at, &old.deleted_at),
        cultural_contact_id: old.cultural_contact_id,
        first_synced_at: old.first_synced_at.clone(),
        last_synced_at: now.into(),
    }
}

proptest! {
    #![proptest_config(config(4000))]

    #[test]
    fn merge_follows_the_stale_rule_and_patches_field_by_field(
        stored in prop::option::of(record()),
        ticket in incoming_ticket(),
    ) {
        let stored_at = stored
            .as_ref()
            .and_then(|s| s.tixngo_updated_at.as_deref())
            .map(|t| Timestamp::parse_rfc3339(t).unwrap());
        let stale = matches!((stored_at, ticket.last_updated), (Some(old), Some(new)) if old > new);
        let (record, changed, history) = match merge(stored.clone(), &ticket, NOW) {
            Merge::Stale => {
                prop_assert!(stale, "stale without a later stored time");
                return Ok(());
            }
            Merge::Apply { record, changed, history } => (*record, changed, history),
        };
        prop_assert!(!stale, "a later stored time was overwritten");
        prop_assert_eq!(&record, &expected_row(stored.as_ref(), &ticket, NOW));
        match &stored {
            None => prop_assert!(changed && history),
            Some(old) => {
                let mut same_time = record.clone();
                same_time.last_synced_at.clone_from(&old.last_synced_at);
                prop_assert_eq!(changed, &same_time != old);
                let due = old.mobile_status != record.mobile_status
                    || email_key(old.owner_email.as_deref()) != email_key(record.owner_email.as_deref())
                    || old.holder_first_name != record.holder_first_name
                    || old.holder_last_name != record.holder_last_name;
                prop_assert_eq!(history, due);
                prop_assert_eq!(&record.s360_state, &old.s360_state);
                prop_assert_eq!(&record.first_synced_at, &old.first_synced_at);
                prop_assert_eq!(record.cultural_contact_id, old.cultural_contact_id);
            }
        }
        // The same ticket again: applied (an equal time is not stale), nothing changes.
        match merge(Some(record.clone()), &ticket, LATER) {
            Merge::Stale => prop_assert!(false, "the same state again is stale"),
            Merge::Apply { record: again, changed, history } => {
                prop_assert!(!changed && !history, "not idempotent");
                let mut again = *again;
                prop_assert_eq!(&again.last_synced_at, LATER);
                again.last_synced_at = record.last_synced_at.clone();
                prop_assert_eq!(again, record);
            }
        }
    }
}
