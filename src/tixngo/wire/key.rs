//! The pagination key: the feed position TIXNGO hands out, sent back and saved.

/// A pagination key that may be sent and saved (SPEC §2 input rules): at most
/// [`PaginationKey::MAX_BYTES`] of printable ASCII. The one check for a key TIXNGO sent,
/// `cursor set KEY` and `--pagination-key KEY`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaginationKey(String);

impl PaginationKey {
    pub const MAX_BYTES: usize = 4096;

    /// Checks a key; the error says why it is refused, without quoting it.
    pub fn new(key: String) -> Result<PaginationKey, String> {
        if key.len() > Self::MAX_BYTES {
            return Err(format!(
                "is {} bytes long, over the limit of {} bytes",
                key.len(),
                Self::MAX_BYTES
            ));
        }
        if let Some(at) = key.bytes().position(|b| !(b' '..=b'~').contains(&b)) {
            return Err(format!(
                "holds a character that is not printable ASCII (at byte {at})"
            ));
        }
        Ok(PaginationKey(key))
    }

    /// The key a run starts from: the empty key is none, the start of the feed.
    pub fn start(self) -> Option<PaginationKey> {
        (!self.0.is_empty()).then_some(self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagination_keys_are_short_printable_ascii() {
        assert!(PaginationKey::new("pk1.a ~!".into()).is_ok());
        assert!(PaginationKey::new("x".repeat(PaginationKey::MAX_BYTES)).is_ok());
        for bad in [
            "x".repeat(PaginationKey::MAX_BYTES + 1),
            "a\nb".into(),
            "a\u{1b}[2J".into(),
            "clé".into(),
        ] {
            let why = PaginationKey::new(bad.clone()).unwrap_err();
            assert!(!why.contains(&bad), "{why}");
        }
    }
}
