//! PostgreSQL failures as the exit codes of SPEC §10, in one line that holds neither SQL nor a
//! value of a row (a server message may quote both, so only its SQLSTATE is kept).

use crate::error::Error;

/// The error of a failed exchange with the server on `store`.
pub fn classify(store: &str, error: &postgres::Error) -> Error {
    let Some(code) = error.code() else {
        if error.is_closed() || has_io_source(error) {
            return Error::store(store, "the connection to the server was lost");
        }
        // A value that does not convert between Rust and PostgreSQL: a bug.
        return Error::Internal(format!("PostgreSQL store {store}: {error}"));
    };
    let code = code.code();
    let what = match code {
        "40001" => return contended(store, "a concurrent transaction conflicted with this batch"),
        "40P01" => return contended(store, "a deadlock with another session ended this batch"),
        "55P03" => return contended(store, "another session holds a lock this batch needs"),
        _ if code.starts_with("28") => {
            return Error::Config(format!(
                "store {store}: the server refused the login (SQLSTATE {code}): check the user and its password"
            ));
        }
        _ if code.starts_with("08") => "the connection to the server failed",
        _ if code.starts_with("57") => "the server ended the session or the statement",
        _ if code.starts_with("53") => "the server is out of resources (disk, memory, connections)",
        "3D000" => "the database does not exist",
        "3F000" => "the schema does not exist",
        "42501" => "the user lacks a privilege on the store's schema",
        "42P01" | "42703" => {
            "the schema does not hold the store's tables as this binary knows them"
        }
        "25006" => "the server is read-only (a standby?)",
        _ => "the server refused a statement",
    };
    Error::store(store, format!("{what} (SQLSTATE {code})"))
}

/// A failure that a later run does not meet: exit 75, nothing of the batch written.
pub fn contended(store: &str, what: &str) -> Error {
    Error::StoreContended {
        store: store.to_owned(),
        message: what.to_owned(),
    }
}

fn has_io_source(error: &postgres::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if cause.is::<std::io::Error>() {
            return true;
        }
        source = cause.source();
    }
    false
}
