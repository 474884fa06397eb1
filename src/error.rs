//! The one error type of the program. Each variant carries the context an operator needs, and
//! [`Error::exit_code`] is the single place where failures become exit codes (SPEC §3).

use std::fmt;
use std::path::PathBuf;

use crate::exit::ExitCode;

/// Why a run failed. The `Display` text is the one line printed on stderr: it says what failed and
/// what to do, and never holds the API key or a response body.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad flag or value (also clap's own errors, reduced to their first line).
    #[error("{0}")]
    Usage(String),

    /// Wrong configuration: URL, API key, key file.
    #[error("{0}")]
    Config(String),

    /// Another process holds the run lock.
    #[error("another run holds the lock {} ({}): try again later", path.display(), holder(*pid))]
    LockHeld { path: PathBuf, pid: Option<u32> },

    /// The lock file cannot be opened or written.
    #[error("cannot use the lock file {}: {source}", path.display())]
    LockFile {
        path: PathBuf,
        source: std::io::Error,
    },

    /// The store cannot be opened, read or written.
    #[error("store {}: {message}", path.display())]
    Store { path: PathBuf, message: String },

    /// Another program held a write transaction on the store until the deadline (or SQLite's
    /// busy timeout).
    #[error(
        "store {}: another program is writing the store and kept it locked longer than this run could wait; nothing was written, try again later",
        path.display()
    )]
    StoreBusy { path: PathBuf },

    /// A PostgreSQL store said "try later": another session holds its lock, a serialization
    /// failure or a deadlock, or this run lost its lock (another run moved the key).
    #[error("store {store}: {message}; try again later")]
    StoreContended { store: String, message: String },

    /// The store was written by a newer version of this program.
    #[error(
        "store {} has schema version {found}, newer than the {supported} this binary knows: upgrade tixngo-feedback",
        path.display()
    )]
    StoreTooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },

    /// TIXNGO could not be reached, or kept failing until the deadline.
    #[error("{}", self.message(KeyLeft::Unchanged))]
    Unavailable(String),

    /// TIXNGO answered 429 until the deadline.
    #[error("{}", self.message(KeyLeft::Unchanged))]
    RateLimited,

    /// TIXNGO refused the API key.
    #[error(
        "TIXNGO rejected the API key (HTTP {status}): check the API key of this organizer (--api-key-file / TIXNGO_API_KEY)"
    )]
    Unauthorized { status: u16 },

    /// TIXNGO answered a redirect, which is never followed: the URL is wrong.
    #[error(
        "TIXNGO answered HTTP {status}, a redirect to {target}: fix the API URL (redirects are not followed)"
    )]
    Redirected { status: u16, target: String },

    /// TIXNGO refused the request itself (400, 404, 422 …): never retried. `reason` is TIXNGO's
    /// own word for it, scrubbed, as ` (…)`, or empty.
    #[error(
        "TIXNGO answered HTTP {status} for {url}{reason}: check --api-url (it ends in /organizer/tickets), --batch-size and the API key (--api-key-file / TIXNGO_API_KEY)"
    )]
    Rejected {
        status: u16,
        url: String,
        reason: String,
    },

    /// A complete response or file that is not a valid diff document.
    #[error("{}", self.message(KeyLeft::Unchanged))]
    BadData(String),

    /// A batch rolled back because of tickets that cannot be mapped.
    #[error("{}", self.message(KeyLeft::Unchanged))]
    BatchRejected(String),

    /// A sync that failed after committing batches: the failed batch is named, and its message
    /// says where the pagination key stays, as the key moved with the batches before (SPEC §4.7).
    #[error("batch {}: {}", committed + 1, error.message(KeyLeft::AfterBatch(*committed)))]
    AfterBatches { committed: u64, error: Box<Error> },

    /// A bug.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Where a failed fetch or batch leaves the pagination key, as its message says it (never "the
/// key": the API key is a key too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyLeft {
    /// Where the run found it: no batch of the run was committed.
    Unchanged,
    /// Where the run's committed batch N left it.
    AfterBatch(u64),
}

impl KeyLeft {
    /// What was written of the failed document.
    fn nothing_written(self) -> &'static str {
        match self {
            KeyLeft::Unchanged => "nothing was written",
            KeyLeft::AfterBatch(_) => "nothing of it was written",
        }
    }
}

impl fmt::Display for KeyLeft {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyLeft::Unchanged => f.write_str("the pagination key is unchanged"),
            KeyLeft::AfterBatch(batch) => {
                write!(f, "the pagination key stays where batch {batch} left it")
            }
        }
    }
}

fn holder(pid: Option<u32>) -> String {
    pid.map_or_else(|| "holder unknown".to_owned(), |pid| format!("pid {pid}"))
}

impl Error {
    /// The exit code of this failure.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Usage(_) => ExitCode::Usage,
            Error::Config(_)
            | Error::StoreTooNew { .. }
            | Error::Redirected { .. }
            | Error::Rejected { .. } => ExitCode::Config,
            Error::LockHeld { .. }
            | Error::RateLimited
            | Error::StoreBusy { .. }
            | Error::StoreContended { .. } => ExitCode::TempFail,
            Error::LockFile { .. } | Error::Store { .. } => ExitCode::IoErr,
            Error::Unavailable(_) => ExitCode::Unavailable,
            Error::Unauthorized { .. } => ExitCode::NoPerm,
            Error::BadData(_) | Error::BatchRejected(_) => ExitCode::DataErr,
            Error::Internal(_) => ExitCode::Software,
            Error::AfterBatches { error, .. } => error.exit_code(),
        }
    }

    /// The error line, saying of the pagination key what `key` says; a failed fetch or batch
    /// displays itself with the key unchanged.
    fn message(&self, key: KeyLeft) -> String {
        match self {
            Error::Unavailable(why) => {
                format!("TIXNGO unavailable: {why}; {key}, the next run retries")
            }
            Error::RateLimited => format!(
                "TIXNGO kept answering 429 Too Many Requests until the deadline; {key}, try again later"
            ),
            Error::BadData(why) => format!("bad data: {why}; {}, {key}", key.nothing_written()),
            Error::BatchRejected(why) => format!("{why}; the batch was rolled back and {key}"),
            other => other.to_string(),
        }
    }

    /// Wraps an SQLite error with the store it happened on.
    pub fn store(path: impl Into<PathBuf>, error: impl std::fmt::Display) -> Error {
        Error::Store {
            path: path.into(),
            message: error.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One error of each variant, with its documented exit code.
    fn every_variant() -> Vec<(Error, u8)> {
        let path = PathBuf::from("x.db");
        let mut cases = vec![
            (Error::Usage("u".into()), 64),
            (Error::Config("c".into()), 78),
            (
                Error::LockHeld {
                    path: path.clone(),
                    pid: Some(7),
                },
                75,
            ),
            (
                Error::LockFile {
                    path: path.clone(),
                    source: std::io::Error::other("x"),
                },
                74,
            ),
            (Error::store(&path, "disk full"), 74),
            (Error::StoreBusy { path: path.clone() }, 75),
            (
                Error::StoreContended {
                    store: "postgres://h/db".into(),
                    message: "deadlock".into(),
                },
                75,
            ),
            (
                Error::StoreTooNew {
                    path,
                    found: 9,
                    supported: 1,
                },
                78,
            ),
        ];
        cases.extend(fetch_and_data_variants());
        cases
    }

    /// The variants of fetching and of the data fetched.
    fn fetch_and_data_variants() -> Vec<(Error, u8)> {
        vec![
            (Error::Unavailable("503".into()), 69),
            (Error::RateLimited, 75),
            (Error::Unauthorized { status: 401 }, 77),
            (
                Error::Redirected {
                    status: 301,
                    target: "https://x/".into(),
                },
                78,
            ),
            (
                Error::Rejected {
                    status: 404,
                    url: "https://x/".into(),
                    reason: String::new(),
                },
                78,
            ),
            (Error::BadData("b".into()), 65),
            (Error::BatchRejected("r".into()), 65),
            (Error::Internal("i".into()), 70),
            (
                Error::AfterBatches {
                    committed: 1,
                    error: Box::new(Error::RateLimited),
                },
                75,
            ),
        ]
    }

    #[test]
    fn every_variant_maps_to_its_documented_code() {
        for (error, code) in &every_variant() {
            assert_eq!(error.exit_code().code(), *code, "{error:?}");
        }
    }

    #[test]
    fn no_message_says_a_bare_key() {
        // "the key" alone is ambiguous to an operator: the API key, or the pagination key?
        for (error, _) in &every_variant() {
            let text = error.to_string();
            let bare = text
                .replace("pagination key", "")
                .replace("API key", "")
                .contains(" key");
            assert!(!bare, "a message that names no kind of key: {text}");
        }
    }

    #[test]
    fn lock_message_names_file_and_pid() {
        let error = Error::LockHeld {
            path: "/var/lib/t.db.lock".into(),
            pid: Some(4242),
        };
        let text = error.to_string();
        assert!(
            text.contains("/var/lib/t.db.lock") && text.contains("pid 4242"),
            "{text}"
        );
    }
}
