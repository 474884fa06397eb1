//! TIXNGO's mobile statuses as the rules see them: normalised, and told apart from the ones
//! TIXNGO documents for its V3 and V4 interfaces (docs/reference.md, Glossary: mobile status).

/// Every status TIXNGO documents, V3 lifecycle and V4, in their normal form. The legacy `PENDING`
/// is not here: it is normalised to `PENDING_TRANSFER`.
const DOCUMENTED: [&str; 19] = [
    "INJECTED",
    "DOWNLOADED",
    "ASSIGNED",
    "CONTROLLED",
    "PENDING_TRANSFER",
    "FAILURE_TRANSFER",
    "TRANSFERRED",
    "BT_ACTIVATED",
    "MANUAL_ACTIVATED",
    "OFFLINE_ACTIVATED",
    "ONLINE_ACTIVATED",
    "DELETION_PENDING",
    "DELETED",
    "ACTIVATED",
    "DEACTIVATED",
    "DEFAULT",
    "INVALID",
    "FAILURE",
    "NOT_DOWNLOADED",
];

/// Spellings of `PENDING_TRANSFER` that TIXNGO's documentation uses: the legacy V3 name, and the
/// one of S-360's 4.1 table.
const PENDING_TRANSFER_ALIASES: [&str; 2] = ["PENDING", "PENDING_TRANFER"];

/// A received status in the form the store keeps and the rules compare: trimmed, ASCII
/// upper-case, with the documented aliases of `PENDING_TRANSFER` folded into it.
pub fn normalise(status: &str) -> String {
    let upper = status.trim().to_ascii_uppercase();
    if PENDING_TRANSFER_ALIASES.contains(&upper.as_str()) {
        return super::contacts::PENDING_TRANSFER.to_owned();
    }
    upper
}

/// Whether a normalised status is one TIXNGO documents; any other is stored as sent, but only
/// the owner-change rule applies to it.
pub fn is_documented(status: &str) -> bool {
    DOCUMENTED.contains(&status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_trimmed_and_upper_cased() {
        assert_eq!(normalise(" downloaded\t"), "DOWNLOADED");
        assert_eq!(normalise("Online_Activated"), "ONLINE_ACTIVATED");
        // ASCII only: a non-ASCII letter is left as it is, never turned into another status.
        assert_eq!(normalise("dowṅloaded"), "DOWṅLOADED");
    }

    #[test]
    fn the_documented_spellings_of_a_pending_transfer_are_one_status() {
        for sent in ["PENDING", " pending ", "PENDING_TRANFER", "pending_tranfer"] {
            assert_eq!(normalise(sent), "PENDING_TRANSFER", "{sent:?}");
        }
        assert_eq!(normalise("PENDING_TRANSFERS"), "PENDING_TRANSFERS");
    }

    #[test]
    fn v3_and_v4_statuses_are_documented_and_others_are_not() {
        for status in ["INJECTED", "NOT_DOWNLOADED", "FAILURE", "DELETION_PENDING"] {
            assert!(is_documented(status), "{status}");
        }
        for status in ["RESALE_PENDING", "PENDING", "downloaded", ""] {
            assert!(!is_documented(status), "{status}");
        }
        assert!(is_documented(&normalise("pending")));
    }
}
