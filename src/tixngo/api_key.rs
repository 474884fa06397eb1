//! The organizer's API key (SPEC §7): checked as a header value, read from a key file that only
//! its owner may read, never shown by `Debug`.

use std::fmt;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::error::Error;

/// The organizer's API key. Its `Debug` never shows it.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    /// Checks a key (already trimmed): not empty, and valid as a header value.
    pub fn new(key: String) -> Result<ApiKey, String> {
        if key.is_empty() {
            return Err("is empty".to_owned());
        }
        if !key.bytes().all(|b| (0x21..0x7f).contains(&b)) {
            return Err("holds characters that cannot be sent in an HTTP header".to_owned());
        }
        Ok(ApiKey(key))
    }

    /// Reads the key from a key file; every failure is a configuration error (exit 78).
    pub fn from_file(path: &Path) -> Result<ApiKey, Error> {
        ApiKey::new(read_key_file(path, "API key file")?)
            .map_err(|why| Error::Config(format!("the API key file {} {why}", path.display())))
    }

    /// The key itself: for the request header, and to scrub it from server text. Nothing else
    /// shows it.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// Reads a file holding a secret (the API key, the store's password), trimmed; `what` names it
/// in messages. It must be a regular file (a FIFO would block the run: it is
/// opened without blocking and looked at before any read) that neither the group nor others can
/// read or write. The checks are made on the opened file, so a swap after them changes nothing.
pub(crate) fn read_key_file(path: &Path, what: &str) -> Result<String, Error> {
    let shown = path.display();
    let cannot = |e: std::io::Error| Error::Config(format!("cannot read the {what} {shown}: {e}"));
    let mut file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(cannot)?;
    let metadata = file.metadata().map_err(cannot)?;
    if !metadata.is_file() {
        return Err(Error::Config(format!(
            "the {what} {shown} is not a regular file: put it in a plain file (mode 0600)"
        )));
    }
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o066 != 0 {
        let access = if mode & 0o044 != 0 {
            "readable"
        } else {
            "writable"
        };
        return Err(Error::Config(format!(
            "the {what} {shown} is {access} by others (mode {mode:04o}): chmod 600 {shown}"
        )));
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(cannot)?;
    Ok(text.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_key_debug_is_redacted_and_bad_keys_are_refused() {
        let key = ApiKey::new("s3cr3t".into()).unwrap();
        assert!(!format!("{key:?}").contains("s3cr3t"));
        assert!(ApiKey::new(String::new()).is_err());
        assert!(ApiKey::new("a b".into()).is_err());
        assert!(ApiKey::new("a\nb".into()).is_err());
    }
}
