//! Whether the store's path can be used, said as a cause and a fix instead of SQLite's "unable to
//! open database file"; and the modes the store's personal data requires (SPEC §7).

use std::ffi::CString;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::Error;

/// Checks, creating nothing, that a store can be opened at `path` (for writing unless
/// `read_only`): a missing store needs an existing directory it can be created in. Run before
/// the lock is taken, so an unusable store path leaves no `<store>.lock` behind.
pub(crate) fn check_path(path: &Path, read_only: bool) -> Result<(), Error> {
    match diagnose(path, read_only) {
        Some(message) => Err(Error::store(path, message)),
        None => Ok(()),
    }
}

/// What keeps the store at `path` from being opened, with the fix; `None` when nothing is seen.
pub(crate) fn diagnose(path: &Path, read_only: bool) -> Option<String> {
    let directory = parent(path);
    match fs::metadata(path) {
        Ok(metadata) if metadata.is_dir() => Some(
            "is a directory: --store names the database file, e.g. DIR/tixngo-feedback.db".into(),
        ),
        Ok(metadata) => {
            let wanted = if read_only { "read" } else { "read and write" };
            if !accessible(path, read_only) {
                return Some(denied(path, &metadata, wanted));
            }
            let companions_missing = !companion(path, "-wal").exists();
            (!read_only && companions_missing && !accessible(&directory, false))
                .then(|| denied_directory(&directory))
                .flatten()
        }
        Err(e) if e.kind() == ErrorKind::NotFound => match fs::metadata(&directory) {
            Err(e) if e.kind() == ErrorKind::NotFound => Some(format!(
                "no such directory {0}: create it first (mkdir -p {0})",
                directory.display()
            )),
            Ok(metadata) if !metadata.is_dir() => {
                Some(format!("{} is not a directory", directory.display()))
            }
            _ if read_only => None,
            _ => (!accessible(&directory, false))
                .then(|| denied_directory(&directory))
                .flatten(),
        },
        Err(e) => Some(e.to_string()),
    }
}

/// Refuses (78) a store or `-wal` that others can read or write: it holds personal data. The
/// group bits stay allowed, for a reader group.
pub(crate) fn check_private(path: &Path) -> Result<(), Error> {
    for file in [path.to_owned(), companion(path, "-wal")] {
        let Ok(metadata) = fs::metadata(&file) else {
            continue;
        };
        let mode = metadata.permissions().mode() & 0o777;
        if metadata.is_file() && mode & 0o007 != 0 {
            return Err(Error::Config(format!(
                "store file {0} is open to others (mode {mode:04o}) and holds personal data: chmod o-rwx {0}",
                file.display()
            )));
        }
    }
    Ok(())
}

/// The file SQLite keeps beside the store, named by appending `suffix`.
pub(crate) fn companion(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// `access(2)` for this process's user: what the kernel allows, root and read-only mounts
/// included.
fn accessible(path: &Path, read_only: bool) -> bool {
    let Ok(name) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    let mode = if read_only {
        libc::R_OK
    } else {
        libc::R_OK | libc::W_OK
    };
    // SAFETY: `name` is a NUL-terminated string that outlives the call.
    unsafe { libc::access(name.as_ptr(), mode) == 0 }
}

fn denied(path: &Path, metadata: &fs::Metadata, wanted: &str) -> String {
    let me = user_name(current_uid());
    format!(
        "permission denied: user {me} cannot {wanted} {} (owned by {}, mode {:04o}): chown {me} {0} or run as {1}",
        path.display(),
        user_name(metadata.uid()),
        metadata.permissions().mode() & 0o777,
    )
}

/// SQLite creates the `-wal` and `-shm` files beside the store.
fn denied_directory(directory: &Path) -> Option<String> {
    let metadata = fs::metadata(directory).ok()?;
    let me = user_name(current_uid());
    Some(format!(
        "permission denied: user {me} cannot create files in {} (owned by {}, mode {:04o}), where the store and its -wal and -shm files live: chown {me} {0} or run as {1}",
        directory.display(),
        user_name(metadata.uid()),
        metadata.permissions().mode() & 0o777,
    ))
}

fn current_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// The login name of `uid` from /etc/passwd, else the number.
fn user_name(uid: u32) -> String {
    fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.lines().find_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                (fields.nth(1)? == uid.to_string()).then(|| name.to_owned())
            })
        })
        .unwrap_or_else(|| format!("uid {uid}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_and_a_missing_directory_are_named_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let is_dir = diagnose(dir.path(), false).unwrap();
        assert!(is_dir.contains("is a directory"), "{is_dir}");
        let missing = dir.path().join("a/b/s.db");
        let no_dir = diagnose(&missing, false).unwrap();
        assert!(no_dir.contains(&format!("mkdir -p {}", dir.path().join("a/b").display())));
        assert_eq!(diagnose(&dir.path().join("s.db"), false), None);
    }

    #[test]
    fn root_is_uid_0_in_passwd() {
        assert_eq!(user_name(0), "root");
        assert_eq!(user_name(4_000_000_000), "uid 4000000000");
    }
}
