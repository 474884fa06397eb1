//! The files a run touches must be different files (SPEC §2 "Paths"): a lock file or a metrics
//! file that names the store (or its `-wal`, its `-shm`, the key file, the dump directory, or
//! each other) would be written over it. They are compared once resolved — the same inode through a hard link, the same
//! canonical path through symbolic links, and for a file not created yet its canonical directory
//! and name — before anything is opened.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::cli::{Cli, Command};
use crate::error::Error;
use crate::settings::StoreFiles;

/// The files SQLite keeps beside a store, by the suffix of their name.
const STORE_COMPANIONS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// Refuses (usage error, 64) a command line that names the same file twice. A store given as a
/// URL names no file, and has no lock file.
pub(crate) fn check_distinct(cli: &Cli) -> Result<(), Error> {
    let mut taken = if store_is_url(cli) {
        Vec::new()
    } else {
        store_files(&cli.global.store)
    };
    for (option, path) in named_files(cli) {
        let resolved = Resolved::of(&path);
        if let Some((other, _)) = taken.iter().find(|(_, seen)| seen.same_file(&resolved)) {
            return Err(Error::Usage(format!(
                "{option} {} is the same file as {other}: the store, the lock file, the metrics \
                 file, the dump directory and the key file must be different files",
                path.display()
            )));
        }
        taken.push((option.to_owned(), resolved));
    }
    Ok(())
}

/// The SQLite store and the files SQLite keeps beside it.
fn store_files(store: &Path) -> Vec<(String, Resolved)> {
    let store = Resolved::of(store);
    let mut taken: Vec<(String, Resolved)> = STORE_COMPANIONS
        .iter()
        .map(|suffix| {
            (
                format!("the store's {suffix} file"),
                store.companion(suffix),
            )
        })
        .collect();
    taken.insert(0, ("--store".to_owned(), store));
    taken
}

/// Whether `--store` is a URL: a PostgreSQL store, or one the settings refuse, never echoed in a
/// message here (it may hold a password). Neither names a file nor has a lock file.
fn store_is_url(cli: &Cli) -> bool {
    cli.global
        .store
        .to_str()
        .and_then(crate::store::postgres::url_scheme)
        .is_some()
}

/// Every file the command names besides the store; one more option is one more line here.
fn named_files(cli: &Cli) -> Vec<(&'static str, PathBuf)> {
    let mut files = Vec::new();
    if !store_is_url(cli) {
        files.push(("--lock-file", StoreFiles::of(&cli.global).lock));
    }
    let password_file = cli.global.store_password_file.clone();
    files.extend(password_file.map(|p| ("--store-password-file", p)));
    if let Command::Sync(args) = &cli.command {
        files.extend(args.metrics_file.clone().map(|p| ("--metrics-file", p)));
        files.extend(args.api_key_file.clone().map(|p| ("--api-key-file", p)));
        files.extend(args.dump_dir.clone().map(|p| ("--dump-dir", p)));
    }
    files
}

/// A path as the file system resolves it.
struct Resolved {
    /// Canonical path; for a missing file, its canonical directory joined with its name.
    path: PathBuf,
    /// Device and inode of an existing file.
    inode: Option<(u64, u64)>,
}

impl Resolved {
    fn of(path: &Path) -> Resolved {
        let inode = fs::metadata(path).ok().map(|m| (m.dev(), m.ino()));
        let path = fs::canonicalize(path).unwrap_or_else(|_| canonical_parent(path));
        Resolved { path, inode }
    }

    /// The file SQLite names by appending `suffix` to the (resolved) store path.
    fn companion(&self, suffix: &str) -> Resolved {
        let mut name = OsString::from(self.path.as_os_str());
        name.push(suffix);
        Resolved::of(Path::new(&name))
    }

    fn same_file(&self, other: &Resolved) -> bool {
        self.path == other.path || (self.inode.is_some() && self.inode == other.inode)
    }
}

/// The canonical directory of a file that does not exist (yet), joined with its name.
fn canonical_parent(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    match (absolute.parent(), absolute.file_name()) {
        (Some(parent), Some(name)) => fs::canonicalize(parent)
            .map(|parent| parent.join(name))
            .unwrap_or(absolute),
        _ => absolute,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Parsed, parse};

    fn check(args: &[&str]) -> Result<(), Error> {
        let Parsed::Run(cli) = parse(args) else {
            panic!("{args:?} not parsed")
        };
        check_distinct(&cli)
    }

    #[test]
    fn a_postgresql_store_is_no_file_but_its_password_file_is_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        let file = file.to_str().unwrap();
        let url = "postgres://feedback@db.example/s360";
        // A URL is not a path: the file SQLite would keep beside it is no file here.
        let beside = format!("{url}-wal");
        check(&["t", "--store", url, "sync", "--metrics-file", &beside]).unwrap();
        let twice = check(&[
            "t",
            "--store",
            url,
            "--store-password-file",
            file,
            "sync",
            "--api-key-file",
            file,
        ]);
        let error = twice.expect_err("the same file twice was accepted");
        assert!(error.to_string().contains("--api-key-file"), "{error}");
    }

    fn resolved(path: &Path) -> Resolved {
        Resolved::of(path)
    }

    #[test]
    fn links_and_spellings_of_one_file_are_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("s.db");
        fs::write(&store, b"x").unwrap();
        let hard = dir.path().join("hard");
        fs::hard_link(&store, &hard).unwrap();
        let soft = dir.path().join("soft");
        std::os::unix::fs::symlink(&store, &soft).unwrap();
        let spelled = dir.path().join("sub/../s.db");
        fs::create_dir(dir.path().join("sub")).unwrap();
        for other in [&hard, &soft, &spelled] {
            assert!(resolved(&store).same_file(&resolved(other)), "{other:?}");
        }
        let missing_wal = dir.path().join("sub/../s.db-wal");
        assert!(
            resolved(&store)
                .companion("-wal")
                .same_file(&resolved(&missing_wal))
        );
        assert!(!resolved(&store).same_file(&resolved(&dir.path().join("t.db"))));
    }
}
