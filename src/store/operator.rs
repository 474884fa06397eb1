//! What the operator commands read and change: the key, the skip list, the run log, the errors.

use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::{TransactionBehavior, params};
use serde::Serialize;
use serde_json::{Map, Value};

use super::{InStore, Store};
use crate::error::Error;
use crate::timestamp::Timestamp;

/// A line of the skip list.
#[derive(Clone, Debug, Serialize)]
pub struct SkipEntry {
    pub ticket_number: String,
    pub reason: Option<String>,
    pub added_at: String,
}

/// What `status` shows, read in one read transaction so the figures agree with each other.
#[derive(Clone, Debug, Serialize)]
pub struct StatusFigures {
    pub pagination_key: Option<String>,
    pub pagination_key_saved_at: Option<String>,
    /// The latest `sync_run` rows, newest first, as objects.
    pub runs: Vec<Map<String, Value>>,
    pub skip_count: u64,
    pub unresolved_errors: u64,
    /// The first ticket numbers with an unresolved error.
    pub unresolved_error_tickets: Vec<String>,
    pub tickets: u64,
    pub contacts: u64,
}

impl Store {
    /// The figures of `status`.
    pub fn status(&mut self, runs: usize, error_tickets: usize) -> Result<StatusFigures, Error> {
        let path = self.path.clone();
        let tx = self.conn.transaction().in_store(&path)?;
        let (pagination_key, pagination_key_saved_at) = pagination_state(&tx, &path)?;
        let count = |sql: &str| -> Result<u64, Error> {
            tx.query_row(sql, [], |row| row.get(0)).in_store(&path)
        };
        let figures = StatusFigures {
            pagination_key,
            pagination_key_saved_at,
            runs: rows_as_objects(
                &tx,
                &path,
                "SELECT * FROM sync_run ORDER BY id DESC LIMIT ?1",
                runs,
            )?,
            skip_count: count("SELECT count(*) FROM skip_ticket")?,
            unresolved_errors: count("SELECT count(*) FROM sync_error WHERE resolved_at IS NULL")?,
            unresolved_error_tickets: {
                let mut statement = tx
                    .prepare(
                        "SELECT coalesce(ticket_number, '(unreadable)') FROM sync_error
                         WHERE resolved_at IS NULL ORDER BY id LIMIT ?1",
                    )
                    .in_store(&path)?;
                statement
                    .query_map([error_tickets as i64], |row| row.get(0))
                    .and_then(|rows| rows.collect::<Result<_, _>>())
                    .in_store(&path)?
            },
            tickets: count("SELECT count(*) FROM ticket")?,
            contacts: count("SELECT count(*) FROM contact")?,
        };
        Ok(figures)
    }

    /// The stored key and when it was saved.
    pub fn pagination_state(&self) -> Result<(Option<String>, Option<String>), Error> {
        pagination_state(&self.conn, &self.path)
    }

    /// Moves the live key (`None`: the start of the feed) and records the change in `sync_run`
    /// under `command`, in one transaction. Returns the key it replaced.
    pub fn set_pagination_key(
        &mut self,
        command: &str,
        key: Option<&str>,
    ) -> Result<Option<String>, Error> {
        let path = self.path.clone();
        let now = Timestamp::now().to_string();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .in_store(&path)?;
        let before: Option<String> = tx
            .query_row(
                "SELECT pagination_key FROM sync_state WHERE id = 1",
                [],
                |row| row.get(0),
            )
            .in_store(&path)?;
        tx.execute(
            "UPDATE sync_state SET pagination_key = ?1, updated_at = ?2 WHERE id = 1",
            params![key, now],
        )
        .in_store(&path)?;
        tx.execute(
            "INSERT INTO sync_run (command, started_at, finished_at, key_before, key_after, exit_code)
             VALUES (?1, ?2, ?2, ?3, ?4, 0)",
            params![command, now, before, key],
        )
        .in_store(&path)?;
        tx.commit().in_store(&path)?;
        Ok(before)
    }

    /// The skip list, by ticket number.
    pub fn skip_entries(&self) -> Result<Vec<SkipEntry>, Error> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT ticket_number, reason, added_at FROM skip_ticket ORDER BY ticket_number",
            )
            .in_store(&self.path)?;
        let entries = statement
            .query_map([], |row| {
                Ok(SkipEntry {
                    ticket_number: row.get(0)?,
                    reason: row.get(1)?,
                    added_at: row.get(2)?,
                })
            })
            .and_then(|rows| rows.collect())
            .in_store(&self.path)?;
        Ok(entries)
    }

    /// Adds ticket numbers to the skip list (a listed one keeps its entry). Returns how many were new.
    pub fn add_skips(&mut self, numbers: &[String], reason: Option<&str>) -> Result<usize, Error> {
        let now = Timestamp::now().to_string();
        self.in_transaction(|tx, path| {
            let mut added = 0;
            for number in numbers {
                added += tx
                    .execute(
                        "INSERT INTO skip_ticket (ticket_number, reason, added_at) VALUES (?1, ?2, ?3)
                         ON CONFLICT (ticket_number) DO NOTHING",
                        params![number, reason, now],
                    )
                    .in_store(path)?;
            }
            Ok(added)
        })
    }

    /// Removes ticket numbers from the skip list. Returns how many were listed.
    pub fn remove_skips(&mut self, numbers: &[String]) -> Result<usize, Error> {
        self.in_transaction(|tx, path| {
            let mut removed = 0;
            for number in numbers {
                removed += tx
                    .execute("DELETE FROM skip_ticket WHERE ticket_number = ?1", [number])
                    .in_store(path)?;
            }
            Ok(removed)
        })
    }

    /// The ids and raw payloads of the unresolved sync errors, oldest first.
    pub fn unresolved_payloads(&self) -> Result<Vec<(i64, String)>, Error> {
        let mut statement = self
            .conn
            .prepare("SELECT id, payload FROM sync_error WHERE resolved_at IS NULL ORDER BY id")
            .in_store(&self.path)?;
        let payloads = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .and_then(|rows| rows.collect())
            .in_store(&self.path)?;
        Ok(payloads)
    }

    fn in_transaction<T>(
        &mut self,
        work: impl FnOnce(&rusqlite::Transaction<'_>, &Path) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .in_store(&self.path)?;
        let result = work(&tx, &self.path)?;
        tx.commit().in_store(&self.path)?;
        Ok(result)
    }
}

/// The stored key and when it was saved, on a connection or inside a transaction.
fn pagination_state(
    conn: &rusqlite::Connection,
    path: &Path,
) -> Result<(Option<String>, Option<String>), Error> {
    conn.query_row(
        "SELECT pagination_key, updated_at FROM sync_state WHERE id = 1",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
    .in_store(path)
}

/// Rows of a query as JSON objects keyed by column name.
fn rows_as_objects(
    conn: &rusqlite::Connection,
    path: &Path,
    sql: &str,
    limit: usize,
) -> Result<Vec<Map<String, Value>>, Error> {
    let mut statement = conn.prepare(sql).in_store(path)?;
    let names: Vec<String> = statement.column_names().map(str::to_owned).collect();
    let mut rows = statement.query([limit as i64]).in_store(path)?;
    let mut objects = Vec::new();
    while let Some(row) = rows.next().in_store(path)? {
        let mut object = Map::new();
        for (index, name) in names.iter().enumerate() {
            let value = match row.get_ref(index).in_store(path)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(i) => Value::from(i),
                ValueRef::Real(f) => Value::from(f),
                ValueRef::Text(t) => Value::from(String::from_utf8_lossy(t)),
                ValueRef::Blob(b) => Value::from(format!("<{} bytes>", b.len())),
            };
            object.insert(name.clone(), value);
        }
        objects.push(object);
    }
    Ok(objects)
}
