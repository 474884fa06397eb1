//! Every failure of the PostgreSQL store becomes an exit code here, in one place (SPEC §10):
//! a server that cannot be reached or used → 74; a login or TLS setting the server or this
//! program refuses → 78; a lock held, a serialization failure, a deadlock, a statement cut by the
//! run's deadline → 75. The message is one line, without SQL, without the password, and without
//! the server's DETAIL (it may quote row values: personal data).

use std::error::Error as _;
use std::path::PathBuf;

use postgres::error::DbError;

use crate::error::Error;

/// Adds the store to PostgreSQL errors, as `InStore` does for SQLite's.
pub(crate) trait InPg<T> {
    fn in_pg(self, store: &str) -> Result<T, Error>;
}

impl<T> InPg<T> for Result<T, postgres::Error> {
    fn in_pg(self, store: &str) -> Result<T, Error> {
        self.map_err(|e| classify(store, &e))
    }
}

/// A PostgreSQL failure as the one line an operator reads, with its exit code.
pub(crate) fn classify(store: &str, error: &postgres::Error) -> Error {
    if let Some(db) = error.as_db_error() {
        return server_refusal(store, db);
    }
    let detail = detail(error);
    if error.is_closed() {
        return unusable(
            store,
            "the server ended the session (the run never reconnects: what it had not committed was rolled back)",
        );
    }
    if detail.starts_with("error deserializing column") {
        return unusable(
            store,
            &format!("the store holds a value this binary cannot read ({detail})"),
        );
    }
    if detail.contains("password missing") {
        return Error::Config(format!(
            "store {store}: the server asks for a password: give it in a file (mode 0600) with --store-password-file, or in PGPASSWORD"
        ));
    }
    if detail.contains("certificate") {
        return Error::Config(format!(
            "store {store}: the server's TLS certificate is not trusted ({detail}): behind a private CA, give its root certificate with --ca-file (TIXNGO_CA_FILE)"
        ));
    }
    unusable(
        store,
        &format!(
            "cannot use the server ({detail}): check the host and port of --store, and that PostgreSQL runs there"
        ),
    )
}

/// An error the server sent. Only its SQLSTATE is kept: the server's message may quote the
/// statement's values (personal data), its DETAIL rows.
fn server_refusal(store: &str, db: &DbError) -> Error {
    let code = db.code().code();
    let what = match code {
        "40001" => return contended(store, "a concurrent transaction conflicted with this batch"),
        "40P01" => return contended(store, "a deadlock with another session ended this batch"),
        "55P03" => return contended(store, "another session holds a lock this batch needs"),
        "57014" => return contended(store, "the statement was cancelled at the run's deadline"),
        // A login's refusal quotes no row: its message says what was wrong.
        _ if code.starts_with("28") => {
            return Error::Config(format!(
                "store {store}: the server refused the login ({}, SQLSTATE {code}): check the user in the URL, the password (--store-password-file or PGPASSWORD) and the server's pg_hba.conf",
                one_line(db.message())
            ));
        }
        // Raised on purpose by a trigger or a function of the database (an S-360 rule): its
        // message is written for the client.
        _ if code.starts_with("P0") => {
            return unusable(
                store,
                &format!("{} (SQLSTATE {code})", one_line(db.message())),
            );
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
    unusable(store, &format!("{what} (SQLSTATE {code})"))
}

/// Another session got in the way (75): nothing of the batch was written, a later run will do.
pub(crate) fn contended(store: &str, what: &str) -> Error {
    Error::StoreContended {
        store: store.to_owned(),
        message: format!("{what}; what this run had not committed was rolled back"),
    }
}

/// The store cannot be used (74).
pub(crate) fn unusable(store: &str, message: &str) -> Error {
    Error::Store {
        path: PathBuf::from(store),
        message: message.to_owned(),
    }
}

/// What the client library says of a failure, with its causes, on one line
/// (`error connecting to server: Connection refused (os error 111)`).
pub(crate) fn detail(error: &postgres::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    one_line(&text)
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
