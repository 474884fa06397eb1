//! What the operator commands read and change: the key, the skip list, the run log, the errors.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use serde_json::{Map, Value};

use super::batch::SqliteBatch;
use super::{InStore, SqliteStore};
use crate::error::Error;
use crate::report::Counters;
use crate::store::{
    Backend, Batch, FeedState, RunRecord, SkipEntry, StatusFigures, SyncErrorDetail,
    SyncErrorEntry, check_dismissal,
};
use crate::timestamp::Timestamp;

impl Backend for SqliteStore {
    fn pagination_key(&self) -> Result<Option<String>, Error> {
        self.conn
            .query_row(
                "SELECT pagination_key FROM sync_state WHERE id = 1",
                [],
                |row| row.get(0),
            )
            .in_store(&self.path)
    }

    fn skip_list(&self) -> Result<HashSet<String>, Error> {
        let mut statement = self
            .conn
            .prepare("SELECT ticket_number FROM skip_ticket")
            .in_store(&self.path)?;
        let numbers = statement
            .query_map([], |row| row.get(0))
            .and_then(|rows| rows.collect())
            .in_store(&self.path)?;
        Ok(numbers)
    }

    fn keep_alive(&mut self) -> Result<(), Error> {
        Ok(())
    }

    fn begin_batch(
        &mut self,
        command: &str,
        key_before: Option<&str>,
    ) -> Result<Box<dyn Batch + '_>, Error> {
        self.bound_busy_wait()?;
        let batch = SqliteBatch::begin(
            &self.conn,
            &self.path,
            self.overlay.as_ref(),
            command,
            key_before,
        )?;
        Ok(Box::new(batch))
    }

    fn record_run(&mut self, run: &RunRecord<'_>) -> Result<(), Error> {
        self.bound_busy_wait()?;
        let now = crate::timestamp::Timestamp::now().to_string();
        let sql = format!(
            "INSERT INTO sync_run (command, started_at, finished_at, key_before, key_after, exit_code, error, {})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, {})",
            Counters::NAMES.join(", "),
            (8..8 + Counters::NAMES.len()).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ")
        );
        let mut values: Vec<&dyn rusqlite::types::ToSql> = vec![
            &run.command,
            &run.started_at,
            &now,
            &run.key_before,
            &run.key_after,
            &run.exit_code,
            &run.error,
        ];
        let figures = run.counters.values();
        values.extend(figures.iter().map(|v| v as &dyn rusqlite::types::ToSql));
        self.conn
            .execute(&sql, values.as_slice())
            .in_store(&self.path)?;
        Ok(())
    }

    fn feed_state(&self) -> Result<Option<FeedState>, Error> {
        self.conn
            .query_row(
                "SELECT finished_at, caught_up, newest_change_at, feed_lag_seconds, runs_behind
                 FROM sync_run WHERE caught_up IS NOT NULL ORDER BY id DESC LIMIT 1",
                [],
                |row| {
                    Ok(FeedState {
                        checked_at: row.get(0)?,
                        caught_up: row.get(1)?,
                        newest_change_at: row.get(2)?,
                        feed_lag_seconds: row.get(3)?,
                        runs_behind: row.get::<_, Option<u64>>(4)?.unwrap_or(0),
                    })
                },
            )
            .optional()
            .in_store(&self.path)
    }

    fn status(&mut self, runs: usize, error_tickets: usize) -> Result<StatusFigures, Error> {
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

    fn pagination_state(&self) -> Result<(Option<String>, Option<String>), Error> {
        pagination_state(&self.conn, &self.path)
    }

    fn set_pagination_key(
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

    fn skip_entries(&self) -> Result<Vec<SkipEntry>, Error> {
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

    fn add_skips(&mut self, numbers: &[String], reason: Option<&str>) -> Result<usize, Error> {
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

    fn remove_skips(&mut self, numbers: &[String]) -> Result<usize, Error> {
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

    fn unresolved_payloads(&self) -> Result<Vec<(i64, String)>, Error> {
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

    fn unresolved_errors(&self) -> Result<Vec<SyncErrorEntry>, Error> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT id, ticket_number, reason, first_seen_at FROM sync_error
                 WHERE resolved_at IS NULL ORDER BY id",
            )
            .in_store(&self.path)?;
        let entries = statement
            .query_map([], error_entry)
            .and_then(|rows| rows.collect())
            .in_store(&self.path)?;
        Ok(entries)
    }

    fn sync_error(&self, id: i64) -> Result<Option<SyncErrorDetail>, Error> {
        self.conn
            .query_row(
                "SELECT id, ticket_number, reason, first_seen_at, payload, resolved_at, resolution
                 FROM sync_error WHERE id = ?1",
                [id],
                |row| {
                    Ok(SyncErrorDetail {
                        entry: error_entry(row)?,
                        payload: row.get(4)?,
                        resolved_at: row.get(5)?,
                        resolution: row.get(6)?,
                    })
                },
            )
            .optional()
            .in_store(&self.path)
    }

    fn dismiss_errors(&mut self, ids: &[i64], reason: &str) -> Result<(), Error> {
        let now = Timestamp::now().to_string();
        self.in_transaction(|tx, path| {
            let mut resolved_at = HashMap::new();
            for &id in ids {
                let row: Option<Option<String>> = tx
                    .query_row(
                        "SELECT resolved_at FROM sync_error WHERE id = ?1",
                        [id],
                        |row| row.get(0),
                    )
                    .optional()
                    .in_store(path)?;
                resolved_at.extend(row.map(|at| (id, at)));
            }
            check_dismissal(ids, resolved_at, &now)?;
            for &id in ids {
                tx.execute(
                    "UPDATE sync_error SET resolved_at = ?1, resolution = ?2 WHERE id = ?3",
                    params![now, reason, id],
                )
                .in_store(path)?;
            }
            Ok(())
        })
    }
}

impl SqliteStore {
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

/// A sync error's first four columns: id, ticket number, reason, first seen.
fn error_entry(row: &rusqlite::Row<'_>) -> rusqlite::Result<SyncErrorEntry> {
    Ok(SyncErrorEntry {
        id: row.get(0)?,
        ticket_number: row.get(1)?,
        reason: row.get(2)?,
        first_seen_at: row.get(3)?,
    })
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
