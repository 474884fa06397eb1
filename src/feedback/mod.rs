//! The feedback rules (S-360 4.1 and 4.2) as pure functions: what the store holds for a ticket and
//! the ticket TIXNGO sent in, to the changes to make. No I/O here; the store applies the changes.

pub mod contacts;
mod record;
pub mod sentinel;
pub mod status;
mod ticket;

pub use record::{FieldValue, Merge, ReadColumns, TicketRecord, is_stale, merge};
pub use ticket::{Attributes, Holder, Patch, Spectator, Ticket};

/// The key e-mails are compared on: trimmed of blanks and ASCII-lowercased, exactly like the
/// store's `lower(trim(email, ' \t\n\r'))`, so that look-ups in Rust and in SQL agree.
/// `None` for a missing or blank address.
pub fn email_key(email: Option<&str>) -> Option<String> {
    let trimmed = trim_email(email?);
    (!trimmed.is_empty()).then(|| trimmed.to_ascii_lowercase())
}

/// An e-mail trimmed as the store trims it (`trim(email, ' \t\n\r')`), the blanks of
/// [`email_key`] and no others: trimmed of every Unicode blank, an address with a no-break space
/// around it could never be found again.
pub fn trim_email(email: &str) -> &str {
    email.trim_matches([' ', '\t', '\n', '\r'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_key_trims_and_folds_ascii_case_only() {
        assert_eq!(
            email_key(Some("  Jose.Nunez@Example.ORG \t")).unwrap(),
            "jose.nunez@example.org"
        );
        // Like SQLite's lower(): non-ASCII letters keep their case.
        assert_eq!(email_key(Some("ÉLODIE@x.org")).unwrap(), "Élodie@x.org");
        assert_eq!(email_key(Some(" \r\n")), None);
        assert_eq!(email_key(None), None);
    }
}
